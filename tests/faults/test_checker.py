"""The checker itself, on small hand-made histories: it must flag what it claims to flag
(a checker that passes everything proves nothing). No stamp is started."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import checker  # noqa: E402
from workloads import etag_of  # noqa: E402


def op(kind, key, invoke, complete, result="ok", phase="p", **extra):
    o = {"kind": kind, "key": key, "invoke": invoke, "complete": complete, "result": result}
    o.update(phase=phase, worker="w", **extra)
    if "value" in extra and extra["value"] is not None and kind != "read":
        o["etag"] = etag_of(extra["value"].encode())
    return o


def run(*ops):
    for i, o in enumerate(ops):
        o["id"] = i
    return checker.check(list(ops))


def test_reads_of_the_latest_or_a_concurrent_write_pass():
    report = run(
        op("write", "k", 0, 1, value="a"),
        op("write", "k", 2, 5, value="b"),
        op("read", "k", 3, 4, value="a"),  # b is concurrent: a is still allowed
        op("read", "k", 6, 7, value="b"),
    )
    assert not report.anomalies and not report.lost


def test_a_stale_read_is_an_anomaly_and_a_final_one_a_loss():
    report = run(
        op("write", "k", 0, 1, value="a"),
        op("write", "k", 2, 3, value="b"),
        op("read", "k", 4, 5, value="a"),
        op("read", "k", 6, 7, value="a", phase="final"),
    )
    assert len(report.anomalies) == 1 and "stale" in report.anomalies[0][1]
    assert len(report.lost) == 1


def test_unknown_writes_may_land_late_but_refused_ones_never():
    report = run(
        op("write", "k", 0, 1, value="a"),
        op("write", "k", 2, 3, result="unknown", value="u"),
        op("write", "k", 4, 5, value="b"),
        op("read", "k", 6, 7, value="u"),  # u may have landed after b
        op("write", "k", 8, 9, result="fail", value="f"),
        op("read", "k", 10, 11, value="f"),
    )
    assert len(report.anomalies) == 1 and "refused" in report.anomalies[0][1]
    assert report.keys == ["k"]  # run.py prints the history of each finding's key


def test_two_winners_of_one_compare_and_set_are_an_anomaly():
    first = op("cas", "c", 0, 1, value="a", IfNoneMatch="*")
    report = run(
        first,
        op("cas", "c", 2, 3, value="b", IfMatch=first["etag"]),
        op("cas", "c", 2, 3, value="c", IfMatch=first["etag"]),
        op("create", "n", 0, 1, value="x", IfNoneMatch="*"),
        op("create", "n", 0, 1, value="y", IfNoneMatch="*"),
    )
    texts = [t for _, t in report.anomalies]
    assert any("If-Match" in t for t in texts) and any("If-None-Match" in t for t in texts)


def test_lists_must_show_acknowledged_puts_and_hide_acknowledged_deletes():
    report = run(
        op("set-put", "s/1", 0, 1, value="x"),
        op("set-put", "s/2", 0, 1, value="x"),
        op("set-delete", "s/2", 2, 3),
        op("list", "s/", 4, 5, keys=["s/2"]),
    )
    texts = [t for _, t in report.anomalies]
    assert any("misses s/1" in t for t in texts) and any("after its DELETE" in t for t in texts)


def test_a_multipart_object_with_the_wrong_checksum_is_flagged():
    report = run(
        op("mp-write", "m", 0, 1, sha256="aa"),
        op("mp-read", "m", 2, 3, sha256="bb"),
        op("mp-read", "m", 4, 5, sha256=None, phase="final"),
    )
    assert len(report.anomalies) == 1 and len(report.lost) == 1


def test_a_final_read_failing_with_5xx_until_the_deadline_is_a_loss():
    report = run(
        op("write", "r", 0, 1, value="a", phase="kill-extent"),
        op("read", "r", 10, 11, result="fail", phase="final", error="503 ServiceUnavailable"),
        op("read", "r", 12, 13, result="fail", phase="final", error="500 InternalError"),
        op("mp-write", "m", 0, 1, sha256="aa", phase="bitflip"),
        op("mp-read", "m", 10, 11, result="fail", phase="final", error="503 SlowDown"),
        op("set-put", "s/1", 0, 1, value="x", phase="pause-leader"),
        op("set-get", "s/1", 10, 11, result="fail", phase="final", error="503 ServiceUnavailable"),
        # A read that failed, then succeeded before the deadline, lost nothing.
        op("write", "ok", 0, 1, value="b"),
        op("read", "ok", 10, 11, result="fail", phase="final", error="503 ServiceUnavailable"),
        op("read", "ok", 12, 13, value="b", phase="final"),
    )
    lost = sorted(report.lost)
    assert [phase for phase, _ in lost] == ["bitflip", "kill-extent", "pause-leader"], lost
    assert all("failed until the deadline" in text for _, text in lost), lost
    assert "last: 500 InternalError" in lost[1][1], lost
    assert not report.anomalies


def test_a_final_read_failing_for_a_key_nobody_acknowledged_is_an_anomaly_not_a_loss():
    report = run(
        op("write", "u", 0, 1, result="unknown", value="a"),
        op("read", "u", 10, 11, result="fail", phase="final", error="503 ServiceUnavailable"),
    )
    assert not report.lost
    assert len(report.anomalies) == 1 and "failed until the deadline" in report.anomalies[0][1]
