//! A range's replication cursors (issue 16) against a real stream layer in process: they are
//! committed in the range's own log, so a reload by this or another server (from the log, or
//! from a checkpoint) finds exactly the last committed ones, a fenced previous owner cannot
//! move them, no watermark may pass the range's clock, and a split's or merge's children
//! take, per bucket, the lowest of their parents' watermarks.

mod common;

use std::sync::Arc;

use common::stream_layer;
use strata_partition::range::{IndexValue, Range, RangeBounds};
use strata_partition::reshape::prepare_ranges;
use strata_partition::PartitionError;
use strata_proto::partition::ReshapeChild;
use strata_proto::record::{ObjectRecord, ReplicationCursors};
use strata_types::{keys, Epoch, RangeId};

const SMALL_EXTENT_BYTES: u64 = 16 * 1024;

fn bounds(range_id: u64, low: &[u8], high: &[u8], epoch: u64) -> RangeBounds {
    RangeBounds {
        range_id: RangeId::new(range_id),
        low: low.to_vec(),
        high: high.to_vec(),
        epoch: Epoch::new(epoch),
    }
}

fn cursors(floor_ms: i64, lagging: &[(&str, i64)]) -> ReplicationCursors {
    ReplicationCursors {
        floor_ms,
        lagging: lagging.iter().map(|(b, w)| (b.to_string(), *w)).collect(),
    }
}

