"""Replication between stamps (issue 16), built in steps (docs/plans/replication.md): the
configuration API, Put/Get/DeleteBucketReplication, checked as S3 checks it and kept in the
bucket record (it moves with the bucket), the marks of the versions a rule covers, and
shipping to a bucket on the other stamp, both ways, over the front-ends' mutual-TLS links,
and geo-replicas (the bucket's own name on the other stamp). Rules to a bucket on the same
stamp are tested in test_replication_shipping.py. The front-ends run with
`replication_preview` (STRATA_REPLICATION_PREVIEW), which only lifts the need for mutual TLS."""

import datetime
import json
import re
import threading
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from stamp import NO_RETRIES, Stamp
from test_bucket_move import move
from test_replication_shipping import (
    all_completed,
    history,
    replicate,
    replication_status,
    status,
    wait_for,
)
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


THROUGH = "x-strata-replicated-through"


def replicated_through(s3, bucket):
    """The destination's x-strata-replicated-through (HeadBucket), as a datetime; None when
    absent (not known now)."""
    value = s3.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPHeaders"].get(THROUGH)
    if value is None:
        return None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", value), value
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)


def relayed_replicas(stamp, frontend_name):
    """strata_frontend_replicas_total of one front-end (replicas other stamps sent it)."""
    node = next(n for n in stamp.running()["nodes"] if n["name"] == frontend_name)
    with urllib.request.urlopen(f"http://{node['http_addr']}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    counts = re.findall(r'^strata_frontend_replicas_total\{outcome="(applied|present)"\} (\d+)', text, re.M)
    return sum(int(c) for _, c in counts)


def write_history(s3, bucket):
    """Versions of several kinds, interleaved over keys; the bodies by (key, version id)."""
    bodies = {}
    for i in range(18):
        key, body = f"hour={i % 6:02}/part.parquet", f"rows {i} ".encode() * (50 * i + 1)
        bodies[(key, s3.put_object(Bucket=bucket, Key=key, Body=body)["VersionId"])] = body
    big = bytes(range(256)) * (6 * 4096 + 3)  # 6 MiB and some: several chunks over the link
    bodies[("big", s3.put_object(Bucket=bucket, Key="big", Body=big)["VersionId"])] = big
    s3.put_object(Bucket=bucket, Key="tagged", Body=b"t", Tagging="kind=parquet",
                  ContentType="application/x-parquet", Metadata={"hour": "13"})
    upload = s3.create_multipart_upload(Bucket=bucket, Key="multi")["UploadId"]
    parts = []
    for number, body in [(1, b"a" * (5 * 1024 * 1024)), (2, b"b" * 1000)]:
        etag = s3.upload_part(Bucket=bucket, Key="multi", UploadId=upload, PartNumber=number, Body=body)["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    done = s3.complete_multipart_upload(Bucket=bucket, Key="multi", UploadId=upload,
                                        MultipartUpload={"Parts": parts})
    bodies[("multi", done["VersionId"])] = b"a" * (5 * 1024 * 1024) + b"b" * 1000
    s3.delete_object(Bucket=bucket, Key="hour=00/part.parquet")  # a delete marker
    return bodies


def test_versions_reach_a_bucket_on_the_other_stamp_whole_and_in_order_both_ways(stamps):
    """A rule whose destination bucket is homed on the other stamp: the source's partition
    servers send each version over the destination stamp's front-end link, which relays it to
    the owner there. Every version arrives with its id, ETag, size and last-modified time,
    bytes, metadata and tags, shown REPLICA there and COMPLETED at the source; both ways
    (stamp-2's partition servers reach stamp-1's links too)."""
    s1, s2 = client(stamps, "stamp-1"), client(stamps, "stamp-2")
    for (src_stamp, src_s3), (dst_stamp, dst_s3), frontend in [
        (("stamp-1", s1), ("stamp-2", s2), "s2-frontend"),
        (("stamp-2", s2), ("stamp-1", s1), "frontend"),
    ]:
        source = versioned(src_s3, homed_bucket(stamps, src_stamp, f"x-src-{src_stamp[-1]}", s3=src_s3))
        dest = versioned(dst_s3, homed_bucket(stamps, dst_stamp, f"x-dst-{dst_stamp[-1]}", s3=dst_s3))
        relayed_before = relayed_replicas(stamps, frontend)
        replicate(src_s3, source, dest)
        bodies = write_history(src_s3, source)
        wait_for(f"every version of {source} COMPLETED", lambda: all_completed(src_s3, source))
        source_history = history(src_s3, source)
        assert history(dst_s3, dest) == source_history
        assert len(source_history[1]) == 1, source_history[1]
        for (key, vid), body in bodies.items():
            got = dst_s3.get_object(Bucket=dest, Key=key, VersionId=vid)
            assert got["Body"].read() == body, key
            assert got["ReplicationStatus"] == "REPLICA"
        head = dst_s3.head_object(Bucket=dest, Key="tagged")
        assert (head["ContentType"], head["Metadata"]) == ("application/x-parquet", {"hour": "13"})
        assert dst_s3.get_object_tagging(Bucket=dest, Key="tagged")["TagSet"] == \
            [{"Key": "kind", "Value": "parquet"}]
        # They came over the destination stamp's link (one relay per version at least).
        assert relayed_replicas(stamps, frontend) - relayed_before >= len(source_history[0])
        # The destination says how far it is replicated: past every write, once all arrived.
        last_write = max(v[5] for v in source_history[0])
        through = wait_for("replicated through the last write", lambda: (
            lambda t: t if t and t >= last_write else None)(replicated_through(dst_s3, dest)))
        listed = dst_s3.list_objects_v2(Bucket=dest)["ResponseMetadata"]["HTTPHeaders"]
        assert THROUGH in listed, listed
        assert through <= datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)
    # A bucket nothing replicates into has no such header.
    plain = s1.head_bucket(Bucket=source)["ResponseMetadata"]["HTTPHeaders"]
    assert THROUGH not in plain, plain


