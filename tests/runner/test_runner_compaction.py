"""Compaction of a runner's Paxos votes: every job's instances closed, in one durable write.

Catches: a compaction that persists the acceptor's state once per job (after a take-over
of hundreds of jobs, one fsync'd write each stalled the new owner's loop for hundreds of
milliseconds, long enough to be judged paused), and one that closes an instance at or
above a running job's current generation (the next take-over of that job must still be
decidable).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from harunner.paxos import Ballot
from harunner.paxos.acceptor import AcceptorState, Vote
from harunner.runner import consensus as consensus_module
from harunner.runner.compaction import compact
from harunner.runner.consensus import Consensus
from harunner.store import Assignment, Owner, Store, Submission
from harunner.store.layout import Layout


def test_a_compaction_of_many_jobs_persists_once_and_keeps_current_instances(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path)
    ids = [r.job_id for r in store.submit_many([Submission("a.x", {})] * 50)]
    store.assign_many([Assignment(job, Owner(0, 1), 0) for job in ids])
    for job in ids:
        store.take_over(job, 3, Owner(1, 1))  # running at generation 3
    store.finish(ids[0], 3, result=1)  # finished: its generation 3 closes too
    node = Consensus(1, (0, 1, 2), Layout(tmp_path), "c", lambda slot, frame: True, 1.0)
    votes = {(job, g): Vote(promised=Ballot(1, 0)) for job in ids for g in (2, 3)}
    node.node.acceptor.state = AcceptorState(votes=votes)
    writes = []
    save = consensus_module.paxos_files.save_acceptor
    monkeypatch.setattr(consensus_module.paxos_files, "save_acceptor",
                        lambda path, state: writes.append(state) or save(path, state))
    compact(node, store, 0.0, random.Random(1))
    assert len(writes) == 1
    left = set(node.node.acceptor_state.votes)
    assert left == {(job, 3) for job in ids[1:]}
    compact(node, store, 0.0, random.Random(1))
    assert len(writes) == 1  # nothing rose: nothing written
