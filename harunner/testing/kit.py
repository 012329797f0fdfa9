"""The crash-test kit: run a job once without faults, then SIGKILL it at every kill point.

`run_crash_test(job, args, observe)`:
1. runs the job without faults (fresh state directory, real `Store`, real
   `Context`, in a child process) to get the reference outcome, the number K
   of checkpoints and their timing, and the reference `observe()` value;
2. for each kill point (right after checkpoint k and when checkpoint k is
   asked for, k = 1..K, and `points` seeded random moments between two
   checkpoints), runs the job again from scratch in a fresh directory, with
   the first process SIGKILLed at that point, and resumes it as the cluster
   would: generation + 1 (`Store.take_over`), from the last acknowledged
   checkpoint, in a new process, until the job finishes;
3. compares each run's final state, result, error and `observe()` with the
   reference, and checks that the kill really happened where planned and that
   the next process resumed from the last acknowledged checkpoint.

Child processes come from a forkserver that has imported harunner and the
job's module, so a run costs a fork, not an interpreter start
(`harunner.testing.process` runs and kills one child). Invariants: every
kill is a real SIGKILL of a real process (the child to itself at a
checkpoint, the parent through a pidfd for a timed point); every child is
reaped before the run that started it goes on; each run has its own state
directory and working directory (`{workdir}` in the arguments); the runs
resume with `Store.take_over` and the public `Context` only.
"""

from __future__ import annotations

import inspect
import itertools
import os
import random
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from harunner.api import JobSpec, check_arguments, spec_of
from harunner.errors import JobDefinitionError
from harunner.store import JobState, Owner, Store
from harunner.testing.child import ChildRequest, JobRef
from harunner.testing.process import Attempt, forkserver_context, run_attempt
from harunner.testing.report import (
    AFTER,
    BEFORE,
    BETWEEN,
    CrashReport,
    KillPoint,
    RunOutcome,
    difference,
)

WORKDIR = "{workdir}"
KILLED = -signal.SIGKILL
Args = dict[str, Any] | Callable[[Path], dict[str, Any]] | None


class CrashTestFailure(AssertionError):
    """A crash test found a kill point where the job ends differently; carries the report."""

    def __init__(self, report: CrashReport) -> None:
        super().__init__(report.message())
        self.report = report


def crash_test(job: Any, args: Args = None, observe: Callable[..., Any] | None = None,
               **options: Any) -> CrashReport:
    """`run_crash_test`, raising `CrashTestFailure` (an AssertionError) if any point differs."""
    report = run_crash_test(job, args, observe, **options)
    if not report.passed:
        raise CrashTestFailure(report)
    return report


def run_crash_test(job: Any, args: Args = None, observe: Callable[..., Any] | None = None, *,
                   seed: int = 0, points: int = 10, before: bool = True,
                   base_dir: str | Path | None = None, timeout: float = 60.0,
                   parallel: int = 2, only: Sequence[KillPoint] | None = None) -> CrashReport:
    """Crash-test `job` (a `@job` function or its `JobSpec`); returns the report.

    `args` is a dict (string values may hold `{workdir}`, the run's fresh
    working directory) or a function of that directory returning the dict.
    `observe` returns the job's side effects, called after each run with the
    working directory (or with nothing, if it takes no parameter); by default
    the files in the working directory and their contents. `seed` and
    `points` choose the random kill points; `before=False` skips the points
    "before checkpoint k"; `timeout` bounds each process (seconds);
    `parallel` runs that many kill points at once; `only` runs just these kill
    points (to replay one from a report) instead of the planned ones.
    `base_dir` holds the runs' state and working directories (kept); by
    default a temporary folder on
    tmpfs (/dev/shm) where there is one, removed at the end: a SIGKILL leaves
    the page cache intact, so tmpfs changes nothing a process crash can show,
    and its fsync costs nothing.
    """
    spec = _spec(job)
    started = time.monotonic()
    temporary = base_dir is None
    base = Path(tempfile.mkdtemp(prefix="harunner-crash-", dir=_fast_folder())
                if base_dir is None else base_dir)
    try:
        tester = _Tester(spec, args, observe or snapshot, base, timeout)
        reference, timings = tester.reference()
        outcomes: list[RunOutcome] = []
        if reference.passed:
            plan = list(only) if only is not None else kill_points(timings, seed, points, before)
            with ThreadPoolExecutor(max(1, parallel)) as pool:
                outcomes = list(pool.map(lambda point: tester.run(point, reference), plan))
        return CrashReport(spec.name, reference, max(len(timings) - 2, 0), tuple(outcomes),
                           time.monotonic() - started, seed)
    finally:
        if temporary:
            shutil.rmtree(base, ignore_errors=True)


