"""Benchmark (not a test): sustained PUTs/s on one hot prefix before and after the automatic
split and move, on a local stamp with 3 partition servers and a per-range request limit set well
below what the machine can do (so one range is the bottleneck until it is split and its halves
spread over servers).

    python3 tests/bench/hot_prefix.py [--range-limit 60] [--threads 8] [--after-s 60]

Prints the acknowledged PUTs/s over the seconds before the first split, then per 10 s window
after it, the range changes the manager logged, and the ratio of the best 10 s window after to
the rate before.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hotload import HotWriters  # noqa: E402
from stamp import Stamp, wait_for  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--range-limit", type=int, default=60, help="requests/s one range accepts")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--after-s", type=int, default=60, help="how long to measure after the split")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stamp = Stamp(
            Path(tmp) / "data",
            extra_args=[
                "--partition-servers", "3",
                "--range-requests-per-sec-max", str(args.range_limit),
                "--bucket-requests-per-sec-max", "0",
                "--split-requests-per-sec", str(args.range_limit // 2),
                "--split-sustain-ms", "10000",
                "--reshape-cooldown-ms", "5000",
                "--move-requests-per-sec-min", "5",
                "--merge-requests-per-sec", "0",
            ],
        ).start()
        try:
            stamp.client().create_bucket(Bucket="bench")
            writers = HotWriters(stamp, "bench", "hot/2026-12-01/", threads=args.threads).start()
            started = time.monotonic()

            def changes():
                return stamp.status().get("range_events") or []

            first_split = wait_for(lambda: [e for e in changes() if e["kind"] == "split"], 120, "a split")
            split_at = time.monotonic()
            # The 8 s before the split (after 2 s of warm-up).
            window_s = max(1.0, min(8.0, split_at - started - 2.0))
            before = writers.acked_between(split_at - window_s, split_at) / window_s
            slowdowns_before = writers.slowdowns_since(started)
            rates = []
            deadline = split_at + args.after_s
            while time.monotonic() < deadline:
                window_start = time.monotonic()
                wait_for(lambda: time.monotonic() >= window_start + 10, 15, "a 10 s window")
                rates.append(writers.acked_between(window_start, window_start + 10) / 10)
            writers.stop()
            events = changes()
            status = stamp.status()
        finally:
            stamp.stop()
    print(f"range limit {args.range_limit} requests/s, {args.threads} writer threads, 3 partition servers")
    print(f"before the first split: {before:.1f} PUTs/s ({slowdowns_before} SlowDown answers so far)")
    for i, rate in enumerate(rates):
        print(f"  {10 * i:>3}-{10 * (i + 1):<3} s after: {rate:.1f} PUTs/s")
    best = max(rates) if rates else 0.0
    print(f"best 10 s after / before: {best / before:.2f}x" if before else "no rate before the split")
    print(f"ranges at the end: {len(status['ranges'])} on {len({r['owner'] for r in status['ranges']})} servers")
    for event in events:
        print(f"  {event['kind']:<6} {event['detail']}")
    del first_split


if __name__ == "__main__":
    main()
