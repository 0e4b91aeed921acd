"""Checks a recorded history (see workloads.py for what an operation records).

Times are the client's invoke and complete times, so "A before B" means A completed before B
was invoked: real-time order, as linearizability needs. Writes whose outcome is unknown may
have taken effect at any point after their invoke (complete = infinity for ordering).

- Registers (reg/, cas/, create/ keys; values are unique): a read returning value v written by
  W is stale when some acknowledged write W2 completed before the read began and W completed
  before W2 began (then W2 is certainly newer than W). A read of a value nobody wrote, or that
  only a refused write carried, is an anomaly; so is "no such key" after an acknowledged write.
- Conditional writes: per key at most one If-None-Match: * write succeeds; every successful
  If-Match names the etag of a write that may have succeeded, and no two successful If-Match
  writes name the same etag (that would be two winners of one compare-and-set).
- Sets: a LIST begun after a PUT was acknowledged shows the key unless a DELETE of it was
  attempted before the LIST finished; a LIST begun after a DELETE was acknowledged does not;
  a listed key must have been PUT by a write that may have succeeded.
- Multipart: every read of an acknowledged object returns its exact SHA-256.
Reads in the "final" phase run after every fault healed, each retried until a deadline: a key
whose every final read failed (5xx, a broken body, no answer) holds acknowledged writes nobody
can read, so they count as lost (in the phase of the last acknowledged write); for a key with no
acknowledged write it is an anomaly (the stamp never served it again).

Every check runs per bucket (operations name their bucket; one-stamp runs use one). Two-stamp
runs add (operations that name the stamp of the front-end they went `via`):
- Buckets that exist answer: NoSuchBucket for a workload bucket (never deleted) is an anomaly,
  so is NoSuchBucket for a bucket whose CreateBucket was acknowledged before the request began
  and no DeleteBucket of it had begun before the request ended.
- A bucket's first object (the bucket workload, bucket-* operations): a GET begun after its
  PUT was acknowledged returns that PUT's value.
"""

import bisect
from collections import defaultdict

INF = float("inf")
REGISTER_KINDS = {"write", "cas", "create"}
# Final read kind -> the write kinds whose acknowledgement it must show.
FINAL_READ_OF = {"read": REGISTER_KINDS, "mp-read": {"mp-write"}, "set-get": {"set-put"}, "list": {"set-put"}}


def finish(op):
    return op["complete"] if op["result"] == "ok" else INF


class Report:
    def __init__(self):
        self.anomalies = []  # (phase, text)
        self.lost = []  # (phase, text)
        self.keys = []  # the keys of the findings, in order (run.py prints their histories)
        self.where = []  # (bucket, key) of each entry of keys
        self.several_buckets = False  # then each finding names its bucket

    def _in(self, op):
        return f" in {op.get('bucket')}" if self.several_buckets else ""

    def anomaly(self, op, text):
        self.keys.append(op["key"])
        self.where.append((op.get("bucket"), op["key"]))
        where = self._in(op)
        self.anomalies.append((op["phase"], f"{text} [op {op['id']} {op['kind']} {op['key']}{where} by {op['worker']}]"))

    def lose(self, op, text, phase=None):
        """A write lost: counted in the phase of the write (`phase`), else of the read."""
        self.keys.append(op["key"])
        self.where.append((op.get("bucket"), op["key"]))
        self.lost.append((phase or op["phase"], f"{text} [key {op['key']}{self._in(op)}]"))


def check(ops):
    report = Report()
    by_bucket = defaultdict(list)
    for op in ops:
        by_bucket[op.get("bucket")].append(op)
    report.several_buckets = len(by_bucket) > 1
    for bucket in sorted(by_bucket, key=str):
        for one_check in CHECKS_PER_BUCKET:
            one_check(by_bucket[bucket], report)
    check_buckets_answer(ops, report)
    return report


