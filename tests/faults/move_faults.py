"""Pure logic of the move-bucket nemesis (run.py --stamps 2): which bucket moves where, what
the mover answered, and how the requests made while a bucket moved are judged. No stamp is
touched here (move_bucket.py runs the mover; test_move_faults.py tests this module).

A move (`strata bucket move NAME --to STAMP`) copies the bucket while it serves, fences the
source's writes (503 SlowDown), switches the home in the location group, refuses the bucket
for some seconds while front-ends' cached homes expire (503 SlowDown), then serves it from the
target. Clients are expected to retry those 503s (SDKs do); the fault suite's clients send each
request once, so those requests fail and are counted, never judged. What a move must never do
is answer a request for the moving bucket with anything else: NoSuchBucket (the bucket exists),
NoSuchKey for a conditional write (the key was just read), NoSuchUpload, a 500, a broken body.
"""

import json
from collections import Counter

# Requests on the moving bucket, by how they ended.
OUTCOMES = ("acked", "answered", "slowdown", "timeout", "other")
# Client-side timeouts: the request may still be under way on the stamp (a write behind a fence
# that waits out leases, a switch); retryable like a 503.
TIMEOUT_ERRORS = {"ReadTimeoutError", "ConnectTimeoutError"}
# Definite answers that a healthy bucket gives in the workloads: a lost compare-and-set (412),
# two conditional writes at once (409). Not a failure of the move.
EXPECTED_REFUSALS = {"PreconditionFailed", "ConditionalRequestConflict"}
CONDITIONAL_KINDS = {"cas", "create"}
EXAMPLES_MAX = 5
# Reruns of the mover (each resumes where the last stopped) before it is stopped with --abort.
ATTEMPTS_MAX = 4


def next_move(homes, stamps, last_bucket, rng):
    """(bucket, from, to) of the next move: the first moves a workload bucket drawn from `rng`
    to the other stamp; every later one moves the same bucket back (so moves alternate
    direction and the bucket visits both stamps). `homes`: workload bucket -> stamp."""
    bucket = last_bucket if last_bucket in homes else rng.choice(sorted(homes))
    source = homes[bucket]
    others = [s for s in stamps if s != source]
    if not others:
        raise RuntimeError(f"{bucket} is on {source}, and there is no other stamp to move it to")
    return bucket, source, others[0]


