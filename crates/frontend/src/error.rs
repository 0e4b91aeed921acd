//! The crate's one error enum, and the one place where failures and refusals become S3 errors.
//!
//! Handlers say what is wrong in front-end terms: a [`Refusal`] kind and the sentence the
//! client reads (`FrontendError::refused(Refusal::KeyTooLong, "...")`), or one of the refusals
//! that carry facts about an object (`NotModified`, `RangeNotSatisfiable`, `DeleteMarker`).
//! Only this module names S3 codes: [`Refusal::s3_code`] is the one table from kind to code,
//! and `From<FrontendError> for S3Error` adds statuses of codes s3s does not know and the
//! headers of the object refusals.
//!
//! Partition servers, the manager and the location service say what went wrong as a typed
//! `strata_types::ErrorDetail` in the status details (`strata_types::error_detail`).
//! [`status_to_s3`] maps each kind to a [`Refusal`] (or to 503 / 500) here, once. A status
//! without a detail was made by tonic on this side: a transport failure
//! ([`is_transport_failure`]), answered 503 (or retried by the router). Internal details never
//! reach the client: only the message of a client-facing kind, or a generic sentence.

use crate::meta::{format_http_date, timestamp_from_ms};
use s3s::{S3Error, S3ErrorCode};
use strata_types::error_detail::{self, ErrorDetail, Missing, RejectReason};
use tonic::{Code, Status};

/// Everything that can go wrong inside the front-end.
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    /// A partition server, the manager or the location service answered with an error.
    #[error("rpc failed: {0}")]
    Rpc(#[from] Status),
    /// No owner could be reached for a key within the retry budget.
    #[error("no partition server available: {0}")]
    Unavailable(String),
    /// A partition server asked us to back off.
    #[error("partition server is throttling: {0}")]
    SlowDown(String),
    /// Bad configuration (flags, config file).
    #[error("configuration: {0}")]
    Config(String),
    /// Binding or serving the listener failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A peer broke the contract (for example a GetObject stream without metadata).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The front-end refuses the request: what is wrong, and the sentence the client reads.
    #[error("refused ({kind:?}): {message}")]
    Refused { kind: Refusal, message: String },
    /// A conditional GET or HEAD found the client's copy current: 304, with the object's ETag
    /// and Last-Modified.
    #[error("not modified")]
    NotModified { etag: String, last_modified_ms: i64 },
    /// A Range outside the object: 416, with `Content-Range: bytes */size`.
    #[error("range not satisfiable in {size_bytes} bytes")]
    RangeNotSatisfiable { size_bytes: u64 },
    /// The key (or the version asked for) is a delete marker: 404 NoSuchKey, or 405 when it
    /// was asked for by version id; both say what it is in `x-amz-delete-marker`,
    /// `x-amz-version-id` and Last-Modified.
    #[error("delete marker")]
    DeleteMarker {
        version_id: String,
        last_modified_ms: i64,
        by_version: bool,
    },
}

impl FrontendError {
    /// A refusal of `kind`, told to the client as `message`.
    pub fn refused(kind: Refusal, message: impl Into<String>) -> Self {
        Self::Refused {
            kind,
            message: message.into(),
        }
    }
}

