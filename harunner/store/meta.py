"""The cluster's files outside the job store: identity, slot and supervisor records, locks.

Where each lives is `harunner.store.layout.Layout`'s business: the cluster id,
the slot and supervisor lock and pid files, and the slot's incarnation counter.

A lock held means a live process: flock is released by the kernel when its
holder dies, SIGKILL included, so these probes never trust a stale pid file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harunner.errors import ClusterError, CorruptFileError
from harunner.store import durable
from harunner.store.layout import Layout


def prepare(layout: Layout) -> None:
    """Create the cluster's folders: the state directory, run/ (mode 0700), paxos/, logs/."""
    layout.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    layout.run.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(layout.run, 0o700)
    layout.paxos.mkdir(mode=0o700, exist_ok=True)
    layout.logs.mkdir(mode=0o700, exist_ok=True)


def write_meta(path: Path, data: dict[str, Any]) -> None:
    durable.write_atomic(path, durable.KIND_META, json.dumps(data).encode())


def read_meta(path: Path) -> dict[str, Any]:
    """A small JSON meta file; FileNotFoundError if absent, CorruptFileError if bad."""
    payload = durable.read(path, durable.KIND_META)
    try:
        data = json.loads(payload)
    except ValueError:
        raise CorruptFileError(f"{path}: payload is not JSON") from None
    if not isinstance(data, dict):
        raise CorruptFileError(f"{path}: payload is not an object")
    return data


def cluster_id(layout: Layout, create: bool = False) -> str:
    """This state directory's cluster id, created on first start."""
    path = layout.cluster_file
    try:
        return str(read_meta(path)["cluster"])
    except FileNotFoundError:
        if not create:
            raise ClusterError(f"{layout.root} holds no cluster yet; run `harunner start` "
                               "first") from None
    identity = os.urandom(8).hex()
    write_meta(path, {"cluster": identity})
    return identity


def next_incarnation(layout: Layout, slot: int) -> int:
    """Raise and return the slot's incarnation; call only while holding the slot lock."""
    path = layout.incarnation_file(slot)
    try:
        current = int(read_meta(path)["incarnation"])
    except FileNotFoundError:
        current = 0
    write_meta(path, {"incarnation": current + 1})
    return current + 1


def is_held(lock_path: Path) -> bool:
    """True if a live process holds the flock at `lock_path`."""
    if not lock_path.exists():
        return False
    import filelock  # here: `harunner submit` never needs it (its import costs ~20 ms)

    lock = filelock.FileLock(str(lock_path), mode=0o600, thread_local=False)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return True
    lock.release()
    return False


def live_slot(layout: Layout, slot: int) -> dict[str, Any] | None:
    """The pid/incarnation record of the live runner of `slot`, or None."""
    if not is_held(layout.slot_lock(slot)):
        return None
    try:
        return read_meta(layout.slot_file(slot))
    except (FileNotFoundError, CorruptFileError):
        return {"pid": None, "incarnation": None}


def live_supervisor(layout: Layout) -> int | None:
    """The pid of the live supervisor of this state directory, or None."""
    if not is_held(layout.supervisor_lock):
        return None
    try:
        return int(read_meta(layout.supervisor_file)["pid"])
    except (FileNotFoundError, CorruptFileError, KeyError, ValueError):
        return -1


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
