//! S3's additional checksums (`x-amz-checksum-*`): computed over a body as it streams in,
//! verified against the client's value, and built for multipart objects from their parts.
//!
//! Values are binary and big-endian for the CRCs, as S3 base64-encodes them. A multipart
//! object gets either a COMPOSITE checksum (the algorithm over the concatenated binary part
//! checksums, shown as `<base64>-<parts>`) or, for the CRCs, a FULL_OBJECT checksum: the CRC of
//! the whole object, combined from the part CRCs and lengths without reading a byte again.

use sha2::Digest as _;
use strata_proto::common::{Checksum, ChecksumAlgorithm};

use crate::error::PartitionError;

/// A running checksum of one algorithm.
pub enum Hasher {
    Crc(crc_fast::CrcAlgorithm, crc_fast::Digest),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

/// The crc-fast algorithm of an S3 CRC, None for the others.
fn crc_of(algorithm: ChecksumAlgorithm) -> Option<crc_fast::CrcAlgorithm> {
    match algorithm {
        ChecksumAlgorithm::Crc32 => Some(crc_fast::CrcAlgorithm::Crc32IsoHdlc),
        ChecksumAlgorithm::Crc32c => Some(crc_fast::CrcAlgorithm::Crc32Iscsi),
        ChecksumAlgorithm::Crc64nvme => Some(crc_fast::CrcAlgorithm::Crc64Nvme),
        _ => None,
    }
}

/// Bytes of a binary checksum of `algorithm` (0 for NONE).
pub fn checksum_len(algorithm: ChecksumAlgorithm) -> usize {
    match algorithm {
        ChecksumAlgorithm::None => 0,
        ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
        ChecksumAlgorithm::Crc64nvme => 8,
        ChecksumAlgorithm::Sha1 => 20,
        ChecksumAlgorithm::Sha256 => 32,
    }
}

/// The S3 name of an algorithm, for messages.
pub fn algorithm_name(algorithm: ChecksumAlgorithm) -> &'static str {
    match algorithm {
        ChecksumAlgorithm::None => "none",
        ChecksumAlgorithm::Crc32 => "crc32",
        ChecksumAlgorithm::Crc32c => "crc32c",
        ChecksumAlgorithm::Crc64nvme => "crc64nvme",
        ChecksumAlgorithm::Sha1 => "sha1",
        ChecksumAlgorithm::Sha256 => "sha256",
    }
}

fn crc_bytes(algorithm: ChecksumAlgorithm, value: u64) -> Vec<u8> {
    if checksum_len(algorithm) == 4 {
        (value as u32).to_be_bytes().to_vec()
    } else {
        value.to_be_bytes().to_vec()
    }
}

fn crc_value(bytes: &[u8]) -> Option<u64> {
    match bytes.len() {
        4 => Some(u64::from(u32::from_be_bytes(bytes.try_into().ok()?))),
        8 => Some(u64::from_be_bytes(bytes.try_into().ok()?)),
        _ => None,
    }
}

impl Hasher {
    /// None for `ChecksumAlgorithm::None`.
    pub fn new(algorithm: ChecksumAlgorithm) -> Option<Hasher> {
        if let Some(crc) = crc_of(algorithm) {
            return Some(Hasher::Crc(crc, crc_fast::Digest::new(crc)));
        }
        match algorithm {
            ChecksumAlgorithm::Sha1 => Some(Hasher::Sha1(sha1::Sha1::new())),
            ChecksumAlgorithm::Sha256 => Some(Hasher::Sha256(sha2::Sha256::new())),
            _ => None,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc(_, digest) => digest.update(data),
            Hasher::Sha1(hasher) => hasher.update(data),
            Hasher::Sha256(hasher) => hasher.update(data),
        }
    }

    /// The binary checksum.
    pub fn finalize(self) -> Vec<u8> {
        match self {
            Hasher::Crc(crc, digest) => {
                let algorithm = match crc {
                    crc_fast::CrcAlgorithm::Crc32IsoHdlc => ChecksumAlgorithm::Crc32,
                    crc_fast::CrcAlgorithm::Crc32Iscsi => ChecksumAlgorithm::Crc32c,
                    _ => ChecksumAlgorithm::Crc64nvme,
                };
                crc_bytes(algorithm, digest.finalize())
            }
            Hasher::Sha1(hasher) => hasher.finalize().to_vec(),
            Hasher::Sha256(hasher) => hasher.finalize().to_vec(),
        }
    }
}

