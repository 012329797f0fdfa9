"""Fixtures: a real etcd (the Debian binary) on loopback, one node or three, and clients.

`etcd_node` is one member shared by a test module (tests keep to their own key
prefix; it stops when the module is done, so no etcd runs under later tests);
`etcd_restartable` is a fresh member per test for tests that kill it;
`etcd_cluster3` is a fresh three-member static cluster per test. Every process is
stopped by pid at teardown. Without an etcd binary every test here is skipped
with the reason and the fix.

The client tests run on the chosen client (the standard-library gateway) unless
HARUNNER_ETCD_CLIENTS names others, as the comparison in docs/etcd.md did:
`HARUNNER_ETCD_CLIENTS=gateway,etcd3gw,aetcd` (aetcd and pyetcd need separate runs).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from etcd_adapters import missing_reason, open_client, selected_clients
from etcd_cluster import EtcdCluster, find_etcd

START_ATTEMPTS = 2  # a port picked as free may be taken by another process meanwhile


@pytest.fixture(scope="session")
def etcd_binary() -> str:
    binary = find_etcd()
    if binary is None:
        pytest.skip("etcd not installed: run .ci/install-etcd")
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


@pytest.fixture(params=selected_clients())
def client_name(request: pytest.FixtureRequest) -> str:
    reason = missing_reason(request.param)
    if reason:
        pytest.skip(reason)
    return request.param


@pytest.fixture
def client(client_name: str, etcd_node: EtcdCluster) -> Iterator:
    adapter = open_client(client_name, etcd_node.endpoints[0])
    yield adapter
    adapter.close()


@pytest.fixture
def prefix() -> bytes:
    """A key prefix no other test uses."""
    return f"/harunner-test/{uuid.uuid4().hex}/".encode()
