#!/usr/bin/env python3
"""The fault-injection suite: drive a stamp through S3 while nemeses inject faults, then check.

    python3 tests/faults/run.py --target compose --seed 7 --duration-s 120 --nemesis all
    python3 tests/faults/run.py --target up --nemesis kill-extent,pause-leader
    python3 tests/faults/run.py --target up --stamps 2 --nemesis kill-stamp,kill-location-leader
    python3 tests/faults/run.py --target up --stamps 2 --nemesis move-bucket --duration-s 0 --hold-s 6

One run: start a fresh stamp (docker compose, or `strata up` in a temporary folder), start the
workloads (workloads.py), then for each nemesis in a seeded order: wait until every node is
healthy, inject the fault, hold it, heal it, and measure how long until an operation begun
after the heal succeeds. Repeat rounds until --duration-s has passed (at least one round).
Then stop the workloads, wait until every extent has 3 healthy replicas on 3 racks, read every
acknowledged write back, check the history (checker.py) and print a table per nemesis.
With move-under-upload chosen, the stamp runs with 4 MiB extents and a split threshold of 150
requests/s held 2 s (MOTION_RESHAPE), so seals and splits happen inside large uploads.
Exits 1 on any lost write, anomaly, slow recovery or unrestored replication. The seed is
printed; --seed replays the same choices (the timing of a real cluster still varies).

--stamps 2: two stamps under one location group (`strata up --stamps 2`, or compose with
docker-compose.stamp-2.yml). A bucket is homed on each stamp, each with its own workers, and
every request goes to a front-end of either stamp drawn at random (a request for a bucket homed
on the other stamp is forwarded); a bucket workload creates and deletes buckets through either
stamp. `all` adds kill-stamp (a whole stamp SIGKILLed: the other stamp's requests to its own
front-ends must all be served after --stamp-settle-s), kill-location-leader and move-bucket (a
workload bucket moved to the other stamp with `strata bucket move` while the workloads run:
no request for it may get an error but a 503 or a timeout, and its home follows it); the other
nemeses pick nodes of either stamp.
"""

import argparse
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import checker  # noqa: E402
import nemesis as nemeses  # noqa: E402
from replication_watch import ReplicationWatch  # noqa: E402
import stamp_faults  # noqa: E402
import targets  # noqa: E402
import workloads  # noqa: E402

FINAL_READ_DEADLINE_S = 120
EXTENT_MIB = 16
# move-under-upload: extents small enough that every large upload crosses a seal, and a split
# threshold the workloads alone (50-120 requests/s on one range) stay under but its burst of
# HEADs (some 200/s more) passes.
MOTION_EXTENT_MIB = 4
MOTION_RESHAPE = {"split_requests_per_sec": 150, "split_sustain_ms": 2000, "reshape_cooldown_ms": 3000}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", choices=["compose", "up"], default="compose")
    p.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    p.add_argument("--duration-s", type=float, default=0, help="keep injecting rounds of faults this long")
    p.add_argument("--nemesis", default="all", help="all, or a comma list of: " + ", ".join(nemeses.all_nemeses()))
    p.add_argument("--hold-s", type=float, default=8, help="how long a fault is held (at most)")
    p.add_argument("--settle-s", type=float, default=3, help="workload time after each recovery")
    p.add_argument("--recovery-bound-s", type=float, default=3.0, help="3 election timeouts (1 s each)")
    p.add_argument("--replication-deadline-s", type=float, default=300)
    p.add_argument("--multipart-mib", type=int, default=12, help="size of each large upload")
    p.add_argument(
        "--extent-size-mib", type=int, default=None,
        help=f"extents seal at this size (default {EXTENT_MIB}; {MOTION_EXTENT_MIB} with move-under-upload)",
    )
    p.add_argument("--stamps", type=int, choices=[1, 2], default=1, help="stamps under one location group")
    p.add_argument(
        "--stamp-settle-s", type=float, default=2,
        help="kill-stamp: after this long the other stamp's requests to its own front-ends must all be served",
    )
    p.add_argument(
        "--stamp-recovery-bound-s", type=float, default=60,
        help="kill-stamp: the killed stamp's buckets served again within this long of its restart",
    )
    p.add_argument(
        "--move-grace-s", type=float, default=5,
        help="move-bucket: the mover's --grace-s (reads begun on the source before the switch finish in it)",
    )
    p.add_argument(
        "--ports", default=None,
        help="compose: host ports of the front-ends (default 9000,9001; 9000,9001,9002,9003 with --stamps 2)",
    )
    p.add_argument("--project", default="strata-faults", help="compose project name")
    p.add_argument("--keep", action="store_true", help="leave the stamp running afterwards")
    p.add_argument("--history", type=Path, help="write the history and the findings here (JSON)")
    return p.parse_args(argv)


