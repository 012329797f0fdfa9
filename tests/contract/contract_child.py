"""Child process of the contract suite (run as a script, never imported by pytest).

SPEC is the JSON of `conftest.Backend.spec` (which backend, where, which mutant).

    contract_child.py show SPEC JOB
        print the job's record as JSON (a fresh process reads what was acknowledged)
    contract_child.py race SPEC JOB WRITER SECONDS
        raise the job's generation by one again and again as owner (WRITER, 1), printing
        "won <generation>" per take-over the store accepted
    contract_child.py sweep SPEC JOB GENERATION COUNT
        write checkpoints {"value": 1..COUNT}, printing "ack <seq> <value>" after each
    contract_child.py batches SPEC SIZE COUNT
        COUNT times: submit_many SIZE jobs {"batch": i}, assign_many them, finish_many them,
        printing "ack submit|assign|finish <i>" after each call returns
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mutants import open_backend  # noqa: E402

from harunner.errors import StaleTransitionError  # noqa: E402
from harunner.store import Assignment, Outcome, Owner, Submission  # noqa: E402
from harunner.store.model import record_to_dict  # noqa: E402


def show(spec: str, job: str) -> None:
    store = open_backend(json.loads(spec))
    print(json.dumps(record_to_dict(store.get(job))), flush=True)


def race(spec: str, job: str, writer: str, seconds: str) -> None:
    store = open_backend(json.loads(spec))
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        generation = store.get(job).generation + 1
        try:
            store.take_over(job, generation, Owner(int(writer), 1))
        except StaleTransitionError:
            continue
        print(f"won {generation}", flush=True)


def sweep(spec: str, job: str, generation: str, count: str) -> None:
    store = open_backend(json.loads(spec))
    for value in range(1, int(count) + 1):
        seq = store.write_checkpoint(job, int(generation), {"value": value})
        print(f"ack {seq} {value}", flush=True)


def batches(spec: str, size: str, count: str) -> None:
    store = open_backend(json.loads(spec))
    me = Owner(0, 1)
    for batch in range(1, int(count) + 1):
        records = store.submit_many([Submission("jobs.demo", {"batch": batch, "k": k})
                                     for k in range(int(size))])
        print(f"ack submit {batch}", flush=True)
        store.assign_many([Assignment(r.job_id, me, 0) for r in records])
        print(f"ack assign {batch}", flush=True)
        store.finish_many([Outcome(r.job_id, 1, result=batch) for r in records])
        print(f"ack finish {batch}", flush=True)


COMMANDS = {"show": show, "race": race, "sweep": sweep, "batches": batches}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
