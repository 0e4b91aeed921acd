//! `strata status`: the stamps the location group knows (region, fill, buckets, health), every
//! node with its stamp and health, and for one stamp (`--stamp`, default the first) its racks,
//! ranges with their owner and extents with their replica counts. Finds the deployment
//! through `<data-dir>/stamp.json`.

use crate::layout::{Layout, NodeKind};
use crate::probe;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use strata_proto::manager::partition_manager_client::PartitionManagerClient;
use strata_proto::manager::{GetPartitionMapRequest, ManagerStatusRequest, PartitionMap};
use strata_proto::partition::partition_server_client::PartitionServerClient;
use strata_proto::partition::PartitionStatusRequest;
use strata_proto::stream::stream_manager_client::StreamManagerClient;
use strata_proto::stream::{StreamStatusRequest, StreamStatusResponse};

/// Bound of each call `status` makes.
const CALL_TIMEOUT: Duration = Duration::from_millis(strata_util::rpc::REQUEST_TIMEOUT_MS);

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The data folder given to `strata up`.
    #[arg(long, default_value = "strata-data")]
    pub data_dir: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// The stamp whose racks, ranges and extents are shown [default: the first].
    #[arg(long)]
    pub stamp: Option<String>,
}

/// Shows keys readably: printable ASCII as is, other bytes as \xNN.
pub fn show_key(key: &[u8]) -> String {
    strata_types::keys::display(key)
}

pub(crate) async fn partition_map(layout: &Layout) -> Option<PartitionMap> {
    let mut fallback = None;
    for member in layout.of_kind(NodeKind::PartitionManager) {
        let Ok(channel) = crate::grpc_channel(&member.addr, CALL_TIMEOUT) else {
            continue;
        };
        let Ok(map) = PartitionManagerClient::new(channel)
            .get_partition_map(GetPartitionMapRequest {})
            .await
        else {
            continue;
        };
        let map = map.into_inner();
        // A member that names itself leader has the freshest map.
        if map.leader_hint == member.addr {
            return Some(map);
        }
        fallback.get_or_insert(map);
    }
    fallback
}

/// Whether every range of the map has an owner that reports it loaded.
pub async fn ranges_served(layout: &Layout) -> bool {
    let Some(map) = partition_map(layout).await else {
        return false;
    };
    if map.ranges.is_empty() {
        return false;
    }
    for range in &map.ranges {
        if range.owner_addr.is_empty() {
            return false;
        }
        let Ok(channel) = crate::grpc_channel(&range.owner_addr, CALL_TIMEOUT) else {
            return false;
        };
        let Ok(status) = PartitionServerClient::new(channel)
            .get_status(PartitionStatusRequest {})
            .await
        else {
            return false;
        };
        if !status
            .into_inner()
            .ranges
            .iter()
            .any(|r| r.range_id == range.range_id && r.epoch == range.epoch)
        {
            return false;
        }
    }
    true
}

/// The stream manager's status, from whichever member leads (followers refuse).
async fn stream_status(layout: &Layout) -> Option<StreamStatusResponse> {
    for manager in layout.of_kind(NodeKind::StreamManager) {
        let Ok(channel) = crate::grpc_channel(&manager.addr, CALL_TIMEOUT) else {
            continue;
        };
        if let Ok(status) = StreamManagerClient::new(channel)
            .get_status(StreamStatusRequest {})
            .await
        {
            return Some(status.into_inner());
        }
    }
    None
}

/// The partition manager's status, from its leader when it answers (its map and range events
/// are the freshest), else from any member.
async fn manager_leader(layout: &Layout) -> Value {
    let mut best: Option<strata_proto::manager::ManagerStatusResponse> = None;
    for member in layout.of_kind(NodeKind::PartitionManager) {
        let Ok(channel) = crate::grpc_channel(&member.addr, CALL_TIMEOUT) else {
            continue;
        };
        if let Ok(status) = PartitionManagerClient::new(channel)
            .get_status(ManagerStatusRequest {})
            .await
        {
            let status = status.into_inner();
            let leads = status.leader_id == status.node_id;
            if leads || best.is_none() {
                best = Some(status);
            }
            if leads {
                break;
            }
        }
    }
    let Some(status) = best else {
        return Value::Null;
    };
    let events: Vec<Value> = status
        .range_events
        .iter()
        .map(|e| json!({ "at_ms": e.at_ms, "kind": e.kind, "detail": e.detail }))
        .collect();
    json!({
        "leader_id": status.leader_id,
        "leader_addr": status.leader_addr,
        "term": status.current_term,
        "splits_total": status.splits_total,
        "merges_total": status.merges_total,
        "moves_total": status.moves_total,
        "range_events": events,
    })
}

