//! Errors that steer the caller, carried across gRPC in a `tonic::Status`.
//!
//! A partition server that does not own a key answers `FAILED_PRECONDITION` with a JSON
//! [`NotOwner`] in the status details; the caller refreshes its partition map and retries.

use serde::{Deserialize, Serialize};
use tonic::{Code, Status};

/// The request named a key outside every range this server serves under the current epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("not owner of range (epoch {epoch}, owner hint {owner_hint:?})")]
pub struct NotOwner {
    /// The range id the server knows for the key, 0 when none.
    pub range_id: u64,
    /// The newest epoch this server knows for that range.
    pub epoch: u64,
    /// gRPC address of the owner, when known.
    pub owner_hint: Option<String>,
}

/// Marker at the start of the status message so [`NotOwner::from_status`] recognises it.
const NOT_OWNER_MARKER: &str = "not-owner";

impl NotOwner {
    pub fn into_status(self) -> Status {
        let details = serde_json::to_vec(&self).unwrap_or_default();
        Status::with_details(Code::FailedPrecondition, NOT_OWNER_MARKER, details.into())
    }

    pub fn from_status(status: &Status) -> Option<NotOwner> {
        if status.code() != Code::FailedPrecondition || status.message() != NOT_OWNER_MARKER {
            return None;
        }
        serde_json::from_slice(status.details()).ok()
    }
}

/// The server is overloaded or a dependency is briefly unavailable; retry after this long.
pub fn busy_status(message: impl Into<String>) -> Status {
    Status::unavailable(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_owner_round_trips_through_status() {
        let original = NotOwner {
            range_id: 3,
            epoch: 9,
            owner_hint: Some("127.0.0.1:7000".into()),
        };
        let status = original.clone().into_status();
        assert_eq!(NotOwner::from_status(&status), Some(original));
        assert_eq!(NotOwner::from_status(&Status::internal("x")), None);
    }
}

/// Client-visible failures cross gRPC as a status whose message starts with the S3 error code
/// and ": ", e.g. `NoSuchKey: photos/a.jpg`. The front-end maps those codes to S3 responses
/// once, at the edge; a status without a code maps by its gRPC code.
pub fn s3_status(code: Code, s3_code: &str, message: impl std::fmt::Display) -> Status {
    Status::new(code, format!("{s3_code}: {message}"))
}

/// The S3 error code carried by [`s3_status`], if any.
pub fn s3_code(status: &Status) -> Option<&str> {
    let (code, _) = status.message().split_once(": ")?;
    let plausible =
        !code.is_empty() && code.len() <= 48 && code.chars().all(|c| c.is_ascii_alphanumeric());
    plausible.then_some(code)
}

#[cfg(test)]
mod s3_code_tests {
    use super::*;

    #[test]
    fn s3_codes_round_trip() {
        let status = s3_status(Code::NotFound, "NoSuchKey", "bkt/a b: c");
        assert_eq!(s3_code(&status), Some("NoSuchKey"));
        assert_eq!(s3_code(&Status::internal("disk on fire")), None);
        assert_eq!(s3_code(&Status::internal("two words: x")), None);
    }
}
