//! Stored records: what a range keeps in its index, writes to its commit log and to its
//! checkpoints (`strata.record`, proto/strata/record.proto), apart from the wire types clients
//! see (`strata.common`).
//!
//! - [`wire`]: the one place records and wire types are converted. `record -> wire` (answering
//!   a client) never copies chunk locations, so no answer can leak them; `wire -> record`
//!   (an incoming write) never takes chunk locations from a client.
//!
//! Invariant: data written by any earlier version still loads. The records keep the field
//! numbers and types of the messages the streams held before they existed (common.proto's
//! ObjectMeta, BucketMeta, UploadMeta, PartMeta; partition.proto's log and checkpoint
//! messages), and [`crate::format`] keeps its version byte and framing, so old bytes decode as
//! records unchanged (see the tests below).

pub mod wire;

pub use strata_proto::record::{
    checkpoint_record, index_entry, mutation, BucketRecord, CheckpointBatch, CheckpointBegin,
    CheckpointEnd, CheckpointRecord, ChunkLocation, CommitOrigin, IndexEntry, LogEntry, Mutation,
    ObjectRecord, PartRecord, RecentWrite, ReplicationCursors, UploadRecord,
};
use strata_stream::RecordPos;
use strata_types::ExtentId;

/// The stored location of a chunk appended at `pos` (the one place a typed position becomes
/// the record's raw extent id).
pub fn chunk_location(pos: RecordPos) -> ChunkLocation {
    ChunkLocation {
        extent_id: pos.extent_id.get(),
        offset: pos.offset,
        length: pos.length,
    }
}

/// Where a stored chunk's bytes live, as the stream client reads them.
pub fn chunk_pos(chunk: &ChunkLocation) -> RecordPos {
    RecordPos {
        extent_id: chunk_extent(chunk),
        offset: chunk.offset,
        length: chunk.length,
    }
}

