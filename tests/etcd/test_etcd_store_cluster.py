"""The etcd backend on three members: the leader SIGKILLed while jobs move, nothing
acknowledged lost, nothing applied twice.

A store with all three endpoints submits jobs with explicit ids (so a call whose
outcome stays unknown can be made again safely), assigns them and checkpoints
them, one call at a time; the leader is SIGKILLed in the middle. A call that
raises is tried again until etcd answers (the caller's retry, as a runner's next
turn would). Afterwards every acknowledged call is there in etcd: each job in
its acknowledged state at generation 1 (assigned once), with its acknowledged
checkpoint.
"""

from __future__ import annotations

import time
import uuid
from functools import partial
from pathlib import Path

import pytest

from harunner.errors import StaleTransitionError, StoreError
from harunner.store import JobState, Owner
from harunner.store.etcd.store import EtcdStore

pytestmark = pytest.mark.integration
JOBS = 40
A = Owner(0, 1)


def until_answered(call, deadline: float):  # noqa: ANN001, ANN201
    """`call()` again and again while etcd cannot answer (bounded by `deadline`)."""
    while True:
        try:
            return call()
        except StaleTransitionError:
            raise
        except StoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_a_leader_loss_loses_no_acknowledged_change(etcd_cluster3, tmp_path: Path) -> None:  # noqa: ANN001
    store = EtcdStore(etcd_cluster3.endpoints, tmp_path, cluster=f"c{uuid.uuid4().hex[:8]}",
                      timeout=2.0)
    deadline = time.monotonic() + 60
    acked: dict[str, str] = {}
    for index in range(JOBS):
        if index == JOBS // 2:
            etcd_cluster3.kill_leader()
        job = f"job-{index:03d}"
        until_answered(partial(store.submit, "jobs.demo", {"i": index}, job_id=job), deadline)
        acked[job] = "submitted"
        try:
            until_answered(partial(store.assign, job, A, 0), deadline)
        except StaleTransitionError:
            assert store.get(job).generation == 1, "assigned twice"  # our unknown outcome
        acked[job] = "assigned"
        until_answered(partial(store.write_checkpoint, job, 1, {"i": index}), deadline)
        acked[job] = "checkpointed"
    reader = EtcdStore(etcd_cluster3.endpoints, tmp_path / "r", cluster=store.keys.cluster)
    for job in acked:
        record = reader.get(job)
        assert (record.state, record.generation, record.owner) == (JobState.RUNNING, 1, A)
        assert [entry.split()[1] for entry in record.history] == ["pending@0", "running@1"]
        assert reader.read_checkpoint(job).state == {"i": int(job[4:])}
    assert len(reader.running()) == JOBS and reader.count_unfinished() == JOBS
