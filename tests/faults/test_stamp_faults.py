"""The two-stamp mode's pure logic (run.py --stamps 2): which nemeses run, how a kill-stamp
hold is judged, how nemeses pick a stamp, and the checker's per-bucket checks. No stamp is
started."""

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import checker  # noqa: E402
import nemesis  # noqa: E402
import run  # noqa: E402
import stamp_faults  # noqa: E402
import targets  # noqa: E402
import workloads  # noqa: E402

ONE_STAMP_ALL = [
    "kill-extent", "kill-partition", "kill-manager-leader", "kill-stream-leader", "kill-frontend", "lose-rack",
    "partition-node", "pause-leader", "bitflip", "corrupt-open-extent", "move-under-upload",
]


def op(kind, invoke, result="ok", home="stamp-1", via="stamp-1", error=None, http_status=None, **extra):
    o = {"kind": kind, "key": "reg/1", "invoke": invoke, "complete": invoke + 0.1, "result": result}
    o.update(home=home, via=via, bucket=f"b-{home}", worker="w", phase="kill-stamp", id=int(invoke * 100))
    if error:
        o.update(error=error, http_status=http_status or 0)
    o.update(extra)
    return o


# --- which nemeses run -------------------------------------------------------------------


def test_all_with_one_stamp_is_what_it_always_was():
    names, error = nemesis.chosen("all", 1, nemesis.all_nemeses())
    assert error is None
    assert names == ONE_STAMP_ALL  # CI runs this: no new nemesis, the same order


def test_all_with_two_stamps_adds_the_stamp_nemeses():
    names, error = nemesis.chosen("all", 2, nemesis.all_nemeses())
    assert error is None
    assert names == ONE_STAMP_ALL + ["kill-stamp", "kill-location-leader", "move-bucket", "cut-stamps"]
    assert nemesis.chosen("cut-stamps", 1, nemesis.all_nemeses())[1] == "cut-stamps needs two stamps: add --stamps 2"


def test_kill_stamp_is_refused_with_one_stamp_and_says_why():
    names, error = nemesis.chosen("kill-extent,kill-stamp", 1, nemesis.all_nemeses())
    assert error == "kill-stamp needs two stamps: add --stamps 2"
    assert nemesis.chosen("kill-location-leader", 1, nemesis.all_nemeses()) == (["kill-location-leader"], None)
    assert nemesis.chosen("kill-stamp", 2, nemesis.all_nemeses()) == (["kill-stamp"], None)
    assert nemesis.chosen("kill-nothing", 2, nemesis.all_nemeses())[1] == "unknown nemesis: kill-nothing"


# --- how nemeses pick a stamp ------------------------------------------------------------


class FakeTarget(targets.Target):
    """A layout without processes: what the pickers read."""

    def __init__(self, layout):
        super().__init__()
        self._layout = layout

    def layout(self):
        return self._layout


def layout(stamps):
    nodes = [{"kind": "location", "name": f"location-{i}", "member_id": i} for i in (1, 2, 3)]
    for k in range(1, stamps + 1):
        prefix = "" if k == 1 else f"s{k}-"
        stamp = {"stamp": f"stamp-{k}"} if stamps > 1 else {}
        for rack in (1, 2, 3):
            for n in (1, 2):
                nodes.append({"kind": "extent-node", "name": f"{prefix}extent-r{rack}-{n}", "rack": f"rack-{rack}", **stamp})
        nodes += [{"kind": "partition-manager", "name": f"{prefix}manager-{m}", "member_id": m, **stamp} for m in (1, 2, 3)]
        nodes.append({"kind": "frontend", "name": f"{prefix}frontend", **stamp})
    return {"version": 2, "stamp": "stamp-1", "nodes": nodes}


def test_one_stamp_picks_draw_nothing_for_the_stamp():
    """Seeds of one-stamp runs replay as before: no draw is spent on choosing a stamp."""
    rng, control = random.Random(5), random.Random(5)
    assert nemesis.pick_stamp(FakeTarget(layout(1)), rng) is None
    assert rng.random() == control.random()


