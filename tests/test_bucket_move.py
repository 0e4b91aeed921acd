"""Buckets move online between stamps (`strata bucket move NAME --to STAMP`, issue 15 item 5),
on two real stamps (`strata up --stamps 2`): every version, delete marker, tag, configuration
and unfinished multipart upload arrives with its ids, the home switches, both endpoints serve
the bucket from its new home, and a bucket moved under 16-way read/write load loses nothing
and fails no request (clients retry the switch's 503 SlowDown, as SDKs do); a drained stamp
hands every bucket to the other and takes no new one."""

import hashlib
import json
import subprocess
import threading
import time

import pytest
from botocore.exceptions import ClientError

from stamp import BIN_DIR, NO_RETRIES, Stamp
from test_two_stamps import endpoints, homed_bucket, locate

# Clients retry 503 SlowDown with backoff (botocore's standard mode): how an SDK rides out the
# switch, during which the bucket's writes are fenced and then its home changes.
PATIENT = {"total_max_attempts": 12, "mode": "standard"}
LOAD_THREADS = 16


@pytest.fixture(scope="module")
def stamps(tmp_path_factory):
    stamp = Stamp(tmp_path_factory.mktemp("bucket-move") / "data", extra_args=["--stamps", "2"])
    stamp.start(timeout_s=180)
    yield stamp
    stamp.stop()


def client(stamp, name, retries=PATIENT):
    return stamp.client(endpoint=endpoints(stamp)[name], retries=retries)


def strata(stamp, *args, timeout_s=300):
    out = subprocess.run(
        [str(BIN_DIR / "strata"), *args, "--data-dir", str(stamp.data_dir)],
        capture_output=True,
        timeout=timeout_s,
        env=stamp.env(),
    )
    assert out.returncode == 0, out.stderr.decode()[-4000:]
    return out.stdout.decode().strip()


def move(stamp, bucket, to):
    summary = strata(stamp, "bucket", "move", bucket, "--to", to, "--grace-s", "1", "--json")
    return json.loads(summary.splitlines()[-1])


def start_mover(stamp, bucket, to, grace_s):
    """`strata bucket move` in the background, its progress lines readable on stderr."""
    return subprocess.Popen(
        [str(BIN_DIR / "strata"), "bucket", "move", bucket, "--to", to, "--grace-s", str(grace_s)]
        + ["--data-dir", str(stamp.data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=stamp.env(),
        text=True,
    )


def read_until(mover, text, seen):
    """Reads the mover's progress lines into `seen` until one holds `text` (or it ends)."""
    for line in mover.stderr:
        seen.append(line)
        if text in line:
            return


def versions_of(s3, bucket):
    answer = s3.list_object_versions(Bucket=bucket)
    versions = sorted((v["Key"], v["VersionId"], v["ETag"], v["IsLatest"]) for v in answer.get("Versions", []))
    markers = sorted((m["Key"], m["VersionId"], m["IsLatest"]) for m in answer.get("DeleteMarkers", []))
    return versions, markers


def test_a_bucket_moves_with_every_version_marker_tag_config_and_upload(stamps):
    bucket = homed_bucket(stamps, "stamp-1", "moving")
    s3 = client(stamps, "stamp-1")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "team", "Value": "blue"}]})
    big = bytes(range(256)) * (24 * 1024)  # 6 MiB: several chunks
    first = s3.put_object(Bucket=bucket, Key="a", Body=b"first")["VersionId"]
    second = s3.put_object(Bucket=bucket, Key="a", Body=big, Tagging="kind=big")["VersionId"]
    s3.put_object(Bucket=bucket, Key="gone", Body=b"soon deleted")
    marker = s3.delete_object(Bucket=bucket, Key="gone")["VersionId"]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="parts")["UploadId"]
    part1 = bytes([7]) * (5 * 1024 * 1024)
    etag1 = s3.upload_part(Bucket=bucket, Key="parts", UploadId=upload, PartNumber=1, Body=part1)["ETag"]
    before = versions_of(s3, bucket)
    assert ("gone", marker, True) in before[1], before

    summary = move(stamps, bucket, "stamp-2")
    assert summary["from"] == "stamp-1" and summary["to"] == "stamp-2", summary
    assert locate(stamps, bucket) == "stamp-2"

    for through in ["stamp-1", "stamp-2"]:
        s3 = client(stamps, through)
        assert versions_of(s3, bucket) == before, through
        assert s3.get_object(Bucket=bucket, Key="a", VersionId=first)["Body"].read() == b"first"
        got = s3.get_object(Bucket=bucket, Key="a")
        assert got["VersionId"] == second
        assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(big).digest()
        tags = s3.get_object_tagging(Bucket=bucket, Key="a", VersionId=second)["TagSet"]
        assert tags == [{"Key": "kind", "Value": "big"}], tags
        assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "team", "Value": "blue"}]
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        assert [(u["Key"], u["UploadId"]) for u in uploads] == [("parts", upload)], uploads
        with pytest.raises(Exception):
            s3.head_object(Bucket=bucket, Key="gone")
        names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert names.count(bucket) == 1, names

    # The upload goes on at the new home: a second part, then the whole object.
    s3 = client(stamps, "stamp-2")
    etag2 = s3.upload_part(Bucket=bucket, Key="parts", UploadId=upload, PartNumber=2, Body=b"tail")["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="parts",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag1}, {"PartNumber": 2, "ETag": etag2}]},
    )
    assert s3.get_object(Bucket=bucket, Key="parts")["Body"].read() == part1 + b"tail"
    # New versions sort above the moved ones.
    third = s3.put_object(Bucket=bucket, Key="a", Body=b"third")["VersionId"]
    latest = [v for v in s3.list_object_versions(Bucket=bucket, Prefix="a")["Versions"] if v["IsLatest"]]
    assert [v["VersionId"] for v in latest] == [third]

    # The old home answers a request another stamp forwarded to it with a typed "not here"
    # naming the new home (a retryable 503: the forwarder looks the home up again at once).
    stale = client(stamps, "stamp-1", retries=NO_RETRIES)

    def as_if_forwarded(request, **_):
        request.headers["x-strata-forwarded-from"] = "stamp-9"

    stale.meta.events.register("before-sign.s3.GetObject", as_if_forwarded)
    with pytest.raises(ClientError) as refused:
        stale.get_object(Bucket=bucket, Key="a")
    answer = refused.value.response
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 503, answer
    assert answer["Error"]["Code"] == "SlowDown", answer
    assert answer["ResponseMetadata"]["HTTPHeaders"].get("x-strata-not-here") == "stamp-2", answer


