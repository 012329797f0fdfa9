"""Atomic, durable, checksummed files: the one write path every state file takes.

Envelope (all integers big-endian):

    magic   4 bytes  b"HRNR"
    version 1 byte   FORMAT_VERSION
    kind    1 byte   what the payload is (KIND_*), so a file of one kind is never read as another
    length  4 bytes  payload length
    crc32   4 bytes  zlib.crc32 over magic..length and the payload
    payload `length` bytes

`write_atomic` follows the recipe temp file (O_EXCL, same folder) -> write ->
fsync(file) -> os.replace -> fsync(folder), with a failpoint after each step.
A failed fsync raises `DurabilityError` (the caller must crash-stop, never
retry); a full disk (ENOSPC/EDQUOT while creating, writing or fsyncing the
temp file, before anything was renamed) removes the temp file, leaves the old
file intact and raises `DiskFullError`. `durable=False` skips both fsyncs, for
soft state such as progress: still atomic, not crash-proof.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import zlib
from pathlib import Path

from harunner.errors import CorruptFileError, DiskFullError, DurabilityError, StoreError
from harunner.failpoints import failpoint

MAGIC = b"HRNR"
FORMAT_VERSION = 1
HEADER = struct.Struct(">4sBBII")
KIND_RECORD = 1
KIND_CHECKPOINT = 2
KIND_ACCEPTOR = 3
KIND_PROPOSER = 4
KIND_META = 5
KIND_PROGRESS = 6
MAX_PAYLOAD = 64 * 1024 * 1024

WRITE_FAILPOINTS = (
    "store.after_temp_write",
    "store.after_fsync",
    "store.after_replace",
    "store.after_dir_fsync",
)


def encode(kind: int, payload: bytes) -> bytes:
    """The envelope around `payload`."""
    head = struct.pack(">4sBBI", MAGIC, FORMAT_VERSION, kind, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + struct.pack(">I", crc) + payload


def decode(data: bytes, kind: int, where: str) -> bytes:
    """The payload of an envelope of `kind`; `CorruptFileError` naming `where` otherwise."""
    if len(data) < HEADER.size:
        raise CorruptFileError(
            f"{where}: truncated ({len(data)} bytes, header needs {HEADER.size})")
    magic, version, found_kind, length, crc = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CorruptFileError(f"{where}: bad magic {magic!r}; not a harunner state file")
    if version != FORMAT_VERSION:
        raise CorruptFileError(f"{where}: format version {version}, expected {FORMAT_VERSION}")
    if found_kind != kind:
        raise CorruptFileError(f"{where}: holds kind {found_kind}, expected kind {kind}")
    payload = data[HEADER.size:]
    if len(payload) != length:
        raise CorruptFileError(f"{where}: payload is {len(payload)} bytes, header says {length}")
    if zlib.crc32(payload, zlib.crc32(data[:HEADER.size - 4])) != crc:
        raise CorruptFileError(f"{where}: checksum mismatch")
    return payload


def read(path: Path, kind: int) -> bytes:
    """The payload of the file at `path`; `FileNotFoundError` if absent, else checked."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO must not block
    except OSError as error:
        if error.errno == errno.ENOENT:
            raise
        raise CorruptFileError(f"{path}: cannot be opened as a file ({error.strerror})") from None
    try:
        if not _is_regular(fd):
            raise CorruptFileError(f"{path}: not a regular file")
        size = os.fstat(fd).st_size
        if size > MAX_PAYLOAD + HEADER.size:
            raise CorruptFileError(f"{path}: {size} bytes is larger than any state file")
        data = _read_all(fd, size)
    finally:
        os.close(fd)
    return decode(data, kind, str(path))


def _is_regular(fd: int) -> bool:
    return stat.S_ISREG(os.fstat(fd).st_mode)


def _read_all(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, max(size, 65536))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def fsync_dir(folder: Path) -> None:
    """fsync a directory so that a rename or unlink in it is durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as error:
        raise DurabilityError(f"fsync of directory {folder} failed ({error.strerror}); "
                              "the process must stop") from error
    finally:
        os.close(fd)


def write_atomic(path: Path, kind: int, payload: bytes, durable: bool = True) -> None:
    """Replace `path` with an envelope of `payload`, atomically and (by default) durably."""
    replace_file(path, encode(kind, payload), durable)


def replace_file(path: Path, data: bytes, durable: bool = True) -> None:
    """Replace `path` with the bytes `data`: temp, fsync, rename, fsync of the folder."""
    folder = path.parent
    temp = folder / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as error:
        _refuse_full_disk(error, path)
        raise StoreError(f"cannot create {temp} ({error.strerror})") from error
    try:
        _write_all(fd, data, temp, path)
        failpoint("store.after_temp_write")
        if durable:
            _fsync_temp(fd, temp, path)
    except BaseException:
        os.close(fd)
        _remove_quietly(temp)
        raise
    os.close(fd)
    failpoint("store.after_fsync")
    try:
        os.replace(temp, path)
    except OSError as error:
        _remove_quietly(temp)
        raise StoreError(f"cannot replace {path} ({error.strerror})") from error
    failpoint("store.after_replace")
    if durable:
        fsync_dir(folder)
    failpoint("store.after_dir_fsync")


def _fsync_temp(fd: int, temp: Path, path: Path) -> None:
    try:
        os.fsync(fd)
    except OSError as error:
        _refuse_full_disk(error, path)
        raise DurabilityError(f"fsync of {temp} failed ({error.strerror}); {path} was not "
                              "updated and the process must stop") from error


def _refuse_full_disk(error: OSError, path: Path) -> None:
    """Raise `DiskFullError` if `error` says the disk or quota is full."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        raise DiskFullError(f"disk full while writing {path}; the previous version is "
                            "intact. Free some space and retry") from error


def _write_all(fd: int, data: bytes, temp: Path, path: Path) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except OSError as error:
            _refuse_full_disk(error, path)
            raise StoreError(f"cannot write {temp} ({error.strerror})") from error
        view = view[written:]


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
