"""Two stamps under one location group (`strata up --stamps 2`), every node a real process:
each stamp registers itself, node names are unique across stamps, new buckets spread over
both stamps (the least full first, then the fewest buckets) and names are unique across both,
either stamp's endpoint serves every bucket (requests forwarded to the home stamp, signatures
checked there), and a restart without --stamps brings both stamps back with their data."""

import hashlib
import json
import os
import re
import socket
import ssl
import subprocess
import urllib.request

import pytest
from botocore.exceptions import ClientError

import time

from stamp import BIN_DIR, NO_RETRIES, Stamp, wait_for
from test_location_group import location_leader

BUCKETS_PER_STAMP = 10


@pytest.fixture(scope="module")
def two_stamps(tmp_path_factory):
    stamp = Stamp(tmp_path_factory.mktemp("two-stamps") / "data", extra_args=["--stamps", "2"])
    stamp.start(timeout_s=180)
    yield stamp
    stamp.stop()


def endpoints(stamp):
    return {"stamp-1": stamp.endpoint, "stamp-2": f"http://127.0.0.1:{stamp.port + 1}"}


def client(stamp, name):
    return stamp.client(endpoint=endpoints(stamp)[name])


def locate(stamp, bucket):
    out = subprocess.run(
        [str(BIN_DIR / "strata"), "bucket", "locate", bucket, "--data-dir", str(stamp.data_dir)],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return out.stdout.decode().strip()


def homed_bucket(stamp, home, prefix, tries=12, s3=None):
    """A new bucket homed on `home`, created through its endpoint (or `s3`). Placement spreads
    new buckets by fill, then count, so a name may land on the other stamp first: those are
    kept (and spread the counts back), and the next name is tried."""
    s3 = s3 or client(stamp, home)
    for i in range(tries):
        bucket = f"{prefix}-{i}"
        s3.create_bucket(Bucket=bucket)
        if locate(stamp, bucket) == home:
            return bucket
    raise AssertionError(f"{tries} buckets created through {home} were all placed elsewhere")


def test_each_stamp_registers_itself_and_names_every_node_once(two_stamps):
    status = two_stamps.status()
    stamps = {s["name"]: s for s in status["stamps"]}
    assert sorted(stamps) == ["stamp-1", "stamp-2"], status["stamps"]
    for name, endpoint in endpoints(two_stamps).items():
        assert stamps[name]["endpoint"] == endpoint, stamps[name]
        # Other stamps forward to its front-end's link (mutual TLS), not to its S3 port.
        links = stamps[name]["forwarding_endpoints"]
        assert links and all(e.startswith("https://") for e in links), stamps[name]
        assert stamps[name]["region"] == "us-east-1"
        assert stamps[name]["state"] == "open"
        assert stamps[name]["health"] == "healthy", stamps[name]
    nodes = status["nodes"]
    names = [n["name"] for n in nodes]
    assert len(names) == len(set(names)), names
    by_stamp = {}
    for node in nodes:
        assert "stamp" in node, node
        by_stamp.setdefault(node["stamp"], []).append(node)
    assert [n["kind"] for n in by_stamp[None]] == ["location"] * 3
    for name, prefix in [("stamp-1", ""), ("stamp-2", "s2-")]:
        own = by_stamp[name]
        assert all(n["name"].startswith(prefix) for n in own), [n["name"] for n in own]
        kinds = sorted({n["kind"] for n in own})
        assert kinds == sorted(
            ["stream-manager", "extent-node", "partition-manager", "partition-server", "frontend"]
        )
        assert len([n for n in own if n["kind"] == "extent-node"]) == 6
    # The details of the second stamp: its own ranges, served by its own partition servers.
    second = subprocess.run(
        [str(BIN_DIR / "strata"), "status", "--json", "--stamp", "stamp-2", "--data-dir", str(two_stamps.data_dir)],
        capture_output=True,
        timeout=60,
        check=True,
        env=two_stamps.env(),
    )
    detail = json.loads(second.stdout)
    assert detail["stamp"] == "stamp-2"
    servers = {n["addr"] for n in by_stamp["stamp-2"] if n["kind"] == "partition-server"}
    assert detail["ranges"] and all(r["owner_addr"] in servers for r in detail["ranges"]), detail["ranges"]


def test_buckets_spread_over_both_stamps_and_names_are_global(two_stamps):
    """20 buckets created through both front-ends land on both stamps (equal fill: the fewest
    buckets first); each is written through the front-end that created it and read through
    the other's."""
    created = []
    for i in range(2 * BUCKETS_PER_STAMP):
        through = ["stamp-1", "stamp-2"][i % 2]
        bucket = f"spread-{i}"
        s3 = client(two_stamps, through)
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="k", Body=f"{bucket} body".encode())
        created.append((bucket, through))
    homes = {}
    for bucket, through in created:
        homes[bucket] = locate(two_stamps, bucket)
        other = client(two_stamps, "stamp-2" if through == "stamp-1" else "stamp-1")
        assert other.get_object(Bucket=bucket, Key="k")["Body"].read() == f"{bucket} body".encode()
    per_stamp = {name: sum(1 for home in homes.values() if home == name) for name in ["stamp-1", "stamp-2"]}
    assert min(per_stamp.values()) >= BUCKETS_PER_STAMP // 2, per_stamp
    # A name held on one stamp cannot be created on the other.
    first, home = created[0][0], homes[created[0][0]]
    elsewhere = "stamp-2" if home == "stamp-1" else "stamp-1"
    with pytest.raises(ClientError) as refused:
        client(two_stamps, elsewhere).create_bucket(Bucket=first)
    assert refused.value.response["Error"]["Code"] == "BucketAlreadyOwnedByYou"
    assert locate(two_stamps, first) == home
    counts = wait_for(
        lambda: {s["name"]: s["buckets"] for s in two_stamps.status()["stamps"]},
        30,
        "the stamps listed",
    )
    assert counts == per_stamp, (counts, per_stamp)
    # Either endpoint lists every bucket, wherever it is homed.
    for name in ["stamp-1", "stamp-2"]:
        listed = {b["Name"] for b in client(two_stamps, name).list_buckets()["Buckets"]}
        assert set(homes) <= listed, (name, set(homes) - listed)


