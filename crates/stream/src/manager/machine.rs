//! The stream manager's metadata as a replicated state machine (`strata_raft`): streams,
//! extents, extent nodes and the extent-id counter, one record per key. Typed ids serialize
//! as their raw numbers (`#[serde(transparent)]`), so logs and snapshots written before
//! they were typed load unchanged.
//!
//! ```text
//! s/<stream name>      -> StreamRecord { extent_ids (in stream order) }
//! e/<extent id u64 BE> -> ExtentRecord { stream, replicas (primary first), sealed, sealed_length }
//! n/<node id>          -> NodeRecord { node_id, addr, rack, http_addr }
//! c/next_extent_id     -> u64 (the next id to hand out)
//! ```
//! A [`MetaCommand`] is a list of [`Mutation`]s applied all or nothing: a mutation that names
//! the record it expects to replace is checked first, and if any expectation fails (another
//! change won a race: repair against garbage collection, or a leader that was deposed
//! meanwhile), nothing is written and the command answers [`MetaResponse::Conflict`].

use serde::{Deserialize, Serialize};
use strata_raft::{GroupError, Machine, Overlay};
use strata_types::ExtentId;

pub(super) const STREAM_PREFIX: &[u8] = b"s/";
pub(super) const EXTENT_PREFIX: &[u8] = b"e/";
pub(super) const NODE_PREFIX: &[u8] = b"n/";
const NEXT_EXTENT_ID_KEY: &[u8] = b"c/next_extent_id";
/// Extent ids reserved by one command at most.
pub const EXTENT_IDS_PER_RESERVATION_MAX: u64 = 4_096;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRecord {
    pub extent_ids: Vec<ExtentId>,
    /// Who made the stream's most recent seal-and-extend, so the same writer's retry of it is
    /// recognized (see `SealExtentRequest.writer_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seal: Option<SealMark>,
}

/// One seal-and-extend of a stream: which extent, by which writer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealMark {
    pub extent_id: ExtentId,
    pub writer_id: String,
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

pub(super) fn stream_key(name: &str) -> Vec<u8> {
    [STREAM_PREFIX, name.as_bytes()].concat()
}

pub(super) fn extent_key(extent_id: ExtentId) -> Vec<u8> {
    [EXTENT_PREFIX, &extent_id.get().to_be_bytes()[..]].concat()
}

pub(super) fn node_key(node_id: &str) -> Vec<u8> {
    [NODE_PREFIX, node_id.as_bytes()].concat()
}

/// One change to the metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mutation {
    /// Sets (Some) or removes (None) a stream, if its record is still `expected`.
    Stream {
        name: String,
        expected: Option<StreamRecord>,
        record: Option<StreamRecord>,
    },
    /// Sets (Some) or removes (None) an extent, if its record is still `expected`.
    Extent {
        extent_id: ExtentId,
        expected: Option<ExtentRecord>,
        record: Option<ExtentRecord>,
    },
    /// Registers or updates an extent node (a node's own heartbeat: the last one wins).
    Node { record: NodeRecord },
    /// Hands out `count` fresh extent ids; the response names the first.
    ReserveExtentIds { count: u64 },
}

/// A log entry: mutations applied all or nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaCommand {
    pub mutations: Vec<Mutation>,
}

/// What applying a [`MetaCommand`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaResponse {
    /// Every mutation applied; `first_extent_id` is set when ids were reserved.
    Applied { first_extent_id: Option<ExtentId> },
    /// An expectation failed; nothing changed.
    Conflict { reason: String },
}

/// The stream manager's state machine (it keeps nothing in memory: readers use the records).
#[derive(Default)]
pub struct MetaMachine;

fn check<T: PartialEq + serde::de::DeserializeOwned>(
    state: &Overlay<'_>,
    key: &[u8],
    expected: &Option<T>,
    what: &str,
) -> Result<Option<String>, GroupError> {
    let current: Option<T> = state.get_record(key)?;
    Ok((current != *expected).then(|| format!("{what} changed meanwhile")))
}

impl Machine for MetaMachine {
    type Command = MetaCommand;
    type Response = MetaResponse;

    fn no_change() -> MetaResponse {
        MetaResponse::Applied {
            first_extent_id: None,
        }
    }

    fn apply(
        &self,
        state: &mut Overlay<'_>,
        _index: u64,
        command: &MetaCommand,
    ) -> Result<MetaResponse, GroupError> {
        for mutation in &command.mutations {
            let conflict = match mutation {
                Mutation::Stream { name, expected, .. } => check(
                    state,
                    &stream_key(name),
                    expected,
                    &format!("stream {name:?}"),
                )?,
                Mutation::Extent {
                    extent_id,
                    expected,
                    ..
                } => check(
                    state,
                    &extent_key(*extent_id),
                    expected,
                    &format!("{extent_id}"),
                )?,
                Mutation::ReserveExtentIds { count } => (*count == 0
                    || *count > EXTENT_IDS_PER_RESERVATION_MAX)
                    .then(|| format!("cannot reserve {count} extent ids")),
                Mutation::Node { .. } => None,
            };
            if let Some(reason) = conflict {
                return Ok(MetaResponse::Conflict { reason });
            }
        }
        let mut first_extent_id = None;
        for mutation in &command.mutations {
            match mutation {
                Mutation::Stream { name, record, .. } => match record {
                    Some(record) => state.put_record(&stream_key(name), record)?,
                    None => state.remove(&stream_key(name)),
                },
                Mutation::Extent {
                    extent_id, record, ..
                } => match record {
                    Some(record) => state.put_record(&extent_key(*extent_id), record)?,
                    None => state.remove(&extent_key(*extent_id)),
                },
                Mutation::Node { record } => {
                    state.put_record(&node_key(&record.node_id), record)?
                }
                Mutation::ReserveExtentIds { count } => {
                    let next: u64 = state.get_record(NEXT_EXTENT_ID_KEY)?.unwrap_or(1);
                    state.put_record(NEXT_EXTENT_ID_KEY, &(next + count))?;
                    first_extent_id = Some(ExtentId::new(next));
                }
            }
        }
        Ok(MetaResponse::Applied { first_extent_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command logged before extent ids were typed (bare numbers) loads into typed ids and
    /// is written back byte for byte, so existing Raft logs and snapshots stay readable.
    #[test]
    fn logged_commands_keep_their_encoding() {
        let logged = concat!(
            r#"{"mutations":[{"Extent":{"extent_id":7,"expected":null,"#,
            r#""record":{"stream":"s","replicas":["n1"],"sealed":true,"sealed_length":24}}},"#,
            r#"{"Stream":{"name":"s","expected":null,"record":{"extent_ids":[7,9],"#,
            r#""last_seal":{"extent_id":7,"writer_id":"w"}}}}]}"#
        );
        let command: MetaCommand = serde_json::from_str(logged).unwrap();
        let Mutation::Stream {
            record: Some(stream),
            ..
        } = &command.mutations[1]
        else {
            panic!("a stream mutation: {command:?}");
        };
        assert_eq!(stream.extent_ids, vec![ExtentId::new(7), ExtentId::new(9)]);
        assert_eq!(serde_json::to_string(&command).unwrap(), logged);
        let response = MetaResponse::Applied {
            first_extent_id: Some(ExtentId::new(65)),
        };
        assert_eq!(
            serde_json::to_string(&response).unwrap(),
            r#"{"Applied":{"first_extent_id":65}}"#
        );
        assert_eq!(extent_key(ExtentId::new(258)), b"e/\0\0\0\0\0\0\x01\x02");
    }
}
