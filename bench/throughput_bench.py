"""End-to-end durable throughput of no-op jobs: harunner against Huey, same run, alternating.

A job counts once it was submitted, ran, and its result is durable. harunner
runs as a real cluster (`harunner start`: a supervisor, a primary, two
standbys) in a temporary directory; its peer is Huey's consumer with
`SqliteHuey(fsync=True)` (bench/huey_app.py), started and stopped here, with
its poll back-off capped at 100 ms so that an idle consumer does not sleep
through the start of a run. Cluster and consumer start-up are not timed.

Modes (each measured for both, alternating, `--runs` times):
- batch:  harunner submits all jobs in one call (`Client.submit_many`), Huey
          enqueues them one by one (it has no batch);
- single: both submit one job per call from Python, each durable on return.
Parallelism: `--peer-workers 1` gives Huey one consumer process (issue 7's
first comparison); `--peer-workers equal` gives Huey as many worker processes
as harunner has in all (slots x concurrency).

    python bench/throughput_bench.py [--jobs 1000] [--runs 3] [--modes batch,single]
                                     [--peer-workers 1|equal] [--backlog]

`--backlog` also runs harunner with 10x the jobs, to show jobs/s is flat
with the backlog. Each harunner run also reports its runners' largest peak RSS
(VmHWM), the memory goal being <= 100 MB with 10,000 jobs pending. Prints
per-run figures, then medians, p99 of submit latency, the ratios, and the load
average at the start and end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from harunner import config  # noqa: E402
from harunner.api.client import Client  # noqa: E402
from harunner.cli.status import listen  # noqa: E402
from harunner.polling import wait_until  # noqa: E402
from harunner.store import SCHEDULER_JOB, JobState, Store  # noqa: E402

JOB = "benchjobs.noop"
UNFINISHED = {JobState.PENDING, JobState.RUNNING}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def runner_peak_rss_mb(supervisor: int) -> float:
    """The largest peak RSS (VmHWM, MB) among the supervisor's runner processes."""
    peak = 0.0
    for task in Path(f"/proc/{supervisor}/task").glob("*"):
        try:
            pids = [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
        for pid in pids:
            try:
                if b"spawn_main" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                    continue
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
    return peak


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL after `timeout` s; always reaped."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class HarunnerRun:
    """One cluster in a fresh state directory."""

    def __init__(self, root: Path, extra: str) -> None:
        path = root / "harunner.toml"
        path.write_text(f'state_dir = "{root / "s"}"\njobs = ["{HERE / "benchjobs"}"]\n{extra}\n')
        self.cfg = config.load(str(path), env={})
        self.store = Store.from_config(self.cfg)
        self.client = Client(config=self.cfg)
        self.out = open(root / "supervisor.out", "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "harunner", "start", "--config",
                                         str(path)], stdout=self.out, stderr=subprocess.STDOUT)
        wait_until(lambda: len(listen(self.cfg)[0]) == self.cfg.slots, 60,
                   "the cluster to come up", 0.05)

    def submit(self, n: int, mode: str) -> list[float]:
        """Submit `n` no-op jobs through the Python client (it rings the runners'
        doorbell, as a user's submission does); per-call latencies in ms."""
        if mode == "batch":
            started = time.perf_counter()
            self.client.submit_many([(JOB, {}) for _ in range(n)])
            return [(time.perf_counter() - started) * 1000]
        latencies = []
        for _ in range(n):
            started = time.perf_counter()
            self.client.submit(JOB)
            latencies.append((time.perf_counter() - started) * 1000)
        return latencies

    def unfinished(self) -> int:
        count = getattr(self.store, "count_unfinished", None)
        if count is not None:
            return int(count())
        return sum(1 for r in self.store.list_jobs(UNFINISHED) if r.job_id != SCHEDULER_JOB)

    def close(self) -> None:
        stop_process(self.process)
        self.out.close()


def run_harunner(n: int, mode: str, extra: str, timeout: float) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="hr-tp-", dir="/tmp"))
    run = HarunnerRun(root, extra)
    try:
        started = time.perf_counter()
        latencies = run.submit(n, mode)
        wait_until(lambda: run.unfinished() == 0, timeout, f"{n} harunner jobs", 0.05)
        elapsed = time.perf_counter() - started
        failed = len(run.store.list_jobs({JobState.FAILED, JobState.CANCELLED}))
        return {"jobs_per_s": n / elapsed, "latencies": latencies, "failed": failed,
                "runner_rss_mb": runner_peak_rss_mb(run.process.pid),
                "workers": run.cfg.slots * (run.cfg.concurrency or os.cpu_count() or 1)}
    finally:
        run.close()
        shutil.rmtree(root, ignore_errors=True)


