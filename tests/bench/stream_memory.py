"""Benchmark (not a test): peak memory of the front-end and partition servers while one
2 GiB object is PUT and then GET through a real local stamp.

    python3 tests/bench/stream_memory.py [--size-mib 2048]

Peak RSS is the kernel's VmHWM of each node process (/proc/<pid>/status), read after the
transfer. Bodies are streamed from and to disk on the client side, so the client's memory does
not matter either.
"""

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from stamp import Stamp  # noqa: E402

MIB = 1024 * 1024


def peak_rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=2048)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        source = Path(tmp) / "object.bin"
        digest = hashlib.sha256()
        with open(source, "wb") as out:
            block = os.urandom(MIB)
            for i in range(args.size_mib):
                # Vary each MiB so no layer can deduplicate, without paying urandom per byte.
                piece = i.to_bytes(8, "little") + block[8:]
                out.write(piece)
                digest.update(piece)
        stamp = Stamp(Path(tmp) / "stamp").start()
        try:
            s3 = stamp.client()
            s3.create_bucket(Bucket="bench")
            started = time.monotonic()
            with open(source, "rb") as body:
                s3.put_object(Bucket="bench", Key="big", Body=body, ContentLength=args.size_mib * MIB)
            put_s = time.monotonic() - started
            started = time.monotonic()
            got = hashlib.sha256()
            stream = s3.get_object(Bucket="bench", Key="big")["Body"]
            for chunk in iter(lambda: stream.read(MIB), b""):
                got.update(chunk)
            get_s = time.monotonic() - started
            assert got.hexdigest() == digest.hexdigest(), "GET returned other bytes"
            nodes = stamp.running()["nodes"]
            print(f"object: {args.size_mib} MiB, sha256 verified")
            print(f"PUT: {put_s:.1f} s ({args.size_mib / put_s:.0f} MiB/s); GET: {get_s:.1f} s ({args.size_mib / get_s:.0f} MiB/s)")
            for node in nodes:
                if node["kind"] in ("frontend", "partition-server"):
                    print(f"peak RSS {node['name']:<12} {peak_rss_mib(node['pid']):7.1f} MiB")
        finally:
            stamp.stop()


if __name__ == "__main__":
    main()
