"""The fire plan and the timetables, on a fake clock: catch-up policies, intervals, DST."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from harunner.api.schedule import Schedule, Timetable
from harunner.runner.firing import CATCH_UP_LIMIT, FIRE_BATCH, ON_TIME_MS, plan

SECOND, MINUTE = 1000, 60_000
BERLIN = ZoneInfo("Europe/Berlin")


def every(ms: int, catch_up: str = "latest") -> Timetable:
    return Timetable(Schedule(None, ms, "UTC", catch_up, False))


def cron(expression: str, zone: str = "UTC") -> Timetable:
    pytest.importorskip("croniter")
    return Timetable(Schedule(expression, None, zone, "latest", False))


def ms(year, month, day, hour, minute, second=0, zone=BERLIN) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=zone).timestamp() * 1000)


def run(timetable: Timetable, catch_up: str, next_fire: int, clock: list[int]) -> list[int]:
    """Every fire time a duty fires at each instant of `clock`, plans applied in order."""
    fired = []
    for now in clock:
        while (step := plan(timetable, catch_up, next_fire, now)) is not None:
            assert all(next_fire <= t <= now for t in step.fires)
            fired.extend(step.fires)
            assert step.new_next > (step.fires[-1] if step.fires else next_fire - 1)
            next_fire = step.new_next
    return fired


def test_nothing_is_due_before_the_next_fire_time():
    assert plan(every(SECOND), "all", 5 * SECOND, 5 * SECOND - 1) is None


def test_an_interval_fires_on_its_multiples_since_the_epoch():
    timetable = every(5 * SECOND)
    assert timetable.next_after(12_345) == 15_000
    assert timetable.next_after(15_000) == 20_000
    assert timetable.latest_at_or_before(15_000) == 15_000


@pytest.mark.parametrize("catch_up", ["none", "latest", "all"])
def test_on_time_every_policy_fires_each_time_once(catch_up):
    clock = list(range(10 * SECOND, 20 * SECOND + 1, 250))
    assert run(every(SECOND), catch_up, 10 * SECOND, clock) == list(range(10_000, 20_001, 1000))


def test_latest_fires_only_the_newest_passed_time():
    step = plan(every(MINUTE), "latest", 10 * MINUTE, 15 * MINUTE + 30 * SECOND)
    assert step is not None
    assert step.fires == (15 * MINUTE,) and step.new_next == 16 * MINUTE
    assert step.dropped == 5


def test_none_fires_only_what_is_at_most_a_failover_late():
    now = 100 * SECOND
    step = plan(every(SECOND), "none", 10 * SECOND, now)
    assert step is not None
    assert step.fires == tuple(range(now - ON_TIME_MS, now + 1, SECOND))
    assert step.dropped == (now - ON_TIME_MS - 10 * SECOND) // SECOND


def test_none_moves_next_fire_on_when_everything_passed_is_too_late():
    step = plan(every(MINUTE), "none", 10 * MINUTE, 15 * MINUTE + 30 * SECOND)
    assert step is not None and step.fires == () and step.new_next == 16 * MINUTE


def test_all_fires_every_passed_time_in_bounded_batches():
    now = 1000 * SECOND
    first = plan(every(SECOND), "all", 700 * SECOND, now)
    assert first is not None and len(first.fires) == FIRE_BATCH
    fired = run(every(SECOND), "all", 700 * SECOND, [now])
    assert fired == list(range(700 * SECOND, now + 1, SECOND))


def test_all_keeps_only_the_newest_limit_of_a_long_outage():
    now = 100_000 * SECOND
    fired = run(every(SECOND), "all", 0, [now])
    assert len(fired) == CATCH_UP_LIMIT
    assert fired[-1] == now and fired[0] == now - (CATCH_UP_LIMIT - 1) * SECOND


def test_cron_in_a_time_zone():
    timetable = cron("0 9 * * 1-5", "Europe/Berlin")  # 09:00 local on weekdays
    friday = ms(2026, 12, 4, 9, 0)
    assert timetable.next_after(friday) == ms(2026, 12, 7, 9, 0)  # Monday
    assert timetable.latest_at_or_before(friday + MINUTE) == friday


def test_six_fields_fire_every_second():
    timetable = cron("* * * * * *")
    assert timetable.next_after(5 * SECOND) == 6 * SECOND
    assert timetable.next_after(5 * SECOND + 400) == 6 * SECOND
    assert timetable.latest_at_or_before(5 * SECOND + 400) == 5 * SECOND


def test_a_time_skipped_by_spring_forward_fires_once_at_the_next_existing_time():
    timetable = cron("30 2 * * *", "Europe/Berlin")
    day_before = ms(2026, 3, 28, 2, 30)
    fired = run(timetable, "all", day_before,
                list(range(day_before, day_before + 3 * 86_400_000, 10 * MINUTE)))
    local = [datetime.fromtimestamp(t / 1000, BERLIN).strftime("%d %H:%M") for t in fired]
    assert local == ["28 02:30", "29 03:00", "30 02:30", "31 02:30"]


def test_a_local_time_repeated_by_fall_back_fires_once_for_a_fixed_hour():
    timetable = cron("30 2 * * *", "Europe/Berlin")
    day_before = ms(2026, 10, 24, 2, 30)
    fired = run(timetable, "all", day_before,
                list(range(day_before, day_before + 2 * 86_400_000 + 2 * 3_600_000, 10 * MINUTE)))
    assert len(fired) == 3 and len(set(fired)) == 3  # the 24th, the 25th once, the 26th


def test_a_wildcard_hour_fires_through_the_repeated_hour():
    timetable = cron("*/30 * * * *", "Europe/Berlin")
    start = ms(2026, 10, 25, 1, 30)
    fired = run(timetable, "all", start, list(range(start, start + 3 * 3_600_000 + 1, MINUTE)))
    assert [b - a for a, b in zip(fired, fired[1:], strict=False)] == [30 * MINUTE] * 6
