"""Checking a state directory before a command uses it, and explaining an OSError on it.

`check_state_dir` refuses, in one line naming the path, a state directory that
cannot work: under a file, not a folder, on a virtual file system (/proc,
/sys, /dev), or one the user may not read, write or enter. `explain` turns an
`OSError` met later on that directory into the same kind of one-line error.
Neither creates anything.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from harunner.api.errors import StateDirError

VIRTUAL_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))
FIX = "set state_dir (config, $HARUNNER_STATE_DIR or --state-dir) to a folder you own"


def check_state_dir(path: Path) -> None:
    """`StateDirError` if `path` cannot hold harunner's state; silent if it can."""
    for root in VIRTUAL_ROOTS:
        if path == root or root in path.parents:
            raise StateDirError(f"state directory {path} is on the virtual file system {root}; "
                                f"{FIX} on a disk")
    existing = path
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == path else f"is under the file {existing}"
        raise StateDirError(f"state directory {path} {what}, not a folder; {FIX}")
    needed = os.R_OK | os.W_OK | os.X_OK if existing == path else os.W_OK | os.X_OK
    if not os.access(existing, needed):
        where = "" if existing == path else f" (its folder {existing} cannot be written)"
        raise StateDirError(f"state directory {path}: permission denied{where}; "
                            f"fix its permissions or {FIX}")


def explain(error: OSError, state_dir: Path) -> StateDirError:
    """A one-line `StateDirError` for an OSError met while using `state_dir`."""
    where = error.filename or state_dir
    reason = error.strerror or errno.errorcode.get(error.errno or 0, str(error))
    return StateDirError(f"state directory {state_dir}: {where}: {reason}; "
                         f"fix it or {FIX}")