/// Each kind of refusal a client can get, whether the front-end refuses by itself or a
/// partition server did ([`status_to_s3`]). Named for what is wrong; [`Refusal::s3_code`]
/// says how S3 calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    // The request itself.
    /// A query parameter, header or field has a value outside its domain.
    InvalidArgument,
    /// The request as a whole cannot be served (conflicting or misplaced headers).
    InvalidRequest,
    /// An XML body does not parse or misses what the operation needs.
    MalformedXml,
    /// The aws-chunked trailer is not well-formed.
    MalformedTrailer,
    /// A feature or variant of an operation Strata does not implement.
    NotImplemented,
    /// The operation does not apply to the resource (a delete marker's tags).
    MethodNotAllowed,
    /// A conditional read found the client's copy current (see `FrontendError::NotModified`).
    NotModified,
    /// A Range outside the object (see `FrontendError::RangeNotSatisfiable`).
    InvalidRange,
    /// An If-* precondition does not hold.
    PreconditionFailed,
    // Who asks.
    /// An anonymous request.
    AccessDenied,
    /// An access key not in the key file.
    UnknownAccessKey,
    /// A signed request dated too far from the server's clock (a replay, or a wrong clock).
    RequestTimeSkewed,
    /// A presigned URL's query parameters break S3's rules (valid for more than 7 days).
    BadPresignedQuery,
    /// An ACL other than the owner's full control: Strata has no ACLs (as S3 with ACLs
    /// disabled by Object Ownership "bucket owner enforced").
    AclNotSupported,
    /// Every in-flight request slot of this front-end is taken.
    Overloaded,
    /// A body's chunk signature does not match its signing key.
    SignatureMismatch,
    // What is sent.
    /// A body whose SHA-256 differs from `x-amz-content-sha256`.
    PayloadHashMismatch,
    /// A body whose checksum differs from the one sent.
    BadDigest,
    /// A checksum header that cannot be a checksum.
    InvalidDigest,
    /// A body shorter than its Content-Length.
    IncompleteBody,
    /// An object key longer than S3 allows.
    KeyTooLong,
    /// An object or part larger than S3 allows.
    EntityTooLarge,
    /// A part (not the last one) smaller than S3 allows.
    EntityTooSmall,
    /// User metadata larger than S3 allows.
    MetadataTooLarge,
    /// A tag set that breaks S3's rules.
    InvalidTag,
    // Multipart uploads.
    /// A completion names a part that was not uploaded, or a bad part number.
    InvalidPart,
    /// A completion lists its parts out of order.
    InvalidPartOrder,
    // Buckets.
    /// A bucket name S3 would not accept.
    InvalidBucketName,
    /// A location constraint other than this endpoint's region.
    WrongRegion,
    /// A bucket name another requester owns.
    BucketTaken,
    /// A bucket name the requester already owns.
    BucketAlreadyYours,
    /// Deleting a bucket that still holds objects or uploads.
    BucketNotEmpty,
    /// A versioning change the bucket cannot make.
    InvalidVersioning,
    // Things that do not exist.
    /// No such bucket.
    NoSuchBucket,
    /// No such key (or its current version is a delete marker).
    NoSuchKey,
    /// No such multipart upload.
    NoSuchUpload,
    /// No such version of a key.
    NoSuchVersion,
    /// A bucket without tags.
    NoBucketTags,
    /// A bucket without CORS rules.
    NoCorsRules,
    /// A bucket without lifecycle rules.
    NoLifecycleRules,
    /// A bucket without a replication configuration.
    NoReplication,
    /// A change the bucket's configuration forbids (suspending the versioning a replication
    /// configuration needs).
    InvalidBucketState,
    // Races.
    /// A conditional write lost to a concurrent one.
    Conflict,
    /// A concurrent operation on the same resource won.
    OperationAborted,
}

