"""Nemeses: each injects one fault into a running stamp and later heals it.

`inject(target, rng)` returns a short description of what it did; `heal(target)` undoes it
(restart, resume, reconnect). A nemesis holds its fault between the two calls; the runner
decides how long. Every choice comes from the seeded `rng`, so `--seed` replays the same faults.

With two stamps (run.py --stamps 2) the nemeses pick nodes of either stamp (a stamp is drawn
from `rng` first where the choice needs one stamp's status; with one stamp nothing is drawn for
it, so one-stamp seeds replay exactly as before); `kill-stamp` kills a whole stamp and
`move-bucket` (move_bucket.py) moves a workload bucket to the other stamp while it serves.
"""

import time

import extent_files
import stamp_faults

# Nemeses `--nemesis all` leaves out with one stamp (`all` there is what it always was; CI runs
# it). kill-location-leader can still be named with one stamp; kill-stamp and move-bucket cannot.
TWO_STAMPS_ONLY = {"kill-stamp", "move-bucket", "cut-stamps"}
NOT_IN_ONE_STAMP_ALL = {"kill-stamp", "kill-location-leader", "move-bucket", "cut-stamps"}


class Nemesis:
    name = "?"
    needs = "kill"  # the target capability it uses

    def inject(self, target, rng):
        raise NotImplementedError

    def heal(self, target):
        raise NotImplementedError

    # Recovery is measured from the end of the heal, or (a heal that takes long itself, like
    # starting a whole stamp) from its start.
    recovery_from_heal_start = False

    def counts_for_recovery(self, op):
        """Whether `op` succeeding after the heal shows service is back (any op by default)."""
        return True

    def recovery_bound_s(self, args):
        return args.recovery_bound_s

    def verdict(self, ops, args):
        """Checks of the phase beyond the checker's: (lines to print, failures). None by default."""
        return [], []


def pick_stamp(target, rng):
    """A stamp for a choice that needs one stamp's status: drawn with two or more, else the only
    one (None: the target's default, and no draw, so one-stamp seeds replay as before)."""
    stamps = target.stamps()
    return rng.choice(stamps) if len(stamps) > 1 else None


class KillRestart(Nemesis):
    """SIGKILL one node of a kind (as in a crash), restart it at heal."""

    def __init__(self, name, pick):
        self.name = name
        self.pick = pick
        self.victims = []

    def inject(self, target, rng):
        self.victims = self.pick(target, rng)
        for victim in self.victims:
            target.kill(victim)
        return "SIGKILL " + ", ".join(self.victims)

    def heal(self, target):
        for victim in self.victims:
            target.start_node(victim)
        return "restarted " + ", ".join(self.victims)


def random_of(kind):
    return lambda target, rng: [rng.choice(sorted(target.nodes(kind)))]


def leader_of(group):
    def pick(target, rng):
        stamp = pick_stamp(target, rng)
        leader = target.leader(group, stamp)
        if leader is None:
            raise RuntimeError(f"no {group} leader is known" + (f" on {stamp}" if stamp else ""))
        return [leader]

    return pick


def location_leader(target, rng):
    """The location group's leader (its members' /health name it)."""
    leader = target.location_leader()
    if leader is None:
        raise RuntimeError("no location group leader is known")
    return [leader]


def range_owner(target, rng):
    """The partition server owning a random range (a server owning nothing would be no test)."""
    stamp = pick_stamp(target, rng)
    status = target.status(stamp)
    by_addr = {n["addr"]: n["name"] for n in status["nodes"] if n["kind"] == "partition-server"}
    owners = sorted({by_addr[r["owner_addr"]] for r in status["ranges"] if r["owner_addr"] in by_addr})
    return [rng.choice(owners or sorted(target.nodes("partition-server", stamp)))]


def whole_rack(target, rng):
    """Both extent nodes of one rack of one stamp (rack names repeat across stamps)."""
    nodes = target.nodes("extent-node")
    racks = sorted({(target.stamp_of(n), target.rack_of(n)) for n in nodes})
    rack = rng.choice(racks)
    return sorted(n for n in nodes if (target.stamp_of(n), target.rack_of(n)) == rack)


