//! The one conversion between stored records and wire types.
//!
//! `record -> wire` answers clients: it builds the wire message field by field, and the wire
//! types have no chunk-location field, so an answer cannot carry where bytes live (a new record
//! field reaches clients only when it is added here). `wire -> record` takes incoming writes:
//! a client cannot say where bytes live, so records made here have no chunks; the server adds
//! the locations of the bytes it appended itself.

use strata_proto::common::{BucketMeta, ObjectMeta, PartMeta, UploadMeta};

use super::{BucketRecord, ObjectRecord, PartRecord, UploadRecord};

/// What a client may see of a stored object version: everything but its chunk locations.
pub fn object_meta(record: &ObjectRecord) -> ObjectMeta {
    ObjectMeta {
        size_bytes: record.size_bytes,
        etag: record.etag.clone(),
        content_type: record.content_type.clone(),
        user_metadata: record.user_metadata.clone(),
        last_modified_ms: record.last_modified_ms,
        content_encoding: record.content_encoding.clone(),
        content_disposition: record.content_disposition.clone(),
        content_language: record.content_language.clone(),
        cache_control: record.cache_control.clone(),
        expires: record.expires.clone(),
        checksum: record.checksum.clone(),
        tags: record.tags.clone(),
        version_id: record.version_id.clone(),
        delete_marker: record.delete_marker,
        version_stamp: record.version_stamp,
        write_id: record.write_id.clone(),
        replication_status: record.replication_status,
    }
}

/// A client's object metadata as a record without chunks (only the server knows where it put
/// the bytes).
pub fn object_record(meta: ObjectMeta) -> ObjectRecord {
    ObjectRecord {
        size_bytes: meta.size_bytes,
        etag: meta.etag,
        content_type: meta.content_type,
        user_metadata: meta.user_metadata,
        last_modified_ms: meta.last_modified_ms,
        chunks: Vec::new(),
        content_encoding: meta.content_encoding,
        content_disposition: meta.content_disposition,
        content_language: meta.content_language,
        cache_control: meta.cache_control,
        expires: meta.expires,
        checksum: meta.checksum,
        tags: meta.tags,
        version_id: meta.version_id,
        delete_marker: meta.delete_marker,
        version_stamp: meta.version_stamp,
        write_id: meta.write_id,
        // Only the bucket's rules mark a version (`replication_rules`); a client cannot.
        replication_status: 0,
        replication_mark_ms: 0,
        replication_failure: String::new(),
    }
}

/// A bucket record as clients see it (a bucket has nothing clients may not see).
pub fn bucket_meta(record: BucketRecord) -> BucketMeta {
    BucketMeta {
        name: record.name,
        created_ms: record.created_ms,
        owner_access_key: record.owner_access_key,
        tags: record.tags,
        cors_rules: record.cors_rules,
        lifecycle_rules: record.lifecycle_rules,
        versioning: record.versioning,
        deleting_until_ms: record.deleting_until_ms,
        deletion_id: record.deletion_id,
        move_id: record.move_id,
        importing: record.importing,
        fenced_until_ms: record.fenced_until_ms,
        moved_to: record.moved_to,
        replication: record.replication,
        replication_sources: record.replication_sources,
    }
}

/// A client's bucket as a record (the move fields too: `CreateBucket` clears them, only the
/// move RPCs set them, see `service::moves`).
pub fn bucket_record(meta: BucketMeta) -> BucketRecord {
    BucketRecord {
        name: meta.name,
        created_ms: meta.created_ms,
        owner_access_key: meta.owner_access_key,
        tags: meta.tags,
        cors_rules: meta.cors_rules,
        lifecycle_rules: meta.lifecycle_rules,
        versioning: meta.versioning,
        deleting_until_ms: meta.deleting_until_ms,
        deletion_id: meta.deletion_id,
        move_id: meta.move_id,
        importing: meta.importing,
        fenced_until_ms: meta.fenced_until_ms,
        moved_to: meta.moved_to,
        replication: meta.replication,
        replication_sources: meta.replication_sources,
    }
}

/// An unfinished upload as clients see it.
pub fn upload_meta(record: &UploadRecord) -> UploadMeta {
    UploadMeta {
        upload_id: record.upload_id.clone(),
        initiated_ms: record.initiated_ms,
        meta: record.meta.as_ref().map(object_meta),
        checksum_algorithm: record.checksum_algorithm,
        checksum_full_object: record.checksum_full_object,
    }
}

/// A part as clients see it: everything but its chunk locations.
pub fn part_meta(record: &PartRecord) -> PartMeta {
    PartMeta {
        part_number: record.part_number,
        etag: record.etag.clone(),
        size_bytes: record.size_bytes,
        last_modified_ms: record.last_modified_ms,
        checksum: record.checksum.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::ChunkLocation;
    use prost::Message;

    #[test]
    fn a_bucket_s_move_marks_travel_both_ways() {
        let record = BucketRecord {
            name: "b".into(),
            versioning: 1,
            move_id: "m".into(),
            importing: true,
            fenced_until_ms: 7,
            moved_to: "stamp-2".into(),
            ..Default::default()
        };
        let meta = bucket_meta(record.clone());
        assert_eq!(
            (meta.move_id.as_str(), meta.importing, meta.fenced_until_ms),
            ("m", true, 7)
        );
        assert_eq!(meta.moved_to, "stamp-2");
        assert_eq!(bucket_record(meta.clone()), record);
        // Same field numbers: the record's bytes are the wire message's.
        assert_eq!(meta.encode_to_vec(), record.encode_to_vec());
    }

    #[test]
    fn what_a_client_gets_has_no_chunk_locations() {
        let chunks = vec![ChunkLocation {
            extent_id: 1,
            offset: 2,
            length: 3,
        }];
        let object = ObjectRecord {
            etag: "\"e\"".into(),
            size_bytes: 3,
            chunks: chunks.clone(),
            ..Default::default()
        };
        // The wire types have no chunk field: the bytes a client gets decode as records
        // without chunks.
        let meta = object_meta(&object);
        assert_eq!((meta.etag.as_str(), meta.size_bytes), ("\"e\"", 3));
        let decoded = ObjectRecord::decode(meta.encode_to_vec().as_slice()).unwrap();
        assert!(decoded.chunks.is_empty());
        let upload = UploadRecord {
            meta: Some(object.clone()),
            ..Default::default()
        };
        let decoded =
            UploadRecord::decode(upload_meta(&upload).encode_to_vec().as_slice()).unwrap();
        assert!(decoded.meta.unwrap().chunks.is_empty());
        let part = PartRecord {
            part_number: 2,
            chunks,
            ..Default::default()
        };
        let meta = part_meta(&part);
        assert_eq!(meta.part_number, 2);
        let decoded = PartRecord::decode(meta.encode_to_vec().as_slice()).unwrap();
        assert!(decoded.chunks.is_empty());
        // Back from the wire, everything but the chunks.
        let record = object_record(object_meta(&object));
        assert_eq!(
            record,
            ObjectRecord {
                chunks: Vec::new(),
                ..object
            }
        );
    }
}
