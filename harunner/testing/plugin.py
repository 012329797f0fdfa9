"""The pytest plugin of harunner (entry point `pytest11: harunner`): the `crash_test` fixture.

    def test_ledger_survives_crashes(crash_test):
        crash_test(append_safe, {"path": "{workdir}/ledger.txt"})

The fixture is `harunner.testing.run_crash_test` that fails the test with the
report's message (the first differing kill point, the checkpoint state
there, and the table of kill points) and returns the `CrashReport` when every
point passes. `--harunner-crash-seed N` changes the default seed of the
random kill points. Importing this module imports nothing of the kit, so the
plugin costs nothing in test runs that do not use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harunner", "harunner crash tests")
    group.addoption("--harunner-crash-seed", type=int, default=None, metavar="N",
                    help="default seed of the random kill points of the crash_test fixture")


@pytest.fixture
def crash_test(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Crash-test a job: `crash_test(job, args, observe=None, seed=0, points=10, ...)`."""
    from harunner.testing.kit import run_crash_test

    seed = request.config.getoption("harunner_crash_seed")

    def check(job: Any, args: Any = None, observe: Callable[..., Any] | None = None,
              **options: Any) -> Any:
        if seed is not None:
            options.setdefault("seed", seed)
        report = run_crash_test(job, args, observe, **options)
        if not report.passed:
            pytest.fail(report.message(), pytrace=False)
        return report

    return check
