"""Latency of each candidate etcd client against one real etcd node on loopback.

Starts the Debian etcd (tests/etcd/etcd_cluster.py) in a temporary folder, then
runs each client in its own process (aetcd and etcd-sdk-python cannot share one:
both register `kv.proto` with protobuf), in rounds whose order alternates, and
prints median and p99 in milliseconds of: put, txn (compare mod_revision, put),
lease keep-alive, and watch delivery (put acknowledged -> event seen by a watch
opened before), with the import time and the load average.

    python bench/etcd_clients.py [--ops 300] [--rounds 2] [--clients gateway,aetcd]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "etcd"))

OPERATIONS = ("put", "txn", "keepalive", "watch")


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def time_calls(call, count: int) -> list[float]:
    """Wall time in ms of `count` calls of `call(i)`."""
    samples = []
    for i in range(count):
        start = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def time_txns(client, key: bytes, count: int) -> list[float]:
    """ms of `count` fenced writes: txn(compare mod_revision == last, put); the read untimed."""
    samples = []
    for i in range(count):
        revision = client.get(key).mod_revision
        start = time.perf_counter()
        ok, _ = client.cas_mod(key, revision, b"%d" % i)
        samples.append((time.perf_counter() - start) * 1000)
        if not ok:
            raise RuntimeError("bench txn fenced unexpectedly")
    return samples


def watch_delivery(client, prefix: bytes, count: int) -> list[float]:
    """ms from a put's start to its event leaving the watch, one put at a time."""
    client.put(prefix + b"w", b"seed")
    watch = client.watch(prefix + b"w", client.get(prefix + b"w").mod_revision + 1)
    samples = []
    try:
        for i in range(count):
            start = time.perf_counter()
            client.put(prefix + b"w", b"%d" % i)
            got: list = []
            deadline = time.monotonic() + 5
            while not got and time.monotonic() < deadline:
                got = watch.next_events(1.0)
            if not got:
                raise RuntimeError(f"watch event {i} not delivered within 5 s")
            samples.append((time.perf_counter() - start) * 1000)
    finally:
        watch.close()
    return samples


def worker(name: str, endpoint: str, ops: int) -> dict:
    """Measure one client in this process; the samples by operation."""
    start = time.perf_counter()
    from etcd_adapters import MODULES, open_client
    if MODULES[name]:
        __import__(MODULES[name])
    imported_ms = (time.perf_counter() - start) * 1000
    client = open_client(name, endpoint)
    prefix = f"/bench/{name}/{os.getpid()}/".encode()
    try:
        client.put(prefix + b"warm", b"0")
        key = prefix + b"txn"
        client.put(key, b"0")
        lease = client.lease_grant(30)
        samples = {
            "put": time_calls(lambda i: client.put(prefix + b"p", b"%d" % i), ops),
            "txn": time_txns(client, key, ops),
            "keepalive": time_calls(lambda i: client.lease_keepalive(lease), ops),
            "watch": watch_delivery(client, prefix, ops),
        }
        client.lease_revoke(lease)
    finally:
        client.close()
    return {"import_ms": imported_ms, "samples": samples}


def run_worker(name: str, endpoint: str, ops: int) -> dict | None:
    command = [sys.executable, __file__, "--worker", name, "--endpoint", endpoint,
               "--ops", str(ops)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        print(f"{name}: failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    from etcd_adapters import CLIENTS, missing_reason
    from etcd_cluster import EtcdCluster, etcd_version, find_etcd
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--worker")
    parser.add_argument("--endpoint")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.endpoint, args.ops)))
        return
    binary = find_etcd()
    if binary is None:
        sys.exit("etcd not installed: run .ci/install-etcd")
    names = [n for n in args.clients.split(",") if not missing_reason(n)]
    with tempfile.TemporaryDirectory(prefix="etcd-bench-") as root:
        cluster = EtcdCluster(binary, Path(root), 1)
        cluster.start()
        try:
            results = measure(names, cluster.endpoints[0], args.ops, args.rounds)
        finally:
            cluster.stop()
    report(results, etcd_version(binary), args)


def measure(names: list[str], endpoint: str, ops: int, rounds: int) -> dict:
    results: dict = {n: {"import_ms": [], "samples": {op: [] for op in OPERATIONS}}
                     for n in names}
    for round_ in range(rounds):
        for name in (names if round_ % 2 == 0 else names[::-1]):
            got = run_worker(name, endpoint, ops)
            if got is None:
                continue
            results[name]["import_ms"].append(got["import_ms"])
            for op in OPERATIONS:
                results[name]["samples"][op] += got["samples"][op]
    return results


def report(results: dict, version: str, args: argparse.Namespace) -> None:
    load = os.getloadavg()
    print(f"etcd {version}, one node on loopback; {args.ops} ops x {args.rounds} rounds "
          f"per client; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"{os.cpu_count()} cores")
    print("| client | import ms | " + " | ".join(f"{op} p50 / p99 ms" for op in OPERATIONS)
          + " |")
    print("|---|---|" + "---|" * len(OPERATIONS))
    for name, data in results.items():
        if not data["import_ms"]:
            print(f"| {name} | failed |")
            continue
        cells = [f"{statistics.median(data['samples'][op]):.2f} / "
                 f"{percentile(data['samples'][op], 0.99):.2f}" for op in OPERATIONS]
        print(f"| {name} | {statistics.median(data['import_ms']):.0f} | "
              + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
