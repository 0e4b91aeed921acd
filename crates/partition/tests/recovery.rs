//! A range's durable state lives in streams: these tests run a real stream layer in process
//! (a stream manager and 3 extent nodes on 3 racks, on 127.0.0.1) and prove that a range
//! reloaded from its streams, by the same or another server, has exactly the index that was
//! acknowledged: from the log alone, from a checkpoint plus the log after it, and when a retried
//! append left a checkpoint batch twice in the stream.

mod common;

use common::stream_layer;
use strata_partition::format;
use strata_partition::range::{stream_names, IndexValue, Range, RangeBounds};
use strata_proto::record::{
    checkpoint_record::Part, CheckpointBatch, CheckpointBegin, CheckpointEnd, CheckpointRecord,
    IndexEntry, ObjectRecord,
};
use strata_types::{keys, Epoch, RangeId};

/// Small extents so the log and checkpoints span several of them.
const SMALL_EXTENT_BYTES: u64 = 16 * 1024;

fn bounds(epoch: u64) -> RangeBounds {
    RangeBounds {
        range_id: RangeId::new(7),
        low: Vec::new(),
        high: Vec::new(),
        epoch: Epoch::new(epoch),
    }
}

fn object(size_bytes: u64) -> IndexValue {
    IndexValue::Object(ObjectRecord {
        size_bytes,
        etag: format!("\"etag-{size_bytes}\""),
        ..Default::default()
    })
}

