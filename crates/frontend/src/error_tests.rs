//! Tests of the error module: each refusal and each service answer becomes the S3 error it
//! should, and internal details stay inside.

use super::*;
use strata_types::error_detail::{to_status, NotOwner, UnavailableReason};
use strata_types::{Epoch, RangeId};

fn rejected(reason: RejectReason) -> Status {
    to_status(ErrorDetail::Rejected { reason }, "x")
}

fn missing(what: Missing) -> Status {
    let name = String::new();
    to_status(ErrorDetail::NotFound { what, name }, "x")
}

#[test]
fn details_map_to_their_s3_error() {
    let cases = [
        (missing(Missing::Key), S3ErrorCode::NoSuchKey, 404),
        (missing(Missing::Bucket), S3ErrorCode::NoSuchBucket, 404),
        (missing(Missing::Upload), S3ErrorCode::NoSuchUpload, 404),
        (missing(Missing::Version), S3ErrorCode::NoSuchVersion, 404),
        (
            rejected(RejectReason::BadDigest),
            S3ErrorCode::BadDigest,
            400,
        ),
        (
            rejected(RejectReason::IncompleteBody),
            S3ErrorCode::IncompleteBody,
            400,
        ),
        (
            to_status(ErrorDetail::PreconditionFailed, "x"),
            S3ErrorCode::PreconditionFailed,
            412,
        ),
        (
            rejected(RejectReason::EntityTooLarge),
            S3ErrorCode::EntityTooLarge,
            400,
        ),
        (
            rejected(RejectReason::InvalidArgument),
            S3ErrorCode::InvalidArgument,
            400,
        ),
        (
            rejected(RejectReason::InvalidPart),
            S3ErrorCode::InvalidPart,
            400,
        ),
        (
            rejected(RejectReason::InvalidPartOrder),
            S3ErrorCode::InvalidPartOrder,
            400,
        ),
        (
            rejected(RejectReason::EntityTooSmall),
            S3ErrorCode::EntityTooSmall,
            400,
        ),
        (
            rejected(RejectReason::InvalidRequest),
            S3ErrorCode::InvalidRequest,
            400,
        ),
        (
            rejected(RejectReason::BucketNotEmpty),
            S3ErrorCode::BucketNotEmpty,
            409,
        ),
        (
            rejected(RejectReason::NotImplemented),
            S3ErrorCode::NotImplemented,
            501,
        ),
        (
            to_status(ErrorDetail::Throttled { retry_after_ms: 9 }, "x"),
            S3ErrorCode::SlowDown,
            503,
        ),
        (
            to_status(
                ErrorDetail::Unavailable {
                    reason: UnavailableReason::Loading,
                },
                "x",
            ),
            S3ErrorCode::ServiceUnavailable,
            503,
        ),
        (
            to_status(ErrorDetail::Internal, "disk on fire at /var/x"),
            S3ErrorCode::InternalError,
            500,
        ),
        (
            to_status(ErrorDetail::Corrupt, "x"),
            S3ErrorCode::InternalError,
            500,
        ),
        // Statuses tonic made (no detail) map by their code.
        (Status::not_found("gone"), S3ErrorCode::NoSuchKey, 404),
        (
            Status::unavailable("down"),
            S3ErrorCode::ServiceUnavailable,
            503,
        ),
        (
            Status::deadline_exceeded("slow"),
            S3ErrorCode::ServiceUnavailable,
            503,
        ),
        (
            Status::resource_exhausted("hot"),
            S3ErrorCode::SlowDown,
            503,
        ),
        (
            Status::invalid_argument("bad"),
            S3ErrorCode::InvalidArgument,
            400,
        ),
        (
            Status::unimplemented("no such method"),
            S3ErrorCode::InternalError,
            500,
        ),
    ];
    for (status, code, http_status) in cases {
        let err = status_to_s3(&status);
        assert_eq!(err.code(), &code, "{status:?}");
        assert_eq!(
            err.status_code().map(|s| s.as_u16()),
            Some(http_status),
            "{status:?}"
        );
    }
}

#[test]
fn every_reason_a_client_can_see_has_an_http_status() {
    for reason in (0..=i32::from(RejectReason::InvalidBucketState))
        .filter_map(|raw| RejectReason::try_from(raw).ok())
    {
        let err = status_to_s3(&rejected(reason));
        assert!(err.status_code().is_some(), "{reason:?}");
    }
    let trailer = status_to_s3(&rejected(RejectReason::MalformedTrailer));
    assert_eq!(
        trailer.code(),
        &S3ErrorCode::Custom("MalformedTrailerError".into())
    );
}

