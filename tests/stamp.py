"""Starts and stops a real local Strata stamp (`strata up`) for the integration tests.

Every node is a real process on loopback; the tests talk to the front-end with real S3
clients (boto3, the aws cli). Waits are on conditions with deadlines, never bare sleeps.
"""

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import boto3
from botocore.config import Config

# botocore settings for a client that sends each request once: `max_attempts` counts retries
# after the first attempt (`max_attempts: 1` still retries once), `total_max_attempts` counts
# every attempt. Tests that must see each answer (no retry hiding a 503, no conditional PUT
# re-sent under a new identity) use this.
NO_RETRIES = {"total_max_attempts": 1, "mode": "standard"}

REPO = Path(__file__).resolve().parent.parent
BIN_DIR = Path(os.environ.get("STRATA_BIN_DIR", REPO / "target" / "release"))
ACCESS_KEY = "STRATATESTACCESSKEY1"
SECRET_KEY = "strata-test-secret-key-0123456789abcdef"


def free_port():
    """A free port below the ephemeral range (32768+), so no client socket takes it meanwhile."""
    import random

    for _ in range(1000):
        port = random.randrange(10_000, 20_000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def wait_for(condition, timeout_s, what, interval_s=0.1):
    """Polls `condition` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as err:  # the condition may fail while the stamp starts
            last_error = err
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s}s waiting for {what} (last error: {last_error!r})")


class Stamp:
    def __init__(self, data_dir, port=None, extra_args=(), extra_env=None):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        # Passed to `strata up` and so to every node (e.g. STRATA_LIFECYCLE_DAY_MS).
        self.extra_env = dict(extra_env or {})
        self.process = None
        self.log_path = self.data_dir / "strata-up.log"

    @property
    def tls(self):
        """Whether the stamp serves S3 over HTTPS (`strata up --tls`)."""
        return "--tls" in self.extra_args

    @property
    def ca_bundle(self):
        """The CA file clients trust for the HTTPS endpoint (`strata up --tls`)."""
        return self.data_dir / "s3-tls" / "ca.pem"

    @property
    def endpoint(self):
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def env(self):
        env = dict(os.environ)
        env["STRATA_ACCESS_KEY"] = ACCESS_KEY
        env["STRATA_SECRET_KEY"] = SECRET_KEY
        env.setdefault("RUST_LOG", "info")
        env.update(self.extra_env)
        return env

    def start(self, timeout_s=90):
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        # Only what this run prints counts (the log is appended to across restarts).
        self.log_offset = log.tell()
        self.process = subprocess.Popen(
            [str(BIN_DIR / "strata"), "up", "--data-dir", str(self.data_dir), "--port", str(self.port), *self.extra_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
        )
        try:
            wait_for(self._is_up, timeout_s, "the stamp to print that it is up")
        except TimeoutError:
            self.stop()
            raise RuntimeError("strata up failed:\n" + self.log_path.read_text(errors="replace")[-4000:])
        return self

    def _is_up(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"strata up exited with {self.process.returncode}")
        printed = self.log_path.read_bytes()[self.log_offset :]
        return b"Strata stamp is up." in printed or b"Strata stamps are up:" in printed

    def stop(self, timeout_s=60):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def running(self):
        return json.loads((self.data_dir / "running.json").read_text())

    def status(self):
        out = subprocess.run(
            [str(BIN_DIR / "strata"), "status", "--data-dir", str(self.data_dir), "--json"],
            check=True,
            capture_output=True,
            env=self.env(),
            timeout=60,
        )
        return json.loads(out.stdout)

    def node(self, action, name):
        """Kills, stops, starts, pauses or resumes one node through `strata node`."""
        out = subprocess.run(
            [str(BIN_DIR / "strata"), "node", action, name, "--data-dir", str(self.data_dir)],
            capture_output=True,
            env=self.env(),
            timeout=60,
        )
        if out.returncode != 0:
            raise RuntimeError(f"strata node {action} {name}: {out.stderr.decode()}")
        return json.loads(out.stdout)

    def nodes_of(self, kind):
        return [n for n in self.running()["nodes"] if n["kind"] == kind]

    def wait_fully_replicated(self, timeout_s=120):
        """Waits until every extent has 3 healthy replicas on 3 distinct racks."""

        def done():
            status = self.status()
            extents = status["extents"]
            healthy = all(e["replicas_healthy"] == 3 and len(set(e["racks"])) == 3 for e in extents)
            return status if healthy and status["extents_under_replicated"] == 0 else None

        return wait_for(done, timeout_s, "every extent back to 3 healthy replicas on 3 racks", interval_s=0.5)

    def client(
        self, access_key=ACCESS_KEY, secret_key=SECRET_KEY, addressing="path", verify=None, endpoint=None, **config
    ):
        """A boto3 client of the stamp's endpoint (or of `endpoint`: another stamp's)."""
        if verify is None and self.tls:
            verify = str(self.ca_bundle)
        return boto3.client(
            "s3",
            endpoint_url=endpoint or self.endpoint,
            verify=verify,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name="us-east-1",
            config=Config(
                **{
                    "s3": {"addressing_style": addressing},
                    "retries": {"max_attempts": 8, "mode": "standard"},
                    "connect_timeout": 5,
                    "read_timeout": 120,
                    # SigV4 for presigned URLs too (boto3 presigns with SigV2 otherwise, which
                    # the front-end refuses unless --sigv2-enabled).
                    "signature_version": "s3v4",
                    **config,
                }
            ),
        )

    def aws(self, *args, input_bytes=None, timeout_s=600):
        """Runs the aws cli against the stamp; returns the completed process."""
        env = self.env()
        env.update(
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_CONFIG_FILE="/dev/null",
            AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        )
        if self.tls:
            env["AWS_CA_BUNDLE"] = str(self.ca_bundle)
        return subprocess.run(
            ["aws", "--endpoint-url", self.endpoint, *args],
            input=input_bytes,
            capture_output=True,
            env=env,
            timeout=timeout_s,
        )