def test_a_bucket_moved_under_load_loses_nothing_and_fails_nothing(stamps):
    """16 writers and readers, each on its own keys, through both endpoints, for the whole
    move: every request succeeds (after retries), and afterwards every key holds exactly its
    last acknowledged write and every acknowledged delete stays deleted."""
    bucket = homed_bucket(stamps, "stamp-1", "busy")
    seed = client(stamps, "stamp-1")
    for t in range(LOAD_THREADS):
        seed.put_object(Bucket=bucket, Key=f"t{t}/0", Body=f"t{t} 0".encode())
    stop = threading.Event()
    failures = []
    last = {}  # key -> body of its last acknowledged write, None when deleted

    def work(t):
        s3 = client(stamps, ["stamp-1", "stamp-2"][t % 2])
        mine = {f"t{t}/0": f"t{t} 0".encode()}
        n = 0
        while not stop.is_set() or n < 3:
            n += 1
            key = f"t{t}/{n % 5}"
            try:
                if n % 7 == 0 and key in mine and mine[key] is not None:
                    s3.delete_object(Bucket=bucket, Key=key)
                    mine[key] = None
                else:
                    body = f"t{t} {n}".encode()
                    s3.put_object(Bucket=bucket, Key=key, Body=body)
                    mine[key] = body
                probe = f"t{t}/0"
                if mine.get(probe) is not None:
                    got = s3.get_object(Bucket=bucket, Key=probe)["Body"].read()
                    if got != mine[probe]:
                        failures.append(f"{probe}: read {got!r}, last wrote {mine[probe]!r}")
            except Exception as err:  # every failed request is a finding
                failures.append(f"{key}: {err!r}")
        last.update(mine)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(LOAD_THREADS)]
    for thread in threads:
        thread.start()
    try:
        summary = move(stamps, bucket, "stamp-2")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=300)
    assert not failures, failures[:10]
    assert summary["rows_copied"] > 0, summary
    assert locate(stamps, bucket) == "stamp-2"
    s3 = client(stamps, "stamp-1")
    listed = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        listed.update(o["Key"] for o in page.get("Contents", []))
    expected = {key for key, body in last.items() if body is not None}
    assert listed == expected, (sorted(listed - expected), sorted(expected - listed))
    for key in sorted(expected):
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == last[key], key


