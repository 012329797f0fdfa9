"""The failure detector: which runner incarnations are alive, suspected or dead.

Pure: beats, exit notices and `now` (monotonic seconds) go in; events come out.
A runner is *suspected* after `suspect_after` seconds of silence (a hint only)
and declared *dead* either at once by the supervisor's exit notice (the OS saw
it exit) or after `hang_timeout` seconds of silence (hung: SIGSTOP, deadlock).
A newer incarnation of a slot implies the older one is dead. A hung runner
that beats again is *revived*: it is still the only process of its slot, but
the jobs it owned have been, or are being, taken over.

Silence counts only over time this runner was awake to hear it: after this
runner's own pause, `forgive` gives every peer not known to have exited a
fresh hang timeout, including a peer judged hung before the pause (its
beats may be queued, not yet delivered). A peer that is still hung is judged
again one hang timeout later.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from harunner.net.bus import Beat


class Liveness(str, Enum):
    ALIVE = "alive"
    SUSPECTED = "suspected"
    DEAD = "dead"


@dataclass
class PeerView:
    slot: int
    incarnation: int
    pid: int
    role: str
    last_beat: float
    liveness: Liveness = Liveness.ALIVE
    owned: int = 0
    exited: bool = False


@dataclass(frozen=True)
class Died:
    slot: int
    incarnation: int
    reason: str


@dataclass(frozen=True)
class Joined:
    slot: int
    incarnation: int


Event = Died | Joined


class FailureDetector:
    """Tracks the newest known incarnation of every slot."""

    def __init__(self, suspect_after: float, hang_timeout: float) -> None:
        self.suspect_after = suspect_after
        self.hang_timeout = hang_timeout
        self.peers: dict[int, PeerView] = {}
        self.dead: dict[int, int] = {}  # slot -> highest incarnation known dead

    def beat(self, beat: Beat, now: float) -> list[Event]:
        """Record a heartbeat; a new incarnation of a slot buries the old one."""
        view = self.peers.get(beat.slot)
        events: list[Event] = []
        if view is not None and (beat.incarnation < view.incarnation or (
                view.exited and beat.incarnation == view.incarnation)):
            return events  # late: from an older incarnation, or sent before its exit
        if view is not None and beat.incarnation > view.incarnation:
            if view.liveness is not Liveness.DEAD:
                events.append(self._bury(view, "restarted"))
            view = None
        if view is None or view.liveness is Liveness.DEAD:
            events.append(Joined(beat.slot, beat.incarnation))
        self.peers[beat.slot] = PeerView(beat.slot, beat.incarnation, beat.pid, beat.role, now,
                                         Liveness.ALIVE, beat.owned)
        return events

    def exit_notice(self, slot: int, pid: int) -> list[Died]:
        """The process `pid` of `slot` exited: its incarnation is dead now."""
        view = self.peers.get(slot)
        if view is None or view.pid != pid or view.liveness is Liveness.DEAD:
            return []
        view.exited = True
        return [self._bury(view, "exited")]

    def tick(self, now: float) -> list[Died]:
        """Suspect quiet runners; declare dead those quiet past the hang timeout."""
        events: list[Died] = []
        for view in self.peers.values():
            if view.liveness is Liveness.DEAD:
                continue
            silence = now - view.last_beat
            if silence > self.hang_timeout:
                events.append(self._bury(view, f"hung ({silence * 1000:.0f} ms without a beat)"))
            elif silence > self.suspect_after:
                view.liveness = Liveness.SUSPECTED
        return events

    def _bury(self, view: PeerView, reason: str) -> Died:
        view.liveness = Liveness.DEAD
        self.dead[view.slot] = max(self.dead.get(view.slot, -1), view.incarnation)
        return Died(view.slot, view.incarnation, reason)

    def forgive(self, now: float) -> None:
        """After this process itself was paused, restart every peer's silence count.

        Peers judged hung are revived too: their silence was heard partly while
        this process was deaf. Peers that exited (or were replaced) stay dead.
        """
        for view in self.peers.values():
            if not view.exited:
                view.liveness = Liveness.ALIVE
                view.last_beat = max(view.last_beat, now)

    def is_live(self, slot: int, incarnation: int) -> bool:
        """True if (slot, incarnation) is the newest known incarnation and not dead."""
        view = self.peers.get(slot)
        return (view is not None and view.incarnation == incarnation
                and view.liveness is not Liveness.DEAD)

    def live_slots(self) -> list[int]:
        return sorted(s for s, v in self.peers.items() if v.liveness is not Liveness.DEAD)
