"""Finding and killing every descendant of a process, including those that called setsid().

A process-group kill misses a job's child that started its own session. So
each worker is a child subreaper (`PR_SET_CHILD_SUBREAPER`): a descendant
whose parent dies is re-parented to the worker, never to init, and stays in
the worker's process tree until the worker kills it. The executor's own
process is a subreaper too, so that what a dead worker leaves behind comes to
it (see `Executor`), where `orphans_of` finds it.

Responsibilities and invariants:
- The tree is read from /proc (`/proc/<pid>/task/<tid>/children` where the
  kernel has it, else one pass over every `/proc/<pid>/stat`), never from a
  timer: only when an attempt ends or a worker dies or is killed.
- `kill_tree` first SIGSTOPs each process it finds (a stopped process cannot
  fork), walks again until no new process turns up, then SIGKILLs them all.
  A child forked in the instant between the two is re-parented to the nearest
  subreaper, which kills it at its own next sweep: nothing escapes for long.
- `has_children` is one `waitid` call, so an attempt that started no process
  pays no /proc scan.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Iterable
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
MAX_ROUNDS = 50
_HAS_CHILDREN_FILE = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists()


_adopters = 0  # executors of this process that asked to adopt orphans
_was_subreaper = False  # whether the process was one before the first of them


def become_subreaper(on: bool = True) -> bool:
    """Make this process a child subreaper (or stop being one); whether the kernel agreed."""
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0)


def is_subreaper() -> bool:
    """Whether this process is a child subreaper now."""
    libc = ctypes.CDLL(None, use_errno=True)
    flag = ctypes.c_int(0)
    return bool(libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) == 0
                and flag.value)


def start_adopting() -> bool:
    """One more user of this process's subreaper role (the first one turns it on)."""
    global _adopters, _was_subreaper
    if _adopters == 0:
        _was_subreaper = is_subreaper()
        if not _was_subreaper and not become_subreaper():
            return False
    _adopters += 1
    return True


def stop_adopting() -> None:
    """One user fewer; the last one leaves the process as it was before the first."""
    global _adopters
    _adopters = max(0, _adopters - 1)
    if _adopters == 0 and not _was_subreaper:
        become_subreaper(False)


def has_children() -> bool:
    """Whether this process has any child at all, living or zombie (one syscall)."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def stat_fields(pid: int) -> list[bytes] | None:
    """The fields of /proc/<pid>/stat after the command name (state is [0]); None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat[stat.rindex(b")") + 2:].split()


def children_map() -> dict[int, list[int]]:
    """Parent pid -> child pids, for every process on the host (one pass over /proc)."""
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = stat_fields(int(name))
            if fields is not None:
                tree.setdefault(int(fields[1]), []).append(int(name))
    return tree


def children(pid: int, tree: dict[int, list[int]] | None = None) -> list[int]:
    """The direct children of `pid` (from `tree` if given)."""
    if tree is not None:
        return tree.get(pid, [])
    if not _HAS_CHILDREN_FILE:
        return children_map().get(pid, [])
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                found.extend(int(child) for child in f.read().split())
    return found


def descendants(pid: int, stop: bool = False) -> list[int]:
    """Every descendant of `pid`, parents first; with `stop`, each is SIGSTOPped when found."""
    found: list[int] = []
    seen = {pid}
    for _ in range(MAX_ROUNDS):
        tree = None if _HAS_CHILDREN_FILE else children_map()
        fresh = []
        queue = [pid]
        while queue:
            for child in children(queue.pop(), tree):
                queue.append(child)
                if child not in seen:
                    seen.add(child)
                    fresh.append(child)
                    if stop:
                        _signal(child, signal.SIGSTOP)
        found.extend(fresh)
        if not fresh or not stop:
            break
    return found


def kill_tree(root: int, pidfd: int = -1, include_root: bool = True) -> list[int]:
    """SIGKILL every descendant of `root` (and `root`, through `pidfd` if given); their pids."""
    if include_root:
        _signal(root, signal.SIGSTOP, pidfd)
    found = descendants(root, stop=True)
    if include_root:
        _signal(root, signal.SIGKILL, pidfd)
    kill_all(found)
    return found


def kill_all(pids: Iterable[int]) -> None:
    """SIGKILL each pid, ignoring those already gone."""
    for pid in pids:
        _signal(pid, signal.SIGKILL)


def kill_own_descendants() -> int:
    """Kill and reap every descendant of this process; how many there were.

    Runs in the worker after each attempt: the worker is a subreaper, so every
    process the attempt left, wherever it moved its session, is in its tree.
    """
    killed = 0
    for _ in range(MAX_ROUNDS):
        if not has_children():
            return killed
        found = descendants(os.getpid(), stop=True)
        kill_all(found)
        killed += len(found)
        reap_children()
        if not found:
            return killed
    return killed


def reap_children() -> None:
    """Reap this process's children that have exited (never blocks)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def reap_if_child(pid: int) -> None:
    """Reap `pid` if it is a dead child of this process (never blocks)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def orphans_of(worker_pid: int, worker_start: int, known: set[int]) -> list[int]:
    """This process's children that a dead worker left behind (re-parented to us).

    A child counts as the worker's if it is not one of `known` (the executor's
    own processes), started no earlier than the worker, and is either in the
    worker's process group or leads a group of its own (setsid/setpgid).
    """
    orphans = []
    for child in children(os.getpid()):
        fields = stat_fields(child)
        if child in known or fields is None:
            continue
        pgrp, started = int(fields[2]), int(fields[19])
        if started >= worker_start and pgrp in (worker_pid, child):
            orphans.append(child)
    return orphans


def kill_and_reap(pids: list[int]) -> None:
    """Kill each pid's whole tree, then reap the pids (our children) themselves."""
    for pid in pids:
        kill_tree(pid)
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _signal(pid: int, signum: int, pidfd: int = -1) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if pidfd >= 0:
            signal.pidfd_send_signal(pidfd, signum)
        else:
            os.kill(pid, signum)