class PauseLeader(Nemesis):
    """Freezes a manager leader (docker pause / SIGSTOP): it keeps its sockets but answers
    nothing, the worst case for a Raft group; resumes it at heal."""

    needs = "pause"
    name = "pause-leader"

    def __init__(self):
        self.victim = None

    def inject(self, target, rng):
        group = rng.choice(["manager", "stream-manager"])
        self.victim = target.leader(group, pick_stamp(target, rng))
        if self.victim is None:
            raise RuntimeError(f"no {group} leader is known")
        target.pause(self.victim)
        return f"paused {self.victim} ({group} leader)"

    def heal(self, target):
        target.resume(self.victim)
        return f"resumed {self.victim}"


class PartitionNode(Nemesis):
    """Cuts one node off the stamp's network (docker network disconnect), reconnects it at heal."""

    needs = "partition"
    name = "partition-node"

    def __init__(self):
        self.victim = None

    def inject(self, target, rng):
        kind = rng.choice(["extent-node", "partition-server", "partition-manager", "stream-manager"])
        if kind == "partition-server":  # a range owner: then two servers may both think they own it
            self.victim = range_owner(target, rng)[0]
        else:
            self.victim = rng.choice(sorted(target.nodes(kind)))
        target.partition(self.victim)
        return f"isolated {self.victim}"

    def heal(self, target):
        target.heal_partition(self.victim)
        return f"reconnected {self.victim}"


EXTENT_HEADER_BYTES = extent_files.FILE_HEADER_BYTES  # never flipped


class BitFlip(Nemesis):
    """Flips one bit inside the records of an extent file on one extent node's disk, preferring
    the largest sealed extent (object bytes that readers and the scrubber will verify)."""

    needs = "bitflip"
    name = "bitflip"

    def __init__(self):
        self.flipped = None

    def inject(self, target, rng):
        nodes = sorted(target.nodes("extent-node"))
        rng.shuffle(nodes)
        for node in nodes:
            folder = target.extent_dir(node)
            try:
                files = sorted(p for p in folder.iterdir() if p.suffix == ".ext")
            except OSError:
                continue
            sealed = [p for p in files if p.with_suffix(".seal").exists()]
            candidates = [p for p in (sealed or files) if p.stat().st_size > EXTENT_HEADER_BYTES + 64]
            if not candidates:
                continue
            path = max(candidates, key=lambda p: (p.stat().st_size, p.name))
            size = path.stat().st_size
            offset = rng.randrange(EXTENT_HEADER_BYTES, size)
            bit = rng.randrange(8)
            extent_files.flip_bits(path, [(offset, bit)])
            self.flipped = (node, path.name, offset, bit)
            return f"flipped bit {bit} at byte {offset} of {node}:{path.name} ({'sealed' if sealed else 'open'})"
        raise RuntimeError("no extent file to corrupt was found")

    def heal(self, target):
        return "nothing to undo: the checksums and the scrubber must handle it"


OPEN_EXTENT_WAIT_S = 30
IDLE_PROBE_S = 1.0


def _size(target, extent, node):
    path = extent_files.replica_file(target.extent_dir(node), extent["extent_id"])
    return path.stat().st_size if path else None


