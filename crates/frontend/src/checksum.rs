//! S3's additional checksums at the edge: which checksum a write asks for (an
//! `x-amz-checksum-<algorithm>` header, a trailer named by `x-amz-trailer` in an aws-chunked
//! body, or only `x-amz-sdk-checksum-algorithm`), and how stored checksums are shown.
//!
//! The partition server computes the checksum over the bytes it stores and refuses the write
//! (BadDigest) when the client's value differs; this module only decodes what the client sent.
//! A trailer's value is known only once the body ended: `put.rs` reads it from s3s's trailer
//! handle then and sends it after the last chunk. A write without any checksum gets a
//! CRC64NVME one, as S3 stores for every new object.

use crate::error::{FrontendError, Refusal};
use base64::Engine;
use s3s::dto::{ChecksumAlgorithm as S3Algorithm, ChecksumType};
use s3s::{S3Error, S3Result, TrailingHeaders};
use strata_proto::common::{Checksum, ChecksumAlgorithm};
use strata_proto::partition::BodyChecksum;

/// The checksum values a request carried in headers, one per algorithm.
#[derive(Clone, Debug, Default)]
pub struct SentChecksums {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
}

/// The [`SentChecksums`] of an s3s input or part that has the five checksum fields (public
/// for the fuzz targets, which drive the same checksum plan).
#[doc(hidden)]
#[macro_export]
macro_rules! sent_checksums_of {
    ($input:expr) => {{
        let input = &$input;
        $crate::checksum::SentChecksums {
            crc32: input.checksum_crc32.clone(),
            crc32c: input.checksum_crc32c.clone(),
            crc64nvme: input.checksum_crc64nvme.clone(),
            sha1: input.checksum_sha1.clone(),
            sha256: input.checksum_sha256.clone(),
        }
    }};
}
pub use crate::sent_checksums_of;

/// Sets the five checksum fields (and, with a third argument, `checksum_type`) of an s3s
/// output from a [`ShownChecksum`].
macro_rules! show_checksum {
    ($output:expr, $shown:expr) => {{
        let shown: &$crate::checksum::ShownChecksum = &$shown;
        $output.checksum_crc32 = shown.crc32.clone();
        $output.checksum_crc32c = shown.crc32c.clone();
        $output.checksum_crc64nvme = shown.crc64nvme.clone();
        $output.checksum_sha1 = shown.sha1.clone();
        $output.checksum_sha256 = shown.sha256.clone();
    }};
    ($output:expr, $shown:expr, with_type) => {{
        $crate::checksum::show_checksum!($output, $shown);
        $output.checksum_type = $shown.checksum_type.clone();
    }};
}
pub(crate) use show_checksum;

/// Every algorithm with its S3 name and header.
const ALGORITHMS: [(ChecksumAlgorithm, &str, &str); 5] = [
    (ChecksumAlgorithm::Crc32, "CRC32", "x-amz-checksum-crc32"),
    (ChecksumAlgorithm::Crc32c, "CRC32C", "x-amz-checksum-crc32c"),
    (
        ChecksumAlgorithm::Crc64nvme,
        "CRC64NVME",
        "x-amz-checksum-crc64nvme",
    ),
    (ChecksumAlgorithm::Sha1, "SHA1", "x-amz-checksum-sha1"),
    (ChecksumAlgorithm::Sha256, "SHA256", "x-amz-checksum-sha256"),
];

/// Bytes of a binary checksum of `algorithm`.
pub fn checksum_len(algorithm: ChecksumAlgorithm) -> usize {
    match algorithm {
        ChecksumAlgorithm::None => 0,
        ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
        ChecksumAlgorithm::Crc64nvme => 8,
        ChecksumAlgorithm::Sha1 => 20,
        ChecksumAlgorithm::Sha256 => 32,
    }
}

fn header_of(algorithm: ChecksumAlgorithm) -> &'static str {
    ALGORITHMS
        .iter()
        .find(|(a, _, _)| *a == algorithm)
        .map_or("x-amz-checksum", |(_, _, header)| header)
}

/// The algorithm S3 names `name` (case-insensitive), or InvalidRequest.
pub fn parse_algorithm(name: &str) -> S3Result<ChecksumAlgorithm> {
    ALGORITHMS
        .iter()
        .find(|(_, s3_name, _)| s3_name.eq_ignore_ascii_case(name))
        .map(|(algorithm, _, _)| *algorithm)
        .ok_or_else(|| {
            FrontendError::refused(
                Refusal::InvalidRequest,
                "Checksum algorithm provided is unsupported.",
            )
            .into()
        })
}

/// The algorithm of an s3s `x-amz-checksum-algorithm` / `x-amz-sdk-checksum-algorithm` value.
pub fn algorithm_of(algorithm: Option<&S3Algorithm>) -> S3Result<ChecksumAlgorithm> {
    algorithm.map_or(Ok(ChecksumAlgorithm::None), |a| parse_algorithm(a.as_str()))
}

