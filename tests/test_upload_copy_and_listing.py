"""UploadPartCopy (with x-amz-copy-source-range) and ListMultipartUploads (prefix, delimiter,
key-marker, upload-id-marker, max-uploads, common prefixes), with boto3 and the aws cli."""

import hashlib
import json
import os

import pytest
from botocore.exceptions import ClientError

MIB = 1024 * 1024


def test_upload_part_copy_with_ranges(s3, bucket):
    source = os.urandom(12 * MIB + 77)
    s3.put_object(Bucket=bucket, Key="src", Body=source)
    other = "t-part-copy-other"
    s3.create_bucket(Bucket=other)
    upload = s3.create_multipart_upload(Bucket=other, Key="assembled")
    upload_id = upload["UploadId"]
    pieces = [(0, 5 * MIB - 1), (5 * MIB, 10 * MIB - 1), (10 * MIB, len(source) - 1)]
    parts = []
    for number, (first, last) in enumerate(pieces, start=1):
        copied = s3.upload_part_copy(
            Bucket=other,
            Key="assembled",
            UploadId=upload_id,
            PartNumber=number,
            CopySource={"Bucket": bucket, "Key": "src"},
            CopySourceRange=f"bytes={first}-{last}",
        )
        etag = copied["CopyPartResult"]["ETag"]
        assert etag == '"%s"' % hashlib.md5(source[first : last + 1]).hexdigest()
        parts.append({"PartNumber": number, "ETag": etag})
    # A whole-object copy as a part, and a part from a normal upload, mix freely.
    listed = s3.list_parts(Bucket=other, Key="assembled", UploadId=upload_id)
    assert [p["Size"] for p in listed["Parts"]] == [5 * MIB, 5 * MIB, len(source) - 10 * MIB]
    s3.complete_multipart_upload(Bucket=other, Key="assembled", UploadId=upload_id, MultipartUpload={"Parts": parts})
    assert s3.get_object(Bucket=other, Key="assembled")["Body"].read() == source

    whole = s3.create_multipart_upload(Bucket=bucket, Key="whole")
    copied = s3.upload_part_copy(
        Bucket=bucket, Key="whole", UploadId=whole["UploadId"], PartNumber=1, CopySource=f"{bucket}/src"
    )
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="whole",
        UploadId=whole["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": copied["CopyPartResult"]["ETag"]}]},
    )
    assert s3.get_object(Bucket=bucket, Key="whole")["Body"].read() == source


def test_upload_part_copy_errors(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"0123456789")
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    for bad_range in ("bytes=0-10", "bytes=5-2", "0-3"):
        with pytest.raises(ClientError) as err:
            s3.upload_part_copy(
                Bucket=bucket, Key="dst", UploadId=upload_id, PartNumber=1, CopySource=f"{bucket}/src", CopySourceRange=bad_range
            )
        assert err.value.response["Error"]["Code"] == "InvalidArgument", bad_range
    with pytest.raises(ClientError) as err:
        s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=upload_id, PartNumber=1, CopySource=f"{bucket}/missing")
    assert err.value.response["Error"]["Code"] == "NoSuchKey"
    with pytest.raises(ClientError) as err:
        s3.upload_part_copy(
            Bucket=bucket, Key="dst", UploadId=upload_id, PartNumber=1, CopySource=f"{bucket}/src", CopySourceIfMatch='"nope"'
        )
    assert err.value.response["Error"]["Code"] == "PreconditionFailed"
    with pytest.raises(ClientError) as err:
        s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId="0000", PartNumber=1, CopySource=f"{bucket}/src")
    assert err.value.response["Error"]["Code"] == "NoSuchUpload"
    assert s3.list_parts(Bucket=bucket, Key="dst", UploadId=upload_id).get("Parts", []) == []


def test_list_multipart_uploads(s3, bucket):
    keys = ["a", "a", "b/1", "b/2", "b/c/3", "c", "d"]
    uploads = []
    for key in keys:
        uploads.append((key, s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]))
    # Objects and parts between the uploads do not show.
    s3.put_object(Bucket=bucket, Key="a", Body=b"x")
    s3.upload_part(Bucket=bucket, Key="c", UploadId=uploads[5][1], PartNumber=1, Body=b"part")
    expected = sorted(uploads)

    listed = s3.list_multipart_uploads(Bucket=bucket)
    assert [(u["Key"], u["UploadId"]) for u in listed["Uploads"]] == expected
    assert listed["IsTruncated"] is False

    # Paging two at a time with key-marker / upload-id-marker reaches every upload once.
    seen = []
    markers = {}
    while True:
        page = s3.list_multipart_uploads(Bucket=bucket, MaxUploads=2, **markers)
        seen += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
        if not page["IsTruncated"]:
            break
        markers = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}
    assert seen == expected

    # A key marker alone skips every upload of that key.
    after_a = s3.list_multipart_uploads(Bucket=bucket, KeyMarker="a")
    assert [u["Key"] for u in after_a["Uploads"]] == ["b/1", "b/2", "b/c/3", "c", "d"]

    rolled = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [u["Key"] for u in rolled["Uploads"]] == ["a", "a", "c", "d"]
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["b/"]
    under_b = s3.list_multipart_uploads(Bucket=bucket, Prefix="b/", Delimiter="/")
    assert [u["Key"] for u in under_b["Uploads"]] == ["b/1", "b/2"]
    assert [p["Prefix"] for p in under_b["CommonPrefixes"]] == ["b/c/"]

    # Completing and aborting remove uploads from the listing.
    s3.abort_multipart_upload(Bucket=bucket, Key="d", UploadId=uploads[6][1])
    part = s3.upload_part(Bucket=bucket, Key="b/1", UploadId=uploads[2][1], PartNumber=1, Body=b"z")
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="b/1",
        UploadId=uploads[2][1],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    left = s3.list_multipart_uploads(Bucket=bucket)
    assert [u["Key"] for u in left["Uploads"]] == ["a", "a", "b/2", "b/c/3", "c"]
    with pytest.raises(ClientError) as err:
        s3.list_multipart_uploads(Bucket="t-no-such-bucket-here")
    assert err.value.response["Error"]["Code"] == "NoSuchBucket"


def test_aws_cli_list_multipart_uploads(stamp, s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="dir/pending")["UploadId"]
    listed = stamp.aws("s3api", "list-multipart-uploads", "--bucket", bucket)
    assert listed.returncode == 0, listed.stderr
    uploads = json.loads(listed.stdout)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("dir/pending", upload_id)]
