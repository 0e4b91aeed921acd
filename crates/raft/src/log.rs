//! The Raft log, vote and commit index, in sled.
//!
//! Trees: `log` (entries keyed by big-endian index, so sled's order is log order), `vote`,
//! `committed` and `purged` (one key each). Every write that openraft must be able to trust
//! after a crash (appended entries, the vote) is fsynced (`flush_async`) before it is reported;
//! a failed fsync is returned as an error, never reported as done (fail closed).

use crate::codec;
use crate::error::GroupError;
use crate::types::{EntryOf, LogId, Machine, StorageError, Types, Vote};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError};
use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

const SINGLE_KEY: &[u8] = b"value";

/// The log store of one member. Cheap to clone: clones share the sled trees.
pub struct LogStore<M> {
    db: sled::Db,
    log: sled::Tree,
    vote: sled::Tree,
    committed: sled::Tree,
    purged: sled::Tree,
    machine: PhantomData<fn() -> M>,
}

impl<M> Clone for LogStore<M> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            log: self.log.clone(),
            vote: self.vote.clone(),
            committed: self.committed.clone(),
            purged: self.purged.clone(),
            machine: PhantomData,
        }
    }
}

impl<M: Machine> LogStore<M> {
    pub fn open(db: &sled::Db) -> Result<Self, GroupError> {
        Ok(Self {
            db: db.clone(),
            log: db.open_tree("log")?,
            vote: db.open_tree("vote")?,
            committed: db.open_tree("committed")?,
            purged: db.open_tree("purged")?,
            machine: PhantomData,
        })
    }

    /// fsyncs everything written so far.
    async fn flush(&self) -> Result<(), GroupError> {
        self.db.flush_async().await?;
        Ok(())
    }

    fn read_single<T: serde::de::DeserializeOwned>(
        tree: &sled::Tree,
        name: &str,
    ) -> Result<Option<T>, GroupError> {
        match tree.get(SINGLE_KEY)? {
            Some(bytes) => Ok(Some(codec::decode(name, &bytes)?)),
            None => Ok(None),
        }
    }

    fn write_single<T: serde::Serialize>(tree: &sled::Tree, value: &T) -> Result<(), GroupError> {
        tree.insert(SINGLE_KEY, codec::encode(value)?)?;
        Ok(())
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, GroupError> {
        match self.log.last()? {
            Some((key, bytes)) => {
                let entry: EntryOf<M> = codec::decode(&log_key_name(&key), &bytes)?;
                Ok(Some(entry.log_id))
            }
            None => Ok(None),
        }
    }

    fn read_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<Vec<EntryOf<M>>, GroupError> {
        let start = start.map(index_key);
        let end = end.map(index_key);
        let mut entries = Vec::new();
        for item in self.log.range::<[u8; 8], _>((start, end)) {
            let (key, bytes) = item?;
            let entry: EntryOf<M> = codec::decode(&log_key_name(&key), &bytes)?;
            entries.push(entry);
        }
        Ok(entries)
    }

    /// Removes entries with index in `[from, to]` (inclusive bounds).
    fn remove_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), GroupError> {
        let mut batch = sled::Batch::default();
        for item in self
            .log
            .range::<[u8; 8], _>((start.map(index_key), end.map(index_key)))
        {
            let (key, _) = item?;
            batch.remove(key);
        }
        self.log.apply_batch(batch)?;
        Ok(())
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn log_key_name(key: &[u8]) -> String {
    match <[u8; 8]>::try_from(key) {
        Ok(raw) => format!("log/{}", u64::from_be_bytes(raw)),
        Err(_) => format!("log/<{} byte key>", key.len()),
    }
}

fn bound_cloned(bound: Bound<&u64>) -> Bound<u64> {
    match bound {
        Bound::Included(value) => Bound::Included(*value),
        Bound::Excluded(value) => Bound::Excluded(*value),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl<M: Machine> RaftLogReader<Types<M>> for LogStore<M> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<M>>, StorageError> {
        self.read_range(
            bound_cloned(range.start_bound()),
            bound_cloned(range.end_bound()),
        )
        .map_err(|err| StorageIOError::read_logs(&err).into())
    }
}

impl<M: Machine> RaftLogStorage<Types<M>> for LogStore<M> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<Types<M>>, StorageError> {
        let read = || -> Result<LogState<Types<M>>, GroupError> {
            let last_purged_log_id: Option<LogId> = Self::read_single(&self.purged, "purged")?;
            let last_log_id = self.last_entry_log_id()?.or(last_purged_log_id);
            Ok(LogState {
                last_purged_log_id,
                last_log_id,
            })
        };
        read().map_err(|err| StorageIOError::read_logs(&err).into())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let result = match Self::write_single(&self.vote, vote) {
            Ok(()) => self.flush().await,
            Err(err) => Err(err),
        };
        result.map_err(|err| {
            tracing::error!(%err, "saving the vote failed");
            StorageIOError::write_vote(&err).into()
        })
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Self::read_single(&self.vote, "vote").map_err(|err| StorageIOError::read_vote(&err).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not fsynced on its own: a lost commit index is recomputed from the quorum.
        Self::write_single(&self.committed, &committed)
            .map_err(|err| StorageIOError::write(&err).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let read = Self::read_single::<Option<LogId>>(&self.committed, "committed");
        read.map(Option::flatten)
            .map_err(|err| StorageIOError::read(&err).into())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<Types<M>>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = EntryOf<M>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let bytes = codec::encode(&entry)
                .map_err(|err| StorageIOError::write_log_entry(entry.log_id, &err))?;
            batch.insert(&index_key(entry.log_id.index), bytes);
        }
        if let Err(err) = self.log.apply_batch(batch) {
            let err = GroupError::from(err);
            tracing::error!(%err, "appending to the raft log failed");
            return Err(StorageIOError::write_logs(&err).into());
        }
        match self.flush().await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(err) => {
                tracing::error!(%err, "fsync of the raft log failed; failing closed");
                callback.log_io_completed(Err(std::io::Error::other(err.to_string())));
                Err(StorageIOError::write_logs(&err).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "truncating the raft log");
        let result = match self.remove_range(Bound::Included(log_id.index), Bound::Unbounded) {
            Ok(()) => self.flush().await,
            Err(err) => Err(err),
        };
        result.map_err(|err| {
            tracing::error!(%err, "truncating the raft log failed");
            StorageIOError::write_logs(&err).into()
        })
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "purging the raft log");
        // Record the purge point first, so a crash in between never leaves a hole that the
        // log state does not explain.
        let result = Self::write_single(&self.purged, &log_id)
            .and_then(|()| self.remove_range(Bound::Unbounded, Bound::Included(log_id.index)));
        let result = match result {
            Ok(()) => self.flush().await,
            Err(err) => Err(err),
        };
        result.map_err(|err| {
            tracing::error!(%err, "purging the raft log failed");
            StorageIOError::write_logs(&err).into()
        })
    }
}
