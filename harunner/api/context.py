"""What a running job sees: `Context` (its last checkpoint, fenced writes) and its log.

Invariants: everything a job writes through its Context carries its
generation, so a stale owner's writes are refused (`FencedError`); a write
refused because the job moved on (no longer RUNNING) is a `FencedError` too.

Checkpoint writes are timed for `harunner.metrics`; the first checkpoint of
an attempt that a runner took over is also an event (`first_checkpoint`) in
the cluster's event log, the last step of a failover's timeline.

A checkpoint whose JSON text is larger than `max_checkpoint_bytes` is refused
before anything is written (`CheckpointTooLargeError`, raised into the job):
the limit is below what the store reads back, so an acknowledged checkpoint is
always readable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from harunner import metrics
from harunner.api.job import to_json
from harunner.config import Config
from harunner.errors import CheckpointTooLargeError, FencedError, StaleTransitionError
from harunner.store import Checkpoint, JobRecord, Progress
from harunner.store.events import EventLog
from harunner.store.job_files import make_private_file
from harunner.store.model import state_json

if TYPE_CHECKING:
    from harunner.store import JobStore


class Context:
    """What a running job sees: its identity, last state, and fenced writes."""

    def __init__(self, store: JobStore, record: JobRecord, checkpoint: Checkpoint | None,
                 logger: logging.Logger, *,
                 max_checkpoint_bytes: int = Config.max_checkpoint_bytes) -> None:
        self._store = store
        self.max_checkpoint_bytes = max_checkpoint_bytes
        self.record = record
        self.job_id = record.job_id
        self.name = record.name
        self.attempt = record.attempts
        self.generation = record.generation
        self.args = dict(record.args)
        self.state: dict[str, Any] = to_json(checkpoint.state, "checkpoint") if checkpoint else {}
        self.resumed = checkpoint is not None
        self.log = logger
        self.fenced = False
        self._taken_over = bool(record.history) and "taken over by" in record.history[-1]

    def checkpoint(self, state: dict[str, Any]) -> int:
        """Durably save `state` as this job's newest checkpoint; returns its sequence number."""
        if not isinstance(state, dict):
            raise TypeError(f"job {self.name}: checkpoint state must be a dict, not "
                            f"{type(state).__name__}")
        saved = to_json(state, f"checkpoint state of job {self.name}")
        size = len(state_json(self.job_id, saved).encode())
        if size > self.max_checkpoint_bytes:
            raise CheckpointTooLargeError(
                f"job {self.job_id} ({self.name}): checkpoint of {size:,} bytes refused, over the "
                f"limit of {self.max_checkpoint_bytes:,} bytes (config max_checkpoint_bytes); "
                "nothing was written: keep less state or raise the limit")
        started = time.monotonic()
        seq = self._fenced(self._store.write_checkpoint, self.job_id, self.generation, saved)
        metrics.checkpoint_written(time.monotonic() - started)
        if self._taken_over:
            self._after_takeover(int(seq))
        self.state = saved
        return int(seq)

    def _after_takeover(self, seq: int) -> None:
        """The first checkpoint since a runner took this job over: the failover is over."""
        self._taken_over = False
        metrics.failover_stage("checkpoint", time.time() - self.record.updated_at)
        events = EventLog(self._store.layout.events, f"worker-{os.getpid()}")
        events.emit("first_checkpoint", job=self.job_id, generation=self.generation, seq=seq)
        events.close()

    def progress(self, done: float, total: float | None = None,
                 message: str | None = None) -> None:
        """Report soft progress (shown by `harunner status`); fenced, not fsynced."""
        self._fenced(self._store.set_progress, self.job_id, self.generation,
                     Progress(done, total, message))

    def _fenced(self, write: Callable[..., Any], *args: Any) -> Any:
        """Call a store write; any refusal because the job moved on is a `FencedError`."""
        try:
            return write(*args)
        except FencedError:
            self.fenced = True
            raise
        except StaleTransitionError as error:
            self.fenced = True
            raise FencedError(f"job {self.job_id} moved on without generation "
                              f"{self.generation}: {error}") from error


class _GenerationFilter(logging.Filter):
    def __init__(self, generation: int, attempt: int) -> None:
        super().__init__()
        self.generation = generation
        self.attempt = attempt

    def filter(self, record: logging.LogRecord) -> bool:
        record.generation = self.generation
        record.attempt = self.attempt
        return True


LOG_FORMAT = "%(asctime)s gen=%(generation)d attempt=%(attempt)d %(levelname)s %(message)s"


def job_logger(store: JobStore, record: JobRecord,
               stream: TextIO | None = None) -> logging.Logger:
    """A logger appending to the job's log file (0600), each line with time and generation;
    to `stream` (an open descriptor of that file, closed with the logger) if given."""
    logger = logging.getLogger(f"harunner.job.{record.job_id}")
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    if stream is None:
        path = store.log_path(record.job_id)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        make_private_file(path)
        handler: logging.Handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    else:
        handler = _ClosingStreamHandler(stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(_GenerationFilter(record.generation, record.attempts))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger


class _ClosingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler over a stream it owns: closing the handler closes the stream."""

    def close(self) -> None:
        try:
            with contextlib.suppress(OSError, ValueError):
                self.stream.close()
        finally:
            super().close()
