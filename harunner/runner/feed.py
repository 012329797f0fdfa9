"""How a runner learns what changed in the store: the change feed, and the full pass.

`Feed.look(now)` reads the records changed since its cursor (brief records:
no args, result or history, which the core never needs, and none of a job
never claimed; at most FEED_BATCH rows per look, the rest at the next turn).
It looks when `due(now)`: at once after `ring()` (the doorbell, a bus poke),
again at once while a look comes back full, and otherwise every FEED_EVERY
seconds. `Feed.full(mine)` is the full pass of a start or of a recovery:
every RUNNING record, and those of the jobs this runner's workers run, with
the cursor moved to the store's head first (what changes after that is seen
by the next look).

Invariants: the cursor only moves forward; a look costs what changed since
the last one, never what the store holds; store errors are logged and the
look returns nothing (the next one reads from the same cursor).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from harunner.errors import StoreError
from harunner.store import JobRecord
from harunner.store.contract import JobStore

FEED_EVERY = 1.0      # a look at the change feed when nothing rang the doorbell
FEED_BATCH = 500      # changed records read per look; the rest on the next turn
log = logging.getLogger("harunner.runner")


class Feed:
    """One runner's cursor on the store's change feed."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.cursor = 0
        self.next_look = 0.0

    def ring(self) -> None:
        """Something changed: look at the next turn."""
        self.next_look = 0.0

    def due(self, now: float) -> bool:
        return now >= self.next_look

    def look(self, now: float) -> list[JobRecord]:
        """The records changed since the last look (brief)."""
        try:
            records, self.cursor = self.store.changes(self.cursor, FEED_BATCH, brief=True)
        except StoreError as error:
            log.warning("cannot read the change feed: %s", error)
            records = []
        self.next_look = now if len(records) == FEED_BATCH else now + FEED_EVERY
        return records

    def full(self, mine: Iterable[str]) -> list[JobRecord] | None:
        """Every RUNNING record and those of `mine`; None if the store cannot be read."""
        try:
            head = self.store.head()  # changes from here on are followed by `look`
            records = self.store.running()
            self.cursor = max(self.cursor, head)
        except StoreError as error:
            log.warning("cannot list jobs: %s", error)
            return None
        listed = {record.job_id for record in records}
        for job_id in mine:
            if job_id not in listed:
                try:
                    records.append(self.store.get(job_id))
                except StoreError:
                    continue
        return records
