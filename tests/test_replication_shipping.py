"""Replication to a bucket on the same stamp (issue 16, steps 3 to 5 of
docs/plans/replication.md): the source ranges' owners ship every version a rule covers to the
destination bucket, key by key in commit order, and the source shows COMPLETED once the
range's durable watermark passed the version. These run on the shared stamp, without the
preview flag: a rule to a bucket of the same stamp is carried out, so it is taken."""

import time

import pytest
from botocore.exceptions import ClientError

ROLE = "arn:aws:iam::000000000000:role/replication"
ARRIVAL_TIMEOUT_S = 90


def versioned(s3, name):
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def created(s3, name):
    s3.create_bucket(Bucket=name)
    return name


def replicate(s3, source, destination, prefix="", markers="Enabled"):
    s3.put_bucket_replication(Bucket=source, ReplicationConfiguration={
        "Role": ROLE,
        "Rules": [{
            "ID": "all",
            "Priority": 1,
            "Status": "Enabled",
            "Filter": {"Prefix": prefix},
            "DeleteMarkerReplication": {"Status": markers},
            "Destination": {"Bucket": f"arn:aws:s3:::{destination}"},
        }],
    })


def history(s3, bucket):
    """Every version and delete marker, as S3 lists them (newest first per key)."""
    versions, markers = [], []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        versions += [(v["Key"], v["VersionId"], v["ETag"], v["Size"], v["IsLatest"],
                      v["LastModified"]) for v in page.get("Versions", [])]
        markers += [(m["Key"], m["VersionId"], m["IsLatest"]) for m in page.get("DeleteMarkers", [])]
    return versions, markers


def status(s3, bucket, key, version_id):
    try:
        return s3.head_object(Bucket=bucket, Key=key, VersionId=version_id).get("ReplicationStatus")
    except ClientError as err:  # a delete marker answers 405 to HEAD by version
        return err.response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-replication-status")


def wait_for(what, check, timeout_s=ARRIVAL_TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout_s} s")
        time.sleep(0.2)


def all_completed(s3, bucket):
    versions, _ = history(s3, bucket)
    return all(status(s3, bucket, key, vid) == "COMPLETED" for key, vid, *_ in versions)


def replication_status(stamp, bucket):
    import json
    import subprocess

    from stamp import BIN_DIR
    out = subprocess.run(
        [str(BIN_DIR / "strata"), "replication", "status", bucket,
         "--data-dir", str(stamp.data_dir), "--json"],
        check=True, capture_output=True, env=stamp.env(), timeout=60)
    return json.loads(out.stdout)


