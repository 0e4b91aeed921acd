"""Benchmark (not a test): how long a SIGKILLed partition server's keys are unavailable, on a
local stamp with 3 partition servers: a writer PUTs to a key of the victim's range with no
client retries (the front-end still retries within its budget), and the time from the kill to
the first acknowledged PUT after it is measured, once per round.

    python3 tests/bench/partition_failover.py [--rounds 5]

Prints each round, then the median and the max.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from stamp import NO_RETRIES, Stamp, wait_for  # noqa: E402


def owner_name(stamp):
    names = {n["addr"]: n["name"] for n in stamp.running()["nodes"]}
    ranges = stamp.status()["ranges"]
    return names.get(ranges[0]["owner_addr"]) if len(ranges) == 1 else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    gaps_ms = []
    with tempfile.TemporaryDirectory() as tmp:
        # One range (no splits), so "the victim" is the owner of every key.
        stamp = Stamp(
            Path(tmp) / "data",
            extra_args=["--partition-servers", "3", "--split-requests-per-sec", "0", "--split-bytes-per-sec", "0"],
        ).start()
        try:
            s3 = stamp.client(retries=NO_RETRIES, connect_timeout=2, read_timeout=10)
            s3.create_bucket(Bucket="bench")
            # Enough objects that a load replays a real log and checkpoint.
            for i in range(2000):
                s3.put_object(Bucket="bench", Key=f"warm/{i:05d}", Body=b"x" * 100)
            for round_no in range(args.rounds):
                victim = wait_for(lambda: owner_name(stamp), 30, "one owned range")
                s3.put_object(Bucket="bench", Key="probe", Body=b"before")
                stamp.node("kill", victim)
                killed = time.monotonic()
                while True:
                    try:
                        s3.put_object(Bucket="bench", Key="probe", Body=f"round {round_no}".encode())
                        break
                    except Exception:
                        if time.monotonic() - killed > 60:
                            raise
                gap_ms = (time.monotonic() - killed) * 1000
                gaps_ms.append(gap_ms)
                print(f"round {round_no + 1}: killed {victim}, writes acknowledged again after {gap_ms:.0f} ms")
                stamp.node("start", victim)
                wait_for(
                    lambda: next(n for n in stamp.status()["nodes"] if n["name"] == victim)["healthy"],
                    60,
                    "the killed server back",
                )
        finally:
            stamp.stop()
    print(f"median {statistics.median(gaps_ms):.0f} ms, max {max(gaps_ms):.0f} ms over {len(gaps_ms)} rounds")


if __name__ == "__main__":
    main()
