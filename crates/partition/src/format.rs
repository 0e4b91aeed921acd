//! On-stream encodings of a range's commit log and checkpoints.
//!
//! A record's payload is `[FORMAT_VERSION u8][prost message]`. The stream layer frames each
//! record with its length and a CRC32, so corruption is caught there; this layer checks the
//! version and that the message decodes.
//!
//! A message larger than one stream record (`RECORD_PAYLOAD_BYTES_MAX`, 8 MiB) is written as
//! several FRAGMENT records, `[FRAGMENT_VERSION u8][FragmentHeader][bytes]`, whose bytes
//! concatenate to the version-1 payload. S3 allows such commits: aborting 10,000 parts of a
//! 1,024-byte key deletes ~10.5 MB of keys, and a 5 TiB object's chunk list alone is ~80 MB.
//! Fragments rather than a more compact encoding (say one "delete this key prefix" mutation)
//! because only fragments bound every case: a chunk list cannot be made small, and a single
//! index value of a checkpoint is as large as the largest commit.
//!
//! Atomicity: a reader applies a fragmented message only once every fragment arrived, in order
//! ([`Reassembler`]). One writer appends a message's fragments back to back (the commit lock,
//! the fence on load), so a message whose fragments stop early (the append failed, the writer
//! died) is followed by a different message or by nothing: it is dropped, exactly as a single
//! record that never landed. A retried append can leave a fragment twice in a row: the copy is
//! skipped. Each message carries a random id (two attempts at one log sequence never mix) and
//! a CRC32C and length over the whole message, checked after reassembly. Version-1 records
//! written by older code read as before; older code cannot read fragments, which only
//! messages it could not have written at all use.

use crate::records::{CheckpointRecord, LogEntry};
use bytes::Bytes;
use prost::Message;

pub const FORMAT_VERSION: u8 = 1;
/// A fragment of a message too large for one record (see the module doc).
pub const FRAGMENT_VERSION: u8 = 2;

/// Version byte, id u64, index u32, count u32, total length u64, CRC32C u32 (little-endian).
const FRAGMENT_HEADER_LEN: usize = 1 + 8 + 4 + 4 + 8 + 4;
/// Largest payload of one record (the stream layer refuses larger ones).
pub const RECORD_BYTES_MAX: usize = strata_stream::extent::RECORD_PAYLOAD_BYTES_MAX;
/// Largest whole message: far above the largest commit S3 allows (a 5 TiB object's ~80 MB
/// chunk list plus its previous version's, and 10,000 part deletions), and a bound on what a
/// reader allocates for a damaged fragment header.
pub const MESSAGE_BYTES_MAX: usize = 1024 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FormatError {
    #[error("empty record")]
    Empty,
    #[error("unknown format version {0}")]
    UnknownVersion(u8),
    #[error("undecodable record: {0}")]
    Decode(String),
    #[error("message of {0} bytes exceeds the limit of {MESSAGE_BYTES_MAX} bytes")]
    TooLarge(usize),
}

fn encode<M: Message>(message: &M) -> Bytes {
    let mut out = Vec::with_capacity(1 + message.encoded_len());
    out.push(FORMAT_VERSION);
    message.encode(&mut out).expect("Vec grows as needed");
    out.into()
}

fn decode<M: Message + Default>(payload: &[u8]) -> Result<M, FormatError> {
    let (&version, body) = payload.split_first().ok_or(FormatError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(FormatError::UnknownVersion(version));
    }
    M::decode(body).map_err(|err| FormatError::Decode(err.to_string()))
}

fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}

/// The records carrying `whole` (a version-1 payload): itself when it fits one record, else
/// fragments of at most `record_max` bytes each.
fn into_records(whole: Bytes, record_max: usize) -> Result<Vec<Bytes>, FormatError> {
    if whole.len() <= record_max {
        return Ok(vec![whole]);
    }
    if whole.len() > MESSAGE_BYTES_MAX {
        return Err(FormatError::TooLarge(whole.len()));
    }
    let id = rand::random::<u64>();
    let crc = crc32c(&whole);
    let step = record_max - FRAGMENT_HEADER_LEN;
    let count = whole.len().div_ceil(step) as u32;
    let records = whole
        .chunks(step)
        .enumerate()
        .map(|(index, bytes)| {
            let mut record = Vec::with_capacity(FRAGMENT_HEADER_LEN + bytes.len());
            record.push(FRAGMENT_VERSION);
            record.extend_from_slice(&id.to_le_bytes());
            record.extend_from_slice(&(index as u32).to_le_bytes());
            record.extend_from_slice(&count.to_le_bytes());
            record.extend_from_slice(&(whole.len() as u64).to_le_bytes());
            record.extend_from_slice(&crc.to_le_bytes());
            record.extend_from_slice(bytes);
            Bytes::from(record)
        })
        .collect();
    Ok(records)
}

