//! On-stream encodings of a range's commit log and checkpoints.
//!
//! Every payload is `[FORMAT_VERSION u8][prost message]`. The stream layer frames each record
//! with its length and a CRC32, so corruption is caught there; this layer checks the version
//! and that the message decodes.

use prost::Message;
use strata_proto::partition::{CheckpointRecord, LogEntry};

pub const FORMAT_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FormatError {
    #[error("empty record")]
    Empty,
    #[error("unknown format version {0}")]
    UnknownVersion(u8),
    #[error("undecodable record: {0}")]
    Decode(String),
}

fn encode<M: Message>(message: &M) -> bytes::Bytes {
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

pub fn encode_log_entry(entry: &LogEntry) -> bytes::Bytes {
    encode(entry)
}

pub fn decode_log_entry(payload: &[u8]) -> Result<LogEntry, FormatError> {
    decode(payload)
}

pub fn encode_checkpoint(record: &CheckpointRecord) -> bytes::Bytes {
    encode(record)
}

pub fn decode_checkpoint(payload: &[u8]) -> Result<CheckpointRecord, FormatError> {
    decode(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_proto::partition::{mutation::Value, Mutation};

    #[test]
    fn log_entries_round_trip_and_versions_are_checked() {
        let entry = LogEntry {
            sequence: 42,
            mutations: vec![Mutation {
                key: b"obkt\0k".to_vec(),
                value: Some(Value::Tombstone(true)),
            }],
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
}
