"""Bucket lifecycle: Put/Get/DeleteBucketLifecycleConfiguration, and the partition servers'
background task carrying out Expiration (days, prefix, tags) and AbortIncompleteMultipartUpload.

The stamp here runs with a lifecycle "day" of one second (STRATA_LIFECYCLE_DAY_MS, a test-only
knob passed by `strata up` to its nodes) and a pass every 200 ms, so rules fire within seconds.
The tests wait on the outcome (with generous deadlines), never on time alone."""

import pytest
from botocore.exceptions import ClientError

from stamp import Stamp, wait_for

DAY_MS = 1000


@pytest.fixture(scope="module")
def fast_stamp(tmp_path_factory):
    s = Stamp(
        tmp_path_factory.mktemp("lifecycle-stamp"),
        extra_env={"STRATA_LIFECYCLE_DAY_MS": str(DAY_MS), "STRATA_LIFECYCLE_INTERVAL_MS": "200"},
    ).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def fast(fast_stamp):
    return fast_stamp.client()


def exists(s3, bucket, key):
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as err:
        if err.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
            return False
        raise


def expire_rule(rule_id, days, prefix=None, tags=None):
    if tags:
        and_filter = {"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        if prefix is not None:
            and_filter["Prefix"] = prefix
        rule_filter = {"And": and_filter} if len(tags) > 1 or prefix else {"Tag": and_filter["Tags"][0]}
    else:
        rule_filter = {"Prefix": prefix or ""}
    return {"ID": rule_id, "Status": "Enabled", "Filter": rule_filter, "Expiration": {"Days": days}}


def test_lifecycle_configuration_round_trips(s3, bucket):
    with pytest.raises(ClientError) as err:
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    assert err.value.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"
    rules = [
        expire_rule("logs", 30, prefix="logs/"),
        expire_rule("tmp", 1, tags={"tier": "tmp"}),
        {"ID": "uploads", "Status": "Enabled", "Filter": {"Prefix": ""}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}},
    ]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    stored = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert stored["logs"]["Expiration"]["Days"] == 30 and stored["logs"]["Filter"]["Prefix"] == "logs/"
    assert stored["tmp"]["Filter"]["Tag"] == {"Key": "tier", "Value": "tmp"}
    assert stored["uploads"]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 7
    for bad, code in [
        ({"ID": "t", "Status": "Enabled", "Filter": {"Prefix": ""}, "Transitions": [{"Days": 1, "StorageClass": "GLACIER"}]}, "NotImplemented"),
        (expire_rule("zero", 0), "InvalidArgument"),
    ]:
        with pytest.raises(ClientError) as err:
            s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [bad]})
        assert err.value.response["Error"]["Code"] == code
    s3.delete_bucket_lifecycle(Bucket=bucket)
    with pytest.raises(ClientError):
        s3.get_bucket_lifecycle_configuration(Bucket=bucket)


def test_expiration_by_prefix_and_tags(fast):
    bucket = "lc-expire"
    fast.create_bucket(Bucket=bucket)
    fast.put_object(Bucket=bucket, Key="tmp/a", Body=b"a")
    fast.put_object(Bucket=bucket, Key="tmp/b", Body=b"b")
    fast.put_object(Bucket=bucket, Key="keep/c", Body=b"c")
    fast.put_object(Bucket=bucket, Key="tagged", Body=b"t", Tagging="tier=scratch")
    fast.put_object(Bucket=bucket, Key="untagged", Body=b"u")
    rules = [expire_rule("tmp", 2, prefix="tmp/"), expire_rule("scratch", 1, tags={"tier": "scratch"})]
    fast.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    wait_for(
        lambda: not any(exists(fast, bucket, k) for k in ("tmp/a", "tmp/b", "tagged")),
        60,
        "the lifecycle task to expire tmp/* and the tagged object",
        interval_s=0.3,
    )
    # Keys no rule matches are untouched, byte for byte.
    assert fast.get_object(Bucket=bucket, Key="keep/c")["Body"].read() == b"c"
    assert fast.get_object(Bucket=bucket, Key="untagged")["Body"].read() == b"u"
    # A new object under an expiring prefix lives until it is old enough, then goes too.
    fast.put_object(Bucket=bucket, Key="tmp/new", Body=b"n")
    wait_for(lambda: not exists(fast, bucket, "tmp/new"), 60, "tmp/new to expire", interval_s=0.3)


def test_expiration_in_a_versioned_bucket_adds_a_delete_marker(fast):
    bucket = "lc-versioned"
    fast.create_bucket(Bucket=bucket)
    fast.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    version = fast.put_object(Bucket=bucket, Key="doc", Body=b"kept as a version")["VersionId"]
    fast.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [expire_rule("all", 1)]})
    wait_for(lambda: not exists(fast, bucket, "doc"), 60, "doc to get a delete marker", interval_s=0.3)
    listed = fast.list_object_versions(Bucket=bucket)
    assert [(m["Key"], m["IsLatest"]) for m in listed["DeleteMarkers"]] == [("doc", True)]
    assert [(v["Key"], v["VersionId"]) for v in listed["Versions"]] == [("doc", version)]
    assert fast.get_object(Bucket=bucket, Key="doc", VersionId=version)["Body"].read() == b"kept as a version"


def test_abort_incomplete_multipart_uploads(fast):
    bucket = "lc-uploads"
    fast.create_bucket(Bucket=bucket)
    upload_id = fast.create_multipart_upload(Bucket=bucket, Key="big/upload")["UploadId"]
    fast.upload_part(Bucket=bucket, Key="big/upload", UploadId=upload_id, PartNumber=1, Body=b"part")
    other = fast.create_multipart_upload(Bucket=bucket, Key="elsewhere/upload")["UploadId"]
    rules = [{"ID": "abort", "Status": "Enabled", "Filter": {"Prefix": "big/"}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]
    fast.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})

    def only_other_left():
        uploads = fast.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return [u["UploadId"] for u in uploads] == [other]

    wait_for(only_other_left, 60, "the old upload under big/ to be aborted", interval_s=0.3)
    with pytest.raises(ClientError) as err:
        fast.list_parts(Bucket=bucket, Key="big/upload", UploadId=upload_id)
    assert err.value.response["Error"]["Code"] == "NoSuchUpload"
