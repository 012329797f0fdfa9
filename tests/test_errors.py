"""The exception tree: a durability fault is never handled as an ordinary store error."""

from __future__ import annotations

import pytest

from harunner.errors import DurabilityError, HarunnerError, StoreError
from harunner.executor.recorder import Recorder
from harunner.runner.scheduler import Scheduler
from harunner.store import JobRecord, JobState, Owner
from harunner.store.transitions import Claim


def test_a_durability_error_is_not_a_store_error() -> None:
    assert issubclass(DurabilityError, HarunnerError)
    assert not issubclass(DurabilityError, StoreError)


class FailingStore:
    """A store whose fsync fails on every assignment."""

    def due_pending(self, now_wall: float, limit: int) -> list[JobRecord]:
        return [JobRecord(job_id="job", name="x", args={}, state=JobState.PENDING)]

    def assign_many(self, assignments: object) -> list[JobRecord]:
        raise DurabilityError("fsync failed; the process must stop")

    def settle(self, outcomes: object, claim: object, **_: object) -> object:
        raise DurabilityError("fsync failed; the process must stop")

    def finish_many(self, outcomes: object, **_: object) -> object:
        raise DurabilityError("fsync failed; the process must stop")


def test_claiming_work_does_not_swallow_a_durability_error() -> None:
    scheduler = Scheduler(FailingStore(), Owner(0, 1))  # type: ignore[arg-type]
    with pytest.raises(DurabilityError):
        scheduler.tick(0.0, 0.0, room=1)


def test_the_recorders_thread_hands_a_durability_error_to_the_loop() -> None:
    recorder = Recorder(FailingStore(), 0.02)  # type: ignore[arg-type]
    try:
        recorder.submit([], Claim(Owner(0, 1), 1, 0.0))
        with pytest.raises(DurabilityError):
            recorder.collect(None)
        assert not recorder.busy
    finally:
        recorder.close()
