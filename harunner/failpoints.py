"""Named failpoints for crash tests.

A failpoint is a call `failpoint("store.after_fsync")` placed at one step of a
write path or a protocol handler. It does nothing unless the environment
variable HARUNNER_FAILPOINTS names it, for example

    HARUNNER_FAILPOINTS="store.after_fsync=exit;paxos.after_persist=sleep:0.5"

Actions: `exit` (os._exit(77) at once, like a crash), `kill` (SIGKILL to self),
`raise` (raises `FailpointError`), `sleep:SECONDS`. A suffix `@N` fires only on
the N-th hit of that point in this process (`store.after_fsync=exit@3`).
The variable is read once, on first use; when it is unset, a failpoint costs
one dictionary truthiness check.
"""

from __future__ import annotations

import os
import signal
import time

ENV = "HARUNNER_FAILPOINTS"
EXIT_CODE = 77

_points: dict[str, tuple[str, float, int]] | None = None
_hits: dict[str, int] = {}


class FailpointError(RuntimeError):
    """Raised by a failpoint whose action is `raise`."""


def _parse(spec: str) -> dict[str, tuple[str, float, int]]:
    points: dict[str, tuple[str, float, int]] = {}
    for item in filter(None, (part.strip() for part in spec.split(";"))):
        name, _, action = item.partition("=")
        action, _, nth = action.partition("@")
        verb, _, argument = action.partition(":")
        points[name.strip()] = (verb.strip() or "exit", float(argument or 0), int(nth or 0))
    return points


def reload() -> None:
    """Read HARUNNER_FAILPOINTS again (tests that change it in-process call this)."""
    global _points
    _points = _parse(os.environ.get(ENV, ""))
    _hits.clear()


def failpoint(name: str) -> None:
    """Act as configured if failpoint `name` is enabled; otherwise return at once."""
    if _points is None:
        reload()
    assert _points is not None
    if not _points or name not in _points:
        return
    verb, argument, nth = _points[name]
    _hits[name] = _hits.get(name, 0) + 1
    if nth and _hits[name] != nth:
        return
    if verb == "exit":
        os._exit(EXIT_CODE)
    if verb == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if verb == "raise":
        raise FailpointError(f"failpoint {name} fired")
    if verb == "sleep":
        time.sleep(argument)