/// What tonic's client makes of a partition server that died: a call on a connection that
/// closed before the request went out, one reset mid-call, a refused connection, a timeout.
fn transport_statuses() -> Vec<Status> {
    let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    vec![
        Status::from_error(Box::new(reset)),
        Status::unknown("transport error"),
        Status::from_error(Box::new(tonic::TimeoutExpired(()))),
        Status::cancelled("Timeout expired"),
        Status::unknown("h2 protocol error: http2 error"),
        Status::internal("h2 protocol error: error reading a body from connection"),
        Status::unavailable("tcp connect error"),
    ]
}

#[test]
fn transport_failures_answer_503_never_500() {
    for status in transport_statuses() {
        assert!(is_transport_failure(&status), "{status:?}");
        let err = status_to_s3(&status);
        assert_eq!(err.code(), &S3ErrorCode::ServiceUnavailable, "{status:?}");
        assert_eq!(err.status_code().map(|s| s.as_u16()), Some(503));
    }
    // Answers a peer gave carry a detail and stay what they are, whatever their code.
    let not_owner = NotOwner {
        range_id: RangeId::new(1),
        epoch: Epoch::new(1),
        owner_hint: None,
    };
    for status in [
        to_status(ErrorDetail::Internal, "disk on fire"),
        to_status(ErrorDetail::Internal, "transport error"),
        to_status(ErrorDetail::NotOwner(not_owner), "x"),
        to_status(
            ErrorDetail::Unavailable {
                reason: UnavailableReason::ShuttingDown,
            },
            "x",
        ),
    ] {
        assert!(!is_transport_failure(&status), "{status:?}");
        assert!(!is_timeout(&status), "{status:?}");
    }
}

#[test]
fn timeouts_are_told_from_broken_connections() {
    assert!(is_timeout(&Status::from_error(Box::new(
        tonic::TimeoutExpired(())
    ))));
    assert!(is_timeout(&Status::deadline_exceeded("late")));
    let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    assert!(!is_timeout(&Status::from_error(Box::new(reset))));
    assert!(!is_timeout(&Status::unknown("transport error")));
}

#[test]
fn internal_details_do_not_leak() {
    let status = to_status(ErrorDetail::Internal, "disk on fire at /var/secret");
    let err = status_to_s3(&status);
    assert!(!err.message().unwrap_or_default().contains("/var/secret"));
    let err = status_to_s3(&Status::internal("disk on fire at /var/secret"));
    assert!(!err.message().unwrap_or_default().contains("/var/secret"));
}

/// Every refusal, so the table is checked whole (a new kind must be added here).
const REFUSALS: [Refusal; 44] = {
    use Refusal as R;
    [
        R::InvalidArgument,
        R::InvalidRequest,
        R::MalformedXml,
        R::MalformedTrailer,
        R::NotImplemented,
        R::MethodNotAllowed,
        R::NotModified,
        R::InvalidRange,
        R::PreconditionFailed,
        R::AccessDenied,
        R::UnknownAccessKey,
        R::RequestTimeSkewed,
        R::BadPresignedQuery,
        R::AclNotSupported,
        R::Overloaded,
        R::SignatureMismatch,
        R::PayloadHashMismatch,
        R::BadDigest,
        R::InvalidDigest,
        R::IncompleteBody,
        R::KeyTooLong,
        R::EntityTooLarge,
        R::EntityTooSmall,
        R::MetadataTooLarge,
        R::InvalidTag,
        R::InvalidPart,
        R::InvalidPartOrder,
        R::InvalidBucketName,
        R::WrongRegion,
        R::BucketTaken,
        R::BucketAlreadyYours,
        R::BucketNotEmpty,
        R::InvalidVersioning,
        R::NoSuchBucket,
        R::NoSuchKey,
        R::NoSuchUpload,
        R::NoSuchVersion,
        R::NoBucketTags,
        R::NoCorsRules,
        R::NoLifecycleRules,
        R::NoReplication,
        R::InvalidBucketState,
        R::Conflict,
        R::OperationAborted,
    ]
};

