"""`harunner submit` wall time, next to `python -c pass` and `harunner --version`, alternating.

Each round runs, as fresh processes in a random order: the interpreter doing
nothing (`python -c pass`, the floor any CLI pays), `harunner submit
benchjobs.noop` (the short path: no Typer), and `harunner --version` (through
Typer, for comparison). The state directory is a temporary one with no
cluster running (a submission is durable before it returns either way).

    python bench/submit_bench.py [--rounds 30]

Prints the median and p99 of each, in ms, and the load average.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hr-submit-", dir="/tmp"))
    (root / "harunner.toml").write_text(f'state_dir = "{root / "s"}"\n'
                                        f'jobs = ["{HERE / "benchjobs"}"]\n')
    exe = Path(sys.executable)
    cli = str(exe.parent / "harunner") if (exe.parent / "harunner").exists() else None
    base = [cli] if cli else [sys.executable, "-m", "harunner"]
    commands = {"python -c pass": [sys.executable, "-c", "pass"],
                "harunner submit": [*base, "submit", "benchjobs.noop"],
                "harunner --version": [*base, "--version"]}
    rng = random.Random(1)
    times: dict[str, list[float]] = {name: [] for name in commands}
    print(f"load average at start: {os.getloadavg()}; cores: {os.cpu_count()}")
    try:
        timed(commands["harunner submit"], root)  # the store's first open is not timed
        for _ in range(args.rounds):
            order = list(commands)
            rng.shuffle(order)
            for name in order:
                times[name].append(timed(commands[name], root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"load average at end: {os.getloadavg()}")
    floor = statistics.median(times["python -c pass"])
    for name, values in times.items():
        ordered = sorted(values)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        print(f"  {name:<20} median {statistics.median(ordered):7.1f} ms  p99 {p99:7.1f} ms  "
              f"(median - python -c pass: {statistics.median(ordered) - floor:6.1f} ms)")


if __name__ == "__main__":
    main()