impl Refusal {
    /// The S3 code of each refusal: the one table of them.
    pub fn s3_code(self) -> S3ErrorCode {
        use Refusal as R;
        use S3ErrorCode as C;
        match self {
            R::InvalidArgument => C::InvalidArgument,
            R::InvalidRequest => C::InvalidRequest,
            R::MalformedXml => C::MalformedXML,
            R::MalformedTrailer => C::Custom("MalformedTrailerError".into()),
            R::NotImplemented => C::NotImplemented,
            R::MethodNotAllowed => C::MethodNotAllowed,
            R::NotModified => C::NotModified,
            R::InvalidRange => C::InvalidRange,
            R::PreconditionFailed => C::PreconditionFailed,
            R::AccessDenied => C::AccessDenied,
            R::UnknownAccessKey => C::InvalidAccessKeyId,
            R::RequestTimeSkewed => C::RequestTimeTooSkewed,
            R::BadPresignedQuery => C::AuthorizationQueryParametersError,
            R::AclNotSupported => C::AccessControlListNotSupported,
            R::Overloaded => C::SlowDown,
            R::SignatureMismatch => C::SignatureDoesNotMatch,
            R::PayloadHashMismatch => C::Custom("XAmzContentSHA256Mismatch".into()),
            R::BadDigest => C::BadDigest,
            R::InvalidDigest => C::InvalidDigest,
            R::IncompleteBody => C::IncompleteBody,
            R::KeyTooLong => C::KeyTooLongError,
            R::EntityTooLarge => C::EntityTooLarge,
            R::EntityTooSmall => C::EntityTooSmall,
            R::MetadataTooLarge => C::MetadataTooLarge,
            R::InvalidTag => C::InvalidTag,
            R::InvalidPart => C::InvalidPart,
            R::InvalidPartOrder => C::InvalidPartOrder,
            R::InvalidBucketName => C::InvalidBucketName,
            R::WrongRegion => C::InvalidLocationConstraint,
            R::BucketTaken => C::BucketAlreadyExists,
            R::BucketAlreadyYours => C::BucketAlreadyOwnedByYou,
            R::BucketNotEmpty => C::BucketNotEmpty,
            R::InvalidVersioning => C::IllegalVersioningConfigurationException,
            R::NoSuchBucket => C::NoSuchBucket,
            R::NoSuchKey => C::NoSuchKey,
            R::NoSuchUpload => C::NoSuchUpload,
            R::NoSuchVersion => C::NoSuchVersion,
            R::NoBucketTags => C::NoSuchTagSet,
            R::NoCorsRules => C::NoSuchCORSConfiguration,
            R::NoLifecycleRules => C::NoSuchLifecycleConfiguration,
            R::NoReplication => C::ReplicationConfigurationNotFoundError,
            R::InvalidBucketState => C::InvalidBucketState,
            R::Conflict => C::ConditionalRequestConflict,
            R::OperationAborted => C::OperationAborted,
        }
    }
}

/// HTTP statuses of the S3 codes s3s does not know (it knows the status of every other code).
const CUSTOM_CODES: [(&str, http::StatusCode); 2] = [
    ("MalformedTrailerError", http::StatusCode::BAD_REQUEST),
    ("XAmzContentSHA256Mismatch", http::StatusCode::BAD_REQUEST),
];

/// The S3 error answering `kind`, with `message` (None: no Message element).
fn refusal_s3(kind: Refusal, message: Option<String>) -> S3Error {
    let code = kind.s3_code();
    let custom_status = match &code {
        S3ErrorCode::Custom(name) => Some(
            CUSTOM_CODES
                .iter()
                .find(|(known, _)| *known == &**name)
                .map_or(http::StatusCode::BAD_REQUEST, |(_, status)| *status),
        ),
        _ => None,
    };
    let mut err = match message {
        Some(message) => S3Error::with_message(code, message),
        None => S3Error::new(code),
    };
    if let Some(status) = custom_status {
        err.set_status_code(status);
    }
    err
}

/// Short, generic messages: what the client sees when the cause is internal.
const UNAVAILABLE_MESSAGE: &str = "Service is unavailable, please retry.";
const SLOW_DOWN_MESSAGE: &str = "Please reduce your request rate.";
/// A bucket switching stamps (its writes fenced for the switch, or its home just changed).
const BUCKET_MOVING_MESSAGE: &str = "The bucket is moving to another stamp; please retry.";
const INTERNAL_MESSAGE: &str = "We encountered an internal error. Please try again.";
/// What NoSuchKey says, whether the key is missing or its current version is a delete marker.
pub(crate) const NO_SUCH_KEY_MESSAGE: &str = "The specified key does not exist.";

