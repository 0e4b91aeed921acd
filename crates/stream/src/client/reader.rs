//! Reading a whole stream in order, in batches.

use super::{RecordPos, StreamClient};
use crate::error::{Result, StreamError};
use crate::extent::FILE_HEADER_LEN;
use bytes::Bytes;
use futures::Stream;
use std::collections::VecDeque;
use strata_proto::stream::ExtentInfo;
use strata_types::ExtentId;

/// Records and payload bytes asked for per Read RPC.
const BATCH_RECORDS: u32 = 256;
const BATCH_BYTES: u64 = 4 * 1024 * 1024;

struct Cursor {
    client: StreamClient,
    name: String,
    from: Option<(ExtentId, u64)>,
    /// The stream's extents as of the first batch.
    extents: Option<Vec<ExtentInfo>>,
    index: usize,
    offset: u64,
    buffered: VecDeque<(RecordPos, Bytes)>,
    done: bool,
}

impl Cursor {
    async fn start(&mut self) -> Result<()> {
        let info = self.client.stream_info(&self.name).await?;
        match self.from {
            None => {
                self.index = 0;
                self.offset = FILE_HEADER_LEN;
            }
            Some((extent_id, offset)) => {
                self.index = info
                    .extents
                    .iter()
                    .position(|e| e.extent_id == extent_id.get())
                    .ok_or_else(|| {
                        StreamError::InvalidArgument(format!(
                            "{extent_id} is not in stream {:?}",
                            self.name
                        ))
                    })?;
                self.offset = offset.max(FILE_HEADER_LEN);
            }
        }
        self.extents = Some(info.extents);
        Ok(())
    }

    /// Fills the buffer with the next batch; false at the end of the stream.
    async fn fill(&mut self) -> Result<bool> {
        if self.extents.is_none() {
            self.start().await?;
        }
        let extents = self.extents.as_deref().unwrap_or_default();
        loop {
            let Some(extent) = extents.get(self.index) else {
                return Ok(false);
            };
            let is_last = self.index + 1 == extents.len();
            if extent.sealed && self.offset >= extent.sealed_length {
                self.index += 1;
                self.offset = FILE_HEADER_LEN;
                continue;
            }
            let response = self
                .client
                .read_replicas(
                    extent,
                    self.offset,
                    BATCH_RECORDS,
                    BATCH_BYTES,
                    extent.sealed,
                )
                .await?;
            if response.records.is_empty() {
                if is_last {
                    return Ok(false);
                }
                self.index += 1;
                self.offset = FILE_HEADER_LEN;
                continue;
            }
            for record in response.records {
                if extent.sealed && record.offset >= extent.sealed_length {
                    // A replica that missed the seal may hold unacknowledged bytes past it.
                    break;
                }
                let pos = RecordPos {
                    extent_id: ExtentId::new(extent.extent_id),
                    offset: record.offset,
                    length: record.payload.len() as u64,
                };
                self.buffered.push_back((pos, Bytes::from(record.payload)));
            }
            self.offset = if extent.sealed {
                response.next_offset.min(extent.sealed_length)
            } else {
                response.next_offset
            };
            if self.buffered.is_empty() {
                continue;
            }
            return Ok(true);
        }
    }

    async fn next(&mut self) -> Option<Result<(RecordPos, Bytes)>> {
        loop {
            if let Some(item) = self.buffered.pop_front() {
                return Some(Ok(item));
            }
            if self.done {
                return None;
            }
            match self.fill().await {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Err(err) => {
                    tracing::warn!(stream = %self.name, %err, "reading stream failed");
                    self.done = true;
                    return Some(Err(err));
                }
            }
        }
    }
}

pub(super) fn read_stream(
    client: StreamClient,
    name: String,
    from: Option<(ExtentId, u64)>,
) -> impl Stream<Item = Result<(RecordPos, Bytes)>> + Send + 'static {
    let cursor = Cursor {
        client,
        name,
        from,
        extents: None,
        index: 0,
        offset: FILE_HEADER_LEN,
        buffered: VecDeque::new(),
        done: false,
    };
    futures::stream::unfold(cursor, |mut cursor| async move {
        cursor.next().await.map(|item| (item, cursor))
    })
}
