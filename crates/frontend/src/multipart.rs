//! Multipart uploads: CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
//! AbortMultipartUpload and ListParts.
//!
//! The partition server keeps an upload and its parts right after the object's key, so every
//! call is routed by `keys::object_key(bucket, key)`, like the object's own operations. A part
//! streams through `put.rs` exactly like a PutObject body (UploadPart is a `StreamedWrite`);
//! completing is one index update on the owner and copies no byte. The owner decides
//! NoSuchUpload, InvalidPart, InvalidPartOrder and EntityTooSmall; this module checks what
//! can be refused before any byte moves (part numbers, sizes, the parts list, the bucket).
//!
//! UploadPartCopy and ListMultipartUploads keep s3s's default answer, 501 NotImplemented.

use crate::bucket::owner;
use crate::checksum::{self, sent_checksums_of, show_checksum};
use crate::conditions::to_s3_etag;
use crate::error::{FrontendError, Refusal};
use crate::frontend::{malformed_xml, Frontend};
use crate::meta::{size_i64, stored_headers_of, timestamp_from_ms};
use crate::object::{check_content_length, check_key_length};
use crate::put::{put_streaming, StreamedWrite};
use crate::routing::PartitionClient;
use s3s::dto::{
    AbortMultipartUploadInput, ChecksumType, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CompletedMultipartUpload, CreateMultipartUploadInput,
    CreateMultipartUploadOutput, Initiator, ListPartsInput, ListPartsOutput, Part, StorageClass,
    UploadPartInput, UploadPartOutput,
};
use s3s::S3Result;
use std::future::Future;
use strata_proto::common::{ChecksumAlgorithm, PartMeta};
use strata_proto::partition::upload_part_request;
use strata_proto::partition::{
    AbortMultipartUploadRequest, ChecksumTrailer, CompleteMultipartUploadRequest, CompletedPart,
    CreateMultipartUploadRequest, ListPartsRequest, UploadPartHeader, UploadPartRequest,
};
use strata_types::keys;
use tokio_stream::wrappers::ReceiverStream;

pub use strata_types::limits::PART_NUMBER_MAX;
/// Most parts one ListParts page holds (S3's default and maximum), as s3s types it.
pub const LIST_PARTS_MAX: i32 = strata_types::limits::LIST_PARTS_MAX as i32;

impl StreamedWrite for UploadPartHeader {
    type Message = UploadPartRequest;
    type Stored = PartMeta;
    const RPC: &'static str = "UploadPart";

    fn route_key(&self) -> Vec<u8> {
        keys::object_key(&self.bucket, &self.key)
    }

    fn size_bytes(&self) -> i64 {
        self.size_bytes
    }

    fn header_message(self) -> UploadPartRequest {
        UploadPartRequest {
            part: Some(upload_part_request::Part::Header(self)),
        }
    }

    fn chunk_message(chunk: Vec<u8>) -> UploadPartRequest {
        UploadPartRequest {
            part: Some(upload_part_request::Part::Chunk(chunk)),
        }
    }

    fn trailer_message(expected: Vec<u8>) -> UploadPartRequest {
        UploadPartRequest {
            part: Some(upload_part_request::Part::Trailer(ChecksumTrailer {
                expected,
            })),
        }
    }

    async fn call(
        mut client: PartitionClient,
        request: tonic::Request<ReceiverStream<UploadPartRequest>>,
    ) -> Result<PartMeta, tonic::Status> {
        client
            .upload_part(request)
            .await?
            .into_inner()
            .part
            .ok_or_else(|| crate::error::protocol_violation("UploadPart answered without the part"))
    }
}

/// The part number of an UploadPart, or InvalidArgument.
pub(crate) fn check_part_number(part_number: i32) -> S3Result<u32> {
    u32::try_from(part_number)
        .ok()
        .filter(|number| (1..=PART_NUMBER_MAX).contains(number))
        .ok_or_else(|| {
            FrontendError::refused(
                Refusal::InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive",
            )
            .into()
        })
}