/// Decodes a base64 checksum of `algorithm` as S3 checks it.
pub fn decode_value(algorithm: ChecksumAlgorithm, value: &str) -> S3Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()
        .filter(|bytes| bytes.len() == checksum_len(algorithm))
        .ok_or_else(|| {
            FrontendError::refused(
                Refusal::InvalidRequest,
                format!("Value for {} header is invalid.", header_of(algorithm)),
            )
            .into()
        })
}

impl SentChecksums {
    /// The one (algorithm, binary value) sent, None when none; InvalidRequest for several.
    pub fn single(&self) -> S3Result<Option<(ChecksumAlgorithm, Vec<u8>)>> {
        let values = [
            (ChecksumAlgorithm::Crc32, &self.crc32),
            (ChecksumAlgorithm::Crc32c, &self.crc32c),
            (ChecksumAlgorithm::Crc64nvme, &self.crc64nvme),
            (ChecksumAlgorithm::Sha1, &self.sha1),
            (ChecksumAlgorithm::Sha256, &self.sha256),
        ];
        let mut sent = values
            .into_iter()
            .filter_map(|(algorithm, value)| value.as_ref().map(|v| (algorithm, v)));
        let Some((algorithm, value)) = sent.next() else {
            return Ok(None);
        };
        if sent.next().is_some() {
            let message = "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.";
            return Err(FrontendError::refused(Refusal::InvalidRequest, message).into());
        }
        Ok(Some((algorithm, decode_value(algorithm, value)?)))
    }
}

/// Where a trailing checksum will be: s3s's handle on the aws-chunked trailers and the
/// trailer's name.
#[derive(Clone, Debug)]
pub struct TrailerSource {
    handle: TrailingHeaders,
    algorithm: ChecksumAlgorithm,
}

impl TrailerSource {
    /// The trailer's binary value, once the body ended cleanly.
    pub fn value(&self) -> Result<Vec<u8>, S3Error> {
        let header = header_of(self.algorithm);
        let text = self
            .handle
            .read(|trailers| {
                trailers
                    .get(header)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            })
            .flatten()
            .ok_or_else(|| {
                FrontendError::refused(
                    Refusal::MalformedTrailer,
                    "The request contained trailing data that was not well-formed or did not conform to our published schema.",
                )
            })?;
        decode_value(self.algorithm, &text)
    }
}

/// What a streamed write tells the partition server about its checksum, and where a trailing
/// value comes from.
pub struct WriteChecksum {
    pub body: BodyChecksum,
    pub trailer: Option<TrailerSource>,
}

/// Decides the checksum of a PutObject or UploadPart body. `declared` is
/// `x-amz-sdk-checksum-algorithm`; `default` applies when the client asked for nothing.
pub fn plan(
    sent: &SentChecksums,
    declared: Option<&S3Algorithm>,
    headers: &http::HeaderMap,
    trailers: Option<&TrailingHeaders>,
    default: ChecksumAlgorithm,
) -> S3Result<WriteChecksum> {
    let declared = algorithm_of(declared)?;
    let trailer = match headers.get("x-amz-trailer") {
        None => None,
        Some(value) => {
            let name = value
                .to_str()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            ALGORITHMS
                .iter()
                .find(|(_, _, header)| *header == name)
                .map(|(algorithm, _, _)| *algorithm)
        }
    };
    let mismatch =
        |algorithm: ChecksumAlgorithm| declared != ChecksumAlgorithm::None && declared != algorithm;
    if let Some((algorithm, value)) = sent.single()? {
        if trailer.is_some() || mismatch(algorithm) {
            let message = "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.";
            return Err(FrontendError::refused(Refusal::InvalidRequest, message).into());
        }
        return Ok(WriteChecksum {
            body: BodyChecksum {
                algorithm: algorithm as i32,
                expected: value,
                in_trailer: false,
            },
            trailer: None,
        });
    }
    if let Some(algorithm) = trailer {
        let handle = trailers.ok_or_else(|| {
            FrontendError::refused(
                Refusal::InvalidRequest,
                "x-amz-trailer needs an aws-chunked body with trailers.",
            )
        })?;
        if mismatch(algorithm) {
            return Err(FrontendError::refused(
                Refusal::InvalidRequest,
                "x-amz-sdk-checksum-algorithm does not match the x-amz-trailer checksum.",
            )
            .into());
        }
        return Ok(WriteChecksum {
            body: BodyChecksum {
                algorithm: algorithm as i32,
                expected: Vec::new(),
                in_trailer: true,
            },
            trailer: Some(TrailerSource {
                handle: handle.clone(),
                algorithm,
            }),
        });
    }
    let algorithm = if declared == ChecksumAlgorithm::None {
        default
    } else {
        declared
    };
    Ok(WriteChecksum {
        body: BodyChecksum {
            algorithm: algorithm as i32,
            expected: Vec::new(),
            in_trailer: false,
        },
        trailer: None,
    })
}

