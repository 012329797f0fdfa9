"""The one exception tree of harunner.

Every error a user can cause or see derives from `HarunnerError`; the CLI maps
`exit_code` to the process exit status in one place. Messages name the thing,
what was wrong with it, and what to do.
"""

from __future__ import annotations


class HarunnerError(Exception):
    """Base of every harunner error; `exit_code` is what the CLI exits with."""

    exit_code = 1


class UsageError(HarunnerError):
    """The user asked for something impossible: bad flag, bad config, bad arguments."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration file, environment variable or flag has a wrong key or value."""


class JobDefinitionError(UsageError):
    """A job function or job module is unusable (bad decorator arguments, import error)."""


class StoreError(HarunnerError):
    """The checkpoint store could not do what was asked."""


class UnknownJobError(UsageError, StoreError):
    """A job name or job id that is not known (a usage error, and a store error)."""


class JobArgumentError(UsageError):
    """A submission's arguments do not fit the job's signature or are not JSON."""


class FencedError(StoreError):
    """A write carried a generation lower than the job's: the writer is a stale owner."""


class StaleTransitionError(StoreError):
    """A compare-and-set on a job record found another state or generation than expected."""


class CorruptFileError(StoreError):
    """A state file failed its checksum or header check, and no good version was found."""


class CheckpointTooLargeError(StoreError):
    """A checkpoint above the size limit was refused; nothing was written, the last one stands.

    The job's own fault (it keeps too much state): its attempt fails like any
    exception it raises, and counts against its retries.
    """


class LockTimeoutError(StoreError):
    """A file lock was not acquired within its timeout (its holder may be paused)."""


class DurabilityError(HarunnerError):
    """fsync failed: the data may be lost. The process must crash-stop, never retry.

    A sibling of `StoreError`, not a child: code that handles a store error
    (and retries, or moves on) must never swallow this one by accident.
    """


class DiskFullError(StoreError):
    """The disk is full: the old version is intact, the new one was not written."""


class FrameError(HarunnerError, ValueError):
    """A frame from a socket that is not a valid message of this cluster; dropped and counted.

    Raised by both wire codecs (`harunner.net.bus` and `harunner.paxos.codec`);
    `reason` is a short category for the counters (`not-json`, `too-large`, ...).
    """

    def __init__(self, reason: str, detail: str = "", what: str = "frame") -> None:
        super().__init__(f"rejected {what} ({reason}){': ' + detail if detail else ''}")
        self.reason = reason


class ClusterError(HarunnerError):
    """The cluster cannot start or be reached (state directory in use, no supervisor)."""
