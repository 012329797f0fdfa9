"""What harunner's etcd backend needs from a client, checked on every candidate client.

Transactions that compare a key's mod_revision or value (both branches, and two
racing writers), leases (grant, keep-alive, revoke; a leased key disappears with
its lease), watches (from a revision, in order, resumed without a gap after a
disconnect, a compacted start reported instead of silence). Each test runs once
per selected client (`etcd_adapters.selected_clients`), against a real etcd.
"""

from __future__ import annotations

import threading
import time

import pytest
from etcd_adapters import open_client

from harunner.polling import wait_until
from harunner.store.etcd.gateway import EtcdGateway, EtcdUnavailable, WatchCompacted, WatchEvent

pytestmark = pytest.mark.integration


def collect(watch, count: int, timeout: float = 5.0) -> list[WatchEvent]:
    """Read `count` events from `watch` within `timeout` s (fails with what it got)."""
    events: list[WatchEvent] = []
    deadline = time.monotonic() + timeout
    while len(events) < count and time.monotonic() < deadline:
        events += watch.next_events(min(0.2, max(0.0, deadline - time.monotonic())))
    assert len(events) >= count, f"got {len(events)} of {count} events: {events}"
    return events


def test_put_get_keeps_bytes_and_mod_revision(client, prefix):
    key, value = prefix + b"\x00\xff", bytes(range(256))
    client.put(key, value)
    found = client.get(key)
    assert found is not None and found.value == value and found.mod_revision > 0
    assert client.get(prefix + b"absent") is None


def test_txn_on_mod_revision_creates_once_then_fences_stale_writer(client, prefix):
    key = prefix + b"job"
    assert client.cas_mod(key, 0, b"g1") == (True, None)        # 0: the key is absent
    ok, current = client.cas_mod(key, 0, b"other")
    assert not ok and current is not None and current.value == b"g1"
    first = current.mod_revision
    assert client.cas_mod(key, first, b"g2")[0]
    ok, current = client.cas_mod(key, first, b"stale")           # a stale owner's write
    assert not ok and current.value == b"g2" and current.mod_revision > first
    assert client.get(key).value == b"g2"


def test_txn_on_value_takes_the_right_branch(client, prefix):
    key = prefix + b"v"
    client.put(key, b"a")
    ok, current = client.cas_value(key, b"b", b"c")
    assert not ok and current.value == b"a"
    assert client.cas_value(key, b"a", b"c") == (True, None)
    assert client.get(key).value == b"c"


def race_once(clients: list, key: bytes, base_rev: int, tag: int) -> list[int]:
    """Every client tries the same compare-on-revision write at once; the winners' indexes."""
    wins: list[int] = []
    barrier = threading.Barrier(len(clients))

    def contend(index: int) -> None:
        barrier.wait()
        if clients[index].cas_mod(key, base_rev, b"%d-%d" % (tag, index))[0]:
            wins.append(index)
    threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return wins


def test_racing_writers_on_one_revision_exactly_one_wins(client_name, etcd_node, prefix):
    key = prefix + b"race"
    clients = [open_client(client_name, etcd_node.endpoints[0]) for _ in range(4)]
    try:
        for round_ in range(10):
            base = clients[0].get(key)
            wins = race_once(clients, key, base.mod_revision if base else 0, round_)
            assert len(wins) == 1, f"round {round_}: winners {wins}"
            assert clients[0].get(key).value == b"%d-%d" % (round_, wins[0])
    finally:
        for c in clients:
            c.close()


def test_lease_keepalive_outlives_ttl_and_revoke_deletes_key(client, prefix):
    key = prefix + b"runner"
    lease = client.lease_grant(2)
    client.put(key, b"alive", lease=lease)
    assert client.get(key).lease == lease
    deadline = time.monotonic() + 3.0                   # past the 2 s TTL
    while time.monotonic() < deadline:
        assert client.lease_keepalive(lease) >= 1
        time.sleep(0.5)
    assert client.get(key) is not None, "a kept-alive lease expired"
    client.lease_revoke(lease)
    assert client.get(key) is None, "a key on a revoked lease is still there"
    assert client.lease_keepalive(lease) <= 0, "keep-alive of a revoked lease succeeded"