def test_versions_arrive_whole_in_order_and_show_completed_and_replica(stamp, s3, bucket):
    source = versioned(s3, bucket)
    destination = versioned(s3, created(s3, bucket + "-dst"))
    replicate(s3, source, destination)
    bodies = {}
    for i in range(45):  # 15 keys, 3 versions each, interleaved
        key, body = f"k{i % 15:02}", f"version {i} ".encode() * (i + 1)
        vid = s3.put_object(Bucket=source, Key=key, Body=body)["VersionId"]
        bodies[(key, vid)] = body
    s3.put_object(Bucket=source, Key="empty", Body=b"")
    s3.put_object(Bucket=source, Key="tagged", Body=b"t", Tagging="kind=parquet",
                  ContentType="application/x-parquet", Metadata={"hour": "13"})
    upload = s3.create_multipart_upload(Bucket=source, Key="multi")["UploadId"]
    part = s3.upload_part(Bucket=source, Key="multi", UploadId=upload, PartNumber=1, Body=b"m" * 4096)
    s3.complete_multipart_upload(Bucket=source, Key="multi", UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    s3.delete_object(Bucket=source, Key="k00")  # a delete marker: replicated (the rule says so)

    wait_for("every source version COMPLETED", lambda: all_completed(s3, source))
    # The watermark passed the last write: nothing owed, replicated through a time after it.
    last_write_ms = max(v[5] for v in history(s3, source)[0]).timestamp() * 1000
    report = wait_for("nothing owed", lambda: (lambda r: r if r["owed_versions"] == 0
                                              and r["replicated_through_ms"] else None)(
        replication_status(stamp, source)))
    assert report["replicated_through_ms"] >= last_write_ms, report
    assert report["replicated_through"].endswith("Z") and report["ranges"], report
    source_history = history(s3, source)
    assert history(s3, destination) == source_history
    assert len(source_history[0]) == 48 and len(source_history[1]) == 1
    for (key, vid), body in list(bodies.items())[::7]:
        got = s3.get_object(Bucket=destination, Key=key, VersionId=vid)
        assert got["Body"].read() == body
        assert got["ReplicationStatus"] == "REPLICA"
    head = s3.head_object(Bucket=destination, Key="tagged")
    assert (head["ContentType"], head["Metadata"]) == ("application/x-parquet", {"hour": "13"})
    assert head["ReplicationStatus"] == "REPLICA"
    assert s3.get_object_tagging(Bucket=destination, Key="tagged")["TagSet"] == \
        [{"Key": "kind", "Value": "parquet"}]
    assert s3.get_object(Bucket=destination, Key="multi")["Body"].read() == b"m" * 4096

    # A tag change replicates; a delete of one version does not (S3's rule: a mistake on one
    # side cannot destroy the other).
    s3.put_object_tagging(Bucket=source, Key="tagged", Tagging={"TagSet": [{"Key": "kind", "Value": "csv"}]})
    oldest = [v for v in source_history[0] if v[0] == "k01"][-1][1]
    s3.delete_object(Bucket=source, Key="k01", VersionId=oldest)
    last = s3.put_object(Bucket=source, Key="k01", Body=b"after the version delete")["VersionId"]
    wait_for("the tag change", lambda: s3.get_object_tagging(Bucket=destination, Key="tagged")["TagSet"]
             == [{"Key": "kind", "Value": "csv"}])
    wait_for("the last write", lambda: status(s3, source, "k01", last) == "COMPLETED")
    kept = s3.head_object(Bucket=destination, Key="k01", VersionId=oldest)
    assert kept["ReplicationStatus"] == "REPLICA"
    assert s3.get_object(Bucket=destination, Key="k01")["Body"].read() == b"after the version delete"


def test_writes_to_a_deleted_destination_fail_for_good_and_others_go_on(s3, bucket):
    source = versioned(s3, bucket)
    gone = versioned(s3, created(s3, bucket + "-gone"))
    replicate(s3, source, gone, prefix="logs/")
    s3.delete_bucket(Bucket=gone)
    vid = s3.put_object(Bucket=source, Key="logs/1", Body=b"nowhere to go")["VersionId"]
    wait_for("FAILED", lambda: status(s3, source, "logs/1", vid) == "FAILED")
    # Not covered: no status at all.
    other = s3.put_object(Bucket=source, Key="other/1", Body=b"x")["VersionId"]
    assert status(s3, source, "other/1", other) is None

    # A new destination: later writes arrive; the FAILED one stays FAILED until a tag change
    # (or, later, a resync) retries it.
    back = versioned(s3, created(s3, bucket + "-back"))
    replicate(s3, source, back, prefix="logs/")
    later = s3.put_object(Bucket=source, Key="logs/2", Body=b"arrives")["VersionId"]
    wait_for("the later write", lambda: status(s3, source, "logs/2", later) == "COMPLETED")
    assert status(s3, source, "logs/1", vid) == "FAILED"
    s3.put_object_tagging(Bucket=source, Key="logs/1", Tagging={"TagSet": [{"Key": "retry", "Value": "1"}]})
    wait_for("the retried version", lambda: status(s3, source, "logs/1", vid) == "COMPLETED")
    assert s3.get_object(Bucket=back, Key="logs/1", VersionId=vid)["Body"].read() == b"nowhere to go"


@pytest.fixture
def own_stamp(tmp_path):
    from stamp import Stamp
    stamp = Stamp(tmp_path / "data", extra_args=["--partition-servers", "3"]).start()
    yield stamp
    stamp.stop()


def test_a_killed_source_owner_loses_nothing_and_shipping_resumes(own_stamp):
    """Writes go on while the partition server that owns the source's range is SIGKILLed:
    every acknowledged version arrives, once, with the source's version id (the next owner
    finds what was not confirmed above the durable watermark, and arrivals are idempotent)."""
    import threading

    from test_partition_motion import owner_of

    stamp = own_stamp
    s3 = stamp.client()
    source = versioned(s3, created(s3, "killed-src"))
    destination = versioned(s3, created(s3, "killed-dst"))
    replicate(s3, source, destination)
    acked, stop = [], threading.Event()

    def write():
        i = 0
        while not stop.is_set():
            key = f"k{i % 40:02}"
            try:
                vid = s3.put_object(Bucket=source, Key=key, Body=f"{i}".encode() * 100)["VersionId"]
                acked.append((key, vid))
            except ClientError:
                pass  # not acknowledged: may or may not exist; only acknowledged ones count
            i += 1

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        wait_for("writes before the kill", lambda: len(acked) >= 60)
        _, victim = owner_of(stamp, source, "k00")
        stamp.node("kill", victim)
        at_kill = len(acked)
        wait_for("writes after the kill", lambda: len(acked) >= at_kill + 60)
    finally:
        stop.set()
        writer.join(timeout=120)
    stamp.node("start", victim)

    def arrived():
        versions, _ = history(s3, destination)
        return {(key, vid) for key, vid, *_ in versions} >= set(acked)

    wait_for("every acknowledged version at the destination", arrived)
    wait_for("every acknowledged version COMPLETED",
             lambda: all(status(s3, source, key, vid) == "COMPLETED" for key, vid in acked))
    source_versions, _ = history(s3, source)
    destination_versions, _ = history(s3, destination)
    # Nothing twice, nothing the source does not hold, same order and contents.
    assert destination_versions == source_versions
    # The partition servers' /metrics count what they shipped (the killed one's counts died
    # with it) and owe nothing any more.
    shipped = partition_metric(stamp, "strata_partition_replication_shipped_total")
    assert shipped > 0
    assert partition_metric(stamp, "strata_partition_replication_latency_seconds_count") == shipped
    wait_for("nothing owed on /metrics", lambda: partition_metric(
        stamp, "strata_partition_replication_owed_versions") == 0, timeout_s=10)


def partition_metric(stamp, name):
    """A metric summed over every partition server's /metrics and labels."""
    import re
    import urllib.request

    total = 0.0
    for node in stamp.nodes_of("partition-server"):
        with urllib.request.urlopen(f"http://{node['http_addr']}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        total += sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))
    return total