class CorruptOpenExtent(Nemesis):
    """Flips bits inside the LAST record of one replica of an open data extent (acknowledged
    bytes in the unsealed tail), with its node down so no later append buries the record, then
    restarts the node at once, while the extent is open. The node must not take the record for
    a torn write and cut it; the seal must not take a cut length."""

    needs = "bitflip"
    name = "corrupt-open-extent"

    def __init__(self):
        self.flipped = None  # (node, extent id, file size at the flip)

    def inject(self, target, rng):
        extent, holders, idle = self._open_extent(target, rng)
        node = rng.choice(holders)
        self.flipped = None
        target.kill(node)
        try:
            path = extent_files.replica_file(target.extent_dir(node), extent["extent_id"])
            last = extent_files.last_record(path) if path else None
            if last is None:
                return f"{node} lost extent {extent['extent_id']}'s file or records before the flip: nothing flipped"
            start, length = last
            # Inside the payload when there is one (the CRC must catch it), else the header.
            low = start + extent_files.RECORD_HEADER_BYTES if length > extent_files.RECORD_HEADER_BYTES else start
            flips = sorted({(rng.randrange(low, start + length), rng.randrange(8)) for _ in range(rng.randint(1, 3))})
            extent_files.flip_bits(path, flips)
            self.flipped = (node, extent["extent_id"], path.stat().st_size)
        finally:
            target.start_node(node)
        where = ", ".join(f"bit {bit} at byte {offset}" for offset, bit in flips)
        return (
            f"flipped {where} in the last record ({start}+{length}) of {node}:{path.name} "
            f"(open {extent['stream']}, {'idle' if idle else 'being written'}, {self.flipped[2]} bytes), "
            f"restarted {node}"
        )

    @staticmethod
    def _open_extent(target, rng):
        """An open data extent with a complete record on disk, and the extent nodes whose
        replica holds one. An idle one when there is one (no replica grew for IDLE_PROBE_S):
        an extent being appended to is sealed by its writer as soon as an append fails on the
        killed node, before the node is back; an idle one is still open when the node returns
        and scans it, and its next append comes after (the loss this nemesis was written for:
        the node cut the record, the append failed on it, and the extent was sealed short)."""
        deadline = time.monotonic() + OPEN_EXTENT_WAIT_S
        stamp = pick_stamp(target, rng)  # extent ids are per stamp: look on one stamp's nodes
        while True:
            found = {}  # extent id -> (extent, {node: replica size})
            extents = [e for e in target.status(stamp)["extents"] if not e["sealed"] and e["stream"].endswith("/data")]
            for extent in extents:
                sizes = {}
                for node in sorted(target.nodes("extent-node", stamp)):
                    path = extent_files.replica_file(target.extent_dir(node), extent["extent_id"])
                    if path and extent_files.last_record(path):
                        sizes[node] = path.stat().st_size
                if sizes:
                    found[extent["extent_id"]] = (extent, sizes)
            if found:
                time.sleep(IDLE_PROBE_S)  # watching for appends is the point
                idle = [i for i, (e, sizes) in found.items() if all(_size(target, e, n) == s for n, s in sizes.items())]
                extent, sizes = found[rng.choice(sorted(idle or found))]
                return extent, sorted(sizes), bool(idle)
            if time.monotonic() > deadline:
                raise RuntimeError(f"no open data extent with records within {OPEN_EXTENT_WAIT_S} s")
            time.sleep(0.5)  # the workloads are writing: poll until an extent has records

    def heal(self, target):
        """Nothing to undo; tells what became of the replica (a cut below its length at the
        flip drops acknowledged bytes there: they must come back from a peer, never be lost)."""
        if self.flipped is None:
            return "nothing to undo"
        node, extent_id, size = self.flipped
        path = extent_files.replica_file(target.extent_dir(node), extent_id)
        now = path.stat().st_size if path else None
        if now is None:
            return f"{node} no longer holds extent {extent_id} (was {size} bytes at the flip)"
        # Sizes only: a replica cut and then refilled by its primary is no shorter either.
        fate = f"cut {size - now} bytes it held at the flip" if now < size else "no shorter"
        return f"{node}'s replica of extent {extent_id} is {now} bytes (was {size} at the flip): {fate}"


class KillStamp(Nemesis):
    """SIGKILLs every node of one stamp (seeded; never the location group), holds, starts them
    all again in start order. Meanwhile the other stamp must go on serving its own buckets
    through its own front-ends (verdict: any such request failing after --stamp-settle-s fails
    the round); the dead stamp's buckets may answer 503 but lose nothing (the checker)."""

    name = "kill-stamp"
    recovery_from_heal_start = True  # docker starts 17 containers one after the other

    def __init__(self):
        self.stamp = None
        self.victims = []
        self.killed_at = None  # history time once every node is down
        self.heal_at = None
        self.history = None  # set by the runner: the clock of the window

    def inject(self, target, rng):
        self.stamp = rng.choice(target.stamps())
        self.homes = dict(target.homes)  # after a move-bucket, one stamp may hold both buckets
        self.stamps = target.stamps()
        self.victims = target.stamp_nodes(self.stamp)
        target.kill_all(list(reversed(self.victims)))  # front-ends first: clients see it at once
        self.killed_at = self.history.now() if self.history else None
        return f"SIGKILL all {len(self.victims)} nodes of {self.stamp}"

    def heal(self, target):
        self.heal_at = self.history.now() if self.history else None
        target.start_all(self.victims)
        return f"started {len(self.victims)} nodes of {self.stamp} again"

    def counts_for_recovery(self, op):
        """Back when a bucket of the killed stamp is served again (the other stamp never
        stopped). When it holds no workload bucket (move-bucket moved them all away): when its
        front-ends serve again (a compose round once waited 180 s for a bucket it did not hold)."""
        if self.stamp in self.homes.values():
            return op.get("home") == self.stamp
        return op.get("via") == self.stamp

    def recovery_bound_s(self, args):
        return args.stamp_recovery_bound_s

    def verdict(self, ops, args):
        window = (self.killed_at + args.stamp_settle_s, self.heal_at)
        summary = stamp_faults.hold_summary(ops, self.stamp, self.killed_at, self.heal_at, args.stamp_settle_s)
        lines = stamp_faults.describe(summary, self.stamp)
        lines += stamp_faults.unjudged_stamps(self.homes, self.stamps, self.stamp)
        failures = stamp_faults.hold_failures(summary, self.stamp, window)
        return lines, failures