def forwarded_total(stamp, frontend_name):
    """strata_frontend_forwarded_requests_total of one front-end, summed over its labels."""
    node = next(n for n in stamp.running()["nodes"] if n["name"] == frontend_name)
    with urllib.request.urlopen(f"http://{node['http_addr']}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    counts = re.findall(r'^strata_frontend_forwarded_requests_total\{[^}]*outcome="answered"[^}]*\} (\d+)', text, re.M)
    return sum(int(c) for c in counts)


def test_either_endpoint_serves_every_bucket(two_stamps):
    """PUT through one stamp's front-end and GET through the other's, both ways, for plain,
    large (streamed) and multipart objects, listings, presigned URLs and deletes."""
    one, two = client(two_stamps, "stamp-1"), client(two_stamps, "stamp-2")
    on_one = homed_bucket(two_stamps, "stamp-1", "homed-on-one")
    on_two = homed_bucket(two_stamps, "stamp-2", "homed-on-two")
    forwarded_before = forwarded_total(two_stamps, "frontend")
    for writer, reader, bucket in [(one, two, on_two), (two, one, on_one)]:
        writer.put_object(Bucket=bucket, Key="small", Body=b"across stamps")
        assert reader.get_object(Bucket=bucket, Key="small")["Body"].read() == b"across stamps"
        big = os.urandom(20 * 1024 * 1024 + 17)
        writer.put_object(Bucket=bucket, Key="big", Body=big)
        got = reader.get_object(Bucket=bucket, Key="big")["Body"].read()
        assert hashlib.md5(got).digest() == hashlib.md5(big).digest()
        upload = writer.create_multipart_upload(Bucket=bucket, Key="parts")["UploadId"]
        part = os.urandom(5 * 1024 * 1024)
        etags = [
            reader.upload_part(Bucket=bucket, Key="parts", UploadId=upload, PartNumber=n, Body=part)["ETag"]
            for n in (1, 2)
        ]
        writer.complete_multipart_upload(
            Bucket=bucket,
            Key="parts",
            UploadId=upload,
            MultipartUpload={"Parts": [{"ETag": e, "PartNumber": n} for n, e in zip((1, 2), etags)]},
        )
        assert reader.head_object(Bucket=bucket, Key="parts")["ContentLength"] == 2 * len(part)
        keys = [o["Key"] for o in reader.list_objects_v2(Bucket=bucket)["Contents"]]
        assert keys == ["big", "parts", "small"]
        url = reader.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "small"}, ExpiresIn=300)
        with urllib.request.urlopen(url, timeout=30) as answer:
            assert answer.read() == b"across stamps"
        reader.delete_object(Bucket=bucket, Key="small")
        with pytest.raises(ClientError) as gone:
            writer.get_object(Bucket=bucket, Key="small")
        assert gone.value.response["Error"]["Code"] == "NoSuchKey"
    # A wrong signature is refused at home, through the other stamp too.
    forged = two_stamps.client(endpoint=endpoints(two_stamps)["stamp-1"], secret_key="not-the-secret")
    with pytest.raises(ClientError) as refused:
        forged.get_object(Bucket=on_two, Key="big")
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert forwarded_total(two_stamps, "frontend") > forwarded_before
    # The bucket itself, deleted through the other stamp: its name is free on both.
    for bucket, through in [(on_two, one), (on_one, two)]:
        for key in ["big", "parts"]:
            through.delete_object(Bucket=bucket, Key=key)
        through.delete_bucket(Bucket=bucket)
        with pytest.raises(ClientError) as missing:
            through.head_bucket(Bucket=bucket)
        assert missing.value.response["Error"]["Code"] in ("404", "NoSuchBucket")


