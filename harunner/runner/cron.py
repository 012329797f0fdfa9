"""The periodic-job duty of a runner: register the schedules, fire each due time once.

At start (`CronDuty.__init__`) the runner imports the job modules of config
`jobs` and registers every `@job(schedule=…)` / `@job(every=…)` in the
schedules table (new → next fire after now; expression or time zone changed →
recomputed; no longer declared → disabled). Then, each turn, `tick(wall,
primary)` fires what is due: the primary at the fire time, a standby only
once a fire is `STANDBY_LAG` late (a primary that is stuck or being replaced),
both through the same one-transaction compare-and-set of the store
(`ScheduleTable.fire`), so whoever fires, and however many try, a fire time is
fired exactly once. Which times a turn fires is `harunner.runner.firing.plan`.

Cost: `tick` is a comparison of the wall clock with a cached deadline until a
fire is due; then one read (a standby) or one write transaction (the
primary) per due schedule. `due_in` is the time to that deadline, which the
runner's loop waits for: no timer of its own, no scan of jobs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

from harunner.api import JobSpec
from harunner.api.discovery import discover
from harunner.api.job import SCHEDULED_AT, takes_scheduled_at
from harunner.api.schedule import Timetable
from harunner.errors import HarunnerError, StoreError
from harunner.runner.firing import plan
from harunner.store import JobRecord, Store
from harunner.store.contract import JobStore
from harunner.store.schedules import JobTemplate, Registration, ScheduleRow, ScheduleTable

log = logging.getLogger("harunner.runner")
STANDBY_LAG = 2.0  # seconds a fire may be late before a standby fires it
RETRY = 0.1        # seconds before a fire that found the database busy is tried again


class CronDuty:
    """This runner's view of the schedules and its share of firing them."""

    def __init__(self, store: JobStore, job_entries: Sequence[str], wall: float,
                 fired: Callable[[], None] = lambda: None) -> None:
        self.fired = fired  # told when jobs were fired (the runner claims them at once)
        self.deadline = 0.0  # monotonic time of the next tick with work (the loop waits for it)
        self.table: ScheduleTable | None = None
        self.specs: dict[str, JobSpec] = {}
        self.timetables: dict[str, Timetable] = {}
        self.rows: dict[str, ScheduleRow] = {}
        self.retry_at = math.inf
        try:
            self.specs = {name: spec for name, spec in discover(job_entries).items()
                          if spec.schedule is not None}
            self.timetables = {name: Timetable(spec.schedule)  # type: ignore[arg-type]
                               for name, spec in self.specs.items()}
            if not isinstance(store, Store):  # the etcd backend keeps no schedules yet
                if self.specs:
                    raise HarunnerError("periodic jobs need the local backend (schedules are "
                                        "not kept in etcd yet)")
                return
            self.table = ScheduleTable(store)
            self._register(wall)
        except HarunnerError as error:
            log.error("periodic jobs are not fired by this runner: %s", error)
            self.table = None

    def _register(self, wall: float) -> None:
        assert self.table is not None
        now = int(wall * 1000)
        items = [Registration(name, spec.schedule.text, spec.schedule.timezone,  # type: ignore[union-attr]
                              spec.schedule.catch_up, spec.schedule.overlap,  # type: ignore[union-attr]
                              self.timetables[name].next_after(now))
                 for name, spec in self.specs.items()]
        self._cache(self.table.register(items, wall))

    def _cache(self, rows: Sequence[ScheduleRow]) -> None:
        for row in rows:
            if self._ours(row):
                self.rows[row.name] = row
            else:
                self.rows.pop(row.name, None)

    def _ours(self, row: ScheduleRow) -> bool:
        """Whether this runner can fire `row`: enabled and declared here exactly so."""
        spec = self.specs.get(row.name)
        return (row.enabled and spec is not None and spec.schedule is not None
                and (spec.schedule.text, spec.schedule.timezone) == (row.expression,
                                                                       row.timezone))

    def due_in(self, wall: float, primary: bool) -> float:
        """Seconds until this runner next has something to do (inf if never)."""
        lag = 0.0 if primary else STANDBY_LAG
        due = min((row.next_fire / 1000 + lag for row in self.rows.values()), default=math.inf)
        return max(0.0, min(due, self.retry_at) - wall)

    def tick(self, now: float, wall: float, primary: bool) -> list[JobRecord]:
        """Fire what is due at `wall` (seconds since the epoch); the jobs it started.

        Afterwards `deadline` is the monotonic time (`now`'s clock) of the next work.
        """
        started = self._tick(wall, primary)
        if started:
            self.fired()
        self.deadline = now + min(self.due_in(wall, primary), 3600.0)
        return started

    def _tick(self, wall: float, primary: bool) -> list[JobRecord]:
        if self.table is None or self.due_in(wall, primary) > 0:
            return []
        self.retry_at = math.inf
        try:
            if not primary:  # a standby first looks whether the primary fired meanwhile
                self._cache(self.table.rows())
                if self.due_in(wall, primary) > 0:
                    return []
            return self._fire_due(wall, primary)
        except StoreError as error:  # busy or full: the next turn tries again
            log.info("no fire this turn: %s", error)
            self.retry_at = wall + RETRY
            return []

    def _fire_due(self, wall: float, primary: bool) -> list[JobRecord]:
        now = int(wall * 1000)
        lag = 0 if primary else int(STANDBY_LAG * 1000)
        started: list[JobRecord] = []
        for row in list(self.rows.values()):
            if row.next_fire + lag > now:
                continue
            fire = plan(self.timetables[row.name], row.catch_up, row.next_fire, now)
            if fire is None:
                continue
            result = self.table.fire(row.name, row.next_fire, fire.new_next,  # type: ignore[union-attr]
                                     fire.fires, self._template(row.name), wall, fire.dropped)
            if result is None:  # another runner fired it (or it was re-registered)
                fresh = self.table.get(row.name)  # type: ignore[union-attr]
                self._cache([fresh] if fresh is not None else [])
                if fresh is None:
                    self.rows.pop(row.name, None)
                continue
            self._cache([result.row])
            started.extend(result.started)
            log.info("schedule %s fired %d time(s) (%d skipped, %d passed times left out)",
                     row.name, len(result.started), len(result.skipped), fire.dropped)
        return started

    def _template(self, name: str) -> JobTemplate:
        spec, timetable = self.specs[name], self.timetables[name]
        with_time = takes_scheduled_at(spec)
        return JobTemplate(
            name, spec.retries, spec.backoff, spec.timeout,
            lambda t: {SCHEDULED_AT: timetable.local_text(t)} if with_time else {},
            timetable.local_text)