/// The whole report as JSON (the table view prints from this too): every node and stamp of
/// `deployment`, and the details of `stamp`.
pub async fn collect(deployment: &Layout, stamp: &str, data_dir: &std::path::Path) -> Value {
    let running = crate::layout::RunningStamp::load(data_dir).ok();
    let layout = &deployment.view(stamp);
    let streams = stream_status(layout).await;
    let nodes = nodes_report(deployment, running.as_ref(), streams.as_ref()).await;
    let racks = by_rack(
        &nodes
            .iter()
            .filter(|n| n["stamp"] == stamp)
            .cloned()
            .collect::<Vec<_>>(),
    );
    let map = partition_map(layout).await;
    let extents = streams.as_ref().map(extents_report).unwrap_or_default();
    let under_replicated = extents
        .iter()
        .filter(|e| e["replicas_healthy"].as_u64().unwrap_or(0) < 3)
        .count();
    let manager = manager_leader(layout).await;
    let replication = match &map {
        Some(map) => crate::replication::owed_by_bucket(map).await,
        None => json!({ "complete": false, "owing": [] }),
    };
    // Clients' S3 endpoints: what `strata up` serves, else the layout's front-ends (compose).
    let s3_endpoints = match &running {
        Some(running) => running.endpoints.clone().into_iter().collect(),
        // (compose front-ends serve plain HTTP; the first front-end of each stamp is named)
        None => deployment
            .s3_endpoints("http")
            .into_iter()
            .map(|(stamp, all)| (stamp, all.split(',').next().unwrap_or_default().to_string()))
            .collect(),
    };
    let mut stamps = crate::namespace::stamps_report(layout, &s3_endpoints).await;
    add_health(&mut stamps, &nodes);
    let endpoint = running.as_ref().and_then(|r| {
        r.endpoints
            .get(stamp)
            .cloned()
            .or_else(|| (stamp == deployment.stamp).then(|| r.endpoint.clone()))
    });
    json!({
        "stamp": stamp,
        "stamps": stamps,
        "endpoint": endpoint,
        "running": running.is_some(),
        "nodes": nodes,
        "racks": racks,
        "range_events": manager["range_events"].clone(),
        "manager": manager,
        "stream_manager": streams.as_ref().map(stream_manager_report),
        "map_version": map.as_ref().map(|m| m.version),
        "ranges": map.as_ref().map(ranges_report).unwrap_or_default(),
        "extent_nodes": streams.as_ref().map(extent_nodes_report).unwrap_or_default(),
        "extents_total": extents.len(),
        "extents_under_replicated": under_replicated,
        "extents": extents,
        "replication": replication,
    })
}

/// Every node of the layout with its health (probed now), pid (when `strata up` runs it) and
/// disk used (extent nodes, as their last heartbeat to the stream manager reported).
async fn nodes_report(
    layout: &Layout,
    running: Option<&crate::layout::RunningStamp>,
    streams: Option<&StreamStatusResponse>,
) -> Vec<Value> {
    let pid_of = |name: &str| {
        running.and_then(|r| r.nodes.iter().find(|n| n.spec.name == name).map(|n| n.pid))
    };
    // Disk used per extent node, by gRPC address.
    let disk_by_addr: BTreeMap<String, u64> = streams
        .iter()
        .flat_map(|s| s.nodes.iter())
        .filter_map(|n| {
            n.node
                .as_ref()
                .map(|node| (node.addr.clone(), n.disk_used_bytes))
        })
        .collect();
    let mut nodes = Vec::new();
    for spec in &layout.nodes {
        let healthy = probe::healthy(&spec.http_addr).await;
        nodes.push(json!({
            "disk_used_bytes": disk_by_addr.get(&spec.addr),
            "name": spec.name,
            "stamp": layout.stamp_of(spec),
            "kind": spec.kind,
            "rack": spec.rack,
            "addr": spec.addr,
            "http_addr": spec.http_addr,
            "pid": pid_of(&spec.name),
            "healthy": healthy,
        }));
    }
    nodes
}

