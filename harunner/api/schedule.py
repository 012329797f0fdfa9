"""Periodic jobs: the schedule options of `@job`, checked when the job is declared, and timetables.

A schedule is either a cron expression (`schedule="*/5 * * * *"`, five fields,
or six with seconds last as croniter reads them, in the time zone `timezone`)
or an interval (`every="30s"` or a `timedelta`: fire times are the multiples of
the interval since the Unix epoch, so a restart keeps the phase). `Timetable`
answers the two questions the scheduler duty asks, on integer milliseconds
since the epoch: the first fire time after `t`, and the latest at or before `t`.

Invariants: every option is checked when `@job` runs, with a one-line
`JobDefinitionError` (exit 2 from the CLI) naming the job and the option;
`next_after(t) > t` always, so fire times strictly increase; a cron schedule
with a fixed hour fires once at a local time that a fall-back transition
repeats (as cron does), and a time skipped by spring-forward fires at the
first existing time after it (croniter's rule). croniter is imported only
for cron schedules: an interval needs nothing beyond the standard library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from harunner.errors import JobDefinitionError

CATCH_UP = ("none", "latest", "all")
INSTALL_HINT = 'pip install "harunner[cron]"'


@dataclass(frozen=True)
class Schedule:
    """When a job fires: `expression` (cron) or `interval_ms`, and its policies."""

    expression: str | None
    interval_ms: int | None
    timezone: str
    catch_up: str
    overlap: bool

    @property
    def text(self) -> str:
        """The schedule as stored and shown: the cron expression or "every <seconds>s"."""
        if self.expression is not None:
            return self.expression
        assert self.interval_ms is not None
        return f"every {self.interval_ms / 1000:g}s"


def parse_schedule(where: str, schedule: Any, every: Any, timezone: str | None,
                   catch_up: Any, overlap: Any,
                   duration: Any) -> Schedule | None:
    """The `Schedule` of `@job`'s options, or None if it has none; `JobDefinitionError` if bad.

    `duration(value, what)` turns an interval into seconds (the decorator's parser).
    """
    if schedule is None and every is None:
        for option, value, default in (("timezone", timezone, None), ("catch_up", catch_up,
                                        "latest"), ("overlap", overlap, False)):
            if value != default:
                raise JobDefinitionError(f"{where}: {option} = {value!r} needs schedule= or "
                                         "every=; without them the job is not periodic")
        return None
    if schedule is not None and every is not None:
        raise JobDefinitionError(f"{where}: give schedule= (cron) or every= (interval), not both")
    if catch_up not in CATCH_UP:
        raise JobDefinitionError(f"{where}: catch_up = {catch_up!r} must be one of "
                                 f"{', '.join(map(repr, CATCH_UP))}")
    if not isinstance(overlap, bool):
        raise JobDefinitionError(f"{where}: overlap = {overlap!r} must be True or False")
    if every is not None:
        if timezone is not None:
            raise JobDefinitionError(f"{where}: timezone = {timezone!r} applies to cron "
                                     "schedules only; an interval counts from the epoch")
        return Schedule(None, _interval_ms(where, every, duration), "UTC", catch_up, overlap)
    zone = "UTC" if timezone is None else timezone
    _zone(where, zone)
    expression = _cron_expression(where, schedule)
    return Schedule(expression, None, zone, catch_up, overlap)


def _interval_ms(where: str, every: Any, duration: Any) -> int:
    seconds = every.total_seconds() if isinstance(every, timedelta) else \
        duration(every, f"{where}: every")
    if not math.isfinite(seconds) or seconds < 0.001:
        raise JobDefinitionError(f"{where}: every = {every!r} must be at least 1 ms")
    return round(seconds * 1000)


def _zone(where: str, name: Any) -> tzinfo:
    if not isinstance(name, str) or not name:
        raise JobDefinitionError(f"{where}: timezone = {name!r} must be an IANA name such as "
                                 "'Europe/Berlin' or 'UTC'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise JobDefinitionError(f"{where}: timezone = {name!r} is not a known IANA time zone "
                                 "(e.g. 'Europe/Berlin'); install tzdata if none is known"
                                 ) from None


def _croniter() -> Any:
    try:
        from croniter import croniter
    except ImportError:
        return None
    return croniter


def _cron_expression(where: str, schedule: Any) -> str:
    if not isinstance(schedule, str) or not schedule.strip():
        raise JobDefinitionError(f"{where}: schedule = {schedule!r} must be a cron expression "
                                 "such as '*/5 * * * *' (or use every= for an interval)")
    expression = " ".join(schedule.split())
    croniter = _croniter()
    if croniter is None:
        raise JobDefinitionError(f"{where}: schedule = {schedule!r} needs the croniter "
                                 f"package: {INSTALL_HINT}")
    if len(expression.split()) not in (5, 6) or not croniter.is_valid(expression):
        raise JobDefinitionError(f"{where}: schedule = {schedule!r} is not a valid cron "
                                 "expression: five fields (minute hour day month weekday), "
                                 "or six with seconds last, e.g. '*/5 * * * *'")
    return expression


class Timetable:
    """The fire times of one schedule, as integer milliseconds since the Unix epoch."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self._interval = schedule.interval_ms
        self._zone: tzinfo | None = None
        self._fixed_hour = False
        if schedule.expression is not None:
            croniter = _croniter()
            if croniter is None:
                raise JobDefinitionError(f"schedule {schedule.expression!r} needs the croniter "
                                         f"package: {INSTALL_HINT}")
            self._croniter = croniter
            self._zone = ZoneInfo(schedule.timezone)
            hours = croniter(schedule.expression).expanded[1]
            self._fixed_hour = hours != ["*"] and len(hours) < 24

    def next_after(self, t: int) -> int:
        """The first fire time strictly after `t`."""
        if self._interval is not None:
            return (t // self._interval + 1) * self._interval
        found = self._cron_next(t)
        if self._fixed_hour:  # a fall-back repeats local times: fire each local time once
            while self._local(found) <= self._local(t):
                found = self._cron_next(found)
        return found

    def latest_at_or_before(self, t: int) -> int:
        """The latest fire time at or before `t`."""
        if self._interval is not None:
            return (t // self._interval) * self._interval
        start = datetime.fromtimestamp((t + 1) / 1000, self._zone)
        found = round(self._croniter(self.schedule.expression, start).get_prev(float) * 1000)
        return min(found, t)

    def _cron_next(self, t: int) -> int:
        for start_ms in (t, t + 1000):  # croniter works in whole seconds
            start = datetime.fromtimestamp(start_ms / 1000, self._zone)
            found = round(self._croniter(self.schedule.expression, start).get_next(float) * 1000)
            if found > t:
                return found
        raise JobDefinitionError(f"schedule {self.schedule.expression!r} has no fire time "
                                 f"after {self.local_text(t)}")

    def _local(self, t: int) -> datetime:
        return datetime.fromtimestamp(t / 1000, self._zone).replace(tzinfo=None)

    def local_text(self, t: int) -> str:
        """`t` as ISO 8601 in the schedule's time zone (what a fired job is given)."""
        zone = self._zone if self._zone is not None else ZoneInfo("UTC")
        return datetime.fromtimestamp(t / 1000, zone).isoformat(timespec="milliseconds")
