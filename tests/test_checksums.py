"""S3 additional checksums and streaming signatures, as current SDKs send them by default:
`x-amz-checksum-*` as a header (boto3 over HTTP) or as an aws-chunked trailer (SDKs over HTTPS),
every chunk signature of STREAMING-AWS4-HMAC-SHA256-PAYLOAD checked, checksums verified on upload
(BadDigest and nothing stored on a mismatch), stored, and returned with x-amz-checksum-mode, and
composite / full-object checksums of multipart uploads."""

import base64
import os
import zlib

import pytest
from botocore.exceptions import ClientError

from sigv4_chunked import checksum_b64, chunked_put
from stamp import ACCESS_KEY, SECRET_KEY

MIB = 1024 * 1024


def missing(s3, bucket, key):
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=bucket, Key=key)
    return err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def stored_checksums(s3, bucket, key):
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    return {k: v for k, v in head.items() if k.startswith("Checksum")}


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA1", "SHA256"])
def test_boto3_checksum_headers_are_verified_and_returned(s3, bucket, algorithm):
    data = os.urandom(3 * MIB + 17)
    put = s3.put_object(Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm=algorithm)
    expected = checksum_b64(algorithm, data)
    assert put[f"Checksum{algorithm}"] == expected
    assert stored_checksums(s3, bucket, "k") == {f"Checksum{algorithm}": expected, "ChecksumType": "FULL_OBJECT"}
    # boto3 validates the returned checksum itself when it asks for it (the default).
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got[f"Checksum{algorithm}"] == expected
    assert got["Body"].read() == data
    # A range says nothing about the whole object's checksum.
    ranged = s3.get_object(Bucket=bucket, Key="k", Range="bytes=0-9", ChecksumMode="ENABLED")
    assert f"Checksum{algorithm}" not in ranged and ranged["Body"].read() == data[:10]


def test_a_wrong_checksum_header_is_bad_digest_and_stores_nothing(s3, bucket):
    s3.put_object(Bucket=bucket, Key="kept", Body=b"old")
    for key in ("new", "kept"):
        with pytest.raises(ClientError) as err:
            s3.put_object(Bucket=bucket, Key=key, Body=b"hello", ChecksumCRC32=checksum_b64("CRC32", b"other"))
        assert err.value.response["Error"]["Code"] == "BadDigest"
    assert missing(s3, bucket, "new")
    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"old"
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=bucket, Key="new", Body=b"hello", ChecksumSHA256="bm90IGEgc2hhMjU2")
    assert err.value.response["Error"]["Code"] == "InvalidRequest"
    assert missing(s3, bucket, "new")


def test_objects_without_a_checksum_get_crc64nvme(stamp, s3, bucket):
    data = os.urandom(100_000)
    # No flexible checksum at all: S3 stores a CRC64NVME of its own.
    plain = stamp.client(request_checksum_calculation="when_required")
    plain.put_object(Bucket=bucket, Key="plain", Body=data)
    assert stored_checksums(s3, bucket, "plain") == {
        "ChecksumCRC64NVME": checksum_b64("CRC64NVME", data),
        "ChecksumType": "FULL_OBJECT",
    }
    # boto3 asks for checksums on GET by default; a CRC64NVME it cannot compute without the CRT
    # must not break the read.
    assert s3.get_object(Bucket=bucket, Key="plain", ChecksumMode="ENABLED")["Body"].read() == data


def test_signed_streaming_chunks_are_each_verified(stamp, s3, bucket):
    data = os.urandom(200 * 1024 + 5)
    status, _, body = chunked_put(stamp.endpoint, ACCESS_KEY, SECRET_KEY, f"/{bucket}/streamed", data)
    assert status == 200, body
    assert s3.get_object(Bucket=bucket, Key="streamed")["Body"].read() == data
    # One flipped byte in a signed chunk: the chunk signature no longer matches.
    status, _, body = chunked_put(stamp.endpoint, ACCESS_KEY, SECRET_KEY, f"/{bucket}/tampered", data, tamper="chunk")
    assert status == 403 and b"SignatureDoesNotMatch" in body, body
    assert missing(s3, bucket, "tampered")
    # A body shorter than x-amz-decoded-content-length stores nothing.
    status, _, body = chunked_put(
        stamp.endpoint, ACCESS_KEY, SECRET_KEY, f"/{bucket}/short", data, decoded_length=len(data) + 1
    )
    assert status == 400, body
    assert missing(s3, bucket, "short")


