"""Child process for the store's real-process tests (run as a script, never imported by pytest).

    store_child.py sweep ROOT JOB GENERATION COUNT
        write checkpoints {"value": 1..COUNT}, printing "ack <seq> <value>" after each
    store_child.py takeover ROOT JOB COUNT
        raise the job to generations 2..COUNT+1, printing "ack <generation>" after each
    store_child.py fence ROOT JOB WRITER SECONDS SEED [mutant]
        race other writers: raise the generation now and then, write checkpoints, and print
        "take <generation> <start> <end>" / "ack <generation> <seq> <start> <end>" per
        accepted call (monotonic times) and "error <name>" per failed write;
        `mutant` picks a deliberately broken store
    store_child.py hold ROOT JOB
        hold the job's lock, print "locked", and sleep until killed
    store_child.py open ROOT
        open the store (importing 0.1.0 records on first open) and print how many jobs it has
    store_child.py hold_db ROOT
        hold SQLite's write lock (an open write transaction), print "locked", sleep until killed
    store_child.py batches ROOT SIZE COUNT
        COUNT times: submit_many SIZE jobs {"batch": i}, assign_many them, finish_many them,
        printing "ack submit|assign|finish <i>" after each batch call returns
    store_child.py race ROOT SECONDS SEED MUTANT JOB...
        race other processes on the same jobs with assign_many / take_over_many /
        finish_many / cancel / retry at random generations, printing one line per applied
        change: "<op> <job> <generation> <slot> <incarnation> <state> <start> <end>" (the
        record returned, monotonic times of the call); MUTANT "-" is the real store
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harunner.errors import FencedError, StaleTransitionError, StoreError
from harunner.store import Assignment, JobState, Outcome, Owner, Store, Submission, TakeOver
from harunner.store.model import check_writer, state_json
from harunner.store.transitions import Claim


class FenceOutsideLockStore(Store):
    """Deliberately broken: checks the generation, pauses, and only then takes the lock."""

    def write_checkpoint(self, job_id: str, generation: int, state: dict[str, Any]) -> int:
        check_writer(self.get(job_id), generation)
        time.sleep(0.002)
        with self.job_lock(job_id):
            return self._append_checkpoint(job_id, generation, state_json(job_id, state))


class NoLockStore(Store):
    """Deliberately broken: `job_lock` locks nothing."""

    @contextlib.contextmanager
    def job_lock(self, job_id: str) -> Iterator[None]:
        yield


class UnfencedStore(Store):
    """Deliberately broken: computes each change from a read outside the write transaction
    and writes it without comparing generation and state (no compare-and-set)."""

    def _transition(self, items: Any, change: Any) -> Any:
        now, planned, refused = self.clock(), [], []
        for item in items:
            try:
                old = self.get(item if isinstance(item, str) else item.job_id)
                planned.append((old, change(old, item, now)))
            except StoreError as error:
                refused.append((item, error))
        time.sleep(0.001)
        with self._db.write() as writer:
            for _, new in planned:
                owner = new.owner or Owner(None, None)  # type: ignore[arg-type]
                writer.execute("UPDATE jobs SET generation=?, state=?, owner_slot=?, "
                               "owner_incarnation=?, seq=? WHERE job_id=?",
                               (new.generation, new.state.value, owner.slot, owner.incarnation,
                                writer.next_seq(), new.job_id))
        return [new for _, new in planned], refused


class ClaimOutsideStore(Store):
    """Deliberately broken: a claim reads the due jobs before its write transaction and
    writes each one without comparing generation and state."""

    def settle(self, outcomes: Any, claim: Any, *, lock_wait: float | None = None) -> Any:
        if claim is None:
            return super().settle(outcomes, None, lock_wait=lock_wait)
        finished = super().settle(outcomes, None, lock_wait=lock_wait)[0]
        due = self.due_pending(claim.wall, claim.room)
        time.sleep(0.001)
        won = []
        with self._db.write() as writer:
            for old in due:
                writer.execute("UPDATE jobs SET generation=?, state='running', owner_slot=?, "
                               "owner_incarnation=?, seq=? WHERE job_id=?",
                               (old.generation + 1, claim.owner.slot, claim.owner.incarnation,
                                writer.next_seq(), old.job_id))
                won.append(dataclasses.replace(old, generation=old.generation + 1,
                                               state=JobState.RUNNING, owner=claim.owner))
        return finished, won


class HeldUnfencedStore(Store):
    """Deliberately broken: a finish that carries its owner's record (`Outcome.held`)
    writes the change computed from it without comparing the row's generation and state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._table.prepare_held = self._unfenced_prepare_held  # type: ignore[method-assign]

    @staticmethod
    def _unfenced_prepare_held(items: Any, job_of: Any, change: Any) -> Any:
        ready = {}
        for index, item in enumerate(items):
            held = getattr(item, "held", None)
            if held is None or held.job_id != job_of(item) or held.state is not JobState.RUNNING:
                continue
            new = change(held, item)
            owner = new.owner or Owner(None, None)  # type: ignore[arg-type]
            ready[index] = (new, ("UPDATE jobs SET generation=?, state=?, owner_slot=?, "
                                  "owner_incarnation=?, seq=? WHERE job_id=?",
                                  [new.generation, new.state.value, owner.slot,
                                   owner.incarnation, 0, new.job_id], 4))
        return ready


