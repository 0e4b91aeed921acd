//! The shape of a local deployment, persisted as `<data-dir>/stamp.json` (format version 2: the
//! stream manager became a 3-member Raft group; version 1 had one stream manager).
//!
//! A deployment is one location group and one or more stamps (`strata up --stamps N`). Stamp
//! `k` is named `stamp-k`; its nodes are named as in a one-stamp deployment, prefixed `sk-`
//! from the second stamp on (so a one-stamp layout, and stamp-1 of any, keeps the names it
//! always had), and its front-end serves S3 on the first stamp's port + k - 1. Layouts written
//! before there were several stamps name no stamp on their nodes: all of them belong to the
//! layout's `stamp`.

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
    /// The stamp the node belongs to; None for location members (they serve every stamp) and
    /// in layouts written before there were several stamps (see [`Layout::stamp_of`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<String>,
    /// gRPC (or, for the front-end, S3 HTTP) address.
    pub addr: String,
    /// Admin HTTP address (/health, /metrics).
    pub http_addr: String,
    /// Front-ends: the link other stamps' front-ends forward over (mutual TLS,
    /// crates/frontend/src/link.rs); absent in layouts written before links, whose front-ends
    /// are forwarded to on their S3 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_addr: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Layout {
    pub version: u32,
    /// The first stamp (the only one of layouts written before there were several).
    pub stamp: String,
    pub nodes: Vec<NodeSpec>,
    /// Each stamp's region (what its front-ends report and GetBucketLocation answers); a
    /// stamp not named here is in [`DEFAULT_REGION`].
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub regions: std::collections::BTreeMap<String, String>,
}

/// The region of a stamp no one placed.
pub const DEFAULT_REGION: &str = "us-east-1";

/// What `strata up` writes while running, so `strata status` can find the stamp.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunningStamp {
    pub pid: u32,
    pub endpoint: String,
    pub access_key: String,
    /// Every stamp's S3 endpoint, by stamp name (`endpoint` is the first stamp's).
    #[serde(default)]
    pub endpoints: std::collections::BTreeMap<String, String>,
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

/// Most stamps one `strata up` runs (each is about 20 processes).
pub const STAMPS_MAX: usize = 8;

