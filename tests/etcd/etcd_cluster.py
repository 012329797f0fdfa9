"""Real etcd processes on loopback for tests and benches: one member, or a static cluster.

Responsible for starting the Debian `etcd` binary (3.4) on ports picked here, in a
data folder owned by the caller, waiting until it answers `/health`, finding the
Raft leader, and stopping every process it started, by pid.

Invariants:
- every process started is recorded in its `EtcdMember` and ended by `stop()`
  (SIGTERM, then SIGKILL after a deadline), and reaped; a member also gets
  PR_SET_PDEATHSIG=SIGKILL so that it dies with the test process;
- nothing listens anywhere but 127.0.0.1;
- a member restarted keeps its name, ports and data folder (same Raft identity);
- waiting always has a deadline (`harunner.polling.wait_until`), never a fixed sleep.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from harunner.polling import wait_until

ETCD_CANDIDATES = ("/usr/bin/etcd", "/usr/local/bin/etcd")
PR_SET_PDEATHSIG = 1
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0


def find_etcd() -> str | None:
    """The path of the etcd server binary, or None when it is not installed."""
    found = shutil.which("etcd")
    if found:
        return found
    return next((path for path in ETCD_CANDIDATES if os.access(path, os.X_OK)), None)


def etcd_version(binary: str) -> str:
    """The server version the binary reports, such as '3.4.23'."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    for line in out.stdout.splitlines():
        if line.startswith("etcd Version:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that were free a moment ago (bound to 0, released)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the test process goes away."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _clean_env() -> dict[str, str]:
    """The environment without ETCD_* variables, which etcd would read as flags."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}


def _post_json(url: str, body: dict, timeout: float) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@dataclass
class EtcdMember:
    """One etcd server process: its name, loopback ports and data folder."""

    binary: str
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    initial_cluster: str
    cluster_token: str
    process: subprocess.Popen | None = None
    starts: int = 0
    extra_args: list[str] = field(default_factory=list)

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        """The etcd command line: loopback only, static bootstrap, quiet log."""
        return [
            self.binary, "--name", self.name, "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.initial_cluster,
            "--initial-cluster-token", self.cluster_token,
            "--initial-cluster-state", "new",
            "--logger", "zap", "--log-level", "warn",
            *self.extra_args,
        ]

    def start(self) -> None:
        """Start the process (data folder kept across restarts); does not wait for health."""
        if self.alive():
            raise RuntimeError(f"etcd member {self.name} is already running (pid {self.pid})")
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir.parent / f"{self.name}.log", "ab")  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=_clean_env(), preexec_fn=_die_with_parent)
        finally:
            log.close()
        self.starts += 1

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def healthy(self) -> bool:
        """True when the member answers /health with health true (it has a leader)."""
        if not self.alive():
            return False
        try:
            with urllib.request.urlopen(self.client_url + "/health", timeout=1.0) as response:
                return json.loads(response.read()).get("health") == "true"
        except (OSError, ValueError):
            return False

    def status(self) -> dict:
        """The member's maintenance status: member_id in the header, leader id."""
        return _post_json(self.client_url + "/v3/maintenance/status", {}, timeout=2.0)

    def wait_healthy(self, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until healthy; a member that exits meanwhile fails at once with its log."""
        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"etcd member {self.name} exited: {self.log_tail()}")
            return self.healthy()
        wait_until(ready, timeout, f"etcd member {self.name} healthy", interval=0.05)

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """Send `signum` to this member's pid and, for a fatal one, reap it."""
        if not self.alive():
            return
        assert self.process is not None
        os.kill(self.process.pid, signum)
        if signum in (signal.SIGKILL, signal.SIGTERM):
            self.process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a deadline; always reaps."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)

    def restart(self) -> None:
        """Stop if running, start again on the same data and ports (not waiting for health)."""
        self.stop()
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        path = self.data_dir.parent / f"{self.name}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class EtcdCluster:
    """A static etcd cluster of `size` members on loopback (size 1: a single node)."""

    def __init__(self, binary: str, root: Path, size: int, extra_args: list[str] | None = None):
        ports = free_ports(2 * size)
        names = [f"m{i}" for i in range(size)]
        initial = ",".join(f"{n}=http://127.0.0.1:{ports[2 * i + 1]}"
                           for i, n in enumerate(names))
        token = f"harunner-{os.getpid()}-{ports[0]}"
        self.members = [
            EtcdMember(binary, n, ports[2 * i], ports[2 * i + 1], root / n / "data",
                       initial, token, extra_args=list(extra_args or []))
            for i, n in enumerate(names)]

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start every member, then wait until all are healthy."""
        for member in self.members:
            member.start()
        for member in self.members:
            member.wait_healthy(timeout)

    def stop(self) -> None:
        for member in self.members:
            member.stop()

    def leader(self, timeout: float = START_TIMEOUT_S) -> EtcdMember:
        """The member that the live members agree is the Raft leader."""
        def agreed() -> EtcdMember | None:
            ids = {}
            leaders = set()
            for member in self.members:
                if not member.alive():
                    continue
                try:
                    status = member.status()
                except (OSError, ValueError):
                    return None
                ids[status["header"]["member_id"]] = member
                leaders.add(status.get("leader"))
            if len(leaders) != 1:
                return None
            return ids.get(leaders.pop())
        return wait_until(agreed, timeout, "the etcd members to agree on a leader", 0.05)

    def kill_leader(self) -> EtcdMember:
        """SIGKILL the current leader (by pid) and return it, reaped."""
        leader = self.leader()
        leader.kill(signal.SIGKILL)
        return leader

    def restart_member(self, member: EtcdMember, timeout: float = START_TIMEOUT_S) -> None:
        """Start a stopped or killed member again and wait until it is healthy."""
        member.restart()
        member.wait_healthy(timeout)
