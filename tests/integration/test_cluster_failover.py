"""SIGKILL and SIGSTOP against a real cluster: takeover, resume, fencing."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from harunner.store import JobState

from .conftest import alive, poll

pytestmark = pytest.mark.integration


def acks_of(path) -> list[tuple[int, int, int, int]]:
    """The acknowledged checkpoints, in the order they were acknowledged."""
    if not path.exists():
        return []
    return [tuple(map(int, line.split())) for line in path.read_text().splitlines()]


def assert_fenced_order(acks: list[tuple[int, int, int, int]]) -> None:
    """No write of an older generation was acknowledged after a newer one."""
    highest = 0
    for generation, _seq, _i, _pid in acks:
        assert generation >= highest, f"stale write acknowledged: {acks}"
        highest = generation


def test_sigkill_of_the_owner_resumes_from_the_last_checkpoint(make_cluster):
    """20 kills at random moments: the job resumes at generation + 1 and ends correct."""
    rng = random.Random(int(os.environ.get("HARUNNER_SEED", "4242")))
    cluster = make_cluster()
    cluster.start()
    for run in range(20):
        acks = cluster.root / f"acks-{run}.txt"
        job = cluster.submit("itjobs.ticker", to=40, delay=0.005, acks=str(acks))
        target = rng.randint(1, 30)
        poll(lambda: cluster.checkpoint_i(job) >= target, 30,  # noqa: B023
             f"run {run}: i >= {target}")
        before = cluster.record(job)
        _, pid = cluster.owner_pid(job)
        acked = cluster.checkpoint_i(job)
        os.kill(pid, signal.SIGKILL)
        final = cluster.finished(job)
        assert final.state is JobState.SUCCEEDED, final
        assert final.result["count"] == 40
        assert final.generation >= before.generation + 1
        resumed_from = [i for generation, i in final.result["resumes"]
                        if generation > before.generation]
        assert resumed_from and resumed_from[0] >= acked, (final.result, acked)
        assert_fenced_order(acks_of(acks))
        cluster.wait_up()


def test_sigkill_of_a_standby_does_not_disturb_the_job(make_cluster):
    cluster = make_cluster()
    cluster.start()
    job = cluster.submit("itjobs.ticker", to=60, delay=0.01)
    poll(lambda: cluster.checkpoint_i(job) >= 5, 30, "job started")
    owner_slot, _ = cluster.owner_pid(job)
    generation = cluster.record(job).generation
    standby = next(s for s in range(3) if s != owner_slot)
    os.kill(cluster.runner_pid(standby), signal.SIGKILL)
    final = cluster.finished(job)
    assert final.state is JobState.SUCCEEDED
    assert final.generation == generation
    cluster.wait_up()


def test_sigkill_of_two_of_three_slots_waits_for_a_majority(make_cluster):
    """With two slots gone nothing is decided unsafely; after respawn the job resumes."""
    cluster = make_cluster(respawn_backoff_ms=800)
    cluster.start()
    job = cluster.submit("itjobs.ticker", to=80, delay=0.01)
    poll(lambda: cluster.checkpoint_i(job) >= 5, 30, "job started")
    owner_slot, owner_pid = cluster.owner_pid(job)
    other = next(s for s in range(3) if s != owner_slot)
    generation = cluster.record(job).generation
    os.kill(cluster.runner_pid(other), signal.SIGKILL)
    os.kill(owner_pid, signal.SIGKILL)
    alone_until = time.monotonic() + 0.5  # respawns come after 800 ms: one slot is alone
    while time.monotonic() < alone_until:
        assert cluster.record(job).generation == generation, "decided without a majority"
        time.sleep(0.01)
    final = cluster.finished(job)
    assert final.state is JobState.SUCCEEDED and final.result["count"] == 80
    assert final.generation > generation


def test_sigstop_past_the_hang_timeout_fails_over_and_fences_the_old_owner(make_cluster):
    """The paused owner's worker keeps running; once the job is taken over, none of its
    writes is accepted, and after SIGCONT no copy of the job is left in the old owner."""
    cluster = make_cluster()
    cluster.start()
    job = cluster.submit("itjobs.ticker", to=400, delay=0.005, acks=str(cluster.acks))
    poll(lambda: cluster.checkpoint_i(job) >= 5, 30, "job started")
    before = cluster.record(job)
    _, pid = cluster.owner_pid(job)
    os.kill(pid, signal.SIGSTOP)
    try:
        poll(lambda: cluster.record(job).generation > before.generation, 10, "takeover")
        poll(lambda: len([a for a in acks_of(cluster.acks) if a[0] > before.generation]) >= 20,
             10, "the new owner to make progress while the old one is still paused")
    finally:
        os.kill(pid, signal.SIGCONT)
    continued = time.monotonic()
    old_workers = {p for g, _s, _i, p in acks_of(cluster.acks) if g == before.generation}
    poll(lambda: not any(alive(p) for p in old_workers), 1.0,
         "the old owner's copy of the job to stop within 1 s of SIGCONT")
    assert time.monotonic() - continued < 1.0
    final = cluster.finished(job)
    assert final.state is JobState.SUCCEEDED and final.result["count"] == 400
    acks = acks_of(cluster.acks)
    first_new = next(n for n, a in enumerate(acks) if a[0] > before.generation)
    stale = [a for a in acks[first_new:] if a[0] <= before.generation]
    assert stale == [], f"{len(stale)} writes of the old owner accepted after the takeover"
    assert_fenced_order(acks)


def test_sigstop_for_half_the_hang_timeout_is_no_failover(make_cluster):
    cluster = make_cluster()
    cluster.start()
    job = cluster.submit("itjobs.ticker", to=150, delay=0.01)
    poll(lambda: cluster.checkpoint_i(job) >= 5, 30, "job started")
    generation = cluster.record(job).generation
    _, pid = cluster.owner_pid(job)
    os.kill(pid, signal.SIGSTOP)
    time.sleep(cluster.config.hang_timeout_ms / 2000)  # the pause itself is the stimulus
    os.kill(pid, signal.SIGCONT)
    final = cluster.finished(job)
    assert final.state is JobState.SUCCEEDED
    assert final.generation == generation, "a half-timeout pause caused a failover"


def test_a_runner_owning_many_jobs_dies_and_each_is_taken_over_exactly_once(make_cluster):
    cluster = make_cluster(concurrency=12)  # each runner claims what its 12 workers can run
    cluster.start()
    jobs = [cluster.submit("itjobs.ticker", to=300, delay=0.01) for _ in range(30)]
    poll(lambda: all(cluster.record(j).state is JobState.RUNNING for j in jobs), 60,
         "all jobs claimed", 0.05)
    poll(lambda: any(cluster.checkpoint_i(j) >= 1 for j in jobs), 60, "jobs running", 0.05)
    owners = {j: cluster.record(j).owner for j in jobs}
    victim = max({o.slot for o in owners.values()},
                 key=lambda s: sum(o.slot == s for o in owners.values()))
    orphans = [j for j, o in owners.items() if o.slot == victim]  # running or queued there
    os.kill(cluster.runner_pid(victim), signal.SIGKILL)
    finals = {j: cluster.finished(j, timeout=120) for j in jobs}
    assert all(f.state is JobState.SUCCEEDED and f.result["count"] == 300
               for f in finals.values())
    assert sorted(finals[j].generation for j in orphans) == [2] * len(orphans)
    assert all(finals[j].generation == 1 for j in jobs if j not in orphans)
