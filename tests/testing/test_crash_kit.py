"""The crash-test kit on real processes: it catches the unsafe ledger, passes the safe one.

Every run here forks real child processes, SIGKILLs them for real and
resumes the job through a real Store; the checks are on what the kit saw
(killed by SIGKILL, where, resumed from which checkpoint) and on its verdict.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harunner.errors import JobDefinitionError
from harunner.testing import (
    CrashTestFailure,
    KillPoint,
    crash_test,
    kill_points,
    run_crash_test,
)
from harunner.testing.report import AFTER, BEFORE, BETWEEN

JOBS = Path(__file__).resolve().parents[2] / "jobs"
sys.path.insert(0, str(JOBS))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import crash_jobs  # noqa: E402
import ledger  # noqa: E402

LEDGER = {"path": "{workdir}/ledger.txt", "lines": 5}


def lines_of(workdir: Path) -> list[str]:
    path = workdir / "ledger.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_catches_the_unsafe_ledger_and_names_the_first_kill_point() -> None:
    report = run_crash_test(ledger.append_unsafe, LEDGER, lines_of, points=0)
    assert not report.passed
    assert report.reference.observed == [f"line {n}" for n in range(1, 6)]
    first = report.first_failure
    assert first is not None and first.point == KillPoint(BEFORE, 1)
    assert first.killed and first.killed_at == 0 and first.resumed_from == 0
    assert first.observed == ["line 1", "line 1", "line 2", "line 3", "line 4", "line 5"]
    assert "observe() differs" in (first.problem or "")
    message = report.message()
    assert "first kill point that differs: before checkpoint 1" in message
    assert "DIFFERS" in message and "after checkpoint 5" in message
    by_kind = {kind: [o for o in report.outcomes if o.point and o.point.kind == kind]
               for kind in (AFTER, BEFORE)}
    assert all(not outcome.passed for outcome in by_kind[BEFORE])
    assert all(outcome.passed for outcome in by_kind[AFTER]), [
        (o.point, o.problem, o.killed_at, o.resumed_from, o.observed) for o in by_kind[AFTER]
        if not o.passed]


def test_passes_the_safe_ledger_with_every_kill_where_planned() -> None:
    report = run_crash_test(ledger.append_safe, LEDGER, lines_of, points=4, seed=2)
    assert report.passed, report.message()
    assert report.checkpoints == 5
    assert len(report.outcomes) == 5 + 5 + 4
    for outcome in report.outcomes:
        point = outcome.point
        assert point is not None
        if point.kind == BETWEEN and (not outcome.killed or outcome.processes == 1):
            continue  # the job had finished (its outcome recorded) before the timed kill
        assert outcome.killed and outcome.processes == 2, outcome
        if point.kind != BETWEEN:
            expected = point.checkpoint if point.kind == AFTER else point.checkpoint - 1
            assert outcome.killed_at == expected, outcome
        assert outcome.resumed_from == outcome.killed_at, outcome
        assert outcome.observed == report.reference.observed, outcome
        if outcome.killed_at:
            assert outcome.state_at_kill["done"] == outcome.killed_at


def test_children_killed_in_eight_threads_at_once_each_report_their_sigkill(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kit runs kill points in threads, and multiprocessing's forkserver `Popen.poll`
    is not thread-safe (CPython gh-130895): without the kit's lock around starts and
    exit-status reads (`process._REAP`), a child killed in one thread is now and then
    read as exiting with 255 by another, and the kit reports a job that did not finish.
    The status read is slowed by 2 ms here, so that the race shows within 160 children
    (without the lock: from 4 to dozens of the 160 were read as 255, in 4 of 4 runs)."""
    import inspect
    import threading
    import time
    from multiprocessing import forkserver, popen_forkserver

    read_signed = forkserver.read_signed

    def slow_read_signed(fd: int) -> int:
        time.sleep(0.002)
        return read_signed(fd)

    monkeypatch.setattr(popen_forkserver.forkserver, "read_signed", slow_read_signed)

    from harunner.api.job import spec_of
    from harunner.store import Owner, Store
    from harunner.testing.child import ChildRequest, JobRef
    from harunner.testing.kit import KILLED
    from harunner.testing.process import forkserver_context, run_attempt

    spec = spec_of(ledger.append_safe)
    assert spec is not None
    ref = JobRef(spec.module, inspect.getsourcefile(spec.function) or "", spec.name)
    store = Store(tmp_path / "state")
    jobs = [store.submit(spec.name, {"path": str(tmp_path / f"l{n}.txt"), "lines": 3}).job_id
            for n in range(8 * 20)]
    for job_id in jobs:
        store.assign(job_id, Owner(0, 1), 0)
    mp = forkserver_context(["harunner.testing.child", spec.module])
    codes: list[int | None] = []

    def run(mine: list[str]) -> None:
        for job_id in mine:
            request = ChildRequest(ref, str(tmp_path / "state"), job_id, 1,
                                   str(tmp_path / f"{job_id}.log"), "before", 1)
            codes.append(run_attempt(mp, request, None, 60.0).exitcode)

    threads = [threading.Thread(target=run, args=(jobs[n::8],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(codes) == len(jobs)
    assert [code for code in codes if code != KILLED] == []


def test_crash_test_raises_with_the_report() -> None:
    with pytest.raises(CrashTestFailure) as caught:
        crash_test(ledger.append_unsafe, {**LEDGER, "lines": 2}, points=0)
    assert caught.value.report.first_failure.point == KillPoint(BEFORE, 1)
    assert "before checkpoint 1" in str(caught.value)


def test_a_timed_kill_lands_between_the_planned_checkpoints() -> None:
    points = [KillPoint(BETWEEN, 0, 0.15), KillPoint(BETWEEN, 2, 0.15)]
    report = run_crash_test(crash_jobs.slow_steps, {"steps": 3, "delay": 0.3}, only=points)
    assert report.passed, report.message()
    assert [outcome.point for outcome in report.outcomes] == points
    assert [(o.killed, o.killed_at, o.resumed_from) for o in report.outcomes] == [
        (True, 0, 0), (True, 2, 2)]


def test_the_result_of_a_job_that_counts_its_owners_differs() -> None:
    report = run_crash_test(crash_jobs.counts_owners, {"steps": 2}, points=0, before=False)
    first = report.first_failure
    assert first is not None and first.point == KillPoint(AFTER, 1)
    assert "result differs" in (first.problem or "")
    assert first.result == {"owners": [1, 2]} and report.reference.result == {"owners": [1]}


def test_a_job_that_fails_without_faults_is_reported() -> None:
    report = run_crash_test(crash_jobs.fails, {}, points=2)
    assert not report.passed and report.outcomes == ()
    assert "the run without faults failed" in report.message()
    assert "this job always fails" in report.message()


def test_a_function_that_is_not_a_job_is_refused() -> None:
    with pytest.raises(JobDefinitionError, match="decorated with @job"):
        run_crash_test(lines_of, {})


def test_random_kill_points_are_seeded_and_in_job_order() -> None:
    timings = [0.0, 0.1, 0.2, 0.3, 0.35]
    first = kill_points(timings, seed=7, points=5, before=True)
    assert first == kill_points(timings, seed=7, points=5, before=True)
    assert first != kill_points(timings, seed=8, points=5, before=True)
    assert len(first) == 3 + 3 + 5
    assert first == sorted(first, key=lambda point: point.position)
    for point in first:
        if point.kind == BETWEEN:
            assert 0 <= point.delay <= timings[point.checkpoint + 1] - timings[point.checkpoint]


def test_a_process_that_runs_past_the_timeout_is_killed_and_reported() -> None:
    report = run_crash_test(crash_jobs.slow_steps, {"steps": 1, "delay": 30.0}, timeout=0.5)
    assert not report.passed and report.outcomes == ()
    assert "ran longer than the timeout" in report.message()
    assert report.reference.seconds < 10


def test_a_forkserver_reaped_by_another_part_of_the_process_is_restarted() -> None:
    """A subreaper's `waitpid(-1)` clean-up may reap the dead forkserver before the kit looks."""
    import os
    import signal
    from multiprocessing import forkserver

    assert run_crash_test(ledger.append_safe, {**LEDGER, "lines": 1}, points=0).passed
    pid = forkserver._forkserver._forkserver_pid
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    report = run_crash_test(ledger.append_safe, {**LEDGER, "lines": 1}, points=0)
    assert report.passed, report.message()
