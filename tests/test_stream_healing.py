"""The stream layer heals itself, with real processes: a replica's node killed mid-write, a whole
rack lost and brought back, bytes flipped inside an extent file, a node returning after its
extents were sealed. After each, every extent is back to 3 healthy replicas on 3 racks, and
every acknowledged object reads back byte for byte."""

import hashlib
import os
import threading
from pathlib import Path

import pytest

from stamp import Stamp, wait_for

MIB = 1024 * 1024
# Small extents so that sealed extents (the unit of repair) appear after a few MiB.
EXTENT_ARGS = ["--extent-size-bytes-max", str(2 * MIB)]


@pytest.fixture
def healing_stamp(tmp_path):
    s = Stamp(tmp_path / "data", extra_args=EXTENT_ARGS).start()
    s.s3 = s.client()
    s.s3.create_bucket(Bucket="heal")
    yield s
    s.stop()


def put_objects(stamp, prefix, count, size, acked):
    for i in range(count):
        data = os.urandom(size)
        key = f"{prefix}/{i}"
        stamp.s3.put_object(Bucket="heal", Key=key, Body=data)
        acked[key] = hashlib.sha256(data).hexdigest()


def assert_all_readable(stamp, acked):
    for key, digest in acked.items():
        body = stamp.s3.get_object(Bucket="heal", Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == digest, key


def extent_files(node):
    return sorted(Path(node["data_dir"]).glob("extents/*.ext"))


class Writer(threading.Thread):
    """PUTs objects until stopped; records what was acknowledged and what failed."""

    def __init__(self, stamp):
        super().__init__(daemon=True)
        self.client = stamp.client()
        self.acked, self.failed = {}, []
        self.stop_event = threading.Event()

    def run(self):
        i = 0
        while not self.stop_event.is_set():
            data = os.urandom(300 * 1024 + i)
            key = f"writer/{i}"
            try:
                self.client.put_object(Bucket="heal", Key=key, Body=data)
                self.acked[key] = hashlib.sha256(data).hexdigest()
            except Exception as err:  # an unacknowledged write may fail; it must not be lost silently
                self.failed.append((key, repr(err)))
            i += 1

    def stop(self):
        self.stop_event.set()
        self.join(timeout=120)


def test_sigkill_of_a_replica_node_during_writes(healing_stamp):
    stamp = healing_stamp
    writer = Writer(stamp)
    writer.start()
    wait_for(lambda: len(writer.acked) >= 10, 60, "writes before the kill")
    victim = next(n for n in stamp.nodes_of("extent-node") if extent_files(n))
    stamp.node("kill", victim["name"])
    count_at_kill = len(writer.acked)
    wait_for(lambda: len(writer.acked) >= count_at_kill + 15, 120, "the writer carrying on after the kill")
    writer.stop()
    assert len(writer.failed) <= 3, writer.failed  # boto3 retries; at most a few may surface
    assert_all_readable(stamp, writer.acked)
    status = stamp.wait_fully_replicated()
    assert status["extents_total"] >= 3


def test_losing_a_whole_rack(healing_stamp):
    stamp = healing_stamp
    acked = {}
    put_objects(stamp, "before", 8, 700 * 1024, acked)
    rack = [n for n in stamp.nodes_of("extent-node") if n["rack"] == "rack-3"]
    for node in rack:
        stamp.node("kill", node["name"])
    # Reads and writes go on with two racks.
    assert_all_readable(stamp, acked)
    put_objects(stamp, "during", 8, 700 * 1024, acked)
    assert_all_readable(stamp, acked)
    # The rack comes back: placement returns to 3 replicas on 3 racks.
    for node in rack:
        stamp.node("start", node["name"])
    stamp.wait_fully_replicated(timeout_s=180)
    assert_all_readable(stamp, acked)


def test_flipped_bytes_are_never_served_and_the_replica_is_repaired(healing_stamp):
    stamp = healing_stamp
    acked = {}
    put_objects(stamp, "flip", 6, MIB, acked)  # several sealed 2 MiB data extents
    stamp.wait_fully_replicated()
    # Pick a sealed data extent replica and flip bytes in the middle of a record payload.
    status = stamp.status()
    sealed = {e["extent_id"] for e in status["extents"] if e["sealed"] and e["stream"].endswith("/data")}
    assert sealed, status["extents"]
    victim_file = None
    for node in stamp.nodes_of("extent-node"):
        for path in extent_files(node):
            if int(path.stem) in sealed and path.stat().st_size > MIB:
                victim_file = path
                break
        if victim_file:
            break
    good_copies = [
        p
        for n in stamp.nodes_of("extent-node")
        for p in extent_files(n)
        if p.name == victim_file.name and p != victim_file
    ]
    original = good_copies[0].read_bytes()
    damaged = bytearray(victim_file.read_bytes())
    for offset in (200_000, 200_001, 700_000):
        damaged[offset] ^= 0xFF
    victim_file.write_bytes(bytes(damaged))
    assert victim_file.read_bytes() != original
    # Every read returns the right bytes; reads rotate over replicas and so meet the bad one.
    for _ in range(4):
        assert_all_readable(stamp, acked)
    # The bad replica is rewritten from a good one.
    wait_for(lambda: victim_file.exists() and victim_file.read_bytes() == original, 120, "the corrupt replica repaired")
    stamp.wait_fully_replicated()


def test_a_node_returning_after_its_extents_were_sealed(healing_stamp):
    stamp = healing_stamp
    acked = {}
    put_objects(stamp, "early", 2, 500 * 1024, acked)
    away = next(n for n in stamp.nodes_of("extent-node") if extent_files(n))
    held_before = {p.name for p in extent_files(away)}
    stamp.node("kill", away["name"])
    # While it is away its open extents are sealed and re-replicated elsewhere.
    put_objects(stamp, "while-away", 8, 700 * 1024, acked)
    stamp.wait_fully_replicated(timeout_s=180)
    stamp.node("start", away["name"])

    def synced():
        # Every replica file left on the returned node is bitwise identical to the same extent
        # on some other node (sealed replicas match); surplus replicas are deleted.
        others = {}
        for node in stamp.nodes_of("extent-node"):
            if node["name"] != away["name"]:
                for path in extent_files(node):
                    others.setdefault(path.name, []).append(path)
        for path in extent_files(away):
            copies = others.get(path.name, [])
            if not copies or not any(c.read_bytes() == path.read_bytes() for c in copies):
                return False
        return True

    wait_for(synced, 180, "the returned node's replicas synced or removed", interval_s=1)
    assert held_before, "the node held replicas before it went away"
    stamp.wait_fully_replicated()
    assert_all_readable(stamp, acked)


def test_sigkill_of_the_stream_manager_leader_during_writes(healing_stamp):
    """The stream manager is a Raft group of 3: its leader dies mid-writes (2 MiB extents, so
    the writers keep sealing and opening extents through it), a follower takes over, writes go
    on, and the killed member rejoins with the group's metadata."""
    stamp = healing_stamp
    writer = Writer(stamp)
    writer.start()
    wait_for(lambda: len(writer.acked) >= 10, 60, "writes before the kill")
    before = stamp.status()["stream_manager"]
    assert len(before["members"]) == 3, before
    leader_name = f"stream-manager-{before['leader_id']}"
    stamp.node("kill", leader_name)
    count_at_kill = len(writer.acked)
    # Past several extent seals (each ~7 writes of 300 KiB fill a 2 MiB extent).
    wait_for(lambda: len(writer.acked) >= count_at_kill + 25, 120, "the writer carrying on after the kill")

    def new_leader():
        status = stamp.status()["stream_manager"]
        return status if status and status["leader_id"] not in (0, before["leader_id"]) else None

    after = wait_for(new_leader, 60, "a new stream manager leader")
    assert after["term"] > before["term"]
    stamp.node("start", leader_name)
    wait_for(
        lambda: next(n for n in stamp.status()["nodes"] if n["name"] == leader_name)["healthy"],
        60,
        "the killed member healthy again",
    )
    writer.stop()
    assert len(writer.failed) <= 3, writer.failed
    assert_all_readable(stamp, writer.acked)
    status = stamp.wait_fully_replicated()
    assert status["extents_total"] >= 3
    # The rejoined member can lead: kill the current leader too; the group still serves.
    stamp.node("kill", f"stream-manager-{after['leader_id']}")
    acked = {}
    put_objects(stamp, "after-second-kill", 10, 300 * 1024, acked)
    assert_all_readable(stamp, {**writer.acked, **acked})
