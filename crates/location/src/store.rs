//! The bucket table of earlier versions, when one process served the location service:
//! `bucket name -> BucketLocation`, in sled. The location group imports it once (see
//! `duties.rs`) and never writes it; `reserve` and `release` remain for tests that make one.
//!
//! Value format: a prost `BucketLocation` in the frame of `strata_util::codec` (version 2,
//! CRC big-endian). Version 1, which this store wrote with a little-endian CRC, still reads.

use prost::Message;
use strata_proto::location::BucketLocation;
use strata_util::codec::{self, Legacy};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt bucket record for {bucket}: {reason}")]
    Corrupt { bucket: String, reason: String },
}

#[derive(Clone)]
pub struct LocationStore {
    db: sled::Db,
    buckets: sled::Tree,
}

/// Outcome of a reservation.
#[derive(Debug, PartialEq)]
pub enum Reservation {
    /// The name was free and is now ours.
    Reserved(BucketLocation),
    /// The name is held already (maybe by the same owner: the caller decides what that means).
    Taken(BucketLocation),
}

fn encode(location: &BucketLocation) -> Vec<u8> {
    codec::frame(&location.encode_to_vec())
}

fn decode(bucket: &str, bytes: &[u8]) -> Result<BucketLocation, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        bucket: bucket.to_string(),
        reason,
    };
    let body =
        codec::unframe(bytes, Legacy::CrcLittleEndian).map_err(|err| corrupt(err.to_string()))?;
    BucketLocation::decode(body).map_err(|err| corrupt(err.to_string()))
}

impl LocationStore {
    pub fn open(path: &std::path::Path) -> Result<Self, StoreError> {
        let db = sled::open(path)?;
        let buckets = db.open_tree("buckets")?;
        Ok(Self { db, buckets })
    }

    /// Reserves `location.bucket` unless someone holds it; durable before it returns.
    pub async fn reserve(&self, location: BucketLocation) -> Result<Reservation, StoreError> {
        let key = location.bucket.as_bytes().to_vec();
        let swapped =
            self.buckets
                .compare_and_swap(&key, None as Option<&[u8]>, Some(encode(&location)))?;
        match swapped {
            Ok(()) => {
                self.db.flush_async().await?;
                Ok(Reservation::Reserved(location))
            }
            Err(conflict) => {
                let current = conflict.current.unwrap_or_default();
                Ok(Reservation::Taken(decode(&location.bucket, &current)?))
            }
        }
    }

    pub fn lookup(&self, bucket: &str) -> Result<Option<BucketLocation>, StoreError> {
        match self.buckets.get(bucket.as_bytes())? {
            Some(bytes) => Ok(Some(decode(bucket, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Releases the name if `owner_access_key` holds it. Returns whether it was released.
    pub async fn release(&self, bucket: &str, owner_access_key: &str) -> Result<bool, StoreError> {
        let Some(current) = self.buckets.get(bucket.as_bytes())? else {
            return Ok(false);
        };
        if decode(bucket, &current)?.owner_access_key != owner_access_key {
            return Ok(false);
        }
        let swapped = self.buckets.compare_and_swap(
            bucket.as_bytes(),
            Some(current),
            None as Option<&[u8]>,
        )?;
        if swapped.is_err() {
            return Ok(false);
        }
        self.db.flush_async().await?;
        Ok(true)
    }

    /// Every record, in name order.
    pub fn all(&self) -> Result<Vec<BucketLocation>, StoreError> {
        let mut out = Vec::new();
        for item in self.buckets.iter() {
            let (key, value) = item?;
            out.push(decode(&String::from_utf8_lossy(&key), &value)?);
        }
        Ok(out)
    }

    /// Number of buckets held per stamp.
    pub fn count_by_stamp(&self) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        let mut counts = std::collections::BTreeMap::new();
        for item in self.buckets.iter() {
            let (key, value) = item?;
            let bucket = String::from_utf8_lossy(&key).to_string();
            *counts.entry(decode(&bucket, &value)?.stamp).or_insert(0) += 1;
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(bucket: &str, owner: &str) -> BucketLocation {
        BucketLocation {
            bucket: bucket.into(),
            stamp: "stamp-1".into(),
            owner_access_key: owner.into(),
            created_ms: 1,
            region: String::new(),
            last_move: None,
        }
    }

    #[tokio::test]
    async fn names_are_unique_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = LocationStore::open(dir.path()).unwrap();
            assert!(matches!(
                store.reserve(location("a", "k1")).await.unwrap(),
                Reservation::Reserved(_)
            ));
            match store.reserve(location("a", "k2")).await.unwrap() {
                Reservation::Taken(held) => assert_eq!(held.owner_access_key, "k1"),
                other => panic!("expected Taken, got {other:?}"),
            }
            assert!(
                !store.release("a", "k2").await.unwrap(),
                "another owner cannot release"
            );
        }
        let store = LocationStore::open(dir.path()).unwrap();
        assert_eq!(store.lookup("a").unwrap().unwrap().owner_access_key, "k1");
        assert!(store.release("a", "k1").await.unwrap());
        assert_eq!(store.lookup("a").unwrap(), None);
        assert_eq!(store.count_by_stamp().unwrap().len(), 0);
    }

    #[test]
    fn corrupt_records_are_detected() {
        let mut bytes = encode(&location("b", "k"));
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        assert!(matches!(
            decode("b", &bytes),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            decode("b", &[9, 0, 0, 0, 0]),
            Err(StoreError::Corrupt { .. })
        ));
    }

    /// A record as this store wrote it before the shared codec (version 1, CRC little-endian).
    #[test]
    fn records_written_before_the_shared_codec_still_decode() {
        let body = location("c", "k").encode_to_vec();
        let mut old = vec![1u8];
        old.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        old.extend_from_slice(&body);
        assert_eq!(decode("c", &old).unwrap(), location("c", "k"));
    }
}
