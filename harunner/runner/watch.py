"""What a runner measures of failovers: causes and latencies, for `harunner.metrics`.

The shell tells it of every death the ownership core detected (`detected`)
and of every job it took over (`took_over`, with the record as this runner
knew it before). A job taken over from an owner whose death was seen counts
as a failover with that death's cause: "crash" (the OS reported the exit,
or a newer incarnation of the slot beat) or "hang" (silence past the hang
timeout); an owner never seen dead here (a whole cluster that restarted,
this slot's own earlier incarnation) gives "restart". Latency "owned" runs
from the death (a crash: when it was detected, within milliseconds of the
exit; a hang: the owner's last beat) to the take-over, on the monotonic
clock. Memory: one entry per dead incarnation, the oldest dropped past
`KEEP`.
"""

from __future__ import annotations

import re

from harunner import metrics
from harunner.store import JobRecord

KEEP = 256
SILENCE = re.compile(r"hung \((\d+) ms")


class FailoverWatch:
    def __init__(self) -> None:
        self.deaths: dict[tuple[int, int], tuple[str, float]] = {}  # -> cause, died at

    def detected(self, slot: int, incarnation: int, reason: str, now: float) -> None:
        """The core declared (slot, incarnation) dead for `reason` at `now`."""
        silence = SILENCE.match(reason)
        if silence is not None:
            seconds = int(silence.group(1)) / 1000
            metrics.failover_stage("detect", seconds)
            self.deaths[(slot, incarnation)] = ("hang", now - seconds)
        else:
            self.deaths[(slot, incarnation)] = ("crash", now)
        while len(self.deaths) > KEEP:
            del self.deaths[next(iter(self.deaths))]

    def took_over(self, before: JobRecord | None, after: JobRecord, now: float) -> None:
        """This runner raised `after`; `before` is the record it knew (None: not seen)."""
        owner = before.owner if before is not None else None
        death = None if owner is None else self.deaths.get((owner.slot, owner.incarnation))
        if death is None:
            metrics.failover("restart", None)
        else:
            metrics.failover(death[0], now - death[1])