def parse_summary(stdout):
    """The mover's summary (`--json`: one JSON object, the last line of stdout), or None."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            summary = json.loads(line)
        except ValueError:
            continue
        if isinstance(summary, dict) and "outcome" in summary:
            return summary
    return None


def outcome(op):
    """How a request ended, for the move's verdict:
    - acked: 2xx (a read that found no key too: the checker judges what reads return);
    - answered: an expected refusal (412 / 409 of a conditional write);
    - slowdown: any 503 (SlowDown under the fence and the switch; ServiceUnavailable);
    - timeout: the client gave up waiting;
    - other: everything else (NoSuchBucket, NoSuchKey, NoSuchUpload, 500, a refused or reset
      connection, a broken body): the move failed the request."""
    if op["result"] == "ok":
        return "acked"
    error = str(op.get("error") or "")
    if op.get("http_status") == 503 or error.startswith("503 "):
        return "slowdown"
    if error in TIMEOUT_ERRORS:
        return "timeout"
    if error in EXPECTED_REFUSALS and op["kind"] in CONDITIONAL_KINDS:
        return "answered"
    return "other"


def during(ops, bucket, start, end):
    """Requests for `bucket` begun in [start, end] (the final reads are not the move's)."""
    return [
        op for op in ops
        if op.get("bucket") == bucket and start <= op["invoke"] <= end and op.get("phase") != "final"
    ]


def request_counts(ops):
    """Counter of OUTCOMES over `ops` (every outcome present, 0 when none)."""
    counts = Counter({name: 0 for name in OUTCOMES})
    counts.update(outcome(op) for op in ops)
    return counts


def show_op(op):
    return (
        f"op {op.get('id', '?')} {op['kind']} {op.get('key')} by {op.get('worker')} via {op.get('via')} "
        f"at {op['invoke']:.2f}s: {op.get('error') or op['result']}"
    )


class MoveRecord:
    """One move as the nemesis saw it: what was asked, each run of the mover, the window."""

    def __init__(self, bucket, source, to):
        self.bucket = bucket
        self.source = source
        self.to = to
        self.attempts = []  # (returncode, summary or None, last stderr line)
        self.aborted = None  # (returncode, last stderr line) of the --abort run, when there was one
        self.start = None  # history times of the first run's start and the last run's end
        self.end = None
        self.located = None  # where the location group says the bucket lives afterwards
        self.error = None  # what stopped the nemesis itself (a command that could not run)
        self.passes = []  # (run number, the mover's line of each copy or verification pass)

    def summary(self):
        """The last run's summary (the one that finished), or None."""
        for code, summary, _ in reversed(self.attempts):
            if code == 0 and summary:
                return summary
        return None

    def moved(self):
        summary = self.summary()
        return bool(summary) and summary.get("outcome") in ("moved", "already-moved")


PASS_LINE_STARTS = ("pass ", "final pass", "verification")


def pass_lines(stderr):
    """The mover's line of each pass (its progress on stderr, one plain line per pass when not
    on a terminal): what explains the fence's length (the final pass copies under it)."""
    return [line.strip() for line in (stderr or "").splitlines() if line.strip().startswith(PASS_LINE_STARTS)]


def attempt_failed(code, summary):
    """Whether a run of the mover must be rerun: it exited non-zero, or gave no summary."""
    return code != 0 or summary is None


def move_failures(record, ops):
    """Failures of one move: the mover could not finish it in ATTEMPTS_MAX runs (so --abort was
    needed, whatever came of it), the location group names another stamp than where the bucket
    must be (the target once moved, else the source), or a request for the moving bucket ended
    in anything but an ack, an expected refusal, a 503 or a timeout. Runs that failed before one
    finished are not failures by themselves (the reruns are the point)."""
    failures = [f"the move-bucket nemesis failed: {record.error}"] if record.error else []
    if not record.moved() or record.aborted is not None:
        runs = [(i, code, why) for i, (code, _, why) in enumerate(record.attempts, 1)]
        tried = "; ".join(f"run {i} exited {code}: {why}" for i, code, why in runs if code != 0)
        stopped = ""
        if record.aborted is not None:
            code, why = record.aborted
            stopped = ", then --abort " + ("stopped it" if code == 0 else f"failed ({code}: {why})")
            stopped += ", and a last run finished it" if record.moved() else ""
        failures.append(
            f"the mover of {record.bucket} ({record.source} -> {record.to}) failed {len(runs) - record.moved()} of "
            f"{len(runs)} runs ({tried}){stopped}"
        )
    expected = record.to if record.moved() else record.source
    if record.located != expected:
        failures.append(
            f"after the move the location group names {record.located} as {record.bucket}'s home, not {expected}"
        )
    if record.start is not None:
        bad = [op for op in during(ops, record.bucket, record.start, record.end) if outcome(op) == "other"]
        if bad:
            examples = "; ".join(show_op(op) for op in bad[:EXAMPLES_MAX])
            failures.append(
                f"{len(bad)} requests for {record.bucket} during its move got an error that is neither "
                f"a 503 nor a timeout: {examples}" + cut_off_hint(bad)
            )
    return failures


WRITE_KINDS = {"write", "cas", "create", "set-put", "mp-write"}


def cut_off_hint(bad):
    """What a write cut off mid-body most likely was: while a bucket switches stamps either
    stamp's front-end may forward it (the source's sends it to the new home), the home refuses
    it (503) before reading the body, and the forwarding front-end closes the client's
    connection instead of passing the 503 on (found by this nemesis: docs/fault-tolerance.md,
    "Bucket moves")."""
    cut = [op for op in bad if op.get("error") == "ConnectionClosedError" and op["kind"] in WRITE_KINDS]
    if not cut:
        return ""
    return (
        f" ({len(cut)} of them writes cut off mid-body: likely a forwarded request whose home answered "
        "503 before reading it, and the 503 did not reach the client)"
    )


def describe(record, ops):
    """The round's move summary: the move, the mover's numbers, what requests got meanwhile."""
    summary = record.summary() or {}
    fence = summary.get("fence_ms")
    took = f"{record.end - record.start:.1f}" if record.start is not None and record.end is not None else "-"
    lines = [
        f"move {record.bucket}: {record.source} -> {record.to}, "
        f"{summary.get('outcome') or 'not finished'} in {len(record.attempts)} run(s)"
        + (f", then --abort (exit {record.aborted[0]})" if record.aborted is not None else "")
        + f"; the location group names {record.located}",
        f"  mover: {summary.get('passes', '-')} passes, {summary.get('rows_copied', '-')} rows copied "
        f"({summary.get('bytes_copied', '-')} bytes), {summary.get('rows_removed', '-')} removed, "
        f"fence {fence if fence is not None else '-'} ms, total {summary.get('total_s', 0):.1f} s "
        f"(window {took} s)",
    ]
    if record.start is None:
        return lines
    mine = during(ops, record.bucket, record.start, record.end)
    counts = request_counts(mine)
    errors = Counter(str(op.get("error")) for op in mine if outcome(op) in ("slowdown", "timeout", "other"))
    shown = ", ".join(f"{error} x{count}" for error, count in errors.most_common(4)) or "-"
    lines.append(
        f"  requests for {record.bucket} meanwhile: {len(mine)}, {counts['acked']} acked, "
        f"{counts['answered']} refused as expected (412/409), {counts['slowdown']} 503, "
        f"{counts['timeout']} timed out, {counts['other']} other errors ({shown})"
    )
    lines += [f"  run {run}: {line}" for run, line in record.passes]
    by_via = Counter(op.get("via") for op in mine if op["result"] == "ok")
    if by_via:
        lines.append("  acked by front-end stamp: " + ", ".join(f"{via} {n}" for via, n in sorted(by_via.items())))
    return lines