def kill_points(timings: list[float], seed: int, points: int, before: bool) -> list[KillPoint]:
    """Every kill point, in job order: after (and before) each checkpoint, and seeded ones."""
    count = len(timings) - 2
    plan = [KillPoint(AFTER, k) for k in range(1, count + 1)]
    if before:
        plan += [KillPoint(BEFORE, k) for k in range(1, count + 1)]
    rng = random.Random(seed)
    for _ in range(points):
        interval = rng.randrange(count + 1)
        length = timings[interval + 1] - timings[interval]
        plan.append(KillPoint(BETWEEN, interval, round(rng.random() * length, 6)))
    return sorted(plan, key=lambda point: point.position)


def snapshot(workdir: Path) -> dict[str, str]:
    """The default `observe`: every file under `workdir`, by relative path, with its text."""
    found = {}
    for path in sorted(workdir.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            try:
                found[path.relative_to(workdir).as_posix()] = data.decode()
            except UnicodeDecodeError:
                found[path.relative_to(workdir).as_posix()] = f"<{len(data)} bytes: {data!r:.80}>"
    return found


def resolve(args: Args, workdir: Path) -> dict[str, Any]:
    """The run's arguments: `args(workdir)`, or `args` with `{workdir}` filled in."""
    if callable(args):
        return dict(args(workdir))
    return _fill(dict(args or {}), str(workdir))


def _fill(value: Any, workdir: str) -> Any:
    if isinstance(value, str):
        return value.replace(WORKDIR, workdir)
    if isinstance(value, list):
        return [_fill(item, workdir) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, workdir) for key, item in value.items()}
    return value


