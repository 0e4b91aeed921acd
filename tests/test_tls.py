"""HTTPS on the S3 endpoint (`strata up --tls`): real clients that trust the stamp's CA are
served, clients that do not are refused in the handshake, plain HTTP is never served, and the CA
is kept across restarts so a client's trust outlives them."""

import socket
import ssl
import subprocess

import botocore.exceptions
import pytest

from stamp import BIN_DIR, NO_RETRIES, Stamp


def plain_http_answer(port):
    """What a plain HTTP request to the port gets back (bytes; empty when the server closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            return sock.recv(4096)
        except (ConnectionResetError, socket.timeout):
            return b""


def test_s3_over_https_with_the_stamps_ca(tmp_path):
    stamp = Stamp(tmp_path / "stamp", extra_args=["--tls"]).start()
    try:
        log = stamp.log_path.read_text(errors="replace")
        assert f"S3 endpoint:  https://127.0.0.1:{stamp.port}" in log
        assert f"AWS_CA_BUNDLE={stamp.ca_bundle}" in log
        assert stamp.running()["endpoint"] == stamp.endpoint

        s3 = stamp.client()
        s3.create_bucket(Bucket="tls")
        body = b"over TLS " * 100_000
        s3.put_object(Bucket="tls", Key="k", Body=body)
        assert s3.get_object(Bucket="tls", Key="k")["Body"].read() == body

        # The aws cli, trusting the CA through AWS_CA_BUNDLE.
        listed = stamp.aws("s3", "ls", "s3://tls/")
        assert listed.returncode == 0, listed.stderr
        assert b" k\n" in listed.stdout

        # A client that trusts only the system's CAs is refused in the handshake.
        untrusting = stamp.client(verify=True, retries=NO_RETRIES)
        with pytest.raises(botocore.exceptions.SSLError):
            untrusting.list_buckets()

        # Plain HTTP on the TLS port is never served: no HTTP answer comes back.
        answer = plain_http_answer(stamp.port)
        assert not answer.startswith(b"HTTP/"), answer[:200]

        # The CA verifies the endpoint's certificate for 127.0.0.1 (Python's own check).
        context = ssl.create_default_context(cafile=str(stamp.ca_bundle))
        with socket.create_connection(("127.0.0.1", stamp.port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
                assert tls.selected_alpn_protocol() in (None, "http/1.1")
        ca_before = stamp.ca_bundle.read_bytes()
    finally:
        stamp.stop()

    # Restarted: the same CA, so the same client trust serves the same data.
    stamp.start()
    try:
        assert stamp.ca_bundle.read_bytes() == ca_before
        assert stamp.client().get_object(Bucket="tls", Key="k")["Body"].read() == body
    finally:
        stamp.stop()


def test_a_stamp_over_mutual_tls_serves_and_reports(tmp_path):
    """`strata up --tls` (mutual TLS is the default): every internal connection over mutual TLS with the role rules
    in force (extent-node writes, heartbeats, Raft), S3 over HTTPS; objects round-trip, the
    operator's `strata status` reads every layer, and the keys are private."""
    stamp = Stamp(tmp_path / "stamp", extra_args=["--tls"]).start()
    try:
        assert stamp.running()["mtls"] is True
        s3 = stamp.client()
        s3.create_bucket(Bucket="mtls")
        bodies = {f"k{i}": bytes([i]) * (i * 300_000 + 1) for i in range(4)}
        for key, body in bodies.items():
            s3.put_object(Bucket="mtls", Key=key, Body=body)
        for key, body in bodies.items():
            assert s3.get_object(Bucket="mtls", Key=key)["Body"].read() == body
        listed = s3.list_objects_v2(Bucket="mtls")
        assert [o["Key"] for o in listed["Contents"]] == sorted(bodies)
        status = stamp.wait_fully_replicated()
        nodes = status["extent_nodes"]
        assert len(nodes) == 6 and all(node["healthy"] for node in nodes), nodes
        certs = stamp.data_dir / "certs"
        keys = sorted(certs.glob("*.key"))
        assert keys and all(k.stat().st_mode & 0o077 == 0 for k in keys), keys
        assert (stamp.data_dir / "s3-tls" / "endpoint.key").stat().st_mode & 0o077 == 0

        # A partition server takes object writes from front-ends, peers and the operator only:
        # an extent node's (valid) certificate is refused and nothing is stored.
        server = status["ranges"][0]["owner_addr"]
        refused = debug_put(stamp, server, "forged", as_holder="extent-r1-1")
        assert refused.returncode != 0 and "may not make this call" in refused.stderr, refused
        with pytest.raises(botocore.exceptions.ClientError):
            s3.head_object(Bucket="mtls", Key="forged")
        served = debug_put(stamp, server, "by-operator", as_holder="operator")
        assert served.returncode == 0, served
        assert s3.get_object(Bucket="mtls", Key="by-operator")["Body"].read() == b"operator"
    finally:
        stamp.stop()


def debug_put(stamp, server_addr, key, as_holder):
    """`strata debug put-object` straight to a partition server, presenting the certificate of
    `as_holder` from the stamp's certificate folder."""
    return subprocess.run(
        [str(BIN_DIR / "strata"), "debug", "put-object", "--server", server_addr, "--bucket", "mtls",
         "--key", key, "--data", "operator", "--timeout-ms", "10000",
         "--data-dir", str(stamp.data_dir), "--as-holder", as_holder],
        capture_output=True, text=True, timeout=60, env=stamp.env(),
    )
