"""CopyObject and UploadPartCopy between keys that different range partitions own, on a real
stamp whose one partition server holds every range (the case that answered 501 NotImplemented)
after a bucket of 3,000 keys was split by its key count: within a bucket and across buckets,
with S3's copy semantics (metadata and tagging directives, copy-source conditions, checksums,
version ids, the CopyObjectResult) and the bytes read back."""

import base64
import concurrent.futures
import hashlib
import os

import pytest
from botocore.exceptions import ClientError

from stamp import Stamp, wait_for
from test_partition_motion import owner_of

KEYS = 3_000
MIB = 1024 * 1024
COPY_ARGS = [
    "--partition-servers", "1",
    # Split by key count only: 3,000 keys make several ranges; nothing merges them back.
    "--split-keys-max", "700",
    "--split-requests-per-sec", "0",
    "--split-bytes-per-sec", "0",
    "--merge-requests-per-sec", "0",
    "--reshape-cooldown-ms", "500",
]


def key(i):
    return f"k/obj-{i:08d}"


@pytest.fixture(scope="module")
def split_stamp(tmp_path_factory):
    stamp = Stamp(tmp_path_factory.mktemp("copy-ranges") / "data", extra_args=COPY_ARGS).start()
    s3 = stamp.client(max_pool_connections=16)
    stamp.s3 = s3
    s3.create_bucket(Bucket="src")
    s3.create_bucket(Bucket="dst")
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: s3.put_object(Bucket="src", Key=key(i), Body=f"body {i}".encode()), range(KEYS)))
    yield stamp
    stamp.stop()


def range_id(stamp, bucket, k):
    return owner_of(stamp, bucket, k)[0]["range_id"]


def wait_apart(stamp, a, b):
    """Waits until the map puts the two (bucket, key) pairs in different ranges."""
    wait_for(lambda: range_id(stamp, *a) != range_id(stamp, *b), 120, f"{a} and {b} in different ranges", interval_s=0.5)


def test_copy_object_between_ranges_of_one_server(split_stamp):
    stamp, s3 = split_stamp, split_stamp.s3
    source, target = ("src", key(10)), ("src", "k/obj-00002999-copy")
    wait_apart(stamp, source, target)
    assert len({r["owner_addr"] for r in stamp.status()["ranges"]}) == 1

    # A larger source with metadata, tags and a checksum; then the 3,000-key layout's copy.
    body = os.urandom(3 * MIB + 5)
    sha256 = base64.b64encode(hashlib.sha256(body).digest()).decode()
    put = s3.put_object(
        Bucket="src", Key=key(10), Body=body, ContentType="text/x-src", Metadata={"colour": "blue"},
        Tagging="team=storage", ChecksumAlgorithm="SHA256",
    )
    copied = s3.copy_object(Bucket="src", Key=target[1], CopySource={"Bucket": "src", "Key": key(10)})
    result = copied["CopyObjectResult"]
    assert result["ETag"] == put["ETag"]
    assert result.get("ChecksumSHA256") == sha256
    got = s3.get_object(Bucket="src", Key=target[1], ChecksumMode="ENABLED")
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/x-src" and got["Metadata"] == {"colour": "blue"}
    assert got["ETag"] == put["ETag"] and got.get("ChecksumSHA256") == sha256
    assert s3.get_object_tagging(Bucket="src", Key=target[1])["TagSet"] == [{"Key": "team", "Value": "storage"}]

    # REPLACE directives take the request's metadata and tags.
    s3.copy_object(
        Bucket="src", Key=target[1], CopySource=f"src/{key(10)}", MetadataDirective="REPLACE",
        ContentType="text/x-new", Metadata={"shape": "round"}, TaggingDirective="REPLACE", Tagging="a=1",
    )
    head = s3.head_object(Bucket="src", Key=target[1])
    assert head["ContentType"] == "text/x-new" and head["Metadata"] == {"shape": "round"}
    assert s3.get_object_tagging(Bucket="src", Key=target[1])["TagSet"] == [{"Key": "a", "Value": "1"}]
    assert s3.get_object(Bucket="src", Key=target[1])["Body"].read() == body

    # Copy-source conditions hold across ranges too.
    with pytest.raises(ClientError) as err:
        s3.copy_object(Bucket="src", Key=target[1], CopySource=f"src/{key(10)}", CopySourceIfMatch='"nope"')
    assert err.value.response["Error"]["Code"] == "PreconditionFailed"
    s3.copy_object(Bucket="src", Key=target[1], CopySource=f"src/{key(20)}", CopySourceIfMatch=s3.head_object(Bucket="src", Key=key(20))["ETag"])
    assert s3.get_object(Bucket="src", Key=target[1])["Body"].read() == b"body 20"
    with pytest.raises(ClientError) as err:
        s3.copy_object(Bucket="src", Key=target[1], CopySource="src/k/missing")
    assert err.value.response["Error"]["Code"] == "NoSuchKey"


def test_copy_object_across_buckets_and_versions(split_stamp):
    stamp, s3 = split_stamp, split_stamp.s3
    s3.put_bucket_versioning(Bucket="dst", VersioningConfiguration={"Status": "Enabled"})
    first = s3.copy_object(Bucket="dst", Key="far/copy", CopySource=f"src/{key(2990)}")
    second = s3.copy_object(Bucket="dst", Key="far/copy", CopySource=f"src/{key(5)}")
    assert first["VersionId"] != second["VersionId"]
    assert s3.get_object(Bucket="dst", Key="far/copy")["Body"].read() == b"body 5"
    old = s3.get_object(Bucket="dst", Key="far/copy", VersionId=first["VersionId"])
    assert old["Body"].read() == b"body 2990"
    # Back into the source bucket from a named version, into a range far from the source.
    wait_apart(stamp, ("dst", "far/copy"), ("src", key(1500)))
    back = s3.copy_object(
        Bucket="src", Key=key(1500) + "-v", CopySource={"Bucket": "dst", "Key": "far/copy", "VersionId": first["VersionId"]}
    )
    assert back["CopySourceVersionId"] == first["VersionId"]
    assert s3.get_object(Bucket="src", Key=key(1500) + "-v")["Body"].read() == b"body 2990"


def test_upload_part_copy_between_ranges(split_stamp):
    stamp, s3 = split_stamp, split_stamp.s3
    body = os.urandom(6 * MIB + 11)
    s3.put_object(Bucket="src", Key=key(40), Body=body)
    target = key(2900) + "-assembled"
    wait_apart(stamp, ("src", key(40)), ("src", target))
    upload_id = s3.create_multipart_upload(Bucket="src", Key=target)["UploadId"]
    parts = []
    for number, (first, last) in enumerate([(0, 5 * MIB - 1), (5 * MIB, len(body) - 1)], start=1):
        copied = s3.upload_part_copy(
            Bucket="src", Key=target, UploadId=upload_id, PartNumber=number,
            CopySource=f"src/{key(40)}", CopySourceRange=f"bytes={first}-{last}",
        )
        etag = copied["CopyPartResult"]["ETag"]
        assert etag == '"%s"' % hashlib.md5(body[first : last + 1]).hexdigest()
        parts.append({"PartNumber": number, "ETag": etag})
    s3.complete_multipart_upload(Bucket="src", Key=target, UploadId=upload_id, MultipartUpload={"Parts": parts})
    assert s3.get_object(Bucket="src", Key=target)["Body"].read() == body
