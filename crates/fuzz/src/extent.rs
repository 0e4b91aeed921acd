//! Extent records as a disk hands them back: record headers, seal markers and file headers
//! decoded directly, then a whole replica file opened the way an extent node recovers it
//! (`ExtentReplica::open`: file header, seal marker, the tail walk of an unsealed replica) and
//! every record below its verified length read back.
//!
//! Input: a flags byte, then the file's bytes after its header.
//! - bit 0: write a valid file header first (else the bytes are the whole file, header too);
//! - bit 1: rewrite the CRC of every record that frames, so mutations get past the checksum;
//! - bit 2: a seal marker exists, sealed at the little-endian u64 of the next 8 bytes (a valid
//!   marker); with bit 3 as well, those are 24 raw marker bytes instead.

use std::cell::RefCell;
use strata_stream::extent::format::{
    self, RecordHeader, FILE_HEADER_LEN, RECORD_HEADER_LEN, RECORD_PAYLOAD_BYTES_MAX, SEAL_FILE_LEN,
};
use strata_stream::extent::replica::{extent_path, seal_path};
use strata_stream::extent::ExtentReplica;
use strata_types::ExtentId;

const EXTENT: ExtentId = ExtentId::new(7);

thread_local! {
    /// One scratch directory per thread (tmpfs when there is one), reused by every input.
    static DIR: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
}

fn scratch_dir() -> std::path::PathBuf {
    DIR.with(|dir| {
        let mut dir = dir.borrow_mut();
        let made = dir.get_or_insert_with(|| {
            let shm = std::path::Path::new("/dev/shm");
            let base = if shm.is_dir() {
                shm.to_path_buf()
            } else {
                std::env::temp_dir()
            };
            tempfile::Builder::new()
                .prefix("strata-fuzz-extent")
                .tempdir_in(base)
                .expect("scratch directory")
        });
        made.path().to_path_buf()
    })
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// Decodes the header at the start of `bytes` (and its record when whole), checking that an
/// accepted record re-encodes to exactly these bytes.
fn check_record_at(bytes: &[u8]) {
    let Some(header_bytes) = bytes.get(..RECORD_HEADER_LEN as usize) else {
        return;
    };
    let header_bytes: &[u8; RECORD_HEADER_LEN as usize] =
        header_bytes.try_into().expect("header length");
    let Ok(header) = RecordHeader::decode(header_bytes) else {
        return;
    };
    assert!(header.payload_len as usize <= RECORD_PAYLOAD_BYTES_MAX);
    assert_eq!(
        header.record_len(),
        RECORD_HEADER_LEN + u64::from(header.payload_len)
    );
    let Some(record) = bytes.get(..header.record_len() as usize) else {
        return;
    };
    let payload = &record[RECORD_HEADER_LEN as usize..];
    if header.verify(payload).is_ok() {
        assert_eq!(format::encode_record(payload).expect("fits"), record);
        assert_eq!(format::record_crc(payload), header.crc);
    }
}

/// Rewrites the CRC of each record that frames from `start` on.
fn fix_record_crcs(file: &mut [u8], start: usize) {
    let mut at = start;
    while at + RECORD_HEADER_LEN as usize <= file.len() {
        let len = u32_at(file, at + 4) as usize;
        let end = at + RECORD_HEADER_LEN as usize + len;
        if len > RECORD_PAYLOAD_BYTES_MAX || end > file.len() {
            return;
        }
        let crc = format::record_crc(&file[at + RECORD_HEADER_LEN as usize..end]);
        // record_crc assumes version 1 and zero reserved bytes, as encode_record writes.
        file[at] = format::RECORD_FORMAT_VERSION;
        file[at + 1..at + 4].fill(0);
        file[at + 8..at + 12].copy_from_slice(&crc.to_le_bytes());
        at = end;
    }
}

/// Fuzz target `extent_records` (see the module doc for the input's layout).
pub fn extent_records(data: &[u8]) {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut seal = None;
    if flags & 4 != 0 {
        if flags & 8 != 0 {
            let Some(raw) = rest.get(..SEAL_FILE_LEN) else {
                return;
            };
            seal = Some(raw.to_vec());
            rest = &rest[SEAL_FILE_LEN..];
        } else {
            let Some(word) = rest.get(..8) else {
                return;
            };
            let length = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            seal = Some(format::encode_seal(EXTENT, length).to_vec());
            rest = &rest[8..];
        }
    }

    // The decoders on their own, over the raw bytes.
    check_record_at(rest);
    if let Ok(length) = format::decode_seal(rest, EXTENT) {
        assert_eq!(format::encode_seal(EXTENT, length).as_slice(), rest);
    }
    if format::check_file_header(rest, EXTENT).is_ok() {
        assert_eq!(
            &format::encode_file_header(EXTENT)[..],
            &rest[..FILE_HEADER_LEN as usize]
        );
    }

    let mut file = Vec::with_capacity(FILE_HEADER_LEN as usize + rest.len());
    if flags & 1 != 0 {
        file.extend_from_slice(&format::encode_file_header(EXTENT));
    }
    file.extend_from_slice(rest);
    if flags & 2 != 0 {
        fix_record_crcs(&mut file, FILE_HEADER_LEN as usize);
    }
    if let Some(seal) = &seal {
        if let Ok(length) = format::decode_seal(seal, EXTENT) {
            assert_eq!(
                format::encode_seal(EXTENT, length).as_slice(),
                seal.as_slice()
            );
        }
    }
    open_and_read(&file, seal.as_deref());
}

/// Writes the replica's files, opens it as an extent node does on start and reads back every
/// record below its verified length.
fn open_and_read(file: &[u8], seal: Option<&[u8]>) {
    let dir = scratch_dir();
    std::fs::write(extent_path(&dir, EXTENT), file).expect("scratch write");
    let seal_file = seal_path(&dir, EXTENT);
    match seal {
        Some(seal) => std::fs::write(&seal_file, seal).expect("scratch write"),
        None => {
            let _ = std::fs::remove_file(&seal_file);
        }
    }
    let Ok((replica, recovery)) = ExtentReplica::open(&dir, EXTENT) else {
        return;
    };
    let state = replica.state().expect("fresh lock");
    let file_len = file.len() as u64;
    assert!(state.length >= FILE_HEADER_LEN && state.length <= file_len);
    assert!(state.verified_length <= state.length);
    assert_eq!(recovery.truncated_bytes, file_len - state.length);
    assert_eq!(
        recovery.unverified_tail_bytes,
        state.length - state.verified_length
    );
    assert_eq!(state.fenced, state.verified_length < state.length);
    if !state.sealed && seal.is_none() && state.verified_length == state.length {
        // A whole tail: appends go on at the end.
        assert_eq!(
            replica.next_offset(None).expect("accepts appends"),
            state.length
        );
    }
    let mut offset = FILE_HEADER_LEN;
    while offset < state.verified_length {
        let Ok(batch) = replica.read(offset, 64, 1 << 20) else {
            break;
        };
        assert!(!batch.records.is_empty() && batch.next_offset > offset);
        for (at, payload) in &batch.records {
            // Every record read is exactly the bytes on disk at its offset.
            let start = *at as usize;
            let record = format::encode_record(payload).expect("fits");
            assert_eq!(&file[start..start + record.len()], record.as_slice());
        }
        offset = batch.next_offset;
    }
}