def test_a_destination_deleted_on_the_other_stamp_fails_versions_for_good(stamps):
    """NoSuchBucket at the destination's stamp reaches the source as the owner gave it: the
    version is FAILED with its cause, never retried forever, and the rule's other versions are
    not held back."""
    s1, s2 = client(stamps, "stamp-1"), client(stamps, "stamp-2")
    source = versioned(s1, homed_bucket(stamps, "stamp-1", "x-gone-src", s3=s1))
    dest = versioned(s2, homed_bucket(stamps, "stamp-2", "x-gone-dst", s3=s2))
    replicate(s1, source, dest)
    s1.put_object(Bucket=source, Key="first", Body=b"1")
    wait_for("the first version COMPLETED", lambda: all_completed(s1, source))
    s2.delete_object(Bucket=dest, Key="first", VersionId=s2.head_object(Bucket=dest, Key="first")["VersionId"])
    s2.delete_bucket(Bucket=dest)
    vid = s1.put_object(Bucket=source, Key="second", Body=b"2")["VersionId"]
    wait_for("the second version FAILED", lambda: s1.head_object(
        Bucket=source, Key="second", VersionId=vid).get("ReplicationStatus") == "FAILED")


def test_a_cut_off_destination_stamp_loses_nothing_and_catches_up_in_order(stamps):
    """The destination stamp's front-ends (its links) killed: versions written meanwhile stay
    PENDING and owed (the status command says how many), none is failed; once the links are
    back every one arrives, the destination's history equal to the source's."""
    s1 = client(stamps, "stamp-1")
    source = versioned(s1, homed_bucket(stamps, "stamp-1", "x-cut-src", s3=s1))
    dest = versioned(client(stamps, "stamp-2"), homed_bucket(stamps, "stamp-2", "x-cut-dst"))
    replicate(s1, source, dest)
    s1.put_object(Bucket=source, Key="before", Body=b"before the cut")
    wait_for("the first version COMPLETED", lambda: all_completed(s1, source))
    links = [n["name"] for n in stamps.nodes_of("frontend") if n["name"].startswith("s2-")]
    assert links, stamps.running()["nodes"]
    for name in links:
        stamps.node("kill", name)
    try:
        written = []
        for i in range(30):
            key = f"during/k{i % 5}"
            written.append((key, s1.put_object(Bucket=source, Key=key, Body=f"v{i}".encode())["VersionId"]))
        s1.delete_object(Bucket=source, Key="during/k0")
        report = wait_for("versions owed", lambda: (lambda r: r if r["owed_versions"] > 0 else None)(
            replication_status(stamps, source)))
        assert report["owed_versions"] <= 31, report
        # `strata status` lists the bucket among those owing versions.
        owing = {b["bucket"]: b for b in stamps.status()["replication"]["owing"]}
        assert owing[source]["owed_versions"] > 0, owing
        assert owing[source]["oldest_owed_age_ms"] >= 0, owing
        assert 0 < owing[source]["owed_bytes"] <= 30 * len(b"v29"), owing
        shown = {status(s1, source, key, vid) for key, vid in written}
        assert "FAILED" not in shown and "PENDING" in shown, shown
    finally:
        for name in links:
            stamps.node("start", name)
    wait_for("every version COMPLETED after the cut", lambda: all_completed(s1, source), timeout_s=120)
    wait_for("nothing owed in strata status", lambda: source not in
             {b["bucket"] for b in stamps.status()["replication"]["owing"]})
    s2 = client(stamps, "stamp-2")
    assert history(s2, dest) == history(s1, source)


