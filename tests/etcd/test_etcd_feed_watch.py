"""The job watch a runner waits on (etcd mode): readable when a job changes on any host,
and quiet again once taken in, so a loop waiting on it never spins on the same bytes."""

from __future__ import annotations

import select
import uuid
from pathlib import Path

import pytest

from harunner.polling import wait_until
from harunner.store.etcd.store import EtcdStore

pytestmark = pytest.mark.integration


def readable(fd: int, wait: float = 0.0) -> bool:
    return bool(select.select([fd], [], [], wait)[0])


def test_the_job_watch_rings_for_another_hosts_change_and_is_quiet_once_taken_in(
        etcd_node, tmp_path: Path) -> None:  # noqa: ANN001
    cluster = f"w{uuid.uuid4().hex[:12]}"
    runner = EtcdStore(etcd_node.endpoints, tmp_path / "runner", cluster=cluster)
    client = EtcdStore(etcd_node.endpoints, tmp_path / "client", cluster=cluster)
    try:
        runner.init()
        client.init()
        assert runner.feed_fileno() is None  # no watch before the first look
        _, cursor = runner.changes(0, 100)
        first = client.submit("hostjobs.noop", {})
        records, cursor = runner.changes(cursor, 100)
        fd = runner.feed_fileno()
        assert fd is not None and first.job_id in {r.job_id for r in records}
        assert not readable(fd, 0.2)  # nothing new: a loop waiting on it sleeps

        second = client.submit("hostjobs.noop", {})  # "another host" changes a job
        wait_until(lambda: readable(fd), 5, "the watch to ring", 0.005)
        runner.feed_ready()  # what a runner does when it rang
        assert not readable(fd, 0.1)  # the same bytes do not ring again
        records, cursor = runner.changes(cursor, 100)
        assert [r.job_id for r in records] == [second.job_id]  # and nothing was lost
    finally:
        runner.close()
        client.close()
