"""The three-member fixture and what the backend will rely on across a leader loss.

A static three-member cluster on loopback: the members agree on a leader; the
leader SIGKILLed mid-run, writes resume once a new leader is elected, nothing
acknowledged is lost, a fenced (compare-on-revision) write still refuses a stale
writer, and the killed member, restarted on its data folder, catches up.
Driven by the standard-library gateway client with all three endpoints.
"""

from __future__ import annotations

import pytest

from harunner.polling import wait_until
from harunner.store.etcd.gateway import (
    EtcdError,
    EtcdGateway,
    EtcdUnavailable,
    b64,
    compare_mod,
    op_get,
    op_put,
    unb64,
)

pytestmark = pytest.mark.integration


def put_acknowledged(client: EtcdGateway, key: bytes, value: bytes) -> bool:
    """Create `key` once; True when etcd acknowledged it (resolving an unknown outcome)."""
    try:
        return client.txn([compare_mod(key, 0)], [op_put(key, value)], [op_get(key)]).succeeded
    except (EtcdUnavailable, EtcdError):
        return False


def serializable_get(url: str, key: bytes) -> bytes | None:
    """Read `key` from this member's own copy (no round trip through the leader)."""
    member = EtcdGateway([url])
    try:
        answer = member.request("/v3/kv/range", {"key": b64(key), "serializable": True})
        kvs = answer.get("kvs", [])
        return unb64(kvs[0].get("value")) if kvs else None
    finally:
        member.close()


def test_three_members_agree_on_one_leader(etcd_cluster3):
    leader = etcd_cluster3.leader()
    assert leader in etcd_cluster3.members
    ids = {m.status()["header"]["member_id"] for m in etcd_cluster3.members}
    assert len(ids) == 3


def test_leader_sigkill_loses_nothing_acknowledged_and_member_catches_up(etcd_cluster3):
    client = EtcdGateway(etcd_cluster3.endpoints, timeout=2.0)
    acknowledged: dict[bytes, bytes] = {}
    try:
        for i in range(30):
            key, value = b"/ha/before/%03d" % i, b"%d" % i
            assert put_acknowledged(client, key, value)
            acknowledged[key] = value
        fenced = client.get(b"/ha/before/000")
        term_before = int(etcd_cluster3.leader().status()["header"]["raft_term"])
        killed = etcd_cluster3.kill_leader()
        assert not killed.alive()
        survivor = etcd_cluster3.leader()
        assert survivor is not killed
        assert int(survivor.status()["header"]["raft_term"]) > term_before, "no new election"
        for i in range(30):
            key, value = b"/ha/after/%03d" % i, b"%d" % i
            wait_until(lambda k=key, v=value: put_acknowledged(client, k, v) or
                       (client_get_quiet(client, k) == v), 10.0, f"write {key!r} accepted")
            acknowledged[key] = value
        stale = client.txn([compare_mod(b"/ha/before/000", fenced.mod_revision - 1)],
                           [op_put(b"/ha/before/000", b"stale")], [])
        assert not stale.succeeded, "a write fenced on an old revision was accepted"
        for key, value in acknowledged.items():
            assert client.get(key).value == value, f"acknowledged {key!r} lost"
        etcd_cluster3.restart_member(killed)
        last = max(acknowledged)
        wait_until(lambda: serializable_get(killed.client_url, last) == acknowledged[last],
                   10.0, "the restarted member to catch up")
        assert all(serializable_get(killed.client_url, k) == v for k, v in acknowledged.items())
    finally:
        client.close()


def client_get_quiet(client: EtcdGateway, key: bytes) -> bytes | None:
    try:
        found = client.get(key)
    except (EtcdUnavailable, EtcdError):
        return None
    return found.value if found else None
