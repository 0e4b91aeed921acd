"""The move-bucket nemesis's pure logic (move_faults.py): which bucket moves where, the mover's
summary, and the verdict on the requests made while a bucket moved. No stamp is started."""

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import move_faults  # noqa: E402
import nemesis  # noqa: E402

STAMPS = ["stamp-1", "stamp-2"]


def op(kind, invoke, result="ok", error=None, http_status=0, bucket="b1", via="stamp-1", **extra):
    o = {"kind": kind, "key": "reg/1", "invoke": invoke, "complete": invoke + 0.1, "result": result}
    o.update(bucket=bucket, via=via, home="stamp-1", worker="w", phase="move-bucket", id=int(invoke * 100))
    if error:
        o.update(error=error, http_status=http_status)
    o.update(extra)
    return o


def record(located="stamp-2", code=0, outcome="moved"):
    r = move_faults.MoveRecord("b1", "stamp-1", "stamp-2")
    summary = {"bucket": "b1", "outcome": outcome, "passes": 2, "rows_copied": 41, "fence_ms": 5120, "total_s": 11.5}
    r.attempts.append((code, summary if code == 0 else None, "" if code == 0 else "the location group did not answer"))
    r.start, r.end, r.located = 10.0, 20.0, located
    return r


def test_move_bucket_needs_two_stamps_and_is_in_all_with_two():
    known = nemesis.all_nemeses()
    assert nemesis.chosen("move-bucket", 1, known)[1] == "move-bucket needs two stamps: add --stamps 2"
    assert nemesis.chosen("kill-stamp,move-bucket", 1, known)[1] == "kill-stamp, move-bucket need two stamps: add --stamps 2"
    assert nemesis.chosen("move-bucket", 2, known) == (["move-bucket"], None)
    assert "move-bucket" not in nemesis.chosen("all", 1, known)[0]
    assert "move-bucket" in nemesis.chosen("all", 2, known)[0]


def test_moves_alternate_direction_on_one_bucket():
    homes = {"b1": "stamp-1", "b2": "stamp-2"}
    bucket, source, to = move_faults.next_move(homes, STAMPS, None, random.Random(3))
    assert bucket in homes and source == homes[bucket] and to != source
    homes[bucket] = to  # the nemesis follows the location group after each move
    again = move_faults.next_move(homes, STAMPS, bucket, random.Random(99))
    assert again == (bucket, to, source), "the same bucket goes back"
    draws = {move_faults.next_move(homes, STAMPS, None, random.Random(seed))[0] for seed in range(20)}
    assert draws == {"b1", "b2"}, "the first move draws its bucket"


def test_the_summary_is_the_last_json_line():
    summary = {"bucket": "b1", "outcome": "moved", "rows_copied": 3}
    assert move_faults.parse_summary("noise\n" + json.dumps(summary) + "\n") == summary
    assert move_faults.parse_summary("") is None
    assert move_faults.parse_summary('{"no": "outcome"}') is None
    assert move_faults.attempt_failed(0, None) and move_faults.attempt_failed(1, summary)
    assert not move_faults.attempt_failed(0, summary)


def test_the_report_shows_each_pass_of_the_mover():
    stderr = (
        "moving b1 from stamp-1 to stamp-2 (move 1a)\n"
        "pass 1: 91 rows read, 87 copied (34.00 MiB), 0 removed, 91 differed\n"
        "fenced b1 on stamp-1: its writes wait for the switch\n"
        "final pass: 111 rows read, 52 copied (17.00 MiB), 2 removed, 54 differed\n"
        "verification: 111 rows read, 0 copied (0 B), 0 removed, 0 differed\n"
        "b1 now lives on stamp-2\n"
    )
    lines = move_faults.pass_lines(stderr)
    assert [line.split(":")[0] for line in lines] == ["pass 1", "final pass", "verification"]
    r = record()
    r.passes = [(1, line) for line in lines]
    assert "  run 1: final pass: 111 rows read, 52 copied (17.00 MiB), 2 removed, 54 differed" in move_faults.describe(r, [])


def test_requests_are_acked_refused_as_expected_503_timed_out_or_other():
    cases = [
        (op("write", 11), "acked"),
        (op("read", 11, value=None), "acked"),  # NoSuchKey on a read: the checker judges it
        (op("cas", 11, "fail", "PreconditionFailed", 412), "answered"),
        (op("create", 11, "fail", "ConditionalRequestConflict", 409), "answered"),
        (op("write", 11, "unknown", "503 SlowDown", 503), "slowdown"),
        (op("read", 11, "fail", "503 ServiceUnavailable", 503), "slowdown"),
        (op("write", 11, "unknown", "ReadTimeoutError"), "timeout"),
        (op("read", 11, "fail", "NoSuchBucket", 404), "other"),
        (op("cas", 11, "fail", "NoSuchKey", 404), "other"),  # If-Match on a key just read
        (op("mp-write", 11, "unknown", "NoSuchUpload", 404), "other"),
        (op("write", 11, "fail", "PreconditionFailed", 412), "other"),  # a plain PUT has no condition
        (op("write", 11, "unknown", "500 InternalError", 500), "other"),
        (op("read", 11, "fail", "EndpointConnectionError"), "other"),
        (op("mp-read", 11, "fail", "IncompleteReadError"), "other"),
    ]
    for o, expected in cases:
        assert move_faults.outcome(o) == expected, (o, expected)


