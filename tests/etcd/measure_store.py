"""Figures of the two backends side by side (a script, not a test; docs/etcd.md quotes it).

    python tests/etcd/measure_store.py [--singles 200] [--batch 1000] [--rounds 2]

Starts one etcd member on loopback (the Debian binary), then per round and per
backend, alternating: single submits, single checkpoint writes (p50/p99 ms), and
a batched cycle (submit_many, assign_many, finish_many of `--batch` jobs: jobs/s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from etcd_cluster import EtcdCluster, find_etcd  # noqa: E402

from harunner.store import Assignment, Outcome, Owner, Store, Submission  # noqa: E402
from harunner.store.etcd.store import EtcdStore  # noqa: E402

ME = Owner(0, 1)


def timed(call, count: int) -> tuple[float, float]:  # noqa: ANN001
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def measure(store, singles: int, batch: int) -> dict[str, str]:  # noqa: ANN001
    submit = timed(lambda: store.submit("jobs.demo", {}), singles)
    job = store.submit("jobs.demo", {}).job_id
    store.assign(job, ME, 0)
    checkpoint = timed(lambda: store.write_checkpoint(job, 1, {"step": 1}), singles)
    started = time.perf_counter()
    records = store.submit_many([Submission("jobs.demo", {"k": k}) for k in range(batch)])
    store.assign_many([Assignment(r.job_id, ME, 0) for r in records])
    store.finish_many([Outcome(r.job_id, 1, result=None) for r in records])
    cycle = batch / (time.perf_counter() - started)
    return {"submit": f"{submit[0]:.2f} / {submit[1]:.2f}",
            "checkpoint": f"{checkpoint[0]:.2f} / {checkpoint[1]:.2f}",
            "cycle": f"{cycle:,.0f}"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--singles", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    binary = find_etcd()
    if binary is None:
        raise SystemExit("etcd not installed: run .ci/install-etcd")
    root = Path(tempfile.mkdtemp(prefix="harunner-measure-"))
    cluster = EtcdCluster(binary, root / "etcd", 1)
    cluster.start()
    try:
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
              f"{options.singles} singles, batch {options.batch}")
        print("| round | backend | submit p50 / p99 ms | checkpoint p50 / p99 ms | "
              "batched cycle jobs/s |")
        for number in range(options.rounds):
            kinds = ["local", "etcd"] if number % 2 == 0 else ["etcd", "local"]
            for kind in kinds:
                state = root / f"{kind}{number}"
                store = (Store(state) if kind == "local" else
                         EtcdStore(cluster.endpoints, state, cluster=uuid.uuid4().hex[:12]))
                found = measure(store, options.singles, options.batch)
                print(f"| {number + 1} | {kind} | {found['submit']} | {found['checkpoint']} | "
                      f"{found['cycle']} |", flush=True)
                store.close()
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