def test_a_mover_killed_after_the_switch_leaves_the_bucket_served_by_its_new_home(stamps):
    """The mover is killed as soon as the location group switched the home, before it told
    the target to serve. The target's front-ends serve the copy on their own once the source's
    fence is past (its 30 s and a margin): every acknowledged byte is there, and a write
    through the new home is read through the old home's endpoint."""
    bucket = homed_bucket(stamps, "stamp-1", "orphaned")
    client(stamps, "stamp-1").put_object(Bucket=bucket, Key="k", Body=b"before the move")
    mover = start_mover(stamps, bucket, "stamp-2", grace_s=600)
    seen = []
    try:
        read_until(mover, "now lives on stamp-2", seen)
    finally:
        mover.kill()
        mover.wait(timeout=30)
    assert any("now lives on stamp-2" in line for line in seen), "".join(seen)[-4000:]
    assert locate(stamps, bucket) == "stamp-2"
    impatient = client(stamps, "stamp-2", retries=NO_RETRIES)
    deadline = time.monotonic() + 120
    while True:
        try:
            got = impatient.get_object(Bucket=bucket, Key="k")["Body"].read()
            break
        except ClientError as err:
            # Until the target serves, only a retryable SlowDown is a right answer.
            assert err.response["Error"]["Code"] == "SlowDown", err.response
            assert time.monotonic() < deadline, "the moved bucket stayed refused"
            time.sleep(0.5)
    assert got == b"before the move"
    client(stamps, "stamp-2").put_object(Bucket=bucket, Key="k", Body=b"after the move")
    assert client(stamps, "stamp-1").get_object(Bucket=bucket, Key="k")["Body"].read() == b"after the move"


def test_a_bucket_deleted_while_it_moves_is_gone_everywhere(stamps):
    """An empty bucket deleted while `strata bucket move` runs: the deletion wins whenever
    it lands (while copying it aborts the move; under the fence it waits; after the switch it
    deletes at the new home). The mover ends, the name is free, no copy is left on either
    stamp, and the name can be created again and holds nothing."""
    bucket = homed_bucket(stamps, "stamp-1", "deleted-in-move")
    mover = start_mover(stamps, bucket, "stamp-2", grace_s=1)
    seen = []
    try:
        read_until(mover, "moving ", seen)
        client(stamps, "stamp-1").delete_bucket(Bucket=bucket)
        seen.extend(mover.stderr)
        code = mover.wait(timeout=120)
    finally:
        mover.kill()
    told = "".join(seen)
    assert code == 0 or "was deleted" in told, told[-4000:]
    for name in ["stamp-1", "stamp-2"]:
        with pytest.raises(ClientError) as missing:
            client(stamps, name).head_bucket(Bucket=bucket)
        assert missing.value.response["Error"]["Code"] in ("404", "NoSuchBucket"), name
    located = subprocess.run(
        [str(BIN_DIR / "strata"), "bucket", "locate", bucket, "--data-dir", str(stamps.data_dir)],
        capture_output=True,
        timeout=60,
        env=stamps.env(),
    )
    assert located.returncode != 0, located.stdout
    again = client(stamps, "stamp-2")
    again.create_bucket(Bucket=bucket)
    assert again.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    again.delete_bucket(Bucket=bucket)


def test_a_drained_stamp_takes_no_new_bucket_and_keeps_none(stamps):
    """`strata stamp drain stamp-1` closes it and moves every bucket it holds to stamp-2,
    contents included; new buckets go to stamp-2 until `strata stamp open` reopens it."""
    kept = homed_bucket(stamps, "stamp-1", "drained")
    client(stamps, "stamp-1").put_object(Bucket=kept, Key="k", Body=b"kept through the drain")
    report = json.loads(strata(stamps, "stamp", "drain", "stamp-1", "--grace-s", "0", "--json").splitlines()[-1])
    moved = {m["bucket"]: m["to"] for m in report["moved"]}
    assert moved.get(kept) == "stamp-2", report
    stamps_now = {s["name"]: s for s in stamps.status()["stamps"]}
    assert stamps_now["stamp-1"]["state"] == "draining"
    assert stamps_now["stamp-1"]["buckets"] == 0, stamps_now
    for bucket in moved:
        assert locate(stamps, bucket) == "stamp-2"
    s3 = client(stamps, "stamp-1")
    assert s3.get_object(Bucket=kept, Key="k")["Body"].read() == b"kept through the drain"
    s3.create_bucket(Bucket="after-drain")
    assert locate(stamps, "after-drain") == "stamp-2"
    strata(stamps, "stamp", "open", "stamp-1")
    assert {s["name"]: s["state"] for s in stamps.status()["stamps"]}["stamp-1"] == "open"
