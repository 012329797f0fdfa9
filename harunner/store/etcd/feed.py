"""The etcd backend's change feed: job records changed after a revision, from a watch.

The cursor is an etcd revision. `changes(after, limit)` follows one watch on the
`jobs/` prefix, opened from `after + 1` and kept open while the caller goes on from
the cursor it was given, so a call costs what changed since, never a scan of all
jobs. To know when it has everything up to now, it reads the `head` key, which
every txn that changes a job record also writes: the head's mod_revision is the
revision of the newest job change, and that revision has a job-key event on the
watch. A call returns once the watch has delivered up to the head (or after
`wait` seconds with what it has: the cursor then stays where the delivered
events end, so nothing is missed).

Invariants:
- events come in revision order; the returned cursor is the revision of the last
  event returned, and a revision is never split (one txn's jobs come together,
  so `limit` may be exceeded by the rest of one txn): no change missed, none twice;
- a watch whose start was compacted away falls back to one range of `jobs/` with
  `min_mod_revision` (a scan of the job keys, once per compaction that outran the
  cursor: etcd reads the whole range for a filtered range), then watches again;
- within one answer a job appears once, at its newest change; deleted (pruned)
  jobs are passed, not returned.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from harunner.errors import CorruptFileError
from harunner.store.etcd.gateway import (
    EtcdUnavailable,
    GatewayWatch,
    KeyValue,
    WatchCompacted,
    WatchEvent,
)
from harunner.store.etcd.keys import Keys, end_of
from harunner.store.etcd.kv import EtcdKV
from harunner.store.etcd.txns import decode
from harunner.store.model import JobRecord, JobState

Report = Callable[[CorruptFileError], None]


def brief(record: JobRecord) -> JobRecord:
    """The record without args, result and history (the runners' feed)."""
    return JobRecord(**{**record.__dict__, "args": {}, "result": None, "history": ()})


class Feed:
    """The change feed of one cluster; one watch per process and thread."""

    def __init__(self, kv: EtcdKV, keys: Keys, report: Report, wait: float = 5.0) -> None:
        self.kv = kv
        self.keys = keys
        self.report = report
        self.wait = wait
        self._local = threading.local()

    def head(self) -> int:
        """The revision of the newest change of a job record (0 if none yet)."""
        found = self.kv.get(self.keys.head)
        return 0 if found is None else found.mod_revision

    def close(self) -> None:
        self._drop()

    def fileno(self) -> int | None:
        """The socket of this thread's watch (readable when a change arrives), or None."""
        watch = getattr(self._local, "watch", None)
        return watch.fileno() if watch is not None and self._local.pid == os.getpid() else None

    def pump(self) -> None:
        """This thread's watch became readable: take in its bytes (a broken one is dropped
        and reopened by the next `changes`)."""
        watch = getattr(self._local, "watch", None)
        if watch is None or self._local.pid != os.getpid():
            return
        try:
            watch.read_available()
        except EtcdUnavailable:
            self._drop()

    def changes(self, after: int, limit: int, brief_only: bool = False
                ) -> tuple[list[JobRecord], int]:
        """Records changed after revision `after`, in revision order; and the next cursor."""
        head = self.head()
        if head <= after:
            return [], after
        try:
            events = self._events(after, head, limit)
        except WatchCompacted:
            self._drop()
            events = self._scan(after, limit)
        last = events[-1].mod_revision if events else after
        return self._records(events, brief_only), last

    def _events(self, after: int, head: int, limit: int) -> list[WatchEvent]:
        """Whole revisions of events after `after`: up to `head`, or `limit` and the rest of
        the last revision, or what came within `wait` seconds."""
        watch, buffered = self._watch_from(after)
        events: list[WatchEvent] = []
        deadline = time.monotonic() + self.wait
        while True:
            while buffered and (len(events) < limit
                                or buffered[0].mod_revision == events[-1].mod_revision):
                events.append(buffered.pop(0))
            if buffered or (events and events[-1].mod_revision >= head):
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                buffered += watch.poll(min(left, 0.5))
            except EtcdUnavailable:
                self._drop()
                break
        self._local.next = (events[-1].mod_revision if events else after) + 1
        return events

    def _watch_from(self, after: int) -> tuple[GatewayWatch, list[WatchEvent]]:
        """This thread's watch, positioned to deliver revision `after + 1` next."""
        local = self._local
        if (getattr(local, "watch", None) is not None and local.pid == os.getpid()
                and local.next == after + 1):
            return local.watch, local.buffered
        self._drop()
        prefix = self.keys.prefix("jobs")
        watch = self.kv.client().watch(prefix, start_revision=after + 1, prefix=True)
        local.watch, local.buffered, local.pid, local.next = watch, [], os.getpid(), after + 1
        return watch, local.buffered

    def _drop(self) -> None:
        local = self._local
        watch = getattr(local, "watch", None)
        if watch is not None and getattr(local, "pid", None) == os.getpid():
            watch.close()
        local.watch, local.buffered, local.next, local.pid = None, [], None, None

    def _scan(self, after: int, limit: int) -> list[WatchEvent]:
        """After a compaction: the job keys changed after `after`, by mod_revision (a scan)."""
        prefix = self.keys.prefix("jobs")
        found = self.kv.range(prefix, end_of(prefix), min_mod_revision=str(after + 1),
                              sort_target="MOD", sort_order="ASCEND")[0]
        events = [WatchEvent("PUT", kv.key, kv.value, kv.mod_revision) for kv in found]
        if len(events) > limit:
            cut = events[limit - 1].mod_revision
            events = [event for event in events if event.mod_revision <= cut]
        return events

    def _records(self, events: list[WatchEvent], brief_only: bool) -> list[JobRecord]:
        """One record per job, at its newest change, in the order of those changes."""
        newest: dict[str, WatchEvent] = {}
        for event in events:
            job_id = event.key.rsplit(b"/", 1)[1].decode()
            newest.pop(job_id, None)
            newest[job_id] = event
        records = []
        for job_id, event in newest.items():
            if event.kind == "DELETE":
                continue
            try:
                record = decode_event(event, job_id)
            except CorruptFileError as error:
                self.report(error)
                continue
            if brief_only and record.state is JobState.PENDING and record.generation == 0:
                continue
            records.append(brief(record) if brief_only else record)
        return records


def decode_event(event: WatchEvent, job_id: str) -> JobRecord:
    return decode(KeyValue(event.key, event.value, event.mod_revision, 0, 0, 0), job_id)
