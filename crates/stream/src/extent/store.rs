//! All extent replicas of one node, under `<data-dir>/extents/`, with async access.
//!
//! Appends (and seals, deletes) of one extent are serialized by a per-extent async mutex;
//! disk work runs on blocking threads.
//!
//! A write or fsync error fails the whole store for writes (`disk_failed`): after a failed
//! fsync the kernel may have dropped dirty pages, so nothing this node writes can be trusted to
//! be durable. It refuses every append, replication, create and seal from then on, and its
//! heartbeat stops, so the stream manager takes the node for dead, seals its open extents at
//! the commit length the other replicas agree on, and re-replicates its data.

use super::format;
use super::replica::{ExtentReplica, ReadBatch, ReplicaState};
use crate::error::{Result, StreamError};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use strata_types::ExtentId;

struct Entry {
    replica: Arc<ExtentReplica>,
    append_lock: tokio::sync::Mutex<()>,
}

/// One line of the node's extent report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtentSummary {
    pub extent_id: ExtentId,
    pub length: u64,
    pub sealed: bool,
    /// An unsealed replica whose tail did not verify on opening (see `ReplicaState`).
    pub tail_unverified: bool,
}

pub struct ExtentStore {
    dir: PathBuf,
    extents: RwLock<HashMap<ExtentId, Arc<Entry>>>,
    /// Extents a repair copy is being written for (at most one copy per extent at a time).
    copying: std::sync::Mutex<HashSet<ExtentId>>,
    /// Set by the first write or fsync error; never cleared while the process lives.
    disk_failed: AtomicBool,
    /// Fail point for tests: the next appends' fsyncs fail.
    fail_sync: AtomicBool,
    /// Fail point for tests: records leave this node with a flipped payload bit (the CRC sent
    /// with them is the stored one), as memory or network damage would do.
    fail_reads_on_wire: AtomicBool,
}

/// Suffix of a repair copy being written (`<id>.<nonce>.copy`); leftovers are removed on open.
const COPY_SUFFIX: &str = ".copy";

/// Marks one extent as being copied; unmarks it when dropped.
pub struct CopyGuard<'a> {
    store: &'a ExtentStore,
    extent_id: ExtentId,
    /// The temporary file the copy is written to; removed on drop unless installed.
    pub temp_path: PathBuf,
}

impl Drop for CopyGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut copying) = self.store.copying.lock() {
            copying.remove(&self.extent_id);
        }
        match std::fs::remove_file(&self.temp_path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                tracing::warn!(path = %self.temp_path.display(), %err, "could not remove a copy's temporary file")
            }
        }
    }
}

/// Runs disk work on a blocking thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| StreamError::Unavailable(format!("disk task failed: {err}")))?
}

