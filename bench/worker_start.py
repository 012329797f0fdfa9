"""Worker start latency: from `Executor.start()` to the first line of the job function.

Usage: python bench/worker_start.py [--runs 50] [--start-method forkserver|spawn]
                                   [--gap SECONDS] [--no-spare]

Also reports the time to the job's first durable checkpoint (what failover
waits for). Each run submits a job to a fresh state directory, assigns it,
starts it and waits for it to finish, then waits `--gap` seconds (a failover
finds the runner idle, its spare worker long ready). The job records
`time.monotonic()` (a system-wide clock on Linux) on its first line.
"""

from __future__ import annotations

import argparse
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
    import time
    from harunner import job

    @job
    def first_line(ctx):
        entered = time.monotonic()
        ctx.checkpoint({"entered": entered})
        return {"entered": entered, "checkpointed": time.monotonic()}
''')


def measure(runs: int, start_method: str, root: Path, gap: float,
            spare: bool) -> tuple[list[float], list[float]]:
    """Latencies in ms: start() to first line, start() to first checkpoint written."""
    (root / "benchjobs").mkdir()
    (root / "benchjobs" / "bench_start.py").write_text(JOB)
    store = Store(root / "state", lock_timeout=2.0)
    executor = Executor(root / "state", (str(root / "benchjobs"),), 2.0, start_method,
                        spare=spare)
    executor.warm_up()
    entered, checkpointed = [], []
    for _ in range(runs):
        idle_until = time.monotonic() + gap
        while time.monotonic() < idle_until:  # a runner's loop: reap, which also makes a spare
            wait(executor.sentinels(), 0.02)
            executor.reap(time.monotonic())
        record = store.submit("bench_start.first_line", {})
        record = store.assign(record.job_id, Owner(0, 1), record.generation)
        began = time.monotonic()
        executor.start(record)
        while executor.running():
            wait(executor.sentinels(), 5.0)
            executor.reap(time.monotonic())
        result = store.get(record.job_id).result
        entered.append((result["entered"] - began) * 1000)
        checkpointed.append((result["checkpointed"] - began) * 1000)
    executor.shutdown()
    return entered, checkpointed


def describe(label: str, values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (f"{label}: median {statistics.median(values):.2f} ms, p99 {p99:.2f} ms, "
            f"min {ordered[0]:.2f} ms, max {ordered[-1]:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--start-method", default="forkserver", choices=("forkserver", "spawn"))
    parser.add_argument("--gap", type=float, default=0.2, help="idle seconds before a start")
    parser.add_argument("--no-spare", action="store_true", help="no spare worker")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        entered, checkpointed = measure(options.runs, options.start_method, Path(folder),
                                        options.gap, not options.no_spare)
    print(f"{options.runs} starts, start method {options.start_method}, "
          f"{'no spare' if options.no_spare else 'spare worker'}, {options.gap}s apart")
    print(describe("start() -> job's first line", entered))
    print(describe("start() -> first checkpoint durable", checkpointed))


if __name__ == "__main__":
    main()
