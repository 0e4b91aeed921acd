"""Pure logic of the two-stamp mode (run.py --stamps 2): what a kill-stamp hold must show, and
how operations spread over bucket homes and front-ends. No stamp is touched here.

Operations of two-stamp workloads carry `home` (the stamp their bucket lives on; None while
unknown, e.g. a CreateBucket that failed) and `via` (the stamp of the front-end the request was
sent to): `home != via` is a forwarded request. A CreateBucket lands where placement puts it
(`home`, looked up after it succeeded), so a hold judges it by `via` alone.
"""

from collections import Counter

# A definite S3 refusal is an answer (the stamp served the request), but NoSuchBucket for a
# bucket that exists is not: the front-end did not find the bucket's home.
NOT_SERVED_CODES = {"NoSuchBucket"}
EXAMPLES_MAX = 5


def served(op):
    """Whether the stamp answered the request: 2xx, or a 4xx refusal (412 of a lost
    compare-and-set, 404 of a HEAD) other than NoSuchBucket. 5xx, timeouts, resets, refused
    connections and broken bodies are not."""
    if op["result"] == "ok":
        return True
    status = op.get("http_status") or 0
    return op["result"] == "fail" and 400 <= status < 500 and op.get("error") not in NOT_SERVED_CODES


def in_hold(op, start, end):
    return "via" in op and start <= op["invoke"] < end


HOLD_CLASSES = (
    "survivor",
    "survivor_late",
    "survivor_via_dead",
    "dead",
    "new_via_survivor",
    "new_via_survivor_late",
    "unknown_home",
)


def hold_class(op, killed):
    """Which class of a kill-stamp hold an operation falls in (see hold_summary)."""
    if op["kind"] == "bucket-create":
        return "survivor_via_dead" if op["via"] == killed else "new_via_survivor"
    if op.get("home") == killed:
        return "dead"
    if op["via"] == killed:
        return "survivor_via_dead"
    return "unknown_home" if op.get("home") is None else "survivor"


def hold_summary(ops, killed, killed_at, heal_at, settle_s):
    """Operations begun while stamp `killed` was down ([killed_at, heal_at)), by class:
    - survivor: buckets of another stamp sent to another stamp's front-ends (must be served
      once settle_s has passed since every node of `killed` was down: survivor_late);
    - survivor_via_dead: requests sent to the dead stamp's front-ends for anything but its own
      buckets (refused connections: expected);
    - dead: buckets of the dead stamp (may fail, 503 through the other stamp's front-ends);
    - new_via_survivor: CreateBucket through another stamp's front-ends (placement passes over
      a stamp that takes no connection, so once settle_s has passed these must be served too:
      new_via_survivor_late);
    - unknown_home: buckets whose home is not known (the bucket workload's), sent to another
      stamp's front-ends (not judged)."""
    settled_at = killed_at + settle_s
    summary = {name: [] for name in HOLD_CLASSES}
    for op in ops:
        if not in_hold(op, killed_at, heal_at):
            continue
        name = hold_class(op, killed)
        summary[name].append(op)
        if name in ("survivor", "new_via_survivor") and op["invoke"] >= settled_at:
            summary[name + "_late" if name == "new_via_survivor" else "survivor_late"].append(op)
    return summary


def errors_of(ops):
    """How the operations that were not served ended, most frequent first."""
    return Counter(str(op.get("error") or op["result"]) for op in ops if not served(op)).most_common()


def show_op(op):
    return (
        f"op {op.get('id', '?')} {op['kind']} {op.get('bucket')}/{op['key']} by {op.get('worker')} "
        f"via {op['via']} at {op['invoke']:.2f}s: {op.get('error') or op['result']}"
    )


def hold_failures(summary, killed, window):
    """Failures of a kill-stamp hold: a request of the surviving stamp (its bucket, its
    front-end) or a CreateBucket through its front-ends not served after the settling window,
    or NoSuchBucket for a bucket of the dead
    stamp (it exists: the answer must be 503, never "no such bucket")."""
    failures = []
    late = [op for op in summary["survivor_late"] if not served(op)]
    if late:
        start, end = window
        examples = "; ".join(show_op(op) for op in late[:EXAMPLES_MAX])
        failures.append(
            f"{len(late)} requests for the surviving stamp's buckets through its own front-ends were not served "
            f"while {killed} was down ({start:.2f}-{end:.2f}s, after the settling window): {examples}"
        )
    creates = [op for op in summary["new_via_survivor_late"] if not served(op)]
    if creates:
        examples = "; ".join(show_op(op) for op in creates[:EXAMPLES_MAX])
        failures.append(
            f"{len(creates)} CreateBucket through the surviving stamp's front-ends were not served while "
            f"{killed} was down (after the settling window): {examples}"
        )
    missing = [op for op in summary["dead"] if op.get("error") == "NoSuchBucket"]
    if missing:
        examples = "; ".join(show_op(op) for op in missing[:EXAMPLES_MAX])
        failures.append(f"{len(missing)} requests for {killed}'s buckets answered NoSuchBucket: {examples}")
    return failures


def describe(summary, killed):
    """Lines telling what each class of request got during the hold."""
    labels = {
        "survivor": "other stamp's buckets via its front-ends",
        "survivor_late": "  of them after the settling window",
        "survivor_via_dead": f"other requests via {killed}'s front-ends",
        "dead": f"{killed}'s buckets",
        "new_via_survivor": "CreateBucket via the other stamp's front-ends",
        "new_via_survivor_late": "  of them after the settling window",
        "unknown_home": "other requests for new buckets (home not looked up: not judged)",
    }
    lines = []
    for key, label in labels.items():
        ops = summary[key]
        ok = sum(op["result"] == "ok" for op in ops)
        not_served = [op for op in ops if not served(op)]
        errors = ", ".join(f"{error} x{count}" for error, count in errors_of(ops)[:4]) or "-"
        lines.append(f"{label}: {len(ops)} ops, {ok} acked, {len(not_served)} not served ({errors})")
    return lines


def unjudged_stamps(homes, stamps, killed):
    """Lines naming the stamps of a kill-stamp hold that held no workload bucket (`homes`:
    bucket -> stamp at the kill), whose class of requests was then empty: after move-bucket
    moved one bucket, both live on one stamp until it moves back."""
    held = set(homes.values())
    lines = []
    for stamp in stamps:
        if stamp not in held:
            role = "the killed stamp" if stamp == killed else "a surviving stamp"
            lines.append(f"{stamp} ({role}) held no workload bucket (move-bucket moved it): nothing of it judged")
    return lines


def routing_rows(ops):
    """Operations by (bucket home, front-end stamp): [home, via, ops, acked, not served]. Rows
    with home != via are forwarded requests."""
    rows = {}
    for op in ops:
        if op.get("home") is None or op.get("phase") == "final":
            continue
        row = rows.setdefault((op["home"], op["via"]), [op["home"], op["via"], 0, 0, 0])
        row[2] += 1
        row[3] += op["result"] == "ok"
        row[4] += not served(op)
    return [rows[k] for k in sorted(rows, key=lambda k: (str(k[0]), str(k[1])))]
