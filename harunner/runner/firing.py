"""Which fire times a due schedule fires now: the catch-up policies as a pure function.

`plan(timetable, catch_up, next_fire, now)` takes the schedule's persisted
next fire time and the wall clock `now` (both integer milliseconds since the
epoch) and returns the fire times to fire in this turn's one transaction and
the next fire time to persist with them. No I/O, no clock: the duty in
`harunner.runner.cron` calls it and hands the result to the store.

Policies for fire times that passed while no runner could fire them:
- "latest" (default): fire only the newest passed time;
- "all": fire every passed time, oldest first, at most `CATCH_UP_LIMIT` (the
  newest ones) in all, and at most `FIRE_BATCH` per turn (the rest next turn);
- "none": fire only the times at most `ON_TIME_MS` late (a failover's delay),
  none of the older ones.
Invariants: every returned fire time is ≥ `next_fire` and ≤ `now`, increasing;
`new_next` is the first fire time after the last one fired (or after the ones
left out), so no time is ever fired twice by following plans; the work of one
call is bounded by `CATCH_UP_LIMIT + FIRE_BATCH` timetable steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

CATCH_UP_LIMIT = 1000  # catch_up="all" fires at most this many passed times (the newest)
FIRE_BATCH = 100       # fire times per transaction; a longer backlog takes more turns
ON_TIME_MS = 5000      # catch_up="none": a fire time this late still fires (a failover)


class Timetable(Protocol):
    def next_after(self, t: int) -> int: ...
    def latest_at_or_before(self, t: int) -> int: ...


@dataclass(frozen=True)
class Plan:
    """Fire `fires` now and persist `new_next`; `dropped` passed times were left out."""

    fires: tuple[int, ...]
    new_next: int
    dropped: int


def plan(timetable: Timetable, catch_up: str, next_fire: int, now: int) -> Plan | None:
    """The fires due at `now` for a schedule whose next fire time is `next_fire`; None if none."""
    if next_fire > now:
        return None
    if catch_up == "latest":
        latest = max(timetable.latest_at_or_before(now), next_fire)
        return Plan((latest,), timetable.next_after(latest),
                    _count(timetable, next_fire, latest))
    start = next_fire
    if catch_up == "none" and next_fire < now - ON_TIME_MS:
        start = timetable.next_after(now - ON_TIME_MS - 1)
    fires = _walk(timetable, start, now, FIRE_BATCH)
    if catch_up == "all" and len(fires) == FIRE_BATCH and \
            timetable.next_after(fires[-1]) <= now:
        floor = _floor(timetable, start, now)
        if floor > start:
            start = floor
            fires = _walk(timetable, start, now, FIRE_BATCH)
    dropped = _count(timetable, next_fire, start)
    if not fires:  # everything passed was too late ("none"): only move next_fire on
        return Plan((), start, dropped)
    return Plan(tuple(fires), timetable.next_after(fires[-1]), dropped)


def _walk(timetable: Timetable, start: int, now: int, limit: int) -> list[int]:
    """Fire times from `start` (a fire time) up to `now`, at most `limit`."""
    fires: list[int] = []
    t = start
    while t <= now and len(fires) < limit:
        fires.append(t)
        t = timetable.next_after(t)
    return fires


def _floor(timetable: Timetable, start: int, now: int) -> int:
    """The oldest of the newest `CATCH_UP_LIMIT` fire times ≤ `now` (or `start` if fewer)."""
    t = timetable.latest_at_or_before(now)
    for _ in range(CATCH_UP_LIMIT - 1):
        earlier = timetable.latest_at_or_before(t - 1)
        if earlier < start:
            return start
        t = earlier
    return t


def _count(timetable: Timetable, first: int, end: int) -> int:
    """How many fire times lie in [first, end) (counted up to `CATCH_UP_LIMIT`)."""
    count, t = 0, first
    while t < end and count < CATCH_UP_LIMIT:
        count += 1
        t = timetable.next_after(t)
    return count
