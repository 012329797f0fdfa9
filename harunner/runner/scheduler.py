"""Claiming work: each runner takes due PENDING jobs for its own free workers.

Every runner, primary or standby, claims for itself: when it has room (free
workers, plus a short queue ahead of them while attempts are short:
`harunner.executor.lookahead`),
it reads the earliest due PENDING jobs through the store's index and moves
them PENDING@g -> RUNNING@g+1 owned by itself, inside one write transaction
(`Claim`, a compare-and-set per job): the query runs under SQLite's write
lock, so two runners never claim the same job. The claim rides with the
executor's next commit of outcomes (`request` / `won`), so the runner's loop
never waits for the write lock to claim. A runner with more room takes more, so work goes where
workers are free without a primary counting anyone's load.

When it looks: at once when poked (a client rang the store's doorbell, an
attempt ended while its last claim had filled its room, it was just
started), again at once while it is still finding work, and otherwise every
`rescan` seconds (a retry whose back-off ran out
needs no poke). A client rings one runner (`harunner.store.wakeup`); the ring
is passed on to the next runner when this one's claim fills the room it asked
for, or when every worker is busy with nothing queued (`rung`, `to_pass`,
`won`), so the others are woken only when jobs may be left waiting. Each look
is one indexed query bounded by the room it has, so its cost does not grow
with the number of pending or finished jobs.

Claimed jobs stuck in the queue behind longer ones are given back
(`give_back`: PENDING again at their generation, the claim not counted as an
attempt), and the first runner of a new cluster takes the scheduler duty
(`claim_duty`), both by compare-and-set in the store. Store errors propagate:
the runner logs them and tries again on a later turn.
"""

from __future__ import annotations

import logging

from harunner import metrics
from harunner.errors import StoreError, UnknownJobError
from harunner.store import SCHEDULER_JOB, JobRecord, JobState, Owner
from harunner.store.contract import JobStore
from harunner.store.transitions import Claim, Release, TakeOver

log = logging.getLogger("harunner.runner")


class Scheduler:
    """This runner's claims on due PENDING jobs."""

    def __init__(self, store: JobStore, me: Owner, rescan: float = 1.0) -> None:
        self.store = store
        self.me = me
        self.rescan = rescan
        self.next_look = 0.0
        self.asked = 0
        self.ring: int | None = None      # the hops of a ring not yet answered by a claim
        self.more = True  # the last claim filled its room: more may be due than it took
        self.ringing: int | None = None   # the hops of the ring the claim in flight answers

    def poke(self) -> None:
        """Look at the next turn: something may have become due."""
        self.next_look = 0.0

    def attempt_ended(self) -> None:
        """An attempt ended, so there is room: look now if the last claim left due jobs
        behind. If it took all that were due, what came since rang a runner's doorbell (the
        first slot, which answers it) or waits for the periodic look: a runner does not
        claim from another's stream at each end of its own attempts, which spread a stream
        over every runner, each committing on its own."""
        if self.more:
            self.poke()

    def rung(self, hops: int) -> None:
        """The doorbell rang, the ring `hops` hops from its client: look now, and pass the
        ring on if this runner leaves due jobs waiting (`to_pass`, `won`)."""
        self.poke()
        self.ring = hops if self.ring is None else min(self.ring, hops)

    def to_pass(self, saturated: bool) -> int | None:
        """The hops of a ring to pass on now: one this runner cannot answer soon (every
        worker busy, nothing queued: the ring would wait for an attempt to end)."""
        if self.ring is None or not saturated:
            return None
        hops, self.ring = self.ring, None
        return hops + 1

    def due_in(self, now: float) -> float:
        """Seconds until the next look (0 when one is due now)."""
        return max(0.0, self.next_look - now)

    def request(self, now: float, wall: float, room: int) -> Claim | None:
        """The claim to make now, if any: up to `room` jobs due at wall-clock `wall` (the
        executor sends it with its next commit; `won` takes the result)."""
        if room <= 0 or now < self.next_look:
            return None
        self.asked = room
        self.next_look = now + self.rescan  # unless `won` finds the room filled
        if self.ring is not None:
            self.ringing, self.ring = self.ring, None
        return Claim(self.me, room, wall)

    def won(self, now: float, claimed: list[JobRecord]) -> int | None:
        """A claim came back: if it filled its room, more may be due, so look again now,
        and pass on the ring it answered (its hops, if so)."""
        for record in claimed:  # queue wait: from due (submitted, or the retry's time) to claimed
            metrics.claimed(record.name, record.attempts,
                            record.updated_at - max(record.created_at, record.not_before))
        ringing, self.ringing = self.ringing, None
        self.more = len(claimed) >= self.asked
        if self.more:
            self.next_look = now
            return None if ringing is None else ringing + 1
        return None

    def tick(self, now: float, wall: float, room: int) -> list[JobRecord]:
        """Claim up to `room` due jobs for this runner now, in a transaction of its own."""
        claim = self.request(now, wall, room)
        if claim is None:
            return []
        claimed = self.store.settle([], claim)[1]
        self.won(now, claimed)
        return claimed

    def give_back(self, overdue: list[JobRecord]) -> list[JobRecord]:
        """Give back claimed jobs that never started; the records given back."""
        return self.store.release_many([Release(r.job_id, r.generation, self.me)
                                        for r in overdue])

    def claim_duty(self) -> JobRecord | None:
        """Create and claim the scheduler duty if it is free; the claimed record, if won."""
        try:
            record = self.store.get(SCHEDULER_JOB)
        except UnknownJobError:
            record = self.store.submit(SCHEDULER_JOB, {}, job_id=SCHEDULER_JOB)
        if record.state is not JobState.PENDING:
            return None
        return self.store.assign(SCHEDULER_JOB, self.me, record.generation)

    def take_over(self, decided: list[tuple[str, int]]
                  ) -> tuple[list[JobRecord], list[tuple[str, int]], list[tuple[str, int]]]:
        """Raise decided (job, generation)s to this runner in one transaction: (the records
        raised, those whose job lock was busy or the database busy: to retry, those that no
        longer apply). Never waits for a job lock."""
        items = [TakeOver(job_id, generation, self.me) for job_id, generation in decided]
        try:
            applied, busy = self.store.take_over_many(items)
        except StoreError as error:  # the database itself is busy or full: all of them later
            log.info("take-over of %d jobs deferred: %s", len(items), error)
            applied, busy = [], items
        done = {record.job_id for record in applied}
        later = [(item.job_id, item.generation) for item in busy]
        gone = [pair for pair in decided if pair[0] not in done and pair not in later]
        return applied, later, gone