def _fast_folder() -> str | None:
    """/dev/shm if it is a writable folder, else None (the system's temporary folder)."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


def _spec(job: Any) -> JobSpec:
    spec = job if isinstance(job, JobSpec) else spec_of(job)
    if spec is None:
        raise JobDefinitionError(f"crash_test needs a job (a function decorated with @job, or "
                                 f"its JobSpec); got {job!r}")
    return spec


class _Tester:
    """Runs the job in fresh directories under `base`; `run` may be called from threads."""

    def __init__(self, spec: JobSpec, args: Args, observe: Callable[..., Any], base: Path,
                 timeout: float) -> None:
        self.spec = spec
        self.args = args
        self.observe = observe
        self.base = base
        self.timeout = timeout
        self.runs = itertools.count(1)
        self.ref = JobRef(spec.module, inspect.getsourcefile(spec.function) or "", spec.name)
        self.mp = forkserver_context(["harunner.testing.child", spec.module])

    def reference(self) -> tuple[RunOutcome, list[float]]:
        """The run without faults, and its timings: start, each checkpoint, finish."""
        outcome, attempts = self._run(None)
        timings = [t for kind, _, t in attempts[0].events if kind in ("started", "checkpoint",
                                                                      "finished")]
        if outcome.problem is None and outcome.state != JobState.SUCCEEDED.value:
            outcome = replace(outcome, problem=f"the job ended {outcome.state}: {outcome.error}")
        return outcome, timings

    def run(self, point: KillPoint, reference: RunOutcome) -> RunOutcome:
        """One run killed at `point` and resumed to the end, judged against `reference`."""
        outcome, _ = self._run(point)
        problem = outcome.problem or _misplaced(outcome) or difference(reference, outcome)
        return replace(outcome, problem=problem)

    def _run(self, point: KillPoint | None) -> tuple[RunOutcome, list[Attempt]]:
        folder = self.base / f"run-{next(self.runs):03d}"
        workdir = folder / "work"
        workdir.mkdir(parents=True)
        started = time.monotonic()
        args = check_arguments(self.spec, resolve(self.args, workdir))
        store = Store(folder / "state")
        job_id = store.submit(self.spec.name, args).job_id
        store.assign(job_id, Owner(0, 1), 0)
        attempts = [self._attempt(folder, job_id, 1, point)]
        killed_at, state_at_kill = None, None
        if attempts[0].exitcode == KILLED:
            checkpoint = store.read_checkpoint(job_id)
            killed_at = checkpoint.seq if checkpoint else 0
            state_at_kill = checkpoint.state if checkpoint else None
            if not store.get(job_id).state.finished:
                store.take_over(job_id, 2, Owner(0, 2))
                attempts.append(self._attempt(folder, job_id, 2, None))
        record = store.get(job_id)
        outcome = RunOutcome(
            point=point, killed=attempts[0].exitcode == KILLED, killed_at=killed_at,
            state_at_kill=state_at_kill,
            resumed_from=attempts[1].resumed_from if len(attempts) > 1 else None,
            processes=len(attempts), state=record.state.value, result=record.result,
            error=record.error, observed=self._observe(workdir),
            seconds=time.monotonic() - started,
            problem=None if record.state.finished else _broken(attempts[-1], folder))
        return outcome, attempts

    def _observe(self, workdir: Path) -> Any:
        if _takes_argument(self.observe):
            return self.observe(workdir)
        return self.observe()

    def _attempt(self, folder: Path, job_id: str, generation: int,
                 point: KillPoint | None) -> Attempt:
        """Run one child process at `generation`, killed as `point` says."""
        by_child = point is not None and point.kind != BETWEEN
        request = ChildRequest(self.ref, str(folder / "state"), job_id, generation,
                               str(folder / f"process-{generation}.log"),
                               point.kind if point is not None and by_child else None,
                               point.checkpoint if point is not None and by_child else 0)
        timed = None if by_child or point is None else (point.checkpoint, point.delay)
        return run_attempt(self.mp, request, timed, self.timeout)


def _misplaced(outcome: RunOutcome) -> str | None:
    """Why the kill or the resumption was not what the plan said, or None."""
    point = outcome.point
    assert point is not None
    if point.kind != BETWEEN:
        expected = point.checkpoint if point.kind == AFTER else point.checkpoint - 1
        if not outcome.killed or outcome.killed_at != expected:
            found = (f"killed with {outcome.killed_at} acknowledged" if outcome.killed
                     else "not killed at all")
            return (f"the first process was to be SIGKILLed {point.label} (with {expected} "
                    f"checkpoints acknowledged), but it was {found}; does the job "
                    "checkpoint the same number of times on every run?")
    if outcome.processes > 1 and outcome.resumed_from != outcome.killed_at:
        return (f"the resumed process started from checkpoint {outcome.resumed_from}, not "
                f"from the last acknowledged one ({outcome.killed_at})")
    return None


def _broken(attempt: Attempt, folder: Path) -> str | None:
    """Why the last process of a run did not finish the job normally, or None."""
    if attempt.timed_out:
        return f"a process of the job ran longer than the timeout and was killed ({folder.name})"
    if attempt.exitcode == 0:
        return None
    logs = sorted(folder.glob("process-*.log"))
    tail = logs[-1].read_text(errors="replace").strip().splitlines()[-5:] if logs else []
    return (f"the last process exited with code {attempt.exitcode} without finishing the job"
            + ("; its log ends:\n    " + "\n    ".join(tail) if tail else ""))


def _takes_argument(function: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
               for p in parameters)