fn snapshot(range: &Range) -> Vec<(Vec<u8>, IndexValue)> {
    let mut all = Vec::new();
    range.scan(b"", None, |key, value| {
        all.push((key.to_vec(), value.clone()));
        true
    });
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_rebuilds_the_acknowledged_index_from_log_and_checkpoints() {
    let layer = stream_layer(SMALL_EXTENT_BYTES).await;

    // Log only: 40 puts, 10 deletes, one atomic batch.
    let first = Range::load(layer.client.clone(), bounds(1)).await.unwrap();
    for i in 0..40u64 {
        first
            .commit(keys::object_key("b", &format!("k{i:03}")), Some(object(i)))
            .await
            .unwrap();
    }
    for i in 0..10u64 {
        first
            .commit(keys::object_key("b", &format!("k{i:03}")), None)
            .await
            .unwrap();
    }
    first
        .commit_batch(vec![
            (keys::object_key("b", "batch-a"), Some(object(1000))),
            (keys::object_key("b", "batch-b"), Some(object(1001))),
            (keys::object_key("b", "k020"), None),
        ])
        .await
        .unwrap();
    let expected = snapshot(&first);
    assert_eq!(expected.len(), 40 - 10 + 2 - 1);

    let second = Range::load(layer.client.clone(), bounds(2)).await.unwrap();
    assert_eq!(snapshot(&second), expected, "replaying the log alone");

    // The first owner was fenced by the second load: it can no longer acknowledge a write.
    let fenced = first
        .commit(keys::object_key("b", "late"), Some(object(1)))
        .await;
    assert!(
        fenced.is_err(),
        "a fenced range must not acknowledge writes"
    );
    assert!(first.is_poisoned());

    // Checkpoint, then more writes after it: the reload takes both.
    let (log_stream, _, _) = stream_names(RangeId::new(7));
    let log_extents_before = layer
        .client
        .stream_info(&log_stream)
        .await
        .unwrap()
        .extents
        .len();
    assert!(
        log_extents_before > 2,
        "small extents: the log spans several"
    );
    second.checkpoint().await.unwrap();
    let log_extents_after = layer
        .client
        .stream_info(&log_stream)
        .await
        .unwrap()
        .extents
        .len();
    assert!(
        log_extents_after < log_extents_before,
        "log extents before the checkpoint are released ({log_extents_before} -> {log_extents_after})"
    );
    for i in 100..120u64 {
        second
            .commit(keys::object_key("b", &format!("k{i:03}")), Some(object(i)))
            .await
            .unwrap();
    }
    second
        .commit(keys::object_key("b", "batch-a"), None)
        .await
        .unwrap();
    let expected = snapshot(&second);
    let third = Range::load(layer.client.clone(), bounds(3)).await.unwrap();
    assert_eq!(
        snapshot(&third),
        expected,
        "checkpoint plus the log after it"
    );
    assert_eq!(third.get(&keys::object_key("b", "batch-a")), None);
    assert_eq!(third.get(&keys::object_key("b", "k105")), Some(object(105)));
    assert!(third.stats().0 > 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_checkpoint_batch_is_read_once() {
    let layer = stream_layer(SMALL_EXTENT_BYTES).await;
    let (log_stream, _, checkpoint_stream) = stream_names(RangeId::new(7));
    // The checkpoint names a real log position: the start of the log's first extent.
    let log = layer.client.open(&log_stream).await.unwrap();
    let log_extent_id = log.info().await.extents[0].extent_id;
    let writer = layer.client.open(&checkpoint_stream).await.unwrap();
    let entry = |name: &str| IndexEntry {
        key: keys::object_key("b", name),
        value: Some(strata_proto::record::index_entry::Value::Object(
            ObjectRecord {
                etag: format!("\"{name}\""),
                ..Default::default()
            },
        )),
    };
    let records = [
        Part::Begin(CheckpointBegin {
            checkpoint_id: 5,
            sequence: 0,
            log_extent_id,
            log_offset: 0,
            range_id: 7,
            ..Default::default()
        }),
        Part::Batch(CheckpointBatch {
            checkpoint_id: 5,
            entries: vec![entry("a"), entry("b")],
            ..Default::default()
        }),
        // What a retried append leaves behind: the same batch again.
        Part::Batch(CheckpointBatch {
            checkpoint_id: 5,
            entries: vec![entry("a"), entry("b")],
            ..Default::default()
        }),
        Part::Batch(CheckpointBatch {
            checkpoint_id: 5,
            entries: vec![entry("c")],
            ..Default::default()
        }),
        Part::End(CheckpointEnd {
            checkpoint_id: 5,
            entries: 3,
        }),
    ];
    for part in records {
        let record = CheckpointRecord { part: Some(part) };
        writer
            .append(format::encode_checkpoint(&record))
            .await
            .unwrap();
    }
    let range = Range::load(layer.client.clone(), bounds(1)).await.unwrap();
    let names: Vec<String> = snapshot(&range)
        .into_iter()
        .map(|(key, _)| keys::decode_object_key(&key).unwrap().1.to_string())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
}

/// The range clock (`LogEntry.committed_ms`) is durable: a reload finds it again, before and
/// after a checkpoint, and it never runs back (a child of a reshape, which has only its first
/// checkpoint, is checked in reshape.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_range_clock_survives_reloads_and_checkpoints() {
    let layer = stream_layer(SMALL_EXTENT_BYTES).await;
    let started_ms = strata_util::now_ms();
    let first = Range::load(layer.client.clone(), bounds(1)).await.unwrap();
    assert_eq!(first.clock_ms(), 0, "nothing committed yet");
    for i in 0..5u64 {
        first
            .commit(keys::object_key("b", &format!("k{i}")), Some(object(i)))
            .await
            .unwrap();
    }
    let clock_ms = first.clock_ms();
    assert!(clock_ms >= started_ms, "{clock_ms} < {started_ms}");

    let second = Range::load(layer.client.clone(), bounds(2)).await.unwrap();
    assert_eq!(second.clock_ms(), clock_ms, "from the log");
    second.checkpoint().await.unwrap();
    let third = Range::load(layer.client.clone(), bounds(3)).await.unwrap();
    assert_eq!(third.clock_ms(), clock_ms, "after a checkpoint");
    third
        .commit(keys::object_key("b", "later"), Some(object(9)))
        .await
        .unwrap();
    assert!(third.clock_ms() >= clock_ms);

    // Each log entry carries the clock, rising, and who committed it.
    let (log_stream, _, _) = stream_names(RangeId::new(7));
    let records = layer.client.read_stream(&log_stream, None);
    futures::pin_mut!(records);
    let mut clocks = Vec::new();
    while let Some(item) = futures::StreamExt::next(&mut records).await {
        let (_, payload) = item.unwrap();
        let entry = format::decode_log_entry(&payload).unwrap();
        assert_eq!(entry.origin, 0, "a client's commit");
        clocks.push(entry.committed_ms);
    }
    assert!(!clocks.is_empty());
    assert!(clocks.windows(2).all(|w| w[0] <= w[1]), "{clocks:?}");
    assert_eq!(clocks.last(), Some(&third.clock_ms()));
}
