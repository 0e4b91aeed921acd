//! The on-disk record format of every value the store writes to sled:
//!
//! ```text
//! [format version: u8 = 1][crc32 of payload: u32 big-endian][payload: JSON]
//! ```
//! A record whose version is unknown or whose checksum does not match is never decoded.

use crate::error::ManagerError;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Version of the record format written today.
pub const FORMAT_VERSION: u8 = 1;
const HEADER_BYTES: usize = 5;

/// Encodes `value` as one versioned, checksummed record.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ManagerError> {
    let payload = serde_json::to_vec(value)
        .map_err(|err| ManagerError::Storage(format!("encoding record: {err}")))?;
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes a record written by [`encode`]; `key` names it in errors.
pub fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, ManagerError> {
    let corrupt = |reason: String| ManagerError::Corrupt {
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
    serde_json::from_slice(payload).map_err(|err| corrupt(format!("decoding: {err}")))
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
            Err(ManagerError::Corrupt { .. })
        ));
        let mut versioned = encode(&value).unwrap();
        versioned[0] = 9;
        assert!(decode::<Vec<u64>>("k", &versioned).is_err());
        assert!(decode::<Vec<u64>>("k", &[1, 2]).is_err());
    }
}
