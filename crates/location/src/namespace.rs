//! The bucket namespace as one member of the location group serves it: reservations and
//! releases proposed through Raft, reads confirmed with a quorum first, and placement of a
//! bucket whose caller names no stamp.
//!
//! Only the leader answers: a follower's state may lag, and a reservation must be decided
//! against every committed one. Followers answer [`NamespaceError::NotLeader`] with the
//! leader's address so callers go there.

use crate::fill::placement_rank;
use crate::machine::{
    bucket_key, reported_stamp, BucketRecord, ImportRecord, LocationCommand, LocationMachine,
    LocationResponse, StampRecord, StampState, IMPORT_KEY,
};
use std::collections::BTreeMap;
use strata_raft::{Group, GroupError};

/// Bound of one proposal (commit and apply on a quorum).
pub const PROPOSE_TIMEOUT_MS: u64 = 5_000;
/// Bound of confirming leadership before a read.
pub const CONFIRM_TIMEOUT_MS: u64 = 2_000;

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    /// This member does not lead; the leader's gRPC address when known.
    #[error("this member does not lead (leader: {leader_hint:?})")]
    NotLeader { leader_hint: Option<String> },
    /// The names of the earlier single-process table are not all imported yet.
    #[error("the bucket namespace is still being imported")]
    Importing,
    /// The command was refused by the state machine (an invalid field, an unknown stamp).
    #[error("{0}")]
    Rejected(String),
    #[error(transparent)]
    Group(GroupError),
}

impl From<GroupError> for NamespaceError {
    fn from(err: GroupError) -> Self {
        match err {
            GroupError::NotLeader { leader_addr, .. } => NamespaceError::NotLeader {
                leader_hint: leader_addr.filter(|addr| !addr.is_empty()),
            },
            other => NamespaceError::Group(other),
        }
    }
}

pub type Result<T> = std::result::Result<T, NamespaceError>;

/// What a reservation found.
#[derive(Debug, PartialEq)]
pub enum Reservation {
    /// The name was free and is now held for the caller.
    Reserved(BucketRecord),
    /// The name is held (maybe by the caller: a retried reservation).
    Taken(BucketRecord),
}

/// A stamp and how many buckets it holds.
#[derive(Clone, Debug, PartialEq)]
pub struct StampSummary {
    pub stamp: StampRecord,
    pub buckets: u64,
}

/// One member's view of the namespace. Cheap to clone.
#[derive(Clone)]
pub struct Namespace {
    group: Group<LocationMachine>,
}

impl Namespace {
    pub fn new(group: Group<LocationMachine>) -> Self {
        Self { group }
    }

    pub fn group(&self) -> &Group<LocationMachine> {
        &self.group
    }

    /// Fails with `NotLeader` (and the leader's address) unless this member believes it leads.
    fn lead_here(&self) -> Result<()> {
        if self.group.is_leader() {
            return Ok(());
        }
        let view = self.group.leader_view();
        Err(NamespaceError::NotLeader {
            leader_hint: Some(view.leader_addr).filter(|addr| !addr.is_empty()),
        })
    }

    /// Fails with `NotLeader` unless this member leads and a quorum confirms it now; after
    /// this, the local state holds every committed change.
    async fn confirm_leader(&self) -> Result<()> {
        self.lead_here()?;
        Ok(self.group.ensure_leader(CONFIRM_TIMEOUT_MS).await?)
    }

    async fn propose(&self, command: LocationCommand) -> Result<LocationResponse> {
        self.lead_here()?;
        match self.group.propose(command, PROPOSE_TIMEOUT_MS).await? {
            LocationResponse::Rejected { reason } => Err(NamespaceError::Rejected(reason)),
            answer => Ok(answer),
        }
    }

    /// How far the import of the earlier table is (local state; confirm leadership first for
    /// a current answer).
    pub fn import_progress(&self) -> Result<ImportRecord> {
        Ok(self
            .group
            .reader()
            .get_record::<ImportRecord>(IMPORT_KEY)?
            .unwrap_or_default())
    }

