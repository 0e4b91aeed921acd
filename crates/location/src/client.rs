//! Client of the location group, for front-ends and the operator's tools.
//!
//! It knows every member's address, remembers the leader it last found, follows the leader a
//! member names (`NotLeader`), and goes round the members while an election runs, within a
//! bound: each attempt has [`CALL_TIMEOUT_MS`], a call at most [`CALL_BUDGET_MS`] and
//! [`ROUNDS_MAX`] rounds over the members. Every call it retries is safe to repeat: a repeated
//! reservation answers the caller's own hold ("taken" by the same owner), a repeated release
//! answers "not released".

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use strata_proto::location::location_client::LocationClient as ProtoClient;
use strata_proto::location::*;
use strata_types::error_detail::{from_status, is_transport_failure, ErrorDetail};
use strata_util::rpc::{Channel, ChannelPool};
use tonic::Status;

/// Bound of one call to one member.
pub const CALL_TIMEOUT_MS: u64 = 2_000;
/// Bound of one call over every member and retry (an election takes 1-2 s; a dead member's
/// attempts take up to their timeout each).
pub const CALL_BUDGET_MS: u64 = 12_000;
/// Most rounds over every member in one call (with the pause after each, rounds of fast
/// refusals span about 10 s: long enough for an election).
const ROUNDS_MAX: usize = 40;
/// Pause after a round in which no member answered.
const ROUND_PAUSE_MS: u64 = 250;

/// Talks to whichever member leads. Cheap to share (`&self` methods).
pub struct LocationClient {
    members: Vec<String>,
    leader: Mutex<Option<String>>,
    channels: ChannelPool,
}

