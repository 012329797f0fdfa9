"""A submission rings one runner; one that cannot take the job soon passes the ring on.

A client rings the first runner that takes its datagram (slot 0 while it is
up). With one worker per runner and no queue ahead (`concurrency = 1`,
`prefetch = 0`), slot 0 is kept busy with a long job; each short job then
submitted must be claimed by another runner at once, through the ring slot 0
passes on, not at the others' periodic look (once a second): each must leave
PENDING within CLAIMED_WITHIN seconds. Of JOBS jobs found only by the periodic
look, all would be claimed that fast with a chance of about 0.4 ** JOBS.
"""

from __future__ import annotations

import time

import pytest

from harunner.store import JobState

from .conftest import poll

pytestmark = pytest.mark.integration
JOBS = 6
CLAIMED_WITHIN = 0.4


def test_a_busy_first_runner_passes_each_ring_to_a_free_one(make_cluster):
    cluster = make_cluster(concurrency=1, prefetch=0)
    cluster.start()
    holders: set[int] = set()
    while 0 not in holders:  # slot 0 busy: the runner every submission rings first
        assert len(holders) < cluster.config.slots - 1, f"slot 0 took no sleeper: {holders}"
        sleeper = cluster.submit("itjobs.sleeper", seconds=120)
        record = poll(lambda: (r := cluster.record(sleeper)).state is JobState.RUNNING  # noqa: B023
                      and r, 20, "the sleeper running")
        holders.add(record.owner.slot)
    waits = []
    for _ in range(JOBS):
        job = cluster.submit("itjobs.ticker", to=0)
        submitted = time.monotonic()
        record = poll(lambda: (r := cluster.record(job)).state is not JobState.PENDING  # noqa: B023
                      and r, 20, "the short job claimed", 0.002)
        waits.append(time.monotonic() - submitted)
        assert record.owner is not None and record.owner.slot not in holders
        cluster.finished(job)
    assert max(waits) < CLAIMED_WITHIN, f"claims waited {[round(w, 3) for w in waits]} s"
