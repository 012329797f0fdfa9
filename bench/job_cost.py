"""Where a durable no-op job's cost goes: CPU time per job by process role, from /proc.

Starts a real cluster (like bench/throughput_bench.py), submits `--jobs`
no-op jobs through the Python client (one batch, or one call each with
`--single`), waits until all are durable, and reads the CPU time (user +
system, from /proc/<pid>/stat) of every process of the cluster before and
after: the supervisor, each runner, each worker. The client's own CPU is
that of this process. With `--profile DIR` it also records py-spy profiles
(collapsed stacks) of one runner and one worker while the jobs run.

    python bench/job_cost.py [--jobs 3000] [--single] [--runs 1] [--profile DIR]

Prints, per run: jobs/s, and CPU ms per job for each role and in all, plus
the load average.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from throughput_bench import HarunnerRun  # noqa: E402

from harunner.polling import wait_until  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of `pid` (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree(root: int) -> dict[int, str]:
    """pid -> role for every process under `root`: supervisor, runner (spawned by it),
    forkserver (a runner's child), worker (a forkserver's child), other."""
    roles: dict[int, str] = {root: "supervisor"}
    todo = [root]
    while todo:
        pid = todo.pop()
        for child in children(pid):
            try:
                cmd = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if roles[pid] == "supervisor":
                roles[child] = "runner" if b"spawn_main" in cmd else "other"
            elif roles[pid] == "runner":
                roles[child] = "forkserver" if b"forkserver" in cmd else "worker"
            else:
                roles[child] = "worker" if roles[pid] == "forkserver" else "other"
            todo.append(child)
    return roles


def snapshot(root: int) -> dict[int, tuple[str, tuple[float, float]]]:
    return {pid: (role, cpu_of(pid)) for pid, role in tree(root).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--single", action="store_true")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--profile", default="")
    parser.add_argument("--config", default="")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    for run in range(args.runs):
        root = Path(tempfile.mkdtemp(prefix="hr-cost-", dir="/tmp"))
        cluster = HarunnerRun(root, args.config.replace(";", "\n"))
        try:
            time.sleep(1.0)  # workers warm
            before = snapshot(cluster.process.pid)
            spies = []
            if args.profile:
                out = Path(args.profile)
                out.mkdir(parents=True, exist_ok=True)
                runners = [p for p, (r, _) in before.items() if r == "runner"]
                workers = [p for p, (r, _) in before.items() if r == "worker"]
                for name, pid in (("runner", runners[0]), ("worker", workers[0])):
                    spies.append(subprocess.Popen(
                        ["py-spy", "record", "--pid", str(pid), "--rate", "200",
                         *os.environ.get("SPY_FLAGS", "").split(),  # --gil: CPU, not waits
                         "--format", "raw", "--nonblocking", "-o",
                         str(out / f"{name}-{run}.txt")],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                time.sleep(1.0)
            me = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            cluster.submit(args.jobs, "single" if args.single else "batch")
            wait_until(lambda c=cluster: c.unfinished() == 0, 600, "the jobs", 0.02)
            elapsed = time.perf_counter() - started
            mine = resource.getrusage(resource.RUSAGE_SELF)
            after = snapshot(cluster.process.pid)
            for spy in spies:
                spy.send_signal(2)
                spy.wait(30)
        finally:
            cluster.close()
            shutil.rmtree(root, ignore_errors=True)
        per: dict[str, list[float]] = {}
        for pid, (role, (user, system)) in after.items():
            was = before.get(pid, (role, (0.0, 0.0)))[1]
            total_of = per.setdefault(role, [0.0, 0.0])
            total_of[0] += user - was[0]
            total_of[1] += system - was[1]
        per["client"] = [mine.ru_utime - me.ru_utime, mine.ru_stime - me.ru_stime]
        total = sum(sum(pair) for pair in per.values())
        parts = ", ".join(f"{role} {1000 * sum(cpu) / args.jobs:.3f} (sys "
                          f"{1000 * cpu[1] / args.jobs:.3f})"
                          for role, cpu in sorted(per.items()) if sum(cpu) > 0)
        print(f"run {run + 1}: {args.jobs / elapsed:.0f} jobs/s; CPU ms per job: {parts}; "
              f"all {1000 * total / args.jobs:.3f}; load {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
