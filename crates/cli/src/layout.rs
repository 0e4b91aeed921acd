//! The shape of a local stamp, persisted as `<data-dir>/stamp.json` (format version 2: the
//! stream manager became a 3-member Raft group; version 1 had one stream manager).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const LAYOUT_VERSION: u32 = 2;

/// Kinds of node, in start order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum NodeKind {
    Location,
    StreamManager,
    ExtentNode,
    PartitionManager,
    PartitionServer,
    Frontend,
}

impl NodeKind {
    pub fn binary(self) -> &'static str {
        match self {
            NodeKind::Location => "strata-location",
            NodeKind::StreamManager => "strata-stream-manager",
            NodeKind::ExtentNode => "strata-extent-node",
            NodeKind::PartitionManager => "strata-partition-manager",
            NodeKind::PartitionServer => "strata-partition-server",
            NodeKind::Frontend => "strata-frontend",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeSpec {
    pub kind: NodeKind,
    /// Unique within the stamp, e.g. "extent-r1-2".
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    /// Raft member id (location, partition-manager and stream-manager members; a layout
    /// written before the location group had one location node without one: member 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<u64>,
    /// gRPC (or, for the front-end, S3 HTTP) address.
    pub addr: String,
    /// Admin HTTP address (/health, /metrics).
    pub http_addr: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Layout {
    pub version: u32,
    pub stamp: String,
    pub nodes: Vec<NodeSpec>,
}

/// What `strata up` writes while running, so `strata status` can find the stamp.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunningStamp {
    pub pid: u32,
    pub endpoint: String,
    pub access_key: String,
    /// Loopback address of `strata up`'s control endpoint (`strata node ...`).
    #[serde(default)]
    pub control_addr: String,
    /// Whether the nodes run mutual TLS (the default of `strata up`; `--no-mtls` turns it off): then other commands reach them
    /// with the operator certificate.
    #[serde(default)]
    pub mtls: bool,
    pub nodes: Vec<RunningNode>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunningNode {
    #[serde(flatten)]
    pub spec: NodeSpec,
    pub pid: u32,
    pub data_dir: PathBuf,
    pub log_file: PathBuf,
}

/// How big a stamp to lay out.
#[derive(Clone, Debug)]
pub struct Shape {
    pub racks: usize,
    pub extent_nodes_per_rack: usize,
    pub partition_servers: usize,
    pub managers: usize,
    pub stream_managers: usize,
    /// Members of the location group.
    pub locations: usize,
    pub s3_addr: String,
}

/// Ports for a stamp's nodes are drawn from here: below Linux's default ephemeral range
/// (32768-60999), which outgoing connections use, so a port chosen now is not taken by some
/// client socket before the node binds it.
const NODE_PORTS: std::ops::Range<u16> = 20_000..32_000;
/// Draws before giving up (a machine with most of the range in use).
const PORT_DRAWS_MAX: usize = 10_000;

/// Reserves `count` distinct free loopback ports. The sockets are closed before the nodes bind
/// them: a short window in which another process could take one; the node then fails to start
/// and says so, rather than anything being silently shared.
fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let mut held = Vec::with_capacity(count);
    for _ in 0..PORT_DRAWS_MAX {
        if held.len() == count {
            break;
        }
        let port = rand::Rng::gen_range(&mut rand::thread_rng(), NODE_PORTS);
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
        }
    }
    anyhow::ensure!(
        held.len() == count,
        "could not find {count} free ports in {NODE_PORTS:?}"
    );
    held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

impl Layout {
    pub fn new(shape: &Shape) -> anyhow::Result<Layout> {
        let mut specs: Vec<(NodeKind, String, Option<String>, Option<u64>)> = Vec::new();
        for member in 1..=shape.locations as u64 {
            specs.push((
                NodeKind::Location,
                format!("location-{member}"),
                None,
                Some(member),
            ));
        }
        for member in 1..=shape.stream_managers as u64 {
            specs.push((
                NodeKind::StreamManager,
                format!("stream-manager-{member}"),
                None,
                Some(member),
            ));
        }
        for rack in 1..=shape.racks {
            for node in 1..=shape.extent_nodes_per_rack {
                specs.push((
                    NodeKind::ExtentNode,
                    format!("extent-r{rack}-{node}"),
                    Some(format!("rack-{rack}")),
                    None,
                ));
            }
        }
        for member in 1..=shape.managers as u64 {
            specs.push((
                NodeKind::PartitionManager,
                format!("manager-{member}"),
                None,
                Some(member),
            ));
        }
        for server in 1..=shape.partition_servers {
            specs.push((
                NodeKind::PartitionServer,
                format!("partition-{server}"),
                None,
                None,
            ));
        }
        specs.push((NodeKind::Frontend, "frontend".into(), None, None));

        let mut ports = free_ports(specs.len() * 2)?.into_iter();
        let mut nodes = Vec::with_capacity(specs.len());
        for (kind, name, rack, member_id) in specs {
            let grpc_port = ports.next().expect("two ports per node were reserved");
            let http_port = ports.next().expect("two ports per node were reserved");
            let addr = if kind == NodeKind::Frontend {
                shape.s3_addr.clone()
            } else {
                format!("127.0.0.1:{grpc_port}")
            };
            nodes.push(NodeSpec {
                kind,
                name,
                rack,
                member_id,
                addr,
                http_addr: format!("127.0.0.1:{http_port}"),
            });
        }
        Ok(Layout {
            version: LAYOUT_VERSION,
            stamp: "stamp-1".into(),
            nodes,
        })
    }

    pub fn load(data_dir: &Path) -> anyhow::Result<Option<Layout>> {
        let path = data_dir.join("stamp.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let layout: Layout = serde_json::from_str(&text)
            .map_err(|err| anyhow::anyhow!("{} is not a stamp layout: {err}", path.display()))?;
        anyhow::ensure!(
            layout.version == LAYOUT_VERSION,
            "{} has layout version {}, this strata understands {LAYOUT_VERSION}; \
             start this version with a fresh --data-dir",
            path.display(),
            layout.version
        );
        Ok(Some(layout))
    }

    pub fn save(&self, data_dir: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_vec_pretty(self)?;
        strata_util::files::write_durably(&data_dir.join("stamp.json"), &text)?;
        Ok(())
    }

    pub fn of_kind(&self, kind: NodeKind) -> impl Iterator<Item = &NodeSpec> {
        self.nodes.iter().filter(move |n| n.kind == kind)
    }

    pub fn addrs_of(&self, kind: NodeKind) -> String {
        self.of_kind(kind)
            .map(|n| n.addr.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `1=addr,2=addr,3=addr` for a Raft group's `--members` (location, partition or stream
    /// managers).
    pub fn members_of(&self, kind: NodeKind) -> String {
        self.of_kind(kind)
            .map(|n| format!("{}={}", n.member_id.unwrap_or(1), n.addr))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl RunningStamp {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("running.json")
    }

    pub fn load(data_dir: &Path) -> anyhow::Result<RunningStamp> {
        let path = Self::path(data_dir);
        let text = std::fs::read_to_string(&path).map_err(|err| {
            anyhow::anyhow!(
                "no running stamp found in {} ({err}); start one with `strata up`",
                data_dir.display()
            )
        })?;
        Ok(serde_json::from_str(&text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_has_three_racks_and_round_trips() {
        let shape = Shape {
            racks: 3,
            extent_nodes_per_rack: 2,
            partition_servers: 2,
            managers: 3,
            stream_managers: 3,
            locations: 3,
            s3_addr: "127.0.0.1:9000".into(),
        };
        let layout = Layout::new(&shape).unwrap();
        let racks: std::collections::BTreeSet<_> = layout
            .of_kind(NodeKind::ExtentNode)
            .filter_map(|n| n.rack.clone())
            .collect();
        assert_eq!(racks.len(), 3);
        assert_eq!(layout.of_kind(NodeKind::ExtentNode).count(), 6);
        assert_eq!(
            layout.members_of(NodeKind::Location),
            layout
                .of_kind(NodeKind::Location)
                .enumerate()
                .map(|(i, n)| format!("{}={}", i + 1, n.addr))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(layout.of_kind(NodeKind::Location).count(), 3);
        assert_eq!(
            layout
                .members_of(NodeKind::PartitionManager)
                .split(',')
                .count(),
            3
        );
        assert_eq!(
            layout.members_of(NodeKind::StreamManager),
            layout
                .of_kind(NodeKind::StreamManager)
                .enumerate()
                .map(|(i, n)| format!("{}={}", i + 1, n.addr))
                .collect::<Vec<_>>()
                .join(",")
        );
        let addrs: std::collections::BTreeSet<_> =
            layout.nodes.iter().map(|n| n.http_addr.clone()).collect();
        assert_eq!(
            addrs.len(),
            layout.nodes.len(),
            "every node gets its own admin port"
        );

        let dir = tempfile::tempdir().unwrap();
        layout.save(dir.path()).unwrap();
        let loaded = Layout::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded.nodes.len(), layout.nodes.len());
        assert_eq!(loaded.nodes[5].addr, layout.nodes[5].addr);
    }
}
