"""Benchmark (not a test): what forwarding between stamps costs, on `strata up --stamps 2`.
One bucket lives on stamp-2; the same GETs and PUTs are made through stamp-2's own endpoint and
through stamp-1's (forwarded), and the median latency and the throughput of each are printed.

    python3 tests/bench/forwarding.py [--requests 300] [--size 4096] [--big-mib 64]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from stamp import Stamp  # noqa: E402


def timed(fn, count):
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        fn(i)
        latencies.append(time.perf_counter() - started)
    return latencies


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--size", type=int, default=4096, help="bytes per small object")
    parser.add_argument("--big-mib", type=int, default=64, help="MiB of the one large object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stamp = Stamp(Path(tmp) / "data", extra_args=["--stamps", "2"]).start(timeout_s=180)
        try:
            home = stamp.client(endpoint=f"http://127.0.0.1:{stamp.port + 1}")
            other = stamp.client()
            home.create_bucket(Bucket="bench")
            body = os.urandom(args.size)
            big = os.urandom(args.big_mib * 1024 * 1024)
            print(f"{args.requests} requests of {args.size} B each, then one {args.big_mib} MiB PUT and GET")
            print(f"{'path':<22} {'PUT p50 ms':>10} {'GET p50 ms':>10} {'big PUT MiB/s':>14} {'big GET MiB/s':>14}")
            for name, s3 in [("home (stamp-2)", home), ("forwarded (stamp-1)", other)]:
                puts = timed(lambda i: s3.put_object(Bucket="bench", Key=f"k{i}", Body=body), args.requests)
                gets = timed(lambda i: s3.get_object(Bucket="bench", Key=f"k{i}")["Body"].read(), args.requests)
                started = time.perf_counter()
                s3.put_object(Bucket="bench", Key="big", Body=big)
                put_rate = args.big_mib / (time.perf_counter() - started)
                started = time.perf_counter()
                assert len(s3.get_object(Bucket="bench", Key="big")["Body"].read()) == len(big)
                get_rate = args.big_mib / (time.perf_counter() - started)
                print(
                    f"{name:<22} {statistics.median(puts) * 1000:>10.2f} {statistics.median(gets) * 1000:>10.2f}"
                    f" {put_rate:>14.1f} {get_rate:>14.1f}"
                )
        finally:
            stamp.stop()


if __name__ == "__main__":
    main()
