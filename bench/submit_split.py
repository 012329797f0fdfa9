"""Where a one-by-one submission's time goes while a cluster runs the jobs it is fed.

Starts a real cluster (like bench/throughput_bench.py), then submits `--jobs`
no-op jobs one `Client.submit` call at a time, as the "single" mode of the
throughput bench does, and splits each call into: the wait for SQLite's
write lock (`BEGIN IMMEDIATE`, held meanwhile by a runner's commit or
another writer), the statements, the `COMMIT` (its fsync, and a WAL
checkpoint when this commit crossed the threshold), and the rest (checks,
the doorbell). It times the client's own `Database.write` by wrapping it in
this process only; the cluster runs unchanged code.

    python bench/submit_split.py [--jobs 1500] [--runs 3] [--config "key = value;..."]

Prints per run: mean, p50, p90, p99 of a call, the share of the time spent in
calls over 3 ms, and the mean of each part, plus the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from throughput_bench import JOB, HarunnerRun, percentile  # noqa: E402

from harunner.polling import wait_until  # noqa: E402
from harunner.store import db  # noqa: E402

PARTS = ("lock wait", "statements", "commit")
_last: dict[str, float] = {}


@contextlib.contextmanager
def timed_write(self: db.Database) -> Iterator[db.Writer]:
    """`Database.write` with its parts timed into `_last` (same statements, same order)."""
    conn = self.connection()
    started = time.perf_counter()
    with db.translated(self.path):
        self._patiently(lambda: conn.execute("BEGIN IMMEDIATE"))
        locked = time.perf_counter()
        try:
            writer = db.Writer(conn)
            yield writer
            writer.store_sequence()
            body = time.perf_counter()
            conn.execute("COMMIT")
        except BaseException:
            db._rollback(conn)
            raise
    done = time.perf_counter()
    _last.update({"lock wait": locked - started, "statements": body - locked,
                  "commit": done - body})


def one_run(jobs: int, extra: str) -> str:
    root = Path(tempfile.mkdtemp(prefix="hr-split-", dir="/tmp"))
    cluster = HarunnerRun(root, extra)
    calls: list[tuple[float, dict[str, float]]] = []
    try:
        time.sleep(1.0)  # workers warm
        for _ in range(jobs):
            started = time.perf_counter()
            cluster.client.submit(JOB)
            calls.append((time.perf_counter() - started, dict(_last)))
        wait_until(lambda: cluster.unfinished() == 0, 120, "the jobs", 0.05)
    finally:
        cluster.close()
        shutil.rmtree(root, ignore_errors=True)
    totals = [total for total, _ in calls]
    slow = sum(total for total in totals if total > 0.003)
    means = ", ".join(f"{part} {1000 * statistics.mean(p[part] for _, p in calls):.3f}"
                      for part in PARTS)
    return (f"call mean {1000 * statistics.mean(totals):.3f} ms, p50 "
            f"{1000 * percentile(totals, 0.5):.3f}, p90 {1000 * percentile(totals, 0.9):.3f}, "
            f"p99 {1000 * percentile(totals, 0.99):.3f}; calls over 3 ms: "
            f"{sum(1 for t in totals if t > 0.003)} ({100 * slow / sum(totals):.0f} % of the "
            f"time); mean {means} ms; load {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--config", default="", help="extra config lines, ';'-separated")
    args = parser.parse_args()
    db.Database.write = timed_write  # type: ignore[method-assign,assignment]
    print(f"load average at start: {os.getloadavg()}; cores: {os.cpu_count()}")
    for run in range(args.runs):
        print(f"run {run + 1}: {one_run(args.jobs, args.config.replace(';', chr(10)))}",
              flush=True)


if __name__ == "__main__":
    main()
