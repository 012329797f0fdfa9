"""A runner's identity: its slot lock, its incarnation, and its seeded randomness.

Invariant: one live process per slot. The slot lock is taken before anything
else and held for the process's whole life; only then is the slot's durable
incarnation counter raised and the pid recorded, so a paused old incarnation
can never sit beside a new one with the same identity.
"""

from __future__ import annotations

import os
import random
import time

import filelock

from harunner.errors import ClusterError
from harunner.store import meta
from harunner.store.layout import Layout


def take_slot(layout: Layout, slot: int, wait: float) -> tuple[filelock.FileLock, int]:
    """Hold `slot`'s lock (waiting at most `wait` s), raise its incarnation, record the pid."""
    lock = filelock.FileLock(str(layout.slot_lock(slot)), mode=0o600, thread_local=False)
    try:
        lock.acquire(timeout=wait)
    except filelock.Timeout:
        raise ClusterError(f"slot {slot} is held by another live runner") from None
    incarnation = meta.next_incarnation(layout, slot)
    meta.write_meta(layout.slot_file(slot), {"pid": os.getpid(), "incarnation": incarnation})
    return lock, incarnation


def make_rng(seed: int, slot: int, incarnation: int) -> random.Random:
    """The runner's randomness: replayable from `seed`, fresh when `seed` is 0."""
    if seed == 0:
        return random.Random(os.getpid() ^ time.monotonic_ns())
    return random.Random(f"{seed}/{slot}/{incarnation}")
