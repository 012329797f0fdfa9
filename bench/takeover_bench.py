"""Takeover at scale: SIGKILL a runner that owns many running jobs; how fast are all owned again?

A real cluster (`harunner start`, 3 runners) with `worker_mode = "process"`
and a `concurrency` as large as the job count, so that one runner can run
every job: the first runner to look claims them all in one claim. Each job
(`benchjobs.spin`) checkpoints every `--delay` seconds and appends
"generation wall-time" to its own file after each acknowledged checkpoint.
Once every job has checkpointed, the runner owning the most is SIGKILLed.

Measured from the signal, per run:
- owned again: until every orphan's record shows a higher generation and a
  live owner (polled in the store, every 5 ms);
- running again: until every orphan has acknowledged a checkpoint at its new
  generation (from the ack files), and the median and p99 over the orphans;
- how many Paxos proposals and take-over transactions it took (event log),
  to show that decisions and generation raises are batched.

    python bench/takeover_bench.py [--jobs 200] [--runs 3] [--delay 1.0]

Prints each run, then the medians, with the load average before and after.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from harunner import config  # noqa: E402
from harunner.cli.status import listen  # noqa: E402
from harunner.polling import wait_until  # noqa: E402
from harunner.store import JobState, Store, meta  # noqa: E402
from harunner.store.events import read_events  # noqa: E402
from harunner.store.transitions import Submission  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def first_ack_after(path: Path, generation: int) -> float | None:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and int(parts[0]) > generation:
            return float(parts[1])
    return None


def one_run(n: int, delay: float) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="hr-takeover-", dir="/tmp"))
    path = root / "harunner.toml"
    path.write_text(f'state_dir = "{root / "s"}"\njobs = ["{HERE / "benchjobs"}"]\n'
                    f'worker_mode = "process"\nconcurrency = {n}\nprefetch = 0\n')
    cfg = config.load(str(path), env={})
    store = Store.from_config(cfg)
    out = open(root / "supervisor.out", "wb")
    supervisor = subprocess.Popen([sys.executable, "-m", "harunner", "start", "--config",
                                   str(path)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: len(listen(cfg)[0]) == cfg.slots, 60, "the cluster", 0.05)
        acks = [root / f"acks-{i}" for i in range(n)]
        records = store.submit_many([Submission("benchjobs.spin", {"delay": delay,
                                                                   "acks": str(a)})
                                     for a in acks])
        ids = [r.job_id for r in records]
        wait_until(lambda: all(first_ack_after(a, 0) for a in acks), 300,
                   f"{n} jobs checkpointing", 0.1)
        owned = [store.get(job) for job in ids]
        slots: dict[int, int] = {}
        for record in owned:
            assert record.owner is not None
            slots[record.owner.slot] = slots.get(record.owner.slot, 0) + 1
        victim = max(slots, key=lambda s: slots[s])
        orphans = {r.job_id: (r.generation, acks[ids.index(r.job_id)]) for r in owned
                   if r.owner is not None and r.owner.slot == victim}
        info = meta.live_slot(store.layout, victim)
        assert info and info["pid"], "the victim's pid"
        sent = time.time()
        os.kill(int(info["pid"]), signal.SIGKILL)

        def all_owned() -> bool:
            for job, (generation, _) in orphans.items():
                record = store.get(job)
                if record.state is not JobState.RUNNING or record.generation <= generation:
                    return False
            return True

        wait_until(all_owned, 120, "every orphan owned again", 0.005)
        owned_at = time.time()
        resumed: dict[str, float] = {}

        def all_resumed() -> bool:
            for job, (generation, ack) in orphans.items():
                if job not in resumed:
                    at = first_ack_after(ack, generation)
                    if at is not None:
                        resumed[job] = at
            return len(resumed) == len(orphans)

        wait_until(all_resumed, 300, "every orphan checkpointing again", 0.05)
        events = [e for e in read_events(store.layout.events) if e.get("t", 0) >= sent]
        times = [(at - sent) * 1000 for at in resumed.values()]
        steps = {}
        for event in events:  # the failover's timeline: first and last of each step
            name, at = event.get("event"), (event["t"] - sent) * 1000
            first, last = steps.get(name, (at, at))
            steps[name] = (min(first, at), max(last, at))
        timeline = "; ".join(f"{name} {first:.0f}-{last:.0f}" for name, (first, last) in
                             sorted(steps.items(), key=lambda item: item[1][0])
                             if name in ("peer_exit", "runner_exit", "detected", "propose",
                                         "decided", "took_over", "worker_started"))
        return {"orphans": len(orphans), "owned_ms": (owned_at - sent) * 1000,
                "resumed_all_ms": max(times), "resumed_p50_ms": statistics.median(times),
                "resumed_p99_ms": percentile(times, 0.99),
                "proposals": sum(1 for e in events if e.get("event") == "propose"),
                "took_over": sum(1 for e in events if e.get("event") == "took_over"),
                "timeline": timeline}
    finally:
        supervisor.send_signal(signal.SIGTERM)
        try:
            supervisor.wait(timeout=60)
        except subprocess.TimeoutExpired:
            supervisor.kill()
            supervisor.wait()
        out.close()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--delay", type=float, default=1.0)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}; cores: {os.cpu_count()}")
    rows = []
    for run in range(1, args.runs + 1):
        row = one_run(args.jobs, args.delay)
        rows.append(row)
        print(f"run {run}: {row['orphans']} orphans; all owned again {row['owned_ms']:.0f} ms; "
              f"checkpointing again p50 {row['resumed_p50_ms']:.0f} ms, p99 "
              f"{row['resumed_p99_ms']:.0f} ms, all {row['resumed_all_ms']:.0f} ms; "
              f"{row['proposals']} proposals, {row['took_over']} jobs taken over\n"
              f"  timeline (ms after the signal, first-last): {row['timeline']}")
    print(f"load average at end: {os.getloadavg()}")
    for key in ("owned_ms", "resumed_p50_ms", "resumed_p99_ms", "resumed_all_ms"):
        print(f"  median {key:<16} {statistics.median(r[key] for r in rows):8.0f}")


if __name__ == "__main__":
    main()