/// The checksum of one part: (binary checksum, part length in bytes).
pub type PartChecksum<'a> = (&'a [u8], u64);

/// The multipart object's checksum from its parts' checksums, in part order.
pub fn multipart_checksum(
    algorithm: ChecksumAlgorithm,
    full_object: bool,
    parts: &[PartChecksum<'_>],
) -> Result<Checksum, PartitionError> {
    let part_count = u32::try_from(parts.len())
        .map_err(|_| PartitionError::InvalidArgument("too many parts".into()))?;
    if full_object {
        let crc = crc_of(algorithm).ok_or_else(|| {
            PartitionError::InvalidArgument(format!(
                "{} has no FULL_OBJECT checksum",
                algorithm_name(algorithm)
            ))
        })?;
        // The CRC of the empty string, extended part by part.
        let mut combined = crc_fast::checksum(crc, b"");
        for (value, length) in parts {
            let part = crc_value(value).ok_or_else(|| {
                PartitionError::Corrupt("a part has a malformed stored checksum".into())
            })?;
            combined = crc_fast::checksum_combine(crc, combined, part, *length);
        }
        return Ok(Checksum {
            algorithm: algorithm as i32,
            value: crc_bytes(algorithm, combined),
            composite: false,
            part_count,
        });
    }
    let mut hasher = Hasher::new(algorithm)
        .ok_or_else(|| PartitionError::InvalidArgument("no checksum algorithm".into()))?;
    for (value, _) in parts {
        hasher.update(value);
    }
    Ok(Checksum {
        algorithm: algorithm as i32,
        value: hasher.finalize(),
        composite: true,
        part_count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(algorithm: ChecksumAlgorithm, data: &[u8]) -> Vec<u8> {
        let mut hasher = Hasher::new(algorithm).unwrap();
        hasher.update(data);
        hasher.finalize()
    }

    #[test]
    fn known_values() {
        // The standard check value of each CRC over "123456789".
        let check = b"123456789";
        assert_eq!(
            of(ChecksumAlgorithm::Crc32, check),
            0xcbf4_3926u32.to_be_bytes()
        );
        assert_eq!(
            of(ChecksumAlgorithm::Crc32c, check),
            0xe306_9283u32.to_be_bytes()
        );
        assert_eq!(
            of(ChecksumAlgorithm::Crc64nvme, check),
            0xae8b_1486_0a79_9888u64.to_be_bytes()
        );
        assert_eq!(
            hex::encode(of(ChecksumAlgorithm::Sha1, b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex::encode(of(ChecksumAlgorithm::Sha256, b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(Hasher::new(ChecksumAlgorithm::None).is_none());
    }

    #[test]
    fn full_object_crcs_combine_parts() {
        let parts: [&[u8]; 3] = [b"hello ", b"multipart ", b"world"];
        let whole: Vec<u8> = parts.concat();
        for algorithm in [
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Crc64nvme,
        ] {
            let sums: Vec<Vec<u8>> = parts.iter().map(|p| of(algorithm, p)).collect();
            let refs: Vec<PartChecksum<'_>> = sums
                .iter()
                .zip(parts)
                .map(|(sum, part)| (sum.as_slice(), part.len() as u64))
                .collect();
            let combined = multipart_checksum(algorithm, true, &refs).unwrap();
            assert_eq!(combined.value, of(algorithm, &whole), "{algorithm:?}");
            assert!(!combined.composite);
        }
        assert!(multipart_checksum(ChecksumAlgorithm::Sha256, true, &[]).is_err());
    }

    #[test]
    fn composite_is_the_checksum_of_part_checksums() {
        let a = of(ChecksumAlgorithm::Sha256, b"a");
        let b = of(ChecksumAlgorithm::Sha256, b"b");
        let composite =
            multipart_checksum(ChecksumAlgorithm::Sha256, false, &[(&a, 1), (&b, 1)]).unwrap();
        assert_eq!(
            composite.value,
            of(ChecksumAlgorithm::Sha256, &[a, b].concat())
        );
        assert!(composite.composite);
        assert_eq!(composite.part_count, 2);
    }
}
