"""The availability fold over synthetic event logs (harunner.store.availability)."""

from __future__ import annotations

from typing import Any

import pytest

from harunner.store.availability import _Fold, figures, summarize

JOB = "job-a"


def ev(t: float, event: str, src: str = "runner-1", **fields: Any) -> dict[str, Any]:
    return {"t": t, "src": src, "event": event, **fields}


def cluster_up(t: float = 0.0, slots: int = 3, incarnation: int = 1) -> list[dict[str, Any]]:
    return [ev(t, "runner_started", f"runner-{s}", slot=s, incarnation=incarnation,
               pid=100 * incarnation + s) for s in range(slots)]


def crash_of_slot_0(start: float = 10.0) -> list[dict[str, Any]]:
    """Slot 0 (pid 100) runs JOB from t=1 and is SIGKILLed at `start`; slot 1 takes over."""
    return [
        ev(1.0, "worker_started", "runner-0", job=JOB, generation=1, slot=0),
        ev(start, "peer_exit", "runner-1", slot=0, pid=100),
        ev(start + 0.001, "detected", "runner-1", slot=0, incarnation=1, reason="exited"),
        ev(start + 0.002, "detected", "runner-2", slot=0, incarnation=1, reason="exited"),
        ev(start + 0.003, "runner_exit", "supervisor", slot=0, pid=100, code=-9),
        ev(start + 0.020, "decided", "runner-1", job=JOB, generation=2, slot=1),
        ev(start + 0.030, "took_over", "runner-1", job=JOB, generation=2, slot=1),
        ev(start + 0.031, "worker_started", "runner-1", job=JOB, generation=2, slot=1),
        ev(start + 0.050, "first_checkpoint", "worker-7", job=JOB, generation=2, seq=9),
    ]


def test_a_crash_is_one_failover_with_each_stage_measured_from_the_death():
    events = cluster_up() + crash_of_slot_0() + [
        ev(12.0, "worker_exit", "runner-1", job=JOB, generation=2, outcome="succeeded", code=0)]
    report = summarize(events)
    assert report.failovers == {"crash": 1, "hang": 0}  # two verdicts and three reports: one
    assert report.jobs_moved == 1
    stages = {name: values for name, values in report.stages.items()}
    assert stages["detect"] == [pytest.approx(0.001)]
    assert stages["decide"] == [pytest.approx(0.020)]
    assert stages["owned"] == [pytest.approx(0.030)]
    assert stages["resume"] == [pytest.approx(0.031)]
    assert stages["checkpoint"] == [pytest.approx(0.050)]
    [figures_a] = report.jobs
    assert figures_a.job == JOB and figures_a.failovers == 1
    assert figures_a.down == pytest.approx(0.030)
    assert figures_a.needed == pytest.approx(11.0)
    assert figures_a.availability == pytest.approx(1 - 0.030 / 11.0)
    assert report.still_down == []


def test_a_hang_dates_the_death_back_by_the_silence_the_verdict_names():
    events = cluster_up() + [
        ev(1.0, "worker_started", "runner-0", job=JOB, generation=1, slot=0),
        ev(20.0, "detected", "runner-1", slot=0, incarnation=1,
           reason="hung (500 ms without a beat)"),
        ev(20.1, "took_over", "runner-1", job=JOB, generation=2, slot=1),
        ev(22.0, "killed_hung", "supervisor", slot=0, pid=100),
        ev(22.1, "runner_exit", "supervisor", slot=0, pid=100, code=-9),
        ev(30.0, "worker_exit", "runner-1", job=JOB, generation=2, outcome="succeeded"),
    ]
    report = summarize(events)
    assert report.failovers == {"crash": 0, "hang": 1}  # the later kill is the same death
    assert report.stages["detect"] == [pytest.approx(0.5)]
    assert report.stages["owned"] == [pytest.approx(0.6)]
    assert report.jobs[0].down == pytest.approx(0.6)


