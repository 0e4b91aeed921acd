"""Where the fault suite runs: a `docker compose` stamp or a `strata up` stamp.

Both offer the same small interface the nemeses use: node names by role, the current manager
leaders, kill / start / pause / resume one node, partition and heal one node's network (compose
only), the folder of an extent node's files (for bit flips) and `strata status --json`.
Every wait has a deadline; every external command has a timeout.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

import stamp as stamp_module  # noqa: E402  (tests/stamp.py: starts `strata up`)

COMMAND_TIMEOUT_S = 60


def run(args, timeout_s=COMMAND_TIMEOUT_S, check=True, env=None):
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, env=env)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    return out


def wait_for(condition, timeout_s, what, interval_s=0.5):
    return stamp_module.wait_for(condition, timeout_s, what, interval_s=interval_s)


class Target:
    """What every target provides; node names follow `strata status` (extent-r1-1, ...)."""

    name = "?"
    supports = set()

    def endpoints(self):
        raise NotImplementedError

    def credentials(self):
        raise NotImplementedError

    def status(self):
        raise NotImplementedError

    def nodes(self, kind):
        """Node names of a kind, as `strata status --json` names kinds (extent-node, ...)."""
        return [n["name"] for n in self.layout()["nodes"] if n["kind"] == kind]

    def rack_of(self, name):
        return next(n.get("rack") for n in self.layout()["nodes"] if n["name"] == name)

    def perimeter_breaches(self):
        """Internal addresses the host can reach but must not (none where the target has no
        closed network)."""
        return []

    def leader(self, group):
        """The name of the current leader of `group` ("manager" or "stream-manager")."""
        status = self.status()
        key = "manager" if group == "manager" else "stream_manager"
        leader_id = (status.get(key) or {}).get("leader_id")
        if not leader_id:
            return None
        return f"{group}-{leader_id}"


class UpTarget(Target):
    """`strata up` processes on loopback, driven through `strata node ...`."""

    name = "up"
    supports = {"kill", "pause", "bitflip"}

    def __init__(self, work_dir, extent_size_bytes_max, reshape=None):
        self.work_dir = Path(work_dir)
        extra = ["--partition-servers", "3", "--extent-size-bytes-max", str(extent_size_bytes_max)]
        for name, value in sorted((reshape or {}).items()):
            extra += [f"--{name.replace('_', '-')}", str(value)]
        self.stamp = stamp_module.Stamp(self.work_dir / "stamp", extra_args=extra)
        self._layout = None

    def start(self):
        self.stamp.start(timeout_s=120)

    def stop(self):
        self.stamp.stop()

    def layout(self):
        if self._layout is None:
            self._layout = json.loads((self.stamp.data_dir / "stamp.json").read_text())
        return self._layout

    def endpoints(self):
        return [self.stamp.endpoint]

    def credentials(self):
        return stamp_module.ACCESS_KEY, stamp_module.SECRET_KEY

    def status(self):
        return self.stamp.status()

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

    def __init__(self, project, ports, extent_size_bytes_max, access_key, secret_key, fresh=True, reshape=None):
        self.project = project
        self.ports = ports
        self.fresh = fresh
        self.access_key = access_key
        self.secret_key = secret_key
        self.compose = compose_command() + ["-f", str(REPO / "docker-compose.yml"), "-p", project]
        self.env = dict(os.environ)
        self.env.update(
            {
                "STRATA_S3_PORT_1": str(ports[0]),
                "STRATA_S3_PORT_2": str(ports[1]),
                "STRATA_EXTENT_SIZE_BYTES_MAX": str(extent_size_bytes_max),
                "STRATA_ACCESS_KEY": access_key,
                "STRATA_SECRET_KEY": secret_key,
            }
        )
        # The partition managers' split settings (docker-compose.yml: STRATA_SPLIT_...).
        self.env.update({f"STRATA_{name.upper()}": str(value) for name, value in (reshape or {}).items()})
        self._layout = json.loads((REPO / "docker" / "stamp.json").read_text())
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

    def credentials(self):
        return self.access_key, self.secret_key

    def status(self):
        # The location container is never a nemesis's target, so it can always run the CLI.
        out = run(
            ["docker", "exec", self.container("location"), "strata", "status", "--json", "--data-dir", "/etc/strata"],
            timeout_s=COMMAND_TIMEOUT_S,
        )
        return json.loads(out.stdout)

    def kill(self, name):
        run(["docker", "kill", "--signal", "KILL", self.container(name)])
        # `docker kill` is a manual stop: the restart policy leaves the container down until
        # start_node. Wait until docker agrees it is gone.
        wait_for(lambda: not self._running(name), 30, f"{name} to exit")

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
        internal = run(["docker", "network", "inspect", "-f", "{{.Internal}}", self.network]).stdout.strip()
        if internal != "true":
            breaches.append(f"network {self.network} is not internal")
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

    def partition(self, name):
        run(["docker", "network", "disconnect", "--force", self.network, self.container(name)])

    def heal_partition(self, name):
        run(["docker", "network", "connect", "--ip", self.ip_of(name), self.network, self.container(name)])

    def extent_dir(self, name):
        # A volume keeps its mountpoint: ask docker once per node (nemeses ask often).
        if name not in self._mounts:
            out = run(["docker", "volume", "inspect", "-f", "{{.Mountpoint}}", f"{self.project}_{name}"])
            self._mounts[name] = Path(out.stdout.strip()) / "extents"
        return self._mounts[name]

    def logs_hint(self):
        return " ".join(self.compose) + " logs <service>"
