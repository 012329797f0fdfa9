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

import pytest
from etcd_adapters import missing_reason, open_client, selected_clients
from etcd_cluster import EtcdCluster
from etcd_fixtures import (  # noqa: F401  (fixtures, defined once in etcd_fixtures.py)
    etcd_binary,
    etcd_cluster3,
    etcd_node,
    etcd_restartable,
    start_cluster,
)


@pytest.fixture(params=selected_clients())
def client_name(request: pytest.FixtureRequest) -> str:
    reason = missing_reason(request.param)
    if reason:
        pytest.skip(reason)
    return request.param


@pytest.fixture
def client(client_name: str, etcd_node: EtcdCluster) -> Iterator:  # noqa: F811
    adapter = open_client(client_name, etcd_node.endpoints[0])
    yield adapter
    adapter.close()


@pytest.fixture
def prefix() -> bytes:
    """A key prefix no other test uses."""
    return f"/harunner-test/{uuid.uuid4().hex}/".encode()