def test_an_early_refusal_of_a_forwarded_upload_reaches_the_client(two_stamps):
    """A large PUT with a wrong signature, through the stamp that does not hold the bucket:
    its home refuses it before reading the body and closes the link connection. The client
    must get that answer (SignatureDoesNotMatch), not a reset connection, every time, and its
    connection stays usable."""
    on_two = homed_bucket(two_stamps, "stamp-2", "early-answer")
    forged = two_stamps.client(
        endpoint=endpoints(two_stamps)["stamp-1"], secret_key="not-the-secret", retries=NO_RETRIES
    )
    body = os.urandom(12 * 1024 * 1024)
    for attempt in range(8):
        with pytest.raises(ClientError) as refused:
            forged.put_object(Bucket=on_two, Key=f"forged-{attempt}", Body=body)
        assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch", attempt
    listed = client(two_stamps, "stamp-2").list_objects_v2(Bucket=on_two)
    assert listed["KeyCount"] == 0, listed


# Start order of a stamp's nodes (as `strata up` starts them).
KIND_ORDER = ["location", "stream-manager", "extent-node", "partition-manager", "partition-server", "frontend"]


def test_a_name_deleted_on_one_stamp_and_created_on_the_other_is_found_at_once(two_stamps):
    """A stamp that served a bucket must not go on answering for it once it was deleted
    there: the name, created again on the other stamp, is listed through either at once (a
    front-end remembered "homed here" for 2 s and answered NoSuchBucket; found by CI in
    test_bucket_move.py, where a bucket deleted on its new home was created again)."""
    s3 = {name: client(two_stamps, name) for name in endpoints(two_stamps)}
    for i in range(12):
        # Placement leans to one stamp at a time: homes alternate until a name moves.
        home, other = ("stamp-1", "stamp-2") if i % 2 == 0 else ("stamp-2", "stamp-1")
        bucket = homed_bucket(two_stamps, home, f"reborn-{i}")
        s3[home].delete_bucket(Bucket=bucket)  # its home looked it up: "here"
        s3[other].create_bucket(Bucket=bucket)  # placed on either stamp
        for name in (home, other):
            assert s3[name].list_objects_v2(Bucket=bucket)["KeyCount"] == 0, (bucket, name)
        if locate(two_stamps, bucket) != home:
            return
    raise AssertionError("no name was created again on the other stamp")


def test_a_bucket_never_looked_up_is_found_while_the_location_group_has_no_leader(two_stamps):
    """The location leader and one more member killed: no leader can be elected. Through
    stamp-1, buckets homed on stamp-2 that stamp-1 never looked up are still served, each
    request sent once: the member left answers where they live from what it applied."""
    two = client(two_stamps, "stamp-2")
    unseen = [homed_bucket(two_stamps, "stamp-2", f"no-leader-{i}") for i in range(3)]
    for bucket in unseen:
        two.put_object(Bucket=bucket, Key="k", Body=bucket.encode())
    leader = wait_for(lambda: location_leader(two_stamps), 30, "the location members to agree on a leader")
    other = next(m for m in two_stamps.nodes_of("location") if m["name"] != leader["name"])
    killed = [leader["name"], other["name"]]
    for name in killed:
        two_stamps.node("kill", name)
    try:
        once = two_stamps.client(endpoint=endpoints(two_stamps)["stamp-1"], retries=NO_RETRIES)
        for bucket in unseen:
            assert once.get_object(Bucket=bucket, Key="k")["Body"].read() == bucket.encode(), bucket
    finally:
        for name in killed:
            two_stamps.node("start", name)
    wait_for(lambda: location_leader(two_stamps), 60, "the location group whole again")


