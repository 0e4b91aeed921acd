"""move-bucket (two stamps): a workload bucket moves to the other stamp while it serves.

At the injection the real mover starts in the background, `strata bucket move NAME --to STAMP
--json --grace-s N` (the CLI of `strata up`'s data folder, or `docker exec` in a location
container), while the workloads go on through both stamps' front-ends. A mover that fails is
run again (it resumes where it stopped) up to ATTEMPTS_MAX times, then stopped with `--abort`.
The heal waits for the mover to end. Then the location group is asked where the bucket lives,
and `target.homes` (the `home` later operations are classed by) follows it.

The first move draws a workload bucket; every later one (longer runs, --duration-s) moves the
same bucket back, so moves alternate direction. The verdict (move_faults.py): the move
finished, the location group names the target, and no request for the bucket got anything but
an ack, an expected refusal, a 503 or a timeout while it moved; the checker judges the rest
(nothing acknowledged lost, nothing deleted back, no stale read) as for every nemesis.
"""

import threading
import time

import move_faults
import nemesis
import targets

# Before the n-th rerun of a failed mover, RERUN_PAUSE_S * 2**(n-1): room for a leader
# election or a stamp coming back (2, 4, 8 s) before --abort.
RERUN_PAUSE_S = 2
LOCATE_DEADLINE_S = 60


def last_line(text):
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1][-300:] if lines else ""


class MoveBucket(nemesis.Nemesis):
    name = "move-bucket"
    needs = "kill"  # every target: the mover is a CLI run where the stamps' CLI runs

    grace_s = 5  # --grace-s of each move (the runner sets --move-grace-s)

    def __init__(self):
        self.history = None  # set by the runner: the clock of the move's window
        self.last_bucket = None
        self.record = None
        self.thread = None

    def inject(self, target, rng):
        if self.thread is not None and self.thread.is_alive():
            raise RuntimeError(f"the previous move of {self.record.bucket} is still running")
        homes = dict(target.homes)  # the workload buckets (the bucket workload's are not there)
        bucket, source, to = move_faults.next_move(homes, target.stamps(), self.last_bucket, rng)
        self.last_bucket = bucket
        self.record = move_faults.MoveRecord(bucket, source, to)
        self.record.start = self.history.now()
        self.thread = threading.Thread(target=self._move, args=(target, self.record), name="mover", daemon=True)
        self.thread.start()
        return f"strata bucket move {bucket} --to {to} (from {source}, --grace-s {self.grace_s:g}) in the background"

    def _move(self, target, record):
        try:
            for attempt in range(move_faults.ATTEMPTS_MAX):
                if self._run_mover(target, record):
                    break
                if attempt + 1 < move_faults.ATTEMPTS_MAX:
                    time.sleep(RERUN_PAUSE_S * 2**attempt)  # waiting for the fault to pass is the point
            else:
                code, _, err = target.move_bucket(record.bucket, None, self.grace_s, abort=True)
                record.aborted = (code, last_line(err))
                self._say(f"--abort exited {code}" + (f": {last_line(err)}" if code != 0 else ""))
                # An abort is refused once the home switched; then the target serves the bucket
                # only when a mover finishes the steps after the switch: one last run.
                if code != 0 and target.locate(record.bucket) == record.to:
                    self._run_mover(target, record)
            record.end = self.history.now()
            where = lambda: target.locate(record.bucket)  # noqa: E731
            record.located = targets.wait_for(where, LOCATE_DEADLINE_S, f"the location group to locate {record.bucket}")
            target.homes[record.bucket] = record.located  # later operations are classed by it
        except Exception as err:  # the verdict reports it; the runner goes on
            record.error = repr(err)
        finally:
            if record.end is None:
                record.end = self.history.now()

    def _run_mover(self, target, record):
        """One run of the mover, recorded; whether it finished."""
        code, out, err = target.move_bucket(record.bucket, record.to, self.grace_s)
        summary = move_faults.parse_summary(out) if code == 0 else None
        record.attempts.append((code, summary, last_line(err)))
        record.passes += [(len(record.attempts), line) for line in move_faults.pass_lines(err)]
        self._say(f"run {len(record.attempts)} exited {code}" + (f": {last_line(err)}" if code != 0 else ""))
        return not move_faults.attempt_failed(code, summary)

    def _say(self, text):
        print(f"  [{self.history.now():7.1f}s] {self.name}: {text}", flush=True)

    def heal(self, target):
        """Waits for the mover (and its reruns, or the abort) to end."""
        pauses_s = RERUN_PAUSE_S * 2**move_faults.ATTEMPTS_MAX
        bound_s = (move_faults.ATTEMPTS_MAX + 2) * targets.MOVE_TIMEOUT_S + pauses_s + LOCATE_DEADLINE_S
        self.thread.join(timeout=bound_s)
        record = self.record
        if self.thread.is_alive():
            return f"the mover of {record.bucket} is still running after {bound_s} s"
        state = "moved" if record.moved() else "NOT moved"
        return f"{record.bucket} {state} after {len(record.attempts)} run(s); the location group names {record.located}"

    def verdict(self, ops, args):
        if self.record is None:
            return [], []
        if self.thread is not None and self.thread.is_alive():
            return [], [f"the mover of {self.record.bucket} did not end"]
        return move_faults.describe(self.record, ops), move_faults.move_failures(self.record, ops)
