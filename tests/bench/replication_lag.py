"""Benchmark (not a test): replication lag between two stamps, on `strata up --stamps 2`.
A versioned bucket on stamp-1 replicates to one on stamp-2. Writers PUT objects to the
source; for every acknowledged version a prober asks the destination for that version id
(HEAD, every few ms) until it is there. The lag of a version is from its PUT's answer to the
first HEAD that finds it; the median, p90, p99 and max are printed per object size.

    python3 tests/bench/replication_lag.py [--small 2000] [--writers 8] [--large 8] [--large-mib 64]
"""

import argparse
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from stamp import Stamp  # noqa: E402

ROLE = "arn:aws:iam::000000000000:role/replication"


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def arrived(s3, bucket, key, version_id):
    try:
        s3.head_object(Bucket=bucket, Key=key, VersionId=version_id)
        return True
    except ClientError as err:
        if err.response["ResponseMetadata"]["HTTPStatusCode"] in (404, 403):
            return False
        raise


def phase(stamp, source, dest, label, count, writers, size, poll_s):
    """`count` PUTs of `size` bytes by `writers` threads; answers the lags (s) and the rate."""
    body = os.urandom(size)
    acknowledged = queue.Queue()
    lags = []

    def write(worker):
        s3 = stamp.client()
        for i in range(worker, count, writers):
            key = f"{label}/k{i:06}"
            version_id = s3.put_object(Bucket=source, Key=key, Body=body)["VersionId"]
            acknowledged.put((time.monotonic(), key, version_id))

    def probe():
        s3 = stamp.client(endpoint=f"http://127.0.0.1:{stamp.port + 1}")
        while True:
            item = acknowledged.get()
            if item is None:
                return
            at, key, version_id = item
            while not arrived(s3, dest, key, version_id):
                time.sleep(poll_s)
            lags.append(time.monotonic() - at)

    probers = [threading.Thread(target=probe) for _ in range(writers)]
    for prober in probers:
        prober.start()
    started = time.monotonic()
    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(write, range(writers)))
    wrote_s = time.monotonic() - started
    for _ in probers:
        acknowledged.put(None)
    for prober in probers:
        prober.join()
    return lags, count / wrote_s


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=2000, help="4 KiB objects written")
    parser.add_argument("--writers", type=int, default=8, help="writers (and probers) at once")
    parser.add_argument("--large", type=int, default=8, help="large objects written, one at a time")
    parser.add_argument("--large-mib", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stamp = Stamp(Path(tmp) / "data", extra_args=["--stamps", "2"]).start(timeout_s=180)
        try:
            s1 = stamp.client()
            s2 = stamp.client(endpoint=f"http://127.0.0.1:{stamp.port + 1}")
            s1.create_bucket(Bucket="lag-src")
            s2.create_bucket(Bucket="lag-dst")
            for s3, bucket in [(s1, "lag-src"), (s2, "lag-dst")]:
                s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            s1.put_bucket_replication(Bucket="lag-src", ReplicationConfiguration={
                "Role": ROLE,
                "Rules": [{"ID": "all", "Priority": 1, "Status": "Enabled", "Filter": {"Prefix": ""},
                           "DeleteMarkerReplication": {"Status": "Enabled"},
                           "Destination": {"Bucket": "arn:aws:s3:::lag-dst"}}],
            })
            runs = [
                ("4KiB", args.small, args.writers, 4096, 0.002),
                (f"{args.large_mib}MiB", args.large, 1, args.large_mib * 1024 * 1024, 0.01),
            ]
            print(f"{'size':<8} {'objects':>8} {'writers':>8} {'PUT/s':>8} {'lag p50':>10}"
                  f" {'p90':>10} {'p99':>10} {'max':>10}")
            for label, count, writers, size, poll_s in runs:
                lags, rate = phase(stamp, "lag-src", "lag-dst", label, count, writers, size, poll_s)
                ms = [lag * 1000 for lag in lags]
                print(f"{label:<8} {count:>8} {writers:>8} {rate:>8.1f} {statistics.median(ms):>8.1f}ms"
                      f" {percentile(ms, 0.9):>8.1f}ms {percentile(ms, 0.99):>8.1f}ms {max(ms):>8.1f}ms")
        finally:
            stamp.stop()


if __name__ == "__main__":
    main()
