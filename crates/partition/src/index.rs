//! A range's in-memory index: what keys map to (stored records, [`crate::records`]), one change
//! to it, and the conversions of values to the log's and checkpoints' messages.

use std::collections::BTreeMap;

use crate::records::{
    index_entry, mutation, BucketRecord, IndexEntry, ObjectRecord, PartRecord, UploadRecord,
};

/// What one index key maps to.
#[derive(Clone, Debug, PartialEq)]
pub enum IndexValue {
    Object(ObjectRecord),
    Bucket(BucketRecord),
    Upload(UploadRecord),
    Part(PartRecord),
    /// A noncurrent object version (`keys::version_key`).
    Version(ObjectRecord),
}

/// One change to apply: the key and its new value (None deletes it).
pub type Change = (Vec<u8>, Option<IndexValue>);

/// The sorted index of one range: encoded key -> value.
pub type Index = BTreeMap<Vec<u8>, IndexValue>;

/// Applies `changes` in order.
pub(crate) fn apply_changes(index: &mut Index, changes: Vec<Change>) {
    for (key, value) in changes {
        match value {
            Some(value) => {
                index.insert(key, value);
            }
            None => {
                index.remove(&key);
            }
        }
    }
}

impl IndexValue {
    pub(crate) fn into_mutation_value(value: Option<IndexValue>) -> mutation::Value {
        match value {
            Some(IndexValue::Object(meta)) => mutation::Value::Object(meta),
            Some(IndexValue::Bucket(bucket)) => mutation::Value::Bucket(bucket),
            Some(IndexValue::Upload(upload)) => mutation::Value::Upload(upload),
            Some(IndexValue::Part(part)) => mutation::Value::Part(part),
            Some(IndexValue::Version(meta)) => mutation::Value::Version(meta),
            None => mutation::Value::Tombstone(true),
        }
    }

    /// None for a tombstone.
    pub(crate) fn from_mutation_value(value: mutation::Value) -> Option<IndexValue> {
        match value {
            mutation::Value::Object(meta) => Some(IndexValue::Object(meta)),
            mutation::Value::Bucket(bucket) => Some(IndexValue::Bucket(bucket)),
            mutation::Value::Upload(upload) => Some(IndexValue::Upload(upload)),
            mutation::Value::Part(part) => Some(IndexValue::Part(part)),
            mutation::Value::Version(meta) => Some(IndexValue::Version(meta)),
            mutation::Value::Tombstone(_) => None,
        }
    }

    pub(crate) fn into_index_entry(self, key: Vec<u8>) -> IndexEntry {
        let value = match self {
            IndexValue::Object(meta) => index_entry::Value::Object(meta),
            IndexValue::Bucket(bucket) => index_entry::Value::Bucket(bucket),
            IndexValue::Upload(upload) => index_entry::Value::Upload(upload),
            IndexValue::Part(part) => index_entry::Value::Part(part),
            IndexValue::Version(meta) => index_entry::Value::Version(meta),
        };
        IndexEntry {
            key,
            value: Some(value),
        }
    }

    pub(crate) fn from_index_entry(entry: IndexEntry) -> Option<(Vec<u8>, IndexValue)> {
        let value = match entry.value? {
            index_entry::Value::Object(meta) => IndexValue::Object(meta),
            index_entry::Value::Bucket(bucket) => IndexValue::Bucket(bucket),
            index_entry::Value::Upload(upload) => IndexValue::Upload(upload),
            index_entry::Value::Part(part) => IndexValue::Part(part),
            index_entry::Value::Version(meta) => IndexValue::Version(meta),
        };
        Some((entry.key, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_value_survives_the_log_and_checkpoint_encodings() {
        let meta = ObjectRecord {
            version_id: "0000000000000001abcdef01".into(),
            version_stamp: 1,
            ..Default::default()
        };
        let values = [
            IndexValue::Object(meta.clone()),
            IndexValue::Version(meta),
            IndexValue::Bucket(BucketRecord::default()),
            IndexValue::Upload(UploadRecord::default()),
            IndexValue::Part(PartRecord::default()),
        ];
        for value in values {
            let logged = IndexValue::into_mutation_value(Some(value.clone()));
            assert_eq!(IndexValue::from_mutation_value(logged), Some(value.clone()));
            let entry = value.clone().into_index_entry(b"k".to_vec());
            assert_eq!(
                IndexValue::from_index_entry(entry),
                Some((b"k".to_vec(), value))
            );
        }
        assert_eq!(
            IndexValue::from_mutation_value(IndexValue::into_mutation_value(None)),
            None
        );
    }
}
