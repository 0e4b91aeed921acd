//! The crate's one error enum, and the one place where internal failures become S3 errors.
//!
//! Partition servers, the manager and the location service say what went wrong as a typed
//! `strata_types::ErrorDetail` in the status details (`strata_types::error_detail`).
//! [`status_to_s3`] maps each kind to its [`S3Error`] here, once: no other layer names an S3
//! code. A status without a detail was made by tonic on this side: a transport failure
//! ([`is_transport_failure`]), answered 503 (or retried by the router). Internal details never
//! reach the client: only the message of a client-facing kind, or a generic sentence.

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
/// reset or closed mid-call (a SIGKILLed partition server), or the call timed out. Every answer
/// a Strata service gives carries an `ErrorDetail`; tonic builds these statuses on this side
/// from the transport's error, without one (with codes like Unavailable, Unknown, Internal or
/// Cancelled, and usually the transport's error as the status's source). Either way the failure
/// is transient, so it is retried or answered 503, never 500.
pub fn is_transport_failure(status: &Status) -> bool {
    if error_detail::from_status(status).is_some() {
        return false;
    }
    std::error::Error::source(status).is_some()
        || matches!(
            status.code(),
            Code::Unavailable
                | Code::Unknown
                | Code::Internal
                | Code::Cancelled
                | Code::DeadlineExceeded
        )
}

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
        Code::NotFound => S3Error::new(S3ErrorCode::NoSuchKey),
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

/// The one mapping from what a Strata service said to the S3 error a client sees. Client-facing
/// kinds show the service's message (bounded); the others show a generic sentence.
fn detail_to_s3(detail: &ErrorDetail, status: &Status) -> S3Error {
    let shown: String = status.message().chars().take(256).collect();
    let code = match detail {
        ErrorDetail::NotFound { what, .. } => match what {
            Missing::Key => S3ErrorCode::NoSuchKey,
            Missing::Bucket => S3ErrorCode::NoSuchBucket,
            Missing::Upload => S3ErrorCode::NoSuchUpload,
            Missing::Version => S3ErrorCode::NoSuchVersion,
            Missing::Extent | Missing::Stream | Missing::Unspecified => return internal_s3(status),
        },
        ErrorDetail::PreconditionFailed => S3ErrorCode::PreconditionFailed,
        ErrorDetail::Rejected { reason } => match rejected_s3_code(*reason) {
            RejectedAs::Known(code) => code,
            RejectedAs::Custom(code) => return custom_s3_error(code, &shown),
            RejectedAs::Internal => return internal_s3(status),
        },
        ErrorDetail::Throttled { .. } => {
            return S3Error::with_message(S3ErrorCode::SlowDown, SLOW_DOWN_MESSAGE)
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
        ErrorDetail::Corrupt | ErrorDetail::Internal => return internal_s3(status),
    };
    S3Error::with_message(code, shown)
}

enum RejectedAs {
    Known(S3ErrorCode),
    Custom(&'static str),
    Internal,
}

/// The S3 code of each reason a request is refused for.
fn rejected_s3_code(reason: RejectReason) -> RejectedAs {
    use RejectedAs::{Custom, Internal, Known};
    match reason {
        RejectReason::InvalidArgument => Known(S3ErrorCode::InvalidArgument),
        RejectReason::InvalidRequest => Known(S3ErrorCode::InvalidRequest),
        RejectReason::BadDigest => Known(S3ErrorCode::BadDigest),
        RejectReason::InvalidDigest => Known(S3ErrorCode::InvalidDigest),
        RejectReason::IncompleteBody => Known(S3ErrorCode::IncompleteBody),
        RejectReason::MalformedTrailer => Custom("MalformedTrailerError"),
        RejectReason::EntityTooSmall => Known(S3ErrorCode::EntityTooSmall),
        RejectReason::EntityTooLarge => Known(S3ErrorCode::EntityTooLarge),
        RejectReason::MetadataTooLarge => Known(S3ErrorCode::MetadataTooLarge),
        RejectReason::KeyTooLong => Known(S3ErrorCode::KeyTooLongError),
        RejectReason::InvalidPart => Known(S3ErrorCode::InvalidPart),
        RejectReason::InvalidPartOrder => Known(S3ErrorCode::InvalidPartOrder),
        RejectReason::BucketNotEmpty => Known(S3ErrorCode::BucketNotEmpty),
        RejectReason::Conflict => Known(S3ErrorCode::ConditionalRequestConflict),
        RejectReason::OperationAborted => Known(S3ErrorCode::OperationAborted),
        RejectReason::InvalidVersioning => {
            Known(S3ErrorCode::IllegalVersioningConfigurationException)
        }
        RejectReason::MethodNotAllowed => Known(S3ErrorCode::MethodNotAllowed),
        RejectReason::NotImplemented => Known(S3ErrorCode::NotImplemented),
        // Reasons of the stream layer, which never answers a client.
        RejectReason::AlreadyExists
        | RejectReason::OutOfRange
        | RejectReason::OffsetMismatch
        | RejectReason::Unspecified => Internal,
    }
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
        for reason in (0..=i32::from(RejectReason::OffsetMismatch))
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
}
