"""A runner woken from SIGSTOP never takes a job or the primary role back (issue 12).

The owner of a checkpointing job is stopped until a standby has taken the
job over, then continued, 20 times, each at a different moment of its loop
(a random delay before the stop, and a random extra time stopped after the
takeover). After every SIGCONT the job and `__scheduler__` are watched for a
while: neither may move to the woken runner, and the healthy new owner must
not lose its worker. At the end logs/events.jsonl is read for the same
thing: no `took_over` by a woken runner and no `lost` by a healthy owner
within two seconds of a SIGCONT. HARUNNER_SEED=<seed> picks the moments.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time

import pytest

from harunner.store import SCHEDULER_JOB

from .conftest import poll

pytestmark = pytest.mark.integration

CYCLES = 20
WATCH = 0.6  # seconds after each SIGCONT: the flap of issue 12 came within 100 ms


def events(cluster) -> list[dict]:
    path = cluster.layout.events
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_woken_owner_takes_nothing_back_from_healthy_peers(make_cluster):
    rng = random.Random(int(os.environ.get("HARUNNER_SEED", "1212")))
    cluster = make_cluster()
    cluster.start()
    job = cluster.submit("itjobs.ticker", to=10**7, delay=0.005)
    poll(lambda: cluster.checkpoint_i(job) >= 5, 30, "job started")
    wakes: list[tuple[float, int, int]] = []  # (wall time of SIGCONT, woken slot, new owner)
    stops: list[float] = []
    for cycle in range(CYCLES):
        woken, pid = cluster.owner_pid(job)
        generation = cluster.record(job).generation
        time.sleep(rng.uniform(0, 0.05))  # the moment of the stop within the loop: varied
        stops.append(time.time())
        os.kill(pid, signal.SIGSTOP)
        try:
            taken = poll(lambda: (r := cluster.record(job)).generation > generation  # noqa: B023
                         and r, 20, f"cycle {cycle}: takeover from slot {woken}")
            stopped_more = time.monotonic() + rng.uniform(0, 0.3)
            while time.monotonic() < stopped_more:  # the pause itself is the stimulus
                time.sleep(0.01)
            primary = cluster.record(SCHEDULER_JOB).generation
        finally:
            os.kill(pid, signal.SIGCONT)
        wakes.append((time.time(), woken, taken.owner.slot))
        watch_until = time.monotonic() + WATCH
        while time.monotonic() < watch_until:
            record, scheduler = cluster.record(job), cluster.record(SCHEDULER_JOB)
            assert record.owner.slot != woken, (
                f"cycle {cycle}: {job} moved back to woken slot {woken}: {record}")
            assert scheduler.generation == primary or scheduler.owner.slot != woken, (
                f"cycle {cycle}: the primary role moved back to woken slot {woken}: {scheduler}")
            time.sleep(0.01)
        cluster.wait_up()
    _check_event_log(events(cluster), wakes, stops[1:] + [float("inf")])


def _check_event_log(log: list[dict], wakes: list[tuple[float, int, int]],
                     next_stops: list[float]) -> None:
    """Until the next stop: no takeover by the woken slot, no loss by the new owner."""
    for (woke_at, woken, new_owner), next_stop in zip(wakes, next_stops, strict=True):
        window = [e for e in log if woke_at <= e["t"] <= min(woke_at + 2.0, next_stop)]
        back = [e for e in window if e["event"] == "took_over" and e["slot"] == woken]
        assert not back, f"woken slot {woken} took over {back}"
        lost = [e for e in window if e["event"] == "lost" and e["slot"] == new_owner]
        assert not lost, f"healthy slot {new_owner} lost {lost} after slot {woken} woke"
