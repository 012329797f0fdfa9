"""Changing finished jobs: `harunner retry JOB` and `harunner prune [--older-than AGE]`.

`prune` with no flag applies the config key `retention`; with neither, it is
a usage error (nothing is deleted by default). The cluster never prunes by
itself: run `harunner prune` from cron or a systemd timer (config/).
"""

from __future__ import annotations

import time

from harunner.api.client import Client
from harunner.api.job import parse_duration
from harunner.errors import ConfigError, JobDefinitionError, UsageError


def retry(client: Client, job_id: str) -> str:
    """Put a failed or cancelled job back to pending; the line to print."""
    record = client.retry(job_id).record()
    return f"{record.job_id} {record.state.value} (generation {record.generation})"


def prune(client: Client, older_than: str | None, now: float | None = None) -> str:
    """Delete finished jobs older than `older_than` (or the config's retention)."""
    age = older_than or client.config.retention
    if not age:
        raise UsageError("prune needs an age: give --older-than 7d, or set retention = \"30d\" "
                         "in the config; nothing was deleted")
    try:
        seconds = parse_duration(age, "--older-than" if older_than else "retention")
    except JobDefinitionError as error:
        raise ConfigError(str(error)) from None
    cutoff = (time.time() if now is None else now) - seconds
    count = client.store.prune(cutoff)
    return f"pruned {count} finished job{'s' if count != 1 else ''} older than {age}"
