"""Two stamps under one location group (`strata up --stamps 2`), every node a real process:
each stamp registers itself, node names are unique across stamps, buckets are homed on the
stamp whose front-end created them and names are unique across both, and a restart without
--stamps brings both stamps back with their data."""

import json
import subprocess

import pytest
from botocore.exceptions import ClientError

from stamp import BIN_DIR, Stamp, wait_for

BUCKETS_PER_STAMP = 10


@pytest.fixture(scope="module")
def two_stamps(tmp_path_factory):
    stamp = Stamp(tmp_path_factory.mktemp("two-stamps") / "data", extra_args=["--stamps", "2"])
    stamp.start(timeout_s=180)
    yield stamp
    stamp.stop()


def endpoints(stamp):
    return {"stamp-1": stamp.endpoint, "stamp-2": f"http://127.0.0.1:{stamp.port + 1}"}


def client(stamp, name):
    return stamp.client(endpoint=endpoints(stamp)[name])


def locate(stamp, bucket):
    out = subprocess.run(
        [str(BIN_DIR / "strata"), "bucket", "locate", bucket, "--data-dir", str(stamp.data_dir)],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return out.stdout.decode().strip()


def test_each_stamp_registers_itself_and_names_every_node_once(two_stamps):
    status = two_stamps.status()
    stamps = {s["name"]: s for s in status["stamps"]}
    assert sorted(stamps) == ["stamp-1", "stamp-2"], status["stamps"]
    for name, endpoint in endpoints(two_stamps).items():
        assert stamps[name]["endpoint"] == endpoint, stamps[name]
        assert stamps[name]["region"] == "us-east-1"
        assert stamps[name]["state"] == "open"
        assert stamps[name]["health"] == "healthy", stamps[name]
    nodes = status["nodes"]
    names = [n["name"] for n in nodes]
    assert len(names) == len(set(names)), names
    by_stamp = {}
    for node in nodes:
        assert "stamp" in node, node
        by_stamp.setdefault(node["stamp"], []).append(node)
    assert [n["kind"] for n in by_stamp[None]] == ["location"] * 3
    for name, prefix in [("stamp-1", ""), ("stamp-2", "s2-")]:
        own = by_stamp[name]
        assert all(n["name"].startswith(prefix) for n in own), [n["name"] for n in own]
        kinds = sorted({n["kind"] for n in own})
        assert kinds == sorted(
            ["stream-manager", "extent-node", "partition-manager", "partition-server", "frontend"]
        )
        assert len([n for n in own if n["kind"] == "extent-node"]) == 6
    # The details of the second stamp: its own ranges, served by its own partition servers.
    second = subprocess.run(
        [str(BIN_DIR / "strata"), "status", "--json", "--stamp", "stamp-2", "--data-dir", str(two_stamps.data_dir)],
        capture_output=True,
        timeout=60,
        check=True,
        env=two_stamps.env(),
    )
    detail = json.loads(second.stdout)
    assert detail["stamp"] == "stamp-2"
    servers = {n["addr"] for n in by_stamp["stamp-2"] if n["kind"] == "partition-server"}
    assert detail["ranges"] and all(r["owner_addr"] in servers for r in detail["ranges"]), detail["ranges"]


def test_buckets_are_homed_where_created_and_names_are_global(two_stamps):
    for name in ["stamp-1", "stamp-2"]:
        s3 = client(two_stamps, name)
        for i in range(BUCKETS_PER_STAMP):
            bucket = f"{name}-bucket-{i}"
            s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key="k", Body=f"{bucket} body".encode())
    for name in ["stamp-1", "stamp-2"]:
        s3 = client(two_stamps, name)
        for i in range(BUCKETS_PER_STAMP):
            bucket = f"{name}-bucket-{i}"
            assert locate(two_stamps, bucket) == name
            assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == f"{bucket} body".encode()
    # A name held on one stamp cannot be created on the other.
    with pytest.raises(ClientError) as refused:
        client(two_stamps, "stamp-2").create_bucket(Bucket="stamp-1-bucket-0")
    assert refused.value.response["Error"]["Code"] == "BucketAlreadyOwnedByYou"
    assert locate(two_stamps, "stamp-1-bucket-0") == "stamp-1"
    counts = wait_for(
        lambda: {s["name"]: s["buckets"] for s in two_stamps.status()["stamps"]},
        30,
        "the stamps listed",
    )
    assert counts == {"stamp-1": BUCKETS_PER_STAMP, "stamp-2": BUCKETS_PER_STAMP}, counts


def test_a_restart_without_stamps_brings_both_back(two_stamps):
    s3 = client(two_stamps, "stamp-2")
    s3.create_bucket(Bucket="kept-on-two")
    s3.put_object(Bucket="kept-on-two", Key="k", Body=b"kept")
    two_stamps.stop()
    assert two_stamps.process.returncode == 0
    two_stamps.extra_args = []  # plain `strata up`: as many stamps as the data folder holds
    two_stamps.start(timeout_s=180)
    assert sorted(s["name"] for s in two_stamps.status()["stamps"]) == ["stamp-1", "stamp-2"]
    s3 = client(two_stamps, "stamp-2")
    assert s3.get_object(Bucket="kept-on-two", Key="k")["Body"].read() == b"kept"
    assert locate(two_stamps, "kept-on-two") == "stamp-2"