def test_deaths_in_a_clean_stop_are_no_failovers_and_a_restart_is_no_downtime():
    events = cluster_up() + [
        ev(1.0, "worker_started", "runner-0", job=JOB, generation=1, slot=0),
        ev(5.0, "stopping", "supervisor"),
        ev(5.1, "peer_exit", "runner-1", slot=0, pid=100),
        ev(5.1, "detected", "runner-1", slot=0, incarnation=1, reason="exited"),
        ev(5.3, "stopped", "supervisor"),
        *cluster_up(100.0, incarnation=2),
        ev(101.0, "took_over", "runner-0", job=JOB, generation=2, slot=0),
        ev(101.0, "worker_started", "runner-0", job=JOB, generation=2, slot=0),
        ev(103.0, "worker_exit", "runner-0", job=JOB, generation=2, outcome="succeeded"),
    ]
    report = summarize(events)
    assert report.failovers == {"crash": 0, "hang": 0}
    assert report.jobs_moved == 0 and report.jobs == [] and report.down == 0
    assert report.needed == pytest.approx(4.1 + 2.0)  # up to the stop, then after the restart
    assert report.availability == 1.0


def test_a_job_never_taken_over_is_down_until_the_end_of_the_log():
    events = cluster_up() + crash_of_slot_0()[:5] + [ev(15.0, "paused", "runner-2", ms=1)]
    report = summarize(events)
    assert report.still_down == [JOB]
    assert report.jobs[0].down == pytest.approx(5.0)
    assert report.stages["owned"] == []


def test_since_clips_the_window_and_leaves_out_failovers_before_it():
    events = cluster_up() + crash_of_slot_0(10.0) + [
        ev(12.0, "worker_exit", "runner-1", job=JOB, generation=2, outcome="succeeded")]
    later = summarize(events, since=11.0)
    assert later.failovers == {"crash": 0, "hang": 0}
    assert later.stages["owned"] == []
    assert later.needed == pytest.approx(1.0)
    assert later.start == 11.0 and later.end == 12.0
    assert later.down == 0.0


def test_a_retrying_attempt_ends_the_need_until_the_next_attempt_starts():
    events = cluster_up() + [
        ev(1.0, "worker_started", "runner-0", job=JOB, generation=1, slot=0),
        ev(2.0, "worker_exit", "runner-0", job=JOB, generation=1, outcome="retrying"),
        ev(50.0, "worker_started", "runner-2", job=JOB, generation=2, slot=2),
        ev(51.0, "worker_exit", "runner-2", job=JOB, generation=2, outcome="succeeded"),
    ]
    report = summarize(events)
    assert report.needed == pytest.approx(2.0) and report.clean_attempts == 2


def test_the_scheduler_duty_and_malformed_lines_are_skipped():
    events = cluster_up() + [
        {"event": "worker_started"}, {"t": "soon", "event": "detected"},
        ev(3.0, "detected", "runner-1", slot="zero"),
        ev(4.0, "took_over", "runner-1", job="__scheduler__", generation=2, slot=1),
    ]
    report = summarize(events)
    assert report.events == 5
    assert report.jobs == [] and report.needed == 0


def test_memory_follows_the_running_jobs_not_the_log():
    fold = _Fold(None)
    for event in cluster_up():
        fold.feed(event)
    for n in range(5000):
        fold.feed(ev(n, "worker_started", "runner-0", job=f"j{n}", generation=1, slot=0))
        fold.feed(ev(n + 0.5, "worker_exit", "runner-0", job=f"j{n}", generation=1,
                     outcome="succeeded"))
    assert fold.spans == {} and fold.troubled == {}
    assert fold.result().clean_attempts == 5000


def test_figures_give_median_p99_and_worst_by_nearest_rank():
    assert figures([float(v) for v in range(1, 101)]) == {
        "count": 100, "median": 50.5, "p99": 99.0, "worst": 100.0}
    assert figures([]) == {"count": 0, "median": None, "p99": None, "worst": None}


def test_a_log_that_begins_after_the_runners_started_still_links_deaths_to_jobs():
    events = [e for e in crash_of_slot_0() if e["event"] != "runner_started"] + [
        ev(12.0, "worker_exit", "runner-1", job=JOB, generation=2, outcome="succeeded")]
    report = summarize(events)  # no runner_started: incarnations unknown
    assert report.failovers["crash"] == 1 and report.jobs_moved == 1
    assert report.jobs[0].down == pytest.approx(0.030)