def test_lose_rack_takes_one_rack_of_one_stamp():
    one = FakeTarget(layout(1))
    old_way = sorted({one.rack_of(n) for n in one.nodes("extent-node")})
    for seed in range(20):  # with one stamp the same rack as the code before two stamps chose
        rack = random.Random(seed).choice(old_way)
        assert nemesis.whole_rack(one, random.Random(seed)) == [f"extent-r{rack[-1]}-1", f"extent-r{rack[-1]}-2"]
    two = FakeTarget(layout(2))
    seen = set()
    for seed in range(40):
        victims = nemesis.whole_rack(two, random.Random(seed))
        assert len(victims) == 2 and len({two.stamp_of(v) for v in victims}) == 1, victims
        seen.add(two.stamp_of(victims[0]))
    assert seen == {"stamp-1", "stamp-2"}


def test_a_stamp_s_nodes_in_start_order_never_the_location_group():
    two = FakeTarget(layout(2))
    nodes = two.stamp_nodes("stamp-2")
    assert nodes and all(n.startswith("s2-") for n in nodes)
    assert nodes[0].startswith("s2-extent") and nodes[-1] == "s2-frontend"
    assert not any("location" in n for n in two.stamp_nodes("stamp-1"))
    assert two.stamps() == ["stamp-1", "stamp-2"]
    assert targets.member_name(two.layout(), "partition-manager", "stamp-2", 3) == "s2-manager-3"


def test_the_location_leader_is_the_member_naming_itself_at_the_highest_term():
    views = [
        {"node_id": 1, "leader_id": 2, "term": 3},  # stale: has not heard of the new term
        {"node_id": 3, "leader_id": 3, "term": 4},
        {"node_id": 2, "leader_id": 3, "term": 4},
    ]
    assert targets.leader_from_views(views) == 3
    assert targets.leader_from_views([{"node_id": 1, "leader_id": 2, "term": 5}]) == 2
    assert targets.leader_from_views([{"node_id": 1, "leader_id": 0, "term": 5}]) == 0
    assert targets.leader_from_views([]) == 0


# --- a kill-stamp hold -------------------------------------------------------------------


def test_a_hold_fails_when_the_surviving_stamp_does_not_serve_its_own_buckets():
    ops = [
        op("write", 10.5, "unknown", home="stamp-1", via="stamp-1", error="503 ServiceUnavailable", http_status=503),
        op("write", 13.0, "unknown", home="stamp-1", via="stamp-1", error="ReadTimeoutError"),
        op("write", 13.0, "ok", home="stamp-1", via="stamp-1"),
        op("cas", 13.1, "fail", home="stamp-1", via="stamp-1", error="PreconditionFailed", http_status=412),
    ]
    summary = stamp_faults.hold_summary(ops, "stamp-2", 10.0, 20.0, 2.0)
    assert len(summary["survivor"]) == 4 and len(summary["survivor_late"]) == 3
    failures = stamp_faults.hold_failures(summary, "stamp-2", (12.0, 20.0))
    assert len(failures) == 1  # the 503 fell in the settling window; a 412 is an answer
    assert failures[0].startswith("1 requests for the surviving stamp's buckets") and "ReadTimeoutError" in failures[0]


def test_a_hold_passes_when_only_the_dead_stamp_fails():
    ops = [
        op("write", 12.5, "unknown", home="stamp-2", via="stamp-1", error="503 ServiceUnavailable", http_status=503),
        op("read", 12.6, "fail", home="stamp-2", via="stamp-2", error="EndpointConnectionError"),
        op("read", 12.7, "fail", home="stamp-1", via="stamp-2", error="EndpointConnectionError"),
        op("read", 12.8, "ok", home="stamp-1", via="stamp-1"),
        op("write", 25.0, "unknown", home="stamp-1", via="stamp-1", error="ReadTimeoutError"),  # after the heal
    ]
    summary = stamp_faults.hold_summary(ops, "stamp-2", 10.0, 20.0, 2.0)
    assert [len(summary[k]) for k in ("survivor", "survivor_via_dead", "dead")] == [1, 1, 2]
    assert stamp_faults.hold_failures(summary, "stamp-2", (12.0, 20.0)) == []
    lines = stamp_faults.describe(summary, "stamp-2")
    assert lines[3] == "stamp-2's buckets: 2 ops, 0 acked, 2 not served (503 ServiceUnavailable x1, EndpointConnectionError x1)"


