//! Carrying out the planner's decisions on the leader, one at a time.
//!
//! A move or renewal is one proposal (the new owner fences the old one when it loads the
//! range). A split or merge is: reserve fresh range ids; ask the owner to prepare
//! (`PrepareReshape`: it freezes the parents and builds the children's streams); commit the
//! new map. If the preparation or the commit fails, the parents are renewed (same owner, next
//! epoch) so their owner reloads them unfrozen; if this leader dies in between, the next one
//! sees the parents frozen in heartbeats and renews them (see [`crate::planner`]).

use crate::app::App;
use crate::error::ManagerError;
use crate::planner::Action;
use crate::types::{Command, CommandResponse, EventNote};
use strata_proto::partition::partition_server_client::PartitionServerClient;
use strata_proto::partition::{PrepareReshapeRequest, ReshapeChild, ReshapeParent};
use strata_types::{Epoch, RangeId, ServerId};

/// Bound on one preparation (the owner drains uploads for at most 5 s, then seals and
/// writes the children's checkpoints).
pub(crate) const PREPARE_TIMEOUT_MS: u64 = 20_000;
/// Bound on one proposal.
const PROPOSE_TIMEOUT_MS: u64 = 5_000;

fn note(kind: &str, detail: String) -> EventNote {
    EventNote {
        at_ms: strata_util::now_ms(),
        kind: kind.to_string(),
        detail,
    }
}

async fn propose(app: &App, command: Command) -> Result<CommandResponse, ManagerError> {
    Ok(app.group.propose(command, PROPOSE_TIMEOUT_MS).await?)
}

/// Carries out one action; logs what happened.
pub async fn execute(app: &App, action: Action) -> Result<(), ManagerError> {
    tracing::info!(?action, "carrying out a range change");
    match action {
        Action::Renew {
            range_id,
            epoch,
            owner_id,
            owner_addr,
            why,
        } => {
            let detail = format!("{range_id} on {owner_id}: {why}");
            assign(
                app,
                range_id,
                epoch,
                &owner_id,
                &owner_addr,
                note("renew", detail),
            )
            .await
        }
        Action::Move {
            range_id,
            epoch,
            to_id,
            to_addr,
            why,
        } => {
            let from = app
                .map()
                .ranges
                .get(&range_id)
                .and_then(|r| r.owner.as_ref())
                .map(|o| o.server_id.to_string())
                .unwrap_or_default();
            let detail = format!("{range_id} {from} -> {to_id}: {why}");
            if let Some(m) = crate::metrics::metrics() {
                m.moves.inc();
            }
            assign(app, range_id, epoch, &to_id, &to_addr, note("move", detail)).await
        }
        Action::Split {
            range_id,
            epoch,
            owner_addr,
            split_key,
            why,
        } => split(app, range_id, epoch, owner_addr, split_key, why).await,
        Action::Merge {
            left,
            right,
            owner_addr,
            why,
        } => merge(app, left, right, owner_addr, why).await,
    }
}

async fn assign(
    app: &App,
    range_id: RangeId,
    epoch: Epoch,
    owner_id: &str,
    owner_addr: &str,
    note: EventNote,
) -> Result<(), ManagerError> {
    let response = propose(
        app,
        Command::AssignRange {
            range_id,
            owner_id: ServerId::new(owner_id.to_string()),
            owner_addr: owner_addr.to_string(),
            expected_epoch: epoch,
            note: Some(note),
        },
    )
    .await?;
    tracing::info!(%range_id, ?response, "range assignment proposed");
    Ok(())
}

async fn reserve(app: &App, count: u64) -> Result<RangeId, ManagerError> {
    let at_ms = strata_util::now_ms();
    match propose(app, Command::ReserveRangeIds { count, at_ms }).await? {
        CommandResponse::RangeIdsReserved { first, .. } => Ok(first),
        other => Err(ManagerError::Internal(format!(
            "reserving range ids: {other:?}"
        ))),
    }
}

async fn prepare(
    app: &App,
    addr: &str,
    request: PrepareReshapeRequest,
) -> Result<Vec<u64>, ManagerError> {
    let channel = app
        .partition_servers
        .get(addr)
        .map_err(|err| ManagerError::Internal(format!("channel to {addr}: {err}")))?;
    let response = PartitionServerClient::new(channel)
        .prepare_reshape(request)
        .await
        .map_err(|status| ManagerError::Internal(format!("prepare on {addr}: {status}")))?;
    Ok(response.into_inner().child_keys)
}

/// Forgets the reserved `ids` of a split or merge that will not commit, so the partition
/// servers delete the streams prepared for them (see `ReleaseRangeIds`). Best effort: the
/// leader releases reservations older than `RESERVATION_KEPT_MS` in any case.
pub async fn release(app: &App, ids: Vec<RangeId>) {
    match propose(app, Command::ReleaseRangeIds { ids: ids.clone() }).await {
        Ok(response) => tracing::info!(?ids, ?response, "reserved range ids released"),
        Err(err) => tracing::warn!(?ids, %err, "releasing reserved range ids failed"),
    }
}

