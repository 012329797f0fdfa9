"""Two harunner hosts (state directories and supervisors on this machine) sharing one etcd.

(a) SIGKILL every process of one host: its jobs resume on the other host from their
    checkpoints within the lease TTL plus a second.
(c) SIGKILL one runner of a host whose other runner lives: its peer revokes the dead
    runner's lease at once (pidfd), so its jobs move long before the TTL would.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hostcluster import Host, membership, poll

from harunner import config
from harunner.store.backends import open_store
from harunner.store.model import JobState

TTL = 2
OPTIONS: dict[str, Any] = {"slots": 2, "concurrency": 2, "lease_ttl": TTL, "prefetch": 0}


def backend_of(cluster: Any) -> str:
    return "etcd://" + ",".join(url.removeprefix("http://") for url in cluster.endpoints)


def job_store(cluster: Any, tmp_path: Path) -> Any:
    cfg = config.load(overrides={"backend": backend_of(cluster),
                                 "state_dir": str(tmp_path / "client")}, env={})
    store = open_store(cfg)
    store.init()
    return store


def submit_tickers(store: Any, count: int, to: int, log: Path) -> list[str]:
    return [store.submit("hostjobs.ticker", {"to": to, "delay": 0.02, "log": str(log)}).job_id
            for _ in range(count)]


def running_on(store: Any, jobs: list[str], incarnations: set[int]) -> list[Any]:
    records = [store.get(job) for job in jobs]
    return [r for r in records if r.state is JobState.RUNNING and r.owner is not None
            and r.owner.incarnation in incarnations]


def checkpoint_i(store: Any, job_id: str) -> int:
    checkpoint = store.read_checkpoint(job_id)
    return 0 if checkpoint is None else int(checkpoint.state.get("i", 0))


def test_host_loss_resumes_its_jobs_elsewhere_within_ttl_plus_a_second(
        etcd1: Any, make_host: Any, tmp_path: Path) -> None:
    backend = backend_of(etcd1)
    a: Host = make_host("host-a", backend, **OPTIONS)
    b: Host = make_host("host-b", backend, **OPTIONS)
    store = job_store(etcd1, tmp_path)
    a.start()
    a_runners = set(a.wait_up(etcd1.endpoints))
    jobs = submit_tickers(store, 4, 250, tmp_path / "ticks.log")
    poll(lambda: len(running_on(store, jobs, a_runners)) == 4, 30, "host-a to run all 4")
    b.start()
    b_runners = set(b.wait_up(etcd1.endpoints))
    poll(lambda: all(checkpoint_i(store, j) >= 5 for j in jobs), 30, "checkpoints on host-a")
    before = {j: store.get(j).generation for j in jobs}
    killed = a.kill()
    moved: dict[str, float] = {}

    def all_moved() -> bool:
        for record in running_on(store, [j for j in jobs if j not in moved], b_runners):
            if record.generation > before[record.job_id]:
                moved[record.job_id] = time.monotonic() - killed
        return len(moved) == len(jobs)

    poll(all_moved, TTL + 10, "host-a's jobs to move to host-b", 0.01)
    assert max(moved.values()) <= TTL + 1.0, moved
    for job in jobs:
        record = poll(lambda j=job: (r := store.get(j)).state.finished and r, 60,
                      f"{job} to finish", 0.05)
        assert record.state is JobState.SUCCEEDED, record
        result = record.result
        assert result["count"] == 250
        hosts = [host for _, _, host in result["resumes"]]
        assert hosts[0] == "host-a" and hosts[-1] == "host-b"
        assert result["resumes"][-1][1] >= 5  # resumed from its checkpoint, not from 0
    assert not membership(etcd1.endpoints).members()[0].keys() & a_runners


def test_a_runner_crash_is_acted_on_by_its_local_peer_at_once(
        etcd1: Any, make_host: Any, tmp_path: Path) -> None:
    ttl = 8  # a take-over after the TTL would come far too late for the check below
    a: Host = make_host("host-a", backend_of(etcd1), **{**OPTIONS, "lease_ttl": ttl})
    store = job_store(etcd1, tmp_path)
    a.start()
    runners = a.wait_up(etcd1.endpoints)
    jobs = submit_tickers(store, 2, 400, tmp_path / "ticks.log")
    poll(lambda: len(running_on(store, jobs, set(runners))) == 2, 30, "both jobs running")
    poll(lambda: all(checkpoint_i(store, j) >= 3 for j in jobs), 30, "checkpoints")
    victim = store.get(jobs[0]).owner
    assert victim is not None
    pid = runners[victim.incarnation].pid
    import os
    import signal

    before = store.get(jobs[0]).generation
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    survivors = set(runners) - {victim.incarnation}
    poll(lambda: (r := store.get(jobs[0])).generation > before and r.owner is not None
         and r.owner.incarnation in survivors, ttl, "the peer to take the job over", 0.005)
    took = time.monotonic() - killed
    assert took < ttl / 2, f"taken over after {took:.3f} s: the lease ran out, no fast path"
    record = poll(lambda: (r := store.get(jobs[0])).state.finished and r, 60, "finish", 0.05)
    assert record.state is JobState.SUCCEEDED and record.result["count"] == 400