/// A stored checksum as S3 shows it: one base64 field, and its type.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShownChecksum {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub checksum_type: Option<ChecksumType>,
}

/// How `checksum` appears in headers and XML (nothing for None).
pub fn show(checksum: Option<&Checksum>) -> ShownChecksum {
    let mut shown = ShownChecksum::default();
    let Some(checksum) = checksum else {
        return shown;
    };
    let Ok(algorithm) = ChecksumAlgorithm::try_from(checksum.algorithm) else {
        return shown;
    };
    let mut value = base64::engine::general_purpose::STANDARD.encode(&checksum.value);
    if checksum.composite {
        value = format!("{value}-{}", checksum.part_count);
    }
    let slot = match algorithm {
        ChecksumAlgorithm::None => return shown,
        ChecksumAlgorithm::Crc32 => &mut shown.crc32,
        ChecksumAlgorithm::Crc32c => &mut shown.crc32c,
        ChecksumAlgorithm::Crc64nvme => &mut shown.crc64nvme,
        ChecksumAlgorithm::Sha1 => &mut shown.sha1,
        ChecksumAlgorithm::Sha256 => &mut shown.sha256,
    };
    *slot = Some(value);
    shown.checksum_type = Some(ChecksumType::from_static(if checksum.composite {
        ChecksumType::COMPOSITE
    } else {
        ChecksumType::FULL_OBJECT
    }));
    shown
}

/// The S3 name of an algorithm (None for NONE).
pub fn s3_algorithm(algorithm: i32) -> Option<S3Algorithm> {
    let algorithm = ChecksumAlgorithm::try_from(algorithm).ok()?;
    ALGORITHMS
        .iter()
        .find(|(a, _, _)| *a == algorithm)
        .map(|(_, name, _)| S3Algorithm::from_static(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent_crc32(value: &str) -> SentChecksums {
        SentChecksums {
            crc32: Some(value.to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn a_header_value_is_decoded_and_checked() {
        let plan = plan(
            &sent_crc32("NhCmhg=="),
            None,
            &http::HeaderMap::new(),
            None,
            ChecksumAlgorithm::Crc64nvme,
        )
        .unwrap();
        assert_eq!(plan.body.algorithm, ChecksumAlgorithm::Crc32 as i32);
        assert_eq!(plan.body.expected, vec![0x36, 0x10, 0xa6, 0x86]);
        let bad = plan_err(&sent_crc32("bm90IGEgY3JjMzI="));
        assert_eq!(bad.code(), &Refusal::InvalidRequest.s3_code());
        let two = SentChecksums {
            crc32: Some("NhCmhg==".into()),
            sha1: Some("NhCmhg==".into()),
            ..Default::default()
        };
        assert_eq!(plan_err(&two).code(), &Refusal::InvalidRequest.s3_code());
    }

    fn plan_err(sent: &SentChecksums) -> S3Error {
        match plan(
            sent,
            None,
            &http::HeaderMap::new(),
            None,
            ChecksumAlgorithm::None,
        ) {
            Ok(_) => panic!("expected an error"),
            Err(err) => err,
        }
    }

    #[test]
    fn defaults_and_declared_algorithms() {
        let none = SentChecksums::default();
        let headers = http::HeaderMap::new();
        let default = plan(&none, None, &headers, None, ChecksumAlgorithm::Crc64nvme).unwrap();
        assert_eq!(default.body.algorithm, ChecksumAlgorithm::Crc64nvme as i32);
        let declared = S3Algorithm::from_static("SHA256");
        let chosen = plan(
            &none,
            Some(&declared),
            &headers,
            None,
            ChecksumAlgorithm::Crc64nvme,
        )
        .unwrap();
        assert_eq!(chosen.body.algorithm, ChecksumAlgorithm::Sha256 as i32);
        assert!(chosen.body.expected.is_empty() && !chosen.body.in_trailer);
    }

    #[test]
    fn a_trailer_needs_an_aws_chunked_body() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-amz-trailer", "x-amz-checksum-crc32c".parse().unwrap());
        let none = SentChecksums::default();
        assert!(plan(&none, None, &headers, None, ChecksumAlgorithm::None).is_err());
    }

    #[test]
    fn stored_checksums_show_like_s3() {
        let full = Checksum {
            algorithm: ChecksumAlgorithm::Crc32 as i32,
            value: vec![0x36, 0x10, 0xa6, 0x86],
            composite: false,
            part_count: 0,
        };
        let shown = show(Some(&full));
        assert_eq!(shown.crc32.as_deref(), Some("NhCmhg=="));
        assert_eq!(
            shown.checksum_type.as_ref().map(ChecksumType::as_str),
            Some("FULL_OBJECT")
        );
        let composite = Checksum {
            composite: true,
            part_count: 3,
            ..full
        };
        assert_eq!(show(Some(&composite)).crc32.as_deref(), Some("NhCmhg==-3"));
        assert_eq!(show(None), ShownChecksum::default());
    }
}