def test_a_create_bucket_is_judged_by_its_front_end_and_an_unknown_home_not_at_all():
    """A CreateBucket through the surviving stamp must be served after the settling window
    (placement passes over the dead stamp); through the dead stamp it is expected to fail;
    requests for a bucket whose home is unknown are not judged."""
    ops = [
        op("bucket-create", 11.5, "unknown", home=None, via="stamp-1", error="503 ServiceUnavailable", http_status=503),
        op("bucket-create", 12.6, "unknown", home=None, via="stamp-2", error="EndpointConnectionError"),
        op("bucket-put", 12.7, "unknown", home=None, via="stamp-1", error="503 ServiceUnavailable", http_status=503),
    ]
    summary = stamp_faults.hold_summary(ops, "stamp-2", 10.0, 20.0, 2.0)
    assert [len(summary[k]) for k in ("new_via_survivor", "survivor_via_dead", "unknown_home", "survivor")] == [1, 1, 1, 0]
    assert stamp_faults.hold_failures(summary, "stamp-2", (12.0, 20.0)) == [], "inside the window"
    assert "CreateBucket via the other stamp's front-ends: 1 ops, 0 acked, 1 not served" in stamp_faults.describe(summary, "stamp-2")[4]
    late = [op("bucket-create", 12.5, "unknown", home=None, via="stamp-1", error="503 ServiceUnavailable", http_status=503)]
    failures = stamp_faults.hold_failures(stamp_faults.hold_summary(late, "stamp-2", 10.0, 20.0, 2.0), "stamp-2", (12.0, 20.0))
    assert len(failures) == 1 and "CreateBucket" in failures[0], failures


def test_no_such_bucket_for_the_dead_stamp_s_bucket_fails_the_hold():
    ops = [op("read", 12.5, "fail", home="stamp-2", via="stamp-1", error="NoSuchBucket", http_status=404)]
    summary = stamp_faults.hold_summary(ops, "stamp-2", 10.0, 20.0, 2.0)
    failures = stamp_faults.hold_failures(summary, "stamp-2", (12.0, 20.0))
    assert len(failures) == 1 and "NoSuchBucket" in failures[0]


def test_routing_rows_count_forwarded_requests():
    ops = [
        op("read", 1, home="stamp-1", via="stamp-2"),
        op("read", 2, "fail", home="stamp-1", via="stamp-2", error="503 SlowDown", http_status=503),
        op("read", 3, home="stamp-1", via="stamp-1"),
        op("read", 4, home="stamp-1", via="stamp-1", phase="final"),
    ]
    assert stamp_faults.routing_rows(ops) == [["stamp-1", "stamp-1", 1, 1, 0], ["stamp-1", "stamp-2", 2, 1, 1]]


# --- workloads and the checker -----------------------------------------------------------


def test_a_route_draws_front_ends_of_both_stamps_and_knows_homes():
    route = workloads.Route(["stamp-1", "stamp-2"], {"b1": "stamp-1"}, random.Random(1))
    assert {route.pick() for _ in range(50)} == {0, 1}
    assert route.home("b1") == "stamp-1"
    assert route.home("new-bucket") is None  # being created: placement decides, not looked up


def test_workload_buckets_are_one_per_stamp():
    assert run.workload_buckets(7, ["stamp-1"]) == {"faults-7": None}
    assert run.workload_buckets(7, ["stamp-1", "stamp-2"]) == {"faults-7-1": "stamp-1", "faults-7-2": "stamp-2"}