@pytest.mark.parametrize(
    "mode,algorithm",
    [("signed-trailer", "CRC32C"), ("unsigned-trailer", "CRC64NVME"), ("unsigned-trailer", "CRC32"), ("signed-trailer", "SHA256")],
)
def test_trailing_checksums(stamp, s3, bucket, mode, algorithm):
    data = os.urandom(150 * 1024 + 3)
    name = f"x-amz-checksum-{algorithm.lower()}"
    value = checksum_b64(algorithm, data)
    status, headers, body = chunked_put(
        stamp.endpoint, ACCESS_KEY, SECRET_KEY, f"/{bucket}/t", data, mode=mode, trailer=(name, value)
    )
    assert status == 200, body
    assert headers.get(name) == value
    assert stored_checksums(s3, bucket, "t")[f"Checksum{algorithm}"] == value
    assert s3.get_object(Bucket=bucket, Key="t")["Body"].read() == data
    # A well-formed trailer with the wrong value: BadDigest, nothing stored.
    wrong = checksum_b64(algorithm, data + b"x")
    status, _, body = chunked_put(
        stamp.endpoint, ACCESS_KEY, SECRET_KEY, f"/{bucket}/wrong", data, mode=mode, trailer=(name, wrong)
    )
    assert status == 400 and b"BadDigest" in body, body
    assert missing(s3, bucket, "wrong")


def test_a_tampered_signed_trailer_is_refused(stamp, s3, bucket):
    data = os.urandom(70_000)
    trailer = ("x-amz-checksum-crc32", checksum_b64("CRC32", data))
    status, _, body = chunked_put(
        stamp.endpoint, ACCESS_KEY, SECRET_KEY, f"/{bucket}/t", data, mode="signed-trailer", trailer=trailer, tamper="trailer"
    )
    assert status == 403 and b"SignatureDoesNotMatch" in body, body
    assert missing(s3, bucket, "t")


def test_a_missing_trailer_is_refused(stamp, s3, bucket):
    data = os.urandom(1000)
    status, _, body = chunked_put(
        stamp.endpoint,
        ACCESS_KEY,
        SECRET_KEY,
        f"/{bucket}/t",
        data,
        mode="unsigned-trailer",
        trailer=("x-amz-meta-other", "1"),
        extra_headers={},
    )
    # The announced trailer is not a checksum: nothing to verify, the object is stored.
    assert status == 200, body
    status, _, body = chunked_put(
        stamp.endpoint,
        ACCESS_KEY,
        SECRET_KEY,
        f"/{bucket}/t2",
        data,
        mode="unsigned-trailer",
        extra_headers={"x-amz-trailer": "x-amz-checksum-crc32"},
    )
    # A checksum trailer announced but never sent.
    assert status == 400 and b"MalformedTrailerError" in body, body
    assert missing(s3, bucket, "t2")


