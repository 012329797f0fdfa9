"""A per-cluster event log (JSON lines) for the timeline of a failover.

Wall-clock timestamps here are for people reading a timeline across processes,
never for timeouts (those use the monotonic clock). Writes are appends of whole
lines with O_APPEND (one line, or a runner's turn of lines), so concurrent
writers do not interleave within a line.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FLUSH_LINES = 256  # a buffered log writes at least this often, whatever its owner does
_ENCODE = json.JSONEncoder(default=str).encode  # made once: `dumps(default=...)` makes one per call


class EventLog:
    """Appends to the event log of `path` as `source`. `buffered`: lines wait in memory
    until `flush` (a runner flushes once per loop turn: one write per turn, not one per
    event; a SIGKILL loses at most that turn's lines, which the log may: it is for people)."""

    def __init__(self, path: Path, source: str, buffered: bool = False) -> None:
        self.path = path
        self.source = source
        self.buffered = buffered
        self._fd: int | None = None
        self._pending: list[str] = []

    def emit(self, event: str, **fields: Any) -> None:
        """Append one event line; never raises (the log is for people, not for safety)."""
        line = _ENCODE({"t": time.time(), "src": self.source, "event": event, **fields})
        self._pending.append(line)
        if not self.buffered or len(self._pending) >= FLUSH_LINES:
            self.flush()

    def flush(self) -> None:
        """Write the lines that wait, in one append."""
        if not self._pending:
            return
        data = ("\n".join(self._pending) + "\n").encode()
        self._pending = []
        try:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.write(self._fd, data)
        except OSError:
            pass

    def close(self) -> None:
        self.flush()
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