def test_a_move_passes_with_503s_and_timeouts_only():
    ops = [
        op("write", 9.0, "unknown", "500 InternalError", 500),  # before the move: not its
        op("write", 11.0),
        op("write", 12.0, "unknown", "503 SlowDown", 503, via="stamp-2"),
        op("read", 13.0, "fail", "ReadTimeoutError"),
        op("cas", 14.0, "fail", "PreconditionFailed", 412),
        op("read", 15.0, "fail", "NoSuchBucket", 404, bucket="b2"),  # another bucket: the checker's
        op("read", 15.5, "fail", "NoSuchBucket", 404, phase="final"),
        op("read", 21.0, "fail", "NoSuchBucket", 404),  # after: the checker's
    ]
    r = record()
    assert move_faults.move_failures(r, ops) == []
    lines = move_faults.describe(r, ops)
    assert lines[0] == "move b1: stamp-1 -> stamp-2, moved in 1 run(s); the location group names stamp-2"
    assert "2 passes, 41 rows copied" in lines[1] and "fence 5120 ms" in lines[1] and "window 10.0 s" in lines[1]
    assert lines[2] == (
        "  requests for b1 meanwhile: 4, 1 acked, 1 refused as expected (412/409), 1 503, 1 timed out, "
        "0 other errors (503 SlowDown x1, ReadTimeoutError x1)"
    )


def test_no_such_bucket_or_key_during_the_move_fails_it():
    ops = [
        op("read", 12.0, "fail", "NoSuchBucket", 404, via="stamp-2"),
        op("cas", 13.0, "fail", "NoSuchKey", 404),
        op("write", 14.0, "unknown", "503 SlowDown", 503),
    ]
    failures = move_faults.move_failures(record(), ops)
    assert len(failures) == 1, failures
    assert failures[0].startswith("2 requests for b1 during its move got an error that is neither a 503 nor a timeout")
    assert "NoSuchBucket" in failures[0] and "via stamp-2" in failures[0] and "NoSuchKey" in failures[0]


def test_a_write_cut_off_fails_the_move_and_says_what_it_likely_was():
    ops = [
        op("mp-write", 12.0, "unknown", "ConnectionClosedError", via="stamp-2"),
        op("mp-write", 13.0, "unknown", "ConnectionClosedError", via="stamp-1"),  # the source forwards too
        op("read", 13.5, "fail", "ConnectionClosedError"),
    ]
    failures = move_faults.move_failures(record(), ops)
    assert len(failures) == 1 and failures[0].startswith("3 requests for b1 during its move"), failures
    assert failures[0].endswith(
        "(2 of them writes cut off mid-body: likely a forwarded request whose home answered 503 before "
        "reading it, and the 503 did not reach the client)"
    )


def test_a_move_that_did_not_finish_or_is_located_elsewhere_fails():
    assert move_faults.move_failures(record(located="stamp-1"), []) == [
        "after the move the location group names stamp-1 as b1's home, not stamp-2"
    ]
    failed = record(located="stamp-1", code=1)
    failed.aborted = (0, "removed stamp-2's copy")
    failures = move_faults.move_failures(failed, [])
    assert len(failures) == 1, "aborted: the bucket stays home, which is where it must be found"
    assert failures[0] == (
        "the mover of b1 (stamp-1 -> stamp-2) failed 1 of 1 runs "
        "(run 1 exited 1: the location group did not answer), then --abort stopped it"
    )
    assert "not finished in 1 run(s), then --abort (exit 0)" in move_faults.describe(failed, [])[0]


def test_a_nemesis_that_could_not_look_the_bucket_up_fails():
    r = record(located=None)
    r.error = "TimeoutError('the location group to locate b1: not within 60 s')"
    failures = move_faults.move_failures(r, [])
    assert failures == [
        "the move-bucket nemesis failed: TimeoutError('the location group to locate b1: not within 60 s')",
        "after the move the location group names None as b1's home, not stamp-2",
    ]


def test_a_move_finished_after_a_refused_abort_still_fails_the_round():
    """The home switched, every run died after it, --abort was refused, a last run finished:
    the bucket serves again, but a mover that needed the last resort is a finding."""
    r = record()
    r.attempts[:0] = [(None, None, "killed after 900 s")] * move_faults.ATTEMPTS_MAX
    r.aborted = (1, "strata: no move of b1 is in progress")
    failures = move_faults.move_failures(r, [])
    assert len(failures) == 1 and failures[0].startswith("the mover of b1 (stamp-1 -> stamp-2) failed 4 of 5 runs")
    assert failures[0].endswith("then --abort failed (1: strata: no move of b1 is in progress), and a last run finished it")


def test_a_rerun_that_finishes_the_move_counts_as_moved():
    r = record()
    r.attempts.insert(0, (None, None, "killed after 900 s"))
    r.attempts[-1][1]["outcome"] = "already-moved"
    assert r.moved() and move_faults.move_failures(r, []) == []
    assert "already-moved in 2 run(s)" in move_faults.describe(r, [])[0]


def test_a_route_sees_a_moved_bucket_s_new_home():
    """Workers' routes share the target's homes: operations begun after a move name the new home."""
    import workloads  # noqa: PLC0415

    homes = {"b1": "stamp-1"}
    route = workloads.Route(STAMPS, homes, random.Random(1))
    homes["b1"] = "stamp-2"
    assert route.home("b1") == "stamp-2"


def test_kill_stamp_says_when_a_stamp_held_no_workload_bucket():
    import stamp_faults  # noqa: PLC0415

    assert stamp_faults.unjudged_stamps({"b1": "stamp-1", "b2": "stamp-2"}, STAMPS, "stamp-2") == []
    assert stamp_faults.unjudged_stamps({"b1": "stamp-2", "b2": "stamp-2"}, STAMPS, "stamp-2") == [
        "stamp-1 (a surviving stamp) held no workload bucket (move-bucket moved it): nothing of it judged"
    ]
