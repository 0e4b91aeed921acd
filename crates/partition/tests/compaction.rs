//! Data-stream compaction on a real stream layer in process: after most objects are deleted or
//! overwritten, a pass moves the few live chunks off the old extents, re-points every index
//! entry (copies sharing chunks included), and trims the data stream; every remaining object
//! still reads back byte-exact and a reload from the streams gives the same index. An upload in
//! flight keeps the extents it may have written to.

mod common;

use bytes::Bytes;
use common::stream_layer;
use strata_partition::range::{stream_names, IndexValue, Range, RangeBounds};
use strata_partition::records::chunk_extent;
use strata_partition::CompactionConfig;
use strata_proto::record::{ChunkLocation, ObjectRecord, PartRecord};
use strata_stream::StreamClient;
use strata_types::{keys, Epoch, RangeId};

const EXTENT_BYTES: u64 = 64 * 1024;
const CHUNK_BYTES: usize = 8 * 1024;
const CHUNKS_PER_OBJECT: usize = 3;
const RANGE_ID: RangeId = RangeId::new(11);

fn bounds(epoch: u64) -> RangeBounds {
    RangeBounds {
        range_id: RANGE_ID,
        low: Vec::new(),
        high: Vec::new(),
        epoch: Epoch::new(epoch),
    }
}

/// Deterministic bytes for chunk `index` of version `version` of object `name`.
fn chunk_bytes(name: &str, version: u8, index: usize) -> Bytes {
    let seed = name.bytes().fold(version as u64, |a, b| a * 31 + b as u64) + index as u64;
    (0..CHUNK_BYTES)
        .map(|i| (seed.wrapping_mul(2654435761).wrapping_add(i as u64 * 7) >> 3) as u8)
        .collect::<Vec<u8>>()
        .into()
}

fn expected_body(name: &str, version: u8) -> Vec<u8> {
    (0..CHUNKS_PER_OBJECT)
        .flat_map(|i| chunk_bytes(name, version, i).to_vec())
        .collect()
}

async fn write_chunks(range: &Range, name: &str, version: u8) -> Vec<ChunkLocation> {
    let mut chunks = Vec::new();
    for i in 0..CHUNKS_PER_OBJECT {
        chunks.push(
            range
                .append_data(chunk_bytes(name, version, i))
                .await
                .unwrap(),
        );
    }
    chunks
}

async fn put(range: &Range, name: &str, version: u8) {
    let _upload = range.begin_upload();
    let chunks = write_chunks(range, name, version).await;
    let meta = ObjectRecord {
        size_bytes: (CHUNK_BYTES * CHUNKS_PER_OBJECT) as u64,
        etag: format!("\"{name}-{version}\""),
        chunks,
        ..Default::default()
    };
    range
        .commit(keys::object_key("b", name), Some(IndexValue::Object(meta)))
        .await
        .unwrap();
}

async fn read_body(client: &StreamClient, chunks: &[ChunkLocation]) -> Vec<u8> {
    let mut body = Vec::new();
    for chunk in chunks {
        let record = client
            .read_record(chunk_extent(chunk), chunk.offset)
            .await
            .unwrap();
        assert_eq!(record.len() as u64, chunk.length);
        body.extend_from_slice(&record);
    }
    body
}

fn chunks_of(value: &IndexValue) -> Vec<ChunkLocation> {
    match value {
        IndexValue::Object(meta) => meta.chunks.clone(),
        IndexValue::Part(part) => part.chunks.clone(),
        _ => Vec::new(),
    }
}

fn snapshot(range: &Range) -> Vec<(Vec<u8>, IndexValue)> {
    let mut all = Vec::new();
    range.scan(b"", None, |key, value| {
        all.push((key.to_vec(), value.clone()));
        true
    });
    all
}

