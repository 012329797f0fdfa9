"""Two-copy state files, updated in place: one data flush per write, no rename.

For small state that is rewritten on a latency-critical path (a Paxos
acceptor's promise must be durable before its reply leaves). The file has a
fixed size: a header written once, then two slots of `slot_size` bytes:

    header  b"HRNRPAIR", format version (1 byte), kind (1 byte), slot size (4 bytes),
            CRC-32 of the above (4 bytes), zero padding to HEADER_SIZE
    slot 0  a `harunner.durable` envelope of (seq: 8 bytes big-endian + payload), zero padded
    slot 1  the same

A write goes to the slot that does not hold the newest valid copy, with the
next seq, then `fdatasync`. The file's size and blocks never change, so the
flush carries data only: no journal commit for a rename, no directory fsync.
A torn write can only damage the slot being written; the other keeps the
previous copy, and the reader takes the valid copy with the higher seq. A
payload that outgrows its slot rebuilds the file, bigger, with an atomic
replace. A failed flush raises `DurabilityError`: the caller must stop.
"""

from __future__ import annotations

import errno
import os
import struct
import zlib
from pathlib import Path

from harunner.failpoints import failpoint
from harunner.store.durable import (
    HEADER,
    CorruptFileError,
    DiskFullError,
    DurabilityError,
    decode,
    encode,
    replace_file,
)

MAGIC = b"HRNRPAIR"
VERSION = 1
HEAD = struct.Struct(">8sBBI")
HEADER_SIZE = 64
MIN_SLOT = 4096
SEQ = struct.Struct(">Q")
FAILPOINTS = ("pair.after_write", "pair.after_sync")


def read_pair(path: Path, kind: int, strict: bool = False) -> bytes:
    """The newest valid payload; FileNotFoundError if absent, CorruptFileError if none is valid.

    With `strict`, a damaged copy is an error even when the other one is good:
    for state whose rollback is unsafe (a Paxos promise already sent), a copy
    damaged after it was acknowledged must stop the reader, not be skipped.
    """
    data = _read(path)
    seq, payload, _ = _newest(data, kind, path)
    damaged = [_why_invalid(data, kind, i) for i in (0, 1) if _is_invalid(data, kind, i)]
    if strict and damaged:
        raise CorruptFileError(f"{path}: a copy is damaged ({'; '.join(damaged)}); "
                               "the older copy is not trusted for this state")
    if payload is None:
        reasons = "; ".join(_why_invalid(data, kind, index) for index in (0, 1))
        raise CorruptFileError(f"{path}: neither copy is valid ({reasons})")
    return payload


def write_pair(path: Path, kind: int, payload: bytes) -> None:
    """Durably make `payload` the newest copy in `path` (created or grown as needed)."""
    try:
        data = _read(path)
    except (FileNotFoundError, CorruptFileError):
        data = None
    seq, _, newest_slot = _newest(data, kind, path) if data is not None else (0, None, 1)
    slot_size = _slot_size(data) if data is not None else 0
    envelope = encode(kind, SEQ.pack(seq + 1) + payload)
    if len(envelope) > slot_size:
        _rebuild(path, kind, envelope)
        return
    _overwrite(path, HEADER_SIZE + (1 - newest_slot) * slot_size, envelope)


def _rebuild(path: Path, kind: int, envelope: bytes) -> None:
    slot_size = MIN_SLOT
    while slot_size < 2 * len(envelope):
        slot_size *= 2
    head = HEAD.pack(MAGIC, VERSION, kind, slot_size)
    head += struct.pack(">I", zlib.crc32(head))
    data = head.ljust(HEADER_SIZE, b"\0") + envelope.ljust(slot_size, b"\0") + bytes(slot_size)
    replace_file(path, data)


def _overwrite(path: Path, offset: int, envelope: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        try:
            os.pwrite(fd, envelope, offset)
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(f"disk full while writing {path}; the previous copy is "
                                    "intact") from error
            raise
        failpoint("pair.after_write")
        try:
            os.fdatasync(fd)
        except OSError as error:
            raise DurabilityError(f"fdatasync of {path} failed ({error.strerror}); the "
                                  "process must stop") from error
        failpoint("pair.after_sync")
    finally:
        os.close(fd)


def _read(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        size = os.fstat(fd).st_size
        if size > 256 * 1024 * 1024:
            raise CorruptFileError(f"{path}: {size} bytes is larger than any state file")
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def _slot_size(data: bytes) -> int:
    return int(HEAD.unpack_from(data)[3])


def _newest(data: bytes, kind: int, path: Path) -> tuple[int, bytes | None, int]:
    """(seq, payload, slot index) of the newest valid copy; (0, None, 1) if none is valid."""
    if len(data) < HEADER_SIZE:
        raise CorruptFileError(f"{path}: truncated header ({len(data)} bytes)")
    magic, version, found_kind, slot_size = HEAD.unpack_from(data)
    (crc,) = struct.unpack_from(">I", data, HEAD.size)
    if magic != MAGIC or zlib.crc32(data[:HEAD.size]) != crc:
        raise CorruptFileError(f"{path}: not a two-copy state file (bad magic or header CRC)")
    if version != VERSION or found_kind != kind:
        raise CorruptFileError(f"{path}: version {version} kind {found_kind}, expected "
                               f"version {VERSION} kind {kind}")
    best: tuple[int, bytes | None, int] = (0, None, 1)
    for index in (0, 1):
        start = HEADER_SIZE + index * slot_size
        copy = _copy(data[start:start + slot_size], kind, f"{path} copy {index}")
        if copy is not None and copy[0] > best[0]:
            best = (copy[0], copy[1], index)
    return best


def _is_invalid(data: bytes, kind: int, index: int) -> bool:
    start = HEADER_SIZE + index * _slot_size(data)
    raw = data[start:start + _slot_size(data)]
    return raw[:4] != b"\0\0\0\0" and _copy(raw, kind, f"copy {index}") is None


def _why_invalid(data: bytes, kind: int, index: int) -> str:
    start = HEADER_SIZE + index * _slot_size(data)
    raw = data[start:start + _slot_size(data)]
    if len(raw) < HEADER.size or raw[:4] == b"\0\0\0\0":
        return f"copy {index}: empty"
    try:
        decode(raw[:HEADER.size + HEADER.unpack_from(raw)[3]], kind, f"copy {index}")
    except CorruptFileError as error:
        return str(error)
    return f"copy {index}: too short"


def _copy(raw: bytes, kind: int, where: str) -> tuple[int, bytes] | None:
    if len(raw) < HEADER.size or raw[:4] == b"\0\0\0\0":
        return None
    length = HEADER.unpack_from(raw)[3]
    try:
        body = decode(raw[:HEADER.size + length], kind, where)
    except CorruptFileError:
        return None
    if len(body) < SEQ.size:
        return None
    return SEQ.unpack_from(body)[0], body[SEQ.size:]