def check_buckets_answer(ops, report):
    """NoSuchBucket for a bucket that exists (two-stamp operations: those naming a home)."""
    created = defaultdict(list)  # bucket -> acknowledged CreateBucket
    dropped = defaultdict(list)  # bucket -> DeleteBucket attempts
    for op in ops:
        if op["kind"] == "bucket-create" and op["result"] == "ok":
            created[op["bucket"]].append(op)
        elif op["kind"] == "bucket-delete":
            dropped[op["bucket"]].append(op)
    for op in ops:
        if op.get("error") != "NoSuchBucket" or "via" not in op or op["kind"] == "bucket-create":
            continue
        bucket = op["bucket"]
        if bucket not in created and bucket not in dropped:
            report.anomaly(op, f"NoSuchBucket for workload bucket {bucket} (via {op.get('via')})")
            continue
        made = any(c["complete"] < op["invoke"] for c in created[bucket])
        dropping = any(d["invoke"] < op["complete"] for d in dropped[bucket])
        if made and not dropping:
            report.anomaly(op, f"NoSuchBucket for {bucket}, created on {op.get('home')} (via {op.get('via')})")


def check_bucket_objects(ops, report):
    """The bucket workload: a GET begun after the bucket's PUT was acknowledged returns it."""
    puts = [op for op in ops if op["kind"] == "bucket-put" and op["result"] == "ok"]
    for op in ops:
        if op["kind"] != "bucket-get" or op["result"] != "ok":
            continue
        before = [p for p in puts if p["complete"] < op["invoke"]]
        if before and op.get("value") != before[-1]["value"]:
            got = op.get("value")
            report.anomaly(op, f"GET of a new bucket's object returned {got!r}, not {before[-1]['value']!r}")


def check_final_reads(ops, report):
    """Final reads that failed until the deadline. A HEAD answering 404 did not fail to read
    (check_set_members judges it); every other failure, 5xx above all, did."""
    finals = defaultdict(list)  # (kind, key) -> final reads
    for op in ops:
        if op["phase"] == "final" and op["kind"] in FINAL_READ_OF:
            finals[(op["kind"], op["key"])].append(op)
    for (kind, key), reads in sorted(finals.items()):
        if any(r["result"] == "ok" or str(r.get("error", "")).startswith("404") for r in reads):
            continue
        last = max(reads, key=lambda r: r["complete"])
        # A LIST reads a prefix: every acknowledged PUT under it is unreadable.
        covers = (lambda k: k.startswith(key)) if kind == "list" else (lambda k: k == key)
        acked = [
            w for w in ops
            if w["kind"] in FINAL_READ_OF[kind] and w["result"] == "ok" and covers(w["key"])
        ]
        text = f"{kind} failed until the deadline ({len(reads)} tries, last: {last.get('error')})"
        if acked:
            report.lose(last, text, max(acked, key=lambda w: w["complete"])["phase"])
        else:
            report.anomaly(last, text + ", with no acknowledged write")


def check_registers(ops, report):
    writes = defaultdict(dict)  # key -> value -> write op
    acked = defaultdict(list)  # key -> acknowledged writes
    for op in ops:
        if op["kind"] in REGISTER_KINDS:
            writes[op["key"]][op["value"]] = op
            if op["result"] == "ok":
                acked[op["key"]].append(op)
    # Per key: acknowledged writes by completion, with the running maximum of their invokes.
    frontier = {}
    for key, done in acked.items():
        done.sort(key=lambda w: w["complete"])
        completes, invokes, best = [], [], -INF
        for w in done:
            best = max(best, w["invoke"])
            completes.append(w["complete"])
            invokes.append((best, w))
        frontier[key] = (completes, invokes)
    for op in ops:
        if op["kind"] != "read" or op["result"] != "ok":
            continue
        key = op["key"]
        completes, invokes = frontier.get(key, ([], []))
        i = bisect.bisect_left(completes, op["invoke"])
        newest_invoke, newest = invokes[i - 1] if i else (-INF, None)
        final = op["phase"] == "final"
        if op["value"] is None:
            if newest is not None and final:
                report.lose(op, f"no object after {newest['value']!r} was acknowledged", newest["phase"])
            elif newest is not None:
                report.anomaly(op, f"read found no object after {newest['value']!r} was acknowledged")
            continue
        source = writes[key].get(op["value"])
        if source is None:
            report.anomaly(op, f"read {op['value']!r}, which no one wrote")
        elif source["result"] == "fail":
            report.anomaly(op, f"read {op['value']!r}, whose write was refused ({source.get('error')})")
        elif finish(source) < newest_invoke and final:
            report.lose(op, f"read {op['value']!r} after {newest['value']!r} was acknowledged", newest["phase"])
        elif finish(source) < newest_invoke:
            report.anomaly(op, f"stale read: {op['value']!r} after {newest['value']!r} was acknowledged")