/// How big a deployment to lay out: `stamps` stamps of the same shape.
#[derive(Clone, Debug)]
pub struct Shape {
    pub stamps: usize,
    pub racks: usize,
    pub extent_nodes_per_rack: usize,
    pub partition_servers: usize,
    pub managers: usize,
    pub stream_managers: usize,
    /// Members of the location group.
    pub locations: usize,
    /// The first stamp's S3 port on 127.0.0.1; stamp k serves on this + k - 1.
    pub s3_port: u16,
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
/// Ports in `taken` (a layout's nodes that are not running yet) are not drawn.
fn free_ports(count: usize, taken: &[u16]) -> anyhow::Result<Vec<u16>> {
    let mut held = Vec::with_capacity(count);
    for _ in 0..PORT_DRAWS_MAX {
        if held.len() == count {
            break;
        }
        let port = rand::Rng::gen_range(&mut rand::thread_rng(), NODE_PORTS);
        if taken.contains(&port) {
            continue;
        }
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

/// What a node is before it gets ports.
struct Planned {
    kind: NodeKind,
    name: String,
    rack: Option<String>,
    member_id: Option<u64>,
    stamp: Option<String>,
}

/// The name of stamp `k` (1-based).
pub fn stamp_name(k: usize) -> String {
    format!("stamp-{k}")
}

/// The nodes of stamp `k`, in start order.
fn plan_stamp(shape: &Shape, k: usize) -> Vec<Planned> {
    let prefix = if k == 1 {
        String::new()
    } else {
        format!("s{k}-")
    };
    let stamp = Some(stamp_name(k));
    let mut planned = Vec::new();
    let mut plan = |kind, name: String, rack: Option<String>, member_id: Option<u64>| {
        planned.push(Planned {
            kind,
            name: format!("{prefix}{name}"),
            rack,
            member_id,
            stamp: stamp.clone(),
        })
    };
    for member in 1..=shape.stream_managers as u64 {
        let name = format!("stream-manager-{member}");
        plan(NodeKind::StreamManager, name, None, Some(member));
    }
    for rack in 1..=shape.racks {
        for node in 1..=shape.extent_nodes_per_rack {
            let name = format!("extent-r{rack}-{node}");
            plan(
                NodeKind::ExtentNode,
                name,
                Some(format!("rack-{rack}")),
                None,
            );
        }
    }
    for member in 1..=shape.managers as u64 {
        plan(
            NodeKind::PartitionManager,
            format!("manager-{member}"),
            None,
            Some(member),
        );
    }
    for server in 1..=shape.partition_servers {
        plan(
            NodeKind::PartitionServer,
            format!("partition-{server}"),
            None,
            None,
        );
    }
    plan(NodeKind::Frontend, "frontend".into(), None, None);
    planned
}

impl Layout {
    /// A new deployment: the location group and `shape.stamps` stamps.
    pub fn new(shape: &Shape) -> anyhow::Result<Layout> {
        let mut layout = Layout {
            version: LAYOUT_VERSION,
            stamp: stamp_name(1),
            nodes: Vec::new(),
            regions: Default::default(),
        };
        let locations = (1..=shape.locations as u64)
            .map(|member| Planned {
                kind: NodeKind::Location,
                name: format!("location-{member}"),
                rack: None,
                member_id: Some(member),
                stamp: None,
            })
            .collect();
        layout.add(locations, shape)?;
        layout.grow_to(shape)?;
        Ok(layout)
    }

    /// Adds stamps until there are `shape.stamps` (existing nodes keep their names and ports).
    pub fn grow_to(&mut self, shape: &Shape) -> anyhow::Result<()> {
        let have = self.stamps().len();
        anyhow::ensure!(
            (1..=STAMPS_MAX).contains(&shape.stamps),
            "--stamps must be 1 to {STAMPS_MAX}"
        );
        anyhow::ensure!(
            shape.stamps >= have,
            "this deployment has {have} stamps; a stamp leaves by being drained, not by --stamps"
        );
        for k in have + 1..=shape.stamps {
            self.add(plan_stamp(shape, k), shape)?;
        }
        Ok(())
    }

    /// Gives `planned` ports no node of the layout has, and adds them.
    fn add(&mut self, planned: Vec<Planned>, shape: &Shape) -> anyhow::Result<()> {
        let taken: Vec<u16> = self
            .nodes
            .iter()
            .flat_map(|n| [Some(&n.addr), Some(&n.http_addr), n.link_addr.as_ref()])
            .flatten()
            .filter_map(|addr| addr.rsplit_once(':')?.1.parse().ok())
            .collect();
        let mut ports = free_ports(planned.len() * 2, &taken)?.into_iter();
        for node in planned {
            let grpc_port = ports.next().expect("two ports per node were reserved");
            let http_port = ports.next().expect("two ports per node were reserved");
            let addr = match (&node.stamp, node.kind) {
                (Some(stamp), NodeKind::Frontend) => {
                    format!("127.0.0.1:{}", s3_port(shape.s3_port, stamp)?)
                }
                _ => format!("127.0.0.1:{grpc_port}"),
            };
            self.nodes.push(NodeSpec {
                kind: node.kind,
                name: node.name,
                rack: node.rack,
                member_id: node.member_id,
                stamp: node.stamp,
                addr,
                http_addr: format!("127.0.0.1:{http_port}"),
                // A front-end's gRPC port is free (it serves S3 on `addr`): its link takes it.
                link_addr: (node.kind == NodeKind::Frontend)
                    .then(|| format!("127.0.0.1:{grpc_port}")),
            });
        }
        Ok(())
    }

    /// The stamp `node` belongs to (None: a location member).
    pub fn stamp_of<'a>(&'a self, node: &'a NodeSpec) -> Option<&'a str> {
        match node.kind {
            NodeKind::Location => None,
            _ => Some(node.stamp.as_deref().unwrap_or(&self.stamp)),
        }
    }

    /// The stamps, in the order their nodes appear (the first is `self.stamp`).
    pub fn stamps(&self) -> Vec<String> {
        let mut stamps: Vec<String> = Vec::new();
        for node in &self.nodes {
            if let Some(stamp) = self.stamp_of(node) {
                if !stamps.iter().any(|known| known == stamp) {
                    stamps.push(stamp.to_string());
                }
            }
        }
        stamps
    }

    /// One stamp's nodes and the location group: what that stamp's nodes are started with,
    /// and what `strata status` reports on for it.
    pub fn view(&self, stamp: &str) -> Layout {
        Layout {
            version: self.version,
            regions: self.regions.clone(),
            stamp: stamp.to_string(),
            nodes: self
                .nodes
                .iter()
                .filter(|n| self.stamp_of(n).is_none_or(|own| own == stamp))
                .cloned()
                .collect(),
        }
    }

    /// Each stamp's S3 endpoint (`<scheme>://<its front-end>`), in stamp order.
    pub fn s3_endpoints(&self, scheme: &str) -> Vec<(String, String)> {
        self.stamps()
            .into_iter()
            .map(|stamp| {
                let addr = self.view(&stamp).addrs_of(NodeKind::Frontend);
                (stamp, format!("{scheme}://{addr}"))
            })
            .collect()
    }

    /// The region of `stamp`.
    pub fn region_of(&self, stamp: &str) -> &str {
        self.regions
            .get(stamp)
            .map_or(DEFAULT_REGION, String::as_str)
    }

    /// Places the stamps in `regions`, first stamp first (one region: every stamp). A stamp
    /// of `running_before` (it may hold buckets) keeps the region it has: it must be given
    /// that one.
    pub fn set_regions(
        &mut self,
        regions: &[String],
        running_before: &[String],
    ) -> anyhow::Result<()> {
        let stamps = self.stamps();
        anyhow::ensure!(
            regions.len() == 1 || regions.len() == stamps.len(),
            "--regions names one region, or one per stamp ({} stamps)",
            stamps.len()
        );
        for (i, stamp) in stamps.iter().enumerate() {
            let region = &regions[i.min(regions.len() - 1)];
            anyhow::ensure!(
                !region.is_empty() && region.len() <= 64,
                "{region:?} is not a region name"
            );
            let had = self.region_of(stamp);
            anyhow::ensure!(
                !running_before.contains(stamp) || had == region,
                "{stamp} is in region {had}; a stamp does not change region (move its buckets instead)"
            );
            self.regions.insert(stamp.clone(), region.clone());
        }
        Ok(())
    }

    /// Moves every front-end to the S3 port of its stamp given the first stamp's port (the
    /// S3 port may change between two `strata up`; the internal ports do not).
    pub fn set_s3_port(&mut self, first_port: u16) -> anyhow::Result<()> {
        let stamps: Vec<Option<String>> = self
            .nodes
            .iter()
            .map(|n| self.stamp_of(n).map(str::to_string))
            .collect();
        for (node, stamp) in self.nodes.iter_mut().zip(stamps) {
            if let (NodeKind::Frontend, Some(stamp)) = (node.kind, stamp) {
                node.addr = format!("127.0.0.1:{}", s3_port(first_port, &stamp)?);
            }
        }
        Ok(())
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

/// The S3 port of `stamp` (`stamp-k`) when the first stamp serves on `first_port`.
fn s3_port(first_port: u16, stamp: &str) -> anyhow::Result<u16> {
    let k: u16 = stamp
        .strip_prefix("stamp-")
        .and_then(|k| k.parse().ok())
        .filter(|k| *k >= 1)
        .ok_or_else(|| anyhow::anyhow!("stamp {stamp:?} is not named stamp-<k>"))?;
    first_port
        .checked_add(k - 1)
        .ok_or_else(|| anyhow::anyhow!("no S3 port for {stamp} above {first_port}"))
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

    fn shape(stamps: usize) -> Shape {
        Shape {
            stamps,
            racks: 3,
            extent_nodes_per_rack: 2,
            partition_servers: 2,
            managers: 3,
            stream_managers: 3,
            locations: 3,
            s3_port: 9000,
        }
    }

    #[test]
    fn stamps_have_their_own_nodes_unique_names_and_one_location_group() {
        let mut layout = Layout::new(&shape(2)).unwrap();
        assert_eq!(layout.stamps(), ["stamp-1", "stamp-2"]);
        let names: std::collections::BTreeSet<_> = layout.nodes.iter().map(|n| &n.name).collect();
        assert_eq!(names.len(), layout.nodes.len(), "names are unique");
        assert_eq!(layout.of_kind(NodeKind::Location).count(), 3);
        for (stamp, frontend, port) in [
            ("stamp-1", "frontend", 9000),
            ("stamp-2", "s2-frontend", 9001),
        ] {
            let view = layout.view(stamp);
            assert_eq!(view.of_kind(NodeKind::Location).count(), 3, "{stamp}");
            assert_eq!(view.of_kind(NodeKind::ExtentNode).count(), 6, "{stamp}");
            assert_eq!(
                view.members_of(NodeKind::StreamManager).split(',').count(),
                3
            );
            let fe: Vec<_> = view.of_kind(NodeKind::Frontend).collect();
            assert_eq!((fe.len(), fe[0].name.as_str()), (1, frontend));
            assert_eq!(fe[0].addr, format!("127.0.0.1:{port}"));
        }
        let ports: std::collections::BTreeSet<_> = layout
            .nodes
            .iter()
            .flat_map(|n| [Some(&n.addr), Some(&n.http_addr), n.link_addr.as_ref()])
            .flatten()
            .collect();
        let front_ends = layout.of_kind(NodeKind::Frontend).count();
        assert!(layout
            .of_kind(NodeKind::Frontend)
            .all(|fe| fe.link_addr.is_some()));
        assert_eq!(
            ports.len(),
            layout.nodes.len() * 2 + front_ends,
            "every address (links included) is its own"
        );

        // A third stamp joins; the others keep their nodes; stamps are not removed by shape.
        let before = layout.nodes.len();
        layout.grow_to(&shape(3)).unwrap();
        assert_eq!(layout.stamps().len(), 3);
        assert_eq!(layout.nodes.len(), before + (before - 3) / 2);
        assert!(layout.grow_to(&shape(1)).is_err());
        layout.set_s3_port(7000).unwrap();
        let before = layout.stamps();
        layout
            .set_regions(
                &["us-east-1".into(), "us-east-1".into(), "eu-west-1".into()],
                &before[..2],
            )
            .unwrap();
        assert_eq!(layout.region_of("stamp-3"), "eu-west-1");
        assert!(
            layout.set_regions(&["eu-west-2".into()], &before).is_err(),
            "a stamp that ran keeps its region"
        );
        assert!(
            layout.set_regions(&["a".into(), "b".into()], &[]).is_err(),
            "one or one each"
        );
        let s3: Vec<_> = layout
            .of_kind(NodeKind::Frontend)
            .map(|n| n.addr.as_str())
            .collect();
        assert_eq!(s3, ["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"]);
    }

    #[test]
    fn a_layout_of_one_stamp_written_before_stamps_were_named_stays_one_stamp() {
        let mut layout = Layout::new(&shape(1)).unwrap();
        for node in &mut layout.nodes {
            node.stamp = None;
        }
        assert_eq!(layout.stamps(), ["stamp-1"]);
        assert_eq!(layout.view("stamp-1").nodes.len(), layout.nodes.len());
    }

    #[test]
    fn layout_has_three_racks_and_round_trips() {
        let layout = Layout::new(&shape(1)).unwrap();
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
