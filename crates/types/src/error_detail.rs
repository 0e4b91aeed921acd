//! The one error contract across gRPC: [`ErrorDetail`], written into and read from a
//! `tonic::Status` only here.
//!
//! Every error a Strata service answers is `to_status(detail, message)`: the gRPC code is chosen
//! from the detail's kind (in [`grpc_code`], nowhere else) and the detail travels prost-encoded
//! in the status details (`strata.error.ErrorDetail`, proto/strata/error.proto). The message is
//! for people and logs; no code parses it. So a status WITHOUT a detail was not answered by a
//! Strata service: tonic made it on the caller's side from a refused, reset or timed-out call.
//!
//! Typed ids and epochs live here; the raw integers of the wire exist only inside
//! [`to_status`] / [`from_status`]. The detail says what happened, never an S3 code: the
//! front-end maps each kind to its S3 error once (crates/frontend/src/error.rs).

use crate::ids::{Epoch, ExtentId, RangeId};
use crate::role::Role;
use prost::Message;
use strata_proto::error as pb;
use tonic::{Code, Status};

pub use pb::{Missing, RejectReason, UnavailableReason};

/// Why a call failed, in terms the caller can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorDetail {
    /// The key is outside every range this server serves: refresh the map and retry.
    NotOwner(NotOwner),
    /// The extent is sealed (or being sealed) at `length_bytes` and takes no more appends.
    Sealed {
        extent_id: ExtentId,
        length_bytes: u64,
    },
    /// The stream's writer was fenced by a newer writer: stop writing.
    Fenced { stream: String },
    /// This Raft member does not lead; the leader's address when known.
    NotLeader { leader_hint: Option<String> },
    /// Over a request-rate limit; retry after this long.
    Throttled { retry_after_ms: u64 },
    /// Briefly unable to serve; retry with backoff.
    Unavailable { reason: UnavailableReason },
    /// The object changed since the condition was evaluated.
    PreconditionFailed,
    /// The named thing does not exist.
    NotFound { what: Missing, name: String },
    /// The request is refused as it stands.
    Rejected { reason: RejectReason },
    /// Stored data failed its checks.
    Corrupt,
    /// The caller's certificate does not grant a role this call takes; `role` is the role it
    /// named (`None`: no certificate, or one naming no known role).
    PermissionDenied { role: Option<Role> },
    /// The bucket is not served by this stamp: it moved to `stamp` (`None`: this stamp's copy
    /// is being filled by a move whose switch has not happened). Ask the location group.
    BucketMoved { stamp: Option<String> },
    /// Anything else the caller cannot act on.
    Internal,
}

/// The request named a key outside every range this server serves under the current epoch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not owner of {range_id} (epoch {epoch:?}, owner hint {owner_hint:?})")]
pub struct NotOwner {
    /// The range the server knows for the key (`RangeId::new(0)` when none).
    pub range_id: RangeId,
    /// The newest epoch this server knows for that range.
    pub epoch: Epoch,
    /// gRPC address of the owner, when known.
    pub owner_hint: Option<String>,
}

impl NotOwner {
    pub fn into_status(self) -> Status {
        to_status(ErrorDetail::NotOwner(self), "not owner")
    }
}