def parts_of(data, size):
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA256"])
def test_composite_multipart_checksum(s3, bucket, algorithm):
    parts = parts_of(os.urandom(11 * MIB), 5 * MIB)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm=algorithm)
    assert upload["ChecksumAlgorithm"] == algorithm
    done_parts = []
    for number, part in enumerate(parts, start=1):
        answer = s3.upload_part(
            Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=number, Body=part, ChecksumAlgorithm=algorithm
        )
        assert answer[f"Checksum{algorithm}"] == checksum_b64(algorithm, part)
        done_parts.append({"PartNumber": number, "ETag": answer["ETag"], f"Checksum{algorithm}": answer[f"Checksum{algorithm}"]})
    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload["UploadId"])
    assert [p[f"Checksum{algorithm}"] for p in listed["Parts"]] == [p[f"Checksum{algorithm}"] for p in done_parts]
    assert listed["ChecksumAlgorithm"] == algorithm
    done = s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload["UploadId"], MultipartUpload={"Parts": done_parts}
    )
    binary = b"".join(base64.b64decode(p[f"Checksum{algorithm}"]) for p in done_parts)
    composite = f"{checksum_b64(algorithm, binary)}-{len(parts)}"
    assert done[f"Checksum{algorithm}"] == composite
    assert stored_checksums(s3, bucket, "mp") == {f"Checksum{algorithm}": composite, "ChecksumType": "COMPOSITE"}
    assert s3.get_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")["Body"].read() == b"".join(parts)


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME"])
def test_full_object_multipart_checksum(stamp, s3, bucket, algorithm):
    data = os.urandom(10 * MIB + 1234)
    parts = parts_of(data, 5 * MIB)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm=algorithm, ChecksumType="FULL_OBJECT")
    done_parts = []
    # Parts without a checksum of their own: the server computes the upload's algorithm.
    plain = stamp.client(request_checksum_calculation="when_required")
    for number, part in enumerate(parts, start=1):
        answer = plain.upload_part(Bucket=bucket, Key="mp", UploadId=upload["UploadId"], PartNumber=number, Body=part)
        assert answer[f"Checksum{algorithm}"] == checksum_b64(algorithm, part)
        done_parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    whole = checksum_b64(algorithm, data)
    with pytest.raises(ClientError) as err:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mp",
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": done_parts},
            **{f"Checksum{algorithm}": checksum_b64(algorithm, data + b"!")},
        )
    assert err.value.response["Error"]["Code"] == "BadDigest"
    assert missing(s3, bucket, "mp")
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": done_parts},
        **{f"Checksum{algorithm}": whole},
    )
    assert done[f"Checksum{algorithm}"] == whole
    assert stored_checksums(s3, bucket, "mp") == {f"Checksum{algorithm}": whole, "ChecksumType": "FULL_OBJECT"}
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == data


def test_checksum_type_rules(s3, bucket):
    with pytest.raises(ClientError) as err:
        s3.create_multipart_upload(Bucket=bucket, Key="x", ChecksumAlgorithm="SHA256", ChecksumType="FULL_OBJECT")
    assert err.value.response["Error"]["Code"] == "InvalidRequest"
    upload = s3.create_multipart_upload(Bucket=bucket, Key="x", ChecksumAlgorithm="CRC32")
    with pytest.raises(ClientError) as err:
        s3.upload_part(Bucket=bucket, Key="x", UploadId=upload["UploadId"], PartNumber=1, Body=b"a", ChecksumAlgorithm="SHA1")
    assert err.value.response["Error"]["Code"] == "InvalidRequest"
    s3.abort_multipart_upload(Bucket=bucket, Key="x", UploadId=upload["UploadId"])


def test_boto3_transfers_across_the_multipart_threshold(s3, bucket, tmp_path):
    """upload_file / download_file with boto3's defaults (CRC32 checksums, 8 MiB threshold)."""
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=4)
    for size in (8 * MIB - 1, 8 * MIB, 25 * MIB + 3):
        source = tmp_path / f"src-{size}"
        source.write_bytes(os.urandom(size))
        s3.upload_file(str(source), bucket, f"f-{size}", Config=config)
        target = tmp_path / f"dst-{size}"
        s3.download_file(bucket, f"f-{size}", str(target), Config=config)
        assert target.read_bytes() == source.read_bytes(), size
        head = s3.head_object(Bucket=bucket, Key=f"f-{size}", ChecksumMode="ENABLED")
        assert head["ContentLength"] == size
        if "ChecksumCRC32" in head and head.get("ChecksumType") == "FULL_OBJECT":
            assert head["ChecksumCRC32"] == checksum_b64("CRC32", source.read_bytes())


def test_a_copy_keeps_a_valid_checksum(s3, bucket):
    data = os.urandom(2 * MIB)
    s3.put_object(Bucket=bucket, Key="src", Body=data, ChecksumAlgorithm="SHA256")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert stored_checksums(s3, bucket, "dst")["ChecksumSHA256"] == checksum_b64("SHA256", data)
    assert zlib.crc32(s3.get_object(Bucket=bucket, Key="dst", ChecksumMode="ENABLED")["Body"].read()) == zlib.crc32(data)
