"""A job's log is made only when its attempt has something to say (real workers, real crashes).

A quiet success leaves no job folder; output, failures and long attempts
reach the job's log in order, including what a crashed or cancelled worker
wrote before it died (the executor adopts its spool).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading

import pytest
from executor_harness import HERE, TEST_JOBS, Harness, alive, wait_for

from harunner.api.client import Client
from harunner.cli import inspect
from harunner.executor import spool
from harunner.store import JobState
from harunner.store.layout import Layout

NAME = "executor_test_jobs"


def in_order(text: str, *needles: str) -> None:
    """Each needle occurs in `text` after the one before it."""
    at = 0
    for needle in needles:
        found = text.find(needle, at)
        assert found >= 0, f"{needle!r} missing after offset {at} in:\n{text}"
        at = found + len(needle)


def spools_are_empty(layout: Layout) -> None:
    sizes = {p.name: p.stat().st_size for p in layout.spools.iterdir()}
    assert all(size == 0 for size in sizes.values()), sizes


def state_of(harness: Harness) -> str:
    return str(harness.store.layout.root)


def test_a_quiet_successful_attempt_leaves_no_job_folder(harness):
    record = harness.submit(f"{NAME}.succeed", {"value": 3})
    assert harness.run(record).outcome == "succeeded"
    assert not harness.store.layout.job_folder(record.job_id).exists()
    assert harness.store.get(record.job_id).result == {"value": 3, "attempt": 1}
    spools_are_empty(harness.store.layout)
    lines: list[str] = []
    inspect.follow(Client(state_of(harness)), record.job_id, lines.append, follow=False)
    assert lines == []  # `harunner logs` prints nothing, and makes nothing
    assert "log:" in inspect.show_text(Client(state_of(harness)), record.job_id)
    assert not harness.store.layout.job_folder(record.job_id).exists()


def test_a_printing_attempt_keeps_every_line_in_order(harness):
    record = harness.submit(f"{NAME}.print_and_return")
    assert harness.run(record).outcome == "succeeded"
    log = harness.store.layout.job_log(record.job_id)
    in_order(log.read_text(), f"INFO attempt 1 of {NAME}.print_and_return starts\n",
             "to stdout\n", "to stderr\n", "INFO attempt 1 returned\n")
    assert (os.stat(log).st_mode & 0o777, os.stat(log.parent).st_mode & 0o777) == (0o600, 0o700)
    spools_are_empty(harness.store.layout)


@pytest.mark.parametrize("how, outcome", [("exit", "crashed"), ("segv", "crashed"),
                                          ("kill", "succeeded")])
def test_what_a_crashed_worker_wrote_reaches_the_log_in_order(harness, how, outcome):
    seen = harness.root / "seen"
    args = {"how": how, "state": state_of(harness), "seen": str(seen),
            "marker": str(harness.root / "marker") if how == "kill" else ""}
    record = harness.submit(f"{NAME}.say_then_die", args)
    assert harness.run(record).outcome == outcome
    assert seen.read_text().split()[0] == "False"  # it was still spooled when it died
    lines = (f"INFO attempt 1 of {NAME}.say_then_die starts\n", "one: print\n",
             "two: os.write\n", "three: a child process\n", "four: stderr\n")
    text = harness.store.layout.job_log(record.job_id).read_text()
    if how == "kill":  # an outside SIGKILL: resumed, not counted; the second run returns
        in_order(text, *lines, "WARNING infrastructure fault: worker killed by SIGKILL",
                 *lines, "INFO attempt 1 returned\n")
    else:
        in_order(text, *lines)
        assert "returned" not in text
    spools_are_empty(harness.store.layout)  # the dead worker's spool was removed


def test_a_long_attempt_has_its_log_while_it_runs_and_its_child_writes_into_it(harness):
    record = harness.submit(f"{NAME}.talk_long", {"state": state_of(harness),
                                                  "pid_file": harness.pid_file()})
    followed: list[str] = []
    follower = threading.Thread(target=inspect.follow, args=(
        Client(state_of(harness)), record.job_id, followed.append, True, 0.02))
    follower.start()
    try:
        assert harness.run(record).outcome == "succeeded"
    finally:
        follower.join(10)
    expected = (f"attempt 1 of {NAME}.talk_long starts\n", "early\n",
                "from the child, after the log appeared\n", "late\n", "attempt 1 returned\n")
    in_order(harness.store.layout.job_log(record.job_id).read_text(), *expected)
    in_order("".join(followed), *expected)  # `harunner logs --follow` saw it all
    assert harness.store.get(record.job_id).state is JobState.SUCCEEDED


def test_a_log_that_appears_during_a_spooled_attempt_gets_the_spool_appended(harness):
    record = harness.submit(f"{NAME}.log_appears_meanwhile", {"state": state_of(harness)})
    assert harness.run(record).outcome == "succeeded"
    in_order(harness.store.layout.job_log(record.job_id).read_text(),
             "a line someone else wrote\n", f"attempt 1 of {NAME}.log_appears_meanwhile starts\n",
             "first\n", "second\n", "attempt 1 returned\n")
    spools_are_empty(harness.store.layout)


def test_a_cancelled_attempt_keeps_what_it_wrote(harness):
    record = harness.submit(f"{NAME}.say_and_sleep", {"pid_file": harness.pid_file()})
    harness.executor.start(record)
    harness.pids(str(harness.pid_files[-1]))
    assert harness.executor.kill(record.job_id) is not None
    in_order(harness.store.layout.job_log(record.job_id).read_text(),
             f"attempt 1 of {NAME}.say_and_sleep starts\n", "said before the end\n")
    spools_are_empty(harness.store.layout)


def test_a_worker_whose_runner_dies_puts_what_it_wrote_into_the_log(tmp_path):
    harness = Harness(tmp_path)
    pid_file = harness.pid_file()
    record = harness.submit(f"{NAME}.say_and_sleep", {"pid_file": pid_file})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        str(HERE.parent.parent), os.environ.get("PYTHONPATH")]))}
    runner = subprocess.Popen(
        [sys.executable, str(HERE / "runner_for_tests.py"), str(tmp_path / "state"), TEST_JOBS,
         record.job_id, "forkserver", "pool"], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert runner.stdout.readline().startswith("worker ")
        worker_pid = harness.pids(pid_file)[0]
        runner.kill()  # its workers' watchdogs see it go
        runner.wait(5)
        wait_for(lambda: not alive(worker_pid), 5.0, 0.005)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(5)
        runner.stdout.close()
        harness.close()
    in_order(harness.store.layout.job_log(record.job_id).read_text(),
             f"attempt 1 of {NAME}.say_and_sleep starts\n", "said before the end\n")
    assert not harness.store.layout.spool(worker_pid).exists()


def test_without_a_spool_folder_the_worker_writes_job_logs_directly(tmp_path):
    harness = Harness(tmp_path)
    try:
        harness.store.layout.run.mkdir(mode=0o700, parents=True)
        harness.store.layout.spools.write_text("not a folder")  # mkdir and open both fail
        record = harness.submit(f"{NAME}.print_and_return")
        assert harness.run(record).outcome == "succeeded"
        in_order(harness.store.layout.job_log(record.job_id).read_text(),
                 "starts\n", "to stdout\n", "to stderr\n", "returned\n")
        quiet = harness.submit(f"{NAME}.succeed")
        assert harness.run(quiet).outcome == "succeeded"
        assert "returned" in harness.store.layout.job_log(quiet.job_id).read_text()
    finally:
        harness.close()


def test_adopt_appends_a_dead_workers_spool_to_the_log_once(tmp_path):
    layout = Layout(tmp_path)
    layout.spools.mkdir(parents=True)
    path = layout.spool(12345)
    path.write_text("from the spool\n")
    log = layout.job_log("job-a")
    log.parent.mkdir(parents=True)
    log.write_text("before\n")
    spool.adopt(layout, 12345, "job-a")
    assert log.read_text() == "before\nfrom the spool\n" and not path.exists()
    path.write_text("")  # an empty spool: removed, and no folder made for it
    spool.adopt(layout, 12345, "job-b")
    assert not path.exists() and not layout.job_folder("job-b").exists()
    path.write_text("linked already\n")  # it died between linking its spool and unlinking it
    layout.job_folder("job-c").mkdir()
    os.link(path, layout.job_log("job-c"))
    spool.adopt(layout, 12345, "job-c")
    assert layout.job_log("job-c").read_text() == "linked already\n" and not path.exists()
    path.write_text("fresh\n")  # no log yet: the spool becomes the log
    spool.adopt(layout, 12345, "job-d")
    assert layout.job_log("job-d").read_text() == "fresh\n" and not path.exists()
    spool.adopt(layout, 999, "job-e")  # no spool at all: nothing happens
    assert not layout.job_folder("job-e").exists()


def test_sweep_removes_only_empty_spools_that_no_live_worker_holds(tmp_path):
    layout = Layout(tmp_path)
    layout.spools.mkdir(parents=True)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no process has (until it is reused)
    dead_empty, dead_full, locked = (layout.spool(pid) for pid in (gone.pid, 2**22 + 1, 2**22 + 2))
    live = layout.spool(os.getpid())
    for path in (dead_empty, locked, live):
        path.write_text("")
    dead_full.write_text("waiting for its executor to adopt it\n")
    fd = os.open(locked, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # no such pid, yet its lock is held: not removed
        spool.sweep(layout, layout.spool(4))
        assert [p.exists() for p in (dead_empty, dead_full, locked, live)] == [
            False, True, True, True]
    finally:
        os.close(fd)
