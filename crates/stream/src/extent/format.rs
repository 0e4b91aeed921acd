//! On-disk formats of an extent replica, all little-endian and versioned.
//!
//! ```text
//! <id>.ext   file header  "STRATAX\0" | version u32 (=1) | extent_id u64 | crc32 u32 (of the 20 bytes before)
//!            records      version u8 (=1) | 3 zero bytes | payload_len u32 | crc32 u32 | payload
//!                         (record crc32 covers the first 8 header bytes, then the payload)
//! <id>.seal  seal marker  version u32 (=1) | extent_id u64 | sealed_length u64 | crc32 u32 (of the 20 bytes before)
//! ```
//! A record's offset is the byte position of its header; the extent length is the file length.

use crate::error::{Result, StreamError};
use strata_types::ExtentId;

pub const FILE_MAGIC: &[u8; 8] = b"STRATAX\0";
pub const FILE_FORMAT_VERSION: u32 = 1;
/// Length of the file header; the first record starts here.
pub const FILE_HEADER_LEN: u64 = 24;
pub const RECORD_FORMAT_VERSION: u8 = 1;
pub const RECORD_HEADER_LEN: u64 = 12;
/// Largest record payload accepted.
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 8 * 1024 * 1024;
pub const SEAL_FORMAT_VERSION: u32 = 1;
pub const SEAL_FILE_LEN: usize = 24;

/// Encodes the file header of extent `extent_id`.
pub fn encode_file_header(extent_id: ExtentId) -> [u8; FILE_HEADER_LEN as usize] {
    let mut out = [0u8; FILE_HEADER_LEN as usize];
    out[0..8].copy_from_slice(FILE_MAGIC);
    out[8..12].copy_from_slice(&FILE_FORMAT_VERSION.to_le_bytes());
    out[12..20].copy_from_slice(&extent_id.get().to_le_bytes());
    let crc = crc32fast::hash(&out[0..20]);
    out[20..24].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Checks a file header and that it names `extent_id`.
pub fn check_file_header(bytes: &[u8], extent_id: ExtentId) -> Result<()> {
    let bad = |reason: &str| StreamError::DataLoss {
        extent_id,
        offset: 0,
        reason: format!("file header: {reason}"),
    };
    if bytes.len() < FILE_HEADER_LEN as usize {
        return Err(bad("too short"));
    }
    if &bytes[0..8] != FILE_MAGIC {
        return Err(bad("bad magic"));
    }
    let stored_crc = u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    if crc32fast::hash(&bytes[0..20]) != stored_crc {
        return Err(bad("checksum mismatch"));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != FILE_FORMAT_VERSION {
        return Err(bad(&format!("unknown format version {version}")));
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[12..20]);
    if u64::from_le_bytes(id) != extent_id.get() {
        return Err(bad(&format!("names extent {}", u64::from_le_bytes(id))));
    }
    Ok(())
}

/// Header bytes and payload of one record, ready to be written in one go.
pub fn encode_record(payload: &[u8]) -> Result<Vec<u8>> {
    if payload.len() > RECORD_PAYLOAD_BYTES_MAX {
        return Err(StreamError::PayloadTooLarge {
            len_bytes: payload.len(),
            max_bytes: RECORD_PAYLOAD_BYTES_MAX,
        });
    }
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN as usize + payload.len());
    out.push(RECORD_FORMAT_VERSION);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&out[0..8]);
    hasher.update(payload);
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// The CRC32 a record with this payload is stored with (over its first 8 header bytes, then
/// the payload): what [`encode_record`] writes. Receivers of copied records compare it.
pub fn record_crc(payload: &[u8]) -> u32 {
    let mut first_eight = [0u8; 8];
    first_eight[0] = RECORD_FORMAT_VERSION;
    first_eight[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&first_eight);
    hasher.update(payload);
    hasher.finalize()
}

/// A parsed record header: what it claims, still to be checked against the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub payload_len: u32,
    pub crc: u32,
    first_eight: [u8; 8],
}

impl RecordHeader {
    /// Parses and sanity-checks a record header (version, reserved bytes, payload bound).
    pub fn decode(bytes: &[u8; RECORD_HEADER_LEN as usize]) -> std::result::Result<Self, String> {
        if bytes[0] != RECORD_FORMAT_VERSION {
            return Err(format!("unknown record version {}", bytes[0]));
        }
        if bytes[1..4] != [0, 0, 0] {
            return Err("reserved header bytes are not zero".into());
        }
        let payload_len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        if payload_len as usize > RECORD_PAYLOAD_BYTES_MAX {
            return Err(format!("payload length {payload_len} exceeds the limit"));
        }
        let crc = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        let mut first_eight = [0u8; 8];
        first_eight.copy_from_slice(&bytes[0..8]);
        Ok(Self {
            payload_len,
            crc,
            first_eight,
        })
    }

    /// Bytes the whole record occupies.
    pub fn record_len(&self) -> u64 {
        RECORD_HEADER_LEN + u64::from(self.payload_len)
    }

    /// Whether `payload` is the payload this header was written with.
    pub fn verify(&self, payload: &[u8]) -> std::result::Result<(), String> {
        if payload.len() != self.payload_len as usize {
            return Err(format!(
                "payload is {} bytes, header says {}",
                payload.len(),
                self.payload_len
            ));
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&self.first_eight);
        hasher.update(payload);
        if hasher.finalize() != self.crc {
            return Err("record checksum mismatch".into());
        }
        Ok(())
    }
}

