"""One attempt's log: its first and last lines, and the job's logger, made only on use.

`open_log(store, record, spool)` opens the attempt's log once: the job's log
file if it exists (or the worker has no spool), else the worker's spool
(`harunner.executor.spool`). fds 1 and 2 go there, and so does the job's
logger (`Context.log`). The "attempt N starts" and "attempt N returned"
lines are formatted here and written with one `write` each, in the format
of `api.job_logger`; the logger itself (`JobLogger`) makes its handler and
stream, through `api.job_logger`, on its first record. So an attempt that
logs nothing costs no logging machinery, and one that succeeds quietly in
its spool costs no file of its own.

Invariants: every line of an attempt goes to the same open file (one
descriptor, dup'd onto 1 and 2), so lines keep the order they were written
in; `AttemptLog.end` runs after `Baseline.restore` (descendants dead, fds 1
and 2 restored) and always closes the logger and its descriptor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Any

from harunner.api import job_logger
from harunner.executor.spool import LOG_FLAGS, Spool
from harunner.store import JobStore


def line(record: Any, level: str, message: str, wall: float | None = None) -> bytes:
    """One log line as `api.job_logger` writes it (time, generation, attempt, level)."""
    wall = time.time() if wall is None else wall
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall))
    return (f"{stamp},{int(wall * 1000) % 1000:03d} gen={record.generation} "
            f"attempt={record.attempts} {level} {message}\n").encode()


class JobLogger(logging.Logger):
    """The job's logger for one attempt: `api.job_logger` on the attempt's descriptor, made
    on the first record (handlers the job adds itself get the records too)."""

    def __init__(self, store: JobStore, record: Any, fd: int) -> None:
        super().__init__(f"harunner.job.{record.job_id}", logging.DEBUG)
        self.propagate = False
        self._store, self._record, self._fd = store, record, fd
        self._real: logging.Logger | None = None

    def handle(self, record: logging.LogRecord) -> None:
        if self.disabled or not self.filter(record):
            return
        if self._real is None:
            stream = open(self._fd, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
            self._real = job_logger(self._store, self._record, stream)
        self._real.handle(record)
        if self.handlers:
            self.callHandlers(record)

    def close(self) -> None:
        """Close the stream (or the bare descriptor) and every handler; forget the logger."""
        if self._real is None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        forget_logger(self._real)
        for handler in list(self.handlers):
            self.removeHandler(handler)
            with contextlib.suppress(Exception):
                handler.close()


class AttemptLog:
    """One attempt's log descriptor, its logger, and the spool if the attempt is spooled."""

    def __init__(self, store: JobStore, record: Any, fd: int, spool: Spool | None) -> None:
        self.record = record
        self.fd = fd
        self.spool = spool
        self.logger = JobLogger(store, record, fd)

    def header(self, message: str) -> None:
        """The "attempt N starts" line; a spooled attempt that adds nothing after it (and
        wrote nothing before) succeeds quietly."""
        data = line(self.record, "INFO", message)
        with contextlib.suppress(OSError):  # like a logging handler: never fail the attempt
            os.write(self.fd, data)
        if self.spool is not None:
            self.spool.header_end = len(data)

    def end(self, succeeded: bool) -> None:
        """After `Baseline.restore`: settle the spool, write "attempt N returned" where the
        attempt's log is kept, and close the logger."""
        try:
            if self.spool is None or self.spool.settle(succeeded):
                if succeeded:
                    with contextlib.suppress(OSError):
                        os.write(self.fd, line(self.record, "INFO",
                                               f"attempt {self.record.attempts} returned"))
        finally:
            self.logger.close()


def open_log(store: JobStore, record: Any, spool: Spool | None) -> AttemptLog:
    """The attempt's log: the job's log if it exists (or there is no spool), else the spool;
    fds 1 and 2 go there."""
    path = store.layout.job_log_text(record.job_id)
    try:
        fd = os.open(path, LOG_FLAGS)
    except FileNotFoundError:
        if spool is not None and spool.usable():
            return AttemptLog(store, record, spool.begin(record.job_id), spool)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, LOG_FLAGS | os.O_CREAT, 0o600)
    os.dup2(fd, 1, inheritable=True)
    os.dup2(fd, 2, inheritable=True)
    return AttemptLog(store, record, fd, None)


def forget_logger(logger: logging.Logger | None) -> None:
    """Close the logger's handlers and drop it, so loggers do not pile up per job."""
    if logger is None:
        return
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        with contextlib.suppress(Exception):
            handler.close()
    logging.Logger.manager.loggerDict.pop(logger.name, None)
