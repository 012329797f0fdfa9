"""What a crash test found: kill points, the outcome of each run, and the report's text.

Plain data and formatting, no I/O. A `KillPoint` says where the process
running the job was SIGKILLed; a `RunOutcome` what one run (with or without a
kill, then resumed to the end) produced; a `CrashReport` holds the reference
run and every kill point's outcome. A run passes when it was killed where it
was planned, resumed from the last acknowledged checkpoint, and ended with
the reference's state, result, error and `observe()` value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

AFTER = "after"
BEFORE = "before"
BETWEEN = "between"
LINES = " (lines)"


@dataclass(frozen=True)
class KillPoint:
    """Where to SIGKILL the first process of a run.

    `after` k: right after checkpoint k is acknowledged; `before` k: when the
    job asks for checkpoint k, before it is written; `between` k: `delay`
    seconds after checkpoint k was acknowledged (k = 0: after the job started).
    """

    kind: str
    checkpoint: int
    delay: float = 0.0

    @property
    def label(self) -> str:
        if self.kind == BETWEEN:
            since = "start" if self.checkpoint == 0 else f"checkpoint {self.checkpoint}"
            return f"{self.delay * 1000:.1f} ms after {since}"
        return f"{self.kind} checkpoint {self.checkpoint}"

    @property
    def position(self) -> tuple[int, int, float]:
        """Sort key: the order in which the points occur in a run of the job."""
        if self.kind == AFTER:
            return (self.checkpoint, 0, 0.0)
        if self.kind == BETWEEN:
            return (self.checkpoint, 1, self.delay)
        return (self.checkpoint - 1, 2, 0.0)


@dataclass(frozen=True)
class RunOutcome:
    """One run of the job: how it was killed, where it resumed, what it ended with."""

    point: KillPoint | None
    killed: bool                       # the first process died by SIGKILL
    killed_at: int | None              # the last acknowledged checkpoint then (0: none)
    state_at_kill: dict[str, Any] | None
    resumed_from: int | None           # the checkpoint the next process started from
    processes: int
    state: str
    result: Any
    error: str | None
    observed: Any
    seconds: float
    problem: str | None = None         # why this run does not pass, or None

    @property
    def passed(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class CrashReport:
    """The reference run, and the outcome at every kill point (in job order)."""

    job: str
    reference: RunOutcome
    checkpoints: int
    outcomes: tuple[RunOutcome, ...]
    seconds: float
    seed: int

    @property
    def passed(self) -> bool:
        return self.reference.passed and all(outcome.passed for outcome in self.outcomes)

    @property
    def failures(self) -> tuple[RunOutcome, ...]:
        return tuple(outcome for outcome in self.outcomes if not outcome.passed)

    @property
    def first_failure(self) -> RunOutcome | None:
        failures = self.failures
        return failures[0] if failures else None

    def table(self) -> str:
        """One line per kill point: where, what was acknowledged, where it resumed, verdict."""
        rows = [("kill point", "killed", "ckpt", "resumed", "procs", "verdict")]
        for outcome in self.outcomes:
            assert outcome.point is not None
            rows.append((outcome.point.label, _killed(outcome),
                         _number(outcome.killed_at), _number(outcome.resumed_from),
                         str(outcome.processes), "ok" if outcome.passed else "DIFFERS"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths,
                                                                             strict=True)).rstrip()
                         for row in rows)

    def summary(self) -> str:
        """One line: how many kill points passed, and the time taken."""
        bad = len(self.failures)
        verdict = "all pass" if self.passed else f"{bad} differ"
        return (f"crash test of {self.job} (seed {self.seed}): {len(self.outcomes)} kill points "
                f"over {self.checkpoints} checkpoints, {verdict}, {self.seconds:.2f}s")

    def message(self) -> str:
        """The text of a failure: the first differing kill point, its state, then the table."""
        lines = [self.summary()]
        if not self.reference.passed:
            lines.append(f"the run without faults failed: {self.reference.problem}")
            return "\n".join(lines)
        first = self.first_failure
        if first is not None and first.point is not None:
            lines.append(f"first kill point that differs: {first.point.label}")
            state = "none" if first.state_at_kill is None else _short(first.state_at_kill)
            lines.append(f"  acknowledged checkpoint at the kill: {_number(first.killed_at)}, "
                         f"state {state}")
            lines.append(f"  {first.problem}")
        lines.append(self.table())
        return "\n".join(lines)


def difference(reference: RunOutcome, got: RunOutcome) -> str | None:
    """How `got` ended differently from `reference` (state, result, error, observe()), or None."""
    for what, ours, theirs in (("state", got.state, reference.state),
                               ("error", got.error, reference.error),
                               ("result", got.result, reference.result),
                               ("observe()", got.observed, reference.observed)):
        if ours != theirs:
            return f"{what} differs: {first_difference(theirs, ours)}"
    return None


def first_difference(expected: Any, got: Any) -> str:
    """Where two values first differ, as short text: 'at [3]: expected …, got …'."""
    path = ""
    while True:
        if isinstance(expected, list) and isinstance(got, list):
            pairs = enumerate(zip(expected, got, strict=False))
            index = next((i for i, (a, b) in pairs if a != b), None)
            if index is None:
                longer = got if len(got) > len(expected) else expected
                word = "extra" if longer is got else "missing"
                return (f"{path or 'the list'} has {len(got)} items, expected {len(expected)}; "
                        f"first {word}: {_short(longer[min(len(got), len(expected))])}")
            step = f" line {index + 1}" if path.endswith(LINES) else f"[{index}]"
            path = (path.removesuffix(LINES) + step).strip()
            expected, got = expected[index], got[index]
        elif isinstance(expected, dict) and isinstance(got, dict) and expected.keys() == got.keys():
            key = next(k for k in expected if expected[k] != got[k])
            path, expected, got = f"{path}[{key!r}]", expected[key], got[key]
        elif isinstance(expected, str) and isinstance(got, str) and "\n" in expected + got:
            expected, got = expected.splitlines(), got.splitlines()
            path = f"{path}{LINES}"
        else:
            where = f"at {path}: " if path else ""
            return f"{where}expected {_short(expected)}, got {_short(got)}"


def _killed(outcome: RunOutcome) -> str:
    """yes, no, or "late": killed after the job's outcome was already recorded."""
    if not outcome.killed:
        return "no"
    return "yes" if outcome.processes > 1 or outcome.point is None else "late"


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)


def _short(value: Any, limit: int = 200) -> str:
    try:
        text = json.dumps(value, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
