//! The crate's one error enum, and the one place where internal failures become S3 errors.
//!
//! Partition servers and the location service report client-visible failures as a
//! `tonic::Status` whose message starts with the S3 code (`strata_types::routing::s3_status`).
//! [`status_to_s3`] turns such a status into the matching [`S3Error`]; a status without a code
//! maps by its gRPC code. Internal details never reach the client: only the short message
//! after the S3 code, or a generic sentence.

use s3s::{S3Error, S3ErrorCode};
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
}

/// Short, generic messages: what the client sees when the cause is internal.
const UNAVAILABLE_MESSAGE: &str = "Service is unavailable, please retry.";
const SLOW_DOWN_MESSAGE: &str = "Please reduce your request rate.";
const INTERNAL_MESSAGE: &str = "We encountered an internal error. Please try again.";

impl From<FrontendError> for S3Error {
    fn from(err: FrontendError) -> Self {
        match err {
            FrontendError::Rpc(status) => status_to_s3(&status),
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

/// S3 error codes s3s does not know, with their HTTP status.
const CUSTOM_CODES: [(&str, http::StatusCode); 2] = [
    ("MalformedTrailerError", http::StatusCode::BAD_REQUEST),
    ("XAmzContentSHA256Mismatch", http::StatusCode::BAD_REQUEST),
];

/// An S3 error with a code s3s does not know (see [`CUSTOM_CODES`]).
pub fn custom_s3_error(code: &'static str, message: &str) -> S3Error {
    let status = CUSTOM_CODES
        .iter()
        .find(|(known, _)| *known == code)
        .map_or(http::StatusCode::BAD_REQUEST, |(_, status)| *status);
    let mut err = S3Error::with_message(S3ErrorCode::Custom(code.into()), message.to_string());
    err.set_status_code(status);
    err
}

/// Whether `status` says a call got no answer from its peer: the connection was refused,
/// reset or closed mid-call (a SIGKILLed partition server), or the call timed out. tonic builds
/// such a status on this side from the transport's error and keeps that error as the status's
/// source (with codes like Unknown, Internal or Cancelled that are no peer's verdict); a status
/// the peer answered is decoded from its trailers and has no source. Either way the failure is
/// transient, so it is retried or answered 503, never 500.
pub fn is_transport_failure(status: &Status) -> bool {
    if status.code() == Code::Unavailable {
        return true;
    }
    // A peer's verdict carries its S3 code; the transport's statuses never do.
    if strata_types::routing::s3_code(status).is_some() {
        return false;
    }
    let message = status.message();
    std::error::Error::source(status).is_some()
        || message.starts_with("h2 protocol error")
        || message.contains("transport error")
        || message.contains("not ready")
        || is_timeout(status)
}

/// Whether `status` is a call that ran out of time (tonic's client-side timeout, or a
/// deadline): the peer may still apply it, so it is answered 503 rather than sent again.
pub fn is_timeout(status: &Status) -> bool {
    status.code() == Code::DeadlineExceeded
        || (status.code() == Code::Cancelled && status.message() == "Timeout expired")
}

/// Maps a status from a Strata service to the S3 error the client sees.
pub fn status_to_s3(status: &Status) -> S3Error {
    if let Some(code) = strata_types::routing::s3_code(status) {
        if let Some((known, _)) = CUSTOM_CODES.iter().find(|(known, _)| *known == code) {
            let message = status.message().split_once(": ").map(|(_, m)| m);
            return custom_s3_error(known, message.unwrap_or_default());
        }
        let s3_code = S3ErrorCode::from_bytes(code.as_bytes());
        if let Some(s3_code) = s3_code.filter(|c| c.status_code().is_some()) {
            let message = status
                .message()
                .split_once(": ")
                .map(|(_, m)| m)
                .unwrap_or_default();
            let message: String = message.chars().take(256).collect();
            return S3Error::with_message(s3_code, message);
        }
    }
    if is_transport_failure(status) {
        tracing::warn!(code = ?status.code(), message = status.message(), "dependency unavailable");
        return S3Error::with_message(S3ErrorCode::ServiceUnavailable, UNAVAILABLE_MESSAGE);
    }
    match status.code() {
        Code::NotFound => S3Error::new(S3ErrorCode::NoSuchKey),
        Code::Unavailable | Code::DeadlineExceeded => {
            tracing::warn!(code = ?status.code(), message = status.message(), "dependency unavailable");
            S3Error::with_message(S3ErrorCode::ServiceUnavailable, UNAVAILABLE_MESSAGE)
        }
        Code::ResourceExhausted => S3Error::with_message(S3ErrorCode::SlowDown, SLOW_DOWN_MESSAGE),
        Code::InvalidArgument => {
            S3Error::with_message(S3ErrorCode::InvalidArgument, "Invalid argument.")
        }
        _ => {
            tracing::error!(code = ?status.code(), message = status.message(), "internal error from a dependency");
            S3Error::with_message(S3ErrorCode::InternalError, INTERNAL_MESSAGE)
        }
    }
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
    let text = err.to_string();
    if text.contains("Sha256Mismatch") {
        return custom_s3_error(
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        );
    }
    if text.contains("SignatureMismatch") {
        return S3Error::new(S3ErrorCode::SignatureDoesNotMatch);
    }
    tracing::info!(err = %text, "request body ended with an error");
    S3Error::with_message(
        S3ErrorCode::IncompleteBody,
        "You did not provide the number of bytes specified by the Content-Length HTTP header.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_types::routing::s3_status;

    #[test]
    fn s3_codes_map_to_their_s3_error() {
        let cases = [
            (
                s3_status(Code::NotFound, "NoSuchKey", "k"),
                S3ErrorCode::NoSuchKey,
                404,
            ),
            (
                s3_status(Code::NotFound, "NoSuchBucket", "b"),
                S3ErrorCode::NoSuchBucket,
                404,
            ),
            (
                s3_status(Code::InvalidArgument, "BadDigest", "x"),
                S3ErrorCode::BadDigest,
                400,
            ),
            (
                s3_status(Code::InvalidArgument, "IncompleteBody", "x"),
                S3ErrorCode::IncompleteBody,
                400,
            ),
            (
                s3_status(Code::FailedPrecondition, "PreconditionFailed", "x"),
                S3ErrorCode::PreconditionFailed,
                412,
            ),
            (
                s3_status(Code::InvalidArgument, "EntityTooLarge", "x"),
                S3ErrorCode::EntityTooLarge,
                400,
            ),
            (
                s3_status(Code::InvalidArgument, "InvalidArgument", "x"),
                S3ErrorCode::InvalidArgument,
                400,
            ),
            (
                s3_status(Code::NotFound, "NoSuchUpload", "u"),
                S3ErrorCode::NoSuchUpload,
                404,
            ),
            (
                s3_status(Code::InvalidArgument, "InvalidPart", "x"),
                S3ErrorCode::InvalidPart,
                400,
            ),
            (
                s3_status(Code::InvalidArgument, "InvalidPartOrder", "x"),
                S3ErrorCode::InvalidPartOrder,
                400,
            ),
            (
                s3_status(Code::InvalidArgument, "EntityTooSmall", "x"),
                S3ErrorCode::EntityTooSmall,
                400,
            ),
            (
                s3_status(Code::InvalidArgument, "InvalidRequest", "x"),
                S3ErrorCode::InvalidRequest,
                400,
            ),
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
                Status::internal("disk on fire at /var/x"),
                S3ErrorCode::InternalError,
                500,
            ),
            (
                Status::internal("Unheard: x"),
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

    /// What tonic's client makes of a partition server that died: a call on a connection that
    /// closed before the request went out, one reset mid-call, a refused connection, a timeout.
    fn transport_statuses() -> Vec<Status> {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        vec![
            Status::from_error(Box::new(reset)),
            Status::unknown("transport error"),
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
        // Answers a peer gave stay what they are.
        for status in [
            Status::internal("disk on fire"),
            Status::cancelled("the client went away"),
            s3_status(Code::Internal, "InternalError", "x"),
        ] {
            assert!(!is_transport_failure(&status), "{status:?}");
        }
    }

    #[test]
    fn internal_details_do_not_leak() {
        let err = status_to_s3(&Status::internal("disk on fire at /var/secret"));
        assert!(!err.message().unwrap_or_default().contains("/var/secret"));
    }
}
