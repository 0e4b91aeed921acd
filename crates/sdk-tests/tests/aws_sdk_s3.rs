//! aws-sdk-s3 (with its default request checksums and response checksum validation) against a
//! real stamp: buckets, small and streamed 20 MiB PUTs, ranged and checksum-validated GETs,
//! a multipart upload with per-part CRC32 checksums, paginated listing, conditional writes,
//! versioning and deletes. Every object's bytes are compared with what was sent.

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload,
    CompletedPart, VersioningConfiguration,
};
use aws_sdk_s3::Client;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ACCESS_KEY: &str = "STRATASDKTESTKEY0001";
const SECRET_KEY: &str = "strata-sdk-test-secret-0123456789abcdef";
const MIB: usize = 1024 * 1024;

/// A `strata up` process; SIGINT on drop stops every node cleanly.
struct Stamp {
    child: Child,
    port: u16,
    _data: tempfile::TempDir,
}

impl Drop for Stamp {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
    }
}

fn bin_dir() -> PathBuf {
    match std::env::var_os("STRATA_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release"),
    }
}

/// A port below the ephemeral range that is free right now.
fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = 20_000 + (rand::random::<u16>() % 10_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

fn start_stamp() -> Stamp {
    let strata = bin_dir().join("strata");
    assert!(
        strata.exists(),
        "{} is missing: run `cargo build --release --workspace --bins` first (tests/run does)",
        strata.display()
    );
    let data = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let log_path = data.path().join("strata-up.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let child = Command::new(&strata)
        .args(["up", "--data-dir"])
        .arg(data.path())
        .args(["--port", &port.to_string()])
        .env("STRATA_ACCESS_KEY", ACCESS_KEY)
        .env("STRATA_SECRET_KEY", SECRET_KEY)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("strata up starts");
    let mut stamp = Stamp {
        child,
        port,
        _data: data,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&log_path) {
            let _ = file.read_to_string(&mut text);
        }
        if text.contains("Strata stamp is up.") {
            return stamp;
        }
        if let Ok(Some(status)) = stamp.child.try_wait() {
            panic!("strata up exited with {status}:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "the stamp did not come up:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn client(port: u16) -> Client {
    let http = aws_smithy_http_client::Builder::new().build_http();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .force_path_style(true)
        .http_client(http)
        .build();
    Client::from_conf(config)
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut data);
    data
}

async fn read_all(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("get_object");
    object
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_sdk_s3_round_trips() {
    let stamp = start_stamp();
    let s3 = client(stamp.port);
    let bucket = "rust-sdk";
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("create_bucket");

    // A small object from memory, with the SDK's default checksum.
    let small = random_bytes(100_000);
    s3.put_object()
        .bucket(bucket)
        .key("small.bin")
        .body(ByteStream::from(small.clone()))
        .send()
        .await
        .expect("put small");
    assert_eq!(read_all(&s3, bucket, "small.bin").await, small);

    // A 20 MiB file streamed from disk, with a CRC32C checksum the SDK computes as it sends.
    let dir = tempfile::tempdir().expect("temp dir");
    let big = random_bytes(20 * MIB + 5);
    let path = dir.path().join("big.bin");
    std::fs::write(&path, &big).expect("write big");
    let put = s3
        .put_object()
        .bucket(bucket)
        .key("dir/big.bin")
        .checksum_algorithm(ChecksumAlgorithm::Crc32C)
        .body(ByteStream::from_path(&path).await.expect("file body"))
        .send()
        .await
        .expect("put big");
    assert!(put.checksum_crc32_c().is_some());
    let back = read_all(&s3, bucket, "dir/big.bin").await;
    assert_eq!(Sha256::digest(&back), Sha256::digest(&big));

    let ranged = s3
        .get_object()
        .bucket(bucket)
        .key("dir/big.bin")
        .range("bytes=1000-1999")
        .send()
        .await
        .expect("ranged get");
    let ranged = ranged.body.collect().await.expect("body").into_bytes();
    assert_eq!(&ranged[..], &big[1000..2000]);

    // Multipart with CRC32 part checksums listed in the completion.
    let parts_data = [
        random_bytes(5 * MIB),
        random_bytes(5 * MIB),
        random_bytes(MIB + 3),
    ];
    let upload = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key("mp.bin")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .expect("create upload");
    let upload_id = upload.upload_id().expect("upload id").to_string();
    let mut completed = Vec::new();
    for (index, data) in parts_data.iter().enumerate() {
        let number = i32::try_from(index + 1).expect("part number");
        let part = s3
            .upload_part()
            .bucket(bucket)
            .key("mp.bin")
            .upload_id(&upload_id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .expect("upload part");
        completed.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(part.e_tag().expect("etag"))
                .checksum_crc32(part.checksum_crc32().expect("part checksum"))
                .build(),
        );
    }
    let done = s3
        .complete_multipart_upload()
        .bucket(bucket)
        .key("mp.bin")
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .expect("complete");
    assert!(done.e_tag().expect("etag").ends_with("-3\""));
    assert_eq!(read_all(&s3, bucket, "mp.bin").await, parts_data.concat());

    // Listing with the paginator, one key per page.
    let pages: Vec<_> = s3
        .list_objects_v2()
        .bucket(bucket)
        .max_keys(1)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("list pages");
    let keys: Vec<String> = pages
        .iter()
        .flat_map(|page| page.contents())
        .filter_map(|object| object.key().map(str::to_string))
        .collect();
    assert_eq!(keys, ["dir/big.bin", "mp.bin", "small.bin"]);

    // A conditional create refuses to overwrite.
    let refused = s3
        .put_object()
        .bucket(bucket)
        .key("small.bin")
        .if_none_match("*")
        .body(ByteStream::from_static(b"no"))
        .send()
        .await;
    assert!(refused.is_err());
    assert_eq!(read_all(&s3, bucket, "small.bin").await, small);

    // Versioning: two versions of one key, both readable by id.
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("enable versioning");
    let first = s3
        .put_object()
        .bucket(bucket)
        .key("v")
        .body(ByteStream::from_static(b"one"))
        .send()
        .await
        .expect("put v1");
    s3.put_object()
        .bucket(bucket)
        .key("v")
        .body(ByteStream::from_static(b"two"))
        .send()
        .await
        .expect("put v2");
    let old = s3
        .get_object()
        .bucket(bucket)
        .key("v")
        .version_id(first.version_id().expect("version id"))
        .send()
        .await
        .expect("get v1");
    assert_eq!(
        &old.body.collect().await.expect("body").into_bytes()[..],
        b"one"
    );
    assert_eq!(read_all(&s3, bucket, "v").await, b"two");

    s3.delete_object()
        .bucket(bucket)
        .key("small.bin")
        .send()
        .await
        .expect("delete");
    let gone = s3
        .head_object()
        .bucket(bucket)
        .key("small.bin")
        .send()
        .await;
    assert!(gone.is_err());
}
