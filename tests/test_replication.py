"""Replication between stamps (issue 16), built in steps (docs/plans/replication.md): the
configuration API, Put/Get/DeleteBucketReplication, checked as S3 checks it and kept in the
bucket record (it moves with the bucket), and the marks of the versions a rule covers. Rules to
a bucket on the same stamp are carried out (test_replication_shipping.py); until shipping
between stamps is built, a rule to another stamp answers 501 NotImplemented unless the
front-ends run with `replication_preview` (STRATA_REPLICATION_PREVIEW), which these tests of
the configuration set."""

import json

import pytest
from botocore.exceptions import ClientError

from stamp import NO_RETRIES, Stamp
from test_bucket_move import move
from test_two_stamps import endpoints, homed_bucket, locate

ROLE = "arn:aws:iam::000000000000:role/replication"
COVERED = ("PENDING", "COMPLETED")


@pytest.fixture(scope="module")
def stamps(tmp_path_factory):
    stamp = Stamp(
        tmp_path_factory.mktemp("replication") / "data",
        extra_args=["--stamps", "2"],
        extra_env={"STRATA_REPLICATION_PREVIEW": "true"},
    )
    stamp.start(timeout_s=180)
    yield stamp
    stamp.stop()


def client(stamp, name):
    return stamp.client(endpoint=endpoints(stamp)[name], retries=NO_RETRIES)


