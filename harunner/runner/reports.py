"""What a runner says about its judgements: the log line and the event, in one place."""

from __future__ import annotations

import logging

from harunner.store.events import EventLog

log = logging.getLogger("harunner.runner")


def detected(events: EventLog, slot: int, incarnation: int, reason: str) -> None:
    """A peer incarnation was judged dead."""
    log.warning("runner slot %d incarnation %d is dead: %s", slot, incarnation, reason)
    events.emit("detected", slot=slot, incarnation=incarnation, reason=reason)


def paused(events: EventLog, slot: int, seconds: float) -> None:
    """This runner found it was itself paused (or busy, deaf to the bus)."""
    log.warning("runner slot %d was paused (or busy, deaf to the bus) for %.0f ms",
                slot, seconds * 1000)
    events.emit("paused", slot=slot, ms=round(seconds * 1000))