class CutStamps(Nemesis):
    """Cuts the network between the stamps (compose): the second stamp's nodes leave the first
    stamp's network, so no request is forwarded and no replica shipped between them until the
    heal; each stamp's own network stays whole. Nothing acknowledged may be lost (the checker),
    and replication resumes in order (tests/faults/replication_watch.py)."""

    needs = "partition"
    name = "cut-stamps"

    def __init__(self):
        self.cut = []

    def inject(self, target, rng):
        stamp = target.stamps()[1]
        self.cut = target.cut_stamp_off(stamp)
        return f"cut {stamp} off {target.stamps()[0]}'s network ({len(self.cut)} nodes were on it)"

    def heal(self, target):
        target.heal_stamp_cut(self.cut)
        return f"reconnected {len(self.cut)} nodes"


class KillLocationLeader(KillRestart):
    """SIGKILLs the location group's leader, restarts it after the hold. Existing buckets are
    served throughout (forwarding keeps the homes it learned); CreateBucket and DeleteBucket
    (the bucket workload) wait out the election. Service is back when a bucket-workload
    operation succeeds (any operation when there is no bucket workload)."""

    bucket_workload = False  # the runner sets it when the bucket workload runs

    def __init__(self):
        super().__init__("kill-location-leader", location_leader)

    def counts_for_recovery(self, op):
        return op["kind"].startswith("bucket-") or not self.bucket_workload


def all_nemeses():
    """Every nemesis, by name, in the order `--nemesis all` runs them (with one stamp, those in
    NOT_IN_ONE_STAMP_ALL are left out: see chosen)."""
    import motion  # noqa: PLC0415  (motion and move_bucket build on this module)
    import move_bucket  # noqa: PLC0415

    return {
        "kill-extent": lambda: KillRestart("kill-extent", random_of("extent-node")),
        "kill-partition": lambda: KillRestart("kill-partition", range_owner),
        "kill-manager-leader": lambda: KillRestart("kill-manager-leader", leader_of("manager")),
        "kill-stream-leader": lambda: KillRestart("kill-stream-leader", leader_of("stream-manager")),
        "kill-frontend": lambda: KillRestart("kill-frontend", random_of("frontend")),
        "lose-rack": lambda: KillRestart("lose-rack", whole_rack),
        "partition-node": PartitionNode,
        "pause-leader": PauseLeader,
        "bitflip": BitFlip,
        "corrupt-open-extent": CorruptOpenExtent,
        "move-under-upload": motion.MoveUnderUpload,
        "kill-stamp": KillStamp,
        "kill-location-leader": KillLocationLeader,
        "move-bucket": move_bucket.MoveBucket,
        "cut-stamps": CutStamps,
    }


def chosen(spec, stamps, known):
    """The nemeses `--nemesis spec` names with `stamps` stamps: (names, error or None).
    `all` with one stamp is every nemesis but NOT_IN_ONE_STAMP_ALL (what it always was)."""
    if spec == "all":
        names = [n for n in known if stamps > 1 or n not in NOT_IN_ONE_STAMP_ALL]
        return names, None
    names = [n for n in spec.split(",") if n]
    unknown = [n for n in names if n not in known]
    if unknown:
        return names, f"unknown nemesis: {', '.join(unknown)}"
    refused = [n for n in names if n in TWO_STAMPS_ONLY and stamps < 2]
    if refused:
        verb = "needs" if len(refused) == 1 else "need"
        return names, f"{', '.join(refused)} {verb} two stamps: add --stamps 2"
    return names, None
