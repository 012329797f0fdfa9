"""The @job decorator: both forms, durations, names, policy checks."""

from __future__ import annotations

import pytest

from harunner import job
from harunner.api import JobSpec, parse_duration, registered, retry_delay, spec_of
from harunner.errors import JobDefinitionError


@job
def bare(ctx, x: int = 1):
    return x * 2


@job(name="custom.name", retries=3, backoff="500ms", timeout="2h")
def configured(ctx):
    return "ok"


def test_bare_decorator_keeps_function_callable_and_attaches_spec():
    assert bare(None, x=4) == 8
    spec = spec_of(bare)
    assert isinstance(spec, JobSpec)
    assert spec.name == f"{__name__}.bare"
    assert (spec.retries, spec.backoff, spec.timeout) == (0, 1.0, None)
    assert spec.module == __name__ and spec.function is bare


def test_configured_decorator_and_name_override():
    spec = spec_of(configured)
    assert spec is not None
    assert (spec.name, spec.retries, spec.backoff, spec.timeout) == ("custom.name", 3, 0.5, 7200.0)
    assert configured(None) == "ok"


def test_spec_is_frozen_and_registered():
    spec = spec_of(bare)
    with pytest.raises(AttributeError):
        spec.retries = 5  # type: ignore[misc]
    assert registered(__name__)[spec.name] is spec


@pytest.mark.parametrize("value, seconds", [
    (0, 0.0), (3, 3.0), (2.5, 2.5), ("500ms", 0.5), ("30s", 30.0), ("5m", 300.0),
    ("2h", 7200.0), ("1d", 86400.0), ("1.5s", 1.5), (" 10 ", 10.0), ("7", 7.0),
])
def test_durations(value, seconds):
    assert parse_duration(value, "timeout") == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "abc", "5 minutes", "-1s", -2, "1w", True, [1],
                                   float("inf"), float("nan"), "1e3s"])
def test_bad_durations_are_refused(value):
    with pytest.raises(JobDefinitionError):
        parse_duration(value, "timeout")


@pytest.mark.parametrize("options, needle", [
    ({"timeout": "soon"}, "'soon'"),
    ({"backoff": "-1s"}, "'-1s'"),
    ({"retries": -1}, "retries = -1"),
    ({"retries": "3"}, "retries = '3'"),
    ({"retries": True}, "retries = True"),
    ({"timeout": 0}, "timeout = 0"),
    ({"name": ""}, "name = ''"),
])
def test_bad_options_name_the_function_and_value(options, needle):
    with pytest.raises(JobDefinitionError) as caught:
        job(**options)(_victim)
    message = str(caught.value)
    assert "_victim" in message and needle in message


def _victim(ctx):
    return None


def test_a_job_needs_a_context_parameter():
    def no_params():
        return None

    with pytest.raises(JobDefinitionError, match="first parameter must take the Context"):
        job(name="x.no_params")(no_params)


def test_a_local_function_needs_a_name():
    def inner(ctx):
        return None

    with pytest.raises(JobDefinitionError, match="needs name="):
        job(inner)
    assert spec_of(job(name="tests.inner")(inner)).name == "tests.inner"


def test_job_with_a_string_first_argument_explains():
    with pytest.raises(JobDefinitionError, match="name='resize'"):
        job("resize")


def test_two_functions_with_one_name_in_a_module_are_refused():
    def first(ctx):
        return 1

    def second(ctx):
        return 2

    job(name="dup.same")(first)
    with pytest.raises(JobDefinitionError, match="used twice"):
        job(name="dup.same")(second)


def test_retry_delay_is_exponential_and_capped():
    assert [retry_delay(0.1, n) for n in (1, 2, 3)] == pytest.approx([0.1, 0.2, 0.4])
    assert retry_delay(60, 30) == 3600.0
