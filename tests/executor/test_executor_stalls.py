"""What an outside kill costs: no retry, and a prompt re-run however often it comes.

The worker of one job is SIGKILLed from outside ten times in a row (the
nemesis, an operator, the OOM killer). Each kill is an infrastructure fault:
the job, with retries=0, still succeeds at attempt 1, and the time from each
kill to the next run of the job stays under GAP_BOUND. Before the fix the
wait before a re-run grew like the disk-full back-off (0.05 s doubling up to
2 s), so from the seventh kill on every gap was over 2 s.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from harunner.api.client import Client
from harunner.cli.inspect import show_text
from harunner.executor import outcomes
from harunner.store import JobState

KILLS = 10
GAP_BOUND = 2.0


def _run(pid_file: str, number: int) -> int | None:
    """The pid of run `number` of the job, once it has written it."""
    try:
        pid, run = Path(pid_file).read_text().split()
    except (FileNotFoundError, ValueError):
        return None
    return int(pid) if int(run) == number else None


def test_ten_outside_kills_cost_no_retry_and_each_rerun_comes_promptly(harness):
    pid_file = harness.pid_file()
    record = harness.submit("limit_jobs.killed_many_times",
                            {"pid_file": pid_file, "kills": KILLS}, retries=0)
    harness.executor.start(record)
    gaps, killed_at = [], 0.0
    for number in range(1, KILLS + 1):
        pid = harness.loop(lambda n=number: _run(pid_file, n), timeout=15)
        if number > 1:
            gaps.append(time.monotonic() - killed_at)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
    settled = harness.drive(record.job_id, timeout=15)
    gaps.append(time.monotonic() - killed_at)
    print(f"\nkill -> re-run gaps (s): {', '.join(f'{g:.2f}' for g in gaps)}")
    assert settled.outcome == "succeeded"
    assert [e.outcome for e in harness.exits] == ["infra"] * KILLS + ["succeeded"]
    final = harness.store.get(record.job_id)
    assert (final.state, final.attempts, final.generation) == (JobState.SUCCEEDED, 1, 1)
    assert final.result == {"runs": KILLS + 1, "attempt": 1}
    assert max(gaps) < GAP_BOUND, gaps
    log = harness.store.log_path(record.job_id).read_text()
    assert log.count("infrastructure fault: worker killed by SIGKILL") == KILLS
    assert log.count("not counted against the job") == KILLS
    shown = show_text(Client(state_dir=harness.store.root), record.job_id)
    assert f"resumed:    {KILLS} time(s) after an infrastructure fault" in shown


def test_the_wait_before_a_rerun_is_capped_for_each_kind_of_fault():
    killed = [outcomes.resume_delay(n, killed=True) for n in range(1, 200)]
    full = [outcomes.resume_delay(n) for n in range(1, 200)]
    assert killed[0] == full[0] == outcomes.RESUME_FIRST
    assert max(killed) == outcomes.KILLED_RESUME_MAX < 0.5
    assert max(full) == outcomes.RESUME_MAX
    assert killed == sorted(killed) and full == sorted(full)
