"""The soak's history checker: a pure function over trace lines and the store's final state.

A trace is the list of lines the hash-chain jobs appended (soakjobs.py), in
file order; O_APPEND makes that order the order in which the writes began.
Per job the checker verifies:
- every write extends the job's one true chain (`bad-hash`);
- a run (one process at one generation, from one `start` line) writes
  contiguous steps from the checkpoint it started from (`non-contiguous`);
  two runs of one generation never overlap (`double-owner`);
- a run starts from a checkpoint no older than the newest one acknowledged by
  an earlier generation or an earlier run of its own (`resumed-older`), and
  from one that was written (`skipped`);
- no write of a generation was acknowledged when it began after a newer
  generation's first write (`stale-write`), and the store's last checkpoint
  comes from the newest generation that had one acknowledged (`store-stale`);
- the store holds exactly one result, SUCCEEDED, equal to the expected final
  hash and returned by the generation the store names (`wrong-result`,
  `result-without-return`); a job not finished by the deadline is stuck.
It also summarises faults by kind and the stalls: the gaps between
consecutive acknowledged steps across all jobs.
"""

from __future__ import annotations

import hashlib
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


def first_hash(job_id: str) -> str:
    """h_0 of a job's chain (the same function as the job's)."""
    return hashlib.sha256(job_id.encode()).hexdigest()


def step_hash(previous: str, step: int) -> str:
    """h_step from h_(step-1) (the same function as the job's)."""
    return hashlib.sha256(f"{previous}:{step}".encode()).hexdigest()


def expected_chain(job_id: str, steps: int) -> list[str]:
    """h_0 .. h_steps of a job."""
    chain = [first_hash(job_id)]
    for step in range(1, steps + 1):
        chain.append(step_hash(chain[-1], step))
    return chain


@dataclass(frozen=True)
class Final:
    """What the store holds for a job at the end."""

    state: str
    result: Any
    generation: int
    checkpoint_generation: int | None
    checkpoint_step: int | None
    checkpoint_hash: str | None


@dataclass(frozen=True)
class Anomaly:
    kind: str
    job: str
    detail: str


@dataclass
class Report:
    """The checker's verdict and the soak's figures."""

    jobs: int = 0
    lines: int = 0
    anomalies: list[Anomaly] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    stalls: dict[str, float] = field(default_factory=dict)
    stalls_after: dict[str, float] = field(default_factory=dict)
    max_attempt: int = 0
    max_generation: int = 0

    def kinds(self) -> set[str]:
        """The anomaly classes found."""
        return {anomaly.kind for anomaly in self.anomalies}

    def summary(self) -> str:
        """A few lines for the test's output."""
        faults = ", ".join(f"{kind} {count}" for kind, count in sorted(self.faults.items()))
        kinds = Counter(anomaly.kind for anomaly in self.anomalies)
        stalls = ", ".join(f"{key} {value:.3f} s" for key, value in self.stalls.items())
        lines = [f"soak: {sum(self.faults.values())} faults ({faults or 'none'})",
                 f"soak: {self.jobs} jobs, {self.lines} trace lines, "
                 f"{len(self.anomalies)} anomalies {dict(kinds) or ''}, "
                 f"{len(self.stuck)} stuck {self.stuck[:5]}; highest attempt "
                 f"{self.max_attempt}, generation {self.max_generation}",
                 f"soak: stalls (no step acknowledged by any job): {stalls}"]
        if self.stalls_after:
            after = ", ".join(f"{kind} {seconds:.1f} s" for kind, seconds
                              in sorted(self.stalls_after.items(), key=lambda kv: -kv[1]))
            lines.append(f"soak: stalls over 1 s by the fault before them: {after}")
        lines += [f"  {a.kind} job {a.job}: {a.detail}" for a in self.anomalies[:20]]
        return "\n".join(lines)


