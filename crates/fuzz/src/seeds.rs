//! The seed inputs of every target, as code: `cargo test -p strata-fuzz -- --ignored
//! write_seed_corpus` writes them to `fuzz/corpus/<target>/seed-*` (cargo-fuzz runs add their
//! own finds beside them). Each seed is a well-formed input of one shape the target knows.

use bytes::Bytes;
use strata_partition::format::{encode_checkpoint, encode_log_entry, FRAGMENT_VERSION};
use strata_partition::records::{
    checkpoint_record, index_entry, mutation, BucketRecord, CheckpointBatch, CheckpointBegin,
    CheckpointEnd, CheckpointRecord, ChunkLocation, IndexEntry, LogEntry, Mutation, ObjectRecord,
    ReplicationCursors,
};
use strata_stream::extent::format::{encode_file_header, encode_record, encode_seal};
use strata_types::ExtentId;

/// (file name, bytes) of a target's seeds.
pub type Seeds = Vec<(String, Vec<u8>)>;

pub fn seeds(target: &str) -> Seeds {
    match target {
        "sigv4" => sigv4(),
        "s3_xml" => s3_xml(),
        "extent_records" => extent_records(),
        "log_records" => log_records(),
        _ => Vec::new(),
    }
}

fn named(items: Vec<(&str, Vec<u8>)>) -> Seeds {
    items
        .into_iter()
        .map(|(name, bytes)| (format!("seed-{name}"), bytes))
        .collect()
}

const ZERO_SIGNATURE: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn signed_chunk(data: &str) -> String {
    format!(
        "{:x};chunk-signature={ZERO_SIGNATURE}\r\n{data}\r\n",
        data.len()
    )
}

fn sigv4() -> Seeds {
    let chunked = format!(
        "{}{}{}\r\n",
        signed_chunk("hello"),
        signed_chunk(" world"),
        signed_chunk("").trim_end_matches("\r\n")
    );
    let delete = "<Delete><Object><Key>a</Key></Object><Object><Key>b</Key><VersionId>v1</VersionId></Object><Quiet>true</Quiet></Delete>";
    let items = vec![
        ("get", "header\nGET /bucket/key\nrange: bytes=0-9\n\n".to_string()),
        (
            "put",
            "header\nPUT /bucket/some/key.txt\ncontent-type: text/plain\nx-amz-tagging: a=b&c=d\nx-amz-checksum-crc32: DUoRhQ==\nx-amz-meta-color: blue\n\nhello world".to_string(),
        ),
        (
            "put-signed-chunks",
            format!("header\nPUT /bucket/key\nx-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD\ncontent-encoding: aws-chunked\nx-amz-decoded-content-length: 11\n\n{chunked}"),
        ),
        (
            "put-trailer",
            "header\nPUT /bucket/key\nx-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\ncontent-encoding: aws-chunked\nx-amz-decoded-content-length: 11\nx-amz-trailer: x-amz-checksum-crc32\nx-amz-sdk-checksum-algorithm: CRC32\n\nb\r\nhello world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n".to_string(),
        ),
        (
            "upload-part-signed-chunks",
            format!("header\nPUT /bucket/key?partNumber=2&uploadId=abc\nx-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD\ncontent-encoding: aws-chunked\nx-amz-decoded-content-length: 11\n\n{chunked}"),
        ),
        ("presign-get", "presign\nGET /bucket/key?versionId=v1\n\n".to_string()),
        (
            "virtual-host",
            "header\nGET /key?list-type=2&prefix=a%2Fb&max-keys=10\nhost: bucket.localhost:9000\n\n".to_string(),
        ),
        ("delete-objects", format!("header\nPOST /bucket?delete\ncontent-type: application/xml\n\n{delete}")),
        (
            "raw-authorization",
            "raw\nGET /bucket/key\nx-amz-date: 20250101T000000Z\nx-amz-content-sha256: UNSIGNED-PAYLOAD\nauthorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20250101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=8f0e1ac4a0a8f0d4c6c3a1b6b16bf8b3a0f1f7d1c9f0e5a2f3b4c5d6e7f8a9b0\n\n".to_string(),
        ),
        (
            "raw-presigned",
            format!("raw\nGET /bucket/key?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20250101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20250101T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature={ZERO_SIGNATURE}\n\n"),
        ),
        (
            "raw-sigv2",
            "raw\nGET /bucket/key\ndate: Wed, 01 Jan 2025 00:00:00 GMT\nauthorization: AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=\n\n".to_string(),
        ),
    ];
    named(
        items
            .into_iter()
            .map(|(name, text)| (name, text.into_bytes()))
            .collect(),
    )
}

