//! The state machine of one member, in sled.
//!
//! ```text
//! tree "state"     a/<application key> -> application record (the Machine's, via Overlay)
//!                  r/applied           -> codec(Option<LogId>)   the last applied entry
//!                  r/membership        -> codec(StoredMembership)
//! tree "snapshot"  meta                -> codec(SnapshotMeta)     the newest snapshot
//!                  data                -> frame(bincode(Vec<(key, value)>)) its records
//! ```
//! A batch of entries is applied through an [`Overlay`] (reads see the batch's own earlier
//! writes) and then written as ONE sled batch together with `r/applied`, and fsynced before the
//! responses go back: a crash leaves either all of a batch or none of it, and openraft
//! re-applies from the durable `r/applied`.
//!
//! A snapshot is every `a/` record at one applied log id; apply, snapshot building and
//! snapshot installing are serialized by one lock, so a snapshot is a consistent cut.

use crate::codec;
use crate::error::GroupError;
use crate::types::{EntryOf, LogId, Machine, SnapshotMeta, StorageError, StoredMembership, Types};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const APP_PREFIX: &[u8] = b"a/";
const APPLIED_KEY: &[u8] = b"r/applied";
const MEMBERSHIP_KEY: &[u8] = b"r/membership";
const SNAPSHOT_META_KEY: &[u8] = b"meta";
const SNAPSHOT_DATA_KEY: &[u8] = b"data";

fn app_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(APP_PREFIX.len() + key.len());
    out.extend_from_slice(APP_PREFIX);
    out.extend_from_slice(key);
    out
}

fn key_name(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

/// Read access to the application's records as last applied. Cheap to clone.
#[derive(Clone)]
pub struct StateReader {
    tree: sled::Tree,
}

impl StateReader {
    /// The raw record at `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<sled::IVec>, GroupError> {
        Ok(self.tree.get(app_key(key))?)
    }

    /// The record at `key`, decoded (see [`codec`]).
    pub fn get_record<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, GroupError> {
        self.get(key)?
            .map(|bytes| codec::decode(&key_name(key), &bytes))
            .transpose()
    }

    /// Every record whose key starts with `prefix`, in key order, decoded; keys are returned
    /// without `prefix`.
    pub fn scan_records<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, T)>, GroupError> {
        let full = app_key(prefix);
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(&full) {
            let (key, value) = item?;
            let short = key[full.len()..].to_vec();
            out.push((short, codec::decode(&key_name(&key), &value)?));
        }
        Ok(out)
    }

    /// How many records have keys starting with `prefix`.
    pub fn count(&self, prefix: &[u8]) -> usize {
        self.tree.scan_prefix(app_key(prefix)).count()
    }

    /// The last applied log id.
    pub fn applied(&self) -> Result<Option<LogId>, GroupError> {
        read_meta(&self.tree, APPLIED_KEY).map(Option::flatten)
    }
}

fn read_meta<T: DeserializeOwned>(tree: &sled::Tree, key: &[u8]) -> Result<Option<T>, GroupError> {
    tree.get(key)?
        .map(|bytes| codec::decode(&key_name(key), &bytes))
        .transpose()
}

/// The state as one batch of entries changes it: writes are kept here, reads see them first.
pub struct Overlay<'a> {
    tree: &'a sled::Tree,
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Overlay<'a> {
    fn new(tree: &'a sled::Tree) -> Self {
        Self {
            tree,
            pending: BTreeMap::new(),
        }
    }

    /// The raw record at `key`, with this batch's writes applied.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, GroupError> {
        let full = app_key(key);
        if let Some(pending) = self.pending.get(&full) {
            return Ok(pending.clone());
        }
        Ok(self.tree.get(&full)?.map(|v| v.to_vec()))
    }

    pub fn get_record<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, GroupError> {
        self.get(key)?
            .map(|bytes| codec::decode(&key_name(key), &bytes))
            .transpose()
    }

    pub fn put(&mut self, key: &[u8], value: Vec<u8>) {
        self.pending.insert(app_key(key), Some(value));
    }

    pub fn put_record<T: Serialize>(&mut self, key: &[u8], value: &T) -> Result<(), GroupError> {
        self.put(key, codec::encode(value)?);
        Ok(())
    }

    pub fn remove(&mut self, key: &[u8]) {
        self.pending.insert(app_key(key), None);
    }

    fn into_batch(self) -> sled::Batch {
        let mut batch = sled::Batch::default();
        for (key, value) in self.pending {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        batch
    }
}

