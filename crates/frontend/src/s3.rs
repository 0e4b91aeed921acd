//! `impl s3s::S3 for Frontend`: each operation delegates to its family module. Every other
//! S3 operation keeps s3s's default, which answers 501 NotImplemented with an XML body.

use crate::error::{FrontendError, Refusal};
use crate::frontend::Frontend;
use crate::{bucket_config, lifecycle, replication, tagging};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, S3};

#[async_trait::async_trait]
impl S3 for Frontend {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let requester = Frontend::requester(req.credentials.as_ref())?;
        Ok(S3Response::new(self.list_buckets_for(&requester).await?))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let requester = Frontend::requester(req.credentials.as_ref())?;
        Ok(S3Response::new(
            self.create_bucket_as(&req.input, &requester).await?,
        ))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let bucket = self.require_bucket(&req.input.bucket).await?;
        let through_ms = self.replicated_through_ms(&bucket).await;
        let mut response = S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.config.region.clone()),
            ..Default::default()
        });
        crate::replicated_through::add_header(&mut response.headers, through_ms);
        Ok(response)
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        Ok(S3Response::new(
            self.bucket_location(&req.input.bucket).await?,
        ))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.delete_bucket_named(&req.input.bucket).await?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        if req.method == http::Method::POST {
            // Browser-form uploads (POST Object) are not part of this front-end.
            return Err(FrontendError::refused(
                Refusal::NotImplemented,
                "POST Object is not implemented",
            )
            .into());
        }
        Ok(S3Response::new(
            self.put_object_op(req.input, &req.headers, req.trailing_headers.as_ref())
                .await?,
        ))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        Ok(S3Response::new(self.get_object_op(&req.input).await?))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        Ok(S3Response::new(self.head_object_op(&req.input).await?))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        Ok(S3Response::new(self.delete_object_op(&req.input).await?))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        Ok(S3Response::new(self.delete_objects_op(&req.input).await?))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        Ok(S3Response::new(self.copy_object_op(&req.input).await?))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let requester = Frontend::requester(req.credentials.as_ref())?;
        // Before the listing is read: T covers what the listing then shows.
        let through_ms = self.listed_through_ms(&req.input.bucket).await;
        let mut response = S3Response::new(self.list_objects_v2_op(&req.input, &requester).await?);
        crate::replicated_through::add_header(&mut response.headers, through_ms);
        Ok(response)
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let requester = Frontend::requester(req.credentials.as_ref())?;
        let through_ms = self.listed_through_ms(&req.input.bucket).await;
        let mut response = S3Response::new(self.list_objects_v1_op(&req.input, &requester).await?);
        crate::replicated_through::add_header(&mut response.headers, through_ms);
        Ok(response)
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        Ok(S3Response::new(
            self.create_multipart_upload_op(&req.input).await?,
        ))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        Ok(S3Response::new(
            self.upload_part_op(req.input, &req.headers, req.trailing_headers.as_ref())
                .await?,
        ))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let location = crate::multipart::object_location(&req.headers, &req.uri);
        Ok(S3Response::new(
            self.complete_multipart_upload_op(&req.input, location)
                .await?,
        ))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.abort_multipart_upload_op(&req.input).await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let requester = Frontend::requester(req.credentials.as_ref())?;
        Ok(S3Response::new(
            self.list_parts_op(&req.input, &requester).await?,
        ))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        Ok(S3Response::new(self.upload_part_copy_op(&req.input).await?))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let requester = Frontend::requester(req.credentials.as_ref())?;
        Ok(S3Response::new(
            self.list_multipart_uploads_op(&req.input, &requester)
                .await?,
        ))
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let input = &req.input;
        let tags = tagging::tags_of_xml(&input.tagging, tagging::OBJECT_TAGS_MAX)?;
        self.put_object_tags(&input.bucket, &input.key, input.version_id.as_deref(), tags)
            .await?;
        Ok(S3Response::new(PutObjectTaggingOutput {
            version_id: input.version_id.clone(),
        }))
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let input = &req.input;
        let version_id = crate::object::requested_version(input.version_id.as_deref())?;
        let tags = self
            .object_tags(&input.bucket, &input.key, version_id)
            .await?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: tagging::tag_set(&tags),
            version_id: input.version_id.clone(),
        }))
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let input = &req.input;
        self.put_object_tags(
            &input.bucket,
            &input.key,
            input.version_id.as_deref(),
            Default::default(),
        )
        .await?;
        Ok(S3Response::with_status(
            DeleteObjectTaggingOutput {
                version_id: input.version_id.clone(),
            },
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let tags = tagging::tags_of_xml(&req.input.tagging, tagging::BUCKET_TAGS_MAX)?;
        self.put_bucket_tags(&req.input.bucket, tags).await?;
        Ok(S3Response::new(PutBucketTaggingOutput {}))
    }

    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let bucket = self.require_bucket(&req.input.bucket).await?;
        if bucket.tags.is_empty() {
            return Err(
                FrontendError::refused(Refusal::NoBucketTags, "The TagSet does not exist").into(),
            );
        }
        Ok(S3Response::new(GetBucketTaggingOutput {
            tag_set: tagging::tag_set(&bucket.tags),
        }))
    }

    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        self.put_bucket_tags(&req.input.bucket, Default::default())
            .await?;
        Ok(S3Response::with_status(
            DeleteBucketTaggingOutput {},
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let rules = bucket_config::cors_rules_of(&req.input.cors_configuration)?;
        self.put_bucket_cors_rules(&req.input.bucket, rules).await?;
        Ok(S3Response::new(PutBucketCorsOutput {}))
    }

    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let bucket = self.require_bucket(&req.input.bucket).await?;
        if bucket.cors_rules.is_empty() {
            return Err(FrontendError::refused(
                Refusal::NoCorsRules,
                "The CORS configuration does not exist",
            )
            .into());
        }
        Ok(S3Response::new(GetBucketCorsOutput {
            cors_rules: Some(bucket_config::cors_xml(&bucket.cors_rules)),
        }))
    }

    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        self.put_bucket_cors_rules(&req.input.bucket, Vec::new())
            .await?;
        Ok(S3Response::with_status(
            DeleteBucketCorsOutput {},
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        self.put_bucket_versioning_op(&req.input).await?;
        Ok(S3Response::new(PutBucketVersioningOutput {}))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        Ok(S3Response::new(
            self.get_bucket_versioning_op(&req.input.bucket).await?,
        ))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let requester = Frontend::requester(req.credentials.as_ref())?;
        Ok(S3Response::new(
            self.list_object_versions_op(&req.input, &requester).await?,
        ))
    }

    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        let rules = lifecycle::stored_rules(req.input.lifecycle_configuration.as_ref())?;
        self.put_lifecycle_rules(&req.input.bucket, rules).await?;
        Ok(S3Response::new(
            PutBucketLifecycleConfigurationOutput::default(),
        ))
    }

    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        let bucket = self.require_bucket(&req.input.bucket).await?;
        if bucket.lifecycle_rules.is_empty() {
            return Err(FrontendError::refused(
                Refusal::NoLifecycleRules,
                "The lifecycle configuration does not exist",
            )
            .into());
        }
        Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
            rules: Some(lifecycle::rules_xml(&bucket.lifecycle_rules)),
            ..Default::default()
        }))
    }

    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        self.put_lifecycle_rules(&req.input.bucket, Vec::new())
            .await?;
        Ok(S3Response::with_status(
            DeleteBucketLifecycleOutput {},
            http::StatusCode::NO_CONTENT,
        ))
    }

    async fn put_bucket_replication(
        &self,
        req: S3Request<PutBucketReplicationInput>,
    ) -> S3Result<S3Response<PutBucketReplicationOutput>> {
        let input = &req.input;
        self.put_replication(&input.bucket, &input.replication_configuration)
            .await?;
        Ok(S3Response::new(PutBucketReplicationOutput::default()))
    }

    async fn get_bucket_replication(
        &self,
        req: S3Request<GetBucketReplicationInput>,
    ) -> S3Result<S3Response<GetBucketReplicationOutput>> {
        let bucket = self.require_bucket(&req.input.bucket).await?;
        let config = replication::configured(&bucket)?;
        Ok(S3Response::new(GetBucketReplicationOutput {
            replication_configuration: Some(replication::config_xml(config)),
        }))
    }

    async fn delete_bucket_replication(
        &self,
        req: S3Request<DeleteBucketReplicationInput>,
    ) -> S3Result<S3Response<DeleteBucketReplicationOutput>> {
        self.store_replication(&req.input.bucket, Default::default())
            .await?;
        Ok(S3Response::with_status(
            DeleteBucketReplicationOutput {},
            http::StatusCode::NO_CONTENT,
        ))
    }
}