def check(lines: Iterable[Mapping[str, Any]], finals: Mapping[str, Final | None],
          steps: Mapping[str, int], faults: Iterable[str] = (),
          fault_times: Iterable[tuple[float, str]] = ()) -> Report:
    """Check the whole history; `steps` names every job the test submitted.

    `fault_times` (monotonic time, kind) attributes each stall over 1 s to the
    fault injected last before it ended.
    """
    trace = list(lines)
    report = Report(jobs=len(steps), lines=len(trace), faults=dict(Counter(faults)))
    by_job: dict[str, list[tuple[int, Mapping[str, Any]]]] = defaultdict(list)
    for index, line in enumerate(trace):
        by_job[str(line["job"])].append((index, line))
    for job_id, count in steps.items():
        final = finals.get(job_id)
        if final is None or final.state != "succeeded":
            report.stuck.append(job_id)
        report.anomalies += check_job(job_id, count, by_job.get(job_id, []), final)
    report.max_attempt = max((int(line["attempt"]) for line in trace), default=0)
    report.max_generation = max((int(line["gen"]) for line in trace), default=0)
    acks = [float(line["mono"]) for line in trace if line["kind"] == "ack"]
    report.stalls = stall_figures(acks)
    report.stalls_after = stalls_by_fault(acks, sorted(fault_times))
    return report


@dataclass
class Run:
    """One run of a job: the lines one process wrote at one generation from one `start` line.

    A generation may have several runs one after the other (an attempt resumed in
    place after an infrastructure fault such as a full disk); never two at once.
    """

    generation: int
    pid: int
    lines: list[tuple[int, Mapping[str, Any]]] = field(default_factory=list)

    @property
    def first(self) -> int:
        return self.lines[0][0]

    @property
    def last(self) -> int:
        return self.lines[-1][0]

    def start_step(self) -> int:
        """The step it started from: its `start` line, else the one before its first write."""
        for _index, line in self.lines:
            if line["kind"] == "start":
                return int(line["step"])
            if line["kind"] == "write":
                return int(line["step"]) - 1
        return -1


def runs_of(lines: list[tuple[int, Mapping[str, Any]]]) -> list[Run]:
    """Split one job's lines into runs, ordered by their first line."""
    runs: list[Run] = []
    current: dict[tuple[int, int], Run] = {}
    for index, line in lines:
        key = (int(line["gen"]), int(line["pid"]))
        if line["kind"] == "start" or key not in current:
            current[key] = Run(*key)
            runs.append(current[key])
        current[key].lines.append((index, line))
    return runs


def check_job(job_id: str, steps: int, lines: list[tuple[int, Mapping[str, Any]]],
              final: Final | None) -> list[Anomaly]:
    """Every anomaly of one job's history (`lines` as (file index, line), in file order)."""
    chain = expected_chain(job_id, steps)
    runs = runs_of(lines)
    found = _bad_hashes(job_id, chain, lines)
    for run in runs:
        found += _within_run(job_id, run)
    found += _double_owners(job_id, runs)
    found += _resumptions(job_id, chain, runs)
    found += _stale_writes(job_id, lines)
    if final is not None:
        found += _store(job_id, chain, runs, final)
    return found


def _bad_hashes(job_id: str, chain: list[str], lines: list[tuple[int, Mapping[str, Any]]]
                ) -> list[Anomaly]:
    found = []
    for _index, line in lines:
        if line["kind"] != "write":
            continue
        step = int(line["step"])
        if not 1 <= step < len(chain) or line["prev"] != chain[step - 1] \
                or line["new"] != chain[step]:
            found.append(Anomaly("bad-hash", job_id, f"generation {line['gen']} wrote step "
                                 f"{step} with a hash off the chain"))
    return found


def _within_run(job_id: str, run: Run) -> list[Anomaly]:
    """A run writes step after step from the checkpoint it started from."""
    found = []
    expected = run.start_step()
    for _index, line in run.lines:
        if line["kind"] != "write":
            continue
        if int(line["step"]) != expected + 1:
            found.append(Anomaly("non-contiguous", job_id, f"generation {run.generation} (pid "
                                 f"{run.pid}) wrote step {line['step']} after step {expected}"))
        expected = int(line["step"])
    return found


def _double_owners(job_id: str, runs: list[Run]) -> list[Anomaly]:
    """Two runs of one generation that overlap in the trace."""
    found = []
    for number, run in enumerate(runs):
        for later in runs[number + 1:]:
            if later.generation == run.generation and later.first < run.last:
                found.append(Anomaly("double-owner", job_id, f"generation {run.generation} "
                                     f"ran in processes {run.pid} and {later.pid} at once"))
    return found


