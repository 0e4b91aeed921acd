//! The location machine on strata-raft's sled stores: openraft's storage suite, and its
//! commands applied as committed entries, checked on the answers and on the records a
//! reopened store reads back.

use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use strata_location::machine::{
    bucket_key, reported_stamp, stamp_key, BucketRecord, MoveState, StampRecord, StampState,
    ENDPOINTS_MAX, NAME_BYTES_MAX,
};
use strata_location::{LocationCommand, LocationMachine, LocationResponse};
use strata_raft::{LogStore, StateMachineStore, Types};

#[test]
fn location_store_passes_the_openraft_storage_suite() {
    strata_raft::testing::run_storage_suite(|| LocationMachine).unwrap();
}

fn stamp(name: &str) -> StampRecord {
    StampRecord {
        name: name.into(),
        region: "local".into(),
        endpoints: vec![format!("{name}.example:9000")],
        capacity_bytes: 1 << 40,
        stored_bytes: 0,
        state: StampState::Open,
    }
}

fn bucket(name: &str, owner: &str, stamp: &str) -> BucketRecord {
    BucketRecord {
        bucket: name.into(),
        owner_access_key: owner.into(),
        stamp: stamp.into(),
        created_ms: 7,
        last_move: None,
    }
}

/// The location machine's stores in `dir` (the log store is kept alive beside them).
async fn open(
    dir: &std::path::Path,
) -> (
    LogStore<LocationMachine>,
    StateMachineStore<LocationMachine>,
) {
    strata_raft::group::open_stores(dir, Arc::new(LocationMachine))
        .await
        .unwrap()
}

/// Applies `commands` as committed entries from log index `first`; answers their responses.
async fn apply(
    store: &mut StateMachineStore<LocationMachine>,
    first: u64,
    commands: Vec<LocationCommand>,
) -> Vec<LocationResponse> {
    let entries = commands.into_iter().enumerate().map(|(i, command)| Entry::<
        Types<LocationMachine>,
    > {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), first + i as u64),
        payload: EntryPayload::Normal(command),
    });
    store.apply(entries).await.unwrap()
}

#[test]
fn names_are_held_once_on_open_registered_stamps_and_survive_reopening() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        {
            let (_log, mut store) = open(dir.path()).await;
            let answers = apply(
                &mut store,
                1,
                vec![
                    // No stamp yet: refused, nothing written.
                    LocationCommand::ReserveBucket(bucket("a", "k1", "stamp-1")),
                    LocationCommand::PutStamp(stamp("stamp-1")),
                    LocationCommand::PutStamp(stamp("stamp-2")),
                    LocationCommand::ReserveBucket(bucket("a", "k1", "stamp-1")),
                    // Held: the holder is answered, whoever asks and wherever.
                    LocationCommand::ReserveBucket(bucket("a", "k2", "stamp-2")),
                    LocationCommand::SetStampState {
                        stamp: "stamp-2".into(),
                        state: StampState::Draining,
                    },
                    LocationCommand::ReserveBucket(bucket("b", "k1", "stamp-2")),
                    // Re-registering keeps the state the operator set.
                    LocationCommand::PutStamp(stamp("stamp-2")),
                    LocationCommand::ReleaseBucket {
                        bucket: "a".into(),
                        owner_access_key: "k2".into(),
                    },
                    LocationCommand::ReserveBucket(bucket("c", "k3", "stamp-1")),
                    LocationCommand::ReleaseBucket {
                        bucket: "c".into(),
                        owner_access_key: "k3".into(),
                    },
                    LocationCommand::ReserveBucket(bucket(
                        &"x".repeat(NAME_BYTES_MAX + 1),
                        "k1",
                        "stamp-1",
                    )),
                ],
            )
            .await;
            let rejected =
                |answer: &LocationResponse| matches!(answer, LocationResponse::Rejected { .. });
            assert!(rejected(&answers[0]), "{:?}", answers[0]);
            assert_eq!(answers[1], LocationResponse::StampPut);
            assert_eq!(
                answers[3],
                LocationResponse::Reserved(bucket("a", "k1", "stamp-1"))
            );
            assert_eq!(
                answers[4],
                LocationResponse::Taken(bucket("a", "k1", "stamp-1"))
            );
            assert_eq!(answers[5], LocationResponse::StampStateSet);
            assert!(
                rejected(&answers[6]),
                "a draining stamp takes no new bucket"
            );
            assert_eq!(
                answers[8],
                LocationResponse::NotReleased,
                "only the holder releases"
            );
            assert_eq!(answers[10], LocationResponse::Released);
            assert!(rejected(&answers[11]), "names are bounded");
        }
        let (_log, store) = open(dir.path()).await;
        let reader = store.reader();
        let held: BucketRecord = reader.get_record(&bucket_key("a")).unwrap().unwrap();
        assert_eq!(held.owner_access_key, "k1");
        assert!(reader
            .get_record::<BucketRecord>(&bucket_key("b"))
            .unwrap()
            .is_none());
        assert!(reader
            .get_record::<BucketRecord>(&bucket_key("c"))
            .unwrap()
            .is_none());
        let draining: StampRecord = reader.get_record(&stamp_key("stamp-2")).unwrap().unwrap();
        assert_eq!(draining.state, StampState::Draining);
        assert_eq!(reader.applied().unwrap().unwrap().index, 12);
    });
}