impl ExtentStore {
    /// Opens (creating if needed) `<data_dir>/extents` and every replica in it, repairing torn
    /// tails. A replica whose file header or seal marker is corrupt is skipped and logged.
    pub async fn open(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join("extents");
        let scan_dir = dir.clone();
        let opened = blocking(move || {
            std::fs::create_dir_all(&scan_dir)?;
            let mut opened = Vec::new();
            for entry in std::fs::read_dir(&scan_dir)? {
                let entry = entry?;
                let name = entry.file_name();
                if name.to_str().is_some_and(|n| n.ends_with(COPY_SUFFIX)) {
                    // A repair copy cut short by a crash: never installed, so never served.
                    if let Err(err) = std::fs::remove_file(entry.path()) {
                        tracing::warn!(path = %entry.path().display(), %err, "could not remove a leftover copy");
                    }
                    continue;
                }
                let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".ext")).and_then(|n| n.parse::<u64>().ok()).map(ExtentId::new)
                else {
                    continue;
                };
                match ExtentReplica::open(&scan_dir, id) {
                    Ok((replica, recovery)) => {
                        if recovery.truncated_bytes > 0 || recovery.unverified_tail_bytes > 0 {
                            tracing::warn!(extent_id = id.get(), truncated_bytes = recovery.truncated_bytes, unverified_tail_bytes = recovery.unverified_tail_bytes, "recovered extent");
                        }
                        opened.push(replica);
                    }
                    Err(err) => tracing::error!(extent_id = id.get(), %err, "cannot open extent replica; not serving it"),
                }
            }
            Ok(opened)
        })
        .await?;
        let extents = opened
            .into_iter()
            .map(|replica| {
                let entry = Entry {
                    replica: Arc::new(replica),
                    append_lock: tokio::sync::Mutex::new(()),
                };
                (entry.replica.id(), Arc::new(entry))
            })
            .collect();
        Ok(Self {
            dir,
            extents: RwLock::new(extents),
            copying: std::sync::Mutex::new(HashSet::new()),
            disk_failed: AtomicBool::new(false),
            fail_sync: AtomicBool::new(false),
            fail_reads_on_wire: AtomicBool::new(false),
        })
    }

    /// Whether a write or fsync failed on this node's disk (see the module comment).
    pub fn disk_failed(&self) -> bool {
        self.disk_failed.load(Ordering::Acquire)
    }

    /// Fail point for tests: while set, every append's fsync fails (as a dying disk's does).
    #[doc(hidden)]
    pub fn inject_sync_failures(&self, on: bool) {
        self.fail_sync.store(on, Ordering::Release);
    }

    /// Fail point for tests: while set, records read from this node reach the reader damaged.
    #[doc(hidden)]
    pub fn inject_wire_damage(&self, on: bool) {
        self.fail_reads_on_wire.store(on, Ordering::Release);
    }

    /// Whether [`Self::inject_wire_damage`] is on.
    pub(crate) fn wire_damage_injected(&self) -> bool {
        self.fail_reads_on_wire.load(Ordering::Acquire)
    }

    /// Refuses writes once the disk failed.
    fn check_disk(&self) -> Result<()> {
        if self.disk_failed() {
            return Err(StreamError::Unavailable(
                "this extent node's disk failed a write or fsync; it accepts no more writes".into(),
            ));
        }
        Ok(())
    }

    /// Passes `result` on, failing the disk for writes on an I/O error.
    fn note_io<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(StreamError::Io(err)) = &result {
            if !self.disk_failed.swap(true, Ordering::AcqRel) {
                tracing::error!(%err, "disk write or fsync failed: refusing every write from now on");
                crate::metrics::disk_failures().inc();
            }
        }
        result
    }

    /// Starts a repair copy of `extent_id`: fails when one is already under way here.
    pub fn begin_copy(&self, extent_id: ExtentId) -> Result<CopyGuard<'_>> {
        let mut copying = self
            .copying
            .lock()
            .map_err(|_| StreamError::Unavailable("copy set lock poisoned".into()))?;
        if !copying.insert(extent_id) {
            return Err(StreamError::Unavailable(format!(
                "a copy of {extent_id} is already under way"
            )));
        }
        let temp_path = self.dir.join(format!(
            "{}.{:016x}{COPY_SUFFIX}",
            extent_id.get(),
            rand::random::<u64>()
        ));
        Ok(CopyGuard {
            store: self,
            extent_id,
            temp_path,
        })
    }

    /// Installs a fully written and fsynced copy (`guard.temp_path`, file header included) as
    /// the replica of its extent, sealed at `sealed_length`, replacing any replica held so far:
    /// seal marker first (durably), then the file is renamed over the old one, the folder
    /// fsynced, and the replica reopened (which checks header and seal).
    pub async fn install_copy(&self, guard: &CopyGuard<'_>, sealed_length: u64) -> Result<()> {
        let extent_id = guard.extent_id;
        let old = self.entry(extent_id).ok();
        let _serialized = match &old {
            Some(entry) => Some(entry.append_lock.lock().await),
            None => None,
        };
        let dir = self.dir.clone();
        let temp_path = guard.temp_path.clone();
        let replica = blocking(move || {
            strata_util::files::write_durably(
                &super::replica::seal_path(&dir, extent_id),
                &format::encode_seal(extent_id, sealed_length),
            )?;
            std::fs::rename(&temp_path, super::replica::extent_path(&dir, extent_id))?;
            std::fs::File::open(&dir)?.sync_all()?;
            let (replica, _) = ExtentReplica::open(&dir, extent_id)?;
            Ok(replica)
        })
        .await?;
        let state = replica.state()?;
        if !state.sealed || state.length != sealed_length {
            return Err(StreamError::DataLoss {
                extent_id,
                offset: state.length,
                reason: format!(
                    "installed copy has length {}, expected {sealed_length}",
                    state.length
                ),
            });
        }
        let entry = Arc::new(Entry {
            replica: Arc::new(replica),
            append_lock: tokio::sync::Mutex::new(()),
        });
        let mut map = self
            .extents
            .write()
            .map_err(|_| StreamError::Unavailable("extent map lock poisoned".into()))?;
        map.insert(extent_id, entry);
        Ok(())
    }

    fn map_read(&self) -> Result<std::sync::RwLockReadGuard<'_, HashMap<ExtentId, Arc<Entry>>>> {
        self.extents
            .read()
            .map_err(|_| StreamError::Unavailable("extent map lock poisoned".into()))
    }

    fn entry(&self, extent_id: ExtentId) -> Result<Arc<Entry>> {
        self.map_read()?
            .get(&extent_id)
            .cloned()
            .ok_or(StreamError::ExtentNotFound(extent_id))
    }

    /// Creates an empty replica. Creating one that exists and is still empty succeeds (a retry).
    pub async fn create(&self, extent_id: ExtentId) -> Result<()> {
        self.check_disk()?;
        if let Ok(entry) = self.entry(extent_id) {
            let state = entry.replica.state()?;
            if !state.sealed && state.length == format::FILE_HEADER_LEN {
                return Ok(());
            }
            return Err(StreamError::ExtentExists(extent_id));
        }
        let dir = self.dir.clone();
        let replica =
            self.note_io(blocking(move || ExtentReplica::create(&dir, extent_id)).await)?;
        let entry = Arc::new(Entry {
            replica: Arc::new(replica),
            append_lock: tokio::sync::Mutex::new(()),
        });
        let mut map = self
            .extents
            .write()
            .map_err(|_| StreamError::Unavailable("extent map lock poisoned".into()))?;
        map.entry(extent_id).or_insert(entry);
        Ok(())
    }

    /// Primary append: picks the offset (the current length), then writes + fsyncs locally
    /// while `replicate(offset, record_payload)` runs; succeeds only when both did.
    pub async fn append<F, Fut>(
        &self,
        extent_id: ExtentId,
        payload: Vec<u8>,
        replicate: F,
    ) -> Result<(u64, u64)>
    where
        F: FnOnce(u64, Arc<Vec<u8>>) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        self.check_disk()?;
        let entry = self.entry(extent_id)?;
        let _serialized = entry.append_lock.lock().await;
        let offset = entry.replica.next_offset(None)?;
        let record = Arc::new(format::encode_record(&payload)?);
        let payload = Arc::new(payload);
        let replica = entry.replica.clone();
        let local_record = record.clone();
        let fail_sync = self.fail_sync.load(Ordering::Acquire);
        let local =
            blocking(move || replica.write_record_checked(offset, &local_record, fail_sync));
        let (local, remote) = tokio::join!(local, replicate(offset, payload));
        let end = self.note_io(local)?;
        remote?;
        Ok((offset, end))
    }

    /// Secondary append: writes the record exactly at `offset`, which must be the length.
    pub async fn replicate(
        &self,
        extent_id: ExtentId,
        offset: u64,
        payload: Vec<u8>,
    ) -> Result<u64> {
        self.check_disk()?;
        let entry = self.entry(extent_id)?;
        let _serialized = entry.append_lock.lock().await;
        entry.replica.next_offset(Some(offset))?;
        let record = format::encode_record(&payload)?;
        let replica = entry.replica.clone();
        let fail_sync = self.fail_sync.load(Ordering::Acquire);
        self.note_io(
            blocking(move || replica.write_record_checked(offset, &record, fail_sync)).await,
        )
    }

    pub async fn read(
        &self,
        extent_id: ExtentId,
        offset: u64,
        max_records: usize,
        max_bytes: u64,
    ) -> Result<ReadBatch> {
        let replica = self.entry(extent_id)?.replica.clone();
        blocking(move || replica.read(offset, max_records, max_bytes)).await
    }

    pub async fn seal(&self, extent_id: ExtentId, length: u64) -> Result<u64> {
        self.check_disk()?;
        let entry = self.entry(extent_id)?;
        let _serialized = entry.append_lock.lock().await;
        let replica = entry.replica.clone();
        self.note_io(blocking(move || replica.seal(length)).await)
    }

    pub fn state(&self, extent_id: ExtentId) -> Result<ReplicaState> {
        self.entry(extent_id)?.replica.state()
    }

    /// Refuses further appends (the stream manager is about to seal) and returns the state.
    pub fn fence(&self, extent_id: ExtentId) -> Result<ReplicaState> {
        self.entry(extent_id)?.replica.fence()
    }

    /// Removes a replica; removing one this node does not hold (or could not open) removes
    /// whatever files of it are left and succeeds, so deletion is idempotent.
    pub async fn delete(&self, extent_id: ExtentId) -> Result<()> {
        let Ok(entry) = self.entry(extent_id) else {
            let dir = self.dir.clone();
            return blocking(move || {
                for path in [
                    super::replica::seal_path(&dir, extent_id),
                    super::replica::extent_path(&dir, extent_id),
                ] {
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                        Err(err) => return Err(err.into()),
                    }
                }
                Ok(())
            })
            .await;
        };
        let _serialized = entry.append_lock.lock().await;
        {
            let mut map = self
                .extents
                .write()
                .map_err(|_| StreamError::Unavailable("extent map lock poisoned".into()))?;
            map.remove(&extent_id);
        }
        let replica = entry.replica.clone();
        blocking(move || replica.delete()).await
    }

    /// Every replica with its length and sealed state, by extent id.
    pub fn report(&self) -> Result<Vec<ExtentSummary>> {
        let map = self.map_read()?;
        let mut out = Vec::with_capacity(map.len());
        for (id, entry) in map.iter() {
            let state = entry.replica.state()?;
            out.push(ExtentSummary {
                extent_id: *id,
                length: state.length,
                sealed: state.sealed,
                tail_unverified: state.tail_unverified(),
            });
        }
        out.sort_by_key(|s| s.extent_id);
        Ok(out)
    }

    /// Path of a replica's file (tests corrupt it on purpose).
    pub fn extent_file_path(&self, extent_id: ExtentId) -> PathBuf {
        super::replica::extent_path(&self.dir, extent_id)
    }
}
