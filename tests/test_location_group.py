"""The location group (the bucket namespace, 3 Raft members) on a real stamp: its leader is
SIGKILLed; objects of existing buckets are read at once (they never ask the location group),
buckets are created and deleted through the election with nothing lost, a name stays held once,
and the killed member rejoins."""

import json
import subprocess
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from stamp import BIN_DIR, NO_RETRIES, Stamp, wait_for

BUCKETS_BEFORE = 4
BUCKETS_DURING = 8


@pytest.fixture(scope="module")
def location_stamp(tmp_path_factory):
    stamp = Stamp(tmp_path_factory.mktemp("location-group") / "data").start()
    yield stamp
    stamp.stop()


def health(node):
    """A node's /health answer, or None when it does not answer healthy."""
    try:
        with urllib.request.urlopen(f"http://{node['http_addr']}/health", timeout=2) as answer:
            return json.load(answer)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def location_leader(stamp, among=None):
    """The location member every answering member names as leader, when they agree."""
    members = among or stamp.nodes_of("location")
    named = set()
    for member in members:
        answer = health(member)
        if answer is None:
            continue
        named.add(answer["details"]["leader_id"])
    if len(named) != 1:
        return None
    leaders = [m for m in stamp.nodes_of("location") if m.get("member_id") in named]
    return leaders[0] if leaders else None


def locate(stamp, bucket):
    return subprocess.run(
        [str(BIN_DIR / "strata"), "bucket", "locate", bucket, "--json", "--data-dir", str(stamp.data_dir)],
        capture_output=True,
        timeout=60,
    )


def test_status_lists_the_stamp_and_locate_names_a_buckets_home(location_stamp):
    stamp = location_stamp
    s3 = stamp.client()
    s3.create_bucket(Bucket="loc-located")
    found = locate(stamp, "loc-located")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout) == {"bucket": "loc-located", "stamp": "stamp-1"}
    missing = locate(stamp, "loc-never-made")
    assert missing.returncode != 0 and b"no bucket" in missing.stderr, missing

    status = stamp.status()
    assert [s["name"] for s in status["stamps"]] == ["stamp-1"], status["stamps"]
    (own,) = status["stamps"]
    assert own["region"] == "us-east-1" and own["state"] == "open", own
    assert own["endpoint"] == stamp.endpoint, own
    assert own["buckets"] >= 1
    # Location members serve every stamp: they name none.
    assert all(node["stamp"] == (None if node["kind"] == "location" else "stamp-1") for node in status["nodes"])


def test_buckets_are_created_and_deleted_while_the_location_leader_is_killed(location_stamp):
    stamp = location_stamp
    assert len(stamp.nodes_of("location")) == 3
    s3 = stamp.client()
    once = stamp.client(retries=NO_RETRIES)
    before = [f"loc-before-{i}" for i in range(BUCKETS_BEFORE)]
    for name in before:
        s3.create_bucket(Bucket=name)
        s3.put_object(Bucket=name, Key="k", Body=name.encode())

    leader = wait_for(lambda: location_leader(stamp), 30, "the location members to agree on a leader")
    stamp.node("kill", leader["name"])

    # Existing buckets never ask the location group: served at once, each request sent once.
    for name in before:
        assert once.get_object(Bucket=name, Key="k")["Body"].read() == name.encode()

    # Names are reserved through the election (the front-end finds the new leader).
    during = [f"loc-during-{i}" for i in range(BUCKETS_DURING)]
    for name in during:
        s3.create_bucket(Bucket=name)
    survivors = [m for m in stamp.nodes_of("location") if m["name"] != leader["name"]]
    new_leader = wait_for(lambda: location_leader(stamp, survivors), 30, "a new location leader")
    assert new_leader["name"] != leader["name"]

    listed = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert set(before + during) <= listed
    with pytest.raises(ClientError) as taken:
        s3.create_bucket(Bucket=during[0])
    assert taken.value.response["Error"]["Code"] == "BucketAlreadyOwnedByYou"

    # A name released under the new leader is free again.
    s3.delete_bucket(Bucket=during[1])
    s3.create_bucket(Bucket=during[1])
    s3.head_bucket(Bucket=during[1])

    # The killed member rejoins and agrees on the leader.
    stamp.node("start", leader["name"])
    wait_for(
        lambda: all(health(m) for m in stamp.nodes_of("location")) and location_leader(stamp),
        60,
        "the restarted member to rejoin the location group",
    )
    for name in before:
        assert s3.get_object(Bucket=name, Key="k")["Body"].read() == name.encode()
