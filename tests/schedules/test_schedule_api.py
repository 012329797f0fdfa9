"""@job's schedule options: checked when the job is declared, one line each."""

from __future__ import annotations

import builtins
from datetime import timedelta

import pytest

from harunner import job
from harunner.api import spec_of
from harunner.api.job import takes_scheduled_at
from harunner.errors import JobDefinitionError


def test_a_cron_schedule_with_its_policies():
    pytest.importorskip("croniter")

    @job(name="t.cron", schedule="*/5  * * * *", timezone="Europe/Berlin", catch_up="all",
         overlap=True)
    def report(ctx, scheduled_at=None):
        return scheduled_at

    schedule = spec_of(report).schedule
    assert (schedule.expression, schedule.timezone, schedule.catch_up, schedule.overlap) == \
        ("*/5 * * * *", "Europe/Berlin", "all", True)
    assert takes_scheduled_at(spec_of(report))


@pytest.mark.parametrize("every", ["30s", 30, timedelta(seconds=30)])
def test_an_interval_in_any_form(every):
    @job(name="t.every", every=every)
    def tick(ctx):
        return 1

    schedule = spec_of(tick).schedule
    assert schedule.interval_ms == 30_000 and schedule.text == "every 30s"
    assert schedule.catch_up == "latest" and schedule.overlap is False
    assert not takes_scheduled_at(spec_of(tick))


def test_a_plain_job_has_no_schedule():
    @job(name="t.plain")
    def plain(ctx, x):
        return x

    assert spec_of(plain).schedule is None


@pytest.mark.parametrize("options, says", [
    ({"schedule": "61 * * * *"}, "not a valid cron expression"),
    ({"schedule": "* * *"}, "not a valid cron expression"),
    ({"schedule": 5}, "must be a cron expression"),
    ({"schedule": "* * * * *", "every": "1s"}, "not both"),
    ({"schedule": "* * * * *", "timezone": "Mars/Olympus"}, "not a known IANA time zone"),
    ({"schedule": "* * * * *", "catch_up": "some"}, "catch_up = 'some' must be one of"),
    ({"schedule": "* * * * *", "overlap": "no"}, "overlap = 'no' must be True or False"),
    ({"every": "0s"}, "at least 1 ms"),
    ({"every": "soon"}, "is not a duration"),
    ({"every": "1s", "timezone": "UTC"}, "applies to cron schedules only"),
    ({"catch_up": "all"}, "needs schedule= or every="),
])
def test_bad_options_are_refused_at_declaration(options, says):
    pytest.importorskip("croniter")
    with pytest.raises(JobDefinitionError, match=says) as caught:
        @job(name="t.bad", **options)
        def bad(ctx):
            return None
    assert "\n" not in str(caught.value) and str(caught.value).startswith("@job on")


def test_a_periodic_job_needs_defaults_for_its_parameters():
    with pytest.raises(JobDefinitionError, match="parameter 'folder' needs a default"):
        @job(name="t.args", every="1m")
        def needs(ctx, folder):
            return folder


def test_without_croniter_a_cron_schedule_says_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_croniter(name, *args, **kwargs):
        if name == "croniter":
            raise ImportError("No module named 'croniter'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_croniter)
    with pytest.raises(JobDefinitionError, match=r'pip install "harunner\[cron\]"'):
        @job(name="t.nocron", schedule="* * * * *")
        def nightly(ctx):
            return None

    @job(name="t.interval", every="1h")  # an interval needs no croniter
    def hourly(ctx):
        return None