def versioned(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return bucket


def rule(rule_id, prefix, destination, priority=1, markers="Enabled"):
    return {
        "ID": rule_id,
        "Priority": priority,
        "Status": "Enabled",
        "Filter": {"Prefix": prefix},
        "DeleteMarkerReplication": {"Status": markers},
        "Destination": {"Bucket": destination},
    }


def error_of(call, **kwargs):
    with pytest.raises(ClientError) as refused:
        call(**kwargs)
    answer = refused.value.response
    return answer["Error"]["Code"], answer["ResponseMetadata"]["HTTPStatusCode"]


def test_aws_cli_sets_a_rule_read_through_either_stamp_and_moved_with_the_bucket(stamps, tmp_path):
    s1, s2 = client(stamps, "stamp-1"), client(stamps, "stamp-2")
    source = versioned(s1, homed_bucket(stamps, "stamp-1", "repl-src"))
    dest = versioned(s2, homed_bucket(stamps, "stamp-2", "repl-dest"))
    config = {
        "Role": ROLE,
        "Rules": [
            rule("hourly", "exports/hourly/", f"arn:aws:s3:::{dest}", priority=2),
            {
                **rule("tagged", "", f"arn:aws:s3:::{dest}", priority=1, markers="Disabled"),
                "Filter": {"And": {"Prefix": "p/", "Tags": [{"Key": "kind", "Value": "parquet"}]}},
                "Destination": {
                    "Bucket": f"arn:aws:s3:::{dest}",
                    "ReplicationTime": {"Status": "Enabled", "Time": {"Minutes": 15}},
                    "Metrics": {"Status": "Enabled", "EventThreshold": {"Minutes": 15}},
                },
            },
        ],
    }
    path = tmp_path / "replication.json"
    path.write_text(json.dumps(config))
    cli = stamps.aws("s3api", "put-bucket-replication", "--bucket", source,
                     "--replication-configuration", f"file://{path}")
    assert cli.returncode == 0, cli.stderr.decode()
    cli = stamps.aws("s3api", "get-bucket-replication", "--bucket", source)
    assert cli.returncode == 0, cli.stderr.decode()
    shown = json.loads(cli.stdout)["ReplicationConfiguration"]
    assert shown["Role"] == ROLE
    rules = {r["ID"]: r for r in shown["Rules"]}
    assert rules["hourly"]["Filter"] == {"Prefix": "exports/hourly/"}
    assert rules["hourly"]["Priority"] == 2
    assert rules["hourly"]["DeleteMarkerReplication"] == {"Status": "Enabled"}
    assert rules["hourly"]["Destination"] == {"Bucket": f"arn:aws:s3:::{dest}"}
    assert rules["tagged"]["Filter"]["And"]["Tags"] == [{"Key": "kind", "Value": "parquet"}]
    assert rules["tagged"]["DeleteMarkerReplication"] == {"Status": "Disabled"}
    assert rules["tagged"]["Destination"]["ReplicationTime"]["Time"] == {"Minutes": 15}
    # The other stamp forwards to the home: the same configuration.
    assert s2.get_bucket_replication(Bucket=source)["ReplicationConfiguration"]["Rules"] == \
        s1.get_bucket_replication(Bucket=source)["ReplicationConfiguration"]["Rules"]
    # The versioning a configuration needs cannot be suspended under it.
    code = error_of(s1.put_bucket_versioning, Bucket=source,
                    VersioningConfiguration={"Status": "Suspended"})
    assert code == ("InvalidBucketState", 409)

    # The configuration is part of the bucket record, so it moves with the bucket.
    before = s1.get_bucket_replication(Bucket=source)["ReplicationConfiguration"]
    move(stamps, source, "stamp-2")
    assert locate(stamps, source) == "stamp-2"
    assert s1.get_bucket_replication(Bucket=source)["ReplicationConfiguration"] == before

    s1.delete_bucket_replication(Bucket=source)
    code = error_of(s1.get_bucket_replication, Bucket=source)
    assert code == ("ReplicationConfigurationNotFoundError", 404)
    s1.put_bucket_versioning(Bucket=source, VersioningConfiguration={"Status": "Suspended"})


def test_rules_s3_would_refuse_are_refused_and_nothing_is_stored(stamps):
    s1 = client(stamps, "stamp-1")
    source = homed_bucket(stamps, "stamp-1", "repl-checks")
    dest = versioned(s1, homed_bucket(stamps, "stamp-1", "repl-checks-dest"))
    unversioned = homed_bucket(stamps, "stamp-1", "repl-checks-plain")

    def put(*rules):
        return error_of(s1.put_bucket_replication, Bucket=source,
                        ReplicationConfiguration={"Role": ROLE, "Rules": list(rules)})

    assert put(rule("r", "", f"arn:aws:s3:::{dest}")) == ("InvalidRequest", 400)  # source unversioned
    versioned(s1, source)
    assert put(rule("r", "", "arn:aws:s3:::no-such-bucket-anywhere")) == ("InvalidRequest", 400)
    assert put(rule("r", "", f"arn:aws:s3:::{unversioned}")) == ("InvalidRequest", 400)
    assert put(rule("r", "", f"arn:aws:s3:::{source}")) == ("InvalidRequest", 400)
    assert put(rule("r", "", dest)) == ("InvalidArgument", 400)
    assert put(rule("r", "", f"arn:strata:s3:stamp-9::{source}")) == ("InvalidArgument", 400)
    assert put(rule("a", "a/", f"arn:aws:s3:::{dest}"), rule("b", "b/", f"arn:aws:s3:::{dest}")) == \
        ("InvalidRequest", 400)  # one priority twice
    assert put({**rule("r", "", f"arn:aws:s3:::{dest}"), "ExistingObjectReplication": {"Status": "Enabled"}}) == \
        ("NotImplemented", 501)
    code = error_of(s1.get_bucket_replication, Bucket=source)
    assert code == ("ReplicationConfigurationNotFoundError", 404)

    # A geo-replica on the other stamp, under the bucket's own name.
    geo = {"Role": ROLE, "Rules": [rule("geo", "", f"arn:strata:s3:stamp-2::{source}")]}
    s1.put_bucket_replication(Bucket=source, ReplicationConfiguration=geo)
    shown = s1.get_bucket_replication(Bucket=source)["ReplicationConfiguration"]["Rules"][0]
    assert shown["Destination"]["Bucket"] == f"arn:strata:s3:stamp-2::{source}"


def status_of(s3, bucket, key, **kwargs):
    head = s3.head_object(Bucket=bucket, Key=key, **kwargs).get("ReplicationStatus")
    get = s3.get_object(Bucket=bucket, Key=key, **kwargs)
    shown = get.get("ReplicationStatus")
    # Shipping may complete the version between the two.
    assert shown == head or (head, shown) == COVERED, (key, head, shown)
    return head


def test_versions_a_rule_covers_are_marked_pending_from_the_moment_it_is_stored(stamps):
    """Which versions the rules cover (PENDING, or COMPLETED once shipped: the destination is
    on the same stamp), and that a write just after PutBucketReplication answered is covered
    (the write leases granted under the old record are waited out first)."""
    s1 = client(stamps, "stamp-1")
    source = versioned(s1, homed_bucket(stamps, "stamp-1", "repl-marks"))
    dest = versioned(s1, homed_bucket(stamps, "stamp-1", "repl-marks-dest"))
    s1.put_object(Bucket=source, Key="exports/early", Body=b"before the rule")
    config = {
        "Role": ROLE,
        "Rules": [
            rule("exports", "exports/", f"arn:aws:s3:::{dest}", priority=2),
            {
                **rule("tagged", "", f"arn:aws:s3:::{dest}", priority=1, markers="Disabled"),
                "Filter": {"And": {"Prefix": "p/", "Tags": [{"Key": "kind", "Value": "parquet"}]}},
            },
        ],
    }
    s1.put_bucket_replication(Bucket=source, ReplicationConfiguration=config)
    s1.put_object(Bucket=source, Key="exports/late", Body=b"right after the rule")
    assert status_of(s1, source, "exports/late") in COVERED
    assert status_of(s1, source, "exports/early") is None
    s1.put_object(Bucket=source, Key="other/b", Body=b"b")
    assert status_of(s1, source, "other/b") is None
    s1.put_object(Bucket=source, Key="p/x", Body=b"x", Tagging="kind=parquet&tier=gold")
    s1.put_object(Bucket=source, Key="p/y", Body=b"y", Tagging="kind=csv")
    assert status_of(s1, source, "p/x") in COVERED
    assert status_of(s1, source, "p/y") is None
    s1.copy_object(Bucket=source, Key="exports/copied", CopySource={"Bucket": source, "Key": "other/b"})
    s1.copy_object(Bucket=source, Key="other/copied", CopySource={"Bucket": source, "Key": "exports/late"})
    assert status_of(s1, source, "exports/copied") in COVERED
    assert status_of(s1, source, "other/copied") is None
    upload = s1.create_multipart_upload(Bucket=source, Key="exports/multi")["UploadId"]
    part = s1.upload_part(Bucket=source, Key="exports/multi", UploadId=upload, PartNumber=1, Body=b"m" * 1024)
    s1.complete_multipart_upload(Bucket=source, Key="exports/multi", UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert status_of(s1, source, "exports/multi") in COVERED
    # An older version keeps its own mark when a newer one is written.
    first = s1.head_object(Bucket=source, Key="exports/early")["VersionId"]
    s1.put_object(Bucket=source, Key="exports/early", Body=b"now covered")
    assert status_of(s1, source, "exports/early") in COVERED
    assert status_of(s1, source, "exports/early", VersionId=first) is None

    s1.delete_bucket_replication(Bucket=source)
    s1.put_object(Bucket=source, Key="exports/after", Body=b"no rule any more")
    assert status_of(s1, source, "exports/after") is None
