//! The leader's assignment loop: creates the initial range, and gives every range without a
//! live owner to the live partition server with the fewest ranges.
//!
//! Safety does not depend on this loop being right: every proposal carries the epoch it was
//! computed from, and the state machine rejects it if the range changed meanwhile.

use crate::app::App;
use crate::error::ManagerError;
use crate::map::PartitionMapState;
use crate::types::{Command, CommandResponse};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_raft::group::Leadership;
use strata_types::{RangeId, ServerId};
use tokio_util::sync::CancellationToken;

/// Most proposals made in one pass (bounds the work per tick).
const PROPOSALS_PER_TICK_MAX: usize = 64;
/// A server silent this many server timeouts is forgotten (bounds the table).
const FORGET_AFTER_TIMEOUTS: u32 = 20;
/// The id of the range that covers every key before any split.
pub const INITIAL_RANGE_ID: RangeId = RangeId::new(1);

/// Runs until `token` is cancelled.
pub async fn run(app: Arc<App>, interval: Duration, token: CancellationToken) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(err) = tick(&app).await {
            tracing::warn!(%err, "assignment pass failed; retrying next tick");
        }
    }
}

/// Notes leadership changes; returns when this member's leadership began, if it leads.
fn observe_leadership(app: &App) -> Option<Instant> {
    let leadership = app.leadership.observe(&app.group);
    if let Some(m) = crate::metrics::metrics() {
        let metrics = app.metrics();
        m.is_leader
            .set(i64::from(matches!(leadership, Leadership::Leader { .. })));
        m.term
            .set(i64::try_from(metrics.current_term).unwrap_or(i64::MAX));
        m.map_version
            .set(i64::try_from(app.map().version).unwrap_or(i64::MAX));
    }
    match leadership {
        Leadership::Follower { just_lost } => {
            if just_lost {
                tracing::info!(
                    node_id = app.node_id,
                    "no longer the leader; forgetting server liveness"
                );
                app.servers().clear();
                app.loads().clear();
            }
            None
        }
        Leadership::Leader { since, just_gained } => {
            if just_gained {
                tracing::info!(
                    node_id = app.node_id,
                    term = app.metrics().current_term,
                    grace_ms = app.server_timeout.as_millis() as u64,
                    "became leader; waiting one server timeout before declaring servers dead"
                );
            }
            Some(since)
        }
    }
}

async fn tick(app: &App) -> Result<(), ManagerError> {
    let Some(leader_since) = observe_leadership(app) else {
        return Ok(());
    };
    if !app.is_ready_leader() {
        return Ok(());
    }
    let map = app.map();
    if map.ranges.is_empty() {
        let command = Command::CreateInitialRange {
            range_id: INITIAL_RANGE_ID,
            low: Vec::new(),
            high: Vec::new(),
        };
        let response = propose(app, command).await?;
        tracing::info!(?response, "proposed the initial range covering all keys");
        return Ok(());
    }
    let now = Instant::now();
    let alive: BTreeMap<String, String> = {
        let mut servers = app.servers();
        servers.forget_older_than(app.server_timeout * FORGET_AFTER_TIMEOUTS, now);
        servers.alive(app.server_timeout, now).into_iter().collect()
    };
    if let Some(m) = crate::metrics::metrics() {
        m.servers_alive.set(alive.len() as i64);
    }
    let grace_over = now.saturating_duration_since(leader_since) >= app.server_timeout;
    if let Some(m) = crate::metrics::metrics() {
        m.ranges.set(map.ranges.len() as i64);
    }
    let assignments = plan(&map, &alive, grace_over);
    let failover_pending = !assignments.is_empty();
    for (range_id, epoch, target_id, target_addr) in assignments {
        let previous = map
            .ranges
            .get(&range_id)
            .and_then(|range| range.owner.as_ref())
            .map(|owner| owner.server_id.to_string())
            .unwrap_or_else(|| "none".into());
        let command = Command::AssignRange {
            range_id,
            owner_id: ServerId::new(target_id.clone()),
            owner_addr: target_addr.clone(),
            expected_epoch: epoch,
            note: None,
        };
        match propose(app, command).await? {
            CommandResponse::RangeAssigned {
                epoch, map_version, ..
            } => {
                if let Some(m) = crate::metrics::metrics() {
                    m.assignments.inc();
                }
                tracing::info!(
                    %range_id,
                    from = %previous,
                    to = %target_id,
                    addr = %target_addr,
                    epoch = epoch.get(),
                    map_version,
                    "assigned range"
                );
            }
            other => tracing::info!(%range_id, ?other, "range assignment did not apply"),
        }
    }
    // Splits, merges and moves only once every range has a live owner, and only after the
    // grace period (a new leader first learns who is alive and how loaded ranges are).
    if failover_pending || !grace_over {
        return Ok(());
    }
    // Reservations of splits and merges abandoned by a failed-over leader: released, so the
    // streams prepared for them are deleted (reshapes run in this loop, one at a time, and
    // commit within seconds, so none in flight here is that old).
    let stale = map.stale_reservations(strata_util::now_ms());
    if !stale.is_empty() {
        crate::reshape::release(app, stale).await;
    }
    let action = {
        let mut loads = app.loads();
        loads.retain(|range_id| map.ranges.contains_key(&range_id));
        crate::planner::next_action(&map, &loads, &alive, &app.planner, Instant::now())
    };
    if let Some(action) = action {
        if let Err(err) = crate::reshape::execute(app, action).await {
            tracing::warn!(%err, "range change failed; the planner decides again next tick");
        }
    }
    Ok(())
}

