//! One writer per data stream: a range loaded by a new owner (a move, or a reload) fences the
//! data stream of the previous one, so uploads still streaming there stop instead of appending
//! beside the new owner's chunks, and every chunk either owner was acknowledged reads back.

mod common;

use bytes::Bytes;
use common::stream_layer;
use strata_partition::range::{Range, RangeBounds};
use strata_partition::records::chunk_extent;
use strata_proto::record::ChunkLocation;
use strata_types::{Epoch, RangeId};

/// Small extents so seals happen while uploads stream.
const SMALL_EXTENT_BYTES: u64 = 16 * 1024;

fn bounds(epoch: u64) -> RangeBounds {
    RangeBounds {
        range_id: RangeId::new(11),
        low: Vec::new(),
        high: Vec::new(),
        epoch: Epoch::new(epoch),
    }
}

fn chunk(owner: u8, index: usize) -> Bytes {
    let mut bytes = format!("owner-{owner}-chunk-{index:04}-").into_bytes();
    bytes.resize(3_000, owner.wrapping_add(index as u8));
    Bytes::from(bytes)
}

async fn assert_reads_back(range: &Range, acked: &[(ChunkLocation, Bytes)]) {
    for (pos, data) in acked {
        let read = range
            .stream_client()
            .read_record(chunk_extent(pos), pos.offset)
            .await
            .unwrap_or_else(|err| panic!("acknowledged chunk {pos:?} unreadable: {err}"));
        assert_eq!(&read, data, "chunk {pos:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_streaming_across_a_move_or_a_reload_never_share_the_data_stream() {
    let layer = stream_layer(SMALL_EXTENT_BYTES).await;
    let mut acked = Vec::new();
    let mut old = Range::load(layer.client.clone(), bounds(1)).await.unwrap();
    for i in 0..3 {
        let data = chunk(1, i);
        acked.push((old.append_data(data.clone()).await.unwrap(), data));
    }
    // A new owner (a move), then another load of the range (a reload): each fences the last.
    for (epoch, owner) in [(2u64, 2u8), (3, 3)] {
        let new = Range::load(layer.client.clone(), bounds(epoch))
            .await
            .unwrap();
        let late = old.append_data(chunk(9, epoch as usize)).await;
        assert!(
            late.is_err(),
            "an upload streaming on the previous owner appended after the new owner loaded: {late:?}"
        );
        assert!(
            old.is_poisoned(),
            "the fenced owner reloads before serving again"
        );
        // The new owner fills several extents (each full extent is sealed at its end).
        for i in 0..12 {
            let data = chunk(owner, i);
            acked.push((new.append_data(data.clone()).await.unwrap(), data));
        }
        assert_reads_back(&new, &acked).await;
        old = new;
    }
}
