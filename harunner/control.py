"""What the CLI does to a cluster from outside it: submit, wait, stop.

A submission is checked against the job's signature, then written durably to
the store; no runner needs to be up. The scheduler finds it there (it rescans
the store at least every second, and at once when poked on the bus).
"""

from __future__ import annotations

import os
import signal
import time

from harunner import cluster
from harunner.api import check_arguments, parse_cli_arguments
from harunner.config import Config
from harunner.discovery import find
from harunner.errors import ClusterError
from harunner.store import JobRecord, Store


def submit_job(config: Config, name: str, items: list[str]) -> JobRecord:
    """Check and durably store a new job; returns its record."""
    spec = find(config.jobs, name)
    args = check_arguments(spec, parse_cli_arguments(items))
    store = Store(config.state_path, config.lock_timeout_ms / 1000)
    return store.submit(spec.name, args, retries=spec.retries, backoff=spec.backoff,
                        timeout=spec.timeout)


def wait_for(config: Config, job_id: str, timeout: float | None = None) -> JobRecord:
    """Poll the job's record until it is finished (or `timeout` seconds pass)."""
    store = Store(config.state_path, config.lock_timeout_ms / 1000)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        record = store.get(job_id)
        if record.state.finished:
            return record
        if deadline is not None and time.monotonic() > deadline:
            raise ClusterError(f"job {job_id} is still {record.state.value} after {timeout}s")
        time.sleep(0.05)


def stop_cluster(config: Config) -> str:
    """SIGTERM the supervisor (or, without one, the live runners) and wait for them."""
    layout = cluster.Layout(config.state_path)
    pid = cluster.live_supervisor(layout)
    pids = [pid] if pid and pid > 0 else []
    if not pids:
        for slot in range(config.slots):
            info = cluster.live_slot(layout, slot)
            if info and info.get("pid"):
                pids.append(int(info["pid"]))
    if not pids:
        return f"no cluster is running on {layout.root}"
    for each in pids:
        try:
            os.kill(each, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + config.stop_timeout_ms / 1000 + 1.0
    while time.monotonic() < deadline:
        if cluster.live_supervisor(layout) is None and not any(
                cluster.live_slot(layout, s) for s in range(config.slots)):
            return f"stopped the cluster on {layout.root}"
        time.sleep(0.05)
    raise ClusterError(f"the cluster on {layout.root} did not stop within "
                       f"{config.stop_timeout_ms} ms; pids {pids}")
