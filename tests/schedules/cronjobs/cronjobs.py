"""Periodic jobs of the schedules' real-process tests."""

from __future__ import annotations

import time

from harunner import Context, job


@job(name="cron.second", schedule="* * * * * *", catch_up="all")
def every_second(ctx: Context, scheduled_at: str = "") -> str:
    """Fired every second (overlap=False: a fire while the last run runs is skipped)."""
    time.sleep(0.05)
    return scheduled_at