MUTANTS: dict[str, type[Store]] = {"": Store, "fence_outside_lock": FenceOutsideLockStore,
                                   "no_lock": NoLockStore, "unfenced": UnfencedStore,
                                   "claim_outside": ClaimOutsideStore,
                                   "held_unfenced": HeldUnfencedStore}


def sweep(root: str, job: str, generation: str, count: str) -> None:
    store = Store(Path(root))
    for value in range(1, int(count) + 1):
        seq = store.write_checkpoint(job, int(generation), {"value": value})
        print(f"ack {seq} {value}", flush=True)


def takeover(root: str, job: str, count: str) -> None:
    store = Store(Path(root))
    for generation in range(2, int(count) + 2):
        store.take_over(job, generation, Owner(1, generation))
        print(f"ack {generation}", flush=True)


def fence(root: str, job: str, writer: str, seconds: str, seed: str, mutant: str = "") -> None:
    store = MUTANTS[mutant](Path(root), lock_timeout=10.0)
    rng = random.Random(int(seed))
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        current = store.get(job).generation
        generation = current + rng.choice((-1, 0, 0, 1))
        if generation > current:
            _take(store, job, generation, int(writer))
        for _ in range(rng.randint(1, 4)):
            start = time.monotonic()
            try:
                seq = store.write_checkpoint(job, generation, {"writer": int(writer)})
            except (FencedError, StaleTransitionError):
                break
            except StoreError as error:
                print(f"error {type(error).__name__}", flush=True)
                break
            print(f"ack {generation} {seq} {start} {time.monotonic()}", flush=True)


def _take(store: Store, job: str, generation: int, writer: int) -> None:
    start = time.monotonic()
    try:
        store.take_over(job, generation, Owner(writer, generation))
    except (FencedError, StaleTransitionError):
        return
    except StoreError as error:
        print(f"error {type(error).__name__}", flush=True)
        return
    print(f"take {generation} {start} {time.monotonic()}", flush=True)


def hold(root: str, job: str) -> None:
    store = Store(Path(root))
    with store.job_lock(job):
        print("locked", flush=True)
        time.sleep(3600)


def open_store(root: str) -> None:
    print(len(Store(Path(root)).list_jobs()), flush=True)


def hold_db(root: str) -> None:
    store = Store(Path(root))
    with store._db.write():
        print("locked", flush=True)
        time.sleep(3600)


def batches(root: str, size: str, count: str) -> None:
    store = Store(Path(root))
    me = Owner(0, 1)
    for batch in range(1, int(count) + 1):
        records = store.submit_many([Submission("jobs.demo", {"batch": batch, "k": k})
                                     for k in range(int(size))])
        print(f"ack submit {batch}", flush=True)
        if batch % 2:  # the runners' claim (Store.settle), or an explicit batch
            claimed = store.settle([], Claim(me, int(size), time.time() + 1e6))[1]
            assert sorted(r.job_id for r in claimed) == sorted(r.job_id for r in records)
        else:
            store.assign_many([Assignment(r.job_id, me, 0) for r in records])
        print(f"ack assign {batch}", flush=True)
        store.finish_many([Outcome(r.job_id, 1, result=batch) for r in records])
        print(f"ack finish {batch}", flush=True)


def race(root: str, seconds: str, seed: str, mutant: str, *jobs: str) -> None:
    store = MUTANTS["" if mutant == "-" else mutant](Path(root), lock_timeout=10.0)
    rng = random.Random(int(seed))
    me = Owner(int(seed) % 1000, 1)
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        chosen = rng.sample(jobs, rng.randint(1, len(jobs)))
        seen = {job: store.get(job) for job in chosen}
        _race_step(store, rng, me, seen)


def _race_step(store: Store, rng: random.Random, me: Owner, seen: dict[str, Any]) -> None:
    op = rng.choice(("assign", "assign", "take", "take", "finish", "cancel", "retry", "claim"))
    start = time.monotonic()
    if op == "claim":  # the runners' claim: due jobs read and assigned in one transaction
        done = store.settle([], Claim(me, rng.randint(1, len(seen)), time.time() + 1e6))[1]
    elif op == "assign":
        done = store.assign_many([Assignment(j, me, r.generation) for j, r in seen.items()])
    elif op == "take":
        done = store.take_over_many([TakeOver(j, r.generation + rng.randint(1, 2), me)
                                     for j, r in seen.items()])[0]
    elif op == "finish":
        held = rng.random() < 0.5  # as the runners finish: with the record they hold
        done = store.finish_many([Outcome(j, r.generation, error="x", retry_at=0.0,
                                          held=r if held else None)
                                  if rng.random() < 0.7 else
                                  Outcome(j, r.generation, result=1, held=r if held else None)
                                  for j, r in seen.items()], lock_wait=0.01)
    else:
        done = []
        for job in seen:
            try:
                done.append(store.cancel(job) if op == "cancel" else store.retry(job))
            except (FencedError, StaleTransitionError):
                pass
    end = time.monotonic()
    for record in done:
        owner = record.owner or Owner(-1, -1)
        print(f"{op} {record.job_id} {record.generation} {owner.slot} {owner.incarnation} "
              f"{record.state.value} {start} {end}", flush=True)


if __name__ == "__main__":
    {"sweep": sweep, "takeover": takeover, "fence": fence, "hold": hold, "batches": batches,
     "race": race, "hold_db": hold_db, "open": open_store}[sys.argv[1]](*sys.argv[2:])
