//! One extent replica on disk: an append-only file plus an optional seal marker.
//!
//! Every method is synchronous (call it from a blocking thread). Appends and seals must be
//! serialized by the caller (the store holds a per-extent async mutex); reads run concurrently
//! with appends because they only look below the published length, and the length is published
//! only after the record is fsynced.
//!
//! Opening never cuts bytes. A replica alone cannot tell a torn, never-acknowledged last record
//! from an acknowledged one that a bit flip damaged (a flipped length field even looks torn), and
//! cutting the second loses an acknowledged record for good once the seal takes its length from
//! the cut replica. So an unsealed replica whose tail does not verify keeps every byte, reports
//! `verified_length` (the end of its last good record) below `length`, and refuses appends; the
//! stream manager then seals the extent at a length decided by the replicas that verified (see
//! `manager::state::commit_length`), cuts this one there and rewrites it from a good replica.

use super::format::{
    self, RecordHeader, FILE_HEADER_LEN, RECORD_HEADER_LEN, RECORD_PAYLOAD_BYTES_MAX,
};
use crate::error::{Result, StreamError};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use strata_types::ExtentId;

/// Length and state of a replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaState {
    /// Bytes durably written (file header included); the next record's offset.
    pub length: u64,
    pub sealed: bool,
    /// Set by the stream manager before it seals (and on opening a replica whose tail does not
    /// verify): appends are refused from then on.
    pub fenced: bool,
    /// End of the last record known good; below `length` only when opening found a tail that
    /// does not verify (see the module comment).
    pub verified_length: u64,
}

impl ReplicaState {
    /// Whether the bytes past `verified_length` may hold an acknowledged record that is damaged
    /// here: this replica must not decide a seal length and needs a rewrite.
    pub fn tail_unverified(&self) -> bool {
        self.verified_length < self.length
    }
}

/// Whole records read from one replica.
#[derive(Clone, Debug, Default)]
pub struct ReadBatch {
    pub records: Vec<(u64, Vec<u8>)>,
    pub next_offset: u64,
    pub length: u64,
    pub sealed: bool,
}

/// What opening found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes cut past a sealed length (a seal whose truncation a crash interrupted).
    pub truncated_bytes: u64,
    /// Bytes of an unsealed replica past its last verified record, kept (see the module
    /// comment); the replica refuses appends until it is sealed.
    pub unverified_tail_bytes: u64,
}

pub struct ExtentReplica {
    id: ExtentId,
    path: PathBuf,
    seal_path: PathBuf,
    file: File,
    state: RwLock<ReplicaState>,
}

/// `<dir>/<raw id>.ext`: file names carry the bare number (the node lists them on start).
pub fn extent_path(dir: &Path, id: ExtentId) -> PathBuf {
    dir.join(format!("{}.ext", id.get()))
}

