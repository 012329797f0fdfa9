"""Multi-host figures of the etcd backend, next to the local backend, in one run.

Hosts are state directories with their own supervisor on this machine, sharing one
etcd (the Debian binary, started here on free loopback ports):

- runner crash: SIGKILL the runner that owns a running job on a host whose other
  runner lives (its peer sees the pidfd, revokes the lease; the lowest live runner
  takes the job over); the same on the local backend (Paxos);
- host loss: SIGKILL every process of the host that owns a running job (its lease
  runs out after `lease_ttl`; a runner of the other host takes the job over);
- no-op jobs/s: N no-op jobs submitted at once, until all are finished, on two etcd
  hosts and on one local host with the same number of runners in all;
- etcd leader loss (`--leader-kills`): a host on a three-member etcd runs a job that
  checkpoints every 5 ms; SIGKILL the Raft leader; the stall is the longest pause
  between two acknowledged checkpoints of the job over the 4 s after (from the last
  one before the signal; whoever owns the job), and how many of
  the trials moved the job to another owner (they should not: the leases outlast
  the election). The killed member is restarted before the next trial.

Each failover figure is from the signal to the first checkpoint the resumed job had
acknowledged (the job appends it to a file), and to the take-over seen in the store.

    python bench/hosts_bench.py [--crashes 20] [--losses 5] [--jobs 2000] [--leader-kills 5]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "hosts"), str(ROOT / "tests" / "etcd")]

from etcd_cluster import EtcdCluster, etcd_version, find_etcd  # noqa: E402
from hostcluster import Host, descendants, signal_all  # noqa: E402

from harunner import config  # noqa: E402
from harunner.polling import wait_until  # noqa: E402
from harunner.store import transitions as t  # noqa: E402
from harunner.store.backends import open_store  # noqa: E402
from harunner.store.model import JobState  # noqa: E402

TTL = 2
OPTIONS: dict[str, Any] = {"slots": 2, "concurrency": 2, "lease_ttl": TTL}


def first_ack(log: Path, job: str, generation: int) -> float:
    """The wall time of `job`'s first acknowledged checkpoint at `generation` or later; 0.0
    while there is none."""
    try:
        lines = log.read_text().splitlines()
    except FileNotFoundError:
        return 0.0
    for line in lines:
        kind, who, _host, gen, _i, at = line.split()
        if kind == "ok" and who == job and int(gen) >= generation:
            return float(at)
    return 0.0


def owned_elsewhere(store: Any, job: str, before: int) -> Any:
    record = store.get(job)
    return record.state is JobState.RUNNING and record.generation > before and record


def one_failover(store: Any, host: Host, log: Path, kill: Any, timeout: float
                 ) -> tuple[float, float]:
    """Submit a long job, wait until it checkpoints on `host`, `kill()`; (take-over, resumed)
    in ms from the signal. `log` is a folder: one file per trial, kept short."""
    log = log / f"{time.monotonic_ns()}.log"
    job = store.submit("hostjobs.ticker", {"to": 100000, "delay": 0.005, "log": str(log)}).job_id
    wait_until(lambda: (r := store.get(job)).state is JobState.RUNNING and r.owner is not None
               and first_ack(log, job, r.generation), 30, "the job to checkpoint", 0.01)
    before = store.get(job).generation
    killed_wall, killed = kill(store.get(job))
    wait_until(lambda: owned_elsewhere(store, job, before), timeout, "a take-over", 0.002)
    took = time.monotonic() - killed
    resumed = (wait_until(lambda: first_ack(log, job, before + 1), 30,
                               "a resumed checkpoint", 0.005))
    store.cancel(job)
    return took * 1000, (resumed - killed_wall) * 1000


def kill_owner(host: Host) -> Any:
    def kill(record: Any) -> tuple[float, float]:
        pid = owner_pid(host, record.owner)
        wall, mono = time.time(), time.monotonic()
        os.kill(pid, signal.SIGKILL)
        return wall, mono
    return kill


def owner_pid(host: Host, owner: Any) -> int:
    if host.config.backend == "local":
        from harunner.store import meta
        info = meta.live_slot(meta.Layout(host.config.state_path), owner.slot)
        assert info is not None
        return int(info["pid"])
    from hostcluster import membership
    return membership(config.etcd_endpoints(host.config.backend)).members()[0][
        owner.incarnation].pid


def runner_crashes(store: Any, host: Host, log: Path, count: int) -> list[tuple[float, float]]:
    out = []
    for _ in range(count):
        out.append(one_failover(store, host, log, kill_owner(host), 20))
        wait_until(lambda: len(host.pids()) > 0 and runners_up(host), 30, "the slot back")
    return out


def runners_up(host: Host) -> bool:
    if host.config.backend == "local":
        from harunner.cli.status import listen
        return len(listen(host.config)[0]) == host.config.slots
    from hostcluster import membership
    members = membership(config.etcd_endpoints(host.config.backend)).members()[0]
    return len(host.runners(members)) == host.config.slots


def host_losses(store: Any, a: Host, b: Host, log: Path, count: int) -> list[tuple[float, float]]:
    return [one_loss(store, a, b, log / f"{trial}.log") for trial in range(count)]


def one_loss(store: Any, a: Host, b: Host, log: Path) -> tuple[float, float]:
    """Start host-a, let it own a job (host-b paused meanwhile), SIGKILL all of host-a."""
    a.start()
    wait_until(lambda: runners_up(a), 60, "host-a up")
    b_pids = b.pids()
    signal_all(b_pids, signal.SIGSTOP)  # host-a must own the job
    try:
        job = store.submit("hostjobs.ticker", {"to": 100000, "delay": 0.005,
                                               "log": str(log)}).job_id
        wait_until(lambda: (r := store.get(job)).owner is not None
                   and first_ack(log, job, r.generation), 30, "host-a to run it", 0.01)
    finally:
        signal_all(b_pids, signal.SIGCONT)
    wait_until(lambda: runners_up(b), 30, "host-b registered again")
    before = store.get(job).generation
    killed_wall, killed = time.time(), time.monotonic()
    a.kill()
    wait_until(lambda: owned_elsewhere(store, job, before), TTL + 10, "a take-over", 0.002)
    took = (time.monotonic() - killed) * 1000
    resumed = (wait_until(lambda: first_ack(log, job, before + 1), 30, "resumed", 0.005))
    store.cancel(job)
    return took, (resumed - killed_wall) * 1000


def ack_times(log: Path, job: str) -> list[float]:
    """The wall times of `job`'s acknowledged checkpoints, in order."""
    try:
        lines = log.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [float(p[5]) for p in map(str.split, lines) if p[0] == "ok" and p[1] == job]


