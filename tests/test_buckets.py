"""Bucket operations through boto3 against a real stamp."""

import pytest
from botocore.exceptions import ClientError


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def status_of(excinfo):
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_create_list_head_delete(s3):
    s3.create_bucket(Bucket="alpha-bucket")
    s3.create_bucket(Bucket="beta.bucket")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert "alpha-bucket" in names and "beta.bucket" in names
    assert names == sorted(names), "ListBuckets is sorted by name"
    assert s3.head_bucket(Bucket="alpha-bucket")["ResponseMetadata"]["HTTPStatusCode"] == 200
    s3.delete_bucket(Bucket="alpha-bucket")
    with pytest.raises(ClientError) as err:
        s3.head_bucket(Bucket="alpha-bucket")
    assert status_of(err) == 404
    assert "alpha-bucket" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    # The name is free again.
    s3.create_bucket(Bucket="alpha-bucket")
    s3.delete_bucket(Bucket="alpha-bucket")


def test_create_twice_is_already_owned(s3):
    s3.create_bucket(Bucket="twice")
    with pytest.raises(ClientError) as err:
        s3.create_bucket(Bucket="twice")
    assert error_code(err) == "BucketAlreadyOwnedByYou"
    assert status_of(err) == 409


@pytest.mark.parametrize(
    "name",
    ["ab", "UPPER", "has_underscore", "-leading", "trailing-", "a..b", "192.168.1.1", "x" * 64],
)
def test_invalid_names_are_rejected(s3, name):
    with pytest.raises(ClientError) as err:
        s3.create_bucket(Bucket=name)
    assert error_code(err) == "InvalidBucketName"
    assert status_of(err) == 400


def test_delete_nonempty_bucket_fails(s3):
    s3.create_bucket(Bucket="full-bucket")
    s3.put_object(Bucket="full-bucket", Key="k", Body=b"x")
    with pytest.raises(ClientError) as err:
        s3.delete_bucket(Bucket="full-bucket")
    assert error_code(err) == "BucketNotEmpty"
    assert status_of(err) == 409
    s3.delete_object(Bucket="full-bucket", Key="k")
    s3.delete_bucket(Bucket="full-bucket")


def test_unfinished_upload_keeps_the_bucket_and_does_not_come_back(s3):
    """An unfinished multipart upload is content: DeleteBucket answers BucketNotEmpty, so the
    upload cannot outlive its bucket and reappear in a bucket created later under the same name.
    Once it is aborted the bucket deletes, and a new bucket of that name starts empty."""
    s3.create_bucket(Bucket="upload-holder")
    upload_id = s3.create_multipart_upload(Bucket="upload-holder", Key="big")["UploadId"]
    s3.upload_part(
        Bucket="upload-holder", Key="big", UploadId=upload_id, PartNumber=1, Body=b"p" * 1024
    )
    with pytest.raises(ClientError) as err:
        s3.delete_bucket(Bucket="upload-holder")
    assert error_code(err) == "BucketNotEmpty"
    assert status_of(err) == 409
    uploads = s3.list_multipart_uploads(Bucket="upload-holder").get("Uploads", [])
    assert [u["UploadId"] for u in uploads] == [upload_id]

    s3.abort_multipart_upload(Bucket="upload-holder", Key="big", UploadId=upload_id)
    s3.delete_bucket(Bucket="upload-holder")
    s3.create_bucket(Bucket="upload-holder")
    assert s3.list_multipart_uploads(Bucket="upload-holder").get("Uploads", []) == []
    s3.delete_bucket(Bucket="upload-holder")


def test_missing_bucket_errors(s3):
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket="no-such-bucket-here", Key="k", Body=b"x")
    assert error_code(err) == "NoSuchBucket"
    with pytest.raises(ClientError) as err:
        s3.list_objects_v2(Bucket="no-such-bucket-here")
    assert error_code(err) == "NoSuchBucket"
    with pytest.raises(ClientError) as err:
        s3.delete_bucket(Bucket="no-such-bucket-here")
    assert error_code(err) == "NoSuchBucket"


def test_virtual_hosted_style(stamp, s3):
    s3.create_bucket(Bucket="vhost-bucket")
    vhost = stamp.client(addressing="virtual")
    # bucket.localhost resolves to loopback (RFC 6761), so the real Host header carries it.
    vhost._endpoint.host = stamp.endpoint.replace("127.0.0.1", "localhost")
    vhost.put_object(Bucket="vhost-bucket", Key="v.txt", Body=b"virtual")
    assert s3.get_object(Bucket="vhost-bucket", Key="v.txt")["Body"].read() == b"virtual"
    keys = [o["Key"] for o in vhost.list_objects_v2(Bucket="vhost-bucket")["Contents"]]
    assert keys == ["v.txt"]


def test_unimplemented_operation_is_501(s3, bucket):
    with pytest.raises(ClientError) as err:
        s3.get_bucket_policy(Bucket=bucket)
    assert status_of(err) == 501
    assert error_code(err) == "NotImplemented"


def test_delete_bucket_racing_puts_orphans_nothing(s3):
    """PUTs race DeleteBucket (the front-end caches bucket records for a second): every PUT
    either lands before the delete, which then answers BucketNotEmpty, or fails NoSuchBucket,
    so the bucket created again under the name is empty (issue 12, item 7)."""
    import threading
    import time

    name = "raced-bucket"
    s3.create_bucket(Bucket=name)
    landed, failures = [], []
    stop = threading.Event()

    def writer(w):
        for i in range(400):
            if stop.is_set():
                return
            try:
                s3.put_object(Bucket=name, Key=f"w{w}-{i:04d}", Body=b"x")
                landed.append(f"w{w}-{i:04d}")
            except ClientError as err:
                failures.append(err.response["Error"]["Code"])
                return

    writers = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in writers:
        thread.start()
    deadline = time.monotonic() + 60
    deleted = False
    while not deleted:
        assert time.monotonic() < deadline, "the bucket was never deleted"
        # Empty it behind the writers' backs, then try to delete it while they go on.
        for item in s3.list_objects_v2(Bucket=name).get("Contents", []):
            s3.delete_object(Bucket=name, Key=item["Key"])
        try:
            s3.delete_bucket(Bucket=name)
            deleted = True
        except ClientError as err:
            assert err.response["Error"]["Code"] == "BucketNotEmpty", err.response
    stop.set()
    for thread in writers:
        thread.join()
    assert set(failures) <= {"NoSuchBucket"}, failures
    s3.create_bucket(Bucket=name)
    assert s3.list_objects_v2(Bucket=name).get("KeyCount", 0) == 0
    s3.delete_bucket(Bucket=name)