/// Whether `status` says a call got no answer from its peer: the connection was refused,
/// reset or closed mid-call (a SIGKILLed server, a stopping one's GOAWAY), or the call timed out. Every answer
/// a Strata service gives carries an `ErrorDetail`; tonic builds these statuses on this side
/// from the transport's error, without one (with codes like Unavailable, Unknown, Internal or
/// Cancelled, and usually the transport's error as the status's source). Either way the failure
/// is transient, so it is retried or answered 503, never 500.
pub fn is_transport_failure(status: &Status) -> bool {
    if from_status(status).is_some() {
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

/// The gRPC code of each kind: chosen here once, so callers that only look at codes (tonic's
/// own retry logic, dashboards) see the same code for the same kind from every layer.
pub fn grpc_code(detail: &ErrorDetail) -> Code {
    match detail {
        ErrorDetail::NotOwner(_) | ErrorDetail::Sealed { .. } | ErrorDetail::Fenced { .. } => {
            Code::FailedPrecondition
        }
        ErrorDetail::NotLeader { .. } | ErrorDetail::Unavailable { .. } => Code::Unavailable,
        ErrorDetail::Throttled { .. } => Code::ResourceExhausted,
        ErrorDetail::PreconditionFailed => Code::Aborted,
        ErrorDetail::NotFound { .. } => Code::NotFound,
        ErrorDetail::Rejected { reason } => match reason {
            RejectReason::BucketNotEmpty
            | RejectReason::InvalidBucketState
            | RejectReason::Conflict
            | RejectReason::OperationAborted => Code::Aborted,
            RejectReason::NotImplemented => Code::Unimplemented,
            RejectReason::AlreadyExists => Code::AlreadyExists,
            RejectReason::OutOfRange => Code::OutOfRange,
            RejectReason::OffsetMismatch => Code::FailedPrecondition,
            _ => Code::InvalidArgument,
        },
        ErrorDetail::Corrupt => Code::DataLoss,
        ErrorDetail::PermissionDenied { .. } => Code::PermissionDenied,
        ErrorDetail::BucketMoved { .. } => Code::FailedPrecondition,
        ErrorDetail::Internal => Code::Internal,
    }
}

/// The status a Strata service answers for `detail`.
pub fn to_status(detail: ErrorDetail, message: impl Into<String>) -> Status {
    let code = grpc_code(&detail);
    let bytes = to_proto(detail).encode_to_vec();
    Status::with_details(code, message, bytes.into())
}

/// The detail a Strata service put in `status`; `None` when there is none, which means tonic
/// made the status on this side (a transport failure), never a peer's verdict. A detail of a
/// kind this build does not know (a newer peer) reads as [`ErrorDetail::Internal`].
pub fn from_status(status: &Status) -> Option<ErrorDetail> {
    if status.details().is_empty() {
        return None;
    }
    let proto = pb::ErrorDetail::decode(status.details()).ok()?;
    Some(from_proto(proto))
}

/// `status` with `message` in place of its own, keeping its code and detail: how a service
/// passes a peer's answer along (with where it came from) without losing what it said.
pub fn relay(status: &Status, message: impl Into<String>) -> Status {
    Status::with_details(status.code(), message, status.details().to_vec().into())
}

fn to_proto(detail: ErrorDetail) -> pb::ErrorDetail {
    use pb::error_detail::Kind;
    let kind = match detail {
        ErrorDetail::NotOwner(n) => Kind::NotOwner(pb::NotOwner {
            range_id: n.range_id.get(),
            epoch: n.epoch.get(),
            owner_hint: n.owner_hint.unwrap_or_default(),
        }),
        ErrorDetail::Sealed {
            extent_id,
            length_bytes,
        } => Kind::Sealed(pb::Sealed {
            extent_id: extent_id.get(),
            length_bytes,
        }),
        ErrorDetail::Fenced { stream } => Kind::Fenced(pb::Fenced { stream }),
        ErrorDetail::NotLeader { leader_hint } => Kind::NotLeader(pb::NotLeader {
            leader_hint: leader_hint.unwrap_or_default(),
        }),
        ErrorDetail::Throttled { retry_after_ms } => {
            Kind::Throttled(pb::Throttled { retry_after_ms })
        }
        ErrorDetail::Unavailable { reason } => Kind::Unavailable(pb::Unavailable {
            reason: reason.into(),
        }),
        ErrorDetail::PreconditionFailed => Kind::PreconditionFailed(pb::PreconditionFailed {}),
        ErrorDetail::NotFound { what, name } => Kind::NotFound(pb::NotFound {
            what: what.into(),
            name,
        }),
        ErrorDetail::Rejected { reason } => Kind::Rejected(pb::Rejected {
            reason: reason.into(),
        }),
        ErrorDetail::Corrupt => Kind::Corrupt(pb::Corrupt {}),
        ErrorDetail::PermissionDenied { role } => Kind::PermissionDenied(pb::PermissionDenied {
            role: role
                .map(|role| role.as_str().to_string())
                .unwrap_or_default(),
        }),
        ErrorDetail::BucketMoved { stamp } => Kind::BucketMoved(pb::BucketMoved {
            stamp: stamp.unwrap_or_default(),
        }),
        ErrorDetail::Internal => Kind::Internal(pb::Internal {}),
    };
    pb::ErrorDetail { kind: Some(kind) }
}

fn from_proto(proto: pb::ErrorDetail) -> ErrorDetail {
    use pb::error_detail::Kind;
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    match proto.kind {
        Some(Kind::NotOwner(n)) => ErrorDetail::NotOwner(NotOwner {
            range_id: RangeId::new(n.range_id),
            epoch: Epoch::new(n.epoch),
            owner_hint: non_empty(n.owner_hint),
        }),
        Some(Kind::Sealed(s)) => ErrorDetail::Sealed {
            extent_id: ExtentId::new(s.extent_id),
            length_bytes: s.length_bytes,
        },
        Some(Kind::Fenced(f)) => ErrorDetail::Fenced { stream: f.stream },
        Some(Kind::NotLeader(n)) => ErrorDetail::NotLeader {
            leader_hint: non_empty(n.leader_hint),
        },
        Some(Kind::Throttled(t)) => ErrorDetail::Throttled {
            retry_after_ms: t.retry_after_ms,
        },
        Some(Kind::Unavailable(u)) => ErrorDetail::Unavailable { reason: u.reason() },
        Some(Kind::PreconditionFailed(_)) => ErrorDetail::PreconditionFailed,
        Some(Kind::NotFound(n)) => ErrorDetail::NotFound {
            what: n.what(),
            name: n.name,
        },
        Some(Kind::Rejected(r)) => ErrorDetail::Rejected { reason: r.reason() },
        Some(Kind::Corrupt(_)) => ErrorDetail::Corrupt,
        Some(Kind::PermissionDenied(p)) => ErrorDetail::PermissionDenied {
            role: p.role.parse().ok(),
        },
        Some(Kind::BucketMoved(m)) => ErrorDetail::BucketMoved {
            stamp: non_empty(m.stamp),
        },
        Some(Kind::Internal(_)) | None => ErrorDetail::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<ErrorDetail> {
        vec![
            ErrorDetail::NotOwner(NotOwner {
                range_id: RangeId::new(3),
                epoch: Epoch::new(9),
                owner_hint: Some("127.0.0.1:7000".into()),
            }),
            ErrorDetail::NotOwner(NotOwner {
                range_id: RangeId::new(0),
                epoch: Epoch::ZERO,
                owner_hint: None,
            }),
            ErrorDetail::Sealed {
                extent_id: ExtentId::new(12),
                length_bytes: 4096,
            },
            ErrorDetail::Fenced {
                stream: "range-1/log".into(),
            },
            ErrorDetail::NotLeader {
                leader_hint: Some("10.0.0.2:9000".into()),
            },
            ErrorDetail::NotLeader { leader_hint: None },
            ErrorDetail::Throttled {
                retry_after_ms: 250,
            },
            ErrorDetail::Unavailable {
                reason: UnavailableReason::Frozen,
            },
            ErrorDetail::PreconditionFailed,
            ErrorDetail::NotFound {
                what: Missing::Upload,
                name: "u-1".into(),
            },
            ErrorDetail::Rejected {
                reason: RejectReason::InvalidPartOrder,
            },
            ErrorDetail::Corrupt,
            ErrorDetail::PermissionDenied {
                role: Some(Role::Operator),
            },
            ErrorDetail::PermissionDenied { role: None },
            ErrorDetail::BucketMoved {
                stamp: Some("stamp-2".into()),
            },
            ErrorDetail::BucketMoved { stamp: None },
            ErrorDetail::Internal,
        ]
    }

    #[test]
    fn each_kind_round_trips_through_a_status() {
        for detail in every_kind() {
            let status = to_status(detail.clone(), "some words: with a colon");
            assert_eq!(status.code(), grpc_code(&detail));
            assert_eq!(status.message(), "some words: with a colon");
            assert_eq!(from_status(&status), Some(detail.clone()));
            let relayed = relay(&status, "passed along (from 10.0.0.9:1)");
            assert_eq!(relayed.code(), status.code());
            assert_eq!(from_status(&relayed), Some(detail));
        }
    }

    #[test]
    fn a_status_without_detail_has_none() {
        for status in [
            Status::internal("disk on fire"),
            Status::unavailable("tcp connect error"),
            Status::cancelled("Timeout expired"),
            Status::failed_precondition("not-owner"),
        ] {
            assert_eq!(from_status(&status), None, "{status:?}");
        }
    }

    #[test]
    fn an_unknown_kind_reads_as_internal() {
        let empty = pb::ErrorDetail { kind: None }.encode_to_vec();
        // An empty message encodes to no bytes; give it an unknown field so it is not empty.
        let mut bytes = empty;
        bytes.extend_from_slice(&[0xf8, 0x01, 0x01]); // field 31, varint 1
        let status = Status::with_details(Code::Internal, "x", bytes.into());
        assert_eq!(from_status(&status), Some(ErrorDetail::Internal));
    }

    #[test]
    fn codes_keep_what_callers_looked_at() {
        let code = |d| grpc_code(&d);
        assert_eq!(
            code(ErrorDetail::Rejected {
                reason: RejectReason::OutOfRange
            }),
            Code::OutOfRange
        );
        assert_eq!(code(ErrorDetail::Corrupt), Code::DataLoss);
        assert_eq!(
            code(ErrorDetail::PermissionDenied { role: None }),
            Code::PermissionDenied
        );
        assert_eq!(
            code(ErrorDetail::NotLeader { leader_hint: None }),
            Code::Unavailable
        );
        assert_eq!(
            code(ErrorDetail::Throttled { retry_after_ms: 1 }),
            Code::ResourceExhausted
        );
    }
}
