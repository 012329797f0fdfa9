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