/// One log entry as the records to append, in order (one, unless it exceeds a record).
pub fn encode_log_records(entry: &LogEntry) -> Result<Vec<Bytes>, FormatError> {
    into_records(encode(entry), RECORD_BYTES_MAX)
}

pub fn encode_log_entry(entry: &LogEntry) -> Bytes {
    encode(entry)
}

pub fn decode_log_entry(payload: &[u8]) -> Result<LogEntry, FormatError> {
    decode(payload)
}

/// One checkpoint record as the records to append, in order.
pub fn encode_checkpoint_records(record: &CheckpointRecord) -> Result<Vec<Bytes>, FormatError> {
    into_records(encode(record), RECORD_BYTES_MAX)
}

pub fn encode_checkpoint(record: &CheckpointRecord) -> Bytes {
    encode(record)
}

pub fn decode_checkpoint(payload: &[u8]) -> Result<CheckpointRecord, FormatError> {
    decode(payload)
}

struct Fragment<'a> {
    id: u64,
    index: u32,
    count: u32,
    total: usize,
    crc: u32,
    bytes: &'a [u8],
}

fn parse_fragment(payload: &[u8]) -> Result<Fragment<'_>, FormatError> {
    if payload.len() < FRAGMENT_HEADER_LEN {
        return Err(FormatError::Decode("short fragment header".into()));
    }
    let u32_at = |at: usize| u32::from_le_bytes(payload[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(payload[at..at + 8].try_into().expect("8 bytes"));
    let fragment = Fragment {
        id: u64_at(1),
        index: u32_at(9),
        count: u32_at(13),
        total: usize::try_from(u64_at(17)).unwrap_or(usize::MAX),
        crc: u32_at(25),
        bytes: &payload[FRAGMENT_HEADER_LEN..],
    };
    if fragment.index >= fragment.count || fragment.total > MESSAGE_BYTES_MAX {
        return Err(FormatError::Decode(format!(
            "fragment {} of {} of a {}-byte message",
            fragment.index, fragment.count, fragment.total
        )));
    }
    Ok(fragment)
}

/// A message being reassembled from its fragments.
struct Building {
    id: u64,
    next: u32,
    count: u32,
    total: usize,
    crc: u32,
    bytes: Vec<u8>,
}

/// Turns the records of a stream, read in order, back into whole version-1 payloads (see the
/// module doc for the rules).
#[derive(Default)]
pub struct Reassembler {
    building: Option<Building>,
}

impl Reassembler {
    /// The whole payload `record` completes, if any.
    pub fn push(&mut self, record: Bytes) -> Result<Option<Bytes>, FormatError> {
        match record.first() {
            None => Err(FormatError::Empty),
            Some(&FORMAT_VERSION) => {
                // Whatever was being gathered stopped early: it never committed.
                self.building = None;
                Ok(Some(record))
            }
            Some(&FRAGMENT_VERSION) => self.push_fragment(parse_fragment(&record)?),
            Some(&version) => Err(FormatError::UnknownVersion(version)),
        }
    }

    fn push_fragment(&mut self, fragment: Fragment<'_>) -> Result<Option<Bytes>, FormatError> {
        match &mut self.building {
            Some(building) if building.id == fragment.id && fragment.index < building.next => {
                return Ok(None); // the copy a retried append left
            }
            Some(building) if building.id == fragment.id && fragment.index == building.next => {
                building.bytes.extend_from_slice(fragment.bytes);
                building.next += 1;
            }
            _ if fragment.index == 0 => {
                self.building = Some(Building {
                    id: fragment.id,
                    next: 1,
                    count: fragment.count,
                    total: fragment.total,
                    crc: fragment.crc,
                    bytes: Vec::with_capacity(fragment.total),
                });
                if let Some(building) = &mut self.building {
                    building.bytes.extend_from_slice(fragment.bytes);
                }
            }
            // The tail of a message whose head is not in what was read (a replay starts at
            // the last record of the last applied commit), or of one that stopped early.
            _ => {
                self.building = None;
                return Ok(None);
            }
        }
        let done = self
            .building
            .as_ref()
            .is_some_and(|building| building.next == building.count);
        if !done {
            return Ok(None);
        }
        let building = self.building.take().expect("checked above");
        if building.bytes.len() != building.total || crc32c(&building.bytes) != building.crc {
            return Err(FormatError::Decode(format!(
                "reassembled message of {} bytes (expected {}) fails its checksum",
                building.bytes.len(),
                building.total
            )));
        }
        Ok(Some(building.bytes.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{mutation::Value, Mutation};

    #[test]
    fn log_entries_round_trip_and_versions_are_checked() {
        let entry = LogEntry {
            sequence: 42,
            mutations: vec![Mutation {
                key: b"obkt\0k".to_vec(),
                value: Some(Value::Tombstone(true)),
            }],
            committed_ms: 1_764_892_800_000,
            origin: crate::records::CommitOrigin::Compaction as i32,
            replication: Some(crate::records::ReplicationCursors {
                floor_ms: 1_764_892_700_000,
                lagging: [("slow".to_string(), 1_764_892_600_000)].into(),
            }),
        };
        let bytes = encode_log_entry(&entry);
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode_log_entry(&bytes).unwrap(), entry);

        let mut future = bytes.to_vec();
        future[0] = 9;
        assert_eq!(
            decode_log_entry(&future),
            Err(FormatError::UnknownVersion(9))
        );
        assert_eq!(decode_log_entry(&[]), Err(FormatError::Empty));
        assert!(matches!(
            decode_log_entry(&[FORMAT_VERSION, 0xff, 0xff]),
            Err(FormatError::Decode(_))
        ));
    }

    fn reassemble(records: &[Bytes]) -> Vec<Bytes> {
        let mut reassembler = Reassembler::default();
        records
            .iter()
            .filter_map(|record| reassembler.push(record.clone()).unwrap())
            .collect()
    }

    #[test]
    fn a_message_larger_than_a_record_is_fragmented_and_reassembled_whole() {
        let whole: Bytes = std::iter::once(FORMAT_VERSION)
            .chain((0..10_000u32).map(|i| i as u8))
            .collect::<Vec<u8>>()
            .into();
        let records = into_records(whole.clone(), 1_000).unwrap();
        assert_eq!(records.len(), 11);
        assert!(records
            .iter()
            .all(|r| r.len() <= 1_000 && r[0] == FRAGMENT_VERSION));
        assert_eq!(reassemble(&records), vec![whole.clone()]);
        // A duplicate left by a retried append is skipped.
        let mut duplicated = records.clone();
        duplicated.insert(4, records[3].clone());
        assert_eq!(reassemble(&duplicated), vec![whole.clone()]);
        // A message that stopped early is dropped, and what follows is read.
        let small = encode_log_entry(&LogEntry::default());
        let mut stopped: Vec<Bytes> = records[..5].to_vec();
        stopped.push(small.clone());
        assert_eq!(reassemble(&stopped), vec![small.clone()]);
        // A second attempt at the same message (another id) after an abandoned one.
        let retried = into_records(whole.clone(), 1_000).unwrap();
        let mut attempts: Vec<Bytes> = records[..5].to_vec();
        attempts.extend(retried);
        assert_eq!(reassemble(&attempts), vec![whole.clone()]);
        // Reading from the last fragment of a message (a replay's start) yields nothing.
        assert!(reassemble(&records[10..]).is_empty());
        // A damaged message fails its checksum.
        let mut damaged = records.clone();
        let mut last = damaged[10].to_vec();
        *last.last_mut().unwrap() ^= 1;
        damaged[10] = last.into();
        let mut reassembler = Reassembler::default();
        let outcome: Result<Vec<_>, _> = damaged.into_iter().map(|r| reassembler.push(r)).collect();
        assert!(matches!(outcome, Err(FormatError::Decode(_))));
        // Version-1 records read as before.
        assert_eq!(reassemble(std::slice::from_ref(&small)), vec![small]);
    }

    #[test]
    fn a_5_tib_chunk_list_is_within_the_message_bound() {
        use crate::records::{ChunkLocation, ObjectRecord};
        // 5 TiB in 1 MiB chunks, spread over large extent ids and offsets (worst varints).
        let chunks = 5 * 1024 * 1024u64;
        let one = ChunkLocation {
            extent_id: u64::from(u32::MAX),
            offset: 1 << 35,
            length: 1 << 20,
        };
        let meta = ObjectRecord {
            chunks: vec![one; chunks as usize],
            ..Default::default()
        };
        let bytes = meta.encoded_len();
        assert!(
            bytes > RECORD_BYTES_MAX && 3 * bytes < MESSAGE_BYTES_MAX,
            "{bytes}"
        );
    }
}
