"""Deliberately broken variants of the ownership core, which the simulated cluster must catch.

Each is a subclass of `OwnershipCore` defined here, in the tests: the
production code has no mutant flags. `MUTANTS` maps a name to the runner
class that uses it and the invariant expected to catch it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from cluster_sim import SimRunner

from harunner.paxos import InstanceKey, Value
from harunner.runner.actions import Action, Paused, Propose, Start, TakeOver
from harunner.runner.ownership import OwnershipCore
from harunner.store.model import JobRecord


class TakeOverWithoutDecision(OwnershipCore):
    """Takes its orphans straight into the store, without waiting for Paxos."""

    def _propose(self, now: float, fresh: bool = True) -> list[Action]:
        values = self.takeover.proposals(self.records.values(), self.detector, now, fresh)
        actions: list[Action] = []
        for (job_id, generation), value in values.items():
            if value == self.value:
                self.awaiting[job_id] = generation
                actions.append(TakeOver(job_id, generation))
        others = {k: v for k, v in values.items() if v != self.value}
        return actions + ([Propose(others)] if others else [])


class NoForgiveAfterPause(OwnershipCore):
    """Notices its own pause but keeps counting it as its peers' silence."""

    def _forgive(self, now: float, gap: float) -> list[Action]:
        return [Paused(gap)]


class JudgeBeforePauseCheck(OwnershipCore):
    """The bug of issue 12: judges silent peers first, and only then looks at its own pause."""

    def listened(self, now: float) -> list[Action]:
        self.last_listen = now
        return []

    def tick(self, now: float) -> list[Action]:
        deaths = self.detector.tick(now)
        actions = self._deaths(deaths) if deaths else []  # proposed at once, as the old loop did
        return actions + self._awake(now)


class StartBeforeRaise(OwnershipCore):
    """Starts the worker as soon as Paxos decides, before the store has raised the generation."""

    def decided(self, decisions: Mapping[InstanceKey, Value], now: float) -> list[Action]:
        actions = super().decided(decisions, now)
        for action in list(actions):
            if isinstance(action, TakeOver) and action.job_id in self.records:
                record = replace(self.records[action.job_id], generation=action.generation,
                                 owner=self.me)
                self.workers[action.job_id] = action.generation
                actions.append(Start(record))
        return actions


class AcceptOlderRecord(OwnershipCore):
    """Takes in any record it is given, even one older than a record it already saw."""

    def _merge(self, record: JobRecord) -> list[Action]:
        self.records.pop(record.job_id, None)
        return super()._merge(record)


class WaitForDecidedOwnerForever(OwnershipCore):
    """Never moves a job past a decided generation, even when that owner died before raising it."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.takeover._next_generation = self._patient  # type: ignore[method-assign]
        self._original = type(self.takeover)._next_generation.__get__(self.takeover)

    def _patient(self, record, detector, now, fresh=True):  # type: ignore[no-untyped-def]
        decided = self.takeover.decided.get(record.job_id)
        if decided is not None and decided[0] > record.generation:
            return None
        return self._original(record, detector, now, fresh)


def runner_with(core_class: type[OwnershipCore]) -> type[SimRunner]:
    return type(f"{core_class.__name__}Runner", (SimRunner,), {"core_class": core_class})


MUTANTS: dict[str, tuple[type[SimRunner], str]] = {
    "take-over-without-decision": (runner_with(TakeOverWithoutDecision), "one_owner"),
    "no-forgive-after-pause": (runner_with(NoForgiveAfterPause), "healthy_keeps"),
    "judge-before-pause-check": (runner_with(JudgeBeforePauseCheck), "healthy_keeps"),
    "start-before-raise": (runner_with(StartBeforeRaise), "one_owner"),
    "accept-older-record": (runner_with(AcceptOlderRecord), "monotonic"),
    "wait-for-decided-owner-forever": (runner_with(WaitForDecidedOwnerForever), "recovered"),
}
