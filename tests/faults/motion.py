"""move-under-upload: ranges split, reload and move while large uploads stream.

The stamp runs with small extents (seals happen inside an upload) and a split threshold the
workloads alone stay under (run.py sets both when this nemesis is chosen). One injection:

1. split: a burst of HEAD requests on keys next to an upload that is streaming makes its range
   hot, so the partition manager splits it (at the median of the sampled keys: beside the
   upload) while the upload goes on;
2. reload: the owner of a streaming upload's range is SIGKILLed and started again at once, so
   its ranges load again (on it, or on another server if it came back too late);
3. move: the owner of a streaming upload's range is paused or SIGKILLed (seeded choice) and held
   until the heal, longer than the manager's server timeout, so its ranges move to another
   server; a paused owner is resumed at the heal with its uploads still streaming (the old
   owner must not go on writing under the new one).

No control is added to the stamp for this: load makes splits, dead servers make moves.
With two stamps, each upload's range is looked up on its bucket's home stamp, and the burst goes
to that stamp's front-ends.
"""

import threading
import time

import nemesis
import targets
import workloads

STREAMING_WAIT_S = 60
SPLIT_WAIT_S = 20
BURST_THREADS = 12
BURST_KEYS = 256


def encoded(bucket, key):
    """The partition layer's key of an object (crates/types/src/keys.rs: object_key)."""
    return b"o" + bucket.encode() + b"\0" + key.encode()


def decode_shown_key(text):
    """`strata status` shows non-printable key bytes as \\xNN; "" / "-inf" / "+inf" are ends."""
    if text in ("", "-inf"):
        return b""
    if text == "+inf":
        return None
    return text.encode("latin-1").decode("unicode_escape").encode("latin-1")


def range_holding(status, key):
    for r in status["ranges"]:
        low, high = decode_shown_key(r["low"]), decode_shown_key(r["high"])
        if low <= key and (high is None or key < high):
            return r
    return None


def owner_name(status, held_by):
    by_addr = {n["addr"]: n["name"] for n in status["nodes"] if n["kind"] == "partition-server"}
    return by_addr.get(held_by["owner_addr"]) if held_by else None


def streaming_upload(rng):
    """(bucket, key) of an upload streaming now (waits for one: the upload workers never stop)."""
    found = targets.wait_for(workloads.streaming_uploads, STREAMING_WAIT_S, "an upload to stream", 0.05)
    return rng.choice(found)


class HeadBurst:
    """Threads sending HEADs of absent keys (they change nothing) until stopped; counts them."""

    def __init__(self, target, bucket, keys):
        self.stop = threading.Event()
        self.count = 0
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, args=(target, bucket, keys[i::BURST_THREADS]), daemon=True)
            for i in range(BURST_THREADS)
        ]
        self.started = time.monotonic()
        for t in self.threads:
            t.start()

    def _run(self, target, bucket, keys):
        endpoints = target.endpoints_of(target.home_of(bucket))
        s3 = workloads.client(endpoints[len(keys) % len(endpoints)], target.credentials())
        i = 0
        while not self.stop.is_set():
            try:
                s3.head_object(Bucket=bucket, Key=keys[i % len(keys)])
            except Exception:  # 404 is the point; 503 SlowDown and resets are load too
                pass
            i += 1
            with self.lock:
                self.count += 1

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=15)
        return self.count / max(time.monotonic() - self.started, 1e-3)


class MoveUnderUpload(nemesis.Nemesis):
    needs = "pause"
    name = "move-under-upload"

    def __init__(self):
        self.victim = None
        self.how = None

    def inject(self, target, rng):
        self.victim = None
        done = [self._split(target, rng), self._reload(target, rng)]
        bucket, key = streaming_upload(rng)
        status = target.status(target.home_of(bucket))
        self.victim = owner_name(status, range_holding(status, encoded(bucket, key)))
        if self.victim is None:
            raise RuntimeError(f"no partition server owns {key}")
        self.how = rng.choice(["pause", "kill"])
        (target.pause if self.how == "pause" else target.kill)(self.victim)
        done.append(f"{'paused' if self.how == 'pause' else 'killed'} {self.victim}, owner of streaming {key}")
        return "; ".join(done)

    def _split(self, target, rng):
        bucket, key = streaming_upload(rng)
        at = encoded(bucket, key)
        home = target.home_of(bucket)
        before = range_holding(target.status(home), at)
        if before is None:
            raise RuntimeError(f"no range holds {key}")
        # Keys right after the upload's: the split key falls beside the upload, inside its range.
        burst = HeadBurst(target, bucket, [f"{key}/probe-{i:04d}" for i in range(BURST_KEYS)])
        try:
            what = f"a split of range {before['range_id']}"
            split = targets.wait_for(lambda: self._split_done(target, home, at, before), SPLIT_WAIT_S, what, 0.5)
        except TimeoutError:
            split = None
        rate = burst.finish()
        if split is None:
            return f"NO split of range {before['range_id']} under {key} within {SPLIT_WAIT_S} s ({rate:.0f} HEAD/s)"
        return f"split range {before['range_id']} under streaming {key} -> {split} ({rate:.0f} HEAD/s)"

    @staticmethod
    def _split_done(target, home, at, before):
        """The new range holding `at` once range `before` is gone from the map, else None."""
        status = target.status(home)
        if any(r["range_id"] == before["range_id"] for r in status["ranges"]):
            return None
        now = range_holding(status, at)
        return f"range {now['range_id']} [{now['low']}, {now['high']})" if now else "?"

    def _reload(self, target, rng):
        bucket, key = streaming_upload(rng)
        status = target.status(target.home_of(bucket))
        owner = owner_name(status, range_holding(status, encoded(bucket, key)))
        if owner is None:
            return f"no reload: no server owns {key}"
        target.kill(owner)
        target.start_node(owner)
        return f"restarted {owner} at once (reload), owner of streaming {key}"

    def heal(self, target):
        if self.victim is None:
            return "nothing to heal"
        (target.resume if self.how == "pause" else target.start_node)(self.victim)
        return f"{'resumed' if self.how == 'pause' else 'restarted'} {self.victim}"
