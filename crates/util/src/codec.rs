//! The one record codec for small records kept in sled (the raft log and state machines, the
//! location service's bucket table) and for raft snapshot files:
//!
//! ```text
//! [format version: u8 = 2][crc32 of payload: u32 big-endian][payload]
//! ```
//!
//! The payload is the caller's encoding (JSON, bincode, prost); this module only frames it. A
//! record whose version is unknown or whose checksum does not match is never handed back.
//!
//! Version 1 was the same frame written by two crates with opposite CRC byte orders: raft
//! wrote big-endian, the location store little-endian. The version byte cannot tell those apart,
//! so each reader names the order its crate wrote ([`Legacy`]) and version-1 records already on
//! disk still decode; everything written now is version 2, the same everywhere.
//!
//! The extent record format (crates/stream) and the partition layer's log records are other
//! formats with their own headers, not this one.

/// Version of the frame written today.
pub const FORMAT_VERSION: u8 = 2;
/// The version every crate wrote before this codec, each with its own CRC byte order.
pub const LEGACY_FORMAT_VERSION: u8 = 1;
/// Version byte and CRC.
pub const HEADER_BYTES: usize = 5;

/// The CRC byte order of version-1 records written by the reader's crate before version 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Legacy {
    /// crates/raft wrote `[1][crc32 BE][payload]`: the same as version 2 but for the byte.
    CrcBigEndian,
    /// crates/location wrote `[1][crc32 LE][payload]`.
    CrcLittleEndian,
}

/// Why a frame was refused. Callers wrap it in their own error with the record's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// Fewer bytes than the header.
    Short { len_bytes: usize },
    /// A version byte this reader does not know (written by a newer binary, or damage).
    UnknownVersion { version: u8 },
    /// The payload's CRC does not match the stored one.
    Checksum { stored: u32, actual: u32 },
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Short { len_bytes } => {
                write!(f, "{len_bytes} bytes is shorter than the header")
            }
            Self::UnknownVersion { version } => write!(f, "unknown format version {version}"),
            Self::Checksum { stored, actual } => {
                write!(f, "checksum {actual:08x} != stored {stored:08x}")
            }
        }
    }
}

impl std::error::Error for CodecError {}

/// Wraps `payload` in the current (version 2) frame.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The payload of a frame, after checking version and checksum. Version-1 frames are read with
/// the CRC byte order `legacy` names.
pub fn unframe(bytes: &[u8], legacy: Legacy) -> Result<&[u8], CodecError> {
    if bytes.len() < HEADER_BYTES {
        return Err(CodecError::Short {
            len_bytes: bytes.len(),
        });
    }
    let crc_bytes = [bytes[1], bytes[2], bytes[3], bytes[4]];
    let stored = match (bytes[0], legacy) {
        (FORMAT_VERSION, _) | (LEGACY_FORMAT_VERSION, Legacy::CrcBigEndian) => {
            u32::from_be_bytes(crc_bytes)
        }
        (LEGACY_FORMAT_VERSION, Legacy::CrcLittleEndian) => u32::from_le_bytes(crc_bytes),
        (version, _) => return Err(CodecError::UnknownVersion { version }),
    };
    let payload = &bytes[HEADER_BYTES..];
    let actual = crc32fast::hash(payload);
    if actual != stored {
        return Err(CodecError::Checksum { stored, actual });
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_catches_damage() {
        let bytes = frame(b"payload");
        assert_eq!(bytes[0], FORMAT_VERSION);
        for legacy in [Legacy::CrcBigEndian, Legacy::CrcLittleEndian] {
            assert_eq!(unframe(&bytes, legacy).unwrap(), b"payload");
        }
        let mut damaged = bytes.clone();
        *damaged.last_mut().unwrap() ^= 0x01;
        assert!(matches!(
            unframe(&damaged, Legacy::CrcBigEndian),
            Err(CodecError::Checksum { .. })
        ));
        let mut unknown = bytes.clone();
        unknown[0] = 9;
        assert_eq!(
            unframe(&unknown, Legacy::CrcBigEndian),
            Err(CodecError::UnknownVersion { version: 9 })
        );
        assert_eq!(
            unframe(&[2, 0], Legacy::CrcBigEndian),
            Err(CodecError::Short { len_bytes: 2 })
        );
        assert_eq!(unframe(&frame(b""), Legacy::CrcBigEndian).unwrap(), b"");
    }

    /// Bytes exactly as the two version-1 writers laid them out, built by hand (not by this
    /// module), so a change here cannot silently stop reading what is on disk.
    #[test]
    fn version_one_records_of_both_crates_still_decode() {
        let payload = b"{\"term\":3}";
        let crc = crc32fast::hash(payload);
        let mut raft_v1 = vec![1u8];
        raft_v1.extend_from_slice(&crc.to_be_bytes());
        raft_v1.extend_from_slice(payload);
        let mut location_v1 = vec![1u8];
        location_v1.extend_from_slice(&crc.to_le_bytes());
        location_v1.extend_from_slice(payload);

        assert_eq!(unframe(&raft_v1, Legacy::CrcBigEndian).unwrap(), payload);
        assert_eq!(
            unframe(&location_v1, Legacy::CrcLittleEndian).unwrap(),
            payload
        );
        // The wrong order is refused, not misread.
        assert!(matches!(
            unframe(&raft_v1, Legacy::CrcLittleEndian),
            Err(CodecError::Checksum { .. })
        ));
        // Version 2 differs from raft's version 1 only in the version byte.
        assert_eq!(&frame(payload)[1..], &raft_v1[1..]);
    }
}
