"""Benchmark (not a test): sequential small-object requests per second through a real local
stamp, one boto3 client, one connection (latency-bound: each number is 1 / round trip).

    python3 tests/bench/small_object_rate.py [--requests 500] [--size-bytes 1024]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from stamp import Stamp  # noqa: E402


def rate(n, call):
    started = time.perf_counter()
    for i in range(n):
        call(i)
    return n / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--size-bytes", type=int, default=1024)
    args = parser.parse_args()
    body = os.urandom(args.size_bytes)
    with tempfile.TemporaryDirectory() as tmp:
        stamp = Stamp(Path(tmp) / "data").start()
        try:
            s3 = stamp.client()
            s3.create_bucket(Bucket="bench")
            n = args.requests
            put = rate(n, lambda i: s3.put_object(Bucket="bench", Key=f"k{i}", Body=body))
            get = rate(n, lambda i: s3.get_object(Bucket="bench", Key=f"k{i}")["Body"].read())
            head = rate(n, lambda i: s3.head_object(Bucket="bench", Key=f"k{i}"))
            print(f"{n} sequential requests, {args.size_bytes} B objects")
            print(f"PUT  {put:7.1f} req/s")
            print(f"GET  {get:7.1f} req/s")
            print(f"HEAD {head:7.1f} req/s")
        finally:
            stamp.stop()


if __name__ == "__main__":
    main()
