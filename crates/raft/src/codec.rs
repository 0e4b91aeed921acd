//! The on-disk record format of every value a member writes to sled:
//!
//! ```text
//! [format version: u8 = 1][crc32 of payload: u32 big-endian][payload]
//! ```
//! The payload is JSON for records ([`encode`] / [`decode`]) and bincode for snapshot files
//! ([`frame`] / [`unframe`] around the caller's bytes). A record whose version is unknown or
//! whose checksum does not match is never decoded.

use crate::error::GroupError;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Version of the record format written today.
pub const FORMAT_VERSION: u8 = 1;
const HEADER_BYTES: usize = 5;

/// Wraps `payload` in the versioned, checksummed frame.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The payload of a frame written by [`frame`], after checking version and checksum; `key`
/// names the record in errors.
pub fn unframe<'a>(key: &str, bytes: &'a [u8]) -> Result<&'a [u8], GroupError> {
    let corrupt = |reason: String| GroupError::Corrupt {
        key: key.to_string(),
        reason,
    };
    if bytes.len() < HEADER_BYTES {
        return Err(corrupt(format!(
            "{} bytes is shorter than the header",
            bytes.len()
        )));
    }
    if bytes[0] != FORMAT_VERSION {
        return Err(corrupt(format!("unknown format version {}", bytes[0])));
    }
    let expected = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    let payload = &bytes[HEADER_BYTES..];
    let actual = crc32fast::hash(payload);
    if actual != expected {
        return Err(corrupt(format!(
            "checksum {actual:08x} != stored {expected:08x}"
        )));
    }
    Ok(payload)
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
}