pub fn seal_path(dir: &Path, id: ExtentId) -> PathBuf {
    dir.join(format!("{}.seal", id.get()))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

impl ExtentReplica {
    /// Creates an empty replica (just the file header), durably.
    pub fn create(dir: &Path, id: ExtentId) -> Result<Self> {
        let path = extent_path(dir, id);
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StreamError::ExtentExists(id))
            }
            Err(err) => return Err(err.into()),
        };
        file.write_all_at(&format::encode_file_header(id), 0)?;
        file.sync_all()?;
        sync_dir(dir)?;
        let state = ReplicaState {
            length: FILE_HEADER_LEN,
            sealed: false,
            fenced: false,
            verified_length: FILE_HEADER_LEN,
        };
        Ok(Self {
            id,
            path,
            seal_path: seal_path(dir, id),
            file,
            state: RwLock::new(state),
        })
    }

    /// Opens an existing replica. A sealed one is cut to its sealed length; an unsealed one keeps
    /// every byte, and one whose tail does not verify is fenced (see the module comment).
    pub fn open(dir: &Path, id: ExtentId) -> Result<(Self, Recovery)> {
        let path = extent_path(dir, id);
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let file_len = file.metadata()?.len();
        let mut header = [0u8; FILE_HEADER_LEN as usize];
        if file_len < FILE_HEADER_LEN {
            return Err(StreamError::DataLoss {
                extent_id: id,
                offset: 0,
                reason: "file header is torn".into(),
            });
        }
        file.read_exact_at(&mut header, 0)?;
        format::check_file_header(&header, id)?;

        let seal_path = seal_path(dir, id);
        let sealed_length = match std::fs::read(&seal_path) {
            Ok(bytes) => Some(format::decode_seal(&bytes, id)?),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => return Err(err.into()),
        };
        let (length, verified_length, sealed) = match sealed_length {
            Some(sealed_length) => {
                if file_len > sealed_length {
                    // The seal marker was written but the crash came before the truncation.
                    file.set_len(sealed_length)?;
                    file.sync_all()?;
                } else if file_len < sealed_length {
                    tracing::error!(
                        extent_id = id.get(),
                        file_len,
                        sealed_length,
                        "sealed extent is shorter than its seal"
                    );
                }
                let length = file_len.min(sealed_length);
                (length, length, true)
            }
            None => (file_len, verified_tail(&file, id, file_len)?, false),
        };
        let recovery = Recovery {
            truncated_bytes: file_len.saturating_sub(length),
            unverified_tail_bytes: length - verified_length,
        };
        let state = ReplicaState {
            length,
            sealed,
            fenced: verified_length < length,
            verified_length,
        };
        Ok((
            Self {
                id,
                path,
                seal_path,
                file,
                state: RwLock::new(state),
            },
            recovery,
        ))
    }

    pub fn id(&self) -> ExtentId {
        self.id
    }

    fn read_state(&self) -> Result<RwLockReadGuard<'_, ReplicaState>> {
        self.state
            .read()
            .map_err(|_| StreamError::Unavailable(format!("{} state lock poisoned", self.id)))
    }

    fn write_state(&self) -> Result<RwLockWriteGuard<'_, ReplicaState>> {
        self.state
            .write()
            .map_err(|_| StreamError::Unavailable(format!("{} state lock poisoned", self.id)))
    }

    pub fn state(&self) -> Result<ReplicaState> {
        Ok(*self.read_state()?)
    }

    /// Stops accepting appends (the stream manager is about to seal); returns the state then.
    pub fn fence(&self) -> Result<ReplicaState> {
        let mut state = self.write_state()?;
        state.fenced = true;
        Ok(*state)
    }

    /// The offset the next append goes to, after checking the replica accepts appends and,
    /// for a secondary, that `expected_offset` equals its length.
    pub fn next_offset(&self, expected_offset: Option<u64>) -> Result<u64> {
        let state = self.read_state()?;
        if state.sealed || state.fenced {
            return Err(StreamError::Sealed {
                extent_id: self.id,
                length: state.length,
            });
        }
        if let Some(offset) = expected_offset {
            if offset != state.length {
                return Err(StreamError::OffsetMismatch {
                    extent_id: self.id,
                    offset,
                    length: state.length,
                });
            }
        }
        Ok(state.length)
    }

    /// Writes an encoded record at `offset` (from [`Self::next_offset`]), fsyncs, and publishes
    /// the new length. Returns the end offset. Refused if the replica was fenced meanwhile.
    pub fn write_record(&self, offset: u64, record: &[u8]) -> Result<u64> {
        self.write_record_checked(offset, record, false)
    }

    /// [`Self::write_record`]; `fail_sync` is a fail point: the fsync reports an I/O error
    /// after the bytes were written, as a failing disk does.
    pub(crate) fn write_record_checked(
        &self,
        offset: u64,
        record: &[u8],
        fail_sync: bool,
    ) -> Result<u64> {
        let written = self.file.write_all_at(record, offset).and_then(|()| {
            if fail_sync {
                return Err(std::io::Error::other("injected fsync failure"));
            }
            self.file.sync_data()
        });
        if let Err(err) = written {
            // Drop whatever part of the record reached the file; it was never acknowledged.
            if let Err(cut) = self.file.set_len(offset) {
                tracing::error!(extent_id = self.id.get(), %cut, "could not cut a failed append");
            }
            return Err(err.into());
        }
        let mut state = self.write_state()?;
        if state.sealed || state.fenced || state.length != offset {
            if !state.sealed && state.length == offset {
                // Fenced meanwhile: the record stays unpublished and its bytes go.
                if let Err(cut) = self.file.set_len(offset) {
                    tracing::error!(extent_id = self.id.get(), %cut, "could not cut a fenced append");
                }
            }
            return Err(StreamError::Sealed {
                extent_id: self.id,
                length: state.length,
            });
        }
        state.length = offset + record.len() as u64;
        state.verified_length = state.length;
        Ok(state.length)
    }

    /// Reads whole, verified records from `offset`: at most `max_records`, stopping once
    /// `max_bytes` payload bytes were gathered (at least one record when one exists). A record
    /// that fails its checks is never returned: as the first record it is an error, later it
    /// ends the batch (the next read reports it).
    pub fn read(&self, offset: u64, max_records: usize, max_bytes: u64) -> Result<ReadBatch> {
        let state = self.read_state()?;
        if offset < FILE_HEADER_LEN || offset > state.length {
            return Err(StreamError::OutOfRange {
                extent_id: self.id,
                offset,
                length: state.length,
            });
        }
        let mut batch = ReadBatch {
            next_offset: offset,
            length: state.length,
            sealed: state.sealed,
            ..Default::default()
        };
        let mut gathered_bytes = 0u64;
        while batch.next_offset < state.length && batch.records.len() < max_records.max(1) {
            if !batch.records.is_empty() && gathered_bytes >= max_bytes {
                break;
            }
            match self.read_record_at(batch.next_offset, state.length) {
                Ok((payload, end)) => {
                    gathered_bytes += payload.len() as u64;
                    batch.records.push((batch.next_offset, payload));
                    batch.next_offset = end;
                }
                Err(err) if batch.records.is_empty() => return Err(err),
                Err(_) => break,
            }
        }
        Ok(batch)
    }

    /// One verified record at `offset`, and its end offset.
    fn read_record_at(&self, offset: u64, length: u64) -> Result<(Vec<u8>, u64)> {
        let data_loss = |reason: String| {
            crate::metrics::checksum_failures().inc();
            tracing::error!(extent_id = self.id.get(), offset, %reason, "extent record failed verification");
            StreamError::DataLoss {
                extent_id: self.id,
                offset,
                reason,
            }
        };
        if offset + RECORD_HEADER_LEN > length {
            return Err(data_loss("record header runs past the extent end".into()));
        }
        let mut header_bytes = [0u8; RECORD_HEADER_LEN as usize];
        self.file.read_exact_at(&mut header_bytes, offset)?;
        let header = RecordHeader::decode(&header_bytes).map_err(data_loss)?;
        let end = offset + header.record_len();
        if end > length {
            return Err(data_loss(format!(
                "record of {} bytes runs past the extent end {length}",
                header.payload_len
            )));
        }
        let mut payload = vec![0u8; header.payload_len as usize];
        self.file
            .read_exact_at(&mut payload, offset + RECORD_HEADER_LEN)?;
        header.verify(&payload).map_err(data_loss)?;
        Ok((payload, end))
    }

    /// Seals at `length`: writes the seal marker durably, then cuts the file there. Sealing
    /// again at the same length is a no-op; at another length it fails.
    pub fn seal(&self, length: u64) -> Result<u64> {
        let mut state = self.write_state()?;
        if state.sealed {
            if state.length == length {
                return Ok(length);
            }
            return Err(StreamError::Sealed {
                extent_id: self.id,
                length: state.length,
            });
        }
        if length < FILE_HEADER_LEN || length > state.length {
            return Err(StreamError::OutOfRange {
                extent_id: self.id,
                offset: length,
                length: state.length,
            });
        }
        strata_util::files::write_durably(&self.seal_path, &format::encode_seal(self.id, length))?;
        self.file.set_len(length)?;
        self.file.sync_all()?;
        state.sealed = true;
        state.length = length;
        state.verified_length = state.verified_length.min(length);
        Ok(length)
    }

    /// Removes the replica's files.
    pub fn delete(&self) -> Result<()> {
        let mut state = self.write_state()?;
        state.sealed = true;
        for path in [&self.seal_path, &self.path] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err.into()),
            }
        }
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

