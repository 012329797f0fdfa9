"""Compaction of a runner's Paxos votes: drop instances that can never matter again.

An instance below a job's current generation (or at it, once the job has
finished) can never be decided again usefully; a removed job's instances
are all closed. The store is read, the Paxos files are written (persisted
by `Consensus.compact`).
"""

from __future__ import annotations

import random

from harunner.errors import StoreError, UnknownJobError
from harunner.runner.consensus import Consensus
from harunner.store.contract import JobStore


def compact(consensus: Consensus, store: JobStore, now: float, rng: random.Random) -> None:
    """Close every instance of `consensus` below its job's current generation, in one
    persisted state (one file write, not one per job: a take-over of hundreds of jobs
    leaves that many instances, and a write each stalled the loop for hundreds of ms)."""
    below: dict[str, int] = {}
    for job_id in consensus.instances():
        try:
            record = store.get(job_id)
        except UnknownJobError:  # the job was removed: none of its instances matters
            below[job_id] = 1 + max(g for j, g in consensus.node.acceptor_state.votes
                                    if j == job_id)
            continue
        except StoreError:
            continue
        below[job_id] = record.generation + 1 if record.state.finished else record.generation
    consensus.compact(below, now, rng)