/// The parts list of a CompleteMultipartUpload body, as the partition server takes it. An
/// empty or missing list, or a part without number or ETag, is MalformedXML (as S3 answers).
#[doc(hidden)] // pub for the fuzz target (crates/fuzz)
pub fn completed_parts(upload: Option<&CompletedMultipartUpload>) -> S3Result<Vec<CompletedPart>> {
    let parts = upload
        .and_then(|upload| upload.parts.as_ref())
        .filter(|parts| !parts.is_empty())
        .ok_or_else(malformed_xml)?;
    parts
        .iter()
        .map(|part| {
            let (Some(number), Some(etag)) = (part.part_number, part.e_tag.as_ref()) else {
                return Err(malformed_xml());
            };
            let part_number = check_part_number(number).map_err(|_| {
                FrontendError::refused(
                    Refusal::InvalidPart,
                    "One or more of the specified parts could not be found.",
                )
            })?;
            let checksum = match sent_checksums_of!(part).single()? {
                Some((_, value)) => value,
                None => Vec::new(),
            };
            Ok(CompletedPart {
                part_number,
                etag: format!("\"{}\"", etag.value()),
                checksum,
            })
        })
        .collect()
}

/// The object's URL for CompleteMultipartUpload's Location: the request's own host and path
/// (path-style `/bucket/key` or virtual-hosted `/key`), without the query.
pub(crate) fn object_location(headers: &http::HeaderMap, uri: &http::Uri) -> String {
    let host = headers
        .get(http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| uri.authority().map(http::uri::Authority::as_str))
        .unwrap_or("localhost");
    format!("http://{host}{}", uri.path())
}

fn checksum_type(full_object: bool) -> ChecksumType {
    ChecksumType::from_static(if full_object {
        ChecksumType::FULL_OBJECT
    } else {
        ChecksumType::COMPOSITE
    })
}

/// ListParts' page size: S3's default when absent, at most `LIST_PARTS_MAX`.
fn page_size(max_parts: Option<i32>) -> S3Result<i32> {
    match max_parts {
        None => Ok(LIST_PARTS_MAX),
        Some(n) if n < 0 => Err(FrontendError::refused(
            Refusal::InvalidArgument,
            "max-parts must be a non-negative integer",
        )
        .into()),
        Some(n) => Ok(n.min(LIST_PARTS_MAX)),
    }
}

