"""Multipart upload as clients use it: boto3's transfer manager and the aws cli switch to it
above 8 MiB, so a stamp must do it for `aws s3 cp big.iso` to work."""

import hashlib
import os

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

MIB = 1024 * 1024


def test_low_level_multipart(s3, bucket):
    parts_data = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(123)]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ContentType="video/mp4", Metadata={"k": "v"})
    upload_id = upload["UploadId"]
    etags = []
    for number, data in enumerate(parts_data, start=1):
        part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=number, Body=data)
        assert part["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()
        etags.append(part["ETag"])
    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3]
    assert [p["Size"] for p in listed["Parts"]] == [len(d) for d in parts_data]
    # Not visible until completed.
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="mp")
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]},
    )
    expected_etag = hashlib.md5(b"".join(hashlib.md5(d).digest() for d in parts_data)).hexdigest() + "-3"
    assert done["ETag"] == f'"{expected_etag}"'
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["Body"].read() == b"".join(parts_data)
    assert got["ContentType"] == "video/mp4"
    assert got["Metadata"] == {"k": "v"}
    assert got["ETag"] == f'"{expected_etag}"'
    # A range across the part boundary.
    ranged = s3.get_object(Bucket=bucket, Key="mp", Range=f"bytes={5 * MIB - 10}-{5 * MIB + 9}")["Body"].read()
    assert ranged == (parts_data[0] + parts_data[1])[5 * MIB - 10 : 5 * MIB + 10]
    # The upload is gone once completed.
    with pytest.raises(ClientError) as err:
        s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)
    assert err.value.response["Error"]["Code"] == "NoSuchUpload"


def test_multipart_errors_and_abort(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="bad")["UploadId"]
    small = s3.upload_part(Bucket=bucket, Key="bad", UploadId=upload_id, PartNumber=1, Body=b"tiny")["ETag"]
    last = s3.upload_part(Bucket=bucket, Key="bad", UploadId=upload_id, PartNumber=2, Body=b"last")["ETag"]
    with pytest.raises(ClientError) as err:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="bad",
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": small}, {"PartNumber": 2, "ETag": last}]},
        )
    assert err.value.response["Error"]["Code"] == "EntityTooSmall"
    with pytest.raises(ClientError) as err:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="bad",
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": last}, {"PartNumber": 1, "ETag": small}]},
        )
    assert err.value.response["Error"]["Code"] == "InvalidPartOrder"
    with pytest.raises(ClientError) as err:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="bad", UploadId=upload_id, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0" '}]}
        )
    assert err.value.response["Error"]["Code"] == "InvalidPart"
    s3.abort_multipart_upload(Bucket=bucket, Key="bad", UploadId=upload_id)
    with pytest.raises(ClientError) as err:
        s3.upload_part(Bucket=bucket, Key="bad", UploadId=upload_id, PartNumber=3, Body=b"x")
    assert err.value.response["Error"]["Code"] == "NoSuchUpload"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="bad")


def test_transfer_manager_across_the_threshold(s3, bucket, tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(21 * MIB + 7))
    config = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=4)
    s3.upload_file(str(source), bucket, "big/file.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="big/file.bin")
    assert head["ContentLength"] == source.stat().st_size
    assert head["ETag"].endswith('-3"'), "uploaded as 3 parts"
    target = tmp_path / "target.bin"
    s3.download_file(bucket, "big/file.bin", str(target), Config=config)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
