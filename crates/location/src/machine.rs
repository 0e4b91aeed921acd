//! The location service's replicated state: stamps and bucket names, as a strata-raft
//! [`Machine`] (issue "Many stamps", item 1). A 3-member group applying these commands keeps
//! the namespace through the loss of one member.
//!
//! Records (each a versioned, checksummed strata-raft record):
//! - `stamp/<name>` -> [`StampRecord`]: region, front-end endpoints, capacity, bytes stored,
//!   open or draining;
//! - `bucket/<name>` -> [`BucketRecord`]: owner, home stamp, creation time;
//! - `meta/import` -> [`ImportRecord`]: whether the names of the single-process table of
//!   earlier versions have been imported (reservations wait until they have).
//!
//! Invariants, kept by `apply` alone so that every member decides the same:
//! - a bucket name is held by at most one owner; reserving a held name answers who holds it;
//! - a bucket is homed only on a registered stamp that is open;
//! - only the holder releases a name, and not while the bucket is being moved;
//! - a move ends once, completed (the home switched) or aborted, never both (`moves.rs`).
//! - names are imported once: import batches after the last one change nothing.

use serde::{Deserialize, Serialize};
use strata_raft::{GroupError, Machine, Overlay};

/// Longest stamp or bucket name, region, endpoint or owner key accepted (bytes): every field is
/// client- or operator-controlled and lives in every member's state.
pub const NAME_BYTES_MAX: usize = 256;
/// Most front-end endpoints one stamp lists.
pub const ENDPOINTS_MAX: usize = 64;
/// Most names one import batch carries (a batch is one Raft entry: 1,000 bounded records stay
/// well under the gRPC message limit).
pub const IMPORT_BATCH_MAX: usize = 1_000;
/// Longest source fence a completed move records (a day): a target's front-ends wait this
/// long at most before serving a copy its mover did not (crates/frontend/src/move_serve.rs).
pub const MOVE_FENCE_MS_MAX: u64 = 86_400_000;

/// The key of [`ImportRecord`].
pub const IMPORT_KEY: &[u8] = b"meta/import";

/// Progress of the one-time import of the earlier single-process table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRecord {
    /// Names imported so far (held names are not counted).
    pub imported: u64,
    /// The last batch has been applied: reservations are taken from now on.
    pub done: bool,
}

/// Whether a stamp takes new buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StampState {
    Open,
    /// Takes no new buckets (its buckets are being moved off, or it is full).
    Draining,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StampRecord {
    pub name: String,
    pub region: String,
    /// Where its front-ends serve S3 (`host:port`).
    pub endpoints: Vec<String>,
    pub capacity_bytes: u64,
    pub stored_bytes: u64,
    pub state: StampState,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    pub bucket: String,
    pub owner_access_key: String,
    /// The stamp that holds the bucket's data.
    pub stamp: String,
    pub created_ms: i64,
    /// The bucket's latest move to another stamp (in progress or ended); None: never moved.
    #[serde(default)]
    pub last_move: Option<MoveRecord>,
}

/// Where a move of a bucket to another stamp stands (issue 15, item 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MoveState {
    /// The mover copies the bucket; its home is still `BucketRecord::stamp`.
    Copying,
    /// The home was switched to `to`: the commit point of the move.
    Completed,
    /// Given up: the home stays where it was, and the move can never complete.
    Aborted,
}

