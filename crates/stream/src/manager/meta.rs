//! The stream manager's metadata store: reads from this member's applied state machine
//! ([`super::machine`]), writes as Raft proposals that return once committed by a majority
//! of the group and applied here.
//!
//! Only the leader writes, and it reads its own applied state, so a read-modify-write under
//! the manager's per-stream lock sees every earlier write; each write names the records it
//! expects to replace, so a race it did not see makes it fail instead of losing an update.

pub use super::machine::{
    ExtentRecord, MetaCommand, MetaResponse, Mutation, NodeRecord, SealMark, StreamRecord,
};

use super::machine::{
    extent_key, node_key, stream_key, MetaMachine, EXTENT_PREFIX, NODE_PREFIX, STREAM_PREFIX,
};
use crate::error::{Result, StreamError};
use strata_raft::Group;
use strata_types::ExtentId;

/// Bound on one proposal (an election meanwhile makes it fail; callers retry).
pub const PROPOSE_TIMEOUT_MS: u64 = 5_000;

/// Cheap to clone.
#[derive(Clone)]
pub struct MetaStore {
    group: Group<MetaMachine>,
}

fn decode_extent_id(key: &[u8]) -> Result<ExtentId> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| StreamError::CorruptMetadata("extent key is not 8 bytes".into()))?;
    Ok(ExtentId::new(u64::from_be_bytes(bytes)))
}

impl MetaStore {
    pub fn new(group: Group<MetaMachine>) -> Self {
        Self { group }
    }

    pub fn group(&self) -> &Group<MetaMachine> {
        &self.group
    }

    /// Applies `mutations` all or nothing through the group; a failed expectation is
    /// `Unavailable` (the caller retries with fresh reads).
    pub async fn commit(&self, mutations: Vec<Mutation>) -> Result<Option<ExtentId>> {
        let command = MetaCommand { mutations };
        match self.group.propose(command, PROPOSE_TIMEOUT_MS).await? {
            MetaResponse::Applied { first_extent_id } => Ok(first_extent_id),
            MetaResponse::Conflict { reason } => Err(StreamError::Unavailable(format!(
                "metadata changed concurrently ({reason}); retry"
            ))),
        }
    }

    pub fn stream(&self, name: &str) -> Result<Option<StreamRecord>> {
        Ok(self.group.reader().get_record(&stream_key(name))?)
    }

    /// Every stream, by name.
    pub fn streams(&self) -> Result<Vec<(String, StreamRecord)>> {
        Ok(self
            .group
            .reader()
            .scan_records::<StreamRecord>(STREAM_PREFIX)?
            .into_iter()
            .map(|(key, record)| (String::from_utf8_lossy(&key).into_owned(), record))
            .collect())
    }

    pub fn stream_count(&self) -> usize {
        self.group.reader().count(STREAM_PREFIX)
    }

    pub fn extent(&self, extent_id: ExtentId) -> Result<Option<ExtentRecord>> {
        Ok(self.group.reader().get_record(&extent_key(extent_id))?)
    }

    /// Every extent, by id.
    pub fn extents(&self) -> Result<Vec<(ExtentId, ExtentRecord)>> {
        self.group
            .reader()
            .scan_records::<ExtentRecord>(EXTENT_PREFIX)?
            .into_iter()
            .map(|(key, record)| Ok((decode_extent_id(&key)?, record)))
            .collect()
    }

    pub fn extent_count(&self) -> usize {
        self.group.reader().count(EXTENT_PREFIX)
    }

    pub fn node(&self, node_id: &str) -> Result<Option<NodeRecord>> {
        Ok(self.group.reader().get_record(&node_key(node_id))?)
    }

    pub fn nodes(&self) -> Result<Vec<NodeRecord>> {
        Ok(self
            .group
            .reader()
            .scan_records::<NodeRecord>(NODE_PREFIX)?
            .into_iter()
            .map(|(_, record)| record)
            .collect())
    }
}