def test_losing_the_location_group_or_a_whole_stamp_stops_nothing_elsewhere(two_stamps):
    one, two = client(two_stamps, "stamp-1"), client(two_stamps, "stamp-2")
    near = homed_bucket(two_stamps, "stamp-1", "near")
    far = homed_bucket(two_stamps, "stamp-2", "far")
    one.put_object(Bucket=far, Key="k", Body=b"far away")  # stamp-1 learns where it is
    unseen = homed_bucket(two_stamps, "stamp-2", "unseen")  # stamp-1 never asks where it is
    nodes = two_stamps.running()["nodes"]
    locations = [n["name"] for n in nodes if n["kind"] == "location"]
    for name in locations:
        two_stamps.node("kill", name)
    # A bucket stamp-1 cannot find a home for now is unavailable, never "no such bucket" (a
    # bug found by the two-stamp fault round: NoSuchBucket for a bucket just created).
    nobody_knows = two_stamps.client(endpoint=endpoints(two_stamps)["stamp-1"], retries=NO_RETRIES)
    with pytest.raises(ClientError) as unknown:
        nobody_knows.get_object(Bucket=unseen, Key="k")
    assert unknown.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503, unknown.value.response
    # Longer than the home map's bound (2 s): every request still served, the remote bucket
    # from the last known home.
    started = time.monotonic()
    served = 0
    while time.monotonic() - started < 3.0:
        assert one.get_object(Bucket=far, Key="k")["Body"].read() == b"far away"
        one.put_object(Bucket=near, Key=f"k{served}", Body=b"near")
        served += 1
    assert served > 0
    for name in locations:
        two_stamps.node("start", name)

    # Every node of stamp-1 killed: stamp-2 serves its own buckets; stamp-1's answer 503.
    stamp_one = sorted(
        (n for n in nodes if n.get("stamp") == "stamp-1"), key=lambda n: KIND_ORDER.index(n["kind"])
    )
    for node in stamp_one:
        two_stamps.node("kill", node["name"])
    assert two.get_object(Bucket=far, Key="k")["Body"].read() == b"far away"
    two.put_object(Bucket=far, Key="while-one-is-down", Body=b"still")
    once = two_stamps.client(endpoint=endpoints(two_stamps)["stamp-2"], retries=NO_RETRIES)
    with pytest.raises(ClientError) as unreachable:
        once.get_object(Bucket=near, Key="k0")
    assert unreachable.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    # New buckets go to the stamp that answers, however few buckets the dead one holds.
    for i in range(3):
        created = f"while-one-is-down-{i}"
        once.create_bucket(Bucket=created)
        assert locate(two_stamps, created) == "stamp-2"
    for node in stamp_one:
        two_stamps.node("start", node["name"])
    wait_for(
        lambda: two.get_object(Bucket=near, Key="k0")["Body"].read() == b"near",
        90,
        "stamp-1 serving again, through stamp-2",
    )
    assert one.get_object(Bucket=far, Key="while-one-is-down")["Body"].read() == b"still"


def test_a_restart_without_stamps_brings_both_back(two_stamps):
    s3 = client(two_stamps, "stamp-2")
    kept = homed_bucket(two_stamps, "stamp-2", "kept-on-two")
    s3.put_object(Bucket=kept, Key="k", Body=b"kept")
    two_stamps.stop()
    assert two_stamps.process.returncode == 0
    two_stamps.extra_args = []  # plain `strata up`: as many stamps as the data folder holds
    two_stamps.start(timeout_s=180)
    assert sorted(s["name"] for s in two_stamps.status()["stamps"]) == ["stamp-1", "stamp-2"]
    s3 = client(two_stamps, "stamp-2")
    assert s3.get_object(Bucket=kept, Key="k")["Body"].read() == b"kept"
    assert locate(two_stamps, kept) == "stamp-2"


def link_of(stamp, frontend):
    """The link address (`host`, `port`) of a front-end, from the stamp's layout."""
    layout = json.loads((stamp.data_dir / "stamp.json").read_text())
    node = next(n for n in layout["nodes"] if n["name"] == frontend)
    host, port = node["link_addr"].rsplit(":", 1)
    return host, int(port)


