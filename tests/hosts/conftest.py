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

from etcd_cluster import EtcdCluster  # noqa: E402
from etcd_fixtures import etcd_binary, etcd_cluster3, etcd_restartable  # noqa: E402, F401

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def etcd1(etcd_restartable: EtcdCluster) -> EtcdCluster:  # noqa: F811 (a fixture)
    """A fresh single member for this test (tests/etcd's fixture, under this folder's name)."""
    return etcd_restartable


@pytest.fixture
def etcd3(etcd_cluster3: EtcdCluster) -> EtcdCluster:  # noqa: F811 (a fixture)
    """A fresh three-member cluster for this test."""
    return etcd_cluster3


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
