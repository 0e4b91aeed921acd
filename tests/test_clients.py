"""The client matrix: real S3 clients as people use them, untouched, against a real stamp. Every
scenario asserts that the data round-trips byte for byte.

- aws cli: `s3` (a 200 MiB multipart cp, `sync` of a directory tree both ways) and `s3api`;
- s3cmd (mb, multipart put, get, ls, sync, del);
- rclone (copy, sync, check, cat);
- minio-py (multipart put_object, fput/fget, stat, list, remove);
- pyarrow: a partitioned Parquet dataset written through its S3 filesystem and read back with a
  column projection and a filter (ranged reads of the Parquet footers and column chunks).

boto3's own default behaviour (checksums, upload_file / download_file across the multipart
threshold) is in test_checksums.py; the Rust SDK (aws-sdk-s3) in crates/sdk-tests, run by cargo test.
"""

import filecmp
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from stamp import ACCESS_KEY, SECRET_KEY

MIB = 1024 * 1024


def make_tree(root, files=12, seed=0):
    """A directory tree with nested folders, an empty file, odd names and a multi-MiB file."""
    rng = __import__("random").Random(seed)
    names = [
        "a.txt",
        "empty",
        "dir/b.bin",
        "dir/sub/c with space.dat",
        "dir/sub/deeper/d+plus.json",
        "unicode/\u00e9t\u00e9.txt",
        "big/blob.bin",
    ] + [f"many/f{i:03d}" for i in range(files)]
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name == "empty":
            size = 0
        elif name.startswith("big/"):
            size = 9 * MIB + 7  # above the cli's and rclone's multipart thresholds' chunk sizes
        else:
            size = rng.randrange(1, 50_000)
        path.write_bytes(os.urandom(size))
    return names


def trees_equal(left, right):
    def files(root):
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    assert files(left) == files(right)
    for name in files(left):
        assert (left / name).read_bytes() == (right / name).read_bytes(), name


# ---------------------------------------------------------------------------------- aws cli


