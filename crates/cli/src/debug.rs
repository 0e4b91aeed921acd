//! `strata debug ...`: low-level calls for fault tests, bypassing the front-end.
//!
//! `strata debug put-object --server <addr> ...` sends one PutObject straight to a partition
//! server, whoever owns the key, so a test can prove that a fenced (paused, then resumed)
//! server acknowledges nothing. Exit status 0 means the server acknowledged the write.
//!
//! `strata debug rows --stamp S --bucket B` prints, as JSON, the bucket record one stamp
//! holds and the versions under it, whether or not that stamp serves the bucket: what a
//! geo-replica copy or a move's copy holds (operator identity; at most `--limit` rows).

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
    /// Print the record and the object versions one stamp holds of a bucket (JSON).
    Rows {
        /// The stamp (as `strata status` names it).
        #[arg(long)]
        stamp: String,
        #[arg(long)]
        bucket: String,
        /// Rows printed at most.
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=ROWS_PRINTED_MAX))]
        limit: u64,
        /// The data folder given to `strata up`.
        #[arg(long, default_value = "strata-data")]
        data_dir: std::path::PathBuf,
    },
}

/// Most rows `strata debug rows` prints.
const ROWS_PRINTED_MAX: u64 = 10_000_000;

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
        DebugCommand::Rows {
            stamp,
            bucket,
            limit,
            data_dir,
        } => {
            strata_util::rpc::install_identity(crate::certs::operator_identity(&data_dir)?)?;
            let layout = crate::namespace::load_layout(&data_dir)?;
            let stamp = crate::bucket_move::rows::Stamp::new(&layout, &stamp)?;
            println!("{}", rows(&stamp, &bucket, limit).await?);
            Ok(())
        }
    }
}

/// The bucket's record on `stamp` and its object versions (current and noncurrent), in key
/// order, at most `limit` of them.
async fn rows(
    stamp: &crate::bucket_move::rows::Stamp,
    bucket: &str,
    limit: u64,
) -> anyhow::Result<serde_json::Value> {
    use strata_proto::record::index_entry::Value as Row;
    let record = stamp.get_bucket(bucket).await?;
    let mut versions = Vec::new();
    let mut cursor = crate::bucket_move::rows::Cursor::default();
    let mut truncated = false;
    'pages: loop {
        let page = stamp.scan(bucket, &cursor).await?;
        for row in &page.rows {
            let (version, current) = match &row.value {
                Some(Row::Object(version)) => (version, true),
                Some(Row::Version(version)) => (version, false),
                _ => continue,
            };
            if versions.len() as u64 >= limit {
                truncated = true;
                break 'pages;
            }
            let key = strata_types::keys::decode_object_key(&row.key)
                .map(|(_, key)| key)
                .or_else(|| strata_types::keys::decode_version_key(&row.key).map(|(_, k, _)| k));
            versions.push(serde_json::json!({
                "key": key,
                "version_id": version.version_id,
                "current": current,
                "etag": version.etag,
                "size": version.size_bytes,
                "delete_marker": version.delete_marker,
                "replication_status": strata_proto::common::ReplicationStatus::try_from(
                    version.replication_status
                )
                .map_or("UNKNOWN", |status| status.as_str_name()),
            }));
        }
        match page.next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    Ok(serde_json::json!({
        "bucket": record.map(|r| serde_json::json!({
            "name": r.name,
            "importing": r.importing,
            "move_id": r.move_id,
            "moved_to": r.moved_to,
        })),
        "versions": versions,
        "truncated": truncated,
    }))
}