impl Frontend {
    /// One unary multipart RPC on the owner of the object's key.
    async fn on_owner<R, T, F, Fut>(
        &self,
        bucket: &str,
        key: &str,
        request: R,
        rpc: F,
    ) -> Result<T, FrontendError>
    where
        R: Clone,
        F: Fn(PartitionClient, R) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let (response, _) = self
            .router
            .call(&keys::object_key(bucket, key), false, |client, _| {
                rpc(client, request.clone())
            })
            .await?;
        Ok(response.into_inner())
    }

    pub(crate) async fn create_multipart_upload_op(
        &self,
        input: &CreateMultipartUploadInput,
    ) -> S3Result<CreateMultipartUploadOutput> {
        check_key_length(&input.key)?;
        let algorithm = checksum::algorithm_of(input.checksum_algorithm.as_ref())?;
        let full_object = match input.checksum_type.as_ref().map(|t| t.as_str()) {
            None => algorithm == ChecksumAlgorithm::Crc64nvme,
            Some(ChecksumType::FULL_OBJECT) => true,
            Some(ChecksumType::COMPOSITE) => false,
            Some(_) => {
                return Err(FrontendError::refused(
                    Refusal::InvalidRequest,
                    "Value for x-amz-checksum-type header is invalid.",
                )
                .into())
            }
        };
        if input.checksum_type.is_some() && algorithm == ChecksumAlgorithm::None {
            let message = "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.";
            return Err(FrontendError::refused(Refusal::InvalidRequest, message).into());
        }
        self.require_bucket(&input.bucket).await?;
        let mut meta = stored_headers_of!(input)?.into_meta();
        meta.tags = crate::tagging::tags_of_header(input.tagging.as_deref())?;
        let request = CreateMultipartUploadRequest {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            meta: Some(meta),
            checksum_algorithm: algorithm as i32,
            checksum_full_object: full_object,
        };
        let response = self
            .on_owner(
                &input.bucket,
                &input.key,
                request,
                |mut client, r| async move { client.create_multipart_upload(r).await },
            )
            .await?;
        Ok(CreateMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            upload_id: Some(response.upload_id),
            checksum_algorithm: input.checksum_algorithm.clone(),
            checksum_type: (algorithm != ChecksumAlgorithm::None)
                .then(|| checksum_type(full_object)),
            ..Default::default()
        })
    }

    pub(crate) async fn upload_part_op(
        &self,
        input: UploadPartInput,
        headers: &http::HeaderMap,
        trailers: Option<&s3s::TrailingHeaders>,
    ) -> S3Result<UploadPartOutput> {
        let part_number = check_part_number(input.part_number)?;
        check_content_length(input.content_length)?;
        // The owner computes the upload's algorithm when the part names none.
        let checksum = checksum::plan(
            &sent_checksums_of!(input),
            input.checksum_algorithm.as_ref(),
            headers,
            trailers,
            ChecksumAlgorithm::None,
        )?;
        self.require_bucket(&input.bucket).await?;
        let header = UploadPartHeader {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            upload_id: input.upload_id.clone(),
            part_number,
            content_md5: input.content_md5.clone().unwrap_or_default(),
            size_bytes: input.content_length.unwrap_or(-1),
            checksum: Some(checksum.body),
        };
        let part = put_streaming(&self.router, header, input.body, checksum.trailer).await?;
        let mut output = UploadPartOutput {
            e_tag: Some(to_s3_etag(&part.etag)),
            ..Default::default()
        };
        show_checksum!(output, checksum::show(part.checksum.as_ref()));
        Ok(output)
    }

    pub(crate) async fn complete_multipart_upload_op(
        &self,
        input: &CompleteMultipartUploadInput,
        location: String,
    ) -> S3Result<CompleteMultipartUploadOutput> {
        let bucket = self.require_bucket(&input.bucket).await?;
        let parts = completed_parts(input.multipart_upload.as_ref())?;
        let expected_checksum = sent_checksums_of!(input)
            .single()?
            .map(|(algorithm, value)| strata_proto::common::Checksum {
                algorithm: algorithm as i32,
                value,
                ..Default::default()
            });
        let request = CompleteMultipartUploadRequest {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            upload_id: input.upload_id.clone(),
            parts,
            condition: crate::conditions::write_condition(
                input.if_match.as_ref(),
                input.if_none_match.as_ref(),
            )?,
            expected_checksum,
            versioning: bucket.versioning,
        };
        let response = self
            .on_owner(
                &input.bucket,
                &input.key,
                request,
                |mut client, r| async move { client.complete_multipart_upload(r).await },
            )
            .await?;
        let meta = response.meta.ok_or_else(|| {
            FrontendError::Protocol("CompleteMultipartUpload answered without metadata".into())
        })?;
        let mut output = CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(to_s3_etag(&meta.etag)),
            location: Some(location),
            version_id: crate::frontend::shown_version_id(&meta.version_id, bucket.versioning),
            ..Default::default()
        };
        show_checksum!(output, checksum::show(meta.checksum.as_ref()), with_type);
        Ok(output)
    }

    pub(crate) async fn abort_multipart_upload_op(
        &self,
        input: &AbortMultipartUploadInput,
    ) -> S3Result<()> {
        self.require_bucket(&input.bucket).await?;
        let request = AbortMultipartUploadRequest {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            upload_id: input.upload_id.clone(),
        };
        self.on_owner(
            &input.bucket,
            &input.key,
            request,
            |mut client, r| async move { client.abort_multipart_upload(r).await },
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn list_parts_op(
        &self,
        input: &ListPartsInput,
        requester: &str,
    ) -> S3Result<ListPartsOutput> {
        let max_parts = page_size(input.max_parts)?;
        let marker = match input.part_number_marker {
            None => 0,
            Some(marker) => u32::try_from(marker).map_err(|_| {
                FrontendError::refused(
                    Refusal::InvalidArgument,
                    "part-number-marker must be a non-negative integer",
                )
            })?,
        };
        self.require_bucket(&input.bucket).await?;
        let request = ListPartsRequest {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            upload_id: input.upload_id.clone(),
            part_number_marker: marker,
            // The owner pages at least one part; a page of zero asks whether any follows.
            max_parts: max_parts.max(1).unsigned_abs(),
        };
        let response = self
            .on_owner(
                &input.bucket,
                &input.key,
                request,
                |mut client, r| async move { client.list_parts(r).await },
            )
            .await?;
        let (parts, truncated) = if max_parts == 0 {
            (Vec::new(), !response.parts.is_empty() || response.truncated)
        } else {
            (response.parts, response.truncated)
        };
        let next_marker = parts.last().map(|part| part.part_number);
        let parts: Vec<Part> = parts
            .into_iter()
            .map(|part| {
                let mut listed = Part {
                    part_number: i32::try_from(part.part_number).ok(),
                    e_tag: Some(to_s3_etag(&part.etag)),
                    size: Some(size_i64(part.size_bytes)),
                    last_modified: Some(timestamp_from_ms(part.last_modified_ms)),
                    ..Default::default()
                };
                show_checksum!(listed, checksum::show(part.checksum.as_ref()));
                listed
            })
            .collect();
        let upload = response.upload.unwrap_or_default();
        let requester = owner(requester);
        Ok(ListPartsOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            upload_id: Some(input.upload_id.clone()),
            part_number_marker: i32::try_from(marker).ok(),
            next_part_number_marker: next_marker.and_then(|n| i32::try_from(n).ok()),
            max_parts: Some(max_parts),
            is_truncated: Some(truncated),
            parts: Some(parts),
            initiator: Some(Initiator {
                display_name: requester.display_name.clone(),
                id: requester.id.clone(),
            }),
            owner: Some(requester),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            checksum_algorithm: checksum::s3_algorithm(upload.checksum_algorithm),
            checksum_type: (upload.checksum_algorithm != ChecksumAlgorithm::None as i32)
                .then(|| checksum_type(upload.checksum_full_object)),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::dto::ETag;

    fn part(number: Option<i32>, etag: Option<&str>) -> s3s::dto::CompletedPart {
        s3s::dto::CompletedPart {
            part_number: number,
            e_tag: etag.map(|e| ETag::Strong(e.to_string())),
            ..Default::default()
        }
    }

    #[test]
    fn part_numbers_are_one_to_ten_thousand() {
        assert_eq!(check_part_number(1).unwrap(), 1);
        assert_eq!(check_part_number(10_000).unwrap(), 10_000);
        for bad in [0, -1, 10_001, i32::MAX] {
            let err = check_part_number(bad).unwrap_err();
            assert_eq!(err.code(), &Refusal::InvalidArgument.s3_code(), "{bad}");
        }
    }

    #[test]
    fn completed_parts_are_checked_before_the_call() {
        let missing = completed_parts(None).unwrap_err();
        assert_eq!(missing.code(), &Refusal::MalformedXml.s3_code());
        let empty = CompletedMultipartUpload {
            parts: Some(Vec::new()),
        };
        assert_eq!(
            completed_parts(Some(&empty)).unwrap_err().code(),
            &Refusal::MalformedXml.s3_code()
        );
        let no_list = CompletedMultipartUpload { parts: None };
        assert_eq!(
            completed_parts(Some(&no_list)).unwrap_err().code(),
            &Refusal::MalformedXml.s3_code()
        );
        let no_etag = CompletedMultipartUpload {
            parts: Some(vec![part(Some(1), None)]),
        };
        assert_eq!(
            completed_parts(Some(&no_etag)).unwrap_err().code(),
            &Refusal::MalformedXml.s3_code()
        );
        let zero = CompletedMultipartUpload {
            parts: Some(vec![part(Some(0), Some("abc"))]),
        };
        assert_eq!(
            completed_parts(Some(&zero)).unwrap_err().code(),
            &Refusal::InvalidPart.s3_code()
        );
        let good = CompletedMultipartUpload {
            parts: Some(vec![part(Some(1), Some("abc")), part(Some(2), Some("def"))]),
        };
        let parts = completed_parts(Some(&good)).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(
            (parts[0].part_number, parts[0].etag.as_str()),
            (1, "\"abc\"")
        );
        assert_eq!(
            (parts[1].part_number, parts[1].etag.as_str()),
            (2, "\"def\"")
        );
    }

    #[test]
    fn location_is_the_objects_url() {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::HOST, "127.0.0.1:9000".parse().unwrap());
        let uri: http::Uri = "/bkt/dir/a%20b?uploadId=x".parse().unwrap();
        assert_eq!(
            object_location(&headers, &uri),
            "http://127.0.0.1:9000/bkt/dir/a%20b"
        );
    }

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(None).unwrap(), LIST_PARTS_MAX);
        assert_eq!(page_size(Some(5)).unwrap(), 5);
        assert_eq!(page_size(Some(0)).unwrap(), 0);
        assert_eq!(page_size(Some(50_000)).unwrap(), LIST_PARTS_MAX);
        assert!(page_size(Some(-1)).is_err());
    }
}