def plain(kind, key, invoke, complete, bucket, result="ok", **extra):
    o = {"kind": kind, "key": key, "invoke": invoke, "complete": complete, "result": result, "bucket": bucket}
    o.update(phase="p", worker="w", **extra)
    if kind != "read" and extra.get("value") is not None:
        o["etag"] = workloads.etag_of(extra["value"].encode())
    return o


def numbered(ops):
    for i, o in enumerate(ops):
        o["id"] = i
    return ops


def test_the_same_key_in_two_buckets_is_two_registers():
    ops = numbered([
        plain("write", "reg/1", 0, 1, "a", value="x"),
        plain("write", "reg/1", 2, 3, "b", value="y"),
        plain("read", "reg/1", 4, 5, "a", value="x"),  # stale only if the buckets were mixed up
        plain("create", "create/1", 0, 1, "a", value="c1", IfNoneMatch="*"),
        plain("create", "create/1", 0, 1, "b", value="c2", IfNoneMatch="*"),  # one winner per bucket
    ])
    report = checker.check(ops)
    assert not report.anomalies and not report.lost
    ops.append(dict(plain("read", "reg/1", 6, 7, "b", value="x"), id=len(ops)))  # b never had x
    report = checker.check(ops)
    assert len(report.anomalies) == 1 and " in b by " in report.anomalies[0][1]
    assert report.where == [("b", "reg/1")]


def test_no_such_bucket_for_a_bucket_that_exists_is_an_anomaly():
    two = {"home": "stamp-2", "via": "stamp-1"}
    ops = numbered([
        plain("read", "reg/1", 0, 1, "workload", result="fail", error="NoSuchBucket", **two),
        plain("bucket-create", "", 0, 1, "new", **two),
        plain("bucket-get", "k", 2, 3, "new", result="fail", error="NoSuchBucket", **two),
        plain("bucket-delete", "", 4, 5, "new", **two),
        plain("bucket-get", "k", 4.5, 6, "new", result="fail", error="NoSuchBucket", **two),  # delete under way
        plain("read", "reg/1", 0, 1, "one-stamp", result="fail", error="NoSuchBucket"),  # no home: not judged
    ])
    report = checker.check(ops)
    assert len(report.anomalies) == 2, report.anomalies
    assert "NoSuchBucket for workload bucket workload" in report.anomalies[0][1]
    assert "NoSuchBucket for new, created on stamp-2" in report.anomalies[1][1]


def test_a_new_bucket_s_object_is_read_back():
    ops = numbered([
        plain("bucket-put", "k", 0, 1, "new", value="v1"),
        plain("bucket-get", "k", 2, 3, "new", value="v1"),
        plain("bucket-get", "k", 0.5, 0.9, "new", value=None),  # concurrent with the PUT
    ])
    assert not checker.check(ops).anomalies
    ops.append(dict(plain("bucket-get", "k", 4, 5, "new", value=None), id=len(ops)))
    anomalies = checker.check(ops).anomalies
    assert len(anomalies) == 1 and "returned None, not 'v1'" in anomalies[0][1]


def test_kill_stamp_recovery_counts_the_killed_stamp_s_buckets_or_else_its_front_ends():
    killer = nemesis.KillStamp()
    killer.stamp = "stamp-1"
    killer.homes = {"b-1": "stamp-1", "b-2": "stamp-2"}
    assert killer.counts_for_recovery(op("get", 1.0, home="stamp-1", via="stamp-2"))
    assert not killer.counts_for_recovery(op("get", 1.0, home="stamp-2", via="stamp-1"))
    # Both workload buckets moved to stamp-2: service is back when stamp-1's front-ends serve.
    killer.homes = {"b-1": "stamp-2", "b-2": "stamp-2"}
    assert killer.counts_for_recovery(op("get", 1.0, home="stamp-2", via="stamp-1"))
    assert not killer.counts_for_recovery(op("get", 1.0, home="stamp-2", via="stamp-2"))
