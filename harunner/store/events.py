"""A per-cluster event log (JSON lines) for the timeline of a failover.

Wall-clock timestamps here are for people reading a timeline across processes,
never for timeouts (those use the monotonic clock). Writes are appends of one
line with O_APPEND, so concurrent runners do not interleave within a line.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class EventLog:
    def __init__(self, path: Path, source: str) -> None:
        self.path = path
        self.source = source
        self._fd: int | None = None

    def emit(self, event: str, **fields: Any) -> None:
        """Append one event line; never raises (the log is for people, not for safety)."""
        line = json.dumps({"t": time.time(), "src": self.source, "event": event, **fields},
                          default=str)
        try:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.write(self._fd, (line + "\n").encode())
        except OSError:
            pass

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every well-formed event of the log, in file order."""
    return list(iter_events(path))


def iter_events(path: Path) -> Iterator[dict[str, Any]]:
    """The well-formed events of the log, one line at a time (memory: one line)."""
    try:
        handle = path.open("r", encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                yield item