/// The state machine store of one member. Cheap to clone: clones share everything.
pub struct StateMachineStore<M> {
    db: sled::Db,
    state: sled::Tree,
    snapshot: sled::Tree,
    machine: Arc<M>,
    /// Apply, snapshot building and installing take turns, so a snapshot is a consistent cut.
    turn: Arc<tokio::sync::Mutex<()>>,
    snapshots_built: Arc<AtomicU64>,
}

impl<M> Clone for StateMachineStore<M> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            state: self.state.clone(),
            snapshot: self.snapshot.clone(),
            machine: self.machine.clone(),
            turn: self.turn.clone(),
            snapshots_built: self.snapshots_built.clone(),
        }
    }
}

/// What a snapshot's data holds: every application record.
type SnapshotRecords = Vec<(Vec<u8>, Vec<u8>)>;

fn io_error(err: &GroupError) -> std::io::Error {
    std::io::Error::other(err.to_string())
}

impl<M: Machine> StateMachineStore<M> {
    /// Opens the state machine and lets `machine` rebuild its view of the records.
    pub fn open(db: &sled::Db, machine: Arc<M>) -> Result<Self, GroupError> {
        let store = Self {
            db: db.clone(),
            state: db.open_tree("state")?,
            snapshot: db.open_tree("snapshot")?,
            machine,
            turn: Arc::new(tokio::sync::Mutex::new(())),
            snapshots_built: Arc::new(AtomicU64::new(0)),
        };
        store.machine.restore(&store.reader())?;
        Ok(store)
    }

    pub fn reader(&self) -> StateReader {
        StateReader {
            tree: self.state.clone(),
        }
    }

    pub fn machine(&self) -> &Arc<M> {
        &self.machine
    }

    fn membership(&self) -> Result<StoredMembership, GroupError> {
        Ok(read_meta(&self.state, MEMBERSHIP_KEY)?.unwrap_or_default())
    }

