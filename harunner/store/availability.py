"""Availability figures from the event log: failovers, their stages, downtime per job.

Pure: `summarize(events, since)` folds the events (dicts as the event log
holds them, in file order) into an `Availability`; it reads no file and no
clock. Memory is bounded by the jobs running at one time, the jobs that had
downtime, and the failovers (one number per stage each), never by every job
the log mentions: a job that ended without downtime is folded into totals.

Definitions (docs/operations.md "Availability report"):
- a failover is the unplanned death of a runner incarnation, with its cause:
  "crash" (the OS reported its exit: peer_exit, exit_notice, runner_exit,
  or a verdict "exited"/"restarted") or "hang" (a verdict "hung (N ms ...)",
  or the supervisor killing it as hung); deaths after the supervisor began
  a clean stop are not failovers;
- its death time is the earliest evidence: the first exit report of a crash,
  or the verdict minus the silence it names for a hang;
- stages, per orphaned job, measured from the death: decide (its Paxos
  instance decided), owned (the new owner raised its record), resume (a
  worker runs it again), checkpoint (its first checkpoint since); detect is
  per failover (first verdict minus death);
- a job needs an owner from the start of an attempt (worker_started) until
  the attempt ends (worker_exit succeeded/failed/retrying/crashed/timeout,
  or fenced at its own generation: cancelled); its downtime is the time it
  needed one while its owner was dead, up to the take-over; availability is
  1 - downtime / needed, both clipped to the window [since, last event].
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harunner.store.model import SCHEDULER_JOB

STAGES = ("detect", "decide", "owned", "resume", "checkpoint")
ENDINGS = frozenset({"succeeded", "failed", "retrying", "crashed", "timeout"})
EXIT_REPORTS = frozenset({"peer_exit", "exit_notice", "runner_exit"})
SILENCE = re.compile(r"hung \((\d+) ms")

Key = tuple[int, int | None]  # a runner incarnation: slot, incarnation (None: not in the log)


@dataclass
class Death:
    cause: str
    died_at: float
    detected_at: float | None = None
    planned: bool = False
    jobs: list[str] = field(default_factory=list)


@dataclass
class Span:
    """A job while it needs an owner: from the start of an attempt to its end."""

    owner: Key
    generation: int
    since: float
    down: Death | None = None  # the failover it waits in
    down_since: float = 0.0
    after: Death | None = None  # taken over after this failover: resume, checkpoint to come
    seen: set[str] = field(default_factory=set)


@dataclass
class JobFigures:
    job: str
    needed: float = 0.0
    down: float = 0.0
    failovers: int = 0

    @property
    def availability(self) -> float:
        return 1.0 if self.needed <= 0 else max(0.0, 1.0 - self.down / self.needed)


@dataclass
class Availability:
    start: float
    end: float
    failovers: dict[str, int]
    jobs_moved: int
    stages: dict[str, list[float]]
    jobs: list[JobFigures]
    clean_attempts: int
    needed: float
    down: float
    still_down: list[str]
    events: int

    @property
    def availability(self) -> float:
        return 1.0 if self.needed <= 0 else max(0.0, 1.0 - self.down / self.needed)

    def to_json(self) -> dict[str, Any]:
        return {
            "window": {"start": self.start, "end": self.end,
                       "seconds": max(0.0, self.end - self.start)},
            "events": self.events,
            "failovers": dict(self.failovers), "jobs_moved": self.jobs_moved,
            "stages": {stage: figures(values) for stage, values in self.stages.items()},
            "availability": self.availability, "needed_seconds": self.needed,
            "down_seconds": self.down, "attempts_without_downtime": self.clean_attempts,
            "jobs": [{"job": j.job, "needed_seconds": j.needed, "down_seconds": j.down,
                      "failovers": j.failovers, "availability": j.availability}
                     for j in self.jobs],
            "still_down": list(self.still_down),
        }


def figures(values: list[float]) -> dict[str, float | int | None]:
    """Count, median, p99 (nearest rank) and worst of `values` (seconds)."""
    ordered = sorted(values)
    if not ordered:
        return {"count": 0, "median": None, "p99": None, "worst": None}
    rank = max(0, math.ceil(0.99 * len(ordered)) - 1)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return {"count": len(ordered), "median": median, "p99": ordered[rank], "worst": ordered[-1]}


class _Fold:
    """The running state of `summarize`."""

    def __init__(self, since: float | None) -> None:
        self.since = since
        self.first: float | None = None
        self.last = 0.0
        self.count = 0
        self.incarnation: dict[int, int] = {}
        self.pids: dict[int, Key] = {}
        self.deaths: dict[Key, Death] = {}
        self.spans: dict[str, Span] = {}
        self.troubled: dict[str, JobFigures] = {}
        self.failovers: dict[str, int] = {"crash": 0, "hang": 0}
        self.stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
        self.moved = 0
        self.clean = 0
        self.needed = 0.0
        self.down = 0.0
        self.stopping = False

    # -- time in the window ---------------------------------------------------------------

    def clipped(self, start: float, end: float) -> float:
        low = start if self.since is None else max(start, self.since)
        return max(0.0, end - low)

    def stage(self, name: str, death: Death, t: float) -> None:
        if not death.planned and (self.since is None or death.died_at >= self.since):
            self.stages[name].append(max(0.0, t - death.died_at))

    # -- the events -----------------------------------------------------------------------

    def feed(self, event: Mapping[str, Any]) -> None:
        t, kind = event.get("t"), event.get("event")
        if not isinstance(t, int | float) or not isinstance(kind, str):
            return
        self.count += 1
        self.first = t if self.first is None else min(self.first, t)
        self.last = max(self.last, t)
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            try:
                handler(event, float(t))
            except (KeyError, TypeError, ValueError):
                pass  # a line of an older or damaged format: skipped

    def _on_runner_started(self, e: Mapping[str, Any], t: float) -> None:
        slot, incarnation = int(e["slot"]), int(e["incarnation"])
        self.incarnation[slot] = incarnation
        self.pids[int(e["pid"])] = (slot, incarnation)
        self.stopping = False

    def _on_stopping(self, e: Mapping[str, Any], t: float) -> None:
        self.stopping = True

    def _exit_report(self, e: Mapping[str, Any], t: float) -> None:
        slot = int(e["slot"])
        key = self.pids.get(int(e["pid"]), (slot, self.incarnation.get(slot)))
        self.die(key, "crash", t, None)

    _on_peer_exit = _on_exit_notice = _on_runner_exit = _exit_report

    def _on_killed_hung(self, e: Mapping[str, Any], t: float) -> None:
        slot = int(e["slot"])
        self.die(self.pids.get(int(e["pid"]), (slot, self.incarnation.get(slot))), "hang", t, t)

    def _on_detected(self, e: Mapping[str, Any], t: float) -> None:
        key = (int(e["slot"]), int(e["incarnation"]))
        silence = SILENCE.match(str(e.get("reason", "")))
        if silence is not None:
            self.die(key, "hang", t - int(silence.group(1)) / 1000, t)
        else:
            self.die(key, "crash", t, t)

    def resolve(self, key: Key) -> Key:
        """Before the log names a slot's incarnation, its exit reports and verdicts are one."""
        slot, incarnation = key
        if key in self.deaths or slot in self.incarnation:
            return key
        if incarnation is None:
            return next((k for k in self.deaths if k[0] == slot), key)
        if (slot, None) in self.deaths:
            self.deaths[key] = self.deaths.pop((slot, None))
        return key

    def die(self, key: Key, cause: str, died_at: float, detected_at: float | None) -> None:
        key = self.resolve(key)
        death = self.deaths.get(key)
        if death is None:
            death = self.deaths[key] = Death(cause, died_at, planned=self.stopping)
            if not death.planned and (self.since is None or died_at >= self.since):
                self.failovers[cause] = self.failovers.get(cause, 0) + 1
            self.orphan(key, death, died_at)
        elif died_at < death.died_at:
            death.died_at = died_at
            for job in death.jobs:
                span = self.spans.get(job)
                if span is not None and span.down is death:
                    span.down_since = max(span.since, died_at)
        if detected_at is not None and death.detected_at is None:
            death.detected_at = detected_at
            self.stage("detect", death, detected_at)

    def orphan(self, key: Key, death: Death, died_at: float) -> None:
        """The jobs `key` owned wait for a new owner (or, in a clean stop, for the restart)."""
        for job, span in list(self.spans.items()):
            same = span.owner == key or (span.owner[0] == key[0] and None in (
                span.owner[1], key[1]))  # a log that begins after the runner started
            if not same or span.down is not None:
                continue
            if death.planned:
                self.close(job, span, died_at)
                continue
            span.down, span.down_since = death, max(span.since, died_at)
            death.jobs.append(job)
            self.moved += 1
            self.figures_of(job).failovers += 1

    def owner(self, e: Mapping[str, Any]) -> Key:
        slot = int(e["slot"])
        return (slot, self.incarnation.get(slot))

    def _on_decided(self, e: Mapping[str, Any], t: float) -> None:
        span = self.spans.get(str(e["job"]))
        if span is not None and span.down is not None and "decide" not in span.seen:
            span.seen.add("decide")
            self.stage("decide", span.down, t)

    def _on_took_over(self, e: Mapping[str, Any], t: float) -> None:
        job = str(e["job"])
        if job == SCHEDULER_JOB:
            return
        span = self.spans.get(job)
        if span is None:  # resumed after a clean stop, or from before the log
            self.spans[job] = Span(self.owner(e), int(e["generation"]), t)
            return
        if span.down is not None:
            lost = self.clipped(span.down_since, t)
            self.down += lost
            self.figures_of(job).down += lost
            self.stage("owned", span.down, t)
            span.after, span.down = span.down, None
            span.seen = {"decide"}
        span.owner, span.generation = self.owner(e), int(e["generation"])

    def _on_worker_started(self, e: Mapping[str, Any], t: float) -> None:
        job = str(e["job"])
        span = self.spans.get(job)
        if span is None:
            self.spans[job] = Span(self.owner(e), int(e["generation"]), t)
            return
        if span.after is not None and "resume" not in span.seen:
            span.seen.add("resume")
            self.stage("resume", span.after, t)
        if span.down is None:
            span.owner, span.generation = self.owner(e), int(e["generation"])

    def _on_first_checkpoint(self, e: Mapping[str, Any], t: float) -> None:
        span = self.spans.get(str(e["job"]))
        if span is not None and span.after is not None and "checkpoint" not in span.seen:
            span.seen.add("checkpoint")
            self.stage("checkpoint", span.after, t)

    def _on_worker_exit(self, e: Mapping[str, Any], t: float) -> None:
        job, outcome = str(e["job"]), str(e.get("outcome"))
        span = self.spans.get(job)
        if span is None or int(e["generation"]) != span.generation or span.down is not None:
            return
        if outcome in ENDINGS or outcome == "fenced":
            self.close(job, span, t)

    # -- ends -----------------------------------------------------------------------------

    def figures_of(self, job: str) -> JobFigures:
        found = self.troubled.get(job)
        if found is None:
            found = self.troubled[job] = JobFigures(job)
        return found

    def close(self, job: str, span: Span, t: float) -> None:
        """The job no longer needs an owner (its attempt ended, or the cluster stopped)."""
        del self.spans[job]
        needed = self.clipped(span.since, t)
        self.needed += needed
        if job in self.troubled:
            self.troubled[job].needed += needed
        else:
            self.clean += 1

    def result(self) -> Availability:
        end = self.last
        still_down = []
        for job, span in list(self.spans.items()):
            if span.down is not None:
                lost = self.clipped(span.down_since, end)
                self.down += lost
                self.figures_of(job).down += lost
                still_down.append(job)
                span.down = None
            self.close(job, span, end)
        start = self.since if self.since is not None else (self.first or end)
        jobs = sorted(self.troubled.values(), key=lambda j: (-j.down, j.job))
        return Availability(start, end, self.failovers, self.moved, self.stages, jobs,
                            self.clean, self.needed, self.down, still_down, self.count)


def summarize(events: Iterable[Mapping[str, Any]], since: float | None = None) -> Availability:
    """The availability figures of `events` (in log order) over [since, last event]."""
    fold = _Fold(since)
    for event in events:
        fold.feed(event)
    return fold.result()
