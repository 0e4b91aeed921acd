//! The state machine (the partition map) and its snapshots, in sled.
//!
//! The map is small, so after every applied batch the whole [`AppliedState`] is written as one
//! record of the `state_machine` tree and fsynced before `apply` returns. A snapshot is that
//! same record plus its metadata; installing one replaces the state.
//!
//! Readers (the gRPC service) see the state through [`SharedState`], which is swapped only
//! after the new state is durable.

use super::codec;
use crate::error::ManagerError;
use crate::map::PartitionMapState;
use crate::types::{
    CommandResponse, LogEntry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

const STATE_KEY: &[u8] = b"state";
const SNAPSHOT_KEY: &[u8] = b"snapshot";

/// Everything the state machine holds: the map and what openraft needs to resume.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedState {
    pub last_applied: Option<LogId>,
    pub last_membership: StoredMembership,
    pub map: PartitionMapState,
}

/// Read access to the applied state, shared with the service.
pub type SharedState = Arc<RwLock<AppliedState>>;

/// The newest snapshot: metadata plus the serialized [`AppliedState`].
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// The state machine of one member. Cheap to clone: clones share the tree and the state.
#[derive(Clone)]
pub struct StateMachineStore {
    db: sled::Db,
    tree: sled::Tree,
    state: SharedState,
    snapshots_built: Arc<AtomicU64>,
}

impl StateMachineStore {
    /// Opens the state machine, loading the last durable state.
    pub fn open(db: &sled::Db) -> Result<Self, ManagerError> {
        let tree = db.open_tree("state_machine")?;
        let state = match tree.get(STATE_KEY)? {
            Some(bytes) => codec::decode("state_machine/state", &bytes)?,
            None => AppliedState::default(),
        };
        Ok(Self {
            db: db.clone(),
            tree,
            state: Arc::new(RwLock::new(state)),
            snapshots_built: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The applied state, for readers.
    pub fn shared(&self) -> SharedState {
        self.state.clone()
    }

    /// A copy of the applied state.
    pub fn snapshot_of_state(&self) -> AppliedState {
        read_state(&self.state)
    }

    /// Writes `state` durably, then makes it visible to readers.
    async fn persist(&self, state: AppliedState) -> Result<(), ManagerError> {
        self.tree.insert(STATE_KEY, codec::encode(&state)?)?;
        self.db.flush_async().await?;
        match self.state.write() {
            Ok(mut guard) => *guard = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
        Ok(())
    }

    fn read_stored_snapshot(&self) -> Result<Option<StoredSnapshot>, ManagerError> {
        match self.tree.get(SNAPSHOT_KEY)? {
            Some(bytes) => Ok(Some(codec::decode("state_machine/snapshot", &bytes)?)),
            None => Ok(None),
        }
    }
}

/// Reads the shared state, surviving a poisoned lock (the data is replaced whole, never torn).
pub fn read_state(state: &SharedState) -> AppliedState {
    match state.read() {
        Ok(guard) => guard.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let state = self.snapshot_of_state();
        let data =
            serde_json::to_vec(&state).map_err(|err| StorageIOError::read_state_machine(&err))?;
        let sequence = self.snapshots_built.fetch_add(1, Ordering::Relaxed) + 1;
        let snapshot_id = match &state.last_applied {
            Some(log_id) => format!("{}-{}-{sequence}", log_id.leader_id.term, log_id.index),
            None => format!("none-{sequence}"),
        };
        let meta = SnapshotMeta {
            last_log_id: state.last_applied,
            last_membership: state.last_membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        let write = || -> Result<(), ManagerError> {
            self.tree.insert(SNAPSHOT_KEY, codec::encode(&stored)?)?;
            Ok(())
        };
        if let Err(err) = write() {
            tracing::error!(%err, "storing the snapshot failed");
            return Err(StorageIOError::write_snapshot(Some(meta.signature()), &err).into());
        }
        if let Err(err) = self.db.flush_async().await {
            let err = ManagerError::from(err);
            tracing::error!(%err, "fsync of the snapshot failed");
            return Err(StorageIOError::write_snapshot(Some(meta.signature()), &err).into());
        }
        tracing::info!(snapshot = %meta, "built a snapshot of the partition map");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let state = self.snapshot_of_state();
        Ok((state.last_applied, state.last_membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResponse>, StorageError>
    where
        I: IntoIterator<Item = LogEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = self.snapshot_of_state();
        let mut responses = Vec::new();
        for entry in entries {
            state.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => CommandResponse::NoChange,
                EntryPayload::Normal(command) => {
                    let response = state.map.apply(&command);
                    match &response {
                        CommandResponse::Rejected { reason } => {
                            tracing::debug!(log_id = %entry.log_id, %reason, "command rejected")
                        }
                        applied => {
                            tracing::info!(log_id = %entry.log_id, ?applied, "partition map changed")
                        }
                    }
                    response
                }
                EntryPayload::Membership(membership) => {
                    state.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                    CommandResponse::NoChange
                }
            };
            responses.push(response);
        }
        if let Err(err) = self.persist(state).await {
            tracing::error!(%err, "persisting the state machine failed");
            return Err(StorageIOError::write_state_machine(&err).into());
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let install = async {
            let mut state: AppliedState = serde_json::from_slice(&data).map_err(|err| {
                ManagerError::Storage(format!("decoding snapshot {}: {err}", meta.snapshot_id))
            })?;
            // The metadata is authoritative for what the snapshot covers.
            state.last_applied = meta.last_log_id;
            state.last_membership = meta.last_membership.clone();
            let stored = StoredSnapshot {
                meta: meta.clone(),
                data: data.clone(),
            };
            self.tree.insert(SNAPSHOT_KEY, codec::encode(&stored)?)?;
            self.persist(state).await
        };
        match install.await {
            Ok(()) => {
                tracing::info!(snapshot = %meta, "installed a snapshot of the partition map");
                Ok(())
            }
            Err(err) => {
                tracing::error!(%err, "installing a snapshot failed");
                Err(StorageIOError::write_snapshot(Some(meta.signature()), &err).into())
            }
        }
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        match self.read_stored_snapshot() {
            Ok(Some(stored)) => Ok(Some(Snapshot {
                meta: stored.meta,
                snapshot: Box::new(Cursor::new(stored.data)),
            })),
            Ok(None) => Ok(None),
            Err(err) => {
                tracing::error!(%err, "reading the stored snapshot failed");
                Err(StorageIOError::read_snapshot(None, &err).into())
            }
        }
    }
}