impl LocationClient {
    /// A client of the group whose members serve gRPC at the comma-separated `addrs`.
    pub fn new(addrs: &str) -> Result<Self, String> {
        let mut members: Vec<String> = Vec::new();
        for addr in addrs.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            if !addr.contains(':') {
                return Err(format!("location member {addr:?} is not host:port"));
            }
            if !members.iter().any(|known| known == addr) {
                members.push(addr.to_string());
            }
        }
        if members.is_empty() {
            return Err("no location member given".into());
        }
        Ok(Self {
            members,
            leader: Mutex::new(None),
            channels: ChannelPool::new(Duration::from_millis(CALL_TIMEOUT_MS)),
        })
    }

    /// The member addresses this client knows.
    pub fn members(&self) -> &[String] {
        &self.members
    }

    fn known_leader(&self) -> Option<String> {
        self.leader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn remember_leader(&self, leader: Option<String>) {
        *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = leader;
    }

    /// Members in the order to try: the known leader first, then the others.
    fn round(&self) -> Vec<String> {
        let mut order: Vec<String> = self.known_leader().into_iter().collect();
        for addr in &self.members {
            if !order.contains(addr) {
                order.push(addr.clone());
            }
        }
        order
    }

    /// Sends `call` to the leader, wherever it is; answers the first answer that is not "ask
    /// elsewhere or later", or the last refusal once the bounds are spent.
    async fn call<T, F, Fut>(&self, what: &'static str, call: F) -> Result<T, Status>
    where
        F: Fn(ProtoClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let deadline = Instant::now() + Duration::from_millis(CALL_BUDGET_MS);
        let mut last = Status::unavailable("no location member was tried");
        for _ in 0..ROUNDS_MAX {
            let mut queue = self.round();
            let mut tried = 0;
            while !queue.is_empty() && tried < self.members.len() * 2 {
                let addr = queue.remove(0);
                tried += 1;
                let channel = self
                    .channels
                    .get(&addr)
                    .map_err(|err| Status::invalid_argument(err.to_string()))?;
                let client = ProtoClient::new(channel)
                    .max_decoding_message_size(strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX)
                    .max_encoding_message_size(strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX);
                let status = match call(client).await {
                    Ok(answer) => {
                        self.remember_leader(Some(addr));
                        return Ok(answer.into_inner());
                    }
                    Err(status) => status,
                };
                match retry_at(&status) {
                    Retry::No => return Err(status),
                    Retry::Leader(hint) => {
                        tracing::debug!(%addr, ?hint, what, "location member does not lead");
                        if let Some(leader) = hint.filter(|leader| *leader != addr) {
                            queue.retain(|queued| *queued != leader);
                            queue.insert(0, leader);
                        }
                    }
                    Retry::Elsewhere => {
                        tracing::debug!(%addr, %status, what, "location member did not answer");
                    }
                }
                last = status;
                if Instant::now() >= deadline {
                    break;
                }
            }
            self.remember_leader(None);
            let pause = Duration::from_millis(ROUND_PAUSE_MS);
            if Instant::now() + pause >= deadline {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        tracing::warn!(what, %last, "no location member answered");
        Err(last)
    }

    pub async fn reserve_bucket(
        &self,
        request: ReserveBucketRequest,
    ) -> Result<ReserveBucketResponse, Status> {
        self.call("ReserveBucket", |mut client| {
            let request = request.clone();
            async move { client.reserve_bucket(request).await }
        })
        .await
    }

    pub async fn release_bucket(
        &self,
        request: ReleaseBucketRequest,
    ) -> Result<ReleaseBucketResponse, Status> {
        self.call("ReleaseBucket", |mut client| {
            let request = request.clone();
            async move { client.release_bucket(request).await }
        })
        .await
    }

    pub async fn lookup_bucket(&self, bucket: &str) -> Result<LookupBucketResponse, Status> {
        let request = LookupBucketRequest {
            bucket: bucket.to_string(),
            applied_ok: false,
        };
        self.call("LookupBucket", |mut client| {
            let request = request.clone();
            async move { client.lookup_bucket(request).await }
        })
        .await
    }

    /// `bucket`'s home from whichever member answers first from what it applied (see
    /// `LookupBucketRequest.applied_ok`): every member is asked at once, each within
    /// [`CALL_TIMEOUT_MS`], so a dead or electing leader costs nothing. For when the leader
    /// cannot answer: the answer may be behind it.
    pub async fn lookup_bucket_applied(
        &self,
        bucket: &str,
    ) -> Result<LookupBucketResponse, Status> {
        let asks = self.members.iter().map(|addr| {
            let request = LookupBucketRequest {
                bucket: bucket.to_string(),
                applied_ok: true,
            };
            Box::pin(async move {
                let channel = self
                    .channels
                    .get(addr)
                    .map_err(|err| Status::invalid_argument(err.to_string()))?;
                let mut client = ProtoClient::new(channel);
                let timeout = Duration::from_millis(CALL_TIMEOUT_MS);
                match tokio::time::timeout(timeout, client.lookup_bucket(request)).await {
                    Ok(answer) => answer.map(tonic::Response::into_inner),
                    Err(_) => Err(Status::deadline_exceeded(format!("{addr} did not answer"))),
                }
            })
        });
        futures::future::select_ok(asks)
            .await
            .map(|(answer, _)| answer)
    }

    pub async fn report_stamp(
        &self,
        request: ReportStampRequest,
    ) -> Result<ReportStampResponse, Status> {
        self.call("ReportStamp", |mut client| {
            let request = request.clone();
            async move { client.report_stamp(request).await }
        })
        .await
    }

    pub async fn report_fill(
        &self,
        request: ReportFillRequest,
    ) -> Result<ReportFillResponse, Status> {
        self.call("ReportFill", |mut client| {
            let request = request.clone();
            async move { client.report_fill(request).await }
        })
        .await
    }

    pub async fn list_owned_buckets(
        &self,
        owner_access_key: &str,
    ) -> Result<ListOwnedBucketsResponse, Status> {
        let request = ListOwnedBucketsRequest {
            owner_access_key: owner_access_key.to_string(),
        };
        self.call("ListOwnedBuckets", |mut client| {
            let request = request.clone();
            async move { client.list_owned_buckets(request).await }
        })
        .await
    }

    /// Starts moving `bucket` to `to` as move `move_id` (operator only).
    pub async fn begin_move(
        &self,
        bucket: &str,
        to: &str,
        move_id: &str,
    ) -> Result<MoveResponse, Status> {
        let request = BeginMoveRequest {
            bucket: bucket.to_string(),
            to: to.to_string(),
            move_id: move_id.to_string(),
        };
        self.call("BeginMove", |mut client| {
            let request = request.clone();
            async move { client.begin_move(request).await }
        })
        .await
    }

    /// Completes (`Some(fence_ms)`: switches the home; the source's fence as the mover set
    /// it) or aborts (None) move `move_id` of `bucket`.
    pub async fn end_move(
        &self,
        bucket: &str,
        move_id: &str,
        completion: Option<u64>,
    ) -> Result<MoveResponse, Status> {
        let request = EndMoveRequest {
            bucket: bucket.to_string(),
            move_id: move_id.to_string(),
            complete: completion.is_some(),
            fence_ms: completion.unwrap_or(0),
        };
        self.call("EndMove", |mut client| {
            let request = request.clone();
            async move { client.end_move(request).await }
        })
        .await
    }

    /// Opens (`"open"`) or closes (`"draining"`) a stamp to new buckets (operator only).
    pub async fn set_stamp_state(&self, stamp: &str, state: &str) -> Result<(), Status> {
        let request = SetStampStateRequest {
            stamp: stamp.to_string(),
            state: state.to_string(),
        };
        self.call("SetStampState", |mut client| {
            let request = request.clone();
            async move { client.set_stamp_state(request).await }
        })
        .await
        .map(|_| ())
    }

    /// The buckets homed on `stamp` (operator only), at most `limit`.
    pub async fn list_stamp_buckets(
        &self,
        stamp: &str,
        limit: u32,
    ) -> Result<ListStampBucketsResponse, Status> {
        let request = ListStampBucketsRequest {
            stamp: stamp.to_string(),
            limit,
        };
        self.call("ListStampBuckets", |mut client| {
            let request = request.clone();
            async move { client.list_stamp_buckets(request).await }
        })
        .await
    }

    pub async fn list_stamps(&self) -> Result<ListStampsResponse, Status> {
        self.call("ListStamps", |mut client| async move {
            client.list_stamps(ListStampsRequest {}).await
        })
        .await
    }
}

/// Where an unanswered call may go next.
enum Retry {
    /// Nowhere: the refusal is the answer (bad request, permission, corruption).
    No,
    /// To the leader a member named (None: unknown, an election may be running).
    Leader(Option<String>),
    /// To the next member (this one is down, slow, or not ready).
    Elsewhere,
}

fn retry_at(status: &Status) -> Retry {
    match from_status(status) {
        Some(ErrorDetail::NotLeader { leader_hint }) => Retry::Leader(leader_hint),
        // Not ready (the import runs, a quorum is not reachable from there): ask around.
        Some(ErrorDetail::Unavailable { .. }) => Retry::Elsewhere,
        Some(_) => Retry::No,
        // No detail: tonic made it on this side (a stopping member's GOAWAY arrives as
        // Internal "h2 protocol error").
        None if is_transport_failure(status) => Retry::Elsewhere,
        None => Retry::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_types::error_detail::{to_status, RejectReason};

    fn verdict(status: &Status) -> &'static str {
        match retry_at(status) {
            Retry::No => "no",
            Retry::Leader(_) => "leader",
            Retry::Elsewhere => "elsewhere",
        }
    }

    #[test]
    fn refusals_end_the_call_and_lost_connections_move_it() {
        let hint = Some("127.0.0.1:7".to_string());
        let not_leader = to_status(ErrorDetail::NotLeader { leader_hint: hint }, "not leader");
        assert_eq!(verdict(&not_leader), "leader");
        // A member stopping under a call: its GOAWAY, as tonic reports it on this side.
        assert_eq!(
            verdict(&Status::internal("h2 protocol error: http2 error")),
            "elsewhere"
        );
        assert_eq!(
            verdict(&Status::unavailable("connection refused")),
            "elsewhere"
        );
        assert_eq!(verdict(&Status::deadline_exceeded("timeout")), "elsewhere");
        let rejected = to_status(
            ErrorDetail::Rejected {
                reason: RejectReason::InvalidArgument,
            },
            "bad name",
        );
        assert_eq!(verdict(&rejected), "no");
        let denied = to_status(ErrorDetail::PermissionDenied { role: None }, "who are you");
        assert_eq!(verdict(&denied), "no");
        assert_eq!(verdict(&Status::unimplemented("no such service")), "no");
    }
}