impl From<FrontendError> for S3Error {
    fn from(err: FrontendError) -> Self {
        match err {
            FrontendError::Rpc(status) => status_to_s3(&status),
            FrontendError::Refused { kind, message } => refusal_s3(kind, Some(message)),
            FrontendError::NotModified {
                etag,
                last_modified_ms,
            } => {
                let mut err = refusal_s3(Refusal::NotModified, None);
                err.set_headers(header_map([
                    (http::header::ETAG, etag),
                    (http::header::LAST_MODIFIED, http_date(last_modified_ms)),
                ]));
                err
            }
            FrontendError::RangeNotSatisfiable { size_bytes } => {
                let message = "The requested range is not satisfiable";
                let mut err = refusal_s3(Refusal::InvalidRange, Some(message.into()));
                let content_range = format!("bytes */{size_bytes}");
                err.set_headers(header_map([(http::header::CONTENT_RANGE, content_range)]));
                err
            }
            FrontendError::DeleteMarker {
                version_id,
                last_modified_ms,
                by_version,
            } => delete_marker_s3(version_id, last_modified_ms, by_version),
            FrontendError::Unavailable(reason) => {
                tracing::warn!(%reason, "answering ServiceUnavailable");
                S3Error::with_message(S3ErrorCode::ServiceUnavailable, UNAVAILABLE_MESSAGE)
            }
            FrontendError::SlowDown(reason) => {
                tracing::info!(%reason, "answering SlowDown");
                S3Error::with_message(S3ErrorCode::SlowDown, SLOW_DOWN_MESSAGE)
            }
            other => {
                tracing::error!(err = %other, "answering InternalError");
                S3Error::with_message(S3ErrorCode::InternalError, INTERNAL_MESSAGE)
            }
        }
    }
}

