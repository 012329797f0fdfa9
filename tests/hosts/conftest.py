"""Fixtures of the multi-host tests: a real etcd (tests/etcd's `EtcdCluster`), per test.

Each test gets a fresh member (or a three-member cluster), so a test that kills
etcd or leaves keys behind cannot disturb another; every etcd process is stopped
by pid at teardown. Without an etcd binary the tests that need it are skipped
with the reason and the fix.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "etcd"))

from etcd_cluster import EtcdCluster, find_etcd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))


def start_cluster(binary: str, root: Path, size: int) -> EtcdCluster:
    """Start `size` members, retrying once on fresh ports (a free port may be taken)."""
    for attempt in range(2):
        cluster = EtcdCluster(binary, root / f"try{attempt}", size)
        try:
            cluster.start()
            return cluster
        except (RuntimeError, TimeoutError):
            cluster.stop()
            if attempt == 1:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def etcd_bin() -> str:
    binary = find_etcd()
    if binary is None:
        pytest.skip("etcd not installed: run .ci/install-etcd")
    return binary


@pytest.fixture
def etcd1(etcd_bin: str, tmp_path: Path) -> Iterator[EtcdCluster]:
    cluster = start_cluster(etcd_bin, tmp_path / "etcd", 1)
    yield cluster
    cluster.stop()


@pytest.fixture
def etcd3(etcd_bin: str, tmp_path: Path) -> Iterator[EtcdCluster]:
    cluster = start_cluster(etcd_bin, tmp_path / "etcd3", 3)
    yield cluster
    cluster.stop()


PR_SET_CHILD_SUBREAPER = 36


@pytest.fixture(scope="session", autouse=True)
def subreaper() -> None:
    """Runners and workers re-parent to the test process when a parent dies: every process
    a host starts stays a descendant, found and killed by pid at teardown."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


@pytest.fixture
def make_host(tmp_path: Path) -> Iterator:  # type: ignore[type-arg]
    """Hosts sharing one etcd, each with its own state directory; all stopped at teardown."""
    import os
    import signal

    from hostcluster import Host, descendants, signal_all

    made: list[Host] = []

    def make(name: str, backend: str, **options: object) -> Host:
        made.append(Host(Path(tmp_path) / name, name, backend, **options))
        return made[-1]

    yield make
    for host in made:
        host.stop()
    left = descendants(os.getpid())
    signal_all(left, signal.SIGCONT)
    signal_all([p for p in left if not _is_etcd(p)], signal.SIGKILL)
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break


def _is_etcd(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "etcd"
    except OSError:
        return False
