//! `impl s3s::S3 for Frontend`: each operation delegates to its family module. Every other
//! S3 operation keeps s3s's default, which answers 501 NotImplemented with an XML body (among
//! them UploadPartCopy and ListMultipartUploads).

use crate::frontend::Frontend;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};

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
        self.require_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.config.region.clone()),
            ..Default::default()
        }))
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
            return Err(s3_error!(NotImplemented, "POST Object is not implemented"));
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
        self.delete_object_op(&req.input).await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
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
        Ok(S3Response::new(
            self.list_objects_v2_op(&req.input, &requester).await?,
        ))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let requester = Frontend::requester(req.credentials.as_ref())?;
        Ok(S3Response::new(
            self.list_objects_v1_op(&req.input, &requester).await?,
        ))
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
}