#[test]
fn every_refusal_has_its_own_code_and_an_http_status() {
    let mut codes = std::collections::HashSet::new();
    for kind in REFUSALS {
        let err = S3Error::from(FrontendError::refused(kind, "why"));
        assert_eq!(err.code(), &kind.s3_code(), "{kind:?}");
        assert_eq!(err.message(), Some("why"), "{kind:?}");
        let status = err.status_code().map(|s| s.as_u16());
        assert!(matches!(status, Some(300..=599)), "{kind:?}: {status:?}");
        assert!(
            codes.insert(kind.s3_code().as_str().to_string()),
            "{kind:?}"
        );
    }
}

#[test]
fn refusals_answer_the_s3_code_and_status_clients_expect() {
    let cases = [
        (Refusal::KeyTooLong, "KeyTooLongError", 400),
        (Refusal::MalformedXml, "MalformedXML", 400),
        (Refusal::MalformedTrailer, "MalformedTrailerError", 400),
        (
            Refusal::PayloadHashMismatch,
            "XAmzContentSHA256Mismatch",
            400,
        ),
        (Refusal::AccessDenied, "AccessDenied", 403),
        (Refusal::UnknownAccessKey, "InvalidAccessKeyId", 403),
        (Refusal::NoCorsRules, "NoSuchCORSConfiguration", 404),
        (Refusal::MethodNotAllowed, "MethodNotAllowed", 405),
        (Refusal::BucketTaken, "BucketAlreadyExists", 409),
        (Refusal::PreconditionFailed, "PreconditionFailed", 412),
        (Refusal::NotImplemented, "NotImplemented", 501),
    ];
    for (kind, code, http_status) in cases {
        let err = S3Error::from(FrontendError::refused(kind, "m"));
        assert_eq!(err.code().as_str(), code, "{kind:?}");
        assert_eq!(err.status_code().map(|s| s.as_u16()), Some(http_status));
    }
}

fn header<'a>(err: &'a S3Error, name: &str) -> Option<&'a str> {
    err.headers()?.get(name)?.to_str().ok()
}

#[test]
fn object_refusals_carry_the_object_in_headers() {
    let not_modified = S3Error::from(FrontendError::NotModified {
        etag: "\"abc\"".into(),
        last_modified_ms: 0,
    });
    assert_eq!(not_modified.code(), &S3ErrorCode::NotModified);
    assert_eq!(not_modified.message(), None);
    assert_eq!(header(&not_modified, "etag"), Some("\"abc\""));
    let epoch = "Thu, 01 Jan 1970 00:00:00 GMT";
    assert_eq!(header(&not_modified, "last-modified"), Some(epoch));

    let range = S3Error::from(FrontendError::RangeNotSatisfiable { size_bytes: 10 });
    assert_eq!(range.status_code().map(|s| s.as_u16()), Some(416));
    assert_eq!(header(&range, "content-range"), Some("bytes */10"));

    let marker = |by_version| {
        S3Error::from(FrontendError::DeleteMarker {
            version_id: String::new(),
            last_modified_ms: 0,
            by_version,
        })
    };
    let current = marker(false);
    assert_eq!(current.code(), &S3ErrorCode::NoSuchKey);
    assert_eq!(current.message(), Some(NO_SUCH_KEY_MESSAGE));
    assert_eq!(header(&current, "x-amz-delete-marker"), Some("true"));
    assert_eq!(header(&current, "x-amz-version-id"), Some("null"));
    assert_eq!(header(&current, "last-modified"), Some(epoch));
    let by_version = marker(true);
    assert_eq!(by_version.code(), &S3ErrorCode::MethodNotAllowed);
    assert_eq!(by_version.status_code().map(|s| s.as_u16()), Some(405));
}

#[test]
fn body_errors_map_to_what_went_wrong() {
    let answer = |text: &str| body_error_to_s3(&std::io::Error::other(text.to_string()));
    let hash = answer("UploadStreamError: Sha256Mismatch");
    assert_eq!(hash.code().as_str(), "XAmzContentSHA256Mismatch");
    assert_eq!(hash.status_code().map(|s| s.as_u16()), Some(400));
    let signature = answer("AwsChunkedStreamError: SignatureMismatch");
    assert_eq!(signature.code(), &S3ErrorCode::SignatureDoesNotMatch);
    let cut = answer("connection reset");
    assert_eq!(cut.code(), &S3ErrorCode::IncompleteBody);
    let refused = S3Error::from(FrontendError::refused(Refusal::BadDigest, "differs"));
    let passed_on = body_error_to_s3(&refused);
    assert_eq!(passed_on.code(), &S3ErrorCode::BadDigest);
    assert_eq!(passed_on.message(), Some("differs"));
}
