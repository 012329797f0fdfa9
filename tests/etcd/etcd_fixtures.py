"""The etcd fixtures shared by tests/etcd and tests/contract (and any later folder).

A conftest imports them by name (`from etcd_fixtures import etcd_node, ...`) after
putting tests/etcd on sys.path; they are defined once, here. See conftest.py for
what each one is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from etcd_cluster import EtcdCluster, find_etcd

SKIP_REASON = "etcd not installed: run .ci/install-etcd"
START_ATTEMPTS = 2  # a port picked as free may be taken by another process meanwhile


@pytest.fixture(scope="session")
def etcd_binary() -> str:
    binary = find_etcd()
    if binary is None:
        pytest.skip(SKIP_REASON)
    return binary


def start_cluster(binary: str, root: Path, size: int) -> EtcdCluster:
    """Start a cluster of `size` members, retrying once on fresh ports."""
    for attempt in range(START_ATTEMPTS):
        cluster = EtcdCluster(binary, root / f"try{attempt}", size)
        try:
            cluster.start()
            return cluster
        except (RuntimeError, TimeoutError):
            cluster.stop()
            if attempt == START_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def etcd_node(etcd_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    cluster = start_cluster(etcd_binary, tmp_path_factory.mktemp("etcd1"), 1)
    yield cluster
    cluster.stop()


@pytest.fixture
def etcd_restartable(etcd_binary: str, tmp_path: Path) -> Iterator[EtcdCluster]:
    cluster = start_cluster(etcd_binary, tmp_path / "etcd", 1)
    yield cluster
    cluster.stop()


@pytest.fixture
def etcd_cluster3(etcd_binary: str, tmp_path: Path) -> Iterator[EtcdCluster]:
    cluster = start_cluster(etcd_binary, tmp_path / "etcd3", 3)
    yield cluster
    cluster.stop()