#[test]
fn stamp_reports_register_once_gather_endpoints_and_keep_the_state() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (_log, mut store) = open(dir.path()).await;
        let report = |endpoint: Option<&str>, region: &str| LocationCommand::ReportStamp {
            stamp: "stamp-2".into(),
            region: region.into(),
            endpoint: endpoint.map(str::to_string),
        };
        let answers = apply(
            &mut store,
            1,
            vec![
                report(Some("http://a:9000"), "eu-west-1"),
                report(Some("http://a:9000"), "eu-west-1"),
                report(Some("http://b:9000"), "eu-west-1"),
                LocationCommand::SetStampState {
                    stamp: "stamp-2".into(),
                    state: StampState::Draining,
                },
                report(None, "eu-west-2"),
                report(Some(&"e".repeat(NAME_BYTES_MAX + 1)), "eu-west-2"),
                report(None, ""),
            ],
        )
        .await;
        assert_eq!(
            answers[0],
            LocationResponse::StampPut,
            "first report registers"
        );
        assert_eq!(
            answers[1],
            LocationResponse::NoChange,
            "same report changes nothing"
        );
        assert_eq!(
            answers[2],
            LocationResponse::StampPut,
            "a new endpoint is added"
        );
        assert_eq!(
            answers[4],
            LocationResponse::StampPut,
            "the region is replaced"
        );
        for bad in &answers[5..] {
            assert!(matches!(bad, LocationResponse::Rejected { .. }), "{bad:?}");
        }
        let record: StampRecord = store
            .reader()
            .get_record(&stamp_key("stamp-2"))
            .unwrap()
            .unwrap();
        assert_eq!(record.endpoints, ["http://a:9000", "http://b:9000"]);
        assert_eq!(record.region, "eu-west-2");
        assert_eq!(record.state, StampState::Draining, "reports keep the state");
    });
}

#[test]
fn a_stamp_lists_at_most_the_newest_endpoints() {
    let mut record = None;
    for i in 0..ENDPOINTS_MAX + 3 {
        let endpoint = format!("http://fe-{i}:9000");
        record = Some(reported_stamp(record, "s", "r", Some(&endpoint)));
    }
    let record = record.unwrap();
    assert_eq!(record.endpoints.len(), ENDPOINTS_MAX);
    assert_eq!(
        record.endpoints[0], "http://fe-3:9000",
        "the oldest made room"
    );
    assert_eq!(record.state, StampState::Open);
}

#[test]
fn fill_reports_update_registered_stamps_only() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (_log, mut store) = open(dir.path()).await;
        let fill = |stamp: &str, stored_bytes: u64| LocationCommand::ReportFill {
            stamp: stamp.into(),
            capacity_bytes: 1_000,
            stored_bytes,
        };
        let answers = apply(
            &mut store,
            1,
            vec![
                fill("stamp-2", 10),
                LocationCommand::PutStamp(stamp("stamp-2")),
                fill("stamp-2", 10),
                fill("stamp-2", 10),
                fill("stamp-2", 700),
                fill("", 1),
            ],
        )
        .await;
        assert_eq!(
            answers[0],
            LocationResponse::NoChange,
            "unregistered: ignored"
        );
        assert!(store
            .reader()
            .get_record::<StampRecord>(&stamp_key("stamp-2"))
            .unwrap()
            .is_some());
        assert_eq!(answers[2], LocationResponse::StampPut);
        assert_eq!(
            answers[3],
            LocationResponse::NoChange,
            "same fill: no write"
        );
        assert_eq!(answers[4], LocationResponse::StampPut);
        assert!(matches!(answers[5], LocationResponse::Rejected { .. }));
        let record: StampRecord = store
            .reader()
            .get_record(&stamp_key("stamp-2"))
            .unwrap()
            .unwrap();
        assert_eq!((record.capacity_bytes, record.stored_bytes), (1_000, 700));
        assert_eq!(
            record.endpoints,
            ["stamp-2.example:9000"],
            "the rest is kept"
        );
    });
}

