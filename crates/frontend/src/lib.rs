//! S3 front-end: HTTP (s3s inside hyper), SigV4, routing to partition servers through a cached partition map.
