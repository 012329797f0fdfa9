"""What an idle cluster costs: CPU (% of one core) and wake-ups per second.

Starts a real cluster with the default config (plus `--config` lines) in a
temporary directory, waits until every runner beats and `--settle` seconds
more, then reads utime+stime and the context-switch counters of the
supervisor, the runners and all their descendants (forkservers, pool
workers) from /proc at the start and the end of a `--window`-second window.
Runs `--runs` times; prints each process kind's share and the total.

    python bench/idle_bench.py [--window 10] [--runs 3] [--config "heartbeat_ms = 50"]
"""

from __future__ import annotations

import argparse
import os
import shutil
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

TICKS = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                text = Path(f"/proc/{current}/task/{task}/children").read_text()
            except FileNotFoundError:
                continue
            todo.extend(int(child) for child in text.split())
    return found


def sample(pid: int) -> tuple[float, int] | None:
    """CPU seconds used and context switches (voluntary + not) of process `pid`."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICKS
    switches = sum(int(line.split()[1]) for line in status.splitlines()
                   if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")))
    return cpu, switches


def name_of(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return "gone"
    text = b" ".join(argv).decode(errors="replace")
    if "harunner start" in text:
        return "supervisor"
    if "forkserver" in text:
        return "forkserver"
    if "spawn_main" in text:
        return "runner or worker"
    return "other"


def one_run(extra: str, window: float, settle: float) -> dict[str, tuple[float, float]]:
    root = Path(tempfile.mkdtemp(prefix="hr-idle-", dir="/tmp"))
    path = root / "harunner.toml"
    path.write_text(f'state_dir = "{root / "s"}"\njobs = ["{HERE / "benchjobs"}"]\n{extra}\n')
    cfg = config.load(str(path), env={})
    out = open(root / "supervisor.out", "wb")
    process = subprocess.Popen([sys.executable, "-m", "harunner", "start", "--config", str(path)],
                               stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: len(listen(cfg)[0]) == cfg.slots, 60, "cluster up", 0.05)
        time.sleep(settle)
        pids = descendants(process.pid)
        before = {pid: sample(pid) for pid in pids}
        time.sleep(window)
        after = {pid: sample(pid) for pid in pids}
        kinds: dict[str, list[float]] = {}
        for pid in pids:
            start, end = before[pid], after[pid]
            if start is None or end is None:
                continue
            kind = name_of(pid)
            cpu, wakes = kinds.setdefault(kind, [0.0, 0.0])
            kinds[kind] = [cpu + (end[0] - start[0]), wakes + (end[1] - start[1])]
        return {kind: (100 * cpu / window, wakes / window) for kind, (cpu, wakes) in kinds.items()}
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        out.close()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--config", default="", help="extra config lines, ';'-separated")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    totals, wakeups = [], []
    for run in range(args.runs):
        kinds = one_run(args.config.replace(";", "\n"), args.window, args.settle)
        cpu = sum(c for c, _ in kinds.values())
        wakes = sum(w for _, w in kinds.values())
        totals.append(cpu)
        wakeups.append(wakes)
        detail = ", ".join(f"{k} {c:.2f}% {w:.0f}/s" for k, (c, w) in sorted(kinds.items()))
        print(f"run {run + 1}: {cpu:.2f}% of one core, {wakes:.0f} wake-ups/s ({detail})")
    print(f"load average at end: {os.getloadavg()}")
    print(f"median: {statistics.median(totals):.2f}% of one core, "
          f"{statistics.median(wakeups):.0f} wake-ups/s")


if __name__ == "__main__":
    main()
