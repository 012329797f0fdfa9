"""Failover latency of a real cluster: SIGKILL (and SIGSTOP) of a job's owner.

For each kill: the time from the signal to the resumed job's first new
checkpoint (acknowledged by the store, appended by the job to a file), and
where the time went, from the cluster's event log: the supervisor seeing the
exit, a runner declaring the owner dead, Paxos deciding the new owner, the new
owner raising the generation in the store, its worker starting.

Baselines measured in the same run: one durable atomic write (temp, fsync,
rename, dir fsync) and one ZeroMQ ipc round trip, so that a figure can be read
against what this machine does at that moment.

    python bench/failover_bench.py [--kills 50] [--stops 10]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harunner import config
from harunner.api import client
from harunner.cli.status import listen
from harunner.polling import wait_until as poll
from harunner.store import Store, meta
from harunner.store.events import read_events

HERE = Path(__file__).parent
STEPS = [("exit seen", ("runner_exit", "peer_exit")), ("declared dead", "detected"),
         ("decided", "decided"), ("generation raised", "took_over"),
         ("worker started", "worker_started")]


def acks(path: Path) -> list[tuple[int, float]]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) == 2:
            out.append((int(parts[0]), float(parts[1])))
    return out


def first_after(path: Path, generation: int) -> float | None:
    for gen, at in acks(path):
        if gen > generation:
            return at
    return None


class Bench:
    def __init__(self, root: Path) -> None:
        self.root = root
        cfg_path = root / "harunner.toml"
        extra = os.environ.get("BENCH_CONFIG", "").replace(";", "\n")
        cfg_path.write_text(f'state_dir = "{root / "s"}"\njobs = ["{HERE / "benchjobs"}"]\n'
                            f'{extra}\n')
        self.cfg = config.load(str(cfg_path), env={})
        self.layout = meta.Layout(self.cfg.state_path)
        self.store = Store.from_config(self.cfg)
        out = open(root / "supervisor.out", "wb")
        self.supervisor = subprocess.Popen([sys.executable, "-m", "harunner", "start",
                                            "--config", str(cfg_path)], stdout=out,
                                           stderr=subprocess.STDOUT)

    def wait_up(self) -> None:
        poll(lambda: len(listen(self.cfg)[0]) == self.cfg.slots, 60, "cluster up", 0.01)

    def owner_pid(self, job: str) -> tuple[int, int]:
        record = poll(lambda: (r := self.store.get(job)).owner is not None and r, 30, "owner")
        info = poll(lambda: meta.live_slot(self.layout, record.owner.slot), 10, "slot")
        return record.generation, int(info["pid"])

    def one(self, job: str, ack_path: Path, signum: int, rng: random.Random) -> dict[str, float]:
        self.wait_up()
        generation, pid = self.owner_pid(job)
        poll(lambda: first_after(ack_path, generation - 1), 30, "job running")
        time.sleep(rng.uniform(0.05, 0.15))
        generation, pid = self.owner_pid(job)
        sent = time.time()
        os.kill(pid, signum)
        try:
            resumed = poll(lambda: first_after(ack_path, generation), 30, "resume")
        finally:
            if signum == signal.SIGSTOP:
                os.kill(pid, signal.SIGCONT)
        result = {"total": (resumed - sent) * 1000}
        events = [e for e in read_events(self.layout.events) if e.get("t", 0) >= sent]
        for label, name in STEPS:
            names = name if isinstance(name, tuple) else (name,)
            at = next((e["t"] for e in events if e.get("event") in names), None)
            if at is not None:
                result[label] = (at - sent) * 1000
        return result

    def close(self) -> None:
        self.supervisor.send_signal(signal.SIGTERM)
        try:
            self.supervisor.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.supervisor.kill()
            self.supervisor.wait()


def baseline_write(folder: Path, runs: int = 200) -> list[float]:
    out = []
    dfd = os.open(folder, os.O_RDONLY)
    for i in range(runs):
        started = time.perf_counter()
        fd = os.open(folder / "t", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, b"x" * 64)
        os.fsync(fd)
        os.close(fd)
        os.replace(folder / "t", folder / f"b{i % 2}")
        os.fsync(dfd)
        out.append((time.perf_counter() - started) * 1000)
    os.close(dfd)
    return out


def baseline_zmq(folder: Path, runs: int = 500) -> list[float]:
    import zmq

    context = zmq.Context()
    a, b = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
    a.bind(f"ipc://{folder}/p.sock")
    b.connect(f"ipc://{folder}/p.sock")
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        a.send(b"x")
        b.recv()
        b.send(b"y")
        a.recv()
        out.append((time.perf_counter() - started) * 1000)
    a.close(0)
    b.close(0)
    context.term()
    return out


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return (f"median {statistics.median(ordered):7.2f} ms  p99 {p99:7.2f} ms  "
            f"max {ordered[-1]:7.2f} ms  (n={len(ordered)})")


def series(name: str, bench: Bench, job: str, ack_path: Path, signum: int, count: int,
           rng: random.Random) -> list[float]:
    rows = [bench.one(job, ack_path, signum, rng) for _ in range(count)]
    print(f"\n{name}: signal -> first new checkpoint  {summary([r['total'] for r in rows])}")
    for label, _ in STEPS:
        values = [r[label] for r in rows if label in r]
        if values:
            print(f"  {label:<18} {summary(values)}")
    return [r["total"] for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--stops", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    rng = random.Random(options.seed)
    root = Path(tempfile.mkdtemp(prefix="hr-bench-", dir="/tmp"))
    bench = Bench(root)
    try:
        bench.wait_up()
        ack_path = root / "acks.txt"
        job = client.submit_job(bench.cfg, "benchjobs.spin",
                                 ["delay=0.005", f"acks={ack_path}"]).job_id
        write = baseline_write(root)
        ipc = baseline_zmq(root)
        print(f"baseline durable write   {summary(write)}")
        print(f"baseline zmq round trip  {summary(ipc)}")
        kills = series("SIGKILL of the owner", bench, job, ack_path, signal.SIGKILL,
                       options.kills, rng)
        if options.stops:
            series(f"SIGSTOP of the owner (hang_timeout_ms={bench.cfg.hang_timeout_ms})", bench,
                   job, ack_path, signal.SIGSTOP, options.stops, rng)
        print(f"\nSIGKILL failover median / durable-write median: "
              f"{statistics.median(kills) / statistics.median(write):.1f}x")
    finally:
        bench.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