def test_watch_from_a_revision_replays_events_in_order(client, prefix):
    first = None
    for i in range(20):
        client.put(prefix + b"k%02d" % (i % 5), b"%d" % i)
        first = first or client.get(prefix + b"k00").mod_revision
    gateway = EtcdGateway([client_endpoint(client)])
    gateway.delete(prefix + b"k01")
    watch = client.watch(prefix, first)
    try:
        events = collect(watch, 21)
    finally:
        watch.close()
        gateway.close()
    assert [e.value for e in events[:20]] == [b"%d" % i for i in range(20)]
    assert events[20].kind == "DELETE" and events[20].key == prefix + b"k01"
    revisions = [e.mod_revision for e in events]
    assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions)


def test_watch_delivers_a_live_put(client, prefix):
    client.put(prefix + b"seed", b"0")
    start = client.get(prefix + b"seed").mod_revision + 1
    watch = client.watch(prefix, start)
    try:
        time.sleep(0.2)  # not needed for correctness (start revision given): exercises live path
        client.put(prefix + b"live", b"1")
        events = collect(watch, 1)
    finally:
        watch.close()
    assert (events[0].key, events[0].value) == (prefix + b"live", b"1")


def test_watch_resumed_after_closing_misses_nothing(client, prefix):
    client.put(prefix + b"a", b"0")
    start = client.get(prefix + b"a").mod_revision
    watch = client.watch(prefix, start)
    seen = collect(watch, 1)
    watch.close()
    for i in range(1, 11):                      # written while nobody watches
        client.put(prefix + b"a", b"%d" % i)
    watch = client.watch(prefix, seen[-1].mod_revision + 1)
    try:
        seen += collect(watch, 10)
    finally:
        watch.close()
    assert [e.value for e in seen] == [b"%d" % i for i in range(11)]


def test_watch_from_a_compacted_revision_is_reported(client, prefix):
    gateway = EtcdGateway([client_endpoint(client)])
    try:
        client.put(prefix + b"c", b"old")
        old = client.get(prefix + b"c").mod_revision
        client.put(prefix + b"c", b"new")
        gateway.compact(client.get(prefix + b"c").mod_revision)
    finally:
        gateway.close()
    watch = client.watch(prefix, old)
    try:
        with pytest.raises(WatchCompacted):
            wait_until(lambda: watch.next_events(0.2), 5.0, "a compaction report")
    finally:
        watch.close()


def test_watch_broken_by_etcd_restart_is_reported_then_resumes(client_name, etcd_restartable,
                                                                prefix):
    member = etcd_restartable.members[0]
    client = open_client(client_name, member.client_url)
    try:
        client.put(prefix + b"r", b"0")
        watch = client.watch(prefix, client.get(prefix + b"r").mod_revision)
        seen = collect(watch, 1)
        member.kill()
        with pytest.raises(EtcdUnavailable):
            wait_until(lambda: watch.next_events(0.2), 5.0, "a broken-stream report")
        watch.close()
        etcd_restartable.restart_member(member)
        wait_until(lambda: _put_ok(client, prefix + b"r", b"1"), 10.0, "a put after restart")
        watch = client.watch(prefix, seen[-1].mod_revision + 1)
        try:
            seen += collect(watch, 1)
        finally:
            watch.close()
        assert [e.value for e in seen] == [b"0", b"1"]
    finally:
        client.close()


@pytest.mark.parametrize("size", [1_600_000, 3 * 1024 * 1024])
def test_value_over_the_request_limit_is_refused(client, prefix, size):
    """Over --max-request-bytes (1.5 MiB) etcd refuses; over 2 MiB gRPC refuses first."""
    key = prefix + b"big"
    with pytest.raises(Exception) as refused:   # each library has its own error type
        client.put(key, b"x" * size)
    text = f"{refused.value} {getattr(refused.value, 'detail_text', '')}"
    assert "too large" in text or "larger than max" in text, text
    assert client.get(key) is None


def _put_ok(client, key: bytes, value: bytes) -> bool:
    try:
        client.put(key, value)
        return True
    except Exception:  # any client's "not reachable yet"; the deadline bounds it
        return False


def client_endpoint(client) -> str:
    """The endpoint an adapter was opened on (for a reference gateway beside it)."""
    return client.endpoint
