//! UploadPartCopy: a part whose bytes are (a range of) another object.
//!
//! The source range is streamed from its owner into UploadPart on the destination's owner, so
//! the part is an ordinary part (its own chunks, ETag = MD5 of the copied bytes, the upload's
//! checksum computed over them) whichever ranges or servers the two keys live on. Memory stays
//! bounded by the GET and PUT channels.

use crate::checksum::{self, show_checksum};
use crate::conditions::{to_s3_etag, Conditions, Outcome};
use crate::copy::source_of;
use crate::error::{FrontendError, Refusal};
use crate::frontend::{precondition_failed, Frontend};
use crate::meta::{size_i64, timestamp_from_ms};
use crate::multipart::check_part_number;
use crate::object::{Decision, PUT_OBJECT_BYTES_MAX};
use crate::put::put_streaming;
use s3s::dto::{CopyPartResult, UploadPartCopyInput, UploadPartCopyOutput};
use s3s::S3Result;
use strata_proto::partition::UploadPartHeader;

/// `x-amz-copy-source-range: bytes=first-last` against the source's size: the byte range
/// `[first, last + 1)`, or InvalidArgument.
pub fn copy_range(header: Option<&str>, size_bytes: u64) -> S3Result<Option<std::ops::Range<u64>>> {
    let Some(header) = header else {
        return Ok(None);
    };
    let malformed = || {
        let message = "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy";
        FrontendError::refused(Refusal::InvalidArgument, message)
    };
    let (first, last) = header
        .trim()
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(malformed)?;
    let first: u64 = first.trim().parse().map_err(|_| malformed())?;
    let last: u64 = last.trim().parse().map_err(|_| malformed())?;
    if first > last || last >= size_bytes {
        return Err(FrontendError::refused(
            Refusal::InvalidArgument,
            format!("Range specified is not valid for source object of size: {size_bytes}"),
        )
        .into());
    }
    Ok(Some(first..last + 1))
}

impl Frontend {
    pub(crate) async fn upload_part_copy_op(
        &self,
        input: &UploadPartCopyInput,
    ) -> S3Result<UploadPartCopyOutput> {
        let part_number = check_part_number(input.part_number)?;
        let src = source_of(&input.copy_source)?;
        self.require_bucket(&input.bucket).await?;
        if src.bucket != input.bucket {
            self.require_bucket(&src.bucket).await?;
        }
        let source = self.copy_source_meta(&src).await?;
        let conditions = Conditions::new(
            input.copy_source_if_match.clone(),
            input.copy_source_if_none_match.clone(),
            input.copy_source_if_modified_since.as_ref(),
            input.copy_source_if_unmodified_since.as_ref(),
        );
        if conditions.evaluate_copy_source(&source.etag, source.last_modified_ms)
            != Outcome::Proceed
        {
            return Err(precondition_failed());
        }
        let range = copy_range(input.copy_source_range.as_deref(), source.size_bytes)?;
        let length = range
            .as_ref()
            .map_or(source.size_bytes, |r| r.end - r.start);
        if length > PUT_OBJECT_BYTES_MAX {
            let message = format!("The specified copy source is larger than the maximum allowable size for a copy source: {PUT_OBJECT_BYTES_MAX}");
            return Err(FrontendError::refused(Refusal::InvalidRequest, message).into());
        }
        let decision = Decision {
            meta: source,
            range,
        };
        let body = self
            .open_stream(&src.bucket, &src.key, src.version_id.as_deref(), &decision)
            .await?;
        let header = UploadPartHeader {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            upload_id: input.upload_id.clone(),
            part_number,
            content_md5: String::new(),
            size_bytes: size_i64(length),
            // The owner computes the upload's checksum algorithm, if it has one.
            checksum: None,
        };
        let part = put_streaming(&self.router, header, Some(body), None).await?;
        let mut result = CopyPartResult {
            e_tag: Some(to_s3_etag(&part.etag)),
            last_modified: Some(timestamp_from_ms(part.last_modified_ms)),
            ..Default::default()
        };
        show_checksum!(result, checksum::show(part.checksum.as_ref()));
        Ok(UploadPartCopyOutput {
            copy_part_result: Some(result),
            copy_source_version_id: src.version_id.clone(),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_ranges() {
        assert_eq!(copy_range(None, 10).unwrap(), None);
        assert_eq!(copy_range(Some("bytes=0-9"), 10).unwrap(), Some(0..10));
        assert_eq!(copy_range(Some("bytes=3-3"), 10).unwrap(), Some(3..4));
        for bad in [
            "bytes=0-10",
            "bytes=5-2",
            "bytes=-3",
            "0-3",
            "bytes=a-b",
            "bytes=3-",
        ] {
            assert!(copy_range(Some(bad), 10).is_err(), "{bad}");
        }
    }
}