/// One move. `CompleteMove` and `AbortMove` name its `move_id`, and exactly one of them wins:
/// whoever ends a move first decides it, so a mover that died mid-switch and a front-end
/// reopening the source for writes cannot both succeed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveRecord {
    pub move_id: String,
    /// The stamp the bucket moves from (its home when the move began).
    pub from: String,
    pub to: String,
    pub started_ms: i64,
    pub state: MoveState,
    /// Completed moves: the source's fence, in ms from when the mover sent it (0: not told;
    /// records written before this field read as 0).
    #[serde(default)]
    pub fence_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LocationCommand {
    /// Registers a stamp, or replaces its region, endpoints, capacity and usage (its state is
    /// kept when it exists: state changes go through `SetStampState`).
    PutStamp(StampRecord),
    SetStampState {
        stamp: String,
        state: StampState,
    },
    /// A stamp reports itself (its front-ends do, see `ReportStamp` in location.proto): the
    /// first report registers it open; later ones replace its region and add `endpoint` when
    /// it is new (the oldest endpoint makes room at [`ENDPOINTS_MAX`]).
    ReportStamp {
        stamp: String,
        region: String,
        endpoint: Option<String>,
    },
    /// Holds `bucket` for its owner on its stamp, unless the name is held.
    ReserveBucket(BucketRecord),
    /// Frees `bucket` if `owner_access_key` holds it.
    ReleaseBucket {
        bucket: String,
        owner_access_key: String,
    },
    /// Names of the earlier single-process table, each held unless the name is held already
    /// (whatever its stamp's state: the data is there); `last` ends the import. Ignored once
    /// the import is done.
    ImportBuckets {
        buckets: Vec<BucketRecord>,
        last: bool,
    },
    /// A stamp's capacity and the bytes it stores (its stream manager's leader reports them,
    /// see `ReportFill` in location.proto). A stamp not registered yet is left alone: its
    /// front-ends register it, and the next report fills it in.
    ReportFill {
        stamp: String,
        capacity_bytes: u64,
        stored_bytes: u64,
    },
    /// Starts moving `bucket` to the open stamp `to` (see [`MoveRecord`]). Repeating the same
    /// `move_id` changes nothing; another move is refused while one is copying.
    BeginMove {
        bucket: String,
        to: String,
        move_id: String,
        started_ms: i64,
    },
    /// Switches the home of `bucket` to its move's target, unless the move was aborted.
    CompleteMove {
        bucket: String,
        move_id: String,
        /// The source's fence, in ms from when the mover sent it (see `MoveRecord::fence_ms`).
        #[serde(default)]
        fence_ms: u64,
    },
    /// Ends the move without switching, unless it completed.
    AbortMove {
        bucket: String,
        move_id: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LocationResponse {
    NoChange,
    StampPut,
    StampStateSet,
    Reserved(BucketRecord),
    /// The name is held (maybe by the same owner: the caller decides what that means).
    Taken(BucketRecord),
    Released,
    /// Not held, or held by another owner: nothing changed.
    NotReleased,
    /// How far the import is after this batch.
    Imported(ImportRecord),
    /// Where the bucket's move stands after a move command (the bucket record as it is).
    Move(BucketRecord),
    /// Refused without a change (an invalid field, an unknown or draining stamp).
    Rejected {
        reason: String,
    },
}

pub fn stamp_key(name: &str) -> Vec<u8> {
    [b"stamp/".as_slice(), name.as_bytes()].concat()
}

pub fn bucket_key(name: &str) -> Vec<u8> {
    [b"bucket/".as_slice(), name.as_bytes()].concat()
}

/// The location machine of one member. Reads go through the group's `StateReader`.
#[derive(Default)]
pub struct LocationMachine;

impl Machine for LocationMachine {
    type Command = LocationCommand;
    type Response = LocationResponse;

    fn no_change() -> LocationResponse {
        LocationResponse::NoChange
    }

    fn apply(
        &self,
        state: &mut Overlay<'_>,
        index: u64,
        command: &LocationCommand,
    ) -> Result<LocationResponse, GroupError> {
        let response = match check(command) {
            Err(reason) => LocationResponse::Rejected { reason },
            Ok(()) => apply_checked(state, command)?,
        };
        match &response {
            LocationResponse::Rejected { reason } => {
                tracing::debug!(index, %reason, "location command rejected")
            }
            applied => tracing::info!(index, ?applied, "location state changed"),
        }
        Ok(response)
    }
}

fn apply_checked(
    state: &mut Overlay<'_>,
    command: &LocationCommand,
) -> Result<LocationResponse, GroupError> {
    Ok(match command {
        LocationCommand::PutStamp(stamp) => {
            let key = stamp_key(&stamp.name);
            let mut record = stamp.clone();
            if let Some(existing) = state.get_record::<StampRecord>(&key)? {
                record.state = existing.state;
            }
            state.put_record(&key, &record)?;
            LocationResponse::StampPut
        }
        LocationCommand::SetStampState { stamp, state: to } => {
            let key = stamp_key(stamp);
            match state.get_record::<StampRecord>(&key)? {
                None => unknown_stamp(stamp),
                Some(mut record) => {
                    record.state = *to;
                    state.put_record(&key, &record)?;
                    LocationResponse::StampStateSet
                }
            }
        }
        LocationCommand::ReportStamp {
            stamp,
            region,
            endpoint,
        } => report_stamp(state, stamp, region, endpoint.as_deref())?,
        LocationCommand::ReserveBucket(bucket) => reserve(state, bucket)?,
        LocationCommand::ReleaseBucket {
            bucket,
            owner_access_key,
        } => {
            let key = bucket_key(bucket);
            match state.get_record::<BucketRecord>(&key)? {
                Some(held) if crate::moves::copying(&held) => LocationResponse::Rejected {
                    reason: format!("bucket {bucket:?} is being moved"),
                },
                Some(held) if held.owner_access_key == *owner_access_key => {
                    state.remove(&key);
                    LocationResponse::Released
                }
                _ => LocationResponse::NotReleased,
            }
        }
        LocationCommand::ImportBuckets { buckets, last } => import(state, buckets, *last)?,
        LocationCommand::BeginMove {
            bucket,
            to,
            move_id,
            started_ms,
        } => crate::moves::begin(state, bucket, to, move_id, *started_ms)?,
        LocationCommand::CompleteMove {
            bucket,
            move_id,
            fence_ms,
        } => crate::moves::end(state, bucket, move_id, MoveState::Completed, *fence_ms)?,
        LocationCommand::AbortMove { bucket, move_id } => {
            crate::moves::end(state, bucket, move_id, MoveState::Aborted, 0)?
        }
        LocationCommand::ReportFill {
            stamp,
            capacity_bytes,
            stored_bytes,
        } => {
            let key = stamp_key(stamp);
            match state.get_record::<StampRecord>(&key)? {
                Some(record)
                    if (record.capacity_bytes, record.stored_bytes)
                        != (*capacity_bytes, *stored_bytes) =>
                {
                    let record = StampRecord {
                        capacity_bytes: *capacity_bytes,
                        stored_bytes: *stored_bytes,
                        ..record
                    };
                    state.put_record(&key, &record)?;
                    LocationResponse::StampPut
                }
                _ => LocationResponse::NoChange,
            }
        }
    })
}

fn import(
    state: &mut Overlay<'_>,
    buckets: &[BucketRecord],
    last: bool,
) -> Result<LocationResponse, GroupError> {
    let mut progress = state
        .get_record::<ImportRecord>(IMPORT_KEY)?
        .unwrap_or_default();
    if progress.done {
        return Ok(LocationResponse::NoChange);
    }
    for bucket in buckets {
        let key = bucket_key(&bucket.bucket);
        if state.get_record::<BucketRecord>(&key)?.is_none() {
            state.put_record(&key, bucket)?;
            progress.imported += 1;
        }
    }
    progress.done = last;
    state.put_record(IMPORT_KEY, &progress)?;
    Ok(LocationResponse::Imported(progress))
}

/// The stamp record after a report: `current` (or a new open stamp) with `region` and
/// `endpoint` added. Pure, so the leader can tell beforehand whether a report changes anything.
pub fn reported_stamp(
    current: Option<StampRecord>,
    stamp: &str,
    region: &str,
    endpoint: Option<&str>,
) -> StampRecord {
    let mut record = current.unwrap_or_else(|| StampRecord {
        name: stamp.to_string(),
        region: String::new(),
        endpoints: Vec::new(),
        capacity_bytes: 0,
        stored_bytes: 0,
        state: StampState::Open,
    });
    record.region = region.to_string();
    if let Some(endpoint) = endpoint.filter(|e| !e.is_empty()) {
        if !record.endpoints.iter().any(|known| known == endpoint) {
            if record.endpoints.len() >= ENDPOINTS_MAX {
                record.endpoints.remove(0);
            }
            record.endpoints.push(endpoint.to_string());
        }
    }
    record
}

fn report_stamp(
    state: &mut Overlay<'_>,
    stamp: &str,
    region: &str,
    endpoint: Option<&str>,
) -> Result<LocationResponse, GroupError> {
    let key = stamp_key(stamp);
    let current = state.get_record::<StampRecord>(&key)?;
    let record = reported_stamp(current.clone(), stamp, region, endpoint);
    if current.as_ref() == Some(&record) {
        return Ok(LocationResponse::NoChange);
    }
    state.put_record(&key, &record)?;
    Ok(LocationResponse::StampPut)
}

fn reserve(state: &mut Overlay<'_>, bucket: &BucketRecord) -> Result<LocationResponse, GroupError> {
    let key = bucket_key(&bucket.bucket);
    if let Some(held) = state.get_record::<BucketRecord>(&key)? {
        return Ok(LocationResponse::Taken(held));
    }
    match state.get_record::<StampRecord>(&stamp_key(&bucket.stamp))? {
        None => Ok(unknown_stamp(&bucket.stamp)),
        Some(stamp) if stamp.state != StampState::Open => Ok(LocationResponse::Rejected {
            reason: format!("stamp {:?} takes no new buckets", bucket.stamp),
        }),
        Some(_) => {
            state.put_record(&key, bucket)?;
            Ok(LocationResponse::Reserved(bucket.clone()))
        }
    }
}

fn unknown_stamp(stamp: &str) -> LocationResponse {
    LocationResponse::Rejected {
        reason: format!("no stamp {stamp:?} is registered"),
    }
}

/// Every field's bound, checked before anything is written.
fn check(command: &LocationCommand) -> Result<(), String> {
    let name = |what: &str, value: &str| {
        if value.is_empty() || value.len() > NAME_BYTES_MAX {
            Err(format!("{what} must be 1 to {NAME_BYTES_MAX} bytes"))
        } else {
            Ok(())
        }
    };
    match command {
        LocationCommand::PutStamp(stamp) => {
            name("stamp name", &stamp.name)?;
            name("region", &stamp.region)?;
            if stamp.endpoints.len() > ENDPOINTS_MAX {
                return Err(format!("a stamp lists at most {ENDPOINTS_MAX} endpoints"));
            }
            stamp.endpoints.iter().try_for_each(|e| name("endpoint", e))
        }
        LocationCommand::SetStampState { stamp, .. } => name("stamp name", stamp),
        LocationCommand::ReportFill { stamp, .. } => name("stamp name", stamp),
        LocationCommand::BeginMove {
            bucket,
            to,
            move_id,
            ..
        } => {
            name("bucket name", bucket)?;
            name("stamp name", to)?;
            name("move id", move_id)
        }
        LocationCommand::CompleteMove {
            bucket,
            move_id,
            fence_ms,
        } => {
            if *fence_ms > MOVE_FENCE_MS_MAX {
                return Err(format!(
                    "a move's fence of {fence_ms} ms is longer than {MOVE_FENCE_MS_MAX} ms"
                ));
            }
            name("bucket name", bucket)?;
            name("move id", move_id)
        }
        LocationCommand::AbortMove { bucket, move_id } => {
            name("bucket name", bucket)?;
            name("move id", move_id)
        }
        LocationCommand::ReportStamp {
            stamp,
            region,
            endpoint,
        } => {
            name("stamp name", stamp)?;
            name("region", region)?;
            endpoint.iter().try_for_each(|e| name("endpoint", e))
        }
        LocationCommand::ReserveBucket(bucket) => {
            name("bucket name", &bucket.bucket)?;
            name("owner access key", &bucket.owner_access_key)?;
            name("stamp name", &bucket.stamp)
        }
        LocationCommand::ReleaseBucket {
            bucket,
            owner_access_key,
        } => {
            name("bucket name", bucket)?;
            name("owner access key", owner_access_key)
        }
        LocationCommand::ImportBuckets { buckets, .. } => {
            if buckets.len() > IMPORT_BATCH_MAX {
                return Err(format!(
                    "an import batch holds at most {IMPORT_BATCH_MAX} names"
                ));
            }
            buckets.iter().try_for_each(|bucket| {
                name("bucket name", &bucket.bucket)?;
                name("owner access key", &bucket.owner_access_key)?;
                name("stamp name", &bucket.stamp)
            })
        }
    }
}