/// Encodes the seal marker of `extent_id` sealed at `sealed_length`.
pub fn encode_seal(extent_id: ExtentId, sealed_length: u64) -> [u8; SEAL_FILE_LEN] {
    let mut out = [0u8; SEAL_FILE_LEN];
    out[0..4].copy_from_slice(&SEAL_FORMAT_VERSION.to_le_bytes());
    out[4..12].copy_from_slice(&extent_id.get().to_le_bytes());
    out[12..20].copy_from_slice(&sealed_length.to_le_bytes());
    let crc = crc32fast::hash(&out[0..20]);
    out[20..24].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a seal marker of `extent_id`, returning the sealed length.
pub fn decode_seal(bytes: &[u8], extent_id: ExtentId) -> Result<u64> {
    let bad = |reason: String| StreamError::DataLoss {
        extent_id,
        offset: 0,
        reason: format!("seal file: {reason}"),
    };
    if bytes.len() != SEAL_FILE_LEN {
        return Err(bad(format!(
            "{} bytes, expected {SEAL_FILE_LEN}",
            bytes.len()
        )));
    }
    let stored_crc = u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    if crc32fast::hash(&bytes[0..20]) != stored_crc {
        return Err(bad("checksum mismatch".into()));
    }
    let version = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if version != SEAL_FORMAT_VERSION {
        return Err(bad(format!("unknown version {version}")));
    }
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[4..12]);
    if u64::from_le_bytes(word) != extent_id.get() {
        return Err(bad(format!("names extent {}", u64::from_le_bytes(word))));
    }
    word.copy_from_slice(&bytes[12..20]);
    let sealed_length = u64::from_le_bytes(word);
    // No seal is ever written below the file header (`seal` refuses it); opening cuts the file
    // to the sealed length, so such a marker would destroy the header (found by fuzzing).
    if sealed_length < FILE_HEADER_LEN {
        return Err(bad(format!(
            "sealed length {sealed_length} is inside the file header"
        )));
    }
    Ok(sealed_length)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of(record: &[u8]) -> RecordHeader {
        let mut header = [0u8; RECORD_HEADER_LEN as usize];
        header.copy_from_slice(&record[..RECORD_HEADER_LEN as usize]);
        RecordHeader::decode(&header).expect("header decodes")
    }

    #[test]
    fn record_framing_round_trips() {
        let record = encode_record(b"hello extent").unwrap();
        assert_eq!(record.len() as u64, RECORD_HEADER_LEN + 12);
        let header = header_of(&record);
        assert_eq!(header.payload_len, 12);
        assert_eq!(header.record_len(), record.len() as u64);
        header
            .verify(&record[RECORD_HEADER_LEN as usize..])
            .unwrap();
    }

    #[test]
    fn record_crc_matches_the_stored_one() {
        let record = encode_record(b"copied record").unwrap();
        assert_eq!(header_of(&record).crc, record_crc(b"copied record"));
    }

    #[test]
    fn flipped_payload_bit_is_detected() {
        let mut record = encode_record(b"hello extent").unwrap();
        record[RECORD_HEADER_LEN as usize + 3] ^= 0x10;
        let header = header_of(&record);
        assert!(header
            .verify(&record[RECORD_HEADER_LEN as usize..])
            .is_err());
    }

    #[test]
    fn flipped_header_bit_is_detected() {
        // A flip in the length field changes the covered bytes, so the CRC no longer matches
        // (or the header is rejected outright).
        let mut record = encode_record(b"hello extent").unwrap();
        record[4] ^= 0x01;
        let mut header = [0u8; RECORD_HEADER_LEN as usize];
        header.copy_from_slice(&record[..RECORD_HEADER_LEN as usize]);
        let parsed = RecordHeader::decode(&header).unwrap();
        assert!(parsed
            .verify(&record[RECORD_HEADER_LEN as usize..])
            .is_err());
        // A flipped reserved byte is refused before any CRC work.
        let mut record = encode_record(b"x").unwrap();
        record[2] = 1;
        header.copy_from_slice(&record[..RECORD_HEADER_LEN as usize]);
        assert!(RecordHeader::decode(&header).is_err());
    }

    #[test]
    fn oversized_payload_is_refused() {
        let payload = vec![0u8; RECORD_PAYLOAD_BYTES_MAX + 1];
        assert!(matches!(
            encode_record(&payload),
            Err(StreamError::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn file_header_and_seal_round_trip() {
        let header = encode_file_header(ExtentId::new(42));
        check_file_header(&header, ExtentId::new(42)).unwrap();
        assert!(check_file_header(&header, ExtentId::new(43)).is_err());
        let mut flipped = header;
        flipped[13] ^= 4;
        assert!(check_file_header(&flipped, ExtentId::new(42)).is_err());
        let seal = encode_seal(ExtentId::new(42), 1234);
        assert_eq!(decode_seal(&seal, ExtentId::new(42)).unwrap(), 1234);
        let mut flipped = seal;
        flipped[14] ^= 1;
        assert!(decode_seal(&flipped, ExtentId::new(42)).is_err());
        // A whole marker whose length would cut into the file header is refused.
        assert!(decode_seal(&encode_seal(ExtentId::new(42), 16), ExtentId::new(42)).is_err());
        assert_eq!(
            decode_seal(&encode_seal(ExtentId::new(42), 24), ExtentId::new(42)).unwrap(),
            24
        );
    }
}
