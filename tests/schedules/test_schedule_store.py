"""The schedules table: registration, the one-transaction fire, overlap, and a crash inside it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harunner.failpoints import EXIT_CODE
from harunner.store import JobState, Owner, Store
from harunner.store.schedules import (
    JobTemplate,
    Registration,
    ScheduleTable,
    fire_job_id,
)

NAME = "reports.nightly"
TEMPLATE = JobTemplate(NAME, 0, 1.0, None, lambda t: {"scheduled_at": str(t)}, str)


@pytest.fixture
def table(tmp_path: Path) -> ScheduleTable:
    return ScheduleTable(Store(tmp_path / "state"))


def register(table: ScheduleTable, first: int = 10_000, expression: str = "every 1s",
             overlap: bool = True, now: float = 1.0) -> None:
    table.register([Registration(NAME, expression, "UTC", "all", overlap, first)], now)


def jobs_of(table: ScheduleTable):
    return [r for r in table.store.list_jobs(name=NAME)]


def test_registration_keeps_next_fire_unless_the_times_changed(table):
    register(table, first=10_000)
    register(table, first=99_000)  # a restart: the same schedule keeps its due time
    assert table.get(NAME).next_fire == 10_000
    register(table, first=99_000, expression="every 2s")  # changed: from now on
    assert table.get(NAME).next_fire == 99_000
    table.register([], 2.0)  # no module declares it any more
    assert table.get(NAME).enabled is False
    register(table, first=123_000, expression="every 2s")  # back: from now, not the old time
    row = table.get(NAME)
    assert row.enabled and row.next_fire == 123_000


def test_a_fire_inserts_its_jobs_and_advances_next_fire_together(table):
    register(table)
    result = table.fire(NAME, 10_000, 13_000, [10_000, 11_000, 12_000], TEMPLATE, 12.5)
    assert result is not None
    assert [r.job_id for r in result.started] == [fire_job_id(NAME, t)
                                                  for t in (10_000, 11_000, 12_000)]
    row = table.get(NAME)
    assert (row.next_fire, row.last_fire, row.fired) == (13_000, 12_000, 3)
    record = table.store.get(fire_job_id(NAME, 11_000))
    assert record.state is JobState.PENDING and record.args == {"scheduled_at": "11000"}
    assert record.not_before == 11.0 and "fired by its schedule" in record.history[0]


def test_a_second_firer_with_the_old_next_fire_writes_nothing(table):
    register(table)
    assert table.fire(NAME, 10_000, 11_000, [10_000], TEMPLATE, 10.0) is not None
    assert table.fire(NAME, 10_000, 11_000, [10_000], TEMPLATE, 10.0) is None
    assert len(jobs_of(table)) == 1 and table.get(NAME).fired == 1


def test_a_disabled_schedule_does_not_fire(table):
    register(table)
    table.register([], 2.0)
    assert table.fire(NAME, 10_000, 11_000, [10_000], TEMPLATE, 10.0) is None
    assert jobs_of(table) == []


def test_the_job_id_of_a_fire_time_is_unique_even_past_the_fence(table):
    register(table)
    table.fire(NAME, 10_000, 11_000, [10_000], TEMPLATE, 10.0)
    # a (buggy) second fire of the same time with the right next_fire: the key refuses it
    result = table.fire(NAME, 11_000, 12_000, [10_000, 11_000], TEMPLATE, 11.0)
    assert result is not None and result.duplicates == 1
    assert len(jobs_of(table)) == 2 and table.get(NAME).duplicates == 1


def test_no_overlap_skips_a_fire_while_the_last_run_is_unfinished(table):
    register(table, overlap=False)
    first = table.fire(NAME, 10_000, 11_000, [10_000], TEMPLATE, 10.0)
    assert first is not None and len(first.started) == 1
    second = table.fire(NAME, 11_000, 12_000, [11_000], TEMPLATE, 11.0)
    assert second is not None and not second.started and len(second.skipped) == 1
    skipped = table.store.get(fire_job_id(NAME, 11_000))
    assert skipped.state is JobState.CANCELLED and skipped.error.startswith("skipped")
    assert table.get(NAME).last_job == fire_job_id(NAME, 10_000)
    run = fire_job_id(NAME, 10_000)  # the first run ends: the next fire starts again
    claimed = table.store.assign(run, Owner(0, 1), 0)
    table.store.finish(run, claimed.generation, result=1)
    third = table.fire(NAME, 12_000, 13_000, [12_000], TEMPLATE, 12.0)
    assert third is not None and len(third.started) == 1
    row = table.get(NAME)
    assert (row.fired, row.skipped, row.last_job) == (2, 1, fire_job_id(NAME, 12_000))


CHILD = """
import sys
from harunner.store import Store
from harunner.store.schedules import JobTemplate, ScheduleTable
table = ScheduleTable(Store(sys.argv[1]))
template = JobTemplate("reports.nightly", 0, 1.0, None, lambda t: {}, str)
table.fire("reports.nightly", 10_000, 12_000, [10_000, 11_000], template, 11.0)
print("fired", flush=True)
"""


@pytest.mark.parametrize("point", ["store.schedules.enqueued", "store.db.before_commit",
                                   "store.db.after_commit"])
def test_a_crash_inside_a_fire_leaves_both_steps_or_neither(tmp_path, point):
    """A process dies between enqueueing and advancing: the jobs and next_fire agree."""
    table = ScheduleTable(Store(tmp_path / "state"))
    register(table)
    env = {**os.environ, "HARUNNER_FAILPOINTS": f"{point}=exit"}
    child = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "state")], env=env,
                           capture_output=True, text=True, timeout=60)
    assert child.returncode == EXIT_CODE, child.stderr
    row = table.get(NAME)
    fired = {r.job_id for r in jobs_of(table)}
    expected = {fire_job_id(NAME, 10_000), fire_job_id(NAME, 11_000)}
    assert (row.next_fire, fired) in ((10_000, set()), (12_000, expected)), (row, fired)
    # whoever fires next, from what it reads, fires each time once
    again = table.fire(NAME, row.next_fire, 12_000, [10_000, 11_000], TEMPLATE, 12.0) \
        if row.next_fire == 10_000 else None
    assert again is None or len(again.started) == 2
    assert {r.job_id for r in jobs_of(table)} == expected
