"""Extent replica files on an extent node's disk, as crates/stream/src/extent/format.rs writes
them, for nemeses that corrupt them (bitflip, corrupt-open-extent).

    <id>.ext   file header (24 bytes: "STRATAX\\0", version u32, extent id u64, CRC32 u32)
               records     version u8 | 3 zero bytes | payload_len u32 LE | CRC32 u32 | payload
    <id>.seal  present once the replica is sealed
"""

import os

FILE_MAGIC = b"STRATAX\0"
FILE_HEADER_BYTES = 24
RECORD_HEADER_BYTES = 12
RECORD_VERSION = 1
# When the records cannot be walked (a format this file does not know), the flip lands this
# close to the end of the file: data records carry 1 MiB chunks, so still inside the last one.
UNKNOWN_FORMAT_TAIL_BYTES = 1024


def replica_file(folder, extent_id):
    """The path of extent `extent_id`'s replica in `folder`, or None (ids are decimal, maybe
    zero-padded)."""
    try:
        for path in folder.iterdir():
            if path.suffix == ".ext" and path.stem.isdigit() and int(path.stem) == extent_id:
                return path
    except OSError:
        return None
    return None


def last_record(path):
    """(offset, length) of the last complete record of a replica file, header included; None
    when it holds no complete record. A torn (incomplete) tail is skipped: it was never
    acknowledged, so it is no test of acknowledged bytes."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(8) != FILE_MAGIC:
            return _tail_guess(size)
        offset, last = FILE_HEADER_BYTES, None
        while offset + RECORD_HEADER_BYTES <= size:
            f.seek(offset)
            header = f.read(RECORD_HEADER_BYTES)
            if header[0] != RECORD_VERSION or header[1:4] != b"\0\0\0":
                return _tail_guess(size)
            end = offset + RECORD_HEADER_BYTES + int.from_bytes(header[4:8], "little")
            if end > size:
                break
            last, offset = (offset, end - offset), end
        return last


def _tail_guess(size):
    if size <= FILE_HEADER_BYTES + RECORD_HEADER_BYTES:
        return None
    start = max(FILE_HEADER_BYTES, size - UNKNOWN_FORMAT_TAIL_BYTES)
    return start, size - start


def flip_bits(path, offsets_bits):
    """Flips bit `bit` of byte `offset` for each (offset, bit), durably."""
    with open(path, "r+b") as f:
        for offset, bit in offsets_bits:
            f.seek(offset)
            byte = f.read(1)[0]
            f.seek(offset)
            f.write(bytes([byte ^ (1 << bit)]))
        f.flush()
        os.fsync(f.fileno())