async fn data_extents(client: &StreamClient) -> Vec<u64> {
    let (_, data, _) = stream_names(RANGE_ID);
    client
        .stream_info(&data)
        .await
        .unwrap()
        .extents
        .iter()
        .map(|e| e.extent_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_moves_live_chunks_and_trims_the_data_stream() {
    let layer = stream_layer(EXTENT_BYTES).await;
    let client = layer.client.clone();
    let range = Range::load(client.clone(), bounds(1)).await.unwrap();
    let early_upload = range.begin_upload();
    // The extent the upload may write to first (the load sealed the previous owner's extent,
    // which no upload of this owner can have written to).
    let open_at_upload = *data_extents(&client).await.last().unwrap();

    // 24 objects of 24 KiB: the data stream spans several 64 KiB extents.
    let names: Vec<String> = (0..24).map(|i| format!("k{i:02}")).collect();
    for name in &names {
        put(&range, name, 1).await;
    }
    // A multipart part record (its chunks are live too).
    let part_chunks = write_chunks(&range, "part", 1).await;
    let part_key = keys::part_key("b", "mp", "u1", 1);
    range
        .commit(
            part_key.clone(),
            Some(IndexValue::Part(PartRecord {
                part_number: 1,
                size_bytes: (CHUNK_BYTES * CHUNKS_PER_OBJECT) as u64,
                chunks: part_chunks,
                ..Default::default()
            })),
        )
        .await
        .unwrap();
    // A copy sharing k05's chunks.
    let Some(IndexValue::Object(k05)) = range.get(&keys::object_key("b", "k05")) else {
        panic!("k05 missing");
    };
    range
        .commit(
            keys::object_key("b", "copy-of-k05"),
            Some(IndexValue::Object(k05)),
        )
        .await
        .unwrap();

    // Overwrite 4, delete all others but k00, k05 and k23.
    for name in &names[10..14] {
        put(&range, name, 2).await;
    }
    for name in names.iter().filter(|n| {
        !matches!(
            n.as_str(),
            "k00" | "k05" | "k23" | "k10" | "k11" | "k12" | "k13"
        )
    }) {
        range
            .commit(keys::object_key("b", name), None)
            .await
            .unwrap();
    }
    let extents_before = data_extents(&client).await;
    assert!(
        extents_before.len() >= 8,
        "small extents: the data spans several ({extents_before:?})"
    );

    let config = CompactionConfig {
        live_ratio_max: 0.5,
        bytes_per_pass_max: 16 * 1024 * 1024,
        bytes_per_sec_max: 0,
        interval_ms: 1_000,
    };

    // An upload in flight since before these writes may have chunks anywhere: nothing is
    // trimmed while it lives (live chunks may still be moved).
    let report = range.compact(&config).await.unwrap();
    assert_eq!(
        report.extents_released, 0,
        "an upload in flight blocks trims"
    );
    let kept = data_extents(&client).await;
    assert!(
        kept.first().is_some_and(|first| *first <= open_at_upload),
        "the extents the upload may have written to stay ({kept:?}, upload began on {open_at_upload})"
    );
    drop(early_upload);
    let expected_index = snapshot(&range);

    let report = range.compact(&config).await.unwrap();
    let extents_after = data_extents(&client).await;
    assert!(
        extents_after.len() < extents_before.len(),
        "the data stream was trimmed ({extents_before:?} -> {extents_after:?}, {report:?})"
    );
    assert!(report.extents_released > 0, "{report:?}");

    // Every remaining object and part reads back byte-exact, from extents still in the stream.
    let first_kept = extents_after[0];
    let index = snapshot(&range);
    assert_eq!(
        index.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        expected_index
            .iter()
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>(),
        "compaction changes chunk references only"
    );
    for (_, value) in &index {
        assert!(chunks_of(value).iter().all(|c| c.extent_id >= first_kept));
    }
    for (name, version) in [
        ("k00", 1),
        ("k05", 1),
        ("k23", 1),
        ("k10", 2),
        ("k11", 2),
        ("k12", 2),
        ("k13", 2),
        ("copy-of-k05", 1),
    ] {
        let source = if name == "copy-of-k05" { "k05" } else { name };
        let Some(value) = range.get(&keys::object_key("b", name)) else {
            panic!("{name} missing");
        };
        assert_eq!(
            read_body(&client, &chunks_of(&value)).await,
            expected_body(source, version),
            "{name}"
        );
    }
    assert_eq!(
        range.get(&keys::object_key("b", "copy-of-k05")),
        range.get(&keys::object_key("b", "k05")),
        "a copy and its source were re-pointed together"
    );
    let part = range.get(&part_key).unwrap();
    assert_eq!(
        read_body(&client, &chunks_of(&part)).await,
        expected_body("part", 1)
    );

    // Reloading from the streams gives the same index.
    let reloaded = Range::load(client.clone(), bounds(3)).await.unwrap();
    assert_eq!(snapshot(&reloaded), index);

    // Another pass on the reloaded range keeps every object readable.
    reloaded.compact(&config).await.unwrap();
    for (_, value) in snapshot(&reloaded) {
        let chunks = chunks_of(&value);
        assert_eq!(
            read_body(&client, &chunks).await.len() as u64,
            chunks.iter().map(|c| c.length).sum::<u64>()
        );
    }
}