def check_conditional(ops, report):
    creates = defaultdict(list)
    matches = defaultdict(list)
    possible_etags = defaultdict(set)
    for op in ops:
        if op["kind"] in REGISTER_KINDS and op["result"] != "fail":
            possible_etags[op["key"]].add(op["etag"])
        if op["kind"] not in ("cas", "create") or op["result"] != "ok":
            continue
        if op.get("IfNoneMatch") == "*":
            creates[op["key"]].append(op)
        elif "IfMatch" in op:
            matches[(op["key"], op["IfMatch"])].append(op)
    for key, winners in creates.items():
        if len(winners) > 1:
            for op in winners[1:]:
                report.anomaly(op, f"{len(winners)} If-None-Match: * writes succeeded on one key")
    for (key, etag), winners in matches.items():
        if etag not in possible_etags[key]:
            report.anomaly(winners[0], f"If-Match {etag} succeeded, but no write produced that etag")
        if len(winners) > 1:
            for op in winners[1:]:
                report.anomaly(op, f"{len(winners)} If-Match writes on the same etag {etag} succeeded")


def check_sets(ops, report):
    puts = defaultdict(list)
    deletes = defaultdict(list)
    for op in ops:
        if op["kind"] == "set-put":
            puts[op["key"]].append(op)
        elif op["kind"] == "set-delete":
            deletes[op["key"]].append(op)
    for op in ops:
        if op["kind"] != "list" or op["result"] != "ok":
            continue
        listed = set(op["keys"])
        flag = report.lose if op["phase"] == "final" else report.anomaly
        for key in listed:
            if not key.startswith(op["key"]):
                continue
            if not any(p["result"] != "fail" for p in puts.get(key, [])):
                report.anomaly(op, f"LIST shows {key}, which was never written")
            if any(d["result"] == "ok" and d["complete"] < op["invoke"] for d in deletes.get(key, [])):
                report.anomaly(op, f"LIST shows {key} after its DELETE was acknowledged")
        for key, writes in puts.items():
            if not key.startswith(op["key"]) or key in listed:
                continue
            if not any(p["result"] == "ok" and p["complete"] < op["invoke"] for p in writes):
                continue
            if any(d["invoke"] < op["complete"] and d["result"] != "fail" for d in deletes.get(key, [])):
                continue
            if flag == report.lose:
                report.lose(op, f"LIST misses {key}", next(p["phase"] for p in writes if p["result"] == "ok"))
            else:
                flag(op, f"LIST misses {key}, acknowledged before the LIST began")


def check_set_members(ops, report):
    """Final HEADs of acknowledged, never-deleted set members: a 404 means the object is gone."""
    phase_of = {op["key"]: op["phase"] for op in ops if op["kind"] == "set-put" and op["result"] == "ok"}
    for op in ops:
        if op["kind"] == "set-get" and op["result"] == "fail" and op.get("error", "").startswith("404"):
            report.lose(op, "HEAD answers 404 for an acknowledged PUT", phase_of.get(op["key"]))


def check_multipart(ops, report):
    expected = {op["key"]: op for op in ops if op["kind"] == "mp-write" and op["result"] == "ok"}
    for op in ops:
        if op["kind"] != "mp-read" or op["result"] != "ok":
            continue
        write = expected.get(op["key"])
        if write is None or write["complete"] > op["invoke"]:
            continue
        if op.get("sha256") != write["sha256"]:
            got = op.get("sha256") or "no object"
            text = f"object read back as {got[:16]}, expected sha256 {write['sha256'][:16]}"
            if op["phase"] == "final":
                report.lose(op, text, write["phase"])
            else:
                report.anomaly(op, text)


CHECKS_PER_BUCKET = (
    check_registers,
    check_conditional,
    check_sets,
    check_set_members,
    check_multipart,
    check_final_reads,
    check_bucket_objects,
)
