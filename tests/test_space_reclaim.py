"""Deleting objects frees disk: the partition servers' data-stream compaction moves the little
live data off old extents and trims the data stream, and the stream manager deletes the trimmed
extents from the extent nodes after its GC delay (short here)."""

import hashlib
import os

import pytest

from stamp import Stamp, wait_for

MIB = 1024 * 1024
STAMP_ARGS = [
    # Small extents, so ~24 MiB of objects fill a dozen sealed extents.
    "--extent-size-bytes-max", str(2 * MIB),
    # Trimmed extents are deleted after 2 s (it must exceed the longest GET; GETs here are short).
    "--gc-delay-ms", "2000",
    "--compaction-interval-ms", "1000",
]


@pytest.fixture
def reclaim_stamp(tmp_path):
    s = Stamp(tmp_path / "data", extra_args=STAMP_ARGS).start()
    s.s3 = s.client()
    s.s3.create_bucket(Bucket="reclaim")
    yield s
    s.stop()


def disk_used(stamp):
    return sum(node["disk_used_bytes"] or 0 for node in stamp.status()["extent_nodes"])


def test_deleted_objects_free_disk(reclaim_stamp):
    s3 = reclaim_stamp.s3
    # A small object that stays: it must read back byte-exact after its chunk was moved.
    keeper = os.urandom(100 * 1024)
    s3.put_object(Bucket="reclaim", Key="keeper", Body=keeper)
    keys = []
    for i in range(24):
        key = f"big/{i}"
        s3.put_object(Bucket="reclaim", Key=key, Body=os.urandom(MIB))
        keys.append(key)
    # 24 MiB of objects, 3 replicas each: at least ~72 MiB across the extent nodes once every
    # node's heartbeat reported its extents.
    peak = wait_for(
        lambda: (lambda used: used if used >= 60 * MIB else None)(disk_used(reclaim_stamp)),
        60,
        "extent nodes to report the written data",
        interval_s=0.5,
    )

    for key in keys:
        s3.delete_object(Bucket="reclaim", Key=key)

    low = wait_for(
        lambda: (lambda used: used if used < peak // 3 else None)(disk_used(reclaim_stamp)),
        120,
        f"disk used to drop well below {peak} bytes after deleting everything",
        interval_s=1.0,
    )
    assert low < peak // 3

    body = s3.get_object(Bucket="reclaim", Key="keeper")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(keeper).hexdigest()
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="reclaim").get("Contents", [])]
    assert listed == ["keeper"]
