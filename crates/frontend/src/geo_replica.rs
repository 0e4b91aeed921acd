//! Geo-replica copies (issue 16): a rule whose destination is `arn:strata:s3:STAMP::NAME`,
//! NAME the bucket itself, replicates it into a copy of the bucket that STAMP holds under
//! the same name. The copy is a bucket record importing by `strata_types::GEO_REPLICA_MOVE_ID`
//! (CreateBucket with `geo_replica`), so that stamp never serves, lists or expires it, and
//! only replicated versions enter it (`ApplyReplica`); a bucket move to that stamp takes the
//! copy over, and its passes copy only what replication had not shipped yet.
//!
//! Invariant: the copy exists before the rule is stored (PutBucketReplication makes it first,
//! over the stamp's link: `replica_sink.rs`), and making it never replaces a record: a stamp
//! that serves the name, or holds it for a move, refuses, and the rule is not stored.

use prost::Message;
use s3s::S3Result;
use strata_proto::common::BucketMeta;
use strata_proto::partition::{CreateBucketRequest, ReplicaSourceRequest};
use strata_proto::replica_link::SOURCE_PATH;
use strata_types::{keys, GEO_REPLICA_MOVE_ID};

use crate::error::FrontendError;
use crate::frontend::Frontend;

/// Whether `record` is a geo-replica copy.
pub fn is_geo_copy(record: &BucketMeta) -> bool {
    record.importing && record.move_id == GEO_REPLICA_MOVE_ID
}

/// Why a geo-replica copy could not be made on this stamp.
#[derive(Debug)]
pub enum Refused {
    /// This stamp holds another record of the name (it serves it, or a move holds it).
    Held(String),
    /// A transient cause (owners or the location group unreachable).
    Unavailable(String),
}

impl Frontend {
    /// Makes sure `stamp` (another stamp) holds a geo-replica copy of `bucket`, asking it over
    /// its link; refused when that cannot be done now (the rule must not be stored before).
    pub(crate) async fn ensure_geo_copy(&self, stamp: &str, bucket: &str) -> S3Result<()> {
        let unavailable = |why: String| {
            FrontendError::Unavailable(format!(
                "making {bucket}'s geo-replica copy on {stamp}: {why}"
            ))
        };
        let forwarder = self
            .links
            .get()
            .and_then(std::sync::Weak::upgrade)
            .ok_or_else(|| unavailable("no links to other stamps".into()))?;
        let endpoints = forwarder.endpoints_of(stamp).await;
        let body = ReplicaSourceRequest {
            destination: bucket.to_string(),
            source: bucket.to_string(),
            geo_replica: true,
        }
        .encode_to_vec();
        match forwarder
            .call_link(&endpoints, http::Method::POST, SOURCE_PATH, body)
            .await
        {
            Ok((status, _)) if status == http::StatusCode::OK => Ok(()),
            Ok((status, text)) if status == http::StatusCode::CONFLICT => {
                Err(FrontendError::refused(
                    crate::error::Refusal::InvalidRequest,
                    format!(
                        "The destination stamp {stamp} holds another bucket record named {bucket}: {}",
                        String::from_utf8_lossy(&text)
                    ),
                )
                .into())
            }
            Ok((status, text)) => {
                Err(unavailable(format!("{status}: {}", String::from_utf8_lossy(&text))).into())
            }
            Err(err) => Err(unavailable(err).into()),
        }
    }

    /// Makes this stamp's geo-replica copy of `bucket`, or finds it made (a repeated
    /// PutBucketReplication). The bucket must be homed on another stamp.
    pub(crate) async fn make_geo_copy_here(&self, bucket: &str) -> Result<(), Refused> {
        if !crate::naming::is_valid_bucket_name(bucket) {
            return Err(Refused::Held(format!("{bucket:?} is no bucket name")));
        }
        let location = self
            .location
            .as_ref()
            .ok_or_else(|| Refused::Unavailable("this stamp has no location group".into()))?;
        let found = location
            .lookup_bucket(bucket)
            .await
            .map_err(|status| Refused::Unavailable(format!("location group: {status}")))?;
        match found.location {
            Some(home) if home.stamp != self.config.stamp => {}
            Some(_) => return Err(Refused::Held(format!("{bucket} is homed on this stamp"))),
            None => return Err(Refused::Held(format!("no bucket {bucket} exists"))),
        }
        let request = CreateBucketRequest {
            bucket: Some(BucketMeta {
                name: bucket.to_string(),
                created_ms: strata_util::now_ms(),
                // Its source, so its watermark is asked for as any destination's is.
                replication_sources: vec![bucket.to_string()],
                ..Default::default()
            }),
            geo_replica: true,
        };
        let response = self
            .router
            .call(&keys::bucket_key(bucket), false, |mut client, _| {
                let request = request.clone();
                async move { client.create_bucket(request).await.map(|r| r.into_inner()) }
            })
            .await;
        self.buckets.invalidate(bucket);
        let (response, _) = response.map_err(|err| Refused::Unavailable(err.to_string()))?;
        match response.bucket {
            _ if response.created => Ok(()),
            Some(existing) if is_geo_copy(&existing) => Ok(()),
            _ => Err(Refused::Held(format!(
                "this stamp holds a record of {bucket} that is no geo-replica copy"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_record_importing_by_the_geo_replica_mark_is_a_geo_copy() {
        let copy = BucketMeta {
            importing: true,
            move_id: GEO_REPLICA_MOVE_ID.into(),
            ..Default::default()
        };
        assert!(is_geo_copy(&copy));
        let moving = BucketMeta {
            move_id: "0a1b2c3d4e5f6a7b".into(),
            ..copy.clone()
        };
        assert!(!is_geo_copy(&moving), "a move's copy");
        let served = BucketMeta {
            importing: false,
            ..copy
        };
        assert!(!is_geo_copy(&served), "a served bucket");
    }
}
