"""The group commit's bookkeeping: attempts waiting for a commit, the batch in flight, claims.

The executor puts ended attempts in `ready` (`add`) and the runner's claim in
`wanted`; `next_batch` takes what waits (at most GROUP_MAX attempts, and the
claim) once the recorder is free; `send` hands the finishes of that batch to
the recorder; `returned` gives, once the commit is back, each attempt of the
batch with its new record or why it was left out, and keeps what the claim
won for `take_claimed`. Invariants: one batch in flight at a time (the
recorder's own rule); an attempt is in exactly one of `ready` and the batch
in flight until it is returned; `claiming` is the room of the claim in flight,
so that the executor never asks for more than it has room for.
"""

from __future__ import annotations

from harunner.errors import StoreError
from harunner.executor.outcomes import Ended, Finish
from harunner.executor.recorder import Recorder
from harunner.store import JobRecord, JobStore
from harunner.store.transitions import Claim, Outcome

GROUP_MAX = 256  # outcomes committed together at most (the rest wait for the next)
# Finishes with no claim to ride with them wait up to LINGER for company (GROUP_ENOUGH of
# them go at once): a trickle of short jobs then costs one commit per few jobs, not per job.
LINGER = 0.005
GROUP_ENOUGH = 8
RECORD_LOCK_WAIT = 0.02  # a job lock busy longer than this is retried later: the loop never stalls


class GroupCommit:
    """What one executor has on its way to the store, and what came back."""

    def __init__(self, store: JobStore, lock_wait: float = RECORD_LOCK_WAIT) -> None:
        self.recorder = Recorder(store, lock_wait)
        self.ready: list[Ended] = []  # ended attempts waiting for the next commit
        self.wanted: Claim | None = None  # the claim to send with the next batch
        self.claiming = 0  # the room of the claim in flight
        self._in_flight: list[tuple[Ended, Finish]] = []
        self._claimed: list[JobRecord] = []  # won, not yet taken by the runner
        self.ready_since = 0.0  # when the oldest of `ready` arrived

    def add(self, ended: list[Ended], now: float) -> None:
        """Attempts that ended, to go with the next commit."""
        if ended and not self.ready:
            self.ready_since = now
        self.ready.extend(ended)

    def lingers_until(self) -> float | None:
        """When finishes that wait for company go anyway, if some wait so."""
        if self.wanted is not None or not self.ready or len(self.ready) >= GROUP_ENOUGH:
            return None
        return self.ready_since + LINGER

    def next_batch(self, now: float | None = None) -> tuple[list[Ended], Claim | None] | None:
        """What to send now, if the recorder is free and anything waits (with `now`: not
        lone finishes younger than LINGER; without it, everything, as at shutdown)."""
        if self.recorder.busy or not (self.ready or self.wanted):
            return None
        until = self.lingers_until()
        if now is not None and until is not None and now < until:
            return None
        batch, self.ready = self.ready[:GROUP_MAX], self.ready[GROUP_MAX:]
        claim, self.wanted = self.wanted, None
        return batch, claim

    def send(self, pending: list[tuple[Ended, Finish]], claim: Claim | None) -> None:
        """Commit these finishes (and the claim) on the recorder's thread."""
        if not pending and claim is None:
            return
        self._in_flight = pending
        self.claiming = claim.room if claim is not None else 0
        self.recorder.submit([Outcome(f.job_id, f.generation, f.result, f.error, f.retry_at,
                                      held=item.record) for item, f in pending], claim)

    def returned(self, wait: float | None = 0.0
                 ) -> list[tuple[Ended, JobRecord | StoreError]] | None:
        """The batch in flight, each attempt with its new record or why not, once the
        commit is back (`wait` None: wait for it); None while it is not."""
        done = self.recorder.collect(wait)
        if done is None:
            return None
        pending, self._in_flight = self._in_flight, []
        per, claimed = done
        self._claimed += claimed
        self.claiming = 0
        if isinstance(per, StoreError):  # the database is busy or full: all of them later
            per = [per for _ in pending]
        return [(item, outcome) for (item, _), outcome in zip(pending, per, strict=True)]

    def take_claimed(self) -> list[JobRecord]:
        claimed, self._claimed = self._claimed, []
        return claimed

    @property
    def has_claimed(self) -> bool:
        return bool(self._claimed)

    def drop(self, job_id: str) -> None:
        """Forget a killed job's attempt that waits for a commit."""
        self.ready = [item for item in self.ready if item.record.job_id != job_id]