def make_target(args, work_dir, chosen):
    motion = "move-under-upload" in chosen
    size = (args.extent_size_mib or (MOTION_EXTENT_MIB if motion else EXTENT_MIB)) * 1024 * 1024
    reshape = MOTION_RESHAPE if motion else None
    if args.target == "up":
        return targets.UpTarget(work_dir, size, reshape, stamps=args.stamps)
    ports = [int(p) for p in (args.ports or ",".join(DEFAULT_PORTS[: 2 * args.stamps])).split(",")]
    return targets.ComposeTarget(
        args.project, ports, size, "strata-faults-access", "strata-faults-secret-key", reshape=reshape,
        stamps=args.stamps,
    )


DEFAULT_PORTS = ["9000", "9001", "9002", "9003"]
PLACE_TRIES = 6  # names tried per stamp until one lands there


def workload_buckets(seed, stamps):
    """bucket -> the stamp it is created on (None: the only stamp)."""
    if len(stamps) == 1:
        return {f"faults-{seed}": None}
    return {f"faults-{seed}-{i}": stamp for i, stamp in enumerate(stamps, start=1)}


def place_buckets(target, seed):
    """The workload buckets, bucket -> home stamp (None: the only stamp), each serving through
    every front-end. With two stamps placement decides where a new bucket goes (the least full,
    then the fewest buckets, then the front-end's own), so each is created through its stamp's
    front-end and located; one that landed elsewhere is deleted and the next name tried."""
    wanted = workload_buckets(seed, target.stamps())
    if len(wanted) == 1:
        bucket = next(iter(wanted))
        wait_serving(target, bucket)
        return wanted
    homes = {}
    for bucket, stamp in wanted.items():
        for attempt in range(PLACE_TRIES):
            name = bucket if attempt == 0 else f"{bucket}-{attempt}"
            wait_serving(target, name, stamp)
            home = targets.wait_for(lambda: target.locate(name), 60, f"the location group to locate {name}")
            print(f"bucket {name}: created through {stamp}'s front-end, homed on {home}", flush=True)
            if home == stamp:
                homes[name] = stamp
                break
            drop_bucket(target, name)
        else:
            raise RuntimeError(f"no bucket landed on {stamp} in {PLACE_TRIES} tries")
    return homes


def drop_bucket(target, bucket):
    s3 = workloads.client(target.endpoints()[0], target.credentials())

    def drop():
        s3.delete_object(Bucket=bucket, Key="probe")
        s3.delete_bucket(Bucket=bucket)
        return True

    targets.wait_for(drop, 60, f"bucket {bucket} deleted")


def wait_serving(target, bucket, home=None):
    """Creates the bucket (through a front-end of its home stamp), then waits until a PUT and a
    GET work through every front-end (of every stamp: the other stamp's forward)."""
    creds = target.credentials()
    first = workloads.client(target.endpoints_of(home)[0], creds)

    def create():
        try:
            first.create_bucket(Bucket=bucket)
        except workloads.ClientError as err:
            if err.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        return True

    targets.wait_for(create, 180, "the stamp to create a bucket")
    for endpoint in target.endpoints():
        s3 = workloads.client(endpoint, creds)

        def round_trip():
            s3.put_object(Bucket=bucket, Key="probe", Body=b"ok")
            return s3.get_object(Bucket=bucket, Key="probe")["Body"].read() == b"ok"

        targets.wait_for(round_trip, 120, f"a PUT and GET through {endpoint}")


def all_healthy(target):
    if len(target.stamps()) > 1:
        return all_healthy_stamps(target)
    status = target.status()
    down = [n["name"] for n in status["nodes"] if not n["healthy"]]
    return not down and status.get("manager") and status.get("stream_manager")


def fully_replicated(target):
    if len(target.stamps()) > 1:
        return fully_replicated_stamps(target)
    status = target.status()
    extents = status["extents"]
    ok = all(e["replicas_healthy"] == 3 and len(set(e["racks"])) == 3 for e in extents)
    return status if ok and status["extents_under_replicated"] == 0 else None


