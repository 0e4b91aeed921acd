"""A full stop and restart keeps everything issue 5 added to the index: object versions and
delete markers, checksums, object and bucket tags, CORS, lifecycle and versioning
configurations, and multipart uploads with their checksum algorithm (all of them are index
entries in the range's commit log and checkpoints, so a reload must decode them)."""

import os

import pytest
from botocore.exceptions import ClientError

from sigv4_chunked import checksum_b64
from stamp import Stamp


@pytest.fixture
def own_stamp(tmp_path):
    s = Stamp(tmp_path / "data").start()
    yield s
    s.stop()


def test_restart_keeps_versions_checksums_tags_and_configurations(own_stamp):
    s3 = own_stamp.client()
    bucket = "keep-configs"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "team", "Value": "storage"}]})
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}]})
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={"Rules": [{"ID": "old", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 3650}}]},
    )
    data = os.urandom(2 * 1024 * 1024)
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"first", Tagging="v=1")["VersionId"]
    second = s3.put_object(Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm="SHA256")["VersionId"]
    marker = s3.delete_object(Bucket=bucket, Key="k")["VersionId"]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="pending", ChecksumAlgorithm="CRC32")["UploadId"]
    part = os.urandom(5 * 1024 * 1024)
    s3.upload_part(Bucket=bucket, Key="pending", UploadId=upload, PartNumber=1, Body=part, ChecksumAlgorithm="CRC32")

    own_stamp.stop()
    assert own_stamp.process.returncode == 0
    own_stamp.start()
    s3 = own_stamp.client()

    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "team", "Value": "storage"}]
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"][0]["AllowedMethods"] == ["GET"]
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"][0]["Expiration"]["Days"] == 3650
    listed = s3.list_object_versions(Bucket=bucket)
    assert [(m["VersionId"], m["IsLatest"]) for m in listed["DeleteMarkers"]] == [(marker, True)]
    assert [v["VersionId"] for v in listed["Versions"]] == [second, first]
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="k")
    got = s3.get_object(Bucket=bucket, Key="k", VersionId=second, ChecksumMode="ENABLED")
    assert got["Body"].read() == data and got["ChecksumSHA256"] == checksum_b64("SHA256", data)
    assert s3.get_object_tagging(Bucket=bucket, Key="k", VersionId=first)["TagSet"] == [{"Key": "v", "Value": "1"}]
    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"], u["ChecksumAlgorithm"]) for u in uploads] == [("pending", upload, "CRC32")]
    parts = s3.list_parts(Bucket=bucket, Key="pending", UploadId=upload)["Parts"]
    assert [p["ChecksumCRC32"] for p in parts] == [checksum_b64("CRC32", part)]
