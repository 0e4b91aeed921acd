"""Replication between two real stamps under the workloads of issue 16, item 8: a rule set up
with the aws cli, then 5,000 versions and delete markers written by many writers at once,
which arrive in commit order (a destination never shows a key's version before the ones
committed ahead of it) with COMPLETED on the source and REPLICA on the destination; and an
hourly partitioned Parquet dataset written with pyarrow to the source and read whole from the
replica by a reader that waits only for `x-strata-replicated-through` to pass each hour."""

import datetime
import json
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

from stamp import ACCESS_KEY, SECRET_KEY
from test_replication import (  # noqa: F401 (stamps is the module's fixture)
    ROLE,
    client,
    replicated_through,
    rule,
    stamps,
    versioned,
)
from test_replication_shipping import history, replicate, replication_status, status, wait_for
from test_two_stamps import endpoints, homed_bucket

WRITERS = 16
OPERATIONS = 5_000
KEYS = 250
# Every MARKER_EVERY-th operation deletes its key (a delete marker) instead of writing it.
MARKER_EVERY = 20


def oldest_first(s3, bucket):
    """Per key, its version ids and its markers' ids, oldest first."""
    versions, markers = {}, {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []):
            versions.setdefault(v["Key"], []).insert(0, v["VersionId"])
        for m in page.get("DeleteMarkers", []):
            markers.setdefault(m["Key"], []).insert(0, m["VersionId"])
    return versions, markers


def test_versions_and_markers_written_under_load_arrive_in_commit_order(stamps, tmp_path):
    s1, s2 = client(stamps, "stamp-1"), client(stamps, "stamp-2")
    source = versioned(s1, homed_bucket(stamps, "stamp-1", "load-src", s3=s1))
    dest = versioned(s2, homed_bucket(stamps, "stamp-2", "load-dst", s3=s2))
    config = tmp_path / "replication.json"
    config.write_text(json.dumps({"Role": ROLE, "Rules": [rule("all", "", f"arn:aws:s3:::{dest}")]}))
    cli = stamps.aws("s3api", "put-bucket-replication", "--bucket", source,
                     "--replication-configuration", f"file://{config}")
    assert cli.returncode == 0, cli.stderr.decode()

    def write(worker):
        s3 = client(stamps, "stamp-1")
        for i in range(worker, OPERATIONS, WRITERS):
            key = f"load/k{i % KEYS:03}"
            if i % MARKER_EVERY == MARKER_EVERY - 1:
                s3.delete_object(Bucket=source, Key=key)
            else:
                s3.put_object(Bucket=source, Key=key, Body=f"{key} op {i}".encode())

    # What the destination shows while the load runs, compared at the end with the source.
    seen, stop = [], threading.Event()

    def watch():
        s3 = client(stamps, "stamp-2")
        while not stop.is_set():
            seen.append(oldest_first(s3, dest))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(WRITERS) as pool:
            list(pool.map(write, range(WRITERS)))
        wait_for("nothing owed", lambda: replication_status(stamps, source)["owed_versions"] == 0,
                 timeout_s=180)
    finally:
        stop.set()
        watcher.join()
    assert len(seen) >= 2, "the destination was watched while the load ran"

    final = history(s1, source)
    assert len(final[0]) + len(final[1]) == OPERATIONS
    assert history(s2, dest) == final
    versions, markers = oldest_first(s1, source)
    for shown_versions, shown_markers in seen:
        for key, ids in shown_versions.items():
            assert ids == versions[key][:len(ids)], (key, ids, versions[key])
        for key, ids in shown_markers.items():
            assert ids == markers[key][:len(ids)], (key, ids, markers[key])

    # A delete marker answers HEAD by version with 405 and no replication status: markers are
    # checked by the histories above.
    every = [(k, v) for k, v, *_ in final[0]]
    with ThreadPoolExecutor(WRITERS) as pool:
        shown = list(pool.map(lambda kv: status(s1, source, *kv), every))
        replicas = list(pool.map(lambda kv: status(s2, dest, *kv), every[::25]))
    assert set(shown) == {"COMPLETED"}
    assert set(replicas) == {"REPLICA"}


def test_an_hourly_parquet_dataset_is_read_whole_from_the_replica_once_the_watermark_passes(stamps):
    import pyarrow as pa
    import pyarrow.dataset as ds
    from pyarrow import fs

    s1, s2 = client(stamps, "stamp-1"), client(stamps, "stamp-2")
    source = versioned(s1, homed_bucket(stamps, "stamp-1", "hourly-src", s3=s1))
    dest = versioned(s2, homed_bucket(stamps, "stamp-2", "hourly-dst", s3=s2))
    replicate(s1, source, dest)

    def filesystem(stamp):
        url = urllib.parse.urlparse(endpoints(stamps)[stamp])
        return fs.S3FileSystem(access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                               endpoint_override=url.netloc, scheme=url.scheme,
                               region="us-east-1", allow_bucket_creation=False)

    writer, reader = filesystem("stamp-1"), filesystem("stamp-2")
    rows_per_hour, ids = 2_000, []
    for hour in range(6):
        first = hour * rows_per_hour
        table = pa.table({
            "hour": pa.array([hour] * rows_per_hour, pa.int32()),
            "id": pa.array(range(first, first + rows_per_hour), pa.int64()),
            "value": pa.array([i * 0.25 for i in range(rows_per_hour)], pa.float64()),
        })
        ds.write_dataset(table, f"{source}/exports", format="parquet", partitioning=["hour"],
                         partitioning_flavor="hive", filesystem=writer,
                         basename_template=f"part-{hour}-{{i}}.parquet",
                         existing_data_behavior="overwrite_or_ignore")
        written = datetime.datetime.now(datetime.timezone.utc)
        ids += range(first, first + rows_per_hour)
        # The reader waits for the watermark only, then reads every hour so far, whole.
        wait_for(f"the watermark past hour {hour}",
                 lambda: (lambda t: t is not None and t > written)(replicated_through(s2, dest)))
        replica = ds.dataset(f"{dest}/exports", format="parquet", partitioning="hive",
                             filesystem=reader).to_table()
        assert sorted(replica.column("id").to_pylist()) == ids
        assert sorted(set(replica.column("hour").to_pylist())) == list(range(hour + 1))