    async fn apply_entries(
        &self,
        entries: Vec<EntryOf<M>>,
    ) -> Result<Vec<M::Response>, GroupError> {
        let _turn = self.turn.lock().await;
        let mut overlay = Overlay::new(&self.state);
        let mut responses = Vec::with_capacity(entries.len());
        let mut applied: Option<LogId> = None;
        let mut membership: Option<StoredMembership> = None;
        for entry in entries {
            applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => M::no_change(),
                EntryPayload::Normal(command) => {
                    let response =
                        self.machine
                            .apply(&mut overlay, entry.log_id.index, &command)?;
                    tracing::debug!(log_id = %entry.log_id, ?command, ?response, "applied");
                    response
                }
                EntryPayload::Membership(config) => {
                    membership = Some(StoredMembership::new(Some(entry.log_id), config));
                    M::no_change()
                }
            };
            responses.push(response);
        }
        let Some(applied) = applied else {
            return Ok(responses);
        };
        let mut batch = overlay.into_batch();
        batch.insert(APPLIED_KEY, codec::encode(&Some(applied))?);
        if let Some(membership) = membership {
            batch.insert(MEMBERSHIP_KEY, codec::encode(&membership)?);
        }
        self.state.apply_batch(batch)?;
        self.db.flush_async().await?;
        Ok(responses)
    }

    async fn build(&self) -> Result<Snapshot<Types<M>>, GroupError> {
        let (meta, data) = {
            let _turn = self.turn.lock().await;
            let mut records: SnapshotRecords = Vec::new();
            for item in self.state.scan_prefix(APP_PREFIX) {
                let (key, value) = item?;
                records.push((key[APP_PREFIX.len()..].to_vec(), value.to_vec()));
            }
            let last_log_id: Option<LogId> = read_meta(&self.state, APPLIED_KEY)?.flatten();
            let sequence = self.snapshots_built.fetch_add(1, Ordering::Relaxed) + 1;
            let snapshot_id = match &last_log_id {
                Some(log_id) => format!("{}-{}-{sequence}", log_id.leader_id.term, log_id.index),
                None => format!("none-{sequence}"),
            };
            let meta = SnapshotMeta {
                last_log_id,
                last_membership: self.membership()?,
                snapshot_id,
            };
            let payload = bincode::serialize(&records)
                .map_err(|err| GroupError::Storage(format!("encoding snapshot: {err}")))?;
            (meta, codec::frame(&payload))
        };
        self.store_snapshot(&meta, &data).await?;
        tracing::info!(snapshot = %meta, bytes = data.len(), "built a snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }

    async fn store_snapshot(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), GroupError> {
        let mut batch = sled::Batch::default();
        batch.insert(SNAPSHOT_META_KEY, codec::encode(meta)?);
        batch.insert(SNAPSHOT_DATA_KEY, data);
        self.snapshot.apply_batch(batch)?;
        self.db.flush_async().await?;
        Ok(())
    }

    async fn install(&self, meta: &SnapshotMeta, data: Vec<u8>) -> Result<(), GroupError> {
        let payload = codec::unframe(&format!("snapshot {}", meta.snapshot_id), &data)?;
        let records: SnapshotRecords = bincode::deserialize(payload).map_err(|err| {
            GroupError::Storage(format!("decoding snapshot {}: {err}", meta.snapshot_id))
        })?;
        {
            let _turn = self.turn.lock().await;
            let mut batch = sled::Batch::default();
            for item in self.state.iter() {
                let (key, _) = item?;
                batch.remove(key);
            }
            for (key, value) in records {
                batch.insert(app_key(&key), value);
            }
            // The metadata is authoritative for what the snapshot covers.
            batch.insert(APPLIED_KEY, codec::encode(&meta.last_log_id)?);
            batch.insert(MEMBERSHIP_KEY, codec::encode(&meta.last_membership)?);
            self.state.apply_batch(batch)?;
            self.store_snapshot(meta, &data).await?;
            self.machine.restore(&self.reader())?;
        }
        tracing::info!(snapshot = %meta, "installed a snapshot");
        Ok(())
    }

    fn current_snapshot(&self) -> Result<Option<Snapshot<Types<M>>>, GroupError> {
        let meta: Option<SnapshotMeta> = read_meta(&self.snapshot, SNAPSHOT_META_KEY)?;
        let Some(meta) = meta else {
            return Ok(None);
        };
        let data = self
            .snapshot
            .get(SNAPSHOT_DATA_KEY)?
            .ok_or_else(|| GroupError::Corrupt {
                key: "snapshot/data".into(),
                reason: "snapshot metadata without data".into(),
            })?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data.to_vec())),
        }))
    }
}

impl<M: Machine> RaftSnapshotBuilder<Types<M>> for StateMachineStore<M> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<Types<M>>, StorageError> {
        self.build().await.map_err(|err| {
            tracing::error!(%err, "building a snapshot failed");
            StorageIOError::write_snapshot(None, &io_error(&err)).into()
        })
    }
}

impl<M: Machine> RaftStateMachine<Types<M>> for StateMachineStore<M> {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let read = || -> Result<_, GroupError> {
            let applied: Option<LogId> = read_meta(&self.state, APPLIED_KEY)?.flatten();
            Ok((applied, self.membership()?))
        };
        read().map_err(|err| StorageIOError::read_state_machine(&io_error(&err)).into())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<M::Response>, StorageError>
    where
        I: IntoIterator<Item = EntryOf<M>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<EntryOf<M>> = entries.into_iter().collect();
        self.apply_entries(entries).await.map_err(|err| {
            tracing::error!(%err, "applying to the state machine failed; failing closed");
            StorageIOError::write_state_machine(&io_error(&err)).into()
        })
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
        self.install(meta, snapshot.into_inner())
            .await
            .map_err(|err| {
                tracing::error!(%err, "installing a snapshot failed");
                StorageIOError::write_snapshot(Some(meta.signature()), &io_error(&err)).into()
            })
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<Types<M>>>, StorageError> {
        self.current_snapshot().map_err(|err| {
            tracing::error!(%err, "reading the stored snapshot failed");
            StorageIOError::read_snapshot(None, &io_error(&err)).into()
        })
    }
}
