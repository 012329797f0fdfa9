"""The soak's checker catches each broken variant on a real cluster, not only on paper.

Each test switches one mutant of soakjobs.py on in the cluster's environment,
injects the fault that exposes it, and expects the checker to name the
anomaly class: `nofence` (the store's generation check off in the workers)
gives accepted stale writes while a runner is paused past the hang timeout;
`older` (a resumed run starts from the checkpoint before the last) gives a
resumption from an older checkpoint after the owner is killed. The final
hash is right in both cases: only the history shows what went wrong.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from harunner.polling import wait_until

from .driver import JOB, read_trace
from .history import check

pytestmark = pytest.mark.integration
MUTANT_ENV = "HARUNNER_SOAK_MUTANT"
STEPS = 2000


def _expose(cluster, job: str, fault: str, trace, kind: str) -> set[str]:  # noqa: ANN001
    """Strike the job's owner once; the anomaly kinds the checker then finds."""
    before = wait_until(lambda: (r := cluster.record(job)).owner and r, 20, "an owner")
    start = cluster.checkpoint_i(job)
    wait_until(lambda: cluster.checkpoint_i(job) >= start + 5, 20, "five more steps")
    pid = cluster.runner_pid(before.owner.slot)
    if fault == "kill":
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: cluster.record(job).generation > before.generation, 20, "a takeover")
        wait_until(lambda: cluster.checkpoint_i(job) > start + 10, 20, "the new owner writing")
    else:
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_until(lambda: cluster.record(job).generation > before.generation, 20,
                       "a takeover of the paused runner's job")
            wait_until(lambda: kind in _kinds(trace, job), 1.0, kind, 0.02)
        except TimeoutError:
            pass
        finally:
            os.kill(pid, signal.SIGCONT)
    return _kinds(trace, job)


def _kinds(trace, job: str) -> set[str]:  # noqa: ANN001
    return check(read_trace(trace), {job: None}, {job: STEPS}).kinds()


@pytest.mark.parametrize(("mutant", "fault", "kind"), [("nofence", "stop", "stale-write"),
                                                       ("older", "kill", "resumed-older")])
def test_the_checker_catches_a_broken_variant_on_a_real_cluster(soak_site, mutant, fault,  # noqa: ANN001
                                                                kind) -> None:
    site = soak_site()
    cluster = site.cluster
    cluster.start(env={MUTANT_ENV: mutant})
    job = cluster.submit(JOB, steps=STEPS, trace=str(site.trace), delay=0.005)
    found: set[str] = set()
    deadline = time.monotonic() + 60
    while kind not in found and time.monotonic() < deadline:
        found = _expose(cluster, job, fault, site.trace, kind)
        cluster.wait_up()
    assert kind in found, f"the checker missed mutant {mutant}: found {found}"


def test_the_same_faults_without_a_mutant_are_clean(soak_site) -> None:  # noqa: ANN001
    site = soak_site()
    cluster = site.cluster
    cluster.start(env={MUTANT_ENV: ""})
    job = cluster.submit(JOB, steps=STEPS, trace=str(site.trace), delay=0.005)
    for fault in ("stop", "kill", "stop"):
        assert _expose(cluster, job, fault, site.trace, "stale-write") == set()
        cluster.wait_up()