def all_healthy_stamps(target):
    """`all_healthy` for every stamp: each stamp's managers lead (the nodes list has all)."""
    statuses = [target.status(stamp) for stamp in target.stamps()]
    down = [n["name"] for n in statuses[0]["nodes"] if not n["healthy"]]
    return not down and all(s.get("manager") and s.get("stream_manager") for s in statuses)


def fully_replicated_stamps(target):
    """`fully_replicated` for every stamp; the totals of all."""
    statuses = [fully_replicated_one(target.status(stamp)) for stamp in target.stamps()]
    if not all(statuses):
        return None
    return {"extents_total": sum(s["extents_total"] for s in statuses)}


def fully_replicated_one(status):
    extents = status["extents"]
    ok = all(e["replicas_healthy"] == 3 and len(set(e["racks"])) == 3 for e in extents)
    return status if ok and status["extents_under_replicated"] == 0 else None


def first_ok_after(history, t, counts=None):
    """When the first operation begun at or after t (and, with `counts`, one it accepts) succeeded."""
    with history.lock:
        done = [
            op["complete"] for op in history.ops
            if op["invoke"] >= t and op["result"] == "ok" and (counts is None or counts(op))
        ]
    return min(done) if done else None


def longest_gap(history, start, end):
    """The longest stretch in [start, end] with no operation completing successfully."""
    with history.lock:
        times = sorted(op["complete"] for op in history.ops if op["result"] == "ok" and start <= op["complete"] <= end)
    points = [start] + times + [end]
    return max(b - a for a, b in zip(points, points[1:]))


def run_phase(target, nem, args, rng, history, phases):
    row = phases.setdefault(
        nem.name,
        {"faults": [], "recover_s": [], "outage_s": [], "errors": [], "notes": [], "bound_s": nem.recovery_bound_s(args)},
    )
    targets.wait_for(lambda: all_healthy(target), 120, "every node healthy before the next fault")
    history.phase = nem.name
    nem.history = history
    t_inject = history.now()
    try:
        row["faults"].append(nem.inject(target, rng))
    except Exception as err:  # a fault that cannot be injected fails the run, visibly
        row["errors"].append(f"inject: {err}")
        return
    print(f"  [{t_inject:7.1f}s] {nem.name}: {row['faults'][-1]}", flush=True)
    time.sleep(rng.uniform(args.hold_s / 2, args.hold_s))  # holding the fault is the point
    t_heal_start = history.now()
    print(f"  [{t_heal_start:7.1f}s] {nem.name}: {nem.heal(target)}", flush=True)
    t_heal = t_heal_start if nem.recovery_from_heal_start else history.now()
    try:
        wait_s = max(180, row["bound_s"] * 2)
        counts = nem.counts_for_recovery
        first = targets.wait_for(lambda: first_ok_after(history, t_heal, counts), wait_s, f"service after {nem.name}", 0.05)
        row["recover_s"].append(first - t_heal)
        row["outage_s"].append(longest_gap(history, t_inject, first))
    except TimeoutError as err:
        row["errors"].append(str(err))
        row["recover_s"].append(float("inf"))
    stop_at = time.monotonic() + args.settle_s
    while time.monotonic() < stop_at:  # workload time after the recovery, by design
        time.sleep(0.1)
    with history.lock:
        ops = list(history.ops)
    notes, failures = nem.verdict(ops, args)
    for line in notes:
        print(f"  [{history.now():7.1f}s] {nem.name}: {line}", flush=True)
    row["notes"].append(notes)
    row["errors"] += failures


def final_reads(target, history, buckets, workers, route_of):
    """Reads every key written back (after every fault healed), each with bounded retries, one
    workload bucket after the other (each with its own deadline)."""
    history.phase = "final"
    for bucket in buckets:
        with history.lock:
            ops = [op for op in history.ops if op.get("bucket") == bucket]
        own = [w for w in workers if w.bucket == bucket]
        final_reads_of(target, history, bucket, ops, own, route_of(bucket))


