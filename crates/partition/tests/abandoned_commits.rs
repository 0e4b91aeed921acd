//! A commit whose caller goes away during the log append (a front-end killed mid-request drops
//! the RPC's future) must not leave the range serving an index that disagrees with its log:
//! the record may still land, and a next commit under the same sequence was once skipped on
//! replay, losing an acknowledged write. Against a real stream layer in process.

mod common;

use common::stream_layer;
use strata_partition::range::{IndexValue, Range, RangeBounds};
use strata_proto::record::ObjectRecord;
use strata_types::{keys, Epoch, RangeId};

fn whole_range(epoch: u64) -> RangeBounds {
    RangeBounds {
        range_id: RangeId::new(1),
        low: Vec::new(),
        high: Vec::new(),
        epoch: Epoch::new(epoch),
    }
}

fn object(etag: &str) -> Option<IndexValue> {
    Some(IndexValue::Object(ObjectRecord {
        etag: etag.into(),
        ..Default::default()
    }))
}

fn etag_of(range: &Range, name: &str) -> Option<String> {
    match range.get(&keys::object_key("b", name)) {
        Some(IndexValue::Object(meta)) => Some(meta.etag),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_commit_poisons_the_range_and_no_acknowledged_write_is_lost() {
    let layer = stream_layer(1 << 20).await;
    let range = Range::load(layer.client.clone(), whole_range(1))
        .await
        .unwrap();
    range
        .commit(keys::object_key("b", "before"), object("e0"))
        .await
        .unwrap();

    // Give up on a commit while its append is in flight: poll it once (it starts the append
    // and waits for the extent node), then drop it, as a cancelled RPC handler is dropped.
    let mut abandoned = Box::pin(range.commit(keys::object_key("b", "abandoned"), object("e1")));
    assert!(
        futures::poll!(&mut abandoned).is_pending(),
        "the commit finished without waiting for its append"
    );
    drop(abandoned);
    assert!(
        range.is_poisoned(),
        "a range whose commit was abandoned mid-append kept serving"
    );
    // A poisoned range takes no commit: it would reuse the abandoned entry's sequence.
    assert!(range
        .commit(keys::object_key("b", "refused"), object("e2"))
        .await
        .is_err());
    drop(range);

    // The reload (fencing the log) sees whatever the abandoned append left; the next
    // acknowledged commit survives the load after it.
    let reloaded = Range::load(layer.client.clone(), whole_range(2))
        .await
        .unwrap();
    assert_eq!(etag_of(&reloaded, "before").as_deref(), Some("e0"));
    let abandoned_landed = etag_of(&reloaded, "abandoned");
    assert!(matches!(abandoned_landed.as_deref(), None | Some("e1")));
    assert_eq!(etag_of(&reloaded, "refused"), None);
    reloaded
        .commit(keys::object_key("b", "after"), object("e3"))
        .await
        .unwrap();
    drop(reloaded);

    let last = Range::load(layer.client.clone(), whole_range(3))
        .await
        .unwrap();
    assert_eq!(etag_of(&last, "before").as_deref(), Some("e0"));
    assert_eq!(etag_of(&last, "after").as_deref(), Some("e3"));
    assert_eq!(etag_of(&last, "abandoned"), abandoned_landed);
}