def longest_gap(times: list[float], around: float) -> float:
    """The longest gap between consecutive checkpoints from the last one before `around`."""
    before = [t for t in times if t <= around]
    start = before[-1] if before else around
    later = [start] + [t for t in times if t > start]
    return max(b - a for a, b in zip(later, later[1:], strict=False))


def read(call: Any, *args: Any) -> Any:
    """`call(*args)`, or None while etcd does not answer (the client's member may be the one
    killed: it answers on the next member at the next try)."""
    from harunner.errors import StoreError
    try:
        return call(*args)
    except StoreError:
        return None


def one_leader_loss(store: Any, etcd: EtcdCluster, log: Path) -> tuple[float, bool]:
    """One trial: (the longest pause between two acknowledged checkpoints of the job from
    the last before the leader's SIGKILL, in ms; whether the job changed owner); the
    killed member is restarted after."""
    job = store.submit("hostjobs.ticker", {"to": 100000, "delay": 0.005,
                                           "log": str(log)}).job_id
    wait_until(lambda: (r := store.get(job)).owner is not None
               and first_ack(log, job, r.generation), 30, "the job to checkpoint", 0.01)
    before = store.get(job).generation
    etcd.leader()
    killed_wall = time.time()
    member = etcd.kill_leader()
    wait_until(lambda: any(t > killed_wall + 4 for t in ack_times(log, job)), 60,
               "checkpoints 4 s after the leader's loss", 0.01)
    stall = longest_gap(ack_times(log, job), killed_wall)
    moved = wait_until(lambda: read(store.get, job), 30, "a read").generation > before
    wait_until(lambda: read(store.cancel, job), 30, "the cancel")
    etcd.restart_member(member)
    return stall * 1000, moved