def final_reads_of(target, history, bucket, ops, workers, route):
    stop = threading.Event()
    reader = workloads.Worker(
        0, history, target.endpoints(), target.credentials(), bucket, stop, random.Random(0), route=route
    )
    reader.name = "final"
    keys = sorted({op["key"] for op in ops if op["kind"] in checker.REGISTER_KINDS})
    mp_keys = sorted({op["key"] for op in ops if op["kind"] == "mp-write" and op["result"] == "ok"})
    deadline = time.monotonic() + FINAL_READ_DEADLINE_S
    for key in keys:
        while reader.read(key)["result"] != "ok" and time.monotonic() < deadline:
            pass
    for worker in workers:
        if isinstance(worker, workloads.SetWorker):
            while reader_list(reader, worker.prefix)["result"] != "ok" and time.monotonic() < deadline:
                pass
    for key in mp_keys:
        while reader_mp(reader, key)["result"] != "ok" and time.monotonic() < deadline:
            pass
    # Every acknowledged set member not deleted is also read (gone, or only missing from LIST?).
    deleted = {op["key"] for op in ops if op["kind"] == "set-delete"}
    members = sorted({op["key"] for op in ops if op["kind"] == "set-put" and op["result"] == "ok"} - deleted)
    for key in members:
        op = {"kind": "set-get", "key": key}
        while True:
            reader.call(op, lambda s3: s3.head_object(Bucket=reader.bucket, Key=key), is_write=False)
            if op["result"] == "ok" or op.get("error") in ("404", "404 NotFound") or time.monotonic() > deadline:
                break
            op = {"kind": "set-get", "key": key}


def reader_list(reader, prefix):
    op = {"kind": "list", "key": prefix}
    op["keys"] = reader.call(op, lambda s3: workloads.list_keys(s3, reader.bucket, prefix), is_write=False)
    return op


def reader_mp(reader, key):
    op = {"kind": "mp-read", "key": key}
    op["sha256"] = reader.call(op, lambda s3: workloads.read_sha256(s3, reader.bucket, key), is_write=False)
    return op


def table(history, phases, report, order):
    rows = []
    for name in order:
        ops = [op for op in history.ops if op["phase"] == name]
        row = phases.get(name, {})
        rec = row.get("recover_s", [])
        out = row.get("outage_s", [])
        rows.append(
            [
                name,
                len(ops),
                sum(op["result"] == "ok" for op in ops),
                sum(op["result"] == "fail" for op in ops),
                sum(op["result"] == "unknown" for op in ops),
                sum(p == name for p, _ in report.lost),
                sum(p == name for p, _ in report.anomalies),
                f"{max(out):.2f}" if out else "-",
                f"{max(rec):.2f}" if rec else "-",
            ]
        )
    head = ["nemesis", "ops", "acked", "failed", "unknown", "lost", "anomalies", "outage s", "recover s"]
    return format_table(head, rows)


