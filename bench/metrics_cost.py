"""What a metrics scrape's job counts and a `harunner report` cost, as history grows.

Builds a job database with N finished and 1,000 pending jobs (rows written
straight into the schema, in one transaction) and times the two counting
queries of a scrape (`harunner.store.counts.JobCounts`); then writes an
event log of M attempts (two lines each) with one crash failover every
1,000 attempts and times `summarize` over it, streamed from the file.

    python bench/metrics_cost.py
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from harunner.store import Store
from harunner.store.availability import summarize
from harunner.store.counts import JobCounts
from harunner.store.events import iter_events

ROW = ("INSERT INTO jobs (job_id, name, state, generation, attempts, retries, backoff, "
       "not_before, created_at, updated_at, args, history, seq) "
       "VALUES (?, ?, ?, 1, 1, 0, 1.0, 0, ?, ?, '{}', '[]', ?)")


def database(root: Path, finished: int, pending: int = 1000) -> Path:
    store = Store(root)
    store.init()
    store.list_jobs(limit=1)  # opens the database: schema created
    conn = store._db.connection()
    conn.execute("BEGIN")
    for n in range(finished + pending):
        state = "succeeded" if n < finished else "pending"
        conn.execute(ROW, (f"j{n:09d}", f"jobs.kind{n % 20}", state, n, n, n + 1))
    conn.execute("COMMIT")
    return store.layout.database


def scrape_ms(path: Path, rounds: int = 20) -> float:
    counts = JobCounts(path)
    took = []
    for _ in range(rounds):
        started = time.perf_counter()
        counts.by_state_and_name()
        counts.finished()
        took.append((time.perf_counter() - started) * 1000)
    return statistics.median(took)


def event_log(path: Path, attempts: int) -> None:
    with path.open("w") as out:
        for s in range(3):
            out.write(json.dumps({"t": 0.0, "event": "runner_started", "slot": s,
                                  "incarnation": 1, "pid": 100 + s}) + "\n")
        for n in range(attempts):
            t = float(n)
            out.write(json.dumps({"t": t, "src": "runner-0", "event": "worker_started",
                                  "job": f"j{n}", "generation": 1, "slot": n % 3}) + "\n")
            out.write(json.dumps({"t": t + 0.5, "src": "runner-0", "event": "worker_exit",
                                  "job": f"j{n}", "generation": 1, "outcome": "succeeded",
                                  "code": None}) + "\n")


def main() -> None:
    print("scrape: job counts (median of 20), 1,000 pending jobs")
    for finished in (10_000, 100_000, 1_000_000):
        with tempfile.TemporaryDirectory() as folder:
            path = database(Path(folder), finished)
            print(f"  {finished:>9,} finished jobs: {scrape_ms(path):7.2f} ms")
    print("report: summarize, streamed from the file")
    for attempts in (10_000, 100_000, 1_000_000):
        with tempfile.TemporaryDirectory() as folder:
            log = Path(folder) / "events.jsonl"
            event_log(log, attempts)
            size = log.stat().st_size / 1e6
            started = time.perf_counter()
            report = summarize(iter_events(log))
            took = time.perf_counter() - started
            assert report.clean_attempts == attempts
            print(f"  {attempts:>9,} attempts ({size:6.1f} MB): {took:6.2f} s, "
                  f"{size / took:5.1f} MB/s")


if __name__ == "__main__":
    main()
