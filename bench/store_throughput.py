"""Durable job-record throughput of the store, next to Huey's `SqliteHuey(fsync=True)`.

    pip install -e ".[bench]"
    python bench/store_throughput.py [--dir DIR] [--rounds 3] [--singles 300]

Every round runs each case once, harunner and Huey alternating, in fresh folders of the same
directory (so on the same disk). Cases, all in this one process:

- single submit latency: `Store.submit` one job at a time (one fsynced commit each), on an
  empty store and on one holding 10,000 finished jobs; Huey: `enqueue` of one no-op task;
- single job cycle: submit + assign + finish per job; Huey: enqueue + dequeue + put_result;
- batches: `submit_many` of 1,000 and of 10,000 jobs, then `assign_many` and `finish_many`
  of the 1,000 (one transaction each);
- reads of a runner's loop turn with 10,000 pending jobs: `due_pending(limit=100)`,
  `changes(head, 1000)`, and the resident memory of a fresh process doing a full reconcile
  and paging through all 10,000 pending jobs.

Prints per case the median over rounds (jobs/s) or the p50/p99 over every call, the load
average before each round, and the harunner/Huey ratios of the medians.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harunner.store import Assignment, Outcome, Owner, Store, Submission  # noqa: E402

ME = Owner(0, 1)
BACKLOG = 10_000


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def finished_backlog(store: Store, count: int) -> None:
    for start in range(0, count, 5000):
        jobs = store.submit_many([Submission("bench.noop", {"i": i})
                                  for i in range(start, min(count, start + 5000))])
        store.assign_many([Assignment(r.job_id, ME, 0) for r in jobs])
        store.finish_many([Outcome(r.job_id, 1, result=None) for r in jobs])


# -- harunner cases ---------------------------------------------------------------------

def harunner_submits(folder: Path, count: int, backlog: int) -> list[float]:
    store = Store(folder)
    finished_backlog(store, backlog)
    return [timed(lambda: store.submit("bench.noop", {})) for _ in range(count)]


def harunner_cycle(folder: Path, count: int) -> float:
    store = Store(folder)

    def one() -> None:
        record = store.submit("bench.noop", {})
        store.assign(record.job_id, ME, 0)
        store.finish(record.job_id, 1, result=None)
    return count / sum(timed(one) for _ in range(count))


def harunner_batches(folder: Path) -> dict[str, float]:
    store = Store(folder)
    items = [Submission("bench.noop", {"i": i}) for i in range(1000)]
    jobs: list = []
    rates = {"submit_many 1,000": 1000 / timed(lambda: jobs.extend(store.submit_many(items)))}
    big = [Submission("bench.noop", {"i": i}) for i in range(10_000)]
    rates["submit_many 10,000"] = 10_000 / timed(lambda: store.submit_many(big))
    assignments = [Assignment(r.job_id, ME, 0) for r in jobs]
    rates["assign_many 1,000"] = 1000 / timed(lambda: store.assign_many(assignments))
    outcomes = [Outcome(r.job_id, 1, result=None) for r in jobs]
    rates["finish_many 1,000"] = 1000 / timed(lambda: store.finish_many(outcomes))
    return rates


def harunner_reads(folder: Path) -> dict[str, float]:
    store = Store(folder)
    store.submit_many([Submission("bench.noop", {"i": i}) for i in range(BACKLOG)])
    head = store.head()
    due = [timed(lambda: store.due_pending(time.time(), 100)) for _ in range(50)]
    feed = [timed(lambda: store.changes(head - 1000, 1000)) for _ in range(20)]
    return {"due_pending(100) ms": statistics.median(due) * 1e3,
            "changes(1000) ms": statistics.median(feed) * 1e3,
            "reconcile RSS MB": reconcile_rss(folder)}


RSS_CHILD = """
import resource, sys, time
sys.path.insert(0, sys.argv[2])
from harunner.store import Store
store = Store(sys.argv[1])
store.running()
cursor, seen = 0, 0
while True:
    records, cursor = store.changes(cursor, 1000)
    if not records:
        break
    seen += len(records)
