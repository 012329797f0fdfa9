"""The `crash_test` fixture through the installed pytest plugin (entry point pytest11).

pytester runs a user's test file in a fresh pytest process that finds the
plugin the way a user's would: through the `harunner` entry point.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = '''
from harunner import job


@job(name="user.append")
def append(ctx, path, lines=3, safe=False):
    done = ctx.state.get("done", 0)
    size = ctx.state.get("size", 0)
    with open(path, "a+b") as out:
        if safe:
            out.truncate(size)
        for number in range(done + 1, lines + 1):
            out.write(f"line {number}\\n".encode())
            out.flush()
            ctx.checkpoint({"done": number, "size": out.tell()})
    return {"lines": lines}


def test_unsafe(crash_test):
    crash_test(append, {"path": "{workdir}/out.txt"}, points=2)


def test_safe(crash_test):
    report = crash_test(append, {"path": "{workdir}/out.txt", "safe": True}, points=2)
    assert report.passed and report.checkpoints == 3
    assert len(report.outcomes) == 3 + 3 + 2
'''


@pytest.mark.integration
def test_the_fixture_fails_the_unsafe_job_and_passes_the_safe_one(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*test_unsafe*",
        "*crash test of user.append (seed 0): 8 kill points over 3 checkpoints*differ*",
        "*first kill point that differs: before checkpoint 1*",
        "*observe() differs*",
    ])
    assert "Traceback" not in result.stdout.str()


@pytest.mark.integration
def test_the_seed_option_reaches_the_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--harunner-crash-seed",
                                           "42", "-k", "unsafe")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*crash test of user.append (seed 42)*"])