/// After a failed preparation or commit: the owner reloads the parents unfrozen.
async fn renew_all(app: &App, parents: &[(RangeId, Epoch)], why: &str) {
    let map = app.map();
    for (range_id, epoch) in parents {
        let Some(owner) = map.ranges.get(range_id).and_then(|r| r.owner.clone()) else {
            continue;
        };
        let detail = format!("{range_id} on {}: {why}", owner.server_id);
        if let Err(err) = assign(
            app,
            *range_id,
            *epoch,
            owner.server_id.as_str(),
            &owner.addr,
            note("renew", detail),
        )
        .await
        {
            tracing::warn!(%range_id, %err, "renewal failed; the planner retries it once the range reports frozen");
        }
    }
}

async fn split(
    app: &App,
    range_id: RangeId,
    epoch: Epoch,
    owner_addr: String,
    split_key: Vec<u8>,
    why: String,
) -> Result<(), ManagerError> {
    let Some(range) = app.map().ranges.get(&range_id).cloned() else {
        return Ok(());
    };
    let first = reserve(app, 2).await?;
    let (left_id, right_id) = (first, RangeId::new(first.get() + 1));
    let request = PrepareReshapeRequest {
        parents: vec![ReshapeParent {
            range_id: range_id.get(),
            epoch: epoch.get(),
        }],
        children: vec![
            ReshapeChild {
                range_id: left_id.get(),
                low: range.low.clone(),
                high: split_key.clone(),
            },
            ReshapeChild {
                range_id: right_id.get(),
                low: split_key.clone(),
                high: range.high.clone(),
            },
        ],
    };
    let child_keys = match prepare(app, &owner_addr, request).await {
        Ok(keys) => keys,
        Err(err) => {
            tracing::warn!(%range_id, %err, "split preparation failed");
            renew_all(app, &[(range_id, epoch)], "split preparation failed").await;
            release(app, vec![left_id, right_id]).await;
            return Err(err);
        }
    };
    let detail = format!(
        "{range_id} -> {left_id} ({} keys) + {right_id} ({} keys) at {}: {why}",
        child_keys.first().copied().unwrap_or(0),
        child_keys.get(1).copied().unwrap_or(0),
        strata_types::keys::display(&split_key),
    );
    let command = Command::SplitRange {
        range_id,
        expected_epoch: epoch,
        split_key,
        left_id,
        right_id,
        note: note("split", detail),
    };
    let children = [left_id, right_id];
    commit_reshape(app, command, &[(range_id, epoch)], &children, "split").await
}

async fn merge(
    app: &App,
    left: (RangeId, Epoch),
    right: (RangeId, Epoch),
    owner_addr: String,
    why: String,
) -> Result<(), ManagerError> {
    let map = app.map();
    let (Some(l), Some(r)) = (map.ranges.get(&left.0), map.ranges.get(&right.0)) else {
        return Ok(());
    };
    let merged_id = reserve(app, 1).await?;
    let request = PrepareReshapeRequest {
        parents: vec![
            ReshapeParent {
                range_id: left.0.get(),
                epoch: left.1.get(),
            },
            ReshapeParent {
                range_id: right.0.get(),
                epoch: right.1.get(),
            },
        ],
        children: vec![ReshapeChild {
            range_id: merged_id.get(),
            low: l.low.clone(),
            high: r.high.clone(),
        }],
    };
    let child_keys = match prepare(app, &owner_addr, request).await {
        Ok(keys) => keys,
        Err(err) => {
            tracing::warn!(left = %left.0, right = %right.0, %err, "merge preparation failed");
            renew_all(app, &[left, right], "merge preparation failed").await;
            release(app, vec![merged_id]).await;
            return Err(err);
        }
    };
    let detail = format!(
        "{} + {} -> {merged_id} ({} keys): {why}",
        left.0,
        right.0,
        child_keys.first().copied().unwrap_or(0)
    );
    let command = Command::MergeRanges {
        left_id: left.0,
        left_epoch: left.1,
        right_id: right.0,
        right_epoch: right.1,
        merged_id,
        note: note("merge", detail),
    };
    commit_reshape(app, command, &[left, right], &[merged_id], "merge").await
}

async fn commit_reshape(
    app: &App,
    command: Command,
    parents: &[(RangeId, Epoch)],
    children: &[RangeId],
    kind: &str,
) -> Result<(), ManagerError> {
    match propose(app, command).await {
        Ok(CommandResponse::Reshaped {
            created,
            map_version,
        }) => {
            if let Some(m) = crate::metrics::metrics() {
                match kind {
                    "split" => m.splits.inc(),
                    _ => m.merges.inc(),
                }
            }
            tracing::info!(?parents, ?created, map_version, "{kind} committed");
            Ok(())
        }
        Ok(other) => {
            tracing::warn!(?parents, ?other, "{kind} not applied; renewing the parents");
            renew_all(app, parents, &format!("{kind} not applied")).await;
            release(app, children.to_vec()).await;
            Ok(())
        }
        Err(err) => {
            // Unknown outcome (leadership lost?): renewals are rejected if it did apply.
            renew_all(app, parents, &format!("{kind} commit failed")).await;
            // Had it applied, the children are live ids and releasing them changes nothing.
            release(app, children.to_vec()).await;
            Err(err)
        }
    }
}
