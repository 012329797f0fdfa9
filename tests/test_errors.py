"""The exception tree: a durability fault is never handled as an ordinary store error."""

from __future__ import annotations

import pytest

from harunner.errors import DurabilityError, HarunnerError, StoreError
from harunner.runner.scheduler import Scheduler
from harunner.store import JobRecord, JobState, Owner


def test_a_durability_error_is_not_a_store_error() -> None:
    assert issubclass(DurabilityError, HarunnerError)
    assert not issubclass(DurabilityError, StoreError)


class FailingStore:
    """A store whose fsync fails on every assignment."""

    def get(self, job_id: str) -> JobRecord:
        return JobRecord(job_id=job_id, name="x", args={}, state=JobState.PENDING)

    def assign(self, job_id: str, owner: Owner, generation: int) -> JobRecord:
        raise DurabilityError("fsync failed; the process must stop")


def test_the_scheduler_does_not_swallow_a_durability_error() -> None:
    scheduler = Scheduler(FailingStore())  # type: ignore[arg-type]
    with pytest.raises(DurabilityError):
        scheduler._assign("job", Owner(0, 1))