def leader_losses(binary: str, root: Path, count: int) -> tuple[list[float], int]:
    """(stall in ms per trial, trials in which the job changed owner) on a 3-member etcd."""
    etcd = EtcdCluster(binary, root / "etcd3", 3)
    etcd.start()
    backend = "etcd://" + ",".join(u.removeprefix("http://") for u in etcd.endpoints)
    host = Host(root / "l", "host-l", backend, **{**OPTIONS, "lease_ttl": 5})
    stalls, moved = [], 0
    try:
        store = open_store(config.load(overrides={"backend": backend,
                                                  "state_dir": str(root / "lclient")}, env={}))
        host.start()
        wait_until(lambda: runners_up(host), 60, "the host up")
        for trial in range(count):
            stall, changed = one_leader_loss(store, etcd, root / f"leader-{trial}.log")
            stalls.append(stall)
            moved += changed
    finally:
        host.stop()
        etcd.stop()
    return stalls, moved


def throughput(store: Any, count: int) -> float:
    start = time.monotonic()
    for first in range(0, count, 100):
        store.submit_many([t.Submission("hostjobs.noop", {})
                           for _ in range(min(100, count - first))])
    wait_until(lambda: store.count_unfinished() == 0, 600, "every job finished", 0.05)
    return count / (time.monotonic() - start)


def folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def stats(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered):7.1f} / {p99:7.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--crashes", type=int, default=20)
    parser.add_argument("--losses", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--leader-kills", type=int, default=5)
    args = parser.parse_args()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # child subreaper: every process started stays findable
    binary = find_etcd()
    if binary is None:
        sys.exit("etcd not installed: run .ci/install-etcd")
    root = Path(tempfile.mkdtemp(prefix="hbench-", dir="/tmp"))
    etcd = EtcdCluster(binary, root / "etcd", 1)
    etcd.start()
    backend = "etcd://" + ",".join(u.removeprefix("http://") for u in etcd.endpoints)
    hosts: list[Host] = []
    try:
        store = open_store(config.load(overrides={"backend": backend,
                                                  "state_dir": str(root / "client")}, env={}))
        store.init()
        a = Host(root / "a", "host-a", backend, **OPTIONS)
        b = Host(root / "b", "host-b", backend, **OPTIONS)
        local = Host(root / "local", "local", "local", **{**OPTIONS, "slots": 4})
        hosts += [a, b, local]
        a.start()
        b.start()
        wait_until(lambda: runners_up(a) and runners_up(b), 60, "both etcd hosts up")
        etcd_tput = throughput(store, args.jobs)
        b.stop()
        etcd_crash = runner_crashes(store, a, folder(root / "crash"), args.crashes)
        a.stop()
        b.start()
        wait_until(lambda: runners_up(b), 60, "host-b up")
        loss = host_losses(store, a, b, folder(root / "loss"), args.losses)
        b.stop()
        local.start()
        local_store = open_store(local.config)
        wait_until(lambda: runners_up(local), 60, "the local host up")
        local_tput = throughput(local_store, args.jobs)
        local_crash = runner_crashes(local_store, local, folder(root / "local"), args.crashes)
        local.stop()
        leader, moved = leader_losses(binary, root, args.leader_kills)
    finally:
        for host in hosts:
            host.stop()
        signal_all(descendants(os.getpid()), signal.SIGKILL)
        etcd.stop()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"etcd {etcd_version(binary)}; lease_ttl {TTL} s; 2 slots x concurrency 2 per "
          f"etcd host; load average {load}; {os.cpu_count()} cores")
    print("| figure (ms, median / p99)        | backend | take-over       | resumed         |")
    print("|----------------------------------|---------|-----------------|-----------------|")
    for name, kind, rows in (("runner crash, live local peer", "etcd", etcd_crash),
                             ("runner crash, live local peer", "local", local_crash),
                             ("host loss (every process)", "etcd", loss)):
        print(f"| {name:32} | {kind:7} | {stats([r[0] for r in rows])} | "
              f"{stats([r[1] for r in rows])} |  n={len(rows)}")
    print(f"| {'etcd leader SIGKILLed (3 members)':32} | etcd    | owner moved "
          f"{moved}/{len(leader)} | {stats(leader)} |  n={len(leader)} (stall)")
    print(f"no-op jobs/s, {args.jobs} jobs: etcd, 2 hosts x 2 runners: {etcd_tput:.0f}; "
          f"local, 1 host x 4 runners: {local_tput:.0f}")


if __name__ == "__main__":
    main()
