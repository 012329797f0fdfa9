"""`python -m harunner.testing NAME --arg key=value …`: the crash-test command without the CLI.

The same as `harunner crash-test`: loads the config (./harunner.toml or
./config/harunner.toml, HARUNNER_* variables) and exits with the code of
`run_crash_test_command`.
"""

from __future__ import annotations

import argparse
import sys

from harunner import config as config_module
from harunner.errors import HarunnerError
from harunner.testing.command import EXIT_USAGE, run_crash_test_command


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the crash test, return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m harunner.testing",
                                     description="Crash-test a job: SIGKILL it after and "
                                     "before each checkpoint and at seeded points between.")
    parser.add_argument("name", help="job name, e.g. ledger.append_safe")
    parser.add_argument("--arg", "-a", action="append", default=[], metavar="KEY=VALUE",
                        help="a job argument (repeatable); {workdir} is each run's folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random kill points")
    parser.add_argument("--points", type=int, default=10, help="random kill points")
    parser.add_argument("--config", "-c", default=None, help="TOML config file")
    options = parser.parse_args(argv)
    try:
        config = config_module.load(options.config)
    except HarunnerError as error:
        print(f"harunner: {error}", file=sys.stderr)
        return EXIT_USAGE
    return run_crash_test_command(config, options.name, options.arg, seed=options.seed,
                                  points=options.points)


if __name__ == "__main__":
    sys.exit(main())
