"""etcd's own failures under running hosts, and a restart of everything.

(d) SIGKILL the Raft leader of a three-member etcd mid-run: the jobs go on and end,
    and nothing acknowledged is lost (no resume from below an acknowledged step).
(e) Stop every host and etcd, start them again: the jobs resume from their
    checkpoints (their owners' incarnations are gone: the new runners take them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hostcluster import Host, poll
from test_hosts_failover import backend_of, checkpoint_i, job_store, running_on, submit_tickers

from harunner.errors import StoreError
from harunner.store.model import JobState

OPTIONS: dict[str, Any] = {"slots": 2, "concurrency": 2, "lease_ttl": 5, "prefetch": 0}


def acknowledged(log: Path) -> dict[tuple[str, int], int]:
    """The highest step each (job, generation) had acknowledged."""
    best: dict[tuple[str, int], int] = {}
    for line in log.read_text().splitlines():
        kind, job, _host, gen, step, _at = line.split()
        if kind == "ok":
            key = (job, int(gen))
            best[key] = max(best.get(key, 0), int(step))
    return best


def assert_nothing_acknowledged_lost(store: Any, jobs: list[str], log: Path, to: int) -> None:
    acks = acknowledged(log)
    for job in jobs:
        record = poll(lambda j=job: (r := store.get(j)).state.finished and r, 120,
                      f"{job} to finish", 0.05)
        assert record.state is JobState.SUCCEEDED and record.result["count"] == to, record
        for generation, resumed_from, _host in record.result["resumes"]:
            earlier = [step for (j, g), step in acks.items() if j == job and g < generation]
            assert resumed_from >= max(earlier, default=0), (job, generation, resumed_from)


def submit_until_acknowledged(store: Any, job_id: str, log: Path) -> str:
    """Submit during the election: a refusal or an unknown outcome is not acknowledged, so
    submit again (the explicit id makes a second submission of an applied one harmless)."""
    def attempt() -> str | None:
        try:
            return store.submit("hostjobs.ticker", {"to": 100, "delay": 0.02, "log": str(log)},
                                retries=3, job_id=job_id).job_id  # type: ignore[no-any-return]
        except StoreError:
            return None
    return poll(attempt, 30, f"{job_id} acknowledged", 0.05)  # type: ignore[no-any-return]


def test_the_etcd_leader_killed_mid_run(etcd3: Any, make_host: Any, tmp_path: Path) -> None:
    backend, log = backend_of(etcd3), tmp_path / "ticks.log"
    a: Host = make_host("host-a", backend, **OPTIONS)
    b: Host = make_host("host-b", backend, **OPTIONS)
    store = job_store(etcd3, tmp_path)
    a.start()
    b.start()
    runners = set(a.wait_up(etcd3.endpoints)) | set(b.wait_up(etcd3.endpoints))
    jobs = submit_tickers(store, 6, 300, log)
    poll(lambda: len(running_on(store, jobs, runners)) >= 4, 30, "jobs running")
    poll(lambda: sum(checkpoint_i(store, j) >= 10 for j in jobs) >= 4, 30, "checkpoints")
    etcd3.kill_leader()
    more = [submit_until_acknowledged(store, f"during-election-{n}", log) for n in range(2)]
    assert_nothing_acknowledged_lost(store, jobs, log, 300)
    assert_nothing_acknowledged_lost(store, more, log, 100)


def test_everything_restarted_resumes_the_jobs(etcd1: Any, make_host: Any,
                                               tmp_path: Path) -> None:
    backend, log = backend_of(etcd1), tmp_path / "ticks.log"
    a: Host = make_host("host-a", backend, **OPTIONS)
    b: Host = make_host("host-b", backend, **OPTIONS)
    store = job_store(etcd1, tmp_path)
    a.start()
    b.start()
    runners = set(a.wait_up(etcd1.endpoints)) | set(b.wait_up(etcd1.endpoints))
    jobs = submit_tickers(store, 4, 400, log)
    poll(lambda: len(running_on(store, jobs, runners)) == 4, 30, "all 4 running")
    poll(lambda: all(checkpoint_i(store, j) >= 10 for j in jobs), 30, "checkpoints")
    a.stop()
    b.stop()
    member = etcd1.members[0]
    member.stop()
    etcd1.restart_member(member)
    store = job_store(etcd1, tmp_path)
    stopped_at = {j: checkpoint_i(store, j) for j in jobs}
    assert all(store.get(j).state is JobState.RUNNING for j in jobs)
    a.start()
    b.start()
    assert_nothing_acknowledged_lost(store, jobs, log, 400)
    for job in jobs:
        resumes = store.get(job).result["resumes"]
        assert resumes[-1][1] >= stopped_at[job] > 0, resumes  # from the checkpoint
