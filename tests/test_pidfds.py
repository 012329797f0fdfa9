"""The pidfd helper: exits reported once, signals never hit a recycled pid."""

from __future__ import annotations

import signal
import subprocess
import sys

from harunner.pidfds import GONE, PidWatch, has_exited, open_pidfd, send_signal


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_an_exit_is_reported_once_and_the_pidfd_closed() -> None:
    child = sleeper()
    watch: PidWatch[str] = PidWatch()
    try:
        watch.watch("a", child.pid)
        assert watch.exited() == [] and len(watch.fds()) == 1
        assert watch.signal("a", signal.SIGKILL)
        child.wait()
        assert watch.exited(timeout=5) == ["a"]
        assert watch.exited() == [] and watch.fds() == [] and "a" not in watch
    finally:
        child.kill()
        child.wait()
        watch.close()


def test_a_process_gone_before_it_is_watched_is_reported_not_lost() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    watch: PidWatch[int] = PidWatch()
    watch.watch(7, child.pid)
    assert watch.exited() == [7]


def test_functions_on_a_gone_process() -> None:
    assert has_exited(GONE)
    assert not send_signal(GONE, signal.SIGTERM)
    child = sleeper()
    fd = open_pidfd(child.pid)
    try:
        assert not has_exited(fd)
        child.kill()
        child.wait()
        assert has_exited(fd, timeout=5)
        assert not send_signal(fd, signal.SIGTERM)  # reaped: the pid may be reused, the fd not
    finally:
        child.kill()
        child.wait()
