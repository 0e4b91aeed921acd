//! The stream manager's metadata in sled. Every value is a version byte followed by JSON.
//!
//! ```text
//! tree "streams"   stream name        -> StreamRecord { extent_ids (in stream order) }
//! tree "extents"   extent id (u64 BE) -> ExtentRecord { stream, replica node ids (primary first), sealed, sealed_length }
//! tree "nodes"     node id            -> NodeRecord { node_id, addr, rack, http_addr }
//! tree "counters"  "next_extent_id"   -> u64 BE (the last extent id handed out)
//! ```
//! Callers write, then [`MetaStore::flush`] before answering a mutation.

use crate::error::{Result, StreamError};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::path::Path;

const VALUE_FORMAT_VERSION: u8 = 1;
const NEXT_EXTENT_ID_KEY: &[u8] = b"next_extent_id";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRecord {
    pub extent_ids: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtentRecord {
    pub stream: String,
    /// Node ids, the primary first.
    pub replicas: Vec<String>,
    pub sealed: bool,
    pub sealed_length: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node_id: String,
    pub addr: String,
    pub rack: String,
    pub http_addr: String,
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut out = vec![VALUE_FORMAT_VERSION];
    serde_json::to_writer(&mut out, value).map_err(|err| StreamError::Metadata(err.to_string()))?;
    Ok(out)
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&VALUE_FORMAT_VERSION, json)) => serde_json::from_slice(json)
            .map_err(|err| StreamError::CorruptMetadata(format!("{what}: {err}"))),
        Some((version, _)) => Err(StreamError::CorruptMetadata(format!(
            "{what}: unknown value version {version}"
        ))),
        None => Err(StreamError::CorruptMetadata(format!("{what}: empty value"))),
    }
}

pub struct MetaStore {
    db: sled::Db,
    streams: sled::Tree,
    extents: sled::Tree,
    nodes: sled::Tree,
    counters: sled::Tree,
}

impl MetaStore {
    pub fn open(path: &Path) -> Result<Self> {
        let db = sled::open(path)?;
        Ok(Self {
            streams: db.open_tree("streams")?,
            extents: db.open_tree("extents")?,
            nodes: db.open_tree("nodes")?,
            counters: db.open_tree("counters")?,
            db,
        })
    }

    /// Makes every write so far durable.
    pub async fn flush(&self) -> Result<()> {
        self.db.flush_async().await?;
        Ok(())
    }

    pub fn stream(&self, name: &str) -> Result<Option<StreamRecord>> {
        self.streams
            .get(name.as_bytes())?
            .map(|v| decode(&format!("stream {name:?}"), &v))
            .transpose()
    }

    pub fn put_stream(&self, name: &str, record: &StreamRecord) -> Result<()> {
        self.streams.insert(name.as_bytes(), encode(record)?)?;
        Ok(())
    }

    /// Removes a stream; true when it existed.
    pub fn remove_stream(&self, name: &str) -> Result<bool> {
        Ok(self.streams.remove(name.as_bytes())?.is_some())
    }

    /// Every stream, by name.
    pub fn streams(&self) -> Result<Vec<(String, StreamRecord)>> {
        let mut out = Vec::with_capacity(self.streams.len());
        for item in self.streams.iter() {
            let (key, value) = item?;
            let name = String::from_utf8_lossy(&key).into_owned();
            let record = decode(&format!("stream {name:?}"), &value)?;
            out.push((name, record));
        }
        Ok(out)
    }

    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    pub fn extent(&self, extent_id: u64) -> Result<Option<ExtentRecord>> {
        self.extents
            .get(extent_id.to_be_bytes())?
            .map(|v| decode(&format!("extent {extent_id}"), &v))
            .transpose()
    }

    pub fn put_extent(&self, extent_id: u64, record: &ExtentRecord) -> Result<()> {
        self.extents
            .insert(extent_id.to_be_bytes(), encode(record)?)?;
        Ok(())
    }

    pub fn remove_extent(&self, extent_id: u64) -> Result<()> {
        self.extents.remove(extent_id.to_be_bytes())?;
        Ok(())
    }

    /// Every extent, by id.
    pub fn extents(&self) -> Result<Vec<(u64, ExtentRecord)>> {
        let mut out = Vec::with_capacity(self.extents.len());
        for item in self.extents.iter() {
            let (key, value) = item?;
            let id_bytes: [u8; 8] = key
                .as_ref()
                .try_into()
                .map_err(|_| StreamError::CorruptMetadata("extent key is not 8 bytes".into()))?;
            let id = u64::from_be_bytes(id_bytes);
            out.push((id, decode(&format!("extent {id}"), &value)?));
        }
        Ok(out)
    }

    pub fn extent_count(&self) -> usize {
        self.extents.len()
    }

    pub fn node(&self, node_id: &str) -> Result<Option<NodeRecord>> {
        self.nodes
            .get(node_id.as_bytes())?
            .map(|v| decode(&format!("node {node_id}"), &v))
            .transpose()
    }

    pub fn put_node(&self, record: &NodeRecord) -> Result<()> {
        self.nodes
            .insert(record.node_id.as_bytes(), encode(record)?)?;
        Ok(())
    }

    pub fn nodes(&self) -> Result<Vec<NodeRecord>> {
        self.nodes
            .iter()
            .map(|item| {
                item.map_err(StreamError::from)
                    .and_then(|(_, v)| decode("node", &v))
            })
            .collect()
    }

    /// Hands out the next extent id (1, 2, ...).
    pub fn next_extent_id(&self) -> Result<u64> {
        let updated = self.counters.update_and_fetch(NEXT_EXTENT_ID_KEY, |old| {
            let last = old
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            Some((last + 1).to_be_bytes().to_vec())
        })?;
        let bytes = updated
            .ok_or_else(|| StreamError::CorruptMetadata("extent id counter vanished".into()))?;
        let bytes: [u8; 8] = bytes
            .as_ref()
            .try_into()
            .map_err(|_| StreamError::CorruptMetadata("extent id counter is not 8 bytes".into()))?;
        Ok(u64::from_be_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn metadata_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let meta = MetaStore::open(dir.path()).unwrap();
            assert_eq!(meta.next_extent_id().unwrap(), 1);
            assert_eq!(meta.next_extent_id().unwrap(), 2);
            meta.put_stream(
                "log",
                &StreamRecord {
                    extent_ids: vec![1, 2],
                },
            )
            .unwrap();
            let extent = ExtentRecord {
                stream: "log".into(),
                replicas: vec!["a".into(), "b".into()],
                sealed: true,
                sealed_length: 99,
            };
            meta.put_extent(1, &extent).unwrap();
            meta.put_node(&NodeRecord {
                node_id: "a".into(),
                addr: "x:1".into(),
                rack: "r1".into(),
                http_addr: "".into(),
            })
            .unwrap();
            meta.flush().await.unwrap();
        }
        let meta = MetaStore::open(dir.path()).unwrap();
        assert_eq!(meta.stream("log").unwrap().unwrap().extent_ids, vec![1, 2]);
        assert_eq!(meta.extent(1).unwrap().unwrap().sealed_length, 99);
        assert_eq!(meta.nodes().unwrap().len(), 1);
        assert_eq!(meta.next_extent_id().unwrap(), 3);
        assert!(meta.stream("other").unwrap().is_none());
    }
}