def test_the_replicated_through_header_never_passes_a_write_that_has_not_arrived(stamps):
    """While a writer keeps writing to the source (on the other stamp), a reader of the
    destination reads T, then lists the destination: every write the writer saw acknowledged
    before T must be in that listing. T must also move on as the writes arrive."""
    s1, s2 = client(stamps, "stamp-1"), client(stamps, "stamp-2")
    source = versioned(s1, homed_bucket(stamps, "stamp-1", "x-order-src", s3=s1))
    dest = versioned(s2, homed_bucket(stamps, "stamp-2", "x-order-dst", s3=s2))
    replicate(s1, source, dest)
    acknowledged = []  # (client time after the answer, key, version id)
    stop = threading.Event()

    def writer():
        writes = client(stamps, "stamp-1")
        i = 0
        while not stop.is_set():
            key = f"hour={i % 24:02}/part-{i}.parquet"
            vid = writes.put_object(Bucket=source, Key=key, Body=b"x" * (1 + i % 3000))["VersionId"]
            acknowledged.append((datetime.datetime.now(datetime.timezone.utc), key, vid))
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    checks, seen = 0, set()
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            through = replicated_through(s2, dest)
            if through is None:
                continue
            before = [(key, vid) for at, key, vid in list(acknowledged) if at < through]
            present = {(v["Key"], v["VersionId"])
                       for page in s2.get_paginator("list_object_versions").paginate(Bucket=dest)
                       for v in page.get("Versions", [])}
            missing = [w for w in before if w not in present]
            assert not missing, (through, missing[:5])
            checks += 1
            seen.add(through)
    finally:
        stop.set()
        thread.join()
    assert checks >= 3 and len(seen) >= 2, (checks, seen)
    assert len(acknowledged) > 10
    # Once everything arrived, T passes the last write.
    last = acknowledged[-1][0]
    wait_for("T past the last write", lambda: (lambda t: t and t > last)(replicated_through(s2, dest)))


def test_resync_replicates_what_was_written_before_the_rule_and_resumes(stamps):
    """`strata replication resync`: versions written before the rule (every version of a key,
    and a delete marker) are marked and arrive; running it again marks nothing more; versions
    written after the rule are not marked twice."""
    s1, s2 = client(stamps, "stamp-1"), client(stamps, "stamp-2")
    source = versioned(s1, homed_bucket(stamps, "stamp-1", "x-resync-src", s3=s1))
    dest = versioned(s2, homed_bucket(stamps, "stamp-2", "x-resync-dst", s3=s2))
    for i in range(12):
        s1.put_object(Bucket=source, Key=f"old/k{i % 4}", Body=f"old {i}".encode())
    s1.delete_object(Bucket=source, Key="old/k3")
    replicate(s1, source, dest)
    s1.put_object(Bucket=source, Key="new", Body=b"after the rule")
    wait_for("the new version COMPLETED", lambda: status(
        s1, source, "new", s1.head_object(Bucket=source, Key="new")["VersionId"]) == "COMPLETED")
    assert history(s2, dest)[0] and len(history(s2, dest)[0]) == 1

    report = resync(stamps, source)
    assert (report["versions_marked"], report["done"], report["owed_versions"]) == (13, True, 0), report
    wait_for("every version COMPLETED", lambda: all_completed(s1, source))
    assert history(s2, dest) == history(s1, source)
    again = resync(stamps, source)
    assert again["versions_marked"] == 0 and again["done"], again


def resync(stamp, bucket):
    import subprocess

    from stamp import BIN_DIR
    out = subprocess.run(
        [str(BIN_DIR / "strata"), "replication", "resync", bucket, "--data-dir", str(stamp.data_dir),
         "--json", "--wait-s", "120"],
        check=True, capture_output=True, env=stamp.env(), timeout=180)
    return json.loads(out.stdout)

