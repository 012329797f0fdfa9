"""`harunner crash-test NAME --arg key=value …`: the kit on a job of the config's `jobs`.

`run_crash_test_command` finds the job through the config's `jobs` entries,
parses the `--arg` items as `harunner submit` does (`{workdir}` in a value
is each run's fresh working directory), crash-tests it observing the files
in that directory, prints the table of kill points and a summary, and
returns the exit code: 0 if every kill point ends as the run without faults,
1 if one differs (or that run fails), 2 for a usage error (unknown job, bad
arguments, a job module that does not import).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from harunner.api import parse_cli_arguments
from harunner.api.discovery import find
from harunner.config import Config
from harunner.errors import HarunnerError, UsageError
from harunner.testing.kit import run_crash_test

EXIT_PASSED = 0
EXIT_DIFFERS = 1
EXIT_USAGE = 2


def run_crash_test_command(config: Config, name: str, items: Sequence[str], *, seed: int = 0,
                           points: int = 10, before: bool = True, out: TextIO | None = None,
                           err: TextIO | None = None) -> int:
    """Crash-test job `name` with `--arg` `items`; print the kill points; return the exit code."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    if points < 0:
        print(f"harunner: --points is {points}; give 0 or more random kill points", file=err)
        return EXIT_USAGE
    try:
        spec = find(config.jobs, name)
        report = run_crash_test(spec, parse_cli_arguments(items), seed=seed, points=points,
                                before=before)
    except UsageError as error:
        print(f"harunner: {error}", file=err)
        return EXIT_USAGE
    except HarunnerError as error:
        print(f"harunner: {error}", file=err)
        return EXIT_DIFFERS
    if report.outcomes:
        print(report.table(), file=out)
    if report.passed:
        print(report.summary(), file=out)
        return EXIT_PASSED
    print(report.message().split("\nkill point", 1)[0], file=out)
    return EXIT_DIFFERS
