//! The processes of a local stamp: started in dependency order, stopped in reverse, and acted
//! on one at a time (kill, stop, start, pause, resume) for fault injection.
//!
//! Invariant: every node process `strata up` started is tracked here until it exits, and
//! `running.json` names each node's current pid (0 while it is down).

use crate::layout::{NodeKind, NodeSpec, RunningNode, RunningStamp};
use crate::probe;
use crate::up::{Launcher, Spawned};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::process::Child;

/// Time a node gets to exit after SIGTERM before it is killed.
const STOP_GRACE_MS: u64 = 20_000;
/// How often exits are looked for.
const SUPERVISE_INTERVAL_MS: u64 = 500;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NodeAction {
    /// SIGKILL: the node dies at once, as in a crash.
    Kill,
    /// SIGTERM: the node stops cleanly.
    Stop,
    /// Start a node that is down, with the same identity, data and addresses.
    Start,
    /// SIGSTOP: the node freezes (its peers see it silent, its sockets stay open).
    Pause,
    /// SIGCONT: a paused node goes on.
    Resume,
}

/// One node as the supervisor sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeReport {
    pub name: String,
    pub kind: NodeKind,
    pub pid: u32,
    pub running: bool,
    pub paused: bool,
}

struct Slot {
    spec: NodeSpec,
    child: Option<Child>,
    data_dir: PathBuf,
    log_file: PathBuf,
    paused: bool,
}

impl Slot {
    fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    fn report(&self) -> NodeReport {
        NodeReport {
            name: self.spec.name.clone(),
            kind: self.spec.kind,
            pid: self.pid().unwrap_or(0),
            running: self.child.is_some(),
            paused: self.paused,
        }
    }

    fn signal(&self, signal: Signal) {
        if let Some(pid) = self.pid() {
            let _ = kill(Pid::from_raw(pid as i32), signal);
        }
    }

    /// SIGTERM (or SIGKILL when `force`), then waits for the exit.
    async fn stop(&mut self, force: bool) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if self.paused {
            // A stopped process cannot act on SIGTERM.
            self.signal_child(&child, Signal::SIGCONT);
            self.paused = false;
        }
        if force {
            let _ = child.kill().await;
            return;
        }
        self.signal_child(&child, Signal::SIGTERM);
        if tokio::time::timeout(Duration::from_millis(STOP_GRACE_MS), child.wait())
            .await
            .is_err()
        {
            eprintln!(
                "strata: {} did not stop in time; killing it",
                self.spec.name
            );
            let _ = child.kill().await;
        }
    }

    fn signal_child(&self, child: &Child, signal: Signal) {
        if let Some(pid) = child.id() {
            let _ = kill(Pid::from_raw(pid as i32), signal);
        }
    }

    fn install(&mut self, spawned: Spawned) {
        self.child = Some(spawned.child);
        self.data_dir = spawned.data_dir;
        self.log_file = spawned.log_file;
        self.paused = false;
    }
}

pub struct Supervisor {
    launcher: Launcher,
    slots: tokio::sync::Mutex<Vec<Slot>>,
    control_addr: tokio::sync::Mutex<String>,
}

impl Supervisor {
    pub(crate) fn new(launcher: Launcher) -> Self {
        let slots = launcher
            .layout
            .nodes
            .iter()
            .map(|spec| Slot {
                spec: spec.clone(),
                child: None,
                data_dir: PathBuf::new(),
                log_file: PathBuf::new(),
                paused: false,
            })
            .collect();
        Self {
            launcher,
            slots: tokio::sync::Mutex::new(slots),
            control_addr: tokio::sync::Mutex::new(String::new()),
        }
    }

    pub async fn set_control_addr(&self, addr: String) {
        *self.control_addr.lock().await = addr;
    }

    /// Starts every node in layout (dependency) order, in two waves: first the location
    /// service and the stream layer, and only once every extent node has registered with the
    /// stream manager the partition layer and the front-end. Why: a partition server asks for
    /// its first extents as soon as it owns a range; started together, the stream manager may
    /// know only two racks' nodes then, and the first extents land on two racks until repair
    /// moves them.
    pub async fn start_all(&self, deadline: Instant) -> anyhow::Result<()> {
        self.start_kinds(Self::is_storage_kind).await?;
        self.wait_healthy_where(deadline, Self::is_storage_kind)
            .await?;
        self.wait_extent_nodes_registered(deadline).await?;
        self.start_kinds(|kind| !Self::is_storage_kind(kind)).await
    }

    fn is_storage_kind(kind: NodeKind) -> bool {
        matches!(
            kind,
            NodeKind::Location | NodeKind::StreamManager | NodeKind::ExtentNode
        )
    }

    async fn start_kinds(&self, wanted: impl Fn(NodeKind) -> bool) -> anyhow::Result<()> {
        let mut slots = self.slots.lock().await;
        for slot in slots.iter_mut().filter(|s| wanted(s.spec.kind)) {
            let spawned = self.launcher.spawn(&slot.spec)?;
            slot.install(spawned);
        }
        self.write_running(&slots).await
    }

