//! Receiving the body of a client-streaming write (PutObject, UploadPart): the header first,
//! then data chunks appended to the range's data stream as they fill, then at most one checksum
//! trailer; the length, Content-MD5 and checksum are checked before anything is committed.

use base64::Engine;
use bytes::BytesMut;
use md5::{Digest, Md5};
use strata_proto::common::{Checksum, ChecksumAlgorithm};
use strata_proto::partition::*;
use strata_types::limits::PUT_OBJECT_BYTES_MAX;
use strata_types::CHUNK_SIZE_BYTES;
use tonic::{Status, Streaming};

use crate::checksum;
use crate::error::PartitionError;
use crate::range::Range;
use crate::records::ChunkLocation;
use strata_types::error_detail::RejectReason;

/// A single incoming message may not exceed this (the front-end sends at most one chunk).
const PUT_MESSAGE_BYTES_MAX: usize = 4 * CHUNK_SIZE_BYTES;

/// What follows the header of a client-streaming write.
pub(super) enum BodyPart {
    Chunk(Vec<u8>),
    /// The checksum that came as an HTTP trailer; only ever the last message.
    Trailer(ChecksumTrailer),
}

/// A message of a client-streaming write: the header first, then data chunks, then at most
/// one checksum trailer.
pub(super) trait StreamedMessage: Sized {
    type Header;
    fn into_header(self) -> Option<Self::Header>;
    fn into_body_part(self) -> Option<BodyPart>;
}

impl StreamedMessage for PutObjectRequest {
    type Header = PutObjectHeader;
    fn into_header(self) -> Option<PutObjectHeader> {
        match self.part {
            Some(put_object_request::Part::Header(header)) => Some(header),
            _ => None,
        }
    }
    fn into_body_part(self) -> Option<BodyPart> {
        match self.part {
            Some(put_object_request::Part::Chunk(data)) => Some(BodyPart::Chunk(data)),
            Some(put_object_request::Part::Trailer(trailer)) => Some(BodyPart::Trailer(trailer)),
            _ => None,
        }
    }
}

/// The header that must open a streamed write.
pub(super) async fn first_header<M: StreamedMessage>(
    body: &mut Streaming<M>,
) -> Result<M::Header, Status> {
    body.message()
        .await?
        .and_then(M::into_header)
        .ok_or_else(|| {
            PartitionError::InvalidArgument("the first message must be the header".into()).into()
        })
}

/// What arrived in a streamed body, after every chunk is durable in the data stream.
pub(super) struct ReceivedBody {
    pub chunks: Vec<ChunkLocation>,
    pub size_bytes: u64,
    pub md5: [u8; 16],
    /// The body's checksum in the requested algorithm (None when none was asked for).
    pub checksum: Option<Checksum>,
}

/// The checksum algorithm of a write, or InvalidArgument for a value this server does not know.
pub(super) fn algorithm_of(checksum: Option<&BodyChecksum>) -> Result<ChecksumAlgorithm, Status> {
    let raw = checksum.map_or(0, |c| c.algorithm);
    ChecksumAlgorithm::try_from(raw).map_err(|_| {
        PartitionError::InvalidArgument(format!("unknown checksum algorithm {raw}")).into()
    })
}

fn checksum_mismatch(algorithm: ChecksumAlgorithm) -> Status {
    PartitionError::rejected(
        RejectReason::BadDigest,
        format!(
            "The {} you specified did not match the calculated checksum.",
            checksum::algorithm_name(algorithm).to_ascii_uppercase()
        ),
    )
    .into()
}

