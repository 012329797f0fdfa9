"""Checkpoint write rate of `Store.write_checkpoint`, next to a raw durable-rename loop.

    python bench/store_bench.py [--dir DIR] [--runs N] [--seconds S] [--size BYTES]

Each run times the raw loop (temp file, write, fsync, os.replace, fsync of the folder)
for S seconds, then the store (lock, fenced record read, the same durable write, prune) for
S seconds, in the same directory. Prints per kind the median rate over the runs and the
p50/p99 latency over all writes, and the store/raw ratio (of the medians, and per run, as
adjacent runs see the same machine load): the price of locking, fencing, checksums and
keeping the previous checkpoint.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harunner.store import (  # noqa: E402
    Owner,
    Store,
    job_files,  # noqa: E402
)


def raw_writer(folder: Path, payload: bytes) -> Callable[[], None]:
    """One durable replace of folder/raw with `payload`, without any store logic."""
    target = folder / "raw"

    def write() -> None:
        temp = folder / f".raw.{os.getpid()}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return write


def store_writer(root: Path, size: int) -> Callable[[], None]:
    """One `write_checkpoint` of a state of about `size` bytes on a running job."""
    store = Store(root)
    job = store.submit("bench.job", {}).job_id
    store.assign(job, Owner(0, 1), 0)
    state = {"done": 0, "pad": "x" * max(0, size - 30)}

    def write() -> None:
        state["done"] += 1
        store.write_checkpoint(job, 1, state)
    return write


def timed(write: Callable[[], None], seconds: float) -> list[float]:
    """Latencies (seconds) of calling `write` back to back for `seconds`."""
    latencies = []
    deadline = time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        write()
        end = time.perf_counter()
        latencies.append(end - start)
        if end >= deadline:
            return latencies


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def report(name: str, runs: list[list[float]]) -> float:
    """Print one kind's figures; return its median rate."""
    rates = [len(latencies) / sum(latencies) for latencies in runs]
    every = [latency for latencies in runs for latency in latencies]
    rate = statistics.median(rates)
    print(f"{name:<6} {rate:9.0f} writes/s (median of {len(runs)} runs: "
          f"{', '.join(f'{r:.0f}' for r in rates)})  p50 {percentile(every, 0.5) * 1e3:.3f} ms"
          f"  p99 {percentile(every, 0.99) * 1e3:.3f} ms  ({len(every)} writes)")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a "
                        "temporary folder in the system temp directory)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--size", type=int, default=100, help="checkpoint state size in bytes")
    options = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="store_bench.", dir=options.dir))
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
        print(f"directory {base} on {job_files.file_system_type(base, mountinfo)}; "
              f"{options.runs} runs of {options.seconds:g} s; state ~{options.size} bytes")
        payload = b"x" * options.size
        raw, store = raw_writer(base, payload), store_writer(base / "state", options.size)
        raw_runs, store_runs = [], []
        for _ in range(options.runs):
            raw_runs.append(timed(raw, options.seconds))
            store_runs.append(timed(store, options.seconds))
        raw_rate, store_rate = report("raw", raw_runs), report("store", store_runs)
        paired = [len(s) / sum(s) / (len(r) / sum(r)) for r, s in zip(raw_runs, store_runs,
                                                                       strict=True)]
        print(f"store/raw {store_rate / raw_rate:.2f} (ratio of medians); per run "
              f"{', '.join(f'{ratio:.2f}' for ratio in paired)}, median "
              f"{statistics.median(paired):.2f}")
    finally:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
