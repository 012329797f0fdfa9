"""All of harunner's ZeroMQ code: endpoints, the heartbeat bus, and peer links.

Invariants kept here:
- every socket sets LINGER and is used with timeouts or NOBLOCK, so no close
  and no send ever blocks on a dead or SIGSTOPped peer;
- each bind is guarded by a lock file held for the binding process's life, so
  a second process can never silently steal a live `ipc://` endpoint;
- an `ipc://` path longer than libzmq allows is refused with a clear message;
- the outbound peer socket is a ROUTER with ROUTER_MANDATORY: a frame for a
  peer that is not connected fails at once and is counted, never queued;
- one `zmq.Context` per process, created by the caller after the process started.
Frames are bytes; what they mean is the business of `harunner.net.bus` and
`harunner.paxos.codec`. Where the sockets live is `harunner.store.layout`'s.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import filelock
import zmq

from harunner.errors import ClusterError, ConfigError

PAXOS_LINGER_MS = 50
MAX_FRAME = 8 * 1024 * 1024


def check_ipc_paths(paths: Iterable[Path]) -> None:
    """Refuse socket paths that libzmq cannot bind (longer than an ipc:// address allows)."""
    limit = getattr(zmq, "IPC_PATH_MAX_LEN", 107) or 107
    for path in paths:
        if len(str(path)) > limit:
            raise ConfigError(
                f"socket path {path} is {len(str(path))} bytes, longer than the "
                f"{limit} bytes an ipc:// endpoint allows; set state_dir to a shorter path")


def url(path: Path) -> str:
    return f"ipc://{path}"


class BindGuard:
    """Lock files that keep the endpoints this process bound; held until release()."""

    def __init__(self) -> None:
        self._locks: list[filelock.FileLock] = []

    def bind(self, socket: zmq.Socket, path: Path) -> None:
        """Bind `socket` at `path` if no live process holds it, else raise ClusterError."""
        lock = filelock.FileLock(str(path) + ".lock", thread_local=False)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            raise ClusterError(f"endpoint {path} is bound by another live process; "
                               "is another harunner running on this state directory?") from None
        self._locks.append(lock)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        socket.bind(url(path))

    def release(self) -> None:
        for lock in self._locks:
            lock.release()
        self._locks.clear()


def _socket(context: zmq.Context, kind: int, linger: int) -> zmq.Socket:
    socket = context.socket(kind)
    socket.setsockopt(zmq.LINGER, linger)
    socket.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME)
    return socket


class Publisher:
    """The PUB end of the heartbeat bus for one participant."""

    def __init__(self, context: zmq.Context, guard: BindGuard, path: Path) -> None:
        self.socket = _socket(context, zmq.PUB, 0)
        self.socket.setsockopt(zmq.SNDHWM, 1000)
        guard.bind(self.socket, path)
        self.dropped = 0

    def publish(self, frame: bytes) -> None:
        try:
            self.socket.send(frame, flags=zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1

    def close(self) -> None:
        self.socket.close(linger=0)


class Subscriber:
    """The SUB end of the heartbeat bus, connected to every publisher's path."""

    def __init__(self, context: zmq.Context, paths: Iterable[Path]) -> None:
        self.socket = _socket(context, zmq.SUB, 0)
        self.socket.setsockopt(zmq.RCVHWM, 10000)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        for path in paths:
            self.socket.connect(url(path))

    def drain(self, limit: int = 10000) -> Iterator[bytes]:
        """Frames waiting now, without blocking."""
        for _ in range(limit):
            try:
                yield self.socket.recv(flags=zmq.NOBLOCK)
            except zmq.Again:
                return

    def close(self) -> None:
        self.socket.close(linger=0)


def peer_identity(slot: int) -> bytes:
    return b"peer-%d" % slot


class PeerLink:
    """Point-to-point frames between runner slots (Paxos): ROUTER in, ROUTER out."""

    def __init__(self, context: zmq.Context, guard: BindGuard, slot: int,
                 peers: Mapping[int, Path]) -> None:
        self.inbound = _socket(context, zmq.ROUTER, PAXOS_LINGER_MS)
        self.inbound.setsockopt(zmq.ROUTING_ID, peer_identity(slot))
        self.inbound.setsockopt(zmq.RCVHWM, 10000)
        guard.bind(self.inbound, peers[slot])
        self.outbound = _socket(context, zmq.ROUTER, PAXOS_LINGER_MS)
        self.outbound.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.outbound.setsockopt(zmq.SNDHWM, 10000)
        for other, path in peers.items():
            if other != slot:
                self.outbound.connect(url(path))
        self.unreachable = 0

    def send(self, slot: int, frame: bytes) -> bool:
        """Send `frame` to `slot`; False (and counted) if that peer is not reachable now."""
        try:
            self.outbound.send_multipart([peer_identity(slot), frame], flags=zmq.NOBLOCK)
            return True
        except zmq.ZMQError as error:
            if error.errno not in (errno.EHOSTUNREACH, errno.EAGAIN):
                raise
            self.unreachable += 1
            return False

    def drain(self, limit: int = 10000) -> Iterator[bytes]:
        """Frames waiting now, without blocking (the sender's routing id is dropped)."""
        for _ in range(limit):
            try:
                parts = self.inbound.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(parts) == 2:
                yield parts[1]

    def close(self) -> None:
        self.inbound.close(linger=PAXOS_LINGER_MS)
        self.outbound.close(linger=PAXOS_LINGER_MS)