/// Receives data messages until the client ends the stream, appending chunks of at most
/// `CHUNK_SIZE_BYTES` to the range's data stream as they fill; then checks the length, the
/// Content-MD5 and the requested checksum (its expected value from the header or from the
/// trailer message). An error (including the client going away) leaves no index entry behind.
pub(super) async fn receive_body<M: StreamedMessage>(
    range: &Range,
    body: &mut Streaming<M>,
    expected_size: i64,
    content_md5: &str,
    checksum: Option<&BodyChecksum>,
) -> Result<ReceivedBody, Status> {
    if expected_size > PUT_OBJECT_BYTES_MAX as i64 {
        return Err(s3_too_large());
    }
    let algorithm = algorithm_of(checksum)?;
    let mut hasher = checksum::Hasher::new(algorithm);
    let mut expected_checksum = checksum.map(|c| c.expected.clone()).unwrap_or_default();
    let wants_trailer = checksum.is_some_and(|c| c.in_trailer);
    let mut trailer_seen = false;
    let mut md5 = Md5::new();
    let mut size_bytes = 0u64;
    let mut chunks = Vec::new();
    let mut pending = BytesMut::with_capacity(CHUNK_SIZE_BYTES);
    while let Some(message) = body.message().await? {
        let data =
            match message.into_body_part() {
                Some(BodyPart::Chunk(data)) if !trailer_seen => data,
                Some(BodyPart::Trailer(trailer)) if wants_trailer && !trailer_seen => {
                    trailer_seen = true;
                    expected_checksum = trailer.expected;
                    continue;
                }
                _ => return Err(PartitionError::InvalidArgument(
                    "only data chunks, then at most one announced trailer, may follow the header"
                        .into(),
                )
                .into()),
            };
        if data.len() > PUT_MESSAGE_BYTES_MAX {
            return Err(PartitionError::InvalidArgument("data message too large".into()).into());
        }
        md5.update(&data);
        if let Some(hasher) = hasher.as_mut() {
            hasher.update(&data);
        }
        size_bytes += data.len() as u64;
        if size_bytes > PUT_OBJECT_BYTES_MAX {
            return Err(s3_too_large());
        }
        pending.extend_from_slice(&data);
        while pending.len() >= CHUNK_SIZE_BYTES {
            let chunk = pending.split_to(CHUNK_SIZE_BYTES).freeze();
            chunks.push(range.append_data(chunk).await?);
        }
    }
    if wants_trailer && !trailer_seen {
        return Err(PartitionError::rejected(
            RejectReason::MalformedTrailer,
            "the announced checksum trailer did not arrive",
        )
        .into());
    }
    if !pending.is_empty() {
        chunks.push(range.append_data(pending.freeze()).await?);
    }
    if expected_size >= 0 && size_bytes != expected_size as u64 {
        return Err(PartitionError::IncompleteBody {
            expected: expected_size as u64,
            received: size_bytes,
        }
        .into());
    }
    let md5: [u8; 16] = md5.finalize().into();
    let checksum = check_digests(&md5, content_md5, hasher, &expected_checksum, algorithm)?;
    Ok(ReceivedBody {
        chunks,
        size_bytes,
        md5,
        checksum,
    })
}

/// Checks the body's MD5 against the Content-MD5 header (when sent) and its checksum against
/// the expected value (header or trailer, when sent); the checksum to store.
fn check_digests(
    md5: &[u8; 16],
    content_md5: &str,
    hasher: Option<checksum::Hasher>,
    expected_checksum: &[u8],
    algorithm: ChecksumAlgorithm,
) -> Result<Option<Checksum>, Status> {
    if !content_md5.is_empty() {
        let expected = base64::engine::general_purpose::STANDARD
            .decode(content_md5.trim())
            .map_err(|_| {
                PartitionError::rejected(RejectReason::InvalidDigest, "Content-MD5 is not base64")
            })?;
        if expected.as_slice() != md5.as_slice() {
            return Err(PartitionError::BadDigest.into());
        }
    }
    let checksum = match hasher {
        Some(hasher) => {
            let value = hasher.finalize();
            if !expected_checksum.is_empty() && expected_checksum != value {
                return Err(checksum_mismatch(algorithm));
            }
            Some(Checksum {
                algorithm: algorithm as i32,
                value,
                composite: false,
                part_count: 0,
            })
        }
        None if !expected_checksum.is_empty() => {
            return Err(PartitionError::InvalidArgument(
                "a checksum value without an algorithm".into(),
            )
            .into())
        }
        None => None,
    };
    Ok(checksum)
}

fn s3_too_large() -> Status {
    PartitionError::rejected(
        RejectReason::EntityTooLarge,
        "objects and parts are at most 5 GiB",
    )
    .into()
}