/// Decides which ranges move where: (range, its current epoch, new owner id, new owner addr).
/// A range moves when it has no owner, or (after the leader's grace period) its owner is not
/// alive. The target is the alive server with the fewest ranges (ties by id).
pub fn plan(
    map: &PartitionMapState,
    alive: &BTreeMap<String, String>,
    grace_over: bool,
) -> Vec<(RangeId, strata_types::Epoch, String, String)> {
    if alive.is_empty() {
        return Vec::new();
    }
    let owned = map.ranges_per_owner();
    let mut load: BTreeMap<&str, usize> = alive
        .keys()
        .map(|id| {
            (
                id.as_str(),
                owned.get(&ServerId::new(id.clone())).copied().unwrap_or(0),
            )
        })
        .collect();
    let alive_ids: BTreeSet<&str> = alive.keys().map(String::as_str).collect();
    let mut moves = Vec::new();
    for range in map.ranges.values() {
        if moves.len() >= PROPOSALS_PER_TICK_MAX {
            break;
        }
        let needs_owner = match &range.owner {
            None => true,
            Some(owner) => grace_over && !alive_ids.contains(owner.server_id.as_str()),
        };
        if !needs_owner {
            continue;
        }
        let Some((&target, _)) = load.iter().min_by_key(|(id, count)| (**count, **id)) else {
            break;
        };
        if let Some(count) = load.get_mut(target) {
            *count += 1;
        }
        let addr = alive.get(target).cloned().unwrap_or_default();
        moves.push((range.range_id, range.epoch, target.to_string(), addr));
    }
    moves
}

/// Bound on one proposal (an election in between makes it fail; the next tick retries).
const PROPOSE_TIMEOUT_MS: u64 = 5_000;

async fn propose(app: &App, command: Command) -> Result<CommandResponse, ManagerError> {
    Ok(app.group.propose(command, PROPOSE_TIMEOUT_MS).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_with_owner(owner: Option<&str>) -> PartitionMapState {
        let mut map = PartitionMapState::default();
        map.apply(&Command::CreateInitialRange {
            range_id: INITIAL_RANGE_ID,
            low: vec![],
            high: vec![],
        });
        if let Some(owner) = owner {
            map.apply(&Command::AssignRange {
                range_id: INITIAL_RANGE_ID,
                owner_id: ServerId::new(owner),
                owner_addr: "x:1".into(),
                expected_epoch: strata_types::Epoch::ZERO,
                note: None,
            });
        }
        map
    }

    fn alive(ids: &[&str]) -> BTreeMap<String, String> {
        ids.iter()
            .map(|id| (id.to_string(), format!("{id}:1")))
            .collect()
    }

    #[test]
    fn unowned_ranges_go_to_a_live_server() {
        let moves = plan(&map_with_owner(None), &alive(&["b", "a"]), false);
        assert_eq!(moves.len(), 1);
        assert_eq!(moves[0].2, "a");
        assert!(plan(&map_with_owner(None), &alive(&[]), true).is_empty());
    }

    #[test]
    fn dead_owners_lose_ranges_only_after_the_grace_period() {
        let map = map_with_owner(Some("a"));
        assert!(plan(&map, &alive(&["b"]), false).is_empty());
        let moves = plan(&map, &alive(&["b"]), true);
        assert_eq!(moves[0].2, "b");
        assert_eq!(moves[0].1, strata_types::Epoch::new(1));
        assert!(plan(&map, &alive(&["a", "b"]), true).is_empty());
    }
}