/// The data extent holding a stored chunk.
pub fn chunk_extent(chunk: &ChunkLocation) -> ExtentId {
    ExtentId::new(chunk.extent_id)
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use std::collections::HashMap;
    use strata_proto::common::{Checksum, CorsRule};

    use super::*;

    // The wire messages as earlier versions stored them, field for field: strata.common's
    // ObjectMeta and PartMeta carried their chunk locations (`ChunkRef`s) before the stored
    // records existed; the wire types have no such field any more.

    /// strata.common.ChunkRef.
    #[derive(Clone, PartialEq, prost::Message)]
    struct OldChunkRef {
        #[prost(uint64, tag = "1")]
        extent_id: u64,
        #[prost(uint64, tag = "2")]
        offset: u64,
        #[prost(uint64, tag = "3")]
        length: u64,
    }

    /// strata.common.ObjectMeta with `repeated ChunkRef chunks = 6`.
    #[derive(Clone, PartialEq, prost::Message)]
    struct OldObjectMeta {
        #[prost(uint64, tag = "1")]
        size_bytes: u64,
        #[prost(string, tag = "2")]
        etag: String,
        #[prost(string, tag = "3")]
        content_type: String,
        #[prost(map = "string, string", tag = "4")]
        user_metadata: HashMap<String, String>,
        #[prost(int64, tag = "5")]
        last_modified_ms: i64,
        #[prost(message, repeated, tag = "6")]
        chunks: Vec<OldChunkRef>,
        #[prost(string, tag = "7")]
        content_encoding: String,
        #[prost(string, tag = "8")]
        content_disposition: String,
        #[prost(string, tag = "9")]
        content_language: String,
        #[prost(string, tag = "10")]
        cache_control: String,
        #[prost(string, tag = "11")]
        expires: String,
        #[prost(message, optional, tag = "12")]
        checksum: Option<Checksum>,
        #[prost(map = "string, string", tag = "13")]
        tags: HashMap<String, String>,
        #[prost(string, tag = "14")]
        version_id: String,
        #[prost(bool, tag = "15")]
        delete_marker: bool,
        #[prost(uint64, tag = "16")]
        version_stamp: u64,
        #[prost(string, tag = "17")]
        write_id: String,
    }

    /// strata.common.UploadMeta (its `meta` an old ObjectMeta).
    #[derive(Clone, PartialEq, prost::Message)]
    struct OldUploadMeta {
        #[prost(string, tag = "1")]
        upload_id: String,
        #[prost(int64, tag = "2")]
        initiated_ms: i64,
        #[prost(message, optional, tag = "3")]
        meta: Option<OldObjectMeta>,
        #[prost(int32, tag = "4")]
        checksum_algorithm: i32,
        #[prost(bool, tag = "5")]
        checksum_full_object: bool,
    }

    /// strata.common.PartMeta with `repeated ChunkRef chunks = 5`.
    #[derive(Clone, PartialEq, prost::Message)]
    struct OldPartMeta {
        #[prost(uint32, tag = "1")]
        part_number: u32,
        #[prost(string, tag = "2")]
        etag: String,
        #[prost(uint64, tag = "3")]
        size_bytes: u64,
        #[prost(int64, tag = "4")]
        last_modified_ms: i64,
        #[prost(message, repeated, tag = "5")]
        chunks: Vec<OldChunkRef>,
        #[prost(message, optional, tag = "6")]
        checksum: Option<Checksum>,
    }

    /// An old ObjectMeta with every field set, as earlier code stored it.
    fn old_object() -> OldObjectMeta {
        OldObjectMeta {
            size_bytes: 5,
            etag: "\"e\"".into(),
            content_type: "text/plain".into(),
            user_metadata: [("a".to_string(), "b".to_string())].into(),
            last_modified_ms: 7,
            chunks: vec![OldChunkRef {
                extent_id: 3,
                offset: 4096,
                length: 5,
            }],
            content_encoding: "gzip".into(),
            content_disposition: "inline".into(),
            content_language: "en".into(),
            cache_control: "no-cache".into(),
            expires: "never".into(),
            checksum: Some(Checksum {
                algorithm: 2,
                value: vec![1, 2, 3, 4],
                composite: true,
                part_count: 2,
            }),
            tags: [("t".to_string(), "v".to_string())].into(),
            version_id: "0000000000000001abcdef01".into(),
            delete_marker: true,
            version_stamp: 9,
            write_id: "w".into(),
        }
    }

    /// The same object as a record, field for field.
    fn new_object() -> ObjectRecord {
        ObjectRecord {
            size_bytes: 5,
            etag: "\"e\"".into(),
            content_type: "text/plain".into(),
            user_metadata: [("a".to_string(), "b".to_string())].into(),
            last_modified_ms: 7,
            chunks: vec![ChunkLocation {
                extent_id: 3,
                offset: 4096,
                length: 5,
            }],
            content_encoding: "gzip".into(),
            content_disposition: "inline".into(),
            content_language: "en".into(),
            cache_control: "no-cache".into(),
            expires: "never".into(),
            checksum: Some(Checksum {
                algorithm: 2,
                value: vec![1, 2, 3, 4],
                composite: true,
                part_count: 2,
            }),
            tags: [("t".to_string(), "v".to_string())].into(),
            version_id: "0000000000000001abcdef01".into(),
            delete_marker: true,
            version_stamp: 9,
            write_id: "w".into(),
            // Records written before replication existed are not marked.
            replication_status: 0,
            replication_mark_ms: 0,
            replication_failure: String::new(),
        }
    }

    #[test]
    fn old_object_bytes_decode_as_the_record_and_back() {
        let old = old_object().encode_to_vec();
        assert_eq!(ObjectRecord::decode(old.as_slice()).unwrap(), new_object());
        assert_eq!(new_object().encode_to_vec(), old);
        let upload = OldUploadMeta {
            upload_id: "u".into(),
            initiated_ms: 1,
            meta: Some(old_object()),
            checksum_algorithm: 1,
            checksum_full_object: true,
        };
        let decoded = UploadRecord::decode(upload.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.meta, Some(new_object()));
        let part = OldPartMeta {
            part_number: 2,
            etag: "\"p\"".into(),
            size_bytes: 5,
            last_modified_ms: 7,
            chunks: old_object().chunks,
            checksum: old_object().checksum,
        };
        let record = PartRecord {
            part_number: 2,
            etag: "\"p\"".into(),
            size_bytes: 5,
            last_modified_ms: 7,
            chunks: new_object().chunks,
            checksum: new_object().checksum,
        };
        assert_eq!(
            PartRecord::decode(part.encode_to_vec().as_slice()).unwrap(),
            record
        );
        assert_eq!(record.encode_to_vec(), part.encode_to_vec());
        let bucket = strata_proto::common::BucketMeta {
            name: "b".into(),
            cors_rules: vec![CorsRule {
                id: "c".into(),
                max_age_seconds: -1,
                ..Default::default()
            }],
            versioning: 1,
            deleting_until_ms: 4,
            deletion_id: "d".into(),
            ..Default::default()
        };
        let decoded = BucketRecord::decode(bucket.encode_to_vec().as_slice()).unwrap();
        assert_eq!(wire::bucket_meta(decoded), bucket);
    }

    /// A log entry and a checkpoint batch encoded as the messages strata.partition defined
    /// before the records existed (key = 1, then the oneof arm's field number with an old
    /// ObjectMeta), field by field with prost's encoders, as its generated code did.
    #[test]
    fn old_log_entries_and_checkpoints_decode_as_records() {
        use prost::encoding::{bytes, message, uint64};
        let key = b"obkt\0k".to_vec();
        let mut old_mutation = Vec::new();
        bytes::encode(1, &key, &mut old_mutation);
        message::encode(2, &old_object(), &mut old_mutation);
        let mut old_tombstone = Vec::new();
        bytes::encode(1, &key, &mut old_tombstone);
        prost::encoding::bool::encode(4, &true, &mut old_tombstone);
        let mut old_entry = Vec::new();
        uint64::encode(1, &42, &mut old_entry);
        bytes::encode(2, &old_mutation, &mut old_entry);
        bytes::encode(2, &old_tombstone, &mut old_entry);
        let entry = LogEntry::decode(old_entry.as_slice()).unwrap();
        assert_eq!(
            entry,
            LogEntry {
                sequence: 42,
                mutations: vec![
                    Mutation {
                        key: key.clone(),
                        value: Some(mutation::Value::Object(new_object())),
                    },
                    Mutation {
                        key: key.clone(),
                        value: Some(mutation::Value::Tombstone(true)),
                    },
                ],
                // Entries written before the range clock: no time, a client's commit.
                committed_ms: 0,
                origin: CommitOrigin::Client as i32,
                replication: None,
            }
        );
        assert_eq!(entry.encode_to_vec(), old_entry);

        // CheckpointRecord { batch = 2: CheckpointBatch { id = 1, entries = 2: IndexEntry {
        // key = 1, version = 6: ObjectMeta } } }
        let mut old_index_entry = Vec::new();
        bytes::encode(1, &key, &mut old_index_entry);
        message::encode(6, &old_object(), &mut old_index_entry);
        let mut old_batch = Vec::new();
        uint64::encode(1, &5, &mut old_batch);
        bytes::encode(2, &old_index_entry, &mut old_batch);
        let mut old_record = Vec::new();
        bytes::encode(2, &old_batch, &mut old_record);
        let record = CheckpointRecord::decode(old_record.as_slice()).unwrap();
        let Some(checkpoint_record::Part::Batch(batch)) = record.part else {
            panic!("not a batch: {record:?}");
        };
        assert_eq!(batch.checkpoint_id, 5);
        assert_eq!(
            batch.entries,
            vec![IndexEntry {
                key,
                value: Some(index_entry::Value::Version(new_object())),
            }]
        );
    }
}