/// The HTTP answer of `err` for a request refused before s3s handles it (a SigV2 signature, an
/// over-long presigned URL): the same code, status and XML body s3s would write.
pub fn error_response(err: FrontendError) -> axum::response::Response {
    let err = S3Error::from(err);
    let status = err
        .status_code()
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let message = err.message().map(xml_escape).unwrap_or_default();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code><Message>{message}</Message></Error>",
        err.code().as_str()
    );
    let mut response = axum::response::Response::new(axum::body::Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    response
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A delete marker's answer: NoSuchKey for the current version, MethodNotAllowed when it was
/// asked for by version id; both name the marker (S3 shows the null version as "null").
fn delete_marker_s3(version_id: String, last_modified_ms: i64, by_version: bool) -> S3Error {
    let mut err = if by_version {
        let message = "The specified method is not allowed against this resource.";
        refusal_s3(Refusal::MethodNotAllowed, Some(message.into()))
    } else {
        refusal_s3(Refusal::NoSuchKey, Some(NO_SUCH_KEY_MESSAGE.into()))
    };
    let version_id = if version_id.is_empty() {
        "null".to_string()
    } else {
        version_id
    };
    err.set_headers(header_map([
        (
            http::HeaderName::from_static("x-amz-delete-marker"),
            "true".to_string(),
        ),
        (
            http::HeaderName::from_static("x-amz-version-id"),
            version_id,
        ),
        (http::header::LAST_MODIFIED, http_date(last_modified_ms)),
    ]));
    err
}

fn http_date(ms: i64) -> String {
    format_http_date(&timestamp_from_ms(ms))
}

/// Headers from (name, value) pairs, leaving out a value HTTP cannot carry.
fn header_map<const N: usize>(pairs: [(http::HeaderName, String); N]) -> http::HeaderMap {
    pairs
        .into_iter()
        .filter_map(|(name, value)| Some((name, http::HeaderValue::from_str(&value).ok()?)))
        .collect()
}
/// Whether `status` says a call got no answer from its peer (shared with every client).
pub use strata_types::error_detail::is_transport_failure;

/// Whether `status` is a call that ran out of time (tonic's client-side timeout, or a
/// deadline): the peer may still apply it, so it is answered 503 rather than sent again.
/// tonic answers its own timeout as Cancelled with `tonic::TimeoutExpired` in the source chain
/// (a Cancelled decoded from a peer's trailers has no source, and is a timeout there).
pub fn is_timeout(status: &Status) -> bool {
    if error_detail::from_status(status).is_some() {
        return false;
    }
    match status.code() {
        Code::DeadlineExceeded => true,
        Code::Cancelled => {
            let mut source = std::error::Error::source(status);
            if source.is_none() {
                return true;
            }
            while let Some(err) = source {
                if err.is::<tonic::TimeoutExpired>() {
                    return true;
                }
                source = err.source();
            }
            false
        }
        _ => false,
    }
}

/// Maps a status from a Strata service to the S3 error the client sees: by its detail, else
/// (tonic made it) as a transport failure or by its gRPC code.
pub fn status_to_s3(status: &Status) -> S3Error {
    if let Some(detail) = error_detail::from_status(status) {
        return detail_to_s3(&detail, status);
    }
    if is_transport_failure(status) {
        tracing::warn!(code = ?status.code(), message = status.message(), "dependency unavailable");
        return S3Error::with_message(S3ErrorCode::ServiceUnavailable, UNAVAILABLE_MESSAGE);
    }
    match status.code() {
        Code::NotFound => refusal_s3(Refusal::NoSuchKey, None),
        Code::ResourceExhausted => S3Error::with_message(S3ErrorCode::SlowDown, SLOW_DOWN_MESSAGE),
        Code::InvalidArgument => {
            refusal_s3(Refusal::InvalidArgument, Some("Invalid argument.".into()))
        }
        _ => internal_s3(status),
    }
}

/// The one mapping from what a Strata service said to the S3 error a client sees. Client-facing
/// kinds show the service's message (bounded); the others show a generic sentence.
fn detail_to_s3(detail: &ErrorDetail, status: &Status) -> S3Error {
    let refusal = match detail {
        ErrorDetail::NotFound { what, .. } => match what {
            Missing::Key => Some(Refusal::NoSuchKey),
            Missing::Bucket => Some(Refusal::NoSuchBucket),
            Missing::Upload => Some(Refusal::NoSuchUpload),
            Missing::Version => Some(Refusal::NoSuchVersion),
            Missing::Extent | Missing::Stream | Missing::Unspecified => None,
        },
        ErrorDetail::PreconditionFailed => Some(Refusal::PreconditionFailed),
        ErrorDetail::Rejected { reason } => refusal_of(*reason),
        ErrorDetail::Throttled { .. } => {
            return S3Error::with_message(S3ErrorCode::SlowDown, SLOW_DOWN_MESSAGE)
        }
        // The bucket switches stamps (or just did, and this front-end's view of its home is
        // older than that): retrying shortly reaches its new home.
        ErrorDetail::BucketMoved { .. } => {
            return S3Error::with_message(S3ErrorCode::SlowDown, BUCKET_MOVING_MESSAGE)
        }
        ErrorDetail::NotOwner(_)
        | ErrorDetail::Unavailable { .. }
        | ErrorDetail::NotLeader { .. }
        | ErrorDetail::Sealed { .. }
        | ErrorDetail::Fenced { .. } => {
            tracing::warn!(
                ?detail,
                message = status.message(),
                "dependency unavailable"
            );
            return S3Error::with_message(S3ErrorCode::ServiceUnavailable, UNAVAILABLE_MESSAGE);
        }
        // An internal caller refused by mTLS is a deployment fault, not the S3 client's: it shows
        // as an internal error.
        ErrorDetail::Corrupt | ErrorDetail::PermissionDenied { .. } | ErrorDetail::Internal => None,
    };
    match refusal {
        Some(kind) => refusal_s3(kind, Some(status.message().chars().take(256).collect())),
        None => internal_s3(status),
    }
}

/// What each reason a Strata service refuses a request for means to the client; None for the
/// stream layer's reasons, which never answer a client.
fn refusal_of(reason: RejectReason) -> Option<Refusal> {
    use RejectReason as Why;
    Some(match reason {
        Why::InvalidArgument => Refusal::InvalidArgument,
        Why::InvalidRequest => Refusal::InvalidRequest,
        Why::BadDigest => Refusal::BadDigest,
        Why::InvalidDigest => Refusal::InvalidDigest,
        Why::IncompleteBody => Refusal::IncompleteBody,
        Why::MalformedTrailer => Refusal::MalformedTrailer,
        Why::EntityTooSmall => Refusal::EntityTooSmall,
        Why::EntityTooLarge => Refusal::EntityTooLarge,
        Why::MetadataTooLarge => Refusal::MetadataTooLarge,
        Why::KeyTooLong => Refusal::KeyTooLong,
        Why::InvalidPart => Refusal::InvalidPart,
        Why::InvalidPartOrder => Refusal::InvalidPartOrder,
        Why::BucketNotEmpty => Refusal::BucketNotEmpty,
        Why::Conflict => Refusal::Conflict,
        Why::OperationAborted => Refusal::OperationAborted,
        Why::InvalidVersioning => Refusal::InvalidVersioning,
        Why::MethodNotAllowed => Refusal::MethodNotAllowed,
        Why::NotImplemented => Refusal::NotImplemented,
        Why::InvalidBucketState => Refusal::InvalidBucketState,
        Why::AlreadyExists | Why::OutOfRange | Why::OffsetMismatch | Why::Unspecified => {
            return None
        }
    })
}

fn internal_s3(status: &Status) -> S3Error {
    tracing::error!(code = ?status.code(), message = status.message(), "internal error from a dependency");
    S3Error::with_message(S3ErrorCode::InternalError, INTERNAL_MESSAGE)
}

/// A peer broke the contract inside a call whose errors travel as statuses (a PutObject answer
/// without metadata): answered like a peer's `Internal`, final and never retried.
pub fn protocol_violation(message: &str) -> Status {
    tracing::error!(message, "protocol violation by a peer");
    error_detail::to_status(ErrorDetail::Internal, message)
}

/// Turns an error from a request body stream (as s3s yields it) into the S3 error to answer.
pub fn body_error_to_s3(err: &(dyn std::error::Error + Send + Sync + 'static)) -> S3Error {
    if let Some(s3) = err.downcast_ref::<S3Error>() {
        let mut copy = S3Error::new(s3.code().clone());
        if let Some(message) = s3.message() {
            copy.set_message(message.to_string());
        }
        if let Some(status) = s3.status_code() {
            copy.set_status_code(status);
        }
        return copy;
    }
    match s3s_body_refusal(err) {
        Some(Refusal::PayloadHashMismatch) => refusal_s3(
            Refusal::PayloadHashMismatch,
            Some(
                "The provided 'x-amz-content-sha256' header does not match what was computed."
                    .into(),
            ),
        ),
        Some(kind) => refusal_s3(kind, None),
        None => {
            tracing::info!(%err, "request body ended with an error");
            let message =
                "You did not provide the number of bytes specified by the Content-Length HTTP header.";
            refusal_s3(Refusal::IncompleteBody, Some(message.into()))
        }
    }
}

/// What s3s's own check of a request body found wrong, told by the error's text: the one place
/// in the front-end that reads error text. s3s (0.14) checks the payload hash in
/// `sig_v4::UploadStreamError::Sha256Mismatch` and chunk signatures in
/// `http::AwsChunkedStreamError::SignatureMismatch`, but both modules are private and neither
/// type is re-exported, so the boxed error cannot be downcast; their Display texts
/// ("UploadStreamError: Sha256Mismatch", "AwsChunkedStreamError: SignatureMismatch") are all
/// it shows. The e2e tests pin both answers (XAmzContentSHA256Mismatch, SignatureDoesNotMatch).
fn s3s_body_refusal(err: &(dyn std::error::Error + Send + Sync + 'static)) -> Option<Refusal> {
    let text = err.to_string();
    if text.contains("Sha256Mismatch") {
        Some(Refusal::PayloadHashMismatch)
    } else if text.contains("SignatureMismatch") {
        Some(Refusal::SignatureMismatch)
    } else {
        None
    }
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