/// Each stamp's health from its nodes' (those this deployment runs): "healthy" when all
/// answer, "degraded" when some do, "down" when none do; null for a stamp not run from here.
fn add_health(stamps: &mut [Value], nodes: &[Value]) {
    for stamp in stamps {
        let own: Vec<&Value> = nodes
            .iter()
            .filter(|n| n["stamp"] == stamp["name"])
            .collect();
        let healthy = own.iter().filter(|n| n["healthy"] == true).count();
        let health = match (own.len(), healthy) {
            (0, _) => Value::Null,
            (all, up) if up == all => "healthy".into(),
            (_, 0) => "down".into(),
            _ => "degraded".into(),
        };
        stamp["health"] = health;
        stamp["nodes_healthy"] = json!(healthy);
        stamp["nodes_total"] = json!(own.len());
    }
}

/// The nodes that have a rack, grouped by it.
fn by_rack(nodes: &[Value]) -> BTreeMap<String, Vec<Value>> {
    let mut racks: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for node in nodes {
        if let Some(rack) = node["rack"].as_str() {
            racks
                .entry(rack.to_string())
                .or_default()
                .push(node.clone());
        }
    }
    racks
}

/// The map's ranges in key order, keys shown readably.
fn ranges_report(map: &PartitionMap) -> Vec<Value> {
    let mut sorted: Vec<_> = map.ranges.iter().collect();
    sorted.sort_by(|a, b| a.low.cmp(&b.low));
    sorted
        .into_iter()
        .map(|r| {
            json!({
                "range_id": r.range_id,
                "low": show_key(&r.low),
                "high": if r.high.is_empty() { "+inf".to_string() } else { show_key(&r.high) },
                "owner": r.owner_id,
                "owner_addr": r.owner_addr,
                "epoch": r.epoch,
            })
        })
        .collect()
}

/// Every extent the stream manager knows, with its replica counts.
fn extents_report(streams: &StreamStatusResponse) -> Vec<Value> {
    streams
        .extents
        .iter()
        .map(|e| {
            json!({
                "extent_id": e.extent_id,
                "stream": e.stream,
                "sealed": e.sealed,
                "length": e.length,
                "replicas": e.replicas_total,
                "replicas_healthy": e.replicas_healthy,
                "racks": e.racks,
            })
        })
        .collect()
}

/// The extent nodes as the stream manager sees them.
fn extent_nodes_report(streams: &StreamStatusResponse) -> Vec<Value> {
    streams
        .nodes
        .iter()
        .map(|n| {
            let node = n.node.clone().unwrap_or_default();
            json!({ "node_id": node.node_id, "addr": node.addr, "rack": node.rack, "healthy": n.healthy, "disk_used_bytes": n.disk_used_bytes })
        })
        .collect()
}

/// The stream manager group: its leader and members.
fn stream_manager_report(streams: &StreamStatusResponse) -> Value {
    let leader_addr = streams
        .managers
        .iter()
        .find(|m| m.node_id == streams.leader_id)
        .map(|m| m.addr.clone());
    json!({
        "leader_id": streams.leader_id,
        "leader_addr": leader_addr,
        "term": streams.term,
        "members": streams.managers.iter().map(|m| json!({"node_id": m.node_id, "addr": m.addr})).collect::<Vec<_>>(),
    })
}

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let Some(layout) = Layout::load(&args.data_dir)? else {
        anyhow::bail!(
            "no stamp in {}; start one with `strata up --data-dir {}`",
            args.data_dir.display(),
            args.data_dir.display()
        );
    };
    let stamp = args.stamp.clone().unwrap_or_else(|| layout.stamp.clone());
    anyhow::ensure!(
        layout.stamps().contains(&stamp),
        "no stamp {stamp:?} here; the stamps are {:?}",
        layout.stamps()
    );
    let report = collect(&layout, &stamp, &args.data_dir).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    print_tables(&report);
    Ok(())
}

/// A JSON value as plain text (strings without quotes), so column widths apply.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

fn yes_no(healthy: bool) -> &'static str {
    if healthy {
        "healthy"
    } else {
        "DOWN"
    }
}

fn print_tables(report: &Value) {
    println!(
        "stamp {}  endpoint {}",
        report["stamp"].as_str().unwrap_or("?"),
        report["endpoint"].as_str().unwrap_or("(not running)")
    );
    print_stamps(report);
    print_nodes(report);
    print_leaders(report);
    print_ranges(report);
    print_range_changes(report);
    print_extents(report);
    crate::replication::print_owed(&report["replication"]);
}

