//! Every S3 limit Strata enforces, in one place, so the front-end and the partition layer
//! cannot disagree (they did: the same 5 GiB was an `i64` in one crate and a `u64` in the other).
//!
//! Integer types, one rule each:
//! - sizes in bytes are `u64` (objects reach 5 TiB, past `u32`; never negative);
//! - counts of things held in memory (tags, rules, keys per request, page sizes) are `usize`,
//!   the type of the `len()` they are compared with;
//! - part numbers are `u32`, the type they have on the wire (proto `uint32`).
//!
//! A caller whose wire type differs (s3s takes `i32` page sizes and `i64` lengths, proto pages
//! are `u32`) converts at its own edge with `as`; every value here fits all of those types.

/// Longest object key, in bytes of UTF-8.
pub const OBJECT_KEY_BYTES_MAX: u64 = 1024;
/// Largest body of one PutObject or UploadPart, and largest copy source of CopyObject and
/// UploadPartCopy: 5 GiB.
pub const PUT_OBJECT_BYTES_MAX: u64 = 5 * 1024 * 1024 * 1024;
/// Largest object, as a multipart upload can assemble it: 5 TiB. A completion over it is
/// refused before anything is written.
pub const OBJECT_BYTES_MAX: u64 = 5 * 1024 * 1024 * 1024 * 1024;
/// Smallest part of a multipart upload, except the last: 5 MiB.
pub const PART_SIZE_BYTES_MIN: u64 = 5 * 1024 * 1024;
/// Part numbers are 1 to this.
pub const PART_NUMBER_MAX: u32 = 10_000;
/// User-defined metadata: the UTF-8 bytes of every key and value together (MetadataTooLarge).
pub const USER_METADATA_BYTES_MAX: u64 = 2 * 1024;
/// Longest validity of a presigned URL (SigV4's `X-Amz-Expires`, and SigV2's `Expires` when
/// SigV2 is enabled, counted from now): 7 days, as S3 (AuthorizationQueryParametersError).
pub const PRESIGNED_URL_EXPIRES_SECS_MAX: u64 = 7 * 24 * 60 * 60;
/// Largest XML request body (a PutBucketLifecycle or DeleteObjects body, say).
pub const XML_BODY_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// Keys in one ListObjects(V2) or ListObjectVersions page, whatever the caller asks for (and
/// the page size when it asks for none).
pub const LIST_KEYS_MAX: usize = 1000;
/// Parts in one ListParts page (and the default).
pub const LIST_PARTS_MAX: usize = 1000;
/// Uploads in one ListMultipartUploads page (and the default).
pub const LIST_UPLOADS_MAX: usize = 1000;
/// Keys in one DeleteObjects request.
pub const DELETE_KEYS_MAX: usize = 1000;

/// Tags on one object.
pub const OBJECT_TAGS_MAX: usize = 10;
/// Tags on one bucket (and in one lifecycle rule's filter).
pub const BUCKET_TAGS_MAX: usize = 50;
/// Longest tag key, in Unicode characters (not bytes).
pub const TAG_KEY_CHARS_MAX: usize = 128;
/// Longest tag value, in Unicode characters (not bytes).
pub const TAG_VALUE_CHARS_MAX: usize = 256;
/// CORS rules on one bucket.
pub const CORS_RULES_MAX: usize = 100;
/// Lifecycle rules on one bucket.
pub const LIFECYCLE_RULES_MAX: usize = 1000;
/// Replication rules on one bucket.
pub const REPLICATION_RULES_MAX: usize = 1000;
/// Characters of a replication rule's ID.
pub const RULE_ID_CHARS_MAX: usize = 255;

#[cfg(test)]
mod tests {
    use super::*;

    /// Callers convert to their wire types with `as`; that is only sound if every value fits.
    #[test]
    fn every_limit_fits_the_wire_types_callers_convert_to() {
        assert!(PUT_OBJECT_BYTES_MAX <= i64::MAX as u64);
        assert!(OBJECT_BYTES_MAX <= i64::MAX as u64);
        for count in [LIST_KEYS_MAX, LIST_PARTS_MAX, LIST_UPLOADS_MAX] {
            assert!(count <= i32::MAX as usize);
        }
        assert!(PART_NUMBER_MAX <= i32::MAX as u32);
        assert!(
            XML_BODY_BYTES_MAX <= u32::MAX as u64,
            "fits usize on every target"
        );
    }
}
