//! gRPC clients cached per address, in `strata_util::rpc::ChannelPool`s. Channels connect
//! lazily and carry connect and request timeouts, so every call through them is bounded.

use crate::error::{Result, StreamError};
use std::time::Duration;
use strata_proto::stream::extent_node_client::ExtentNodeClient;
use strata_proto::stream::stream_manager_client::StreamManagerClient;
use strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX;
use strata_util::rpc::{BadAddress, Channel, ChannelPool};

/// Bound on one control RPC (create, info, seal) made by the stream manager or a writer.
pub const CONTROL_RPC_TIMEOUT_MS: u64 = 3_000;

pub struct ChannelCache {
    channels: ChannelPool,
    /// Channels without the 10 s per-request bound, for long calls (repair copies) that the
    /// caller bounds itself with [`bounded`].
    long_channels: ChannelPool,
}

impl Default for ChannelCache {
    fn default() -> Self {
        Self {
            channels: ChannelPool::unary(),
            long_channels: ChannelPool::streaming(),
        }
    }
}

fn bad_address(err: BadAddress) -> StreamError {
    StreamError::InvalidArgument(err.to_string())
}

impl ChannelCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// An extent-node client for calls longer than the channel's default bound; every call
    /// through it must be wrapped in [`bounded`].
    pub fn extent_node_long(&self, addr: &str) -> Result<ExtentNodeClient<Channel>> {
        let channel = self.long_channels.get(addr).map_err(bad_address)?;
        Ok(ExtentNodeClient::new(channel)
            .max_decoding_message_size(GRPC_MESSAGE_SIZE_BYTES_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_SIZE_BYTES_MAX))
    }

    pub fn extent_node(&self, addr: &str) -> Result<ExtentNodeClient<Channel>> {
        let channel = self.channels.get(addr).map_err(bad_address)?;
        Ok(ExtentNodeClient::new(channel)
            .max_decoding_message_size(GRPC_MESSAGE_SIZE_BYTES_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_SIZE_BYTES_MAX))
    }

    pub fn stream_manager(&self, addr: &str) -> Result<StreamManagerClient<Channel>> {
        let channel = self.channels.get(addr).map_err(bad_address)?;
        Ok(StreamManagerClient::new(channel)
            .max_decoding_message_size(GRPC_MESSAGE_SIZE_BYTES_MAX)
            .max_encoding_message_size(GRPC_MESSAGE_SIZE_BYTES_MAX))
    }
}

/// A request with its own deadline (sent as `grpc-timeout`, enforced by both sides).
pub fn request_with_timeout<T>(message: T, timeout_ms: u64) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(Duration::from_millis(timeout_ms));
    request
}

/// Awaits one RPC to `addr` for at most `timeout_ms` (on top of the channel's own timeouts, so
/// a peer that accepts but never answers cannot hold the caller), unwrapping the response.
pub async fn bounded<T>(
    addr: &str,
    timeout_ms: u64,
    call: impl std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T> {
    match tokio::time::timeout(Duration::from_millis(timeout_ms), call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(StreamError::rpc(addr, status)),
        Err(_) => Err(StreamError::rpc(
            addr,
            tonic::Status::deadline_exceeded(format!("no answer in {timeout_ms} ms")),
        )),
    }
}

/// Tries the stream managers at `addrs` in turn (from `start`) until one answers; returns the
/// answer and the index of the manager that gave it.
pub async fn call_any_manager<T, F, Fut>(
    channels: &ChannelCache,
    addrs: &[String],
    start: usize,
    timeout_ms: u64,
    call: F,
) -> Result<(T, usize)>
where
    F: Fn(StreamManagerClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
{
    let mut last_error = None;
    for step in 0..addrs.len() {
        let index = (start + step) % addrs.len();
        let addr = &addrs[index];
        let client = channels.stream_manager(addr)?;
        match bounded(addr, timeout_ms, call(client)).await {
            Ok(value) => return Ok((value, index)),
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error.unwrap_or_else(|| StreamError::Unavailable("no stream manager address".into())))
}
