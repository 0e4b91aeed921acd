"""The README's tour with the real aws cli: mb, cp up, ls --recursive, cp down to stdout."""

import hashlib
import os


def test_aws_cli_tour(stamp, tmp_path):
    big = tmp_path / "big.iso"
    big.write_bytes(os.urandom(40 * 1024 * 1024 + 3))  # the cli uploads this in 8 MiB parts
    digest = hashlib.sha256(big.read_bytes()).hexdigest()

    made = stamp.aws("s3", "mb", "s3://photos")
    assert made.returncode == 0, made.stderr
    up = stamp.aws("s3", "cp", str(big), "s3://photos/2026/big.iso")
    assert up.returncode == 0, up.stderr
    listed = stamp.aws("s3", "ls", "s3://photos", "--recursive")
    assert listed.returncode == 0, listed.stderr
    assert b"2026/big.iso" in listed.stdout
    assert str(big.stat().st_size).encode() in listed.stdout
    down = stamp.aws("s3", "cp", "s3://photos/2026/big.iso", "-")
    assert down.returncode == 0, down.stderr
    assert hashlib.sha256(down.stdout).hexdigest() == digest
