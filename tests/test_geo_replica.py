"""Geo-replicas and fail-over (issue 16, item 7): a rule to `arn:strata:s3:STAMP::NAME` keeps a
copy of the bucket under its own name on the other stamp, unserved and filled only by
replication; `strata bucket fail-over` makes that copy the home at once and reports exactly
the acknowledged versions it had not received; `strata bucket fail-back` moves the bucket
back."""

import json
import subprocess

from botocore.exceptions import ClientError

from stamp import BIN_DIR
from test_bucket_move import move
from test_replication import ROLE, client, error_of, rule, stamps, versioned  # noqa: F401 (fixture)
from test_replication_shipping import history, replication_status, status, wait_for
from test_two_stamps import homed_bucket, locate


def strata(stamp, *args, timeout_s=60):
    out = subprocess.run([str(BIN_DIR / "strata"), *args, "--data-dir", str(stamp.data_dir)],
                         capture_output=True, env=stamp.env(), timeout=timeout_s)
    assert out.returncode == 0, out.stderr.decode()
    return json.loads(out.stdout)


def debug_rows(stamp, on, bucket):
    return strata(stamp, "debug", "rows", "--stamp", on, "--bucket", bucket)


def geo_replicate(s3, bucket, to):
    s3.put_bucket_replication(Bucket=bucket, ReplicationConfiguration={
        "Role": ROLE, "Rules": [rule("geo", "", f"arn:strata:s3:{to}::{bucket}")]})


def test_a_geo_replica_holds_every_version_on_the_other_stamp_and_a_move_there_takes_it_over(stamps):
    """`arn:strata:s3:STAMP::NAME`: the bucket's own name on another stamp, a copy that stamp
    holds without serving it (importing by the geo-replica mark), filled only by replication;
    a move of the bucket to that stamp takes the copy over."""
    s1, s2 = client(stamps, "stamp-1"), client(stamps, "stamp-2")
    source = versioned(s1, homed_bucket(stamps, "stamp-1", "repl-geo"))
    before_rule = s1.put_object(Bucket=source, Key="k/a", Body=b"a1")["VersionId"]
    geo_replicate(s1, source, "stamp-2")
    copy = debug_rows(stamps, "stamp-2", source)
    assert copy["bucket"]["importing"] and copy["bucket"]["move_id"] == "geo-replica", copy
    assert copy["versions"] == [], "made empty, before any version is marked"

    s1.put_object(Bucket=source, Key="k/a", Body=b"a2" * 1000)
    s1.put_object(Bucket=source, Key="k/b", Body=b"b1", Tagging="kind=parquet")
    s1.delete_object(Bucket=source, Key="k/b")
    s1.put_object(Bucket=source, Key="k/a", Body=b"")
    # The copy is never served: the other stamp forwards the bucket to its home, as before.
    assert locate(stamps, source) == "stamp-1"
    assert history(s2, source) == history(s1, source)

    versions, markers = history(s1, source)
    # Every version written under the rule, and the delete marker, as the source holds them
    # (the version written before the rule is resync's job).
    expected = sorted([(k, v, e.strip('"'), latest) for k, v, e, _, latest, _ in versions
                       if v != before_rule] + [(k, v, None, latest) for k, v, latest in markers])

    def held():
        rows = debug_rows(stamps, "stamp-2", source)["versions"]
        return sorted((r["key"], r["version_id"], None if r["delete_marker"] else r["etag"].strip('"'),
                       r["current"]) for r in rows), rows

    wait_for("the geo copy holds every version written under the rule", lambda: held()[0] == expected)
    assert all(r["replication_status"] == "REPLICATION_STATUS_REPLICA" for r in held()[1])
    wait_for("the source's versions COMPLETED", lambda: all(
        status(s1, source, k, v) == "COMPLETED" for k, v, *_ in versions if v != before_rule))

    move(stamps, source, "stamp-2")
    assert locate(stamps, source) == "stamp-2"
    assert history(s2, source) == (versions, markers)
    a2 = next(v for k, v, _, size, *_ in versions if k == "k/a" and size == 2000)
    assert s1.get_object(Bucket=source, Key="k/a", VersionId=a2)["Body"].read() == b"a2" * 1000