def run_huey(n: int, workers: int, timeout: float) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="huey-tp-", dir="/tmp"))
    os.environ["HUEY_BENCH_DB"] = str(root / "huey.db")
    sys.path.insert(0, str(HERE))
    import importlib

    import huey_app  # the database path is read at import: reload for each run
    huey_app = importlib.reload(huey_app)
    consumer = shutil.which("huey_consumer") or str(Path(sys.executable).parent / "huey_consumer")
    out = open(root / "consumer.out", "wb")
    process = subprocess.Popen([consumer, "huey_app.huey", "-w", str(workers), "-k", "process",
                                "-d", "0.01", "-m", "0.1", "-q"], cwd=HERE, stdout=out,
                               stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONPATH": str(HERE)})
    try:
        time.sleep(1.0)  # the consumer imports and forks its workers; not timed
        started = time.perf_counter()
        latencies = []
        for _ in range(n):
            begin = time.perf_counter()
            huey_app.noop()
            latencies.append((time.perf_counter() - begin) * 1000)
        wait_until(lambda: huey_app.huey.storage.result_store_size() >= n, timeout,
                   f"{n} Huey results", 0.05)
        elapsed = time.perf_counter() - started
        return {"jobs_per_s": n / elapsed, "latencies": latencies, "failed": 0,
                "workers": workers}
    finally:
        stop_process(process)
        out.close()
        shutil.rmtree(root, ignore_errors=True)


def summary(name: str, runs: list[dict[str, Any]]) -> float:
    rates = [r["jobs_per_s"] for r in runs]
    latencies = [x for r in runs for x in r["latencies"]]
    median = statistics.median(rates)
    print(f"  {name:<28} jobs/s median {median:8.1f}  (runs: "
          f"{', '.join(f'{x:.1f}' for x in rates)}); submit call p50 "
          f"{percentile(latencies, 0.5):.2f} ms p99 {percentile(latencies, 0.99):.2f} ms; "
          f"failed {sum(r['failed'] for r in runs)}"
          + (f"; runner peak RSS {max(r['runner_rss_mb'] for r in runs):.0f} MB"
             if "runner_rss_mb" in runs[0] else ""))
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", default="batch,single")
    parser.add_argument("--peer-workers", default="1", help="1, a number, or 'equal'")
    parser.add_argument("--backlog", action="store_true", help="also 10x the jobs (harunner)")
    parser.add_argument("--config", default="", help="extra harunner config lines, ';'-separated")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    extra = args.config.replace(";", "\n")
    print(f"load average at start: {os.getloadavg()}; cores: {os.cpu_count()}")
    results: dict[str, list[dict[str, Any]]] = {}
    for run in range(args.runs):
        for mode in args.modes.split(","):
            mine = run_harunner(args.jobs, mode, extra, args.timeout)
            results.setdefault(f"harunner {mode} {args.jobs}", []).append(mine)
            workers = mine["workers"] if args.peer_workers == "equal" else int(args.peer_workers)
            peer = run_huey(args.jobs, workers, args.timeout)
            results.setdefault(f"huey -w {workers} {mode} {args.jobs}", []).append(peer)
            print(f"run {run + 1} {mode}: harunner {mine['jobs_per_s']:.1f} jobs/s, "
                  f"huey {peer['jobs_per_s']:.1f} jobs/s", flush=True)
        if args.backlog:
            big = run_harunner(args.jobs * 10, "batch", extra, args.timeout)
            results.setdefault(f"harunner batch {args.jobs * 10}", []).append(big)
            print(f"run {run + 1} backlog: harunner {big['jobs_per_s']:.1f} jobs/s", flush=True)
    print(f"load average at end: {os.getloadavg()}")
    medians = {name: summary(name, runs) for name, runs in results.items()}
    names = list(medians)
    for mode in args.modes.split(","):
        mine = next(n for n in names if n.startswith(f"harunner {mode} {args.jobs}"))
        peer = next(n for n in names if n.startswith("huey") and f" {mode} " in n)
        print(f"  ratio harunner/huey ({mode}): {medians[mine] / medians[peer]:.2f}")
    if args.backlog:
        small = medians[f"harunner batch {args.jobs}"]
        big = medians[f"harunner batch {args.jobs * 10}"]
        print(f"  backlog: {args.jobs * 10} jobs at {big / small:.2f} x the rate of {args.jobs}")


if __name__ == "__main__":
    main()
