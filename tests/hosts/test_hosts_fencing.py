"""A host that stops (SIGSTOP) or whose runner loop is stuck past the lease TTL.

Its jobs move to the other host; when it goes on, etcd refuses every write of its
workers (0 accepted after the take-over), its runners find their lease gone, stop
their workers, exit, and come back as new incarnations: standbys.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from hostcluster import Host, membership, poll, signal_all
from test_hosts_failover import (
    OPTIONS,
    TTL,
    backend_of,
    checkpoint_i,
    job_store,
    running_on,
    submit_tickers,
)

from harunner.store.model import JobState


def late_writes(store: Any, log: Path, jobs: list[str], host: str) -> tuple[int, int]:
    """(tried, accepted) checkpoint writes of `host` beyond the step the new owner resumed
    from: the new owner reads the checkpoint only after its take-over, so a write of
    `host` acknowledged before it is at or below that step, and any write of a later
    step was sent too late (it must be refused). Counted by step, not by the time the
    test noticed the move, which a loaded machine makes late."""
    resumed_from = {}
    for job in jobs:
        resumes = store.get(job).result["resumes"]
        resumed_from[job] = min(i for gen, i, who in resumes if who != host)
    tried = accepted = 0
    for line in log.read_text().splitlines():
        kind, job, who, _gen, step, at = line.split()
        if who != host:
            continue
        tried += kind == "try" and int(step) > resumed_from[job]
        accepted += kind == "ok" and int(step) > resumed_from[job]
    return tried, accepted


def moved_to(store: Any, jobs: list[str], runners: set[int], before: dict[str, int]) -> bool:
    records = running_on(store, jobs, runners)
    return len(records) == len(jobs) and all(r.generation > before[r.job_id] for r in records)


def finish_all(store: Any, jobs: list[str], to: int) -> None:
    for job in jobs:
        record = poll(lambda j=job: (r := store.get(j)).state.finished and r, 90,
                      f"{job} to finish", 0.05)
        assert record.state is JobState.SUCCEEDED and record.result["count"] == to


def test_a_stopped_host_is_fenced_and_rejoins_as_standby(
        etcd1: Any, make_host: Any, tmp_path: Path) -> None:
    backend, log = backend_of(etcd1), tmp_path / "ticks.log"
    a: Host = make_host("host-a", backend, **OPTIONS)
    b: Host = make_host("host-b", backend, **OPTIONS)
    store = job_store(etcd1, tmp_path)
    a.start()
    a_runners = set(a.wait_up(etcd1.endpoints))
    jobs = submit_tickers(store, 4, 300, log)
    poll(lambda: len(running_on(store, jobs, a_runners)) == 4, 30, "host-a to run all 4")
    b.start()
    b_runners = set(b.wait_up(etcd1.endpoints))
    poll(lambda: all(checkpoint_i(store, j) >= 5 for j in jobs), 30, "checkpoints on host-a")
    before = {j: store.get(j).generation for j in jobs}
    stopped = a.pause()
    poll(lambda: moved_to(store, jobs, b_runners, before), TTL + 10, "jobs to move to host-b",
         0.01)
    signal_all(stopped, signal.SIGCONT)
    watcher = membership(etcd1.endpoints)
    rejoined = poll(lambda: len(r := a.runners(watcher.members()[0])) == 2 and r, 60,
                    "host-a's runners back as new incarnations")
    assert not set(rejoined) & a_runners
    finish_all(store, jobs, 300)
    tried, accepted = late_writes(store, log, jobs, "host-a")
    print(f"host-a after SIGCONT: {tried} checkpoint writes tried, {accepted} accepted")
    assert accepted == 0
    for job in jobs:
        resumes = store.get(job).result["resumes"]
        assert [host for _, _, host in resumes][-1] == "host-b"


def test_a_runner_loop_stuck_past_its_ttl_loses_its_lease(
        etcd1: Any, make_host: Any, tmp_path: Path) -> None:
    """The keep-alive comes from the loop: a stuck loop (its process alive, its workers
    writing) must lose the lease; a keep-alive thread would keep it for ever."""
    backend, log = backend_of(etcd1), tmp_path / "ticks.log"
    slow = {**OPTIONS, "slots": 1, "hang_timeout_ms": 10000,  # the supervisor does not kill it
            "heartbeat_ms": 100}  # 10 turns a second: the failpoint below counts turns
    a: Host = make_host("host-a", backend, **slow)
    b: Host = make_host("host-b", backend, **OPTIONS)
    store = job_store(etcd1, tmp_path)
    a.start(HARUNNER_FAILPOINTS="hosts.turn=sleep:8@80")  # about 8 s after its start
    a_runners = set(a.wait_up(etcd1.endpoints))
    jobs = submit_tickers(store, 2, 700, log)
    poll(lambda: len(running_on(store, jobs, a_runners)) == 2, 30, "host-a to run both")
    before = {j: store.get(j).generation for j in jobs}
    b.start()
    b_runners = set(b.wait_up(etcd1.endpoints))
    poll(lambda: moved_to(store, jobs, b_runners, before), 40, "jobs to move to host-b", 0.01)
    finish_all(store, jobs, 700)
    tried, accepted = late_writes(store, log, jobs, "host-a")
    print(f"host-a after the take-over: {tried} checkpoint writes tried, {accepted} accepted")
    assert accepted == 0 and tried > 0  # its workers went on writing: etcd refused them