    /// Holds `bucket` for `owner` on `stamp`, or when `stamp` is None on the open stamp
    /// [`crate::fill`] places new buckets on.
    pub async fn reserve(
        &self,
        bucket: &str,
        owner: &str,
        stamp: Option<&str>,
    ) -> Result<Reservation> {
        self.confirm_leader().await?;
        if !self.import_progress()?.done {
            return Err(NamespaceError::Importing);
        }
        // A held name is answered as it is (the apply checks again: this read only spares
        // placing a name that is not free).
        if let Some(held) = self.group.reader().get_record(&bucket_key(bucket))? {
            return Ok(Reservation::Taken(held));
        }
        let stamp = match stamp {
            Some(stamp) => stamp.to_string(),
            None => self.emptiest_open_stamp()?,
        };
        let record = BucketRecord {
            bucket: bucket.to_string(),
            owner_access_key: owner.to_string(),
            stamp,
            created_ms: strata_util::now_ms(),
            last_move: None,
        };
        match self.propose(LocationCommand::ReserveBucket(record)).await? {
            LocationResponse::Reserved(held) => Ok(Reservation::Reserved(held)),
            LocationResponse::Taken(held) => Ok(Reservation::Taken(held)),
            other => Err(unexpected(other)),
        }
    }

    /// Frees `bucket` if `owner` holds it; answers whether it did.
    pub async fn release(&self, bucket: &str, owner: &str) -> Result<bool> {
        let command = LocationCommand::ReleaseBucket {
            bucket: bucket.to_string(),
            owner_access_key: owner.to_string(),
        };
        match self.propose(command).await? {
            LocationResponse::Released => Ok(true),
            LocationResponse::NotReleased => Ok(false),
            other => Err(unexpected(other)),
        }
    }

    /// Who holds `bucket` and where, as committed.
    pub async fn lookup(&self, bucket: &str) -> Result<Option<BucketRecord>> {
        self.confirm_leader().await?;
        Ok(self.group.reader().get_record(&bucket_key(bucket))?)
    }

    /// `bucket`'s record as this member applied it, when it holds one, whether or not it
    /// leads; else as [`Self::lookup`] answers (see `LookupBucketRequest.applied_ok`).
    pub async fn lookup_applied(&self, bucket: &str) -> Result<Option<BucketRecord>> {
        let applied: Option<BucketRecord> = self.group.reader().get_record(&bucket_key(bucket))?;
        match applied {
            Some(record) => Ok(Some(record)),
            None => self.lookup(bucket).await,
        }
    }

    /// The buckets `owner` holds, by name, at most `limit` (and whether more are held), as
    /// committed.
    pub async fn owned_buckets(
        &self,
        owner: &str,
        limit: usize,
    ) -> Result<(Vec<BucketRecord>, bool)> {
        self.confirm_leader().await?;
        let mut owned: Vec<BucketRecord> = self
            .group
            .reader()
            .scan_records::<BucketRecord>(b"bucket/")?
            .into_iter()
            .map(|(_, bucket)| bucket)
            .filter(|bucket| bucket.owner_access_key == owner)
            .collect();
        let truncated = owned.len() > limit;
        owned.truncate(limit);
        Ok((owned, truncated))
    }

    /// The buckets homed on `stamp`, by name, at most `limit` (and whether more are), as
    /// committed.
    pub async fn stamp_buckets(
        &self,
        stamp: &str,
        limit: usize,
    ) -> Result<(Vec<BucketRecord>, bool)> {
        self.confirm_leader().await?;
        let mut homed: Vec<BucketRecord> = self
            .group
            .reader()
            .scan_records::<BucketRecord>(b"bucket/")?
            .into_iter()
            .map(|(_, bucket)| bucket)
            .filter(|bucket| bucket.stamp == stamp)
            .collect();
        let truncated = homed.len() > limit;
        homed.truncate(limit);
        Ok((homed, truncated))
    }

