//! The on-disk record format of every value a member writes to sled, and of snapshot files:
//! the one versioned, checksummed frame of `strata_util::codec` (version 2 now; version 1,
//! which this crate wrote with a big-endian CRC, still reads). The payload is JSON for records
//! ([`encode`] / [`decode`]) and bincode for snapshot files ([`frame`] / [`unframe`] around the
//! caller's bytes). A record whose version is unknown or whose checksum does not match is never
//! decoded.

use crate::error::GroupError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use strata_util::codec::{self, Legacy};

/// Wraps `payload` in the versioned, checksummed frame.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    codec::frame(payload)
}

/// The payload of a frame written by [`frame`] (or by this crate before the shared codec),
/// after checking version and checksum; `key` names the record in errors.
pub fn unframe<'a>(key: &str, bytes: &'a [u8]) -> Result<&'a [u8], GroupError> {
    codec::unframe(bytes, Legacy::CrcBigEndian).map_err(|err| GroupError::Corrupt {
        key: key.to_string(),
        reason: err.to_string(),
    })
}

/// Encodes `value` as one versioned, checksummed JSON record.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, GroupError> {
    let payload = serde_json::to_vec(value)
        .map_err(|err| GroupError::Storage(format!("encoding record: {err}")))?;
    Ok(frame(&payload))
}

/// Decodes a record written by [`encode`]; `key` names it in errors.
pub fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, GroupError> {
    let payload = unframe(key, bytes)?;
    serde_json::from_slice(payload).map_err(|err| GroupError::Corrupt {
        key: key.to_string(),
        reason: format!("decoding: {err}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_catches_damage() {
        let value = vec![1u64, 2, 3];
        let mut bytes = encode(&value).unwrap();
        assert_eq!(decode::<Vec<u64>>("k", &bytes).unwrap(), value);
        let last = bytes.len() - 2;
        bytes[last] ^= 0x01;
        assert!(matches!(
            decode::<Vec<u64>>("k", &bytes),
            Err(GroupError::Corrupt { .. })
        ));
        let mut versioned = encode(&value).unwrap();
        versioned[0] = 9;
        assert!(decode::<Vec<u64>>("k", &versioned).is_err());
        assert!(decode::<Vec<u64>>("k", &[1, 2]).is_err());
        assert_eq!(unframe("k", &frame(b"raw")).unwrap(), b"raw");
    }

    /// A record as this crate wrote it before the shared codec (version 1, CRC big-endian).
    #[test]
    fn records_written_before_the_shared_codec_still_decode() {
        let payload = serde_json::to_vec(&vec![1u64, 2, 3]).unwrap();
        let mut old = vec![1u8];
        old.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
        old.extend_from_slice(&payload);
        assert_eq!(decode::<Vec<u64>>("k", &old).unwrap(), vec![1, 2, 3]);
    }
}