def test_aws_cli_200_mib_multipart_cp(stamp, tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as out:
        for _ in range(200):
            out.write(os.urandom(MIB))
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    assert stamp.aws("s3", "mb", "s3://cli-big").returncode == 0
    up = stamp.aws("s3", "cp", str(big), "s3://cli-big/big.bin")
    assert up.returncode == 0, up.stderr
    head = stamp.aws("s3api", "head-object", "--bucket", "cli-big", "--key", "big.bin")
    assert head.returncode == 0, head.stderr
    meta = json.loads(head.stdout)
    assert meta["ContentLength"] == 200 * MIB
    assert meta["ETag"].strip('"').endswith("-25")  # 8 MiB parts
    back = tmp_path / "back.bin"
    down = stamp.aws("s3", "cp", "s3://cli-big/big.bin", str(back))
    assert down.returncode == 0, down.stderr
    assert hashlib.sha256(back.read_bytes()).hexdigest() == digest


def test_aws_cli_sync_both_ways(stamp, tmp_path):
    source = tmp_path / "source"
    make_tree(source)
    assert stamp.aws("s3", "mb", "s3://cli-sync").returncode == 0
    up = stamp.aws("s3", "sync", str(source), "s3://cli-sync/tree")
    assert up.returncode == 0, up.stderr
    # A second sync finds nothing to do.
    again = stamp.aws("s3", "sync", str(source), "s3://cli-sync/tree")
    assert again.returncode == 0 and again.stdout.strip() == b"", again.stdout
    # Change, add and delete locally, then sync with --delete.
    (source / "a.txt").write_bytes(b"changed and longer than before")
    (source / "new.txt").write_bytes(b"new")
    (source / "dir" / "b.bin").unlink()
    up = stamp.aws("s3", "sync", "--delete", str(source), "s3://cli-sync/tree")
    assert up.returncode == 0, up.stderr
    target = tmp_path / "target"
    down = stamp.aws("s3", "sync", "s3://cli-sync/tree", str(target))
    assert down.returncode == 0, down.stderr
    trees_equal(source, target)
    listed = stamp.aws("s3api", "list-objects-v2", "--bucket", "cli-sync", "--prefix", "tree/dir/", "--delimiter", "/")
    assert listed.returncode == 0, listed.stderr
    prefixes = [p["Prefix"] for p in json.loads(listed.stdout).get("CommonPrefixes", [])]
    assert prefixes == ["tree/dir/sub/"]


def test_aws_cli_s3api(stamp, tmp_path):
    body = tmp_path / "body"
    body.write_bytes(os.urandom(12345))
    assert stamp.aws("s3api", "create-bucket", "--bucket", "cli-api").returncode == 0
    put = stamp.aws(
        "s3api", "put-object", "--bucket", "cli-api", "--key", "k", "--body", str(body), "--content-type", "text/x-test"
    )
    assert put.returncode == 0, put.stderr
    out = tmp_path / "out"
    got = stamp.aws("s3api", "get-object", "--bucket", "cli-api", "--key", "k", str(out))
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["ContentType"] == "text/x-test"
    assert out.read_bytes() == body.read_bytes()
    ranged = stamp.aws("s3api", "get-object", "--bucket", "cli-api", "--key", "k", "--range", "bytes=10-19", str(out))
    assert ranged.returncode == 0, ranged.stderr
    assert out.read_bytes() == body.read_bytes()[10:20]
    deleted = stamp.aws("s3api", "delete-object", "--bucket", "cli-api", "--key", "k")
    assert deleted.returncode == 0, deleted.stderr
    missing = stamp.aws("s3api", "head-object", "--bucket", "cli-api", "--key", "k")
    assert missing.returncode != 0 and b"404" in missing.stderr


# ---------------------------------------------------------------------------------- s3cmd


def s3cmd(stamp, *args, timeout_s=300):
    host = f"127.0.0.1:{stamp.port}"
    command = [
        "s3cmd",
        "--config=/dev/null",
        f"--access_key={ACCESS_KEY}",
        f"--secret_key={SECRET_KEY}",
        f"--host={host}",
        f"--host-bucket={host}",
        "--no-ssl",
        "--region=us-east-1",
        "--multipart-chunk-size-mb=5",
        *args,
    ]
    return subprocess.run(command, capture_output=True, timeout=timeout_s)


@pytest.mark.skipif(shutil.which("s3cmd") is None, reason="s3cmd is installed by tests/run")
def test_s3cmd(stamp, tmp_path):
    made = s3cmd(stamp, "mb", "s3://s3cmd-bkt")
    assert made.returncode == 0, made.stderr
    big = tmp_path / "big"
    big.write_bytes(os.urandom(12 * MIB + 5))  # three 5 MiB parts
    small = tmp_path / "small"
    small.write_bytes(b"hello s3cmd")
    for path in (big, small):
        put = s3cmd(stamp, "put", str(path), f"s3://s3cmd-bkt/in/{path.name}")
        assert put.returncode == 0, put.stderr
    listed = s3cmd(stamp, "ls", "-r", "s3://s3cmd-bkt")
    assert listed.returncode == 0, listed.stderr
    assert b"s3://s3cmd-bkt/in/big" in listed.stdout and b"s3://s3cmd-bkt/in/small" in listed.stdout
    for path in (big, small):
        back = tmp_path / f"{path.name}.back"
        got = s3cmd(stamp, "get", f"s3://s3cmd-bkt/in/{path.name}", str(back))
        assert got.returncode == 0, got.stderr
        assert back.read_bytes() == path.read_bytes()
    info = s3cmd(stamp, "info", "s3://s3cmd-bkt/in/big")
    assert info.returncode == 0, info.stderr
    tree = tmp_path / "tree"
    make_tree(tree, files=5, seed=1)
    synced = s3cmd(stamp, "sync", f"{tree}/", "s3://s3cmd-bkt/tree/")
    assert synced.returncode == 0, synced.stderr
    back_tree = tmp_path / "tree-back"
    back_tree.mkdir()
    synced = s3cmd(stamp, "sync", "s3://s3cmd-bkt/tree/", f"{back_tree}/")
    assert synced.returncode == 0, synced.stderr
    trees_equal(tree, back_tree)
    deleted = s3cmd(stamp, "del", "s3://s3cmd-bkt/in/small")
    assert deleted.returncode == 0, deleted.stderr
    listed = s3cmd(stamp, "ls", "s3://s3cmd-bkt/in/")
    assert b"in/small" not in listed.stdout and b"in/big" in listed.stdout


# ---------------------------------------------------------------------------------- rclone


def rclone(stamp, *args, timeout_s=300):
    env = dict(os.environ)
    env.update(
        RCLONE_CONFIG_STRATA_TYPE="s3",
        RCLONE_CONFIG_STRATA_PROVIDER="Other",
        RCLONE_CONFIG_STRATA_ACCESS_KEY_ID=ACCESS_KEY,
        RCLONE_CONFIG_STRATA_SECRET_ACCESS_KEY=SECRET_KEY,
        RCLONE_CONFIG_STRATA_ENDPOINT=stamp.endpoint,
        RCLONE_CONFIG_STRATA_REGION="us-east-1",
        RCLONE_CONFIG_STRATA_FORCE_PATH_STYLE="true",
        RCLONE_CONFIG=os.devnull,
    )
    # rclone's AWS SDK would load a CA bundle named here, which a plain-HTTP endpoint never needs
    # (and which it cannot combine with its own transport).
    env.pop("AWS_CA_BUNDLE", None)
    command = ["rclone", "--s3-upload-cutoff=5M", "--s3-chunk-size=5M", *args]
    return subprocess.run(command, capture_output=True, timeout=timeout_s, env=env)


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is installed by tests/run")
def test_rclone_copy_sync_check(stamp, tmp_path):
    source = tmp_path / "source"
    make_tree(source, seed=2)
    made = rclone(stamp, "mkdir", "strata:rclone-bkt")
    assert made.returncode == 0, made.stderr
    copied = rclone(stamp, "copy", str(source), "strata:rclone-bkt/tree")
    assert copied.returncode == 0, copied.stderr
    checked = rclone(stamp, "check", str(source), "strata:rclone-bkt/tree")
    assert checked.returncode == 0, checked.stderr
    # The multi-part file reads back byte for byte.
    cat = rclone(stamp, "cat", "strata:rclone-bkt/tree/big/blob.bin")
    assert cat.returncode == 0, cat.stderr
    assert cat.stdout == (source / "big" / "blob.bin").read_bytes()
    # Change the source; sync makes the remote equal again (deleting what went away).
    (source / "many" / "f000").unlink()
    (source / "dir" / "b.bin").write_bytes(os.urandom(777))
    synced = rclone(stamp, "sync", str(source), "strata:rclone-bkt/tree")
    assert synced.returncode == 0, synced.stderr
    checked = rclone(stamp, "check", str(source), "strata:rclone-bkt/tree")
    assert checked.returncode == 0, checked.stderr
    target = tmp_path / "target"
    synced = rclone(stamp, "sync", "strata:rclone-bkt/tree", str(target))
    assert synced.returncode == 0, synced.stderr
    trees_equal(source, target)
    assert filecmp.cmp(source / "big" / "blob.bin", target / "big" / "blob.bin", shallow=False)


# ---------------------------------------------------------------------------------- minio-py


def test_minio_py(stamp, tmp_path):
    import io

    from minio import Minio

    client = Minio(f"127.0.0.1:{stamp.port}", access_key=ACCESS_KEY, secret_key=SECRET_KEY, secure=False, region="us-east-1")
    client.make_bucket("minio-bkt")
    assert client.bucket_exists("minio-bkt")
    data = os.urandom(16 * MIB + 9)
    # part_size 5 MiB: a multipart upload of four parts, length known.
    result = client.put_object("minio-bkt", "obj/big", io.BytesIO(data), len(data), part_size=5 * MIB)
    assert result.etag.endswith("-4")
    # Unknown length: minio-py buffers and uploads in parts.
    client.put_object("minio-bkt", "obj/stream", io.BytesIO(data), -1, part_size=5 * MIB)
    for key in ("obj/big", "obj/stream"):
        response = client.get_object("minio-bkt", key)
        try:
            assert response.read() == data
        finally:
            response.close()
            response.release_conn()
    stat = client.stat_object("minio-bkt", "obj/big")
    assert stat.size == len(data)
    source = tmp_path / "f"
    source.write_bytes(os.urandom(300_000))
    client.fput_object("minio-bkt", "obj/file", str(source), content_type="application/x-test")
    back = tmp_path / "back"
    client.fget_object("minio-bkt", "obj/file", str(back))
    assert back.read_bytes() == source.read_bytes()
    ranged = client.get_object("minio-bkt", "obj/file", offset=1000, length=100)
    try:
        assert ranged.read() == source.read_bytes()[1000:1100]
    finally:
        ranged.close()
        ranged.release_conn()
    names = sorted(o.object_name for o in client.list_objects("minio-bkt", prefix="obj/", recursive=True))
    assert names == ["obj/big", "obj/file", "obj/stream"]
    client.remove_object("minio-bkt", "obj/stream")
    names = sorted(o.object_name for o in client.list_objects("minio-bkt", recursive=True))
    assert names == ["obj/big", "obj/file"]


# ---------------------------------------------------------------------------------- pyarrow


def test_pyarrow_partitioned_parquet_dataset(stamp, s3):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    from pyarrow import fs

    s3.create_bucket(Bucket="arrow-bkt")
    filesystem = fs.S3FileSystem(
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        endpoint_override=f"127.0.0.1:{stamp.port}",
        scheme="http",
        region="us-east-1",
        allow_bucket_creation=False,
    )
    rows = 60_000
    table = pa.table(
        {
            "year": pa.array([2020 + (i % 4) for i in range(rows)], pa.int32()),
            "id": pa.array(range(rows), pa.int64()),
            "name": pa.array([f"row-{i}" for i in range(rows)]),
            "value": pa.array([i * 0.5 for i in range(rows)], pa.float64()),
        }
    )
    ds.write_dataset(
        table,
        "arrow-bkt/events",
        format="parquet",
        partitioning=["year"],
        partitioning_flavor="hive",
        filesystem=filesystem,
        max_rows_per_group=5_000,
    )
    listed = s3.list_objects_v2(Bucket="arrow-bkt", Prefix="events/")
    # pyarrow also writes empty "directory" marker objects (keys ending in "/").
    keys = sorted(o["Key"] for o in listed["Contents"] if o["Key"].endswith(".parquet"))
    assert [k.split("/")[1] for k in keys] == ["year=2020", "year=2021", "year=2022", "year=2023"]

    dataset = ds.dataset("arrow-bkt/events", format="parquet", partitioning="hive", filesystem=filesystem)
    # Projection and filter: only two columns of one partition's row groups are read.
    projected = dataset.to_table(columns=["id", "value"], filter=(pc.field("year") == 2022) & (pc.field("id") < 10_000))
    expected_ids = [i for i in range(10_000) if 2020 + (i % 4) == 2022]
    assert projected.column_names == ["id", "value"]
    assert sorted(projected.column("id").to_pylist()) == expected_ids
    assert sorted(projected.column("value").to_pylist()) == [i * 0.5 for i in expected_ids]
    # The whole dataset round-trips.
    whole = dataset.to_table().sort_by("id")
    assert whole.column("id").to_pylist() == list(range(rows))
    assert whole.column("name").to_pylist() == [f"row-{i}" for i in range(rows)]
    assert whole.column("year").to_pylist() == [2020 + (i % 4) for i in range(rows)]
    # A single file read through the filesystem is byte-identical to what S3 returns.
    with filesystem.open_input_file(f"arrow-bkt/{keys[0]}") as handle:
        via_arrow = handle.read()
    assert via_arrow == s3.get_object(Bucket="arrow-bkt", Key=keys[0])["Body"].read()
    assert Path(keys[0]).suffix == ".parquet"