fn s3_xml() -> Seeds {
    let bodies = [
        ("complete", "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"a54357aff0632cce46d942af68356b38\"</ETag><ChecksumCRC32>DUoRhQ==</ChecksumCRC32></Part><Part><PartNumber>2</PartNumber><ETag>\"0c78aef83f66abc1fa1e8477f296d394\"</ETag></Part></CompleteMultipartUpload>"),
        ("delete", "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Object><Key>a&amp;b</Key></Object><Object><Key>c</Key><VersionId>3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY</VersionId></Object><Quiet>false</Quiet></Delete>"),
        ("cors", "<CORSConfiguration><CORSRule><ID>web</ID><AllowedOrigin>https://*.example.com</AllowedOrigin><AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod><AllowedHeader>*</AllowedHeader><ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>3000</MaxAgeSeconds></CORSRule></CORSConfiguration>"),
        ("lifecycle", "<LifecycleConfiguration><Rule><ID>old logs</ID><Filter><And><Prefix>logs/</Prefix><Tag><Key>tier</Key><Value>cold</Value></Tag><ObjectSizeGreaterThan>1024</ObjectSizeGreaterThan></And></Filter><Status>Enabled</Status><Expiration><Days>30</Days></Expiration><NoncurrentVersionExpiration><NoncurrentDays>7</NoncurrentDays></NoncurrentVersionExpiration><AbortIncompleteMultipartUpload><DaysAfterInitiation>2</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule><Rule><ID>tmp</ID><Filter><Prefix>tmp/</Prefix></Filter><Status>Disabled</Status><Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration></Rule></LifecycleConfiguration>"),
        ("tagging", "<Tagging><TagSet><Tag><Key>project</Key><Value>strata</Value></Tag><Tag><Key>env</Key><Value></Value></Tag></TagSet></Tagging>"),
        ("versioning", "<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>Enabled</Status><MfaDelete>Disabled</MfaDelete></VersioningConfiguration>"),
        ("create-bucket", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CreateBucketConfiguration><LocationConstraint>us-west-2</LocationConstraint></CreateBucketConfiguration>"),
    ];
    named(
        bodies
            .iter()
            .enumerate()
            .map(|(selector, (name, xml))| {
                let mut bytes = vec![selector as u8];
                bytes.extend_from_slice(xml.as_bytes());
                (*name, bytes)
            })
            .collect(),
    )
}

fn extent_records() -> Seeds {
    let records: Vec<u8> = [b"first record".as_slice(), b"", &[0xab; 300], b"last"]
        .iter()
        .flat_map(|payload| encode_record(payload).expect("fits"))
        .collect();
    let mut whole_file = encode_file_header(ExtentId::new(7)).to_vec();
    whole_file.extend_from_slice(&records);
    let mut torn = records.clone();
    torn.truncate(records.len() - 2);
    let sealed_at = (24 + encode_record(b"first record").expect("fits").len()) as u64;
    let with = |flags: u8, extra: &[u8], body: &[u8]| {
        let mut bytes = vec![flags];
        bytes.extend_from_slice(extra);
        bytes.extend_from_slice(body);
        bytes
    };
    named(vec![
        ("records", with(1, &[], &records)),
        ("records-fix-crc", with(3, &[], &records)),
        ("torn-tail", with(1, &[], &torn)),
        ("sealed", with(1 | 4, &sealed_at.to_le_bytes(), &records)),
        (
            "raw-seal",
            with(1 | 4 | 8, &encode_seal(ExtentId::new(7), 24), &records),
        ),
        ("whole-file", with(0, &[], &whole_file)),
    ])
}

fn framed(flags: u8, records: &[Bytes]) -> Vec<u8> {
    let mut out = vec![flags];
    for record in records {
        out.extend_from_slice(&(record.len() as u16).to_le_bytes());
        out.extend_from_slice(record);
    }
    out
}

/// `whole` cut into fragments of `step` bytes (the layout of partition's format.rs).
fn fragments(whole: &[u8], step: usize, id: u64) -> Vec<Bytes> {
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, whole) as u32;
    let count = whole.len().div_ceil(step) as u32;
    whole
        .chunks(step)
        .enumerate()
        .map(|(index, bytes)| {
            let mut record = vec![FRAGMENT_VERSION];
            record.extend_from_slice(&id.to_le_bytes());
            record.extend_from_slice(&(index as u32).to_le_bytes());
            record.extend_from_slice(&count.to_le_bytes());
            record.extend_from_slice(&(whole.len() as u64).to_le_bytes());
            record.extend_from_slice(&crc.to_le_bytes());
            record.extend_from_slice(bytes);
            record.into()
        })
        .collect()
}

