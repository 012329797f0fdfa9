"""The soak's history checker on synthetic histories: quiet on legal ones, loud on each anomaly."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from .history import Final, check, expected_chain, stall_figures, stalls_by_fault

JOB = "job-1"
STEPS = 6
CHAIN = expected_chain(JOB, STEPS)


class History:
    """Builds trace lines as the hash-chain job writes them."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.clock = 0.0

    def line(self, kind: str, gen: int, pid: int, **fields: Any) -> History:
        self.clock += 0.01
        self.lines.append({"kind": kind, "job": JOB, "gen": gen, "attempt": 1, "pid": pid,
                           "mono": self.clock, "wall": self.clock, **fields})
        return self

    def start(self, gen: int, pid: int, step: int) -> History:
        return self.line("start", gen, pid, step=step, h=CHAIN[step])

    def write(self, gen: int, pid: int, step: int, ack: bool = True) -> History:
        self.line("write", gen, pid, step=step, prev=CHAIN[step - 1], new=CHAIN[step])
        return self.line("ack", gen, pid, step=step, seq=step) if ack else self

    def run(self, gen: int, pid: int, start: int, upto: int, ack_last: bool = True) -> History:
        self.start(gen, pid, start)
        for step in range(start + 1, upto + 1):
            self.write(gen, pid, step, ack=ack_last or step < upto)
        return self

    def ret(self, gen: int, pid: int) -> History:
        return self.line("return", gen, pid, step=STEPS, h=CHAIN[STEPS])


def final(gen: int, checkpoint_gen: int | None = None, result: str = CHAIN[STEPS],
          state: str = "succeeded", step: int = STEPS) -> Final:
    return Final(state, result, gen, gen if checkpoint_gen is None else checkpoint_gen,
                 step, CHAIN[step])


def kinds(history: History, end: Final | None) -> set[str]:
    return check(history.lines, {JOB: end}, {JOB: STEPS}).kinds()


def test_a_takeover_that_redoes_an_unacknowledged_step_is_legal() -> None:
    history = History().run(1, 100, 0, 4, ack_last=False).run(2, 200, 3, STEPS).ret(2, 200)
    assert kinds(history, final(2)) == set()


def test_resuming_from_a_written_but_unacknowledged_checkpoint_is_legal() -> None:
    history = History().run(1, 100, 0, 4, ack_last=False).run(2, 200, 4, STEPS).ret(2, 200)
    assert kinds(history, final(2)) == set()


def test_a_run_resumed_in_place_after_a_disk_fault_is_legal() -> None:
    history = History().run(1, 100, 0, 3).write(1, 100, 4, ack=False)
    history.line("failed", 1, 100, step=4, error="DiskFullError: disk full")
    history.run(1, 101, 3, STEPS).ret(1, 101)
    assert kinds(history, final(1)) == set()


def test_a_refused_stale_write_is_legal() -> None:
    history = History().run(1, 100, 0, 3).run(2, 200, 3, 4)
    history.write(1, 100, 4, ack=False).line("refused", 1, 100, step=4, error="FencedError")
    history.run(2, 200, 4, STEPS).ret(2, 200)
    assert kinds(history, final(2)) == set()


def test_fencing_off_a_stale_write_accepted_after_the_newer_generation_wrote() -> None:
    history = History().run(1, 100, 0, 3).run(2, 200, 3, 4).write(1, 100, 4)
    history.run(2, 200, 4, STEPS).write(1, 100, 5).ret(2, 200)
    found = check(history.lines, {JOB: final(2, checkpoint_gen=1, step=5)}, {JOB: STEPS})
    assert {"stale-write", "store-stale"} <= found.kinds()
    assert any("generation 1's step 4" in a.detail for a in found.anomalies)


def test_resume_from_an_older_checkpoint_than_the_last_acknowledged() -> None:
    history = History().run(1, 100, 0, 4).run(2, 200, 3, STEPS).ret(2, 200)
    assert kinds(history, final(2)) == {"resumed-older"}


def test_resume_in_place_from_an_older_checkpoint() -> None:
    history = History().run(1, 100, 0, 4).run(1, 101, 2, STEPS).ret(1, 101)
    assert kinds(history, final(1)) == {"resumed-older"}


def test_double_owner_two_runs_of_one_generation_at_once() -> None:
    history = History().run(1, 100, 0, 2).start(1, 300, 2)
    history.write(1, 100, 3).write(1, 300, 3).write(1, 100, 4).write(1, 300, 4)
    history.run(1, 100, 4, STEPS).ret(1, 100)
    assert "double-owner" in kinds(history, final(1))


def test_a_skipped_step() -> None:
    history = History().run(1, 100, 0, 2).run(2, 200, 4, STEPS).ret(2, 200)
    assert kinds(history, final(2)) == {"skipped"}


def test_non_contiguous_steps_within_a_run() -> None:
    history = History().start(1, 100, 0).write(1, 100, 1).write(1, 100, 3)
    history.run(1, 100, 3, STEPS).ret(1, 100)
    assert kinds(history, final(1)) == {"non-contiguous"}


def test_a_hash_off_the_chain() -> None:
    history = History().run(1, 100, 0, STEPS).ret(1, 100)
    history.lines[3]["new"] = "0" * 64
    assert kinds(history, final(1)) == {"bad-hash"}


def test_a_wrong_result_and_a_result_nobody_returned() -> None:
    history = History().run(1, 100, 0, STEPS).ret(1, 100)
    assert kinds(history, final(1, result="nope")) == {"wrong-result"}
    assert kinds(history, final(2, checkpoint_gen=1)) == {"result-without-return"}
    assert kinds(history, final(1, state="failed")) == {"wrong-result"}


def test_unfinished_jobs_are_stuck_and_faults_are_counted() -> None:
    history = History().run(1, 100, 0, 3)
    report = check(history.lines, {JOB: final(1, state="running", step=3), "job-2": None},
                   {JOB: STEPS, "job-2": STEPS}, ["kill_runner", "kill_runner", "fill_disk"])
    assert sorted(report.stuck) == [JOB, "job-2"]
    assert report.faults == {"kill_runner": 2, "fill_disk": 1}
    assert "3 faults" in report.summary()


def test_stall_figures() -> None:
    figures = stall_figures([0.0, 0.1, 0.2, 2.2, 2.3])
    assert figures["max"] == pytest.approx(2.0)
    assert figures["median"] == pytest.approx(0.1)
    assert figures["total_over_1s"] == pytest.approx(2.0)
    assert stall_figures([1.0])["max"] == 0.0
    faults = [(0.15, "kill_worker"), (1.0, "restart_all")]
    assert stalls_by_fault([0.0, 0.1, 0.2, 2.2, 2.3, 5.0], faults) == pytest.approx(
        {"restart_all": 2.0 + 2.7})


def test_the_job_and_the_checker_compute_the_same_chain() -> None:
    path = Path(__file__).parent / "soakjobs" / "soakjobs.py"
    spec = importlib.util.spec_from_file_location("soakjobs_for_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    previous = module.first_hash(JOB)
    for step in range(1, STEPS + 1):
        previous = module.step_hash(previous, step)
    assert previous == CHAIN[STEPS]