#[test]
fn a_move_ends_once_and_only_completing_it_switches_the_home() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (_log, mut store) = open(dir.path()).await;
        let begin = |bucket: &str, to: &str, move_id: &str| LocationCommand::BeginMove {
            bucket: bucket.into(),
            to: to.into(),
            move_id: move_id.into(),
            started_ms: 9,
        };
        let complete = |bucket: &str, move_id: &str| LocationCommand::CompleteMove {
            bucket: bucket.into(),
            move_id: move_id.into(),
            fence_ms: 31_000,
        };
        let abort = |bucket: &str, move_id: &str| LocationCommand::AbortMove {
            bucket: bucket.into(),
            move_id: move_id.into(),
        };
        let release = |bucket: &str| LocationCommand::ReleaseBucket {
            bucket: bucket.into(),
            owner_access_key: "k".into(),
        };
        let answers = apply(
            &mut store,
            1,
            vec![
                LocationCommand::PutStamp(stamp("stamp-1")),
                LocationCommand::PutStamp(stamp("stamp-2")),
                LocationCommand::ReserveBucket(bucket("a", "k", "stamp-1")),
                LocationCommand::ReserveBucket(bucket("b", "k", "stamp-1")),
                begin("a", "stamp-2", "m1"), // 4
                begin("a", "stamp-2", "m1"), // repeated: same answer
                begin("a", "stamp-2", "m2"), // another while copying: refused
                release("a"),                // not while copying
                abort("a", "m1"),            // 8: the abort wins
                complete("a", "m1"),         // refused: aborted
                abort("a", "m1"),            // repeated: same answer
                begin("b", "stamp-1", "m3"), // 11: already there
                begin("b", "stamp-9", "m3"), // unknown stamp
                begin("b", "stamp-2", "m3"),
                complete("b", "m3"), // 14: the home switches
                abort("b", "m3"),    // refused: completed
                complete("b", "m3"), // repeated
                complete("b", "nope"),
                release("b"), // 18: a moved bucket is released as usual
            ],
        )
        .await;
        let rejected = |i: usize| matches!(answers[i], LocationResponse::Rejected { .. });
        assert!(
            matches!(answers[4], LocationResponse::Move(_)),
            "{:?}",
            answers[4]
        );
        assert_eq!(answers[4], answers[5]);
        for i in [6, 7, 9, 11, 12, 15, 17] {
            assert!(rejected(i), "answer {i}: {:?}", answers[i]);
        }
        let LocationResponse::Move(aborted) = &answers[8] else {
            panic!("{:?}", answers[8]);
        };
        assert_eq!(aborted.stamp, "stamp-1", "an aborted move keeps the home");
        assert_eq!(
            aborted.last_move.as_ref().unwrap().state,
            MoveState::Aborted
        );
        assert_eq!(answers[10], answers[8]);
        let LocationResponse::Move(moved) = &answers[14] else {
            panic!("{:?}", answers[14]);
        };
        assert_eq!(moved.stamp, "stamp-2");
        let last = moved.last_move.as_ref().unwrap();
        assert_eq!(
            (last.from.as_str(), last.state, last.fence_ms),
            ("stamp-1", MoveState::Completed, 31_000),
            "a completion records the source's fence"
        );
        assert_eq!(aborted.last_move.as_ref().unwrap().fence_ms, 0);
        assert_eq!(answers[16], answers[14]);
        assert_eq!(answers[18], LocationResponse::Released);
        let kept: BucketRecord = store
            .reader()
            .get_record(&bucket_key("a"))
            .unwrap()
            .unwrap();
        assert_eq!(kept.stamp, "stamp-1");
    });
}
