//! `strata debug ...`: low-level calls for fault tests, bypassing the front-end.
//!
//! `strata debug put-object --server <addr> ...` sends one PutObject straight to a partition
//! server, whoever owns the key, so a test can prove that a fenced (paused, then resumed)
//! server acknowledges nothing. Exit status 0 means the server acknowledged the write.

use anyhow::Context;
use strata_proto::partition::partition_server_client::PartitionServerClient;
use strata_proto::partition::{put_object_request, PutObjectHeader, PutObjectRequest};

#[derive(clap::Args, Debug)]
pub struct DebugArgs {
    #[command(subcommand)]
    pub command: DebugCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum DebugCommand {
    /// Put one small object straight to a partition server (exit 0 only if it acknowledged).
    PutObject {
        /// The partition server's gRPC address.
        #[arg(long)]
        server: String,
        #[arg(long)]
        bucket: String,
        #[arg(long)]
        key: String,
        /// The object's bytes (UTF-8).
        #[arg(long)]
        data: String,
        /// Give up after this long.
        #[arg(long, default_value_t = 30_000)]
        timeout_ms: u64,
        /// The stamp's data folder: its operator certificate is used when it runs mutual TLS.
        #[arg(long, default_value = "strata-data")]
        data_dir: std::path::PathBuf,
        /// Present this holder's certificate from <data-dir>/certs instead of the operator's
        /// (a node name such as `en-1`): how tests show a wrong role is refused.
        #[arg(long, default_value = crate::certs::OPERATOR)]
        as_holder: String,
    },
}

pub async fn run(args: DebugArgs) -> anyhow::Result<()> {
    match args.command {
        DebugCommand::PutObject {
            server,
            bucket,
            key,
            data,
            timeout_ms,
            data_dir,
            as_holder,
        } => {
            let identity = crate::certs::holder_identity(&data_dir, &as_holder)?;
            strata_util::rpc::install_identity(identity)?;
            let channel =
                crate::grpc_channel(&server, std::time::Duration::from_millis(timeout_ms))?;
            let messages = vec![
                PutObjectRequest {
                    part: Some(put_object_request::Part::Header(PutObjectHeader {
                        bucket,
                        key,
                        size_bytes: data.len() as i64,
                        ..Default::default()
                    })),
                },
                PutObjectRequest {
                    part: Some(put_object_request::Part::Chunk(data.into_bytes())),
                },
            ];
            let response = PartitionServerClient::new(channel)
                .put_object(futures::stream::iter(messages))
                .await
                .context("the partition server did not acknowledge the write")?;
            let meta = response.into_inner().meta.unwrap_or_default();
            println!(
                "{}",
                serde_json::json!({ "acknowledged": true, "etag": meta.etag })
            );
            Ok(())
        }
    }
}
