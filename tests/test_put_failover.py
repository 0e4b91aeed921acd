"""Small PUTs while the partition server owning their range is SIGKILLed: the front-end retries
each one on the new owner (its write id keeps the retry idempotent) or answers 503 with
Retry-After; no client ever sees a 500, and every acknowledged PUT reads back. And while no
partition server runs at all, a PUT answers 503 ServiceUnavailable with Retry-After.

The clients here do not retry, so every answer the front-end gives is seen."""

import concurrent.futures
import os
import threading
import time

import pytest
from botocore.exceptions import ClientError

from stamp import NO_RETRIES, Stamp, wait_for
from test_partition_motion import owner_of

WRITERS = 32
BODY_BYTES = 4 * 1024
FAILOVER_ARGS = [
    "--partition-servers", "2",
    # No load-driven reshapes: the only motion is the failover the test causes.
    "--split-requests-per-sec", "0",
    "--split-bytes-per-sec", "0",
    "--merge-requests-per-sec", "0",
    "--move-requests-per-sec-min", "1000000",
]


@pytest.fixture(scope="module")
def failover_stamp(tmp_path_factory):
    stamp = Stamp(tmp_path_factory.mktemp("put-failover") / "data", extra_args=FAILOVER_ARGS).start()
    stamp.s3 = stamp.client()
    stamp.s3.create_bucket(Bucket="load")
    yield stamp
    stamp.stop()


class Writers:
    """WRITERS threads PUTting 4 KiB objects without client retries; every answer is kept."""

    def __init__(self, stamp, prefix):
        self.client = stamp.client(retries=NO_RETRIES, max_pool_connections=WRITERS)
        self.prefix = prefix
        self.acked = {}
        self.errors = []  # (key, HTTP status, S3 code, Retry-After header)
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(n,), daemon=True) for n in range(WRITERS)]

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    def run(self, writer):
        i = 0
        while not self.stop_event.is_set():
            key, body = f"{self.prefix}/{writer:02d}/{i:06d}", os.urandom(BODY_BYTES)
            i += 1
            try:
                self.client.put_object(Bucket="load", Key=key, Body=body)
            except ClientError as err:
                response = err.response
                headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
                status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                with self.lock:
                    self.errors.append((key, status, response["Error"]["Code"], headers.get("retry-after")))
                continue
            except Exception as err:  # a dropped connection: unacknowledged, must not be a 500
                with self.lock:
                    self.errors.append((key, None, repr(err), None))
                continue
            with self.lock:
                self.acked[key] = (time.monotonic(), body)

    def acked_after(self, at):
        with self.lock:
            return sum(1 for t, _ in self.acked.values() if t > at)

    def stop(self):
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=120)


def kill_owner_and_wait_for_failover(stamp, writers, key):
    _, victim = owner_of(stamp, "load", key)
    victim_addr = next(n["addr"] for n in stamp.running()["nodes"] if n["name"] == victim)
    stamp.node("kill", victim)
    killed_at = time.monotonic()
    wait_for(lambda: owner_of(stamp, "load", key)[0]["owner_addr"] not in ("", victim_addr), 60,
             "the killed server's range owned by the other server", interval_s=0.2)
    wait_for(lambda: writers.acked_after(killed_at) >= 200, 90, "PUTs acknowledged after the kill")
    return victim


def test_no_500_when_the_owning_partition_server_is_killed_under_load(failover_stamp):
    stamp = failover_stamp
    writers = Writers(stamp, "round").start()
    try:
        wait_for(lambda: len(writers.acked) >= 300, 60, "PUTs before the first kill")
        first = kill_owner_and_wait_for_failover(stamp, writers, "round/00/000000")
        # The killed server comes back; then the new owner is killed in turn.
        stamp.node("start", first)
        wait_for(lambda: any(n["name"] == first and n.get("pid") for n in stamp.running()["nodes"]), 30, "restart")
        kill_owner_and_wait_for_failover(stamp, writers, "round/00/000000")
    finally:
        writers.stop()
    not_503 = [e for e in writers.errors if e[1] != 503]
    assert not_503 == [], f"{len(not_503)} PUTs answered other than 503: {not_503[:10]}"
    assert all(e[3] for e in writers.errors), f"503 without Retry-After: {writers.errors[:10]}"
    print(f"{len(writers.acked)} PUTs acknowledged, {len(writers.errors)} answered 503")
    reader = stamp.client()

    def check(item):
        key, (_, body) = item
        return key if reader.get_object(Bucket="load", Key=key)["Body"].read() != body else None

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        wrong = [k for k in pool.map(check, writers.acked.items()) if k]
    assert wrong == [], f"{len(wrong)} acknowledged PUTs do not read back: {wrong[:10]}"


def test_a_put_with_no_partition_server_running_answers_503_with_retry_after(failover_stamp):
    stamp = failover_stamp
    client = stamp.client(retries=NO_RETRIES)
    servers = [n["name"] for n in stamp.nodes_of("partition-server")]
    for name in servers:
        stamp.node("kill", name)
    try:
        started = time.monotonic()
        with pytest.raises(ClientError) as err:
            client.put_object(Bucket="load", Key="nobody/home", Body=b"x" * BODY_BYTES)
        response = err.value.response
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 503, response
        assert response["Error"]["Code"] in ("ServiceUnavailable", "SlowDown"), response
        assert response["ResponseMetadata"]["HTTPHeaders"].get("retry-after"), response
        # Within the front-end's retry budget (5 s) and its backoff, not an open-ended wait.
        assert time.monotonic() - started < 30
    finally:
        for name in servers:
            stamp.node("start", name)
    wait_for(lambda: client.put_object(Bucket="load", Key="nobody/home", Body=b"back"), 90, "PUTs served again", interval_s=0.5)
    assert client.get_object(Bucket="load", Key="nobody/home")["Body"].read() == b"back"
