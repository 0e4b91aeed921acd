"""Where the fault suite runs: a `docker compose` stamp or a `strata up` stamp, or two stamps
under one location group (`stamps=2`: `strata up --stamps 2`, or compose with
docker-compose.stamp-2.yml).

Both offer the same small interface the nemeses use: node names by role (and stamp), the
current manager leaders of a stamp and the location group's leader, kill / start / pause /
resume one node, partition and heal one node's network (compose only), the folder of an extent
node's files (for bit flips) and `strata status --json` (of one stamp).
Every wait has a deadline; every external command has a timeout.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

import stamp as stamp_module  # noqa: E402  (tests/stamp.py: starts `strata up`)

COMMAND_TIMEOUT_S = 60
# One run of `strata bucket move`: copy passes over a bucket of some GiB on a busy 2-core host,
# the fence, 4 s of switch and the grace period.
MOVE_TIMEOUT_S = 900
HEALTH_TIMEOUT_S = 2
# The order `strata up` starts a stamp's nodes in (a killed stamp is started again in it).
START_ORDER = ["location", "stream-manager", "extent-node", "partition-manager", "partition-server", "frontend"]
# `strata status` names the partition manager group "manager", its nodes' kind "partition-manager".
GROUP_KIND = {"manager": "partition-manager", "stream-manager": "stream-manager"}


def run(args, timeout_s=COMMAND_TIMEOUT_S, check=True, env=None):
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, env=env)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    return out


def wait_for(condition, timeout_s, what, interval_s=0.5):
    return stamp_module.wait_for(condition, timeout_s, what, interval_s=interval_s)


class Target:
    """What every target provides; node names follow `strata status` (extent-r1-1, ...; a
    second stamp's are prefixed s2-)."""

    name = "?"
    supports = set()
    stamp_count = 1

    def __init__(self):
        # bucket -> the stamp it is homed on (run.py fills it in two-stamp mode).
        self.homes = {}

    def endpoints(self):
        raise NotImplementedError

    def endpoint_stamps(self):
        """The stamp of each endpoint, in the order of endpoints()."""
        return [self.stamps()[0]] * len(self.endpoints())

    def endpoints_of(self, stamp):
        """The S3 endpoints of one stamp's front-ends (every endpoint for None)."""
        if stamp is None:
            return self.endpoints()
        return [e for e, s in zip(self.endpoints(), self.endpoint_stamps()) if s == stamp]

    def credentials(self):
        raise NotImplementedError

    def status(self, stamp=None):
        """`strata status --json` (with `--stamp` when a stamp is named)."""
        raise NotImplementedError

    def stamps(self):
        """The stamps' names, first stamp first."""
        return stamps_of(self.layout())

    def stamp_of(self, name):
        """The stamp a node belongs to (None for a location member)."""
        return node_stamp(self.layout(), next(n for n in self.layout()["nodes"] if n["name"] == name))

    def home_of(self, bucket):
        """The stamp a workload bucket is homed on (None: the only stamp)."""
        return self.homes.get(bucket)

    def nodes(self, kind, stamp=None):
        """Node names of a kind, as `strata status --json` names kinds (extent-node, ...), of
        one stamp or (None) of every stamp."""
        layout = self.layout()
        return [
            n["name"] for n in layout["nodes"]
            if n["kind"] == kind and (stamp is None or node_stamp(layout, n) == stamp)
        ]

    def stamp_nodes(self, stamp):
        """Every node of one stamp (never a location member), in start order."""
        layout = self.layout()
        own = [n for n in layout["nodes"] if node_stamp(layout, n) == stamp]
        return [n["name"] for n in sorted(own, key=lambda n: START_ORDER.index(n["kind"]))]

    def rack_of(self, name):
        return next(n.get("rack") for n in self.layout()["nodes"] if n["name"] == name)

    def perimeter_breaches(self):
        """Internal addresses the host can reach but must not (none where the target has no
        closed network)."""
        return []

    def leader(self, group, stamp=None):
        """The name of the current leader of `group` ("manager" or "stream-manager") of one
        stamp (None: the first)."""
        status = self.status(stamp)
        key = "manager" if group == "manager" else "stream_manager"
        leader_id = (status.get(key) or {}).get("leader_id")
        if not leader_id:
            return None
        if self.stamp_count == 1:
            return f"{group}-{leader_id}"
        return member_name(self.layout(), GROUP_KIND[group], stamp or self.stamps()[0], leader_id)

    def locate(self, bucket):
        """The stamp a bucket is homed on, as the location group says (`strata bucket locate`);
        None when it does not say (no such bucket, no answer)."""
        raise NotImplementedError

    def move_bucket(self, bucket, to, grace_s, abort=False, timeout_s=MOVE_TIMEOUT_S):
        """Runs the mover once, `strata bucket move NAME --to STAMP --json --grace-s N` (or
        `--abort`): (exit code, stdout, stderr); a run past `timeout_s` is killed (code None)."""
        raise NotImplementedError

    def kill_all(self, names):
        for name in names:
            self.kill(name)

    def start_all(self, names):
        for name in names:
            self.start_node(name)

    def health(self, name):
        """The /health details a node reports (None when it does not answer)."""
        node = next(n for n in self.layout()["nodes"] if n["name"] == name)
        return health_details(node["http_addr"])

    def location_leader(self):
        """The name of the location group's leader, as its members' /health report it."""
        members = [n for n in self.layout()["nodes"] if n["kind"] == "location"]
        views = [(m, self.health(m["name"])) for m in members]
        leader_id = leader_from_views([v for _, v in views if v])
        if not leader_id:
            return None
        return next((m["name"] for m in members if m.get("member_id") == leader_id), None)


def node_stamp(layout, node):
    """The stamp of a layout node: None for a location member, the layout's stamp when the node
    names none (layouts of one stamp)."""
    if node["kind"] == "location":
        return None
    return node.get("stamp") or layout["stamp"]


def stamps_of(layout):
    stamps = []
    for node in layout["nodes"]:
        stamp = node_stamp(layout, node)
        if stamp is not None and stamp not in stamps:
            stamps.append(stamp)
    return stamps


def member_name(layout, kind, stamp, member_id):
    """The node of a Raft group (kind) of one stamp with this member id."""
    for node in layout["nodes"]:
        if node["kind"] == kind and node_stamp(layout, node) == stamp and node.get("member_id") == member_id:
            return node["name"]
    return None


def move_args(bucket, to, grace_s, abort):
    """`strata bucket move` arguments (without --data-dir): a move to `to`, or its abort."""
    args = ["bucket", "move", bucket, "--json", "--grace-s", str(int(grace_s))]
    return args + (["--abort"] if abort else ["--to", to])


def health_details(http_addr):
    """GET /health on an admin address: the node's details, or None (no answer, unhealthy)."""
    try:
        with urllib.request.urlopen(f"http://{http_addr}/health", timeout=HEALTH_TIMEOUT_S) as answer:
            return json.loads(answer.read()).get("details")
    except Exception:  # refused, timed out, 503 while no leader is known: no view
        return None


def leader_from_views(views):
    """The leader id a Raft group's members agree on, from their health details ({node_id,
    leader_id, term}): a member that names itself leader at the highest term wins; else the
    leader named at the highest term; 0 when none is known."""
    known = [v for v in views if v.get("leader_id")]
    if not known:
        return 0
    own = [v for v in known if v["leader_id"] == v.get("node_id")]
    best = max(own or known, key=lambda v: v.get("term", 0))
    return best["leader_id"]


class UpTarget(Target):
    """`strata up` processes on loopback, driven through `strata node ...`."""

    name = "up"
    supports = {"kill", "pause", "bitflip"}

    def __init__(self, work_dir, extent_size_bytes_max, reshape=None, stamps=1):
        super().__init__()
        self.work_dir = Path(work_dir)
        self.stamp_count = stamps
        extra = ["--partition-servers", "3", "--extent-size-bytes-max", str(extent_size_bytes_max)]
        if stamps > 1:
            extra += ["--stamps", str(stamps)]
        for name, value in sorted((reshape or {}).items()):
            extra += [f"--{name.replace('_', '-')}", str(value)]
        self.stamp = stamp_module.Stamp(self.work_dir / "stamp", extra_args=extra)
        self._layout = None

    def start(self):
        self.stamp.start(timeout_s=120 * self.stamp_count)

    def stop(self):
        self.stamp.stop()

    def layout(self):
        if self._layout is None:
            self._layout = json.loads((self.stamp.data_dir / "stamp.json").read_text())
        return self._layout

    def endpoints(self):
        if self.stamp_count == 1:
            return [self.stamp.endpoint]
        return [f"http://{addr}" for addr in self._frontend_addrs()]

    def endpoint_stamps(self):
        if self.stamp_count == 1:
            return super().endpoint_stamps()
        layout = self.layout()
        return [node_stamp(layout, n) for n in layout["nodes"] if n["kind"] == "frontend"]

    def _frontend_addrs(self):
        return [n["addr"] for n in self.layout()["nodes"] if n["kind"] == "frontend"]

    def credentials(self):
        return stamp_module.ACCESS_KEY, stamp_module.SECRET_KEY

    def status(self, stamp=None):
        if stamp is None:
            return self.stamp.status()
        out = run(
            [str(stamp_module.BIN_DIR / "strata"), "status", "--json", "--stamp", stamp, "--data-dir", str(self.stamp.data_dir)],
            env=self.stamp.env(),
        )
        return json.loads(out.stdout)

    def locate(self, bucket):
        args = [str(stamp_module.BIN_DIR / "strata"), "bucket", "locate", bucket, "--json"]
        out = run(args + ["--data-dir", str(self.stamp.data_dir)], env=self.stamp.env(), check=False)
        return json.loads(out.stdout)["stamp"] if out.returncode == 0 else None

    def move_bucket(self, bucket, to, grace_s, abort=False, timeout_s=MOVE_TIMEOUT_S):
        args = [str(stamp_module.BIN_DIR / "strata")] + move_args(bucket, to, grace_s, abort)
        args += ["--data-dir", str(self.stamp.data_dir)]
        try:
            out = run(args, timeout_s=timeout_s, check=False, env=self.stamp.env())
        except subprocess.TimeoutExpired:  # subprocess.run killed the mover
            return None, "", f"killed after {timeout_s} s"
        return out.returncode, out.stdout, out.stderr

    def kill(self, name):
        self.stamp.node("kill", name)

    def start_node(self, name):
        self.stamp.node("start", name)

    def pause(self, name):
        self.stamp.node("pause", name)

    def resume(self, name):
        self.stamp.node("resume", name)

    def extent_dir(self, name):
        return self.stamp.data_dir / "nodes" / name / "extents"

    def save_logs(self, dest):
        shutil.copytree(self.stamp.data_dir / "logs", Path(dest))
        shutil.copy(self.stamp.log_path, Path(dest) / "strata-up.log")

    def logs_hint(self):
        return str(self.stamp.data_dir / "logs")


def compose_command():
    """`docker compose` (v2) when present, else `docker-compose` (v1)."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise RuntimeError("neither `docker compose` nor `docker-compose` is installed")


class ComposeTarget(Target):
    """The top-level docker-compose.yml, one container per node, driven through docker."""

    name = "compose"
    supports = {"kill", "pause", "bitflip", "partition"}

    def __init__(
        self, project, ports, extent_size_bytes_max, access_key, secret_key, fresh=True, reshape=None, stamps=1
    ):
        super().__init__()
        self.project = project
        self.ports = ports
        self.fresh = fresh
        self.access_key = access_key
        self.secret_key = secret_key
        self.stamp_count = stamps
        files = ["docker-compose.yml"] + (["docker-compose.stamp-2.yml"] if stamps > 1 else [])
        self.compose = compose_command()
        for name in files:
            self.compose += ["-f", str(REPO / name)]
        self.compose += ["-p", project]
        self.env = dict(os.environ)
        # STRATA_S3_PORT_1 and _2: stamp-1's front-ends; _3 and _4: stamp-2's.
        self.env.update({f"STRATA_S3_PORT_{i}": str(port) for i, port in enumerate(ports, start=1)})
        self.env.update(
            {
                "STRATA_EXTENT_SIZE_BYTES_MAX": str(extent_size_bytes_max),
                "STRATA_ACCESS_KEY": access_key,
                "STRATA_SECRET_KEY": secret_key,
            }
        )
        # The partition managers' split settings (docker-compose.yml: STRATA_SPLIT_...).
        self.env.update({f"STRATA_{name.upper()}": str(value) for name, value in (reshape or {}).items()})
        layout_file = "two-stamps.json" if stamps > 1 else "stamp.json"
        self._layout = json.loads((REPO / "docker" / layout_file).read_text())
        self._ids = {}
        self._mounts = {}
        self.network = f"{project}_stamp"

    def _compose(self, *args, timeout_s=COMMAND_TIMEOUT_S * 3, check=True):
        return run(self.compose + list(args), timeout_s=timeout_s, check=check, env=self.env)

    def start(self):
        if self.fresh:
            self._compose("down", "-v", "--remove-orphans")
        self._compose("up", "-d")

    def stop(self):
        # Unpause first: a paused container cannot be stopped.
        for name in list(self._ids):
            run(["docker", "unpause", self._ids[name]], check=False)
        self._compose("down", "-v", "--remove-orphans", check=False)

    def container(self, name):
        if name not in self._ids:
            out = self._compose("ps", "-q", name).stdout.strip()
            if not out:
                raise RuntimeError(f"no container for service {name}")
            self._ids[name] = out.splitlines()[0]
        return self._ids[name]

    def layout(self):
        return self._layout

    def endpoints(self):
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def endpoint_stamps(self):
        """The ports are the front-ends' in layout order (frontend-1, -2, s2-frontend-1, -2)."""
        layout = self.layout()
        stamps = [node_stamp(layout, n) for n in layout["nodes"] if n["kind"] == "frontend"]
        return stamps[: len(self.ports)]

    def credentials(self):
        return self.access_key, self.secret_key

    def status(self, stamp=None):
        # Run inside a location container (it sees every stamp's network). Only
        # kill-location-leader kills one: then another member runs the CLI.
        args = ["strata", "status", "--json", "--data-dir", "/etc/strata"]
        if stamp is not None:
            args += ["--stamp", stamp]
        errors = []
        for member in self.nodes("location"):
            out = run(["docker", "exec", self.container(member)] + args, timeout_s=COMMAND_TIMEOUT_S, check=False)
            if out.returncode == 0:
                return json.loads(out.stdout)
            errors.append(f"{member}: {out.stderr.strip()[-300:]}")
        raise RuntimeError("strata status failed in every location container: " + "; ".join(errors))

    def locate(self, bucket):
        args = ["strata", "bucket", "locate", bucket, "--json", "--data-dir", "/etc/strata"]
        for member in self.nodes("location"):
            out = run(["docker", "exec", self.container(member)] + args, check=False)
            if out.returncode == 0:
                return json.loads(out.stdout)["stamp"]
        return None

    def move_bucket(self, bucket, to, grace_s, abort=False, timeout_s=MOVE_TIMEOUT_S):
        """Runs the mover in a running location container (it holds the operator's certificate
        and sees every stamp's network). A timed-out `docker exec` leaves its process running
        in the container: it is found with `docker top` and killed by its pid, so no two
        movers of one bucket ever run at once."""
        args = ["strata"] + move_args(bucket, to, grace_s, abort) + ["--data-dir", "/etc/strata"]
        members = [m for m in self.nodes("location") if self._running(m)]
        if not members:
            return 1, "", "no location container is running"
        container = self.container(members[0])
        try:
            out = run(["docker", "exec", container] + args, timeout_s=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            self._kill_in_container(container, f"bucket move {bucket}")
            return None, "", f"killed after {timeout_s} s (in {members[0]})"
        return out.returncode, out.stdout, out.stderr

    def _kill_in_container(self, container, command):
        """SIGKILLs the processes of a container whose command line holds `command`, by their
        host pids (`docker top`)."""
        out = run(["docker", "top", container, "-eo", "pid,args"], check=False)
        for line in out.stdout.splitlines()[1:]:
            pid, _, args = line.strip().partition(" ")
            if command in args and pid.isdigit():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def kill(self, name):
        run(["docker", "kill", "--signal", "KILL", self.container(name)])
        # `docker kill` is a manual stop: the restart policy leaves the container down until
        # start_node. Wait until docker agrees it is gone.
        wait_for(lambda: not self._running(name), 30, f"{name} to exit")

    def kill_all(self, names):
        """SIGKILLs many containers in one `docker kill` (a whole stamp dies at once)."""
        ids = self._containers(names)
        run(["docker", "kill", "--signal", "KILL"] + ids)
        wait_for(lambda: not any(self._running_ids(ids)), 60, f"{len(names)} containers to exit")

    def start_all(self, names):
        """Starts many containers in one `docker start` (in the order given)."""
        run(["docker", "start"] + self._containers(names), timeout_s=COMMAND_TIMEOUT_S * 3)

    def _containers(self, names):
        """Container ids of many services, found with one `docker ps` (not one compose call each)."""
        missing = [n for n in names if n not in self._ids]
        if missing:
            labels = '{{.ID}} {{.Label "com.docker.compose.service"}} {{.Label "com.docker.compose.oneoff"}}'
            out = run(["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={self.project}", "--format", labels])
            for line in out.stdout.splitlines():
                cid, service, oneoff = (line.split() + ["", "", ""])[:3]
                if service in missing and oneoff != "True":
                    self._ids.setdefault(service, cid)
        return [self.container(n) for n in names]

    def _running_ids(self, ids):
        out = run(["docker", "inspect", "-f", "{{.State.Running}}"] + ids)
        return [line.strip() == "true" for line in out.stdout.splitlines()]

    def _running(self, name):
        out = run(["docker", "inspect", "-f", "{{.State.Running}}", self.container(name)])
        return out.stdout.strip() == "true"

    def start_node(self, name):
        run(["docker", "start", self.container(name)])

    def pause(self, name):
        run(["docker", "pause", self.container(name)])

    def resume(self, name):
        run(["docker", "unpause", self.container(name)])

    def ip_of(self, name):
        node = next(n for n in self._layout["nodes"] if n["name"] == name)
        return node["addr"].rsplit(":", 1)[0]

    def perimeter_breaches(self):
        """The stamp network is `internal: true` and only the front-ends' S3 ports are published.
        Checked from outside: the network's own setting, Docker's published ports, and what a container on the edge network
        (where S3 is served) reaches: every front-end's S3 port (the control: the check can
        see an open port) and no internal admin port (an address is reachable or not as a
        whole). The host itself keeps a route to every bridge it made; mutual TLS is what
        refuses a process there."""
        breaches = []
        networks = [self.network] + [f"{self.project}_{stamp}" for stamp in self.stamps()[1:]]
        for network in networks:
            internal = run(["docker", "network", "inspect", "-f", "{{.Internal}}", network]).stdout.strip()
            if internal != "true":
                breaches.append(f"network {network} is not internal")
        for node in self._layout["nodes"]:
            name = node["name"]
            out = run(["docker", "inspect", "-f", "{{json .NetworkSettings.Ports}}", self.container(name)])
            for port, bindings in (json.loads(out.stdout) or {}).items():
                for binding in bindings or []:
                    published = f"{binding['HostIp']}:{binding['HostPort']}"
                    if node["kind"] != "frontend" or port != "9000/tcp" or binding["HostIp"] != "127.0.0.1":
                        breaches.append(f"{name} publishes {port} on {published}")
        s3 = [n["addr"] for n in self._layout["nodes"] if n["kind"] == "frontend"]
        admin = [n["http_addr"] for n in self._layout["nodes"]]
        image = self.env.get("STRATA_IMAGE", "strata:local")
        probe = ["docker", "run", "--rm", "--network", f"{self.project}_edge", image, "strata", "probe", "--reach"]
        answers = [json.loads(line) for line in run(probe + s3 + admin).stdout.splitlines()]
        reached = {a["addr"] for a in answers if a["status"] is not None}
        breaches += [f"the edge network does not reach S3 at {addr}" for addr in s3 if addr not in reached]
        breaches += [f"the edge network reaches {addr}" for addr in admin if addr in reached]
        return breaches

    def network_of(self, name):
        """The internal network of a node's stamp (stamp-2's nodes: {project}_stamp-2)."""
        stamp = self.stamp_of(name)
        return self.network if stamp in (None, self.stamps()[0]) else f"{self.project}_{stamp}"

    def partition(self, name):
        run(["docker", "network", "disconnect", "--force", self.network_of(name), self.container(name)])

    def heal_partition(self, name):
        run(["docker", "network", "connect", "--ip", self.ip_of(name), self.network_of(name), self.container(name)])

    def cut_stamp_off(self, stamp):
        """Disconnects `stamp`'s nodes from the first stamp's network, where they reach the other
        stamp (its front-ends' links, the location group): the link between the stamps is cut,
        each stamp's own network stays whole. Answers what heal_stamp_cut reconnects."""
        cut = []
        for name in self.stamp_nodes(stamp):
            container = self.container(name)
            template = f'{{{{with index .NetworkSettings.Networks "{self.network}"}}}}{{{{.IPAddress}}}}{{{{end}}}}'
            ip = run(["docker", "inspect", "-f", template, container]).stdout.strip()
            if ip:
                run(["docker", "network", "disconnect", "--force", self.network, container])
                cut.append((container, ip))
        return cut

    def heal_stamp_cut(self, cut):
        for container, ip in cut:
            run(["docker", "network", "connect", "--ip", ip, self.network, container])

    def extent_dir(self, name):
        # A volume keeps its mountpoint: ask docker once per node (nemeses ask often).
        if name not in self._mounts:
            out = run(["docker", "volume", "inspect", "-f", "{{.Mountpoint}}", f"{self.project}_{name}"])
            self._mounts[name] = Path(out.stdout.strip()) / "extents"
        return self._mounts[name]

    def save_logs(self, dest):
        """Every service's log in one file, by one bounded `logs` call (before `down` deletes
        the containers)."""
        Path(dest).mkdir(parents=True)
        out = self._compose("logs", "--no-color", "--timestamps", check=False)
        (Path(dest) / "compose.log").write_text(out.stdout + out.stderr)

    def logs_hint(self):
        return " ".join(self.compose) + " logs <service>"