def format_table(head, rows):
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    lines = ["| " + " | ".join(str(h).ljust(w) for h, w in zip(head, widths)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        lines.append("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")
    return "\n".join(lines)


def routing_table(ops):
    """Two stamps: operations by bucket home and front-end stamp (home != via: forwarded)."""
    rows = [row + ["yes" if row[0] != row[1] else "no"] for row in stamp_faults.routing_rows(ops)]
    return format_table(["bucket home", "via front-end of", "ops", "acked", "not served", "forwarded"], rows)


def print_key_histories(ops, where, keys_max=5):
    """Every operation on the first keys of the findings ((bucket, key) pairs), in invoke
    order: what CI keeps of a failed round, so a finding can be explained without its history
    file."""
    for bucket, key in list(dict.fromkeys(where))[:keys_max]:
        print(f"history of {key}" + (f" in {bucket}" if bucket and len({b for b, _ in where}) > 1 else "") + ":")
        mine = (o for o in ops if o.get("key") == key and o.get("bucket") == bucket)
        for op in sorted(mine, key=lambda o: o["invoke"]):
            complete = op.get("complete")
            done = f"{complete:8.3f}" if isinstance(complete, (int, float)) else "       -"
            print(
                f"  {op['invoke']:8.3f} {done} {op.get('phase', '?'):<20} {op.get('worker', '?'):<10}"
                f" fe{op.get('endpoint', '?')}{'@' + op['via'] if 'via' in op else ''} {op.get('kind', '?'):<8}"
                f" {op.get('result', '?'):<7}"
                f" {str(op.get('value'))[:40]:<40} {op.get('error') or ''}"
            )


def choose(args):
    """The nemeses to run, made, or exits with why not."""
    known = nemeses.all_nemeses()
    chosen, error = nemeses.chosen(args.nemesis, args.stamps, known)
    if error:
        sys.exit(error)
    return chosen, known


def make_workers(target, history, buckets, stop, seed, args, bucket_workload):
    """The workload threads: with one stamp, the same ten as always; with two, eight per
    workload bucket (each homed on its own stamp), requests drawn across every front-end; the
    bucket workload when asked for."""
    endpoints, creds = target.endpoints(), target.credentials()
    routes = {b: route_for(target, b, f"{seed}-{b}") for b in buckets}
    workers = []

    def add(kind, bucket, rng_name, **extra):
        rng = random.Random(rng_name(len(workers)))
        route = routes[bucket] and routes[bucket](len(workers))
        workers.append(kind(len(workers), history, endpoints, creds, bucket, stop, rng, route=route, **extra))

    size = args.multipart_mib * 1024 * 1024
    if len(buckets) == 1:
        bucket = next(iter(buckets))
        for kind in [workloads.RegisterWorker] * 3 + [workloads.CasWorker] * 2 + [workloads.CreateWorker] * 2:
            add(kind, bucket, lambda i: f"{seed}-{i}")
        add(workloads.SetWorker, bucket, lambda i: f"{seed}-set")
        # Large uploads, multipart and single PUTs: one of them is nearly always streaming.
        for single_put in (False, True):
            name = "put" if single_put else "mp"
            add(workloads.MultipartWorker, bucket, lambda i: f"{seed}-{name}", seed=seed, size=size, single_put=single_put)
    else:
        for n, bucket in enumerate(buckets):
            for kind in [workloads.RegisterWorker] * 2 + [workloads.CasWorker] * 2 + [workloads.CreateWorker] * 2:
                add(kind, bucket, lambda i: f"{seed}-{i}")
            add(workloads.SetWorker, bucket, lambda i: f"{seed}-set-{i}")
            add(workloads.MultipartWorker, bucket, lambda i: f"{seed}-mp-{i}", seed=seed, size=size, single_put=n % 2 == 1)
    if bucket_workload:
        base = f"faults-{seed}-new"
        routes[base] = route_for(target, base, f"{seed}-{base}")
        add(workloads.BucketWorker, base, lambda i: f"{seed}-buckets")
    return workers


def route_for(target, bucket, name):
    """With two stamps, a maker of each worker's Route (its own rng); None with one stamp."""
    if len(target.stamps()) == 1:
        return None
    return lambda i: workloads.Route(target.endpoint_stamps(), target.homes, random.Random(f"{name}-route-{i}"))


def failed(failures, report, phases):
    """Whether the run fails (before the summary adds its lines)."""
    slow = any(r > row["bound_s"] for row in phases.values() for r in row["recover_s"])
    return bool(failures or report.lost or report.anomalies or slow or any(row["errors"] for row in phases.values()))


def save_logs(target, seed):
    """Keeps every node's log of a failed run (the stamp's folder is deleted)."""
    dest = Path(tempfile.gettempdir()) / f"strata-faults-logs-{seed}-{int(time.time())}"
    try:
        target.save_logs(dest)
        print(f"logs of every node kept in {dest}", flush=True)
    except Exception as err:  # keeping logs must not hide the run's own result
        print(f"could not keep the logs: {err!r}", flush=True)


def replay_command(args, seed):
    replay = f"python3 tests/faults/run.py --target {args.target} --seed {seed} --nemesis {args.nemesis}"
    replay += f" --duration-s {args.duration_s:g} --hold-s {args.hold_s:g}"
    if args.stamps > 1:
        replay += f" --stamps {args.stamps}"
    if args.extent_size_mib:
        replay += f" --extent-size-mib {args.extent_size_mib}"
    if args.move_grace_s != 5:
        replay += f" --move-grace-s {args.move_grace_s:g}"
    return replay


def main(argv):
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    chosen, known = choose(args)
    work_dir = Path(tempfile.mkdtemp(prefix="strata-faults-"))
    target = make_target(args, work_dir, chosen)
    made = {name: known[name]() for name in chosen}
    skipped = [n for n, nem in made.items() if nem.needs not in target.supports]
    for name in skipped:
        print(f"note: {name} needs '{made[name].needs}', which target {target.name} lacks: skipped")
        del made[name]
    bucket_workload = args.stamps > 1 or "kill-location-leader" in made
    if "kill-location-leader" in made:
        made["kill-location-leader"].bucket_workload = bucket_workload
    if "move-bucket" in made:
        made["move-bucket"].grace_s = args.move_grace_s
    replay = replay_command(args, seed)
    print(f"seed {seed}  (replay: {replay})", flush=True)

    history = workloads.History()
    stop = threading.Event()
    phases, failures = {}, []
    workers, buckets = [], {}
    watch = None
    started = time.monotonic()
    try:
        print(f"starting a {args.target} {'stamp' if args.stamps == 1 else f'deployment of {args.stamps} stamps'} ...", flush=True)
        target.start()
        buckets = place_buckets(target, seed)
        target.homes.update({b: home for b, home in buckets.items() if home is not None})
        breaches = target.perimeter_breaches()
        failures += [f"perimeter: {breach}" for breach in breaches]
        if "partition" in target.supports:  # a target with a closed network of its own
            print(f"perimeter: {len(breaches)} breaches (published ports, reach from the edge)", flush=True)
        workers = make_workers(target, history, buckets, stop, seed, args, bucket_workload)
        if args.stamps > 1:  # replication between the stamps, watched (replication_watch.py)
            watch = ReplicationWatch(target, seed, stop)
            watch.setup()
        history.t0 = time.monotonic()
        history.phase = "baseline"
        for w in workers:
            w.start()
        if watch:
            watch.start()
        targets.wait_for(lambda: first_ok_after(history, 0), 60, "the workloads' first success")
        time.sleep(args.settle_s)  # a baseline stretch without faults, by design
        fault_start = time.monotonic()
        rounds = 0
        while rounds == 0 or time.monotonic() - fault_start < args.duration_s:
            rounds += 1
            order = sorted(made)
            rng.shuffle(order)
            print(f"round {rounds}: {', '.join(order)}", flush=True)
            for name in order:
                run_phase(target, made[name], args, rng, history, phases)
        stop.set()  # operations still in flight count in the last nemesis's phase
        for w in workers:
            w.join(timeout=60)
        print("waiting for every extent to have 3 healthy replicas on 3 racks ...", flush=True)
        try:
            status = targets.wait_for(lambda: fully_replicated(target), args.replication_deadline_s, "full replication", 1)
            print(f"  {status['extents_total']} extents, each 3 healthy replicas on 3 racks", flush=True)
        except TimeoutError as err:
            failures.append(f"replication not restored: {err}")
        routes = {b: route_for(target, b, f"{seed}-final-{b}") for b in buckets}
        final_reads(target, history, list(buckets), workers, lambda b: routes[b] and routes[b](0))
        if watch:
            lost, anomalies = watch.finish()
            print(watch.summary(), flush=True)
            failures += [f"replication: {text}" for text in (lost + anomalies)[:50]]
    except Exception as err:
        failures.append(f"run aborted: {err!r} (logs: {target.logs_hint()})")
        stop.set()
    finally:
        report = checker.check(history.ops)
        if args.keep:
            print(f"stamp left running ({args.target})")
        else:
            if failed(failures, report, phases):
                save_logs(target, seed)
            target.stop()
            shutil.rmtree(work_dir, ignore_errors=True)

    order = ["baseline"] + [n for n in phases] + ["final"]
    print()
    print(table(history, phases, report, order))
    print()
    if args.stamps > 1:
        print(routing_table(history.ops))
        print()
    for name, row in phases.items():
        for i, fault in enumerate(row["faults"]):
            print(f"  {name}: {fault}")
            for line in row["notes"][i] if i < len(row["notes"]) else []:
                print(f"    {line}")
        slow = [r for r in row["recover_s"] if r > row["bound_s"]]
        if slow:
            failures.append(f"{name}: service resumed {max(slow):.2f}s after the heal (bound {row['bound_s']}s)")
        failures += [f"{name}: {e}" for e in row["errors"]]
    for phase, text in report.lost[:50]:
        print(f"LOST ({phase}): {text}")
    for phase, text in report.anomalies[:50]:
        print(f"ANOMALY ({phase}): {text}")
    print_key_histories(history.ops, report.where)
    if report.lost:
        failures.append(f"{len(report.lost)} acknowledged writes lost")
    if report.anomalies:
        failures.append(f"{len(report.anomalies)} anomalies")
    if args.history:
        findings = {"seed": seed, "lost": report.lost, "anomalies": report.anomalies, "failures": failures}
        args.history.write_text(json.dumps({"ops": history.ops, "phases": phases, "findings": findings}, default=str))
    print(f"\n{len(history.ops)} operations in {time.monotonic() - started:.0f}s; seed {seed}")
    for failure in failures:
        print(f"FAIL: {failure}")
    print("PASS" if not failures else f"replay: {replay}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
