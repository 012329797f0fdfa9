"""Submitting and waiting from outside a cluster (the CLI and application code).

A submission is checked against the job's signature, then written durably to
the store; no runner needs to be up. The scheduler finds it there (it rescans
the store at least every second, and at once when poked on the bus).
"""

from __future__ import annotations

import time

from harunner.api import check_arguments, parse_cli_arguments
from harunner.api.discovery import find
from harunner.config import Config
from harunner.errors import ClusterError
from harunner.store import JobRecord, Store


def submit_job(config: Config, name: str, items: list[str]) -> JobRecord:
    """Check and durably store a new job; returns its record."""
    spec = find(config.jobs, name)
    args = check_arguments(spec, parse_cli_arguments(items))
    store = Store.from_config(config)
    return store.submit(spec.name, args, retries=spec.retries, backoff=spec.backoff,
                        timeout=spec.timeout)


def wait_for(config: Config, job_id: str, timeout: float | None = None) -> JobRecord:
    """Poll the job's record until it is finished (or `timeout` seconds pass)."""
    store = Store.from_config(config)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        record = store.get(job_id)
        if record.state.finished:
            return record
        if deadline is not None and time.monotonic() > deadline:
            raise ClusterError(f"job {job_id} is still {record.state.value} after {timeout}s")
        time.sleep(0.05)