/// Walks the record headers of an unsealed replica and returns the end of its last record that
/// verifies: the file length when the tail is whole. Only the last record's payload is checked
/// here (every earlier one was acknowledged before the next was sent; readers and the scrubber
/// check them). A corrupt header far from the end is left in place too (readers report it).
fn verified_tail(file: &File, id: ExtentId, file_len: u64) -> Result<u64> {
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    reader.seek(SeekFrom::Start(FILE_HEADER_LEN))?;
    let mut position = FILE_HEADER_LEN;
    let verified = loop {
        if position == file_len {
            break file_len;
        }
        if file_len - position < RECORD_HEADER_LEN {
            break position;
        }
        let mut header_bytes = [0u8; RECORD_HEADER_LEN as usize];
        reader.read_exact(&mut header_bytes)?;
        let header = match RecordHeader::decode(&header_bytes) {
            Ok(header) => header,
            Err(reason)
                if file_len - position <= RECORD_HEADER_LEN + RECORD_PAYLOAD_BYTES_MAX as u64 =>
            {
                tracing::warn!(extent_id = id.get(), position, %reason, "unreadable record header in the tail");
                break position;
            }
            Err(reason) => {
                tracing::error!(extent_id = id.get(), position, %reason, "corrupt record header mid-extent; keeping the rest");
                break file_len;
            }
        };
        let end = position + header.record_len();
        if end > file_len {
            break position;
        }
        if end == file_len {
            let mut payload = vec![0u8; header.payload_len as usize];
            reader.read_exact(&mut payload)?;
            if let Err(reason) = header.verify(&payload) {
                tracing::warn!(extent_id = id.get(), position, %reason, "last record fails its checksum");
                break position;
            }
            break file_len;
        }
        reader.seek_relative(i64::from(header.payload_len))?;
        position = end;
    };
    if verified < file_len {
        tracing::warn!(
            extent_id = id.get(),
            verified_length = verified,
            unverified_bytes = file_len - verified,
            "extent tail does not verify: kept, appends refused until the extent is sealed"
        );
    }
    Ok(verified)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(replica: &ExtentReplica, payload: &[u8]) -> (u64, u64) {
        let offset = replica.next_offset(None).unwrap();
        let end = replica
            .write_record(offset, &format::encode_record(payload).unwrap())
            .unwrap();
        (offset, end)
    }

    #[test]
    fn offsets_are_file_positions() {
        let dir = tempfile::tempdir().unwrap();
        let replica = ExtentReplica::create(dir.path(), ExtentId::new(7)).unwrap();
        assert_eq!(
            append(&replica, b"abc"),
            (FILE_HEADER_LEN, FILE_HEADER_LEN + RECORD_HEADER_LEN + 3)
        );
        let (second, end) = append(&replica, b"defgh");
        assert_eq!(second, FILE_HEADER_LEN + RECORD_HEADER_LEN + 3);
        assert_eq!(
            end,
            std::fs::metadata(extent_path(dir.path(), ExtentId::new(7)))
                .unwrap()
                .len()
        );
        let batch = replica.read(FILE_HEADER_LEN, 10, 1 << 20).unwrap();
        assert_eq!(
            batch.records,
            vec![
                (FILE_HEADER_LEN, b"abc".to_vec()),
                (second, b"defgh".to_vec())
            ]
        );
        assert_eq!(batch.next_offset, end);
        let one = replica.read(second, 1, 1).unwrap();
        assert_eq!(one.records, vec![(second, b"defgh".to_vec())]);
        assert!(replica.read(end, 10, 100).unwrap().records.is_empty());
        assert!(matches!(
            replica.read(end + 1, 1, 1),
            Err(StreamError::OutOfRange { .. })
        ));
        // A secondary must append exactly at its length.
        assert!(matches!(
            replica.next_offset(Some(end + 5)),
            Err(StreamError::OffsetMismatch { .. })
        ));
    }

    #[test]
    fn corrupt_record_is_never_returned() {
        let dir = tempfile::tempdir().unwrap();
        let replica = ExtentReplica::create(dir.path(), ExtentId::new(1)).unwrap();
        let (first, _) = append(&replica, b"first record");
        let (second, _) = append(&replica, b"second record");
        drop(replica);
        // Flip one payload bit of the first record on disk.
        let path = extent_path(dir.path(), ExtentId::new(1));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[(first + RECORD_HEADER_LEN + 2) as usize] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let (replica, recovery) = ExtentReplica::open(dir.path(), ExtentId::new(1)).unwrap();
        assert_eq!(recovery.truncated_bytes, 0, "mid-extent damage is not cut");
        match replica.read(first, 10, 1 << 20) {
            Err(StreamError::DataLoss {
                extent_id, offset, ..
            }) => assert_eq!((extent_id, offset), (ExtentId::new(1), first)),
            other => panic!("expected data loss, got {other:?}"),
        }
        assert_eq!(replica.read(second, 10, 1 << 20).unwrap().records.len(), 1);
    }

    #[test]
    fn unverified_tail_is_kept_and_fenced_on_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let replica = ExtentReplica::create(dir.path(), ExtentId::new(3)).unwrap();
        let (_, good_end) = append(&replica, b"acknowledged");
        drop(replica);
        let path = extent_path(dir.path(), ExtentId::new(3));
        // Half a record: its header promises more payload than the file holds.
        let torn = format::encode_record(&[9u8; 100]).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&torn[..40])
            .unwrap();
        let (replica, recovery) = ExtentReplica::open(dir.path(), ExtentId::new(3)).unwrap();
        assert_eq!(recovery.truncated_bytes, 0, "opening cuts nothing");
        assert_eq!(recovery.unverified_tail_bytes, 40);
        let state = replica.state().unwrap();
        assert_eq!(
            (state.length, state.verified_length),
            (good_end + 40, good_end)
        );
        assert!(state.tail_unverified() && state.fenced);
        assert!(matches!(
            replica.next_offset(None),
            Err(StreamError::Sealed { .. })
        ));
        // Sealing at the length the good replicas agree on cuts the torn bytes.
        assert_eq!(replica.seal(good_end).unwrap(), good_end);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good_end);
        assert!(!replica.state().unwrap().tail_unverified());
    }

    #[test]
    fn damaged_last_record_is_never_cut() {
        let dir = tempfile::tempdir().unwrap();
        let replica = ExtentReplica::create(dir.path(), ExtentId::new(4)).unwrap();
        let (first, _) = append(&replica, b"first, acknowledged");
        let (last, end) = append(&replica, b"last, acknowledged too");
        drop(replica);
        let path = extent_path(dir.path(), ExtentId::new(4));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[(last + RECORD_HEADER_LEN + 1) as usize] ^= 0x08;
        std::fs::write(&path, &bytes).unwrap();
        let (replica, recovery) = ExtentReplica::open(dir.path(), ExtentId::new(4)).unwrap();
        assert_eq!(recovery.truncated_bytes, 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), end, "no byte cut");
        let state = replica.state().unwrap();
        assert_eq!((state.length, state.verified_length), (end, last));
        assert_eq!(replica.read(first, 1, 1).unwrap().records.len(), 1);
        assert!(matches!(
            replica.read(last, 1, 1),
            Err(StreamError::DataLoss { .. })
        ));
        // A flipped length field looks torn (the record "runs past the end"): kept as well.
        drop(replica);
        bytes[(last + RECORD_HEADER_LEN + 1) as usize] ^= 0x08;
        bytes[(last + 5) as usize] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let (replica, _) = ExtentReplica::open(dir.path(), ExtentId::new(4)).unwrap();
        let state = replica.state().unwrap();
        assert_eq!((state.length, state.verified_length), (end, last));
    }

    #[test]
    fn seal_persists_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let replica = ExtentReplica::create(dir.path(), ExtentId::new(5)).unwrap();
        let (_, first_end) = append(&replica, b"one");
        append(&replica, b"two, unacknowledged");
        assert_eq!(replica.seal(first_end).unwrap(), first_end);
        assert_eq!(
            replica.seal(first_end).unwrap(),
            first_end,
            "sealing again is a no-op"
        );
        assert!(replica.seal(first_end + 1).is_err());
        assert!(matches!(
            replica.next_offset(None),
            Err(StreamError::Sealed { .. })
        ));
        drop(replica);
        let (replica, _) = ExtentReplica::open(dir.path(), ExtentId::new(5)).unwrap();
        let state = replica.state().unwrap();
        assert!(state.sealed);
        assert_eq!(state.length, first_end);
        assert_eq!(
            std::fs::metadata(extent_path(dir.path(), ExtentId::new(5)))
                .unwrap()
                .len(),
            first_end
        );
        assert!(matches!(
            replica.next_offset(None),
            Err(StreamError::Sealed { .. })
        ));
    }

    #[test]
    fn fenced_replica_refuses_appends() {
        let dir = tempfile::tempdir().unwrap();
        let replica = ExtentReplica::create(dir.path(), ExtentId::new(9)).unwrap();
        let offset = replica.next_offset(None).unwrap();
        replica.fence().unwrap();
        // A write that was already under way when the fence came is not published.
        assert!(replica
            .write_record(offset, &format::encode_record(b"late").unwrap())
            .is_err());
        assert_eq!(replica.state().unwrap().length, FILE_HEADER_LEN);
        assert!(replica.next_offset(None).is_err());
    }
}
