"""Runner membership in a real etcd: incarnations, leases kept from the loop, watches."""

from __future__ import annotations

import threading
import time

import pytest

from harunner.polling import wait_until
from harunner.store.etcd.gateway import EtcdGateway
from harunner.store.etcd.members import Joined, LeaseLost, Left, Membership

ROOT = b"/harunner/test-members/"


def membership(cluster, ttl: int = 2) -> Membership:  # type: ignore[no-untyped-def]
    return Membership(EtcdGateway(cluster.endpoints), ROOT, ttl, time.monotonic)


def test_incarnations_are_unique_under_racing_runners(etcd1) -> None:  # type: ignore[no-untyped-def]
    got: list[int] = []
    lock = threading.Lock()

    def allocate() -> None:
        mine = membership(etcd1)
        for _ in range(10):
            number = mine.allocate_incarnation()
            with lock:
                got.append(number)

    threads = [threading.Thread(target=allocate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got) == list(range(1, 41))


def test_register_list_watch_and_revoke(etcd1) -> None:  # type: ignore[no-untyped-def]
    a, b = membership(etcd1), membership(etcd1)
    ia, ib = a.allocate_incarnation(), b.allocate_incarnation()
    a.register(ia, "host-a", 0, 111)
    members, revision = a.members()
    assert set(members) == {ia} and members[ia].host == "host-a"
    watch = a.watch(revision)
    lease_b = b.register(ib, "host-b", 1, 222)
    a.revoke(lease_b)
    seen: list = []
    wait_until(lambda: seen.extend(a.changes(watch.poll(0.1))) or len(seen) >= 2, 5.0,
               "join and leave")
    watch.close()
    assert isinstance(seen[0], Joined) and seen[0].member.slot == 1
    assert seen[1] == Left(ib)
    a.revoke(lease_b)  # a lease already gone: no error


def test_keep_alive_from_the_loop_keeps_the_key_past_its_ttl(etcd1) -> None:  # type: ignore[no-untyped-def]
    m = membership(etcd1, ttl=2)
    incarnation = m.allocate_incarnation()
    m.register(incarnation, "h", 0, 1)
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        m.keep_alive(time.monotonic())
        time.sleep(0.05)
    assert incarnation in m.members()[0]


def test_a_revoked_lease_is_lost_at_the_next_keep_alive(etcd1) -> None:  # type: ignore[no-untyped-def]
    m, peer = membership(etcd1), membership(etcd1)
    lease = m.register(m.allocate_incarnation(), "h", 0, 1)
    peer.revoke(lease)
    with pytest.raises(LeaseLost, match="gone"):
        m.keep_alive(time.monotonic() + 1.0)


def test_a_loop_that_stopped_turning_loses_its_key(etcd1) -> None:  # type: ignore[no-untyped-def]
    m = membership(etcd1, ttl=2)
    incarnation = m.allocate_incarnation()
    m.register(incarnation, "h", 0, 1)
    # no keep-alive: the key must go by itself, and the next keep-alive must say so
    wait_until(lambda: incarnation not in m.members()[0], 6.0, "the key to expire")
    with pytest.raises(LeaseLost):
        m.keep_alive(time.monotonic())


def test_etcd_unreachable_for_a_whole_ttl_counts_as_lost(etcd1) -> None:  # type: ignore[no-untyped-def]
    m = membership(etcd1, ttl=2)
    m.register(m.allocate_incarnation(), "h", 0, 1)
    start = time.monotonic()
    etcd1.stop()
    m.keep_alive(start + 1.0)  # unreachable, but not yet for a TTL: tries again soon
    with pytest.raises(LeaseLost, match="not refreshed"):
        m.keep_alive(start + 2.5)