def _resumptions(job_id: str, chain: list[str], runs: list[Run]) -> list[Anomaly]:
    """Each run starts from the newest checkpoint acknowledged before it, never skipping."""
    found = []
    for run in runs:
        start = run.start_step()
        acked = max((int(line["step"]) for other in runs for index, line in other.lines
                     if line["kind"] == "ack" and (other.generation < run.generation or (
                         other.generation == run.generation and index < run.first))),
                    default=0)
        written = max((int(line["step"]) for other in runs for index, line in other.lines
                       if line["kind"] == "write" and index < run.first), default=0)
        where = f"generation {run.generation} (pid {run.pid}) started from step {start}"
        if start < acked:
            found.append(Anomaly("resumed-older", job_id,
                                 f"{where}, step {acked} was acknowledged before"))
        if start > written:
            found.append(Anomaly("skipped", job_id,
                                 f"{where}, never written (newest written {written})"))
        hashes = [line["h"] for _i, line in run.lines if line["kind"] == "start"]
        if hashes and 0 <= start < len(chain) and hashes[0] != chain[start]:
            found.append(Anomaly("bad-hash", job_id, f"{where} with a hash off the chain"))
    return found


def _stale_writes(job_id: str, lines: list[tuple[int, Mapping[str, Any]]]) -> list[Anomaly]:
    """An acknowledged write that began after a newer generation's first write."""
    first_write: dict[int, int] = {}
    began: dict[tuple[int, int, int], int] = {}
    found = []
    for index, line in lines:
        generation = int(line["gen"])
        key = (generation, int(line["pid"]), int(line.get("step", -1)))
        if line["kind"] == "write":
            first_write.setdefault(generation, index)
            began[key] = index
        elif line["kind"] == "ack" and key in began:
            newer = [g for g, at in first_write.items() if g > generation and at < began[key]]
            if newer:
                found.append(Anomaly("stale-write", job_id, f"generation {generation}'s step "
                                     f"{line['step']} was acknowledged although generation "
                                     f"{max(newer)} had written first"))
    return found


def _store(job_id: str, chain: list[str], runs: list[Run], final: Final) -> list[Anomaly]:
    """The store's last checkpoint and result against the trace."""
    found = []
    acking = [run.generation for run in runs if any(x["kind"] == "ack" for _i, x in run.lines)]
    newest = max(acking, default=None)
    if final.checkpoint_generation is not None and newest is not None \
            and final.checkpoint_generation < newest:
        found.append(Anomaly("store-stale", job_id, f"the store's checkpoint is from generation "
                             f"{final.checkpoint_generation}, generation {newest} had "
                             "acknowledged writes"))
    step = final.checkpoint_step
    if step is not None and (not 0 <= step < len(chain) or final.checkpoint_hash != chain[step]):
        found.append(Anomaly("bad-hash", job_id, f"the store's checkpoint at step {step} is "
                             "off the chain"))
    if final.state == "succeeded":
        if final.result != chain[-1]:
            found.append(Anomaly("wrong-result", job_id, f"result {str(final.result)[:16]} "
                                 f"is not the final hash {chain[-1][:16]}"))
        returned = [x for run in runs if run.generation == final.generation
                    for _i, x in run.lines if x["kind"] == "return"]
        if not returned:
            found.append(Anomaly("result-without-return", job_id, f"the result is recorded at "
                                 f"generation {final.generation}, which never returned"))
    elif final.state in ("failed", "cancelled"):
        found.append(Anomaly("wrong-result", job_id, f"the job ended {final.state}"))
    return found


def stall_figures(times: Iterable[float]) -> dict[str, float]:
    """Median, p99 and max of the gaps between consecutive progress times (seconds)."""
    ordered = sorted(times)
    gaps = [b - a for a, b in zip(ordered, ordered[1:], strict=False)]
    if not gaps:
        return {"median": 0.0, "p99": 0.0, "max": 0.0, "total_over_1s": 0.0}
    gaps.sort()
    p99 = gaps[min(len(gaps) - 1, int(0.99 * len(gaps)))]
    return {"median": statistics.median(gaps), "p99": p99, "max": gaps[-1],
            "total_over_1s": sum(g for g in gaps if g > 1.0)}


def stalls_by_fault(times: Iterable[float], faults: list[tuple[float, str]],
                    over: float = 1.0) -> dict[str, float]:
    """Seconds of stalls longer than `over`, by the kind of the last fault before each ended."""
    ordered = sorted(times)
    found: dict[str, float] = defaultdict(float)
    for begin, end in zip(ordered, ordered[1:], strict=False):
        if end - begin > over:
            before = [kind for at, kind in faults if at <= end]
            found[before[-1] if before else "none"] += end - begin
    return dict(found)