fn log_records() -> Seeds {
    let object = ObjectRecord {
        chunks: vec![ChunkLocation {
            extent_id: 3,
            offset: 24,
            length: 1 << 20,
        }],
        ..Default::default()
    };
    let entry = LogEntry {
        sequence: 42,
        mutations: vec![
            Mutation {
                key: b"obkt\0key".to_vec(),
                value: Some(mutation::Value::Object(object.clone())),
            },
            Mutation {
                key: b"obkt\0gone".to_vec(),
                value: Some(mutation::Value::Tombstone(true)),
            },
            Mutation {
                key: b"bbkt".to_vec(),
                value: Some(mutation::Value::Bucket(BucketRecord::default())),
            },
        ],
        committed_ms: 1_764_892_800_000,
        origin: 1,
        replication: Some(ReplicationCursors {
            floor_ms: 1_764_892_700_000,
            lagging: [("slow".to_string(), 1_764_892_600_000)].into(),
        }),
    };
    let log = encode_log_entry(&entry);
    let checkpoint = [
        CheckpointRecord {
            part: Some(checkpoint_record::Part::Begin(CheckpointBegin {
                checkpoint_id: 9,
                sequence: 42,
                committed_ms: 1_764_892_800_000,
                low: b"a".to_vec(),
                high: b"z".to_vec(),
                ..Default::default()
            })),
        },
        CheckpointRecord {
            part: Some(checkpoint_record::Part::Batch(CheckpointBatch {
                checkpoint_id: 9,
                entries: vec![IndexEntry {
                    key: b"obkt\0key".to_vec(),
                    value: Some(index_entry::Value::Object(object)),
                }],
                ..Default::default()
            })),
        },
        CheckpointRecord {
            part: Some(checkpoint_record::Part::End(CheckpointEnd {
                checkpoint_id: 9,
                entries: 1,
            })),
        },
    ]
    .iter()
    .map(encode_checkpoint)
    .collect::<Vec<_>>();
    let pieces = fragments(&log, 40, 77);
    let mut retried = pieces[..2].to_vec();
    retried.push(pieces[1].clone());
    retried.extend(fragments(&log, 40, 78));
    named(vec![
        ("log-entry", framed(0, std::slice::from_ref(&log))),
        ("checkpoint", framed(0, &checkpoint)),
        ("fragments", framed(0, &pieces)),
        ("fragments-fix", framed(1, &pieces)),
        ("fragments-retried", framed(1, &retried)),
    ])
}
