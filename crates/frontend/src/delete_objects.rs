//! DeleteObjects (multi-object delete): at most 1000 keys, per-key results, quiet mode.

use crate::frontend::{malformed_xml, Frontend};
use futures::StreamExt;
use s3s::dto::{DeleteObjectsInput, DeleteObjectsOutput, DeletedObject, Error as KeyError};
use s3s::{S3Error, S3Result};
use strata_proto::partition::DeleteObjectResponse;

pub use strata_types::limits::DELETE_KEYS_MAX;
/// Keys deleted concurrently within one request.
const DELETE_CONCURRENCY: usize = 16;

impl Frontend {
    pub(crate) async fn delete_objects_op(
        &self,
        input: &DeleteObjectsInput,
    ) -> S3Result<DeleteObjectsOutput> {
        let objects = &input.delete.objects;
        if objects.is_empty() || objects.len() > DELETE_KEYS_MAX {
            return Err(malformed_xml());
        }
        let bucket = self.require_bucket(&input.bucket).await?;
        let quiet = input.delete.quiet.unwrap_or(false);
        let targets: Vec<(String, Option<String>)> = objects
            .iter()
            .map(|o| (o.key.clone(), o.version_id.clone()))
            .collect();
        let bucket = &bucket;
        type Outcome = (
            String,
            Option<String>,
            Result<DeleteObjectResponse, S3Error>,
        );
        let results: Vec<Outcome> = futures::stream::iter(targets)
            .map(|(key, version_id)| async move {
                let result = match crate::object::requested_version(version_id.as_deref()) {
                    Ok(version) => self
                        .delete_key(bucket, &key, version)
                        .await
                        .map_err(S3Error::from),
                    Err(err) => Err(err),
                };
                (key, version_id, result)
            })
            .buffered(DELETE_CONCURRENCY)
            .collect()
            .await;

        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for (key, requested, result) in results {
            match result {
                Ok(_) if quiet => {}
                Ok(done) => {
                    let shown = (!done.version_id.is_empty()).then_some(done.version_id);
                    // A new delete marker is reported as such; a removed version by its id.
                    let (version_id, marker_version) = if requested.is_none() && done.delete_marker
                    {
                        (None, shown)
                    } else {
                        (requested.or(shown), None)
                    };
                    deleted.push(DeletedObject {
                        key: Some(key),
                        version_id,
                        delete_marker: done.delete_marker.then_some(true),
                        delete_marker_version_id: marker_version,
                    })
                }
                Err(err) => {
                    tracing::info!(%key, code = err.code().as_str(), "DeleteObjects: key not deleted");
                    errors.push(KeyError {
                        code: Some(err.code().as_str().to_string()),
                        key: Some(key),
                        message: Some(err.message().unwrap_or("").to_string()),
                        version_id: requested,
                    });
                }
            }
        }
        Ok(DeleteObjectsOutput {
            deleted: (!deleted.is_empty()).then_some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        })
    }
}
