"""Executor throughput: no-op jobs per second through the executor alone, pool vs process mode.

Usage: python bench/executor_throughput.py [--jobs 1000] [--runs 3] [--concurrency 0]
                                          [--modes pool,process] [--dir /dev/shm]

Each run makes a store in a fresh temporary directory, submits and assigns
`--jobs` no-op jobs (RUNNING, not timed), then drives one Executor like a
runner's loop: it starts as many jobs as `free_slots()` allows, waits on
`sentinels()`, reaps, and starts more, until every job is settled. Runs of
the modes alternate. Reported per mode: the median jobs/s over the runs, the
median and p99 of start() -> outcome latency over all jobs, and the CPU time
per job of this process (the executor and its recorder thread) and of the
workers (from /proc).
The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import textwrap
import time
from multiprocessing.connection import wait
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harunner.executor.executor import Executor  # noqa: E402
from harunner.store import Owner, Store  # noqa: E402

JOB = textwrap.dedent('''
    from harunner import job

    @job
    def noop(ctx):
        return None
''')


def one_run(mode: str, jobs: int, concurrency: int, root: Path,
            folder: Path) -> dict[str, object]:
    """Jobs/s, per-job latencies (ms) and the seconds spent recording, for one run.

    `folder` holds the job module: the same for every run, because the
    forkserver (one per process) keeps the modules it preloaded first.
    """
    store = Store(root / "state", lock_timeout=2.0)
    records = []
    for _ in range(jobs):
        record = store.submit("bench_noop.noop", {})
        records.append(store.assign(record.job_id, Owner(0, 1), record.generation))
    executor = Executor(root / "state", (str(folder),), 2.0, "forkserver",
                        worker_mode=mode, concurrency=concurrency)
    executor.warm_up()
    time.sleep(0.5)  # the workers up
    workers_before = _children_cpu()
    mine_before = time.process_time()
    started: dict[str, float] = {}
    latencies: list[float] = []
    waiting = list(reversed(records))
    began = time.monotonic()
    while waiting or executor.running():
        for _ in range(min(executor.free_slots(), len(waiting))):
            record = waiting.pop()
            started[record.job_id] = time.monotonic()
            executor.start(record)
        wait(executor.sentinels(), 1.0)
        now = time.monotonic()
        for settled in executor.reap(now):
            if settled.outcome != "succeeded":
                error = store.get(settled.job_id).error
                raise SystemExit(f"job {settled.job_id} ended {settled.outcome}: {error}")
            latencies.append((now - started[settled.job_id]) * 1000)
    elapsed = time.monotonic() - began
    mine = time.process_time() - mine_before
    workers_after = _children_cpu()
    worker_cpu = sum(cpu - workers_before.get(pid, 0.0) for pid, cpu in workers_after.items())
    executor.shutdown()
    return {"rate": jobs / elapsed, "latencies": latencies, "elapsed": elapsed,
            "executor_ms": 1000 * mine / jobs, "worker_ms": 1000 * worker_cpu / jobs,
            "concurrency": executor.concurrency}


def _children_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of every descendant of this process, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    todo = [os.getpid()]
    while todo:
        pid = todo.pop()
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                kids = [int(x) for x in (task / "children").read_text().split()]
            except OSError:
                continue
            for kid in kids:
                try:
                    stat = Path(f"/proc/{kid}/stat").read_bytes().rsplit(b")", 1)[1].split()
                except OSError:
                    continue
                found[kid] = (int(stat[11]) + int(stat[12])) / ticks
                todo.append(kid)
    return found


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=0, help="0: one worker per core")
    parser.add_argument("--modes", default="pool,process")
    parser.add_argument("--dir", default=None,
                        help="where the temporary state directories go (e.g. /dev/shm, where "
                             "fsync costs nothing, to see the executor's own ceiling)")
    options = parser.parse_args()
    modes = options.modes.split(",")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results: dict[str, list[dict[str, object]]] = {mode: [] for mode in modes}
    jobs_folder = tempfile.TemporaryDirectory()
    (Path(jobs_folder.name) / "bench_noop.py").write_text(JOB)
    for run in range(options.runs):
        for mode in modes if run % 2 == 0 else list(reversed(modes)):
            with tempfile.TemporaryDirectory(dir=options.dir) as folder:
                result = one_run(mode, options.jobs, options.concurrency, Path(folder),
                                 Path(jobs_folder.name))
            results[mode].append(result)
            print(f"run {run + 1} {mode:8s}: {result['rate']:7.1f} jobs/s "
                  f"({result['elapsed']:.2f} s); CPU ms per job: executor "
                  f"{result['executor_ms']:.3f}, workers {result['worker_ms']:.3f}", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for mode, runs in results.items():
        rates = [float(r["rate"]) for r in runs]  # type: ignore[arg-type]
        latencies = [x for r in runs for x in r["latencies"]]  # type: ignore[attr-defined]
        executor_ms = statistics.median(float(r["executor_ms"]) for r in runs)  # type: ignore[arg-type]
        worker_ms = statistics.median(float(r["worker_ms"]) for r in runs)  # type: ignore[arg-type]
        print(f"{mode:8s} concurrency {runs[0]['concurrency']}: median "
              f"{statistics.median(rates):.1f} jobs/s (runs: "
              f"{', '.join(f'{x:.0f}' for x in rates)}); start->outcome median "
              f"{statistics.median(latencies):.2f} ms, p99 {p99(latencies):.2f} ms; "
              f"CPU ms per job: executor {executor_ms:.3f}, workers {worker_ms:.3f}")


if __name__ == "__main__":
    main()