    /// Opens `stamp` to new buckets or closes it (draining).
    pub async fn set_stamp_state(&self, stamp: &str, to: StampState) -> Result<()> {
        let command = LocationCommand::SetStampState {
            stamp: stamp.to_string(),
            state: to,
        };
        match self.propose(command).await? {
            LocationResponse::StampStateSet => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Every registered stamp with its bucket count, as committed.
    pub async fn stamps(&self) -> Result<Vec<StampSummary>> {
        self.confirm_leader().await?;
        self.local_stamps()
    }

    /// Every stamp as this member has applied it (no leadership check: may lag).
    pub fn local_stamps(&self) -> Result<Vec<StampSummary>> {
        let reader = self.group.reader();
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for (_, bucket) in reader.scan_records::<BucketRecord>(b"bucket/")? {
            *counts.entry(bucket.stamp).or_default() += 1;
        }
        Ok(reader
            .scan_records::<StampRecord>(b"stamp/")?
            .into_iter()
            .map(|(_, stamp)| StampSummary {
                buckets: counts.get(&stamp.name).copied().unwrap_or(0),
                stamp,
            })
            .collect())
    }

    /// The open stamp a new bucket goes to ([`crate::fill::placement_rank`]; ties: the first
    /// by name).
    fn emptiest_open_stamp(&self) -> Result<String> {
        self.local_stamps()?
            .into_iter()
            .filter(|summary| summary.stamp.state == StampState::Open)
            .min_by_key(|summary| {
                let stamp = &summary.stamp;
                placement_rank(stamp.capacity_bytes, stamp.stored_bytes, summary.buckets)
            })
            .map(|summary| summary.stamp.name)
            .ok_or_else(|| NamespaceError::Rejected("no open stamp is registered".into()))
    }

    /// `stamp`'s record as committed (leadership confirmed first).
    async fn confirmed_stamp(&self, stamp: &str) -> Result<Option<StampRecord>> {
        self.confirm_leader().await?;
        Ok(self
            .group
            .reader()
            .get_record(&crate::machine::stamp_key(stamp))?)
    }

    /// A stamp's report (see `LocationCommand::ReportStamp`); answers whether it changed the
    /// state. A report that would change nothing is not proposed, so steady reports from every
    /// front-end write nothing.
    pub async fn report_stamp(
        &self,
        stamp: &str,
        region: &str,
        endpoint: Option<&str>,
    ) -> Result<bool> {
        let current = self.confirmed_stamp(stamp).await?;
        if current.as_ref() == Some(&reported_stamp(current.clone(), stamp, region, endpoint)) {
            return Ok(false);
        }
        let command = LocationCommand::ReportStamp {
            stamp: stamp.to_string(),
            region: region.to_string(),
            endpoint: endpoint.map(str::to_string),
        };
        match self.propose(command).await? {
            LocationResponse::StampPut => {
                tracing::info!(%stamp, %region, ?endpoint, "stamp registered or updated");
                Ok(true)
            }
            LocationResponse::NoChange => Ok(false),
            other => Err(unexpected(other)),
        }
    }

    /// A stamp's fill (see `LocationCommand::ReportFill`); answers whether it changed the
    /// state. An unchanged fill, or one for a stamp not registered yet, is not proposed.
    pub async fn report_fill(
        &self,
        stamp: &str,
        capacity_bytes: u64,
        stored_bytes: u64,
    ) -> Result<bool> {
        let current = self.confirmed_stamp(stamp).await?;
        if current
            .is_none_or(|c| (c.capacity_bytes, c.stored_bytes) == (capacity_bytes, stored_bytes))
        {
            return Ok(false);
        }
        let command = LocationCommand::ReportFill {
            stamp: stamp.to_string(),
            capacity_bytes,
            stored_bytes,
        };
        match self.propose(command).await? {
            LocationResponse::StampPut => Ok(true),
            LocationResponse::NoChange => Ok(false),
            other => Err(unexpected(other)),
        }
    }

    /// Starts move `move_id` of `bucket` to `to` (see [`crate::moves`]); the bucket's record
    /// after it, or `Rejected` with the reason.
    pub async fn begin_move(&self, bucket: &str, to: &str, move_id: &str) -> Result<BucketRecord> {
        let command = LocationCommand::BeginMove {
            bucket: bucket.to_string(),
            to: to.to_string(),
            move_id: move_id.to_string(),
            started_ms: strata_util::now_ms(),
        };
        match self.propose(command).await? {
            LocationResponse::Move(record) => Ok(record),
            other => Err(unexpected(other)),
        }
    }

    /// Completes (`Some(fence_ms)`: the source's fence) or aborts (None) move `move_id` of
    /// `bucket`: only the first end of a move applies (see [`crate::moves`]).
    pub async fn end_move(
        &self,
        bucket: &str,
        move_id: &str,
        completion: Option<u64>,
    ) -> Result<BucketRecord> {
        let (bucket, move_id) = (bucket.to_string(), move_id.to_string());
        let command = match completion {
            Some(fence_ms) => LocationCommand::CompleteMove {
                bucket,
                move_id,
                fence_ms,
            },
            None => LocationCommand::AbortMove { bucket, move_id },
        };
        match self.propose(command).await? {
            LocationResponse::Move(record) => Ok(record),
            other => Err(unexpected(other)),
        }
    }

    /// Applies one batch of imported names (see `machine::ImportBuckets`).
    pub async fn import(&self, buckets: Vec<BucketRecord>, last: bool) -> Result<ImportRecord> {
        match self
            .propose(LocationCommand::ImportBuckets { buckets, last })
            .await?
        {
            LocationResponse::Imported(progress) => Ok(progress),
            LocationResponse::NoChange => self.import_progress(),
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected(answer: LocationResponse) -> NamespaceError {
    NamespaceError::Group(GroupError::Raft(format!(
        "unexpected answer from the location machine: {answer:?}"
    )))
}
