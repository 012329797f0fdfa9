"""One soak run: keep hash-chain jobs flowing while the nemesis strikes, then check the history.

The driver keeps `in_flight` jobs unfinished (submitting a new one when one
ends), injects faults until it has `faults` of them (or `max_seconds` pass),
then lets the cluster settle: every job must finish within `settle_seconds`
of the last fault, else it is reported stuck. The verdict is
`history.check` over the trace file and the store's final records.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harunner.errors import HarunnerError

from .history import Final, Report, check
from .nemesis import Nemesis

JOB = "soakjobs.chain"


@dataclass(frozen=True)
class Plan:
    """What one soak does."""

    seed: int
    faults: int
    max_seconds: float
    in_flight: int = 6
    steps: int = 120
    delay: float = 0.005
    settle_seconds: float = 90.0


@dataclass
class Outcome:
    report: Report
    seconds: float
    faults: int


def run(cluster: Any, plan: Plan, trace: Path, disk: Path | None,
        kill_all: Callable[[], None], log: Callable[[str], None]) -> Outcome:
    """Start `cluster`, run the plan against it, and check what happened."""
    nemesis = Nemesis(cluster, random.Random(plan.seed), trace, disk, kill_all, log)
    jobs: dict[str, int] = {}
    open_jobs: set[str] = set()
    cluster.start()
    began = time.monotonic()
    while len(nemesis.faults) < plan.faults and time.monotonic() - began < plan.max_seconds:
        _top_up(cluster, plan, trace, jobs, open_jobs, log)
        nemesis.step()
        elapsed = time.monotonic() - began
        nemesis.pause(hurry=elapsed > 0.75 * plan.max_seconds * len(nemesis.faults) / plan.faults)
    seconds = time.monotonic() - began
    log(f"nemesis stopped after {len(nemesis.faults)} faults in {seconds:.1f} s; settling")
    _settle(cluster, open_jobs, plan.settle_seconds)
    finals = {job_id: _final(cluster, job_id) for job_id in jobs}
    report = check(read_trace(trace), finals, jobs, nemesis.faults, nemesis.times)
    return Outcome(report, seconds, len(nemesis.faults))


def read_trace(path: Path) -> list[dict[str, Any]]:
    """Every complete line of the trace file, in file order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _top_up(cluster: Any, plan: Plan, trace: Path, jobs: dict[str, int],
            open_jobs: set[str], log: Callable[[str], None]) -> None:
    """Drop finished jobs from `open_jobs` and submit until `in_flight` are open."""
    try:
        for job_id in list(open_jobs):
            if cluster.record(job_id).state.finished:
                open_jobs.discard(job_id)
        while len(open_jobs) < plan.in_flight:
            job_id = cluster.submit(JOB, steps=plan.steps, trace=str(trace), delay=plan.delay)
            jobs[job_id] = plan.steps
            open_jobs.add(job_id)
    except (HarunnerError, OSError) as error:  # a full disk or a lock held by a paused runner
        log(f"submission deferred: {type(error).__name__}: {error}")


def _settle(cluster: Any, open_jobs: set[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while open_jobs and time.monotonic() < deadline:
        for job_id in list(open_jobs):
            try:
                if cluster.record(job_id).state.finished:
                    open_jobs.discard(job_id)
            except (HarunnerError, OSError):
                pass
        time.sleep(0.05)


def _final(cluster: Any, job_id: str) -> Final | None:
    """What the store holds for `job_id` now (None if it cannot be read)."""
    try:
        record = cluster.record(job_id)
        checkpoint = cluster.store.read_checkpoint(job_id)
    except (HarunnerError, OSError):
        return None
    state = checkpoint.state if checkpoint else {}
    return Final(record.state.value, record.result, record.generation,
                 checkpoint.generation if checkpoint else None,
                 int(state["i"]) if "i" in state else None, state.get("h"))