def handshake(stamp, addr, holder, method="HEAD", path="/"):
    """The status a request over the link at `addr` is answered with (False when the TLS
    handshake does not complete), presenting `holder`'s certificate from the deployment (None:
    no certificate). The server is verified as every internal channel verifies it: the
    deployment CA and the name strata.internal."""
    certs = stamp.data_dir / "certs"
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if holder is not None:
        context.load_cert_chain(str(certs / f"{holder}.pem"), str(certs / f"{holder}.key"))
    try:
        with socket.create_connection(addr, timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="strata.internal") as tls:
                # TLS 1.3 tells a refused client certificate only at the first read.
                tls.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
                head = tls.recv(16)
                return head[9:12].decode() if head.startswith(b"HTTP/1.1") else False
    except (ssl.SSLError, ConnectionError, OSError):
        return False


def test_stamps_serving_https_forward_over_their_mutual_tls_link(tmp_path):
    """With `--tls` (S3 over HTTPS) and mutual TLS inside, each stamp reports its front-ends'
    links and requests are forwarded over them, both ways; a link takes only front-end
    certificates of the deployment."""
    stamp = Stamp(tmp_path / "tls-stamps", extra_args=["--stamps", "2", "--tls"]).start(timeout_s=180)
    try:
        one = stamp.client()
        two = stamp.client(endpoint=f"https://127.0.0.1:{stamp.port + 1}")
        reported = {s["name"]: s["forwarding_endpoints"] for s in stamp.status()["stamps"]}
        for name, frontend in [("stamp-1", "frontend"), ("stamp-2", "s2-frontend")]:
            host, port = link_of(stamp, frontend)
            assert reported[name] == [f"https://{host}:{port}"], reported
        on_two = homed_bucket(stamp, "stamp-2", "tls-home", s3=two)
        on_one = homed_bucket(stamp, "stamp-1", "tls-here", s3=one)
        for writer, reader, bucket in [(one, two, on_two), (two, one, on_one)]:
            body = os.urandom(3 * 1024 * 1024 + 5)
            writer.put_object(Bucket=bucket, Key="k", Body=body)
            assert reader.get_object(Bucket=bucket, Key="k")["Body"].read() == body
        forged = stamp.client(secret_key="not-the-secret")
        with pytest.raises(ClientError) as refused:
            forged.get_object(Bucket=on_two, Key="k")
        assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
        # The link itself: front-ends and partition servers only (the handshake fails for
        # anyone else); a partition server reaches the replica sink and nothing else, a
        # front-end everything but the sink.
        link = link_of(stamp, "s2-frontend")
        assert handshake(stamp, link, "frontend")
        for holder in ["operator", "s2-extent-r1-1", None]:
            assert not handshake(stamp, link, holder), holder
        assert handshake(stamp, link, "partition-1") == "403"
        assert handshake(stamp, link, "partition-1", "POST", "/_strata/replica/apply") == "400"
        assert handshake(stamp, link, "frontend", "POST", "/_strata/replica/apply") == "403"
    finally:
        stamp.stop()


def test_without_mutual_tls_an_https_stamp_is_not_forwarded_to_but_named(tmp_path):
    """`--no-mtls --tls`: a front-end has no identity to reach another stamp's HTTPS endpoint
    with, so the request is refused with 501 and the home endpoint, never served wrongly or
    left hanging."""
    stamp = Stamp(tmp_path / "tls-stamps", extra_args=["--stamps", "2", "--tls", "--no-mtls"]).start(timeout_s=180)
    try:
        home = f"https://127.0.0.1:{stamp.port + 1}"
        stamp.client(endpoint=home).create_bucket(Bucket="tls-home")
        once = stamp.client(retries=NO_RETRIES)
        with pytest.raises(ClientError) as refused:
            once.get_object(Bucket="tls-home", Key="k")
        error = refused.value.response["Error"]
        assert error["Code"] == "NotImplemented", error
        assert home in error["Message"], error
    finally:
        stamp.stop()