def test_fail_over_loses_exactly_what_it_reports_and_fail_back_brings_the_bucket_home(stamps):
    """The copy's stamp cut off (its front-ends, where replicas arrive, killed) while the home
    takes writes: a fail-over then makes the copy the home at once, and its report names
    exactly the versions acknowledged on the old home that the new one does not have. They
    never arrive later either; fail-back moves the bucket, as the new home holds it, back."""
    s1, s2 = client(stamps, "stamp-1"), client(stamps, "stamp-2")
    source = versioned(s1, homed_bucket(stamps, "stamp-1", "geo-fo"))
    geo_replicate(s1, source, "stamp-2")
    for i in range(4):
        s1.put_object(Bucket=source, Key=f"k{i}", Body=f"arrived {i}".encode())
    s1.delete_object(Bucket=source, Key="k3")
    arrived = history(s1, source)
    wait_for("every version in the copy", lambda: len(debug_rows(stamps, "stamp-2", source)["versions"])
             == len(arrived[0]) + len(arrived[1]))

    links = [n["name"] for n in stamps.nodes_of("frontend") if n["name"].startswith("s2-")]
    for name in links:
        stamps.node("kill", name)
    try:
        lost = [(f"k{i % 2}", s1.put_object(Bucket=source, Key=f"k{i % 2}", Body=f"lost {i}".encode())
                 ["VersionId"]) for i in range(5)]
        lost.append(("k2", s1.delete_object(Bucket=source, Key="k2")["VersionId"]))
        lost.append(("new", s1.put_object(Bucket=source, Key="new", Body=b"lost")["VersionId"]))
        retagged = next(v for k, v, *_ in arrived[0] if k == "k2")
        s1.put_object_tagging(Bucket=source, Key="k2", VersionId=retagged,
                              Tagging={"TagSet": [{"Key": "late", "Value": "yes"}]})
        owed = wait_for("the versions written in the cut owed", lambda: (lambda r: r if
                        r["owed_versions"] == len(lost) + 1 else None)(replication_status(stamps, source)))
        # Bytes owed: the five puts, the new key, the retagged version; markers have none.
        assert owed["owed_bytes"] == 5 * len(b"lost 0") + len(b"lost") + len(b"arrived 2"), owed
        report = strata(stamps, "bucket", "fail-over", source, "--json", timeout_s=180)
    finally:
        for name in links:
            stamps.node("start", name)
    assert sorted((v["key"], v["version_id"]) for v in report["lost_versions"]) == sorted(lost), report
    assert report["back_versions"] == [] and report["complete"], report
    assert [(v["key"], v["version_id"], v["tags"]) for v in report["changed_versions"]] == \
        [("k2", retagged, {"late": "yes"})], report
    assert (report["from"], report["to"]) == ("stamp-1", "stamp-2")
    assert locate(stamps, source) == "stamp-2"

    # Reads and writes by the name go to the new home, through either stamp.
    def answers():
        try:
            return history(s2, source)
        except Exception:  # its front-ends are starting again
            return None

    wait_for("the new home answers", answers)
    assert history(s2, source) == arrived
    assert history(s1, source) == arrived
    assert s1.get_object(Bucket=source, Key="k0")["Body"].read() == b"arrived 0"
    after = s1.put_object(Bucket=source, Key="k0", Body=b"after")["VersionId"]
    assert status(s2, source, "k0", after) is None, "its geo rule to itself was dropped"
    # The old home refuses the bucket and ships nothing more from it.
    assert debug_rows(stamps, "stamp-1", source)["bucket"]["moved_to"] == "stamp-2"

    summary = strata(stamps, "bucket", "fail-back", source, "--json", "--grace-s", "0", timeout_s=300)
    assert summary["outcome"] == "moved", summary
    assert locate(stamps, source) == "stamp-1"
    versions, markers = history(s1, source)
    assert (versions, markers) == history(s2, source)
    ids = {v for _, v, *_ in versions} | {v for _, v, _ in markers}
    assert after in ids and not ids & {v for _, v in lost}, "lost versions never came back"
    assert s1.get_object(Bucket=source, Key="k0")["Body"].read() == b"after"


def test_a_copy_no_rule_fills_is_dropped_and_its_name_can_be_created_there_again(stamps):
    """A bucket deleted on its home leaves its geo copy on the other stamp: a new bucket of
    that name there is refused with a clear error until `strata bucket drop-copy` removes it
    (refused itself while a rule still fills the copy)."""
    s1, s2 = client(stamps, "stamp-1"), client(stamps, "stamp-2")
    source = versioned(s1, homed_bucket(stamps, "stamp-1", "geo-drop"))
    geo_replicate(s1, source, "stamp-2")
    version = s1.put_object(Bucket=source, Key="k", Body=b"old")["VersionId"]
    wait_for("the version in the copy", lambda: debug_rows(stamps, "stamp-2", source)["versions"])
    refused = subprocess.run(
        [str(BIN_DIR / "strata"), "bucket", "drop-copy", source, "--stamp", "stamp-2",
         "--data-dir", str(stamps.data_dir)], capture_output=True, env=stamps.env(), timeout=60)
    assert refused.returncode != 0 and b"delete it first" in refused.stderr, refused.stderr
    assert len(debug_rows(stamps, "stamp-2", source)["versions"]) == 1

    s1.delete_object(Bucket=source, Key="k", VersionId=version)
    s1.delete_bucket_replication(Bucket=source)
    s1.delete_bucket(Bucket=source)
    assert error_of(s2.create_bucket, Bucket=source) == ("OperationAborted", 409)
    dropped = strata(stamps, "bucket", "drop-copy", source, "--stamp", "stamp-2", "--json")
    assert dropped["rows_removed"] == 1, dropped
    assert debug_rows(stamps, "stamp-2", source)["bucket"] is None

    def created():
        try:
            return s2.create_bucket(Bucket=source)
        except ClientError as err:  # a front-end's cached home (2 s) may name the old one
            assert err.response["Error"]["Code"] == "BucketAlreadyOwnedByYou", err.response
            return None

    wait_for("the name created again on stamp-2", created, timeout_s=15)
    assert locate(stamps, source) == "stamp-2"
    assert s2.list_object_versions(Bucket=source).get("Versions", []) == [], "nothing of the old one"
