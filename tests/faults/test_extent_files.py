"""The corrupt-open-extent nemesis finds the last record of a replica file as the extent node
writes it (crates/stream/src/extent/format.rs), on hand-made files. No stamp is started."""

import struct
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import extent_files  # noqa: E402


def record(payload):
    head = bytes([1, 0, 0, 0]) + struct.pack("<I", len(payload))
    return head + struct.pack("<I", zlib.crc32(head + payload)) + payload


def replica(tmp_path, extent_id, *payloads, tail=b""):
    header = b"STRATAX\0" + struct.pack("<IQ", 1, extent_id)
    header += struct.pack("<I", zlib.crc32(header))
    path = tmp_path / f"{extent_id}.ext"
    path.write_bytes(header + b"".join(record(p) for p in payloads) + tail)
    return path


def test_the_last_complete_record_is_found_and_a_torn_tail_skipped(tmp_path):
    path = replica(tmp_path, 7, b"a" * 100, b"b" * 300, tail=record(b"c" * 50)[:20])
    assert extent_files.replica_file(tmp_path, 7) == path
    assert extent_files.replica_file(tmp_path, 8) is None
    start, length = extent_files.last_record(path)
    assert (start, length) == (24 + 12 + 100, 12 + 300)
    assert path.read_bytes()[start + 12 : start + length] == b"b" * 300


def test_an_empty_replica_has_no_last_record_and_flips_change_exactly_one_bit(tmp_path):
    assert extent_files.last_record(replica(tmp_path, 1)) is None
    path = replica(tmp_path, 2, b"x" * 10)
    before = path.read_bytes()
    extent_files.flip_bits(path, [(40, 3)])
    after = path.read_bytes()
    assert [i for i in range(len(before)) if before[i] != after[i]] == [40]
    assert before[40] ^ after[40] == 8