def test_a_location_constraint_places_the_bucket_on_a_stamp_of_that_region(tmp_path):
    """`--regions us-east-1,eu-west-1`: CreateBucket through stamp-1 with LocationConstraint
    eu-west-1 lands on stamp-2, and GetBucketLocation answers eu-west-1 from either endpoint;
    no constraint stays on stamp-1; a region no stamp serves is InvalidLocationConstraint."""
    stamp = Stamp(tmp_path / "regions", extra_args=["--stamps", "2", "--regions", "us-east-1,eu-west-1"])
    stamp.start(timeout_s=180)
    try:
        one = stamp.client()
        two = stamp.client(endpoint=f"http://127.0.0.1:{stamp.port + 1}")
        regions = {s["name"]: s["region"] for s in stamp.status()["stamps"]}
        assert regions == {"stamp-1": "us-east-1", "stamp-2": "eu-west-1"}, regions
        one.create_bucket(Bucket="in-europe", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        one.create_bucket(Bucket="in-virginia")
        assert locate(stamp, "in-europe") == "stamp-2"
        assert locate(stamp, "in-virginia") == "stamp-1"
        for s3 in (one, two):
            assert s3.get_bucket_location(Bucket="in-europe")["LocationConstraint"] == "eu-west-1"
            assert s3.get_bucket_location(Bucket="in-virginia")["LocationConstraint"] is None
        one.put_object(Bucket="in-europe", Key="k", Body=b"placed")
        assert two.get_object(Bucket="in-europe", Key="k")["Body"].read() == b"placed"
        with pytest.raises(ClientError) as unknown:
            one.create_bucket(Bucket="nowhere", CreateBucketConfiguration={"LocationConstraint": "ap-south-9"})
        assert unknown.value.response["Error"]["Code"] == "InvalidLocationConstraint"
        missing = subprocess.run(
            [str(BIN_DIR / "strata"), "bucket", "locate", "nowhere", "--data-dir", str(stamp.data_dir)],
            capture_output=True,
            timeout=60,
        )
        assert missing.returncode != 0, "a refused bucket holds no name"
    finally:
        stamp.stop()


CAPACITY_BYTES = 64 * 1024 * 1024


def location_metric(stamp, name, label):
    """One per-stamp gauge of the first location member's /metrics, or None."""
    node = next(n for n in stamp.running()["nodes"] if n["kind"] == "location")
    with urllib.request.urlopen(f"http://{node['http_addr']}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    found = re.search(rf'^{name}\{{stamp="{label}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else None


def test_new_buckets_go_to_the_least_full_stamp(tmp_path):
    """Every extent node offers 64 MiB (`STRATA_CAPACITY_BYTES`) and stamp-1 holds 24 MiB:
    once the stream managers have reported fill, every bucket created through stamp-1 goes to
    stamp-2, the least full (counting buckets alone would alternate between the stamps).
    `strata status` and the location members' /metrics show each stamp's fill."""
    stamp = Stamp(
        tmp_path / "fill",
        extra_args=["--stamps", "2"],
        extra_env={"STRATA_CAPACITY_BYTES": str(CAPACITY_BYTES)},
    )
    stamp.start(timeout_s=180)
    try:
        fuller = homed_bucket(stamp, "stamp-1", "fuller")
        one = client(stamp, "stamp-1")
        one.put_object(Bucket=fuller, Key="big", Body=os.urandom(24 * 1024 * 1024))

        def reported():
            stamps = {s["name"]: s for s in stamp.status()["stamps"]}
            fills = [stamps[name]["fill"] for name in ("stamp-1", "stamp-2")]
            if None in fills or fills[0] - fills[1] < 0.05:
                return None
            return stamps

        stamps = wait_for(reported, 60, "stamp-1 reported fuller than stamp-2")
        for name in ("stamp-1", "stamp-2"):
            assert stamps[name]["capacity_bytes"] == 6 * CAPACITY_BYTES, stamps[name]
        # 24 MiB on 3 replicas of 384 MiB, plus logs and checkpoints.
        assert 0.15 < stamps["stamp-1"]["fill"] < 0.5, stamps["stamp-1"]
        def metric_shows_fill():
            ratio = location_metric(stamp, "strata_location_stamp_fill_ratio", "stamp-1")
            return ratio is not None and ratio > 0.1

        # Members refresh their gauges every 5 s from their own applied state.
        wait_for(metric_shows_fill, 30, "stamp-1's fill on the location group's /metrics")
        # The front-end keeps the stamps it learned for up to 5 s: two new buckets in a row on
        # stamp-2 say it has learned the fills (by bucket counts alone, the second of two
        # would stay on stamp-1).
        probes = iter(range(100))

        def probe_placed_on_two():
            homes = []
            for _ in range(2):
                bucket = f"probe-{next(probes)}"
                one.create_bucket(Bucket=bucket)
                homes.append(locate(stamp, bucket))
            return homes == ["stamp-2", "stamp-2"]

        wait_for(probe_placed_on_two, 30, "stamp-1's front-end placing on stamp-2", interval_s=1.0)
        for i in range(6):
            one.create_bucket(Bucket=f"placed-{i}")
            assert locate(stamp, f"placed-{i}") == "stamp-2"
    finally:
        stamp.stop()
