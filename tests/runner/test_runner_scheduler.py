"""Claiming work: each runner takes due jobs for its own room, never one another's."""

from __future__ import annotations

from pathlib import Path

from harunner.runner.scheduler import Scheduler
from harunner.store import SCHEDULER_JOB, JobState, Owner, Store
from harunner.store.transitions import Submission

ME, OTHER = Owner(0, 1), Owner(1, 1)


def store_with(tmp_path: Path, count: int) -> tuple[Store, list[str]]:
    store = Store(tmp_path / "state", clock=lambda: 1000.0)
    store.submit(SCHEDULER_JOB, {}, job_id=SCHEDULER_JOB)
    records = store.submit_many([Submission("x.y", {}) for _ in range(count)])
    return store, [r.job_id for r in records]


def test_a_runner_claims_no_more_than_its_room_and_owns_what_it_claims(tmp_path: Path) -> None:
    store, jobs = store_with(tmp_path, 5)
    claimed = Scheduler(store, ME).tick(0.0, 1000.0, room=3)
    assert len(claimed) == 3
    assert all(r.state is JobState.RUNNING and r.owner == ME and r.generation == 1
               for r in claimed)
    assert store.get(SCHEDULER_JOB).state is JobState.PENDING  # never claimed as work
    assert len(store.due_pending(1000.0)) == 3  # the scheduler record and two jobs


def test_two_runners_never_claim_one_job(tmp_path: Path) -> None:
    store, jobs = store_with(tmp_path, 6)
    mine, theirs = Scheduler(store, ME), Scheduler(store, OTHER)
    first = mine.tick(0.0, 1000.0, room=4)
    second = theirs.tick(0.0, 1000.0, room=4)
    ids = [r.job_id for r in first + second]
    assert sorted(ids) == sorted(jobs) and len(set(ids)) == len(ids)


def test_it_looks_again_at_once_while_it_finds_work_and_later_when_none(tmp_path: Path) -> None:
    store, _ = store_with(tmp_path, 2)
    scheduler = Scheduler(store, ME, rescan=1.0)
    assert len(scheduler.tick(0.0, 1000.0, room=2)) == 2
    assert scheduler.due_in(0.0) == 0.0  # its room was full: more may be due
    assert scheduler.tick(0.0, 1000.0, room=2) == []
    assert scheduler.due_in(0.0) == 1.0
    assert scheduler.tick(0.5, 1000.0, room=2) == []  # not yet: nothing looks before rescan
    scheduler.poke()
    assert scheduler.due_in(0.5) == 0.0


def test_a_retry_waits_for_its_back_off(tmp_path: Path) -> None:
    store, (job,) = store_with(tmp_path, 1)
    scheduler = Scheduler(store, ME)
    (claimed,) = scheduler.tick(0.0, 1000.0, room=1)
    store.finish(job, claimed.generation, error="boom", retry_at=1010.0)
    assert scheduler.tick(10.0, 1005.0, room=1) == []
    (again,) = scheduler.tick(20.0, 1011.0, room=1)
    assert again.job_id == job and again.generation == 2


def test_a_ring_is_passed_on_only_when_the_claim_that_answered_it_filled_its_room(
        tmp_path: Path) -> None:
    """A client rings one runner; it passes the ring on (one hop more) only when it may
    leave due jobs waiting, so the others are not woken for a trickle."""
    store, _ = store_with(tmp_path, 3)
    scheduler = Scheduler(store, ME)
    scheduler.rung(0)
    claim = scheduler.request(0.0, 1000.0, room=2)
    assert claim is not None and scheduler.ring is None  # the claim now answers the ring
    won = store.settle([], claim)[1]
    assert len(won) == 2 and scheduler.won(0.0, won) == 1  # room filled: pass it on, hop 1
    scheduler.rung(1)
    claim = scheduler.request(0.0, 1000.0, room=2)
    assert claim is not None
    won = store.settle([], claim)[1]
    assert len(won) == 1 and scheduler.won(0.0, won) is None  # room left: nothing waits
    assert scheduler.won(0.0, []) is None  # a claim answering no ring passes nothing


def test_a_ring_a_saturated_runner_cannot_answer_soon_is_passed_on_at_once(
        tmp_path: Path) -> None:
    store, _ = store_with(tmp_path, 1)
    scheduler = Scheduler(store, ME)
    assert scheduler.to_pass(saturated=True) is None  # no ring, nothing to pass
    scheduler.rung(2)
    scheduler.rung(1)  # rings taken together: the fewest hops counts
    assert scheduler.to_pass(saturated=False) is None  # a claim will answer it
    assert scheduler.to_pass(saturated=True) == 2
    assert scheduler.to_pass(saturated=True) is None  # passed once


def test_an_attempt_end_looks_at_once_only_if_the_last_claim_left_jobs_behind(
        tmp_path: Path) -> None:
    """Catches a runner that claims at every end of its own attempts: in a stream of
    one-by-one submissions it takes jobs another runner was rung for, and each runner that
    joins commits on its own, which the client's submissions wait behind."""
    store, _ = store_with(tmp_path, 3)
    scheduler = Scheduler(store, ME, rescan=1.0)
    assert len(scheduler.tick(0.0, 1000.0, room=2)) == 2  # filled: one is left behind
    scheduler.next_look = 1.0
    scheduler.attempt_ended()
    assert scheduler.due_in(0.1) == 0.0
    assert len(scheduler.tick(0.1, 1000.0, room=2)) == 1  # took what was due: partial
    assert scheduler.due_in(0.1) == 1.0
    store.submit("x.y", {})  # a new one: its client rang the doorbell of some runner
    scheduler.attempt_ended()
    assert scheduler.due_in(0.2) > 0.5  # not this runner's to take before its next look
