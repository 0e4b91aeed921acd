//! Creating a stream out of existing sealed extents (no byte is copied): how a range split or
//! merge hands its parents' data extents to its children.
//!
//! The commit re-asserts every extent's record unchanged, so it conflicts (and changes nothing)
//! if garbage collection or repair touched one of them meanwhile.

use super::meta::{Mutation, StreamRecord};
use super::state::{ManagerState, STREAM_NAME_BYTES_MAX};
use crate::error::{Result, StreamError};
use strata_proto::stream::StreamInfo;
use strata_types::ExtentId;

/// Most extents one created stream may start with (bounds the metadata command).
pub const CREATED_STREAM_EXTENTS_MAX: usize = 100_000;

impl ManagerState {
    /// See the `CreateStream` RPC.
    pub async fn create_stream(&self, name: &str, extent_ids: &[ExtentId]) -> Result<StreamInfo> {
        if name.is_empty() || name.len() > STREAM_NAME_BYTES_MAX {
            return Err(StreamError::InvalidArgument(format!(
                "stream name must be 1..={STREAM_NAME_BYTES_MAX} bytes"
            )));
        }
        if extent_ids.len() > CREATED_STREAM_EXTENTS_MAX {
            return Err(StreamError::InvalidArgument(format!(
                "a created stream holds at most {CREATED_STREAM_EXTENTS_MAX} extents"
            )));
        }
        let mut seen = std::collections::HashSet::new();
        if !extent_ids.iter().all(|id| seen.insert(*id)) {
            return Err(StreamError::InvalidArgument(
                "an extent is named twice".into(),
            ));
        }
        self.confirm_leader().await?;
        let lock = self.stream_lock(name)?;
        let _serialized = lock.lock().await;
        let record = StreamRecord {
            extent_ids: extent_ids.to_vec(),
            last_seal: None,
        };
        if let Some(existing) = self.meta.stream(name)? {
            if existing.extent_ids == extent_ids {
                return self.stream_info(name, &existing);
            }
            return Err(StreamError::Fenced {
                stream: name.to_string(),
                reason: "a stream of that name already exists with other extents".into(),
            });
        }
        let mut mutations = Vec::with_capacity(extent_ids.len() + 1);
        for &extent_id in extent_ids {
            let extent = self
                .meta
                .extent(extent_id)?
                .ok_or(StreamError::ExtentNotFound(extent_id))?;
            if !extent.sealed {
                return Err(StreamError::InvalidArgument(format!(
                    "{extent_id} is not sealed; only sealed extents can be shared"
                )));
            }
            mutations.push(Mutation::Extent {
                extent_id,
                expected: Some(extent.clone()),
                record: Some(extent),
            });
        }
        mutations.push(Mutation::Stream {
            name: name.to_string(),
            expected: None,
            record: Some(record.clone()),
        });
        self.meta.commit(mutations).await?;
        tracing::info!(
            stream = name,
            extents = extent_ids.len(),
            "stream created from existing sealed extents"
        );
        self.update_gauges();
        self.stream_info(name, &record)
    }
}
