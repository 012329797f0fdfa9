"""How the command line reports a user's error: one line on stderr, and its exit code.

Shared by the Typer app and the short path of `harunner submit`, so that both
say the same thing. A `HarunnerError` prints its message and exits with its
`exit_code` (the one table in `harunner.api.exit_codes`); an `OSError` (a
state directory that broke under us) is one line and exit 2.
"""

from __future__ import annotations

import sys

from harunner.api import exit_codes
from harunner.errors import HarunnerError


def report(error: BaseException) -> int:
    """Print a user's error as one line on stderr; the exit code it maps to."""
    if isinstance(error, HarunnerError):
        print(f"harunner: {error}", file=sys.stderr)
        return error.exit_code
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        print(f"harunner: {where}{error.strerror or error}; check the state directory "
              "(config state_dir, $HARUNNER_STATE_DIR or --state-dir)", file=sys.stderr)
        return exit_codes.USAGE
    raise error