due = store.due_pending(time.time(), 1000)
print(seen, len(due), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def reconcile_rss(folder: Path) -> float:
    """Peak RSS (MB) of a fresh process that reconciles and pages through every job."""
    done = subprocess.run([sys.executable, "-c", RSS_CHILD, str(folder),
                           str(Path(__file__).resolve().parents[1])],
                          capture_output=True, text=True, check=True)
    seen, _, rss = done.stdout.split()
    assert int(seen) == BACKLOG, done.stdout
    return float(rss)


# -- Huey cases -------------------------------------------------------------------------

def huey_of(folder: Path):  # noqa: ANN201
    from huey import SqliteHuey
    folder.mkdir(parents=True, exist_ok=True)
    huey = SqliteHuey("bench", filename=str(folder / "huey.db"), fsync=True)

    @huey.task()
    def noop() -> None:
        return None
    return huey, noop


def huey_enqueues(folder: Path, count: int) -> list[float]:
    huey, noop = huey_of(folder)
    return [timed(noop) for _ in range(count)]


def huey_cycle(folder: Path, count: int) -> float:
    huey, noop = huey_of(folder)

    def one() -> None:
        noop()
        task = huey.dequeue()
        huey.put_result(task.id, task.execute())
    return count / sum(timed(one) for _ in range(count))


# -- the run ----------------------------------------------------------------------------

def one_round(base: Path, singles: int, results: dict[str, list]) -> None:
    print(f"round: load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    cases: list[tuple[str, Callable[[Path], object]]] = [
        ("harunner submit", lambda f: harunner_submits(f, singles, 0)),
        ("huey enqueue", lambda f: huey_enqueues(f, singles)),
        ("harunner submit, 10,000 finished", lambda f: harunner_submits(f, singles, BACKLOG)),
        ("harunner cycle", lambda f: harunner_cycle(f, singles)),
        ("huey cycle", lambda f: huey_cycle(f, singles)),
        ("harunner batches", harunner_batches),
        ("harunner reads", harunner_reads),
    ]
    for name, case in cases:
        folder = Path(tempfile.mkdtemp(dir=base))
        try:
            results.setdefault(name, []).append(case(folder))
        finally:
            shutil.rmtree(folder)


def report(results: dict[str, list]) -> None:
    for name in ("harunner submit", "harunner submit, 10,000 finished", "huey enqueue"):
        every = [x for run in results[name] for x in run]
        print(f"{name:<34} p50 {percentile(every, 0.5) * 1e3:7.3f} ms  p99 "
              f"{percentile(every, 0.99) * 1e3:7.3f} ms  ({len(every)} calls)")
    rates = {name: statistics.median(results[name]) for name in ("harunner cycle", "huey cycle")}
    for name, rate in rates.items():
        runs = ", ".join(f"{r:.0f}" for r in results[name])
        print(f"{name + ' jobs/s':<34} {rate:9.0f} (median of {runs})")
    for key in results["harunner batches"][0]:
        values = [run[key] for run in results["harunner batches"]]
        rates[key] = statistics.median(values)
        print(f"{key + ' jobs/s':<34} {rates[key]:9.0f} (median of "
              f"{', '.join(f'{v:.0f}' for v in values)})")
    for key in results["harunner reads"][0]:
        values = [run[key] for run in results["harunner reads"]]
        print(f"{key + ' (10,000 pending)':<34} {statistics.median(values):9.2f}")
    huey = rates["huey cycle"]
    print("ratios to Huey's enqueue+dequeue+put_result cycle (jobs/s, medians):")
    print(f"  single cycle {rates['harunner cycle'] / huey:.2f}x")
    batched = 1 / sum(1 / rates[k] for k in ("submit_many 1,000", "assign_many 1,000",
                                             "finish_many 1,000"))
    print(f"  batched cycle (submit_many+assign_many+finish_many of 1,000) {batched:.0f} "
          f"jobs/s = {batched / huey:.1f}x")
    submit = percentile([x for r in results["harunner submit"] for x in r], 0.5)
    enqueue = percentile([x for r in results["huey enqueue"] for x in r], 0.5)
    print(f"  single submit p50 / Huey enqueue p50: {submit / enqueue:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--singles", type=int, default=300)
    options = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="store_throughput.", dir=options.dir))
    print(f"directory {base}; {options.rounds} rounds; Python {sys.version.split()[0]}; "
          f"this process's RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    results: dict[str, list] = {}
    try:
        for _ in range(options.rounds):
            one_round(base, options.singles, results)
        report(results)
    finally:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