fn print_stamps(report: &Value) {
    println!("\nSTAMPS (location group)");
    println!(
        "  {:<12} {:<12} {:<28} {:<9} {:>6} {:>8}  health",
        "name", "region", "endpoint", "state", "fill", "buckets"
    );
    for stamp in report["stamps"].as_array().into_iter().flatten() {
        println!(
            "  {:<12} {:<12} {:<28} {:<9} {:>6} {:>8}  {}",
            text(&stamp["name"]),
            text(&stamp["region"]),
            text(&stamp["endpoint"]),
            text(&stamp["state"]),
            stamp["fill"]
                .as_f64()
                .map(|fill| format!("{:.1}%", fill * 100.0))
                .unwrap_or_else(|| "-".into()),
            text(&stamp["buckets"]),
            match stamp["health"].as_str() {
                Some(health) => format!(
                    "{health} ({}/{} nodes)",
                    stamp["nodes_healthy"], stamp["nodes_total"]
                ),
                None => "-".into(),
            },
        );
    }
}

fn print_nodes(report: &Value) {
    println!("\nNODES");
    println!(
        "  {:<20} {:<9} {:<18} {:<8} {:<22} {:<8} {:>12}",
        "name", "stamp", "kind", "rack", "addr", "health", "disk used"
    );
    for node in report["nodes"].as_array().into_iter().flatten() {
        println!(
            "  {:<20} {:<9} {:<18} {:<8} {:<22} {:<8} {:>12}",
            node["name"].as_str().unwrap_or(""),
            node["stamp"].as_str().unwrap_or("-"),
            node["kind"].as_str().unwrap_or(""),
            node["rack"].as_str().unwrap_or("-"),
            node["addr"].as_str().unwrap_or(""),
            yes_no(node["healthy"].as_bool().unwrap_or(false)),
            node["disk_used_bytes"]
                .as_u64()
                .map(|b| format!("{:.1} MiB", b as f64 / 1048576.0))
                .unwrap_or_default(),
        );
    }
}

/// The leaders of the partition manager and stream manager groups.
fn print_leaders(report: &Value) {
    let manager = &report["manager"];
    println!(
        "\nPARTITION MANAGER  leader member {}  term {}",
        text(&manager["leader_id"]),
        text(&manager["term"])
    );
    let stream_manager = &report["stream_manager"];
    println!(
        "STREAM MANAGER     leader member {}  term {}",
        text(&stream_manager["leader_id"]),
        text(&stream_manager["term"])
    );
}

fn print_ranges(report: &Value) {
    println!("\nRANGES");
    println!(
        "  {:<6} {:<24} {:<24} {:<14} {:<6}",
        "id", "low", "high", "owner", "epoch"
    );
    for range in report["ranges"].as_array().into_iter().flatten() {
        println!(
            "  {:<6} {:<24} {:<24} {:<14} {:<6}",
            text(&range["range_id"]),
            match text(&range["low"]).as_str() {
                "" => "-inf".to_string(),
                low => low.to_string(),
            },
            text(&range["high"]),
            text(&range["owner"]),
            text(&range["epoch"]),
        );
    }
}

/// Split, merge and move counts, and the newest few range events (`--json` has them all).
fn print_range_changes(report: &Value) {
    let manager = &report["manager"];
    println!(
        "\nRANGE CHANGES  splits {}  merges {}  moves {}",
        text(&manager["splits_total"]),
        text(&manager["merges_total"]),
        text(&manager["moves_total"])
    );
    let events = report["range_events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for event in events.iter().rev().take(10).rev() {
        let at_ms = event["at_ms"].as_i64().unwrap_or(0);
        let ago_s = (strata_util::now_ms() - at_ms).max(0) / 1_000;
        println!(
            "  {:>6}s ago  {:<7} {}",
            ago_s,
            text(&event["kind"]),
            text(&event["detail"])
        );
    }
}

fn print_extents(report: &Value) {
    println!(
        "\nEXTENTS  total {}  under-replicated {}",
        text(&report["extents_total"]),
        text(&report["extents_under_replicated"])
    );
    println!(
        "  {:<8} {:<28} {:<7} {:<12} {:<9} racks",
        "id", "stream", "sealed", "length", "replicas"
    );
    for extent in report["extents"].as_array().into_iter().flatten() {
        let racks: Vec<&str> = extent["racks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        println!(
            "  {:<8} {:<28} {:<7} {:<12} {:<9} {}",
            text(&extent["extent_id"]),
            text(&extent["stream"]),
            text(&extent["sealed"]),
            text(&extent["length"]),
            format!("{}/{}", extent["replicas_healthy"], extent["replicas"]),
            racks.join(","),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::show_key;

    #[test]
    fn keys_show_readably() {
        assert_eq!(show_key(b"ophotos\0a b"), "ophotos\\x00a b");
        assert_eq!(show_key(b""), "");
    }
}