    /// Waits until, on every stamp, some stream manager member counts every extent node of
    /// that stamp as healthy (only the leader hears heartbeats, so any member's count that
    /// reaches it will do).
    async fn wait_extent_nodes_registered(&self, deadline: Instant) -> anyhow::Result<()> {
        let layout = &self.launcher.layout;
        for stamp in layout.stamps() {
            let view = layout.view(&stamp);
            let wanted = view.of_kind(NodeKind::ExtentNode).count() as u64;
            let managers: Vec<String> = view
                .of_kind(NodeKind::StreamManager)
                .map(|n| n.http_addr.clone())
                .collect();
            'stamp: loop {
                for addr in &managers {
                    if probe::stream_manager_nodes_healthy(addr).await >= Some(wanted) {
                        break 'stamp;
                    }
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "the stream manager of {stamp} did not see all {wanted} extent nodes in time"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Waits until every node answers its health check.
    pub async fn wait_healthy(&self, deadline: Instant) -> anyhow::Result<()> {
        self.wait_healthy_where(deadline, |_| true).await
    }

    async fn wait_healthy_where(
        &self,
        deadline: Instant,
        wanted: impl Fn(NodeKind) -> bool,
    ) -> anyhow::Result<()> {
        let nodes: Vec<(String, String, PathBuf)> = {
            let slots = self.slots.lock().await;
            slots
                .iter()
                .filter(|s| wanted(s.spec.kind))
                .map(|s| {
                    (
                        s.spec.name.clone(),
                        s.spec.http_addr.clone(),
                        s.log_file.clone(),
                    )
                })
                .collect()
        };
        for (name, http_addr, log_file) in nodes {
            while !probe::healthy(&http_addr).await {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "{name} did not become healthy; see {}",
                    log_file.display()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Carries out one action on one node.
    pub async fn act(&self, name: &str, action: NodeAction) -> anyhow::Result<NodeReport> {
        let mut slots = self.slots.lock().await;
        let slot = slots
            .iter_mut()
            .find(|s| s.spec.name == name)
            .ok_or_else(|| anyhow::anyhow!("no node named {name:?}"))?;
        match action {
            NodeAction::Kill => slot.stop(true).await,
            NodeAction::Stop => slot.stop(false).await,
            NodeAction::Start => {
                anyhow::ensure!(slot.child.is_none(), "{name} is running already");
                let spawned = self.launcher.spawn(&slot.spec)?;
                slot.install(spawned);
            }
            NodeAction::Pause => {
                anyhow::ensure!(slot.child.is_some(), "{name} is not running");
                slot.signal(Signal::SIGSTOP);
                slot.paused = true;
            }
            NodeAction::Resume => {
                anyhow::ensure!(slot.child.is_some(), "{name} is not running");
                slot.signal(Signal::SIGCONT);
                slot.paused = false;
            }
        }
        eprintln!("strata: node {name}: {action:?}");
        let report = slot.report();
        self.write_running(&slots).await?;
        Ok(report)
    }

    pub async fn nodes(&self) -> Vec<NodeReport> {
        self.slots.lock().await.iter().map(Slot::report).collect()
    }

    /// Reports nodes that exit on their own, until a stop signal arrives.
    pub async fn supervise(&self) {
        let signal = strata_util::shutdown::wait_for_signal();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                _ = &mut signal => return,
                _ = tokio::time::sleep(Duration::from_millis(SUPERVISE_INTERVAL_MS)) => {}
            }
            let mut slots = self.slots.lock().await;
            let mut changed = false;
            for slot in slots.iter_mut() {
                let exited = match slot.child.as_mut().map(Child::try_wait) {
                    Some(Ok(Some(status))) => Some(status),
                    _ => None,
                };
                if let Some(status) = exited {
                    slot.child = None;
                    changed = true;
                    eprintln!(
                        "strata: node {} exited ({status}); see {}",
                        slot.spec.name,
                        slot.log_file.display()
                    );
                }
            }
            if changed {
                if let Err(err) = self.write_running(&slots).await {
                    eprintln!("strata: updating running.json failed: {err:#}");
                }
            }
        }
    }

    /// Stops every node in reverse start order: front-end first, stream layer last.
    pub async fn stop_all(&self) {
        let mut slots = self.slots.lock().await;
        for slot in slots.iter_mut().rev() {
            slot.stop(false).await;
        }
    }

    async fn write_running(&self, slots: &[Slot]) -> anyhow::Result<()> {
        let layout = &self.launcher.layout;
        let scheme = if self.launcher.args.tls {
            "https"
        } else {
            "http"
        };
        let endpoints: std::collections::BTreeMap<String, String> =
            layout.s3_endpoints(scheme).into_iter().collect();
        let running = RunningStamp {
            pid: std::process::id(),
            endpoint: endpoints.get(&layout.stamp).cloned().unwrap_or_default(),
            endpoints,
            access_key: self.launcher.creds.access_key.clone(),
            control_addr: self.control_addr.lock().await.clone(),
            mtls: self.launcher.args.mtls,
            nodes: slots
                .iter()
                .map(|slot| RunningNode {
                    spec: slot.spec.clone(),
                    pid: slot.pid().unwrap_or(0),
                    data_dir: slot.data_dir.clone(),
                    log_file: slot.log_file.clone(),
                })
                .collect(),
        };
        strata_util::files::write_durably(
            &RunningStamp::path(&self.launcher.args.data_dir),
            &serde_json::to_vec_pretty(&running)?,
        )?;
        Ok(())
    }
}
