//! Commit-log and checkpoint records as a range reads them back from its streams on load:
//! each record decoded on its own (`decode_log_entry`, `decode_checkpoint`) and the sequence
//! put through fragment reassembly (`Reassembler`), every whole payload decoded.
//!
//! Input: a flags byte, then records, each a little-endian u16 length and that many bytes
//! (a last record that runs short takes what is left).
//! - bit 0: rewrite the total length and CRC32C of each run of fragments sharing an id, so
//!   mutations reach a completed reassembly.

use bytes::Bytes;
use prost::Message;
use strata_partition::format::{
    decode_checkpoint, decode_log_entry, encode_checkpoint, encode_log_entry, Reassembler,
    FORMAT_VERSION, FRAGMENT_VERSION,
};

/// Version byte, id u64, index u32, count u32, total length u64, CRC32C u32.
const FRAGMENT_HEADER_LEN: usize = 29;

fn split_records(mut rest: &[u8]) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        let end = (2 + len).min(rest.len());
        records.push(rest[2..end].to_vec());
        rest = &rest[end..];
    }
    records
}

fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}

/// Gives each run of consecutive fragments with one id the total and CRC of their bytes.
fn fix_fragment_runs(records: &mut [Vec<u8>]) {
    let is_fragment =
        |record: &Vec<u8>| record.len() >= FRAGMENT_HEADER_LEN && record[0] == FRAGMENT_VERSION;
    let mut start = 0;
    while start < records.len() {
        if !is_fragment(&records[start]) {
            start += 1;
            continue;
        }
        let id = records[start][1..9].to_vec();
        let mut end = start + 1;
        while end < records.len() && is_fragment(&records[end]) && records[end][1..9] == id[..] {
            end += 1;
        }
        let whole: Vec<u8> = records[start..end]
            .iter()
            .flat_map(|record| record[FRAGMENT_HEADER_LEN..].iter().copied())
            .collect();
        let crc = crc32c(&whole);
        for record in &mut records[start..end] {
            record[17..25].copy_from_slice(&(whole.len() as u64).to_le_bytes());
            record[25..29].copy_from_slice(&crc.to_le_bytes());
        }
        start = end;
    }
}

/// Decodes `payload` both ways; what decodes re-encodes to a payload that decodes the same.
fn check_payload(payload: &[u8]) {
    if let Ok(entry) = decode_log_entry(payload) {
        let again = encode_log_entry(&entry);
        assert_eq!(again[0], FORMAT_VERSION);
        assert_eq!(again.len(), 1 + entry.encoded_len());
        assert_eq!(
            decode_log_entry(&again).expect("re-encoded entry decodes"),
            entry
        );
    }
    if let Ok(record) = decode_checkpoint(payload) {
        let again = encode_checkpoint(&record);
        assert_eq!(
            decode_checkpoint(&again).expect("re-encoded checkpoint decodes"),
            record
        );
    }
}

/// Fuzz target `log_records` (see the module doc for the input's layout).
pub fn log_records(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut records = split_records(rest);
    if flags & 1 != 0 {
        fix_fragment_runs(&mut records);
    }
    let mut reassembler = Reassembler::default();
    for record in records {
        check_payload(&record);
        let single = record.first() == Some(&FORMAT_VERSION);
        match reassembler.push(Bytes::from(record.clone())) {
            Ok(Some(whole)) => {
                if single {
                    assert_eq!(whole, record, "a version-1 record passes through whole");
                }
                check_payload(&whole);
            }
            Ok(None) => assert!(!single, "a version-1 record is never held back"),
            Err(_) => {}
        }
    }
}