async fn put(range: &Range, bucket: &str, key: &str) {
    range
        .commit(
            keys::object_key(bucket, key),
            Some(IndexValue::Object(ObjectRecord::default())),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_survive_reloads_and_checkpoints_and_a_fenced_owner_cannot_move_them() {
    let layer = stream_layer(SMALL_EXTENT_BYTES).await;
    let client = layer.client.clone();
    let first = Range::load(client.clone(), bounds(7, b"", b"", 1))
        .await
        .unwrap();
    assert_eq!(first.replication_cursors(), ReplicationCursors::default());
    put(&first, "b", "k1").await;
    let clock_ms = first.clock_ms();
    let committed = cursors(clock_ms, &[("slow", clock_ms - 10)]);
    first
        .commit_replication_cursors(committed.clone())
        .await
        .unwrap();
    assert_eq!(first.replication_watermark_ms("slow"), clock_ms - 10);
    assert_eq!(first.replication_watermark_ms("b"), clock_ms);
    // Buckets at the floor are not kept apart.
    put(&first, "b", "k2").await;
    let later = first.clock_ms();
    first
        .commit_replication_cursors(cursors(later, &[("slow", clock_ms - 5), ("b", later)]))
        .await
        .unwrap();
    let expected = cursors(later, &[("slow", clock_ms - 5)]);
    assert_eq!(first.replication_cursors(), expected);

    // From the log alone, on another server (next epoch): the same cursors.
    let second = Range::load(client.clone(), bounds(7, b"", b"", 2))
        .await
        .unwrap();
    assert_eq!(second.replication_cursors(), expected);
    // The first owner is fenced: it can no longer commit cursors either.
    let fenced = first.commit_replication_cursors(cursors(later, &[])).await;
    assert!(fenced.is_err(), "{fenced:?}");

    // From a checkpoint (the log before it trimmed), then more log after it.
    second.checkpoint().await.unwrap();
    put(&second, "b", "k3").await;
    let third_clock = second.clock_ms();
    let newest = cursors(third_clock, &[("slow", later)]);
    second
        .commit_replication_cursors(newest.clone())
        .await
        .unwrap();
    let third = Range::load(client.clone(), bounds(7, b"", b"", 3))
        .await
        .unwrap();
    assert_eq!(third.replication_cursors(), newest);
    second.checkpoint().await.ok(); // fenced or not, the next load must not change
    third.checkpoint().await.unwrap();
    let fourth = Range::load(client.clone(), bounds(7, b"", b"", 4))
        .await
        .unwrap();
    assert_eq!(fourth.replication_cursors(), newest);
    // The cursors' own entries move the clock on, never back.
    assert!(fourth.clock_ms() >= third_clock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watermark_above_the_clock_is_refused_and_nothing_is_written() {
    let layer = stream_layer(SMALL_EXTENT_BYTES).await;
    let client = layer.client.clone();
    let range = Range::load(client.clone(), bounds(8, b"", b"", 1))
        .await
        .unwrap();
    put(&range, "b", "k").await;
    let clock_ms = range.clock_ms();
    for ahead in [
        cursors(clock_ms + 1, &[]),
        cursors(clock_ms, &[("b", clock_ms + 60_000)]),
    ] {
        let refused = range.commit_replication_cursors(ahead).await;
        assert!(
            matches!(refused, Err(PartitionError::InvalidArgument(_))),
            "{refused:?}"
        );
    }
    assert_eq!(range.replication_cursors(), ReplicationCursors::default());
    let reloaded = Range::load(client.clone(), bounds(8, b"", b"", 2))
        .await
        .unwrap();
    assert_eq!(
        reloaded.replication_cursors(),
        ReplicationCursors::default()
    );
    // A mark taken now is at or above every watermark the range could have accepted.
    assert!(reloaded.mark_clock_ms() >= clock_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_and_merge_children_take_each_buckets_lowest_watermark() {
    let layer = stream_layer(SMALL_EXTENT_BYTES).await;
    let client = layer.client.clone();
    let parent = Arc::new(
        Range::load(client.clone(), bounds(1, b"", b"", 1))
            .await
            .unwrap(),
    );
    for key in ["a", "m", "z"] {
        put(&parent, "b", key).await;
    }
    let clock_ms = parent.clock_ms();
    let parents_cursors = cursors(clock_ms, &[("slow", clock_ms - 100)]);
    parent
        .commit_replication_cursors(parents_cursors.clone())
        .await
        .unwrap();
    let split_key = keys::object_key("b", "m");
    prepare_ranges(
        &client,
        std::slice::from_ref(&parent),
        &[
            ReshapeChild {
                range_id: 2,
                low: Vec::new(),
                high: split_key.clone(),
            },
            ReshapeChild {
                range_id: 3,
                low: split_key.clone(),
                high: Vec::new(),
            },
        ],
    )
    .await
    .unwrap();
    let left = Arc::new(
        Range::load(client.clone(), bounds(2, b"", &split_key, 1))
            .await
            .unwrap(),
    );
    let right = Arc::new(
        Range::load(client.clone(), bounds(3, &split_key, b"", 1))
            .await
            .unwrap(),
    );
    assert_eq!(left.replication_cursors(), parents_cursors);
    assert_eq!(right.replication_cursors(), parents_cursors);
    assert!(left.clock_ms() >= clock_ms && left.mark_clock_ms() >= clock_ms);

    // The right child ships on; the left one lags. Their merge keeps the lagging watermark.
    put(&right, "b", "zz").await;
    let right_clock = right.clock_ms();
    right
        .commit_replication_cursors(cursors(right_clock, &[]))
        .await
        .unwrap();
    left.commit_replication_cursors(cursors(clock_ms - 50, &[("slow", clock_ms - 200)]))
        .await
        .unwrap();
    prepare_ranges(
        &client,
        &[left.clone(), right.clone()],
        &[ReshapeChild {
            range_id: 4,
            low: Vec::new(),
            high: Vec::new(),
        }],
    )
    .await
    .unwrap();
    let merged = Range::load(client.clone(), bounds(4, b"", b"", 1))
        .await
        .unwrap();
    assert_eq!(
        merged.replication_cursors(),
        cursors(clock_ms - 50, &[("slow", clock_ms - 200)])
    );
    assert_eq!(merged.replication_watermark_ms("b"), clock_ms - 50);
    assert!(merged.clock_ms() >= right_clock);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moves_imported_pending_version_stays_owed_below_the_watermark_across_a_reload() {
    use strata_partition::records::CommitOrigin;
    use strata_proto::common::ReplicationStatus;

    let layer = stream_layer(SMALL_EXTENT_BYTES).await;
    let client = layer.client.clone();
    let range = Range::load(client.clone(), bounds(9, b"", b"", 1))
        .await
        .unwrap();
    put(&range, "b", "local").await;
    let clock_ms = range.clock_ms();
    range
        .commit_replication_cursors(cursors(clock_ms, &[]))
        .await
        .unwrap();
    // Marked on the old home's clock, far below this range's watermark.
    let old_mark_ms = clock_ms - 60_000;
    let imported = ObjectRecord {
        version_id: format!("{:016x}0000abcd", 1u64 << 40),
        version_stamp: 1 << 40,
        replication_status: ReplicationStatus::Pending as i32,
        replication_mark_ms: old_mark_ms,
        ..Default::default()
    };
    let guard = range.lock_commits().await;
    range
        .commit_locked_as(
            guard,
            vec![(
                keys::object_key("moved", "k"),
                Some(IndexValue::Object(imported)),
            )],
            CommitOrigin::MoveImport,
        )
        .await
        .unwrap();
    assert_eq!(range.replication_watermark_ms("moved"), old_mark_ms);
    assert_eq!(range.replication_watermark_ms("b"), clock_ms);

    let reloaded = Range::load(client.clone(), bounds(9, b"", b"", 2))
        .await
        .unwrap();
    assert_eq!(reloaded.replication_watermark_ms("moved"), old_mark_ms);
    reloaded.scan_owed();
    let owed = reloaded.backlog().lowest(10);
    assert_eq!(owed.len(), 1, "{owed:?}");
    assert_eq!(
        (owed[0].bucket.as_str(), owed[0].key.as_str()),
        ("moved", "k")
    );
    // Until it is shipped, the watermark stays below it.
    let allowed = reloaded.current_watermarks().unwrap();
    assert_eq!(allowed.lagging.get("moved"), Some(&old_mark_ms));
}
