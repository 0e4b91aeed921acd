//! Strata's S3 front-end: a stateless HTTP server that speaks the S3 REST API (through s3s:
//! SigV4 header, presigned and aws-chunked auth, XML, path-style and virtual-hosted-style
//! addressing) and turns each request into gRPC calls on the partition server that owns the
//! key, found through a cached partition map.
//!
//! Invariants:
//! - object bytes are streamed: a request holds at most about three chunks
//!   (`strata_types::CHUNK_SIZE_BYTES`) of body in memory, in either direction;
//! - a PUT whose body fails (disconnect, checksum, signature) never ends its RPC cleanly, so
//!   nothing half-written becomes visible;
//! - every wait on another node is bounded: RPC timeouts, a retry budget per request (then 503),
//!   bounded channels;
//! - internal failures reach the client only as S3 error codes with short messages.
//!
//! Module map:
//! - [`server`]: `start` (s3s service in an axum app on [`connections`], request metrics),
//!   `build_s3_service`, `app`; [`unread_body`]: request bodies read to their end when
//!   answered early, so the answer is not lost to a reset connection.
//! - [`frontend`]: the `Frontend` state and the shared bucket / object-metadata lookups.
//! - [`s3`]: `impl s3s::S3 for Frontend`, delegating to the operation families:
//!   [`bucket`], [`object`] (put/get/head/delete), [`copy`], [`list`], [`delete_objects`],
//!   [`multipart`] (create, upload part, complete, abort, list parts), [`multipart_list`]
//!   (ListMultipartUploads), [`part_copy`] (UploadPartCopy), [`tagging`] (object and bucket
//!   tags), [`bucket_config`] (bucket tags and CORS rules in the bucket record),
//!   [`versioning`] (Put/GetBucketVersioning, ListObjectVersions), [`lifecycle`]
//!   (Put/Get/DeleteBucketLifecycleConfiguration), [`replication`]
//!   (Put/Get/DeleteBucketReplication).
//! - [`marker_walk`]: the one walk of the listings paged by a key and a second marker
//!   (ListObjectVersions, ListMultipartUploads) over the ranges of a bucket, each call sent to
//!   its owner (`walk_owners`).
//! - [`cors`]: preflight OPTIONS and Access-Control-* answers from a bucket's CORS rules.
//! - [`put`] / [`get_stream`]: the streaming bodies of PUT (and UploadPart) and GET.
//! - [`checksum`]: `x-amz-checksum-*` as headers or aws-chunked trailers, and how stored
//!   checksums are shown.
//! - [`conditions`]: If-* preconditions and Range; [`naming`]: bucket names; [`meta`]: header
//!   conversions.
//! - [`routing`]: partition map cache, client pool, retry with backoff.
//! - [`perimeter`]: refusals s3s would not make (SigV2 unless enabled, and then only fresh;
//!   presigned URLs over 7 days; headers promising encryption, object lock or ACLs);
//!   [`connections`]: the listener's connection cap, header-read and idle timeouts (and the
//!   TLS handshake when [`s3_tls`] gives the endpoint a certificate).
//! - [`forward`]: requests for a bucket homed on another stamp, forwarded there as they came
//!   and answered from there (the bucket -> stamp map cached with a short bound), over
//!   [`link`]: the front-ends' mutual-TLS listener and connector between stamps;
//!   [`replica_sink`]: where other stamps' partition servers deliver replicated versions.
//! - [`replicated_through`]: a destination bucket's `x-strata-replicated-through`;
//!   [`geo_replica`]: a bucket's geo-replica copy on another stamp, made before its rule is
//!   stored.
//! - [`replication_state`]: GetReplicationState asked of the owners of a bucket's ranges and
//!   the check that their reports cover its whole key span (by range and epoch), shared by
//!   [`replicated_through`] and the CLI's `strata replication status` and `strata status`.
//! - [`move_fence`]: a bucket move's fence that outlived its mover, ended through the
//!   location group (abort, or the late completion applied).
//! - [`move_serve`]: a completed move's copy its mover did not serve, served by the target's
//!   front-ends once the source's fence is past.
//! - [`placement`]: a CreateBucket naming another region's LocationConstraint, forwarded to an
//!   open stamp of that region.
//! - [`stamp_report`]: this front-end's reports of its stamp (name, region, endpoint) to the
//!   location group, which registers a stamp on its first report.
//! - [`auth`]: key auth, anonymous denial (then the in-flight slot), virtual-host parsing; [`error`]: the error enum,
//!   the `Refusal` kinds handlers refuse requests with, and the one mapping to S3 codes,
//!   statuses and headers; [`metrics`]; [`config`].
//!
//! Tests: unit tests sit beside their modules (`error_tests.rs`: every refusal and service
//! answer as the S3 error it becomes; `list_tests.rs`: the listing core over in-memory
//! ranges). tests/e2e is one binary of signed HTTP through the real service stack: AWS's
//! published SigV4 examples over a stub S3, and every S3 operation family against a real stamp
//! started in process by tests/common (stream manager and 3 extent nodes, partition manager,
//! partition servers, location service), including range moves and an owner dying mid-call.

pub mod auth;
pub mod bucket;
pub mod bucket_cache;
pub mod bucket_config;
pub mod checksum;
pub mod conditions;
pub mod config;
pub mod connections;
pub mod copy;
pub mod cors;
pub mod delete_objects;
pub mod error;
pub mod forward;
pub mod frontend;
pub mod geo_replica;
pub mod get_stream;
pub mod lifecycle;
pub mod link;
pub mod list;
pub mod marker_walk;
pub mod meta;
pub mod metrics;
pub mod move_fence;
pub mod move_serve;
pub mod multipart;
pub mod multipart_list;
pub mod naming;
pub mod object;
pub mod part_copy;
pub mod perimeter;
pub mod placement;
pub mod put;
pub mod replica_sink;
pub mod replicated_through;
pub mod replication;
pub mod replication_state;
pub mod routing;
pub mod s3;
pub mod s3_tls;
pub mod server;
pub mod stamp_report;
pub mod stretches;
pub mod tagging;
pub mod unread_body;
pub mod versioning;

pub use config::{FrontendConfig, FrontendOptions};
pub use error::FrontendError;
pub use frontend::Frontend;
pub use server::{app, build_s3_service, health_check, start, Running};
