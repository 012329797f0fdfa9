"""The runner's cron duty on a fake clock: registration, who fires when, and racing firers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from harunner.runner.cron import STANDBY_LAG, CronDuty
from harunner.store import Store
from harunner.store.schedules import ScheduleTable, fire_job_id

NAME = "dutyjobs.every_two"
JOBS = """
from harunner import job

@job(name="dutyjobs.every_two", every="2s", catch_up="all", overlap=True)
def every_two(ctx, scheduled_at=""):
    return scheduled_at
"""


@pytest.fixture(scope="module")
def jobs_folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("duty") / "dutyjobs"  # one module for all: imported once
    folder.mkdir()
    (folder / "dutyjobs.py").write_text(JOBS)
    return str(folder)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state")


def fired_times(store: Store) -> list[int]:
    return sorted(int(r.job_id.rsplit("-", 1)[1]) for r in store.list_jobs(name=NAME))


def test_registration_at_start_sets_the_first_fire_after_now(store, jobs_folder):
    duty = CronDuty(store, [jobs_folder], wall=1001.0)
    assert duty.rows[NAME].next_fire == 1_002_000
    assert duty.due_in(1001.0, primary=True) == pytest.approx(1.0)
    assert duty.due_in(1001.0, primary=False) == pytest.approx(1.0 + STANDBY_LAG)


def test_the_primary_fires_on_time_and_passes_the_fire_time(store, jobs_folder):
    duty = CronDuty(store, [jobs_folder], wall=1001.0)
    assert duty.tick(0.0, 1001.9, primary=True) == []
    started = duty.tick(0.0, 1002.0, primary=True)
    assert [r.job_id for r in started] == [fire_job_id(NAME, 1_002_000)]
    assert started[0].args == {"scheduled_at": "1970-01-01T00:16:42.000+00:00"}
    assert duty.deadline == pytest.approx(2.0)  # monotonic: the next fire, 2 s on


def test_a_standby_fires_only_what_the_primary_left_late(store, jobs_folder):
    primary = CronDuty(store, [jobs_folder], wall=1001.0)
    standby = CronDuty(store, [jobs_folder], wall=1001.0)
    assert standby.tick(0.0, 1002.0 + STANDBY_LAG - 0.1, primary=False) == []
    primary.tick(0.0, 1002.0, primary=True)
    assert standby.tick(0.0, 1002.0 + STANDBY_LAG, primary=False) == []  # it looked: done
    assert standby.rows[NAME].next_fire == 1_004_000
    # the primary stops firing; the standby catches up every time it left, once
    late = standby.tick(0.0, 1008.0 + STANDBY_LAG, primary=False)
    assert [r.job_id for r in late] == [fire_job_id(NAME, t)
                                        for t in (1_004_000, 1_006_000, 1_008_000, 1_010_000)]
    assert fired_times(store) == [1_002_000, 1_004_000, 1_006_000, 1_008_000, 1_010_000]


def test_two_firers_on_one_clock_fire_each_time_once(store, jobs_folder):
    duties = [CronDuty(store, [jobs_folder], wall=1000.0) for _ in range(3)]
    for step in range(200):
        wall = 1000.0 + step * 0.37
        for index, duty in enumerate(duties):
            duty.tick(wall, wall, primary=index != 2 or step % 2 == 0)
    assert fired_times(store) == list(range(1_002_000, 1_073_000 + 1, 2000))


def test_a_runner_whose_modules_do_not_import_fires_nothing(store, tmp_path):
    bad = tmp_path / "badjobs"
    bad.mkdir()
    (bad / "badjobs.py").write_text("raise RuntimeError('broken module')\n")
    duty = CronDuty(store, [str(bad)], wall=1000.0)
    assert duty.table is None and duty.tick(0.0, 5000.0, primary=True) == []
    assert duty.due_in(5000.0, primary=True) == math.inf


def test_a_schedule_declared_no_more_is_disabled(store, jobs_folder, tmp_path):
    CronDuty(store, [jobs_folder], wall=1000.0)
    empty = tmp_path / "nojobs"
    empty.mkdir()
    duty = CronDuty(store, [str(empty)], wall=1001.0)
    assert duty.rows == {}
    assert ScheduleTable(store).get(NAME).enabled is False
