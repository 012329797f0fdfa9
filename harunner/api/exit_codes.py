"""The exit codes of every `harunner` command: the one table, used by the CLI and its docs.

The CLI exits with the `exit_code` of the `HarunnerError` it caught; each
error class takes its code from this table, so the codes are written once.
"""

from __future__ import annotations

OK = 0
JOB_FAILED = 1          # the job failed (or another error: the cluster or the store)
USAGE = 2               # a bad flag, config, argument or state directory
CANCELLED = 3           # the job was cancelled
TIMED_OUT = 4           # a wait ran out of time (or `result` of an unfinished job without --wait)
NOT_RUNNING = 5         # `stop`: no cluster is running
INTERRUPTED = 130       # Ctrl-C (SIGINT), also for the foreground `start`

TABLE: tuple[tuple[int, str], ...] = (
    (OK, "success"),
    (JOB_FAILED, "the job failed (or a cluster or store error)"),
    (USAGE, "usage or config error, or an unusable state directory"),
    (CANCELLED, "the job was cancelled"),
    (TIMED_OUT, "a wait timed out (--timeout), or the job is not finished yet"),
    (NOT_RUNNING, "stop: no cluster is running"),
    (INTERRUPTED, "interrupted (Ctrl-C)"),
)


def epilog() -> str:
    """The table as text for `--help`."""
    rows = "  ".join(f"{code}={what};" for code, what in TABLE)
    return f"Exit codes: {rows.rstrip(';')}."
