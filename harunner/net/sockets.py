"""All of harunner's ZeroMQ code: endpoints, the heartbeat bus, and peer links.

Invariants kept here:
- every socket sets LINGER and is used with timeouts or NOBLOCK, so no close
  and no send ever blocks on a dead or SIGSTOPped peer;
- each bind is guarded by a lock file held for the binding process's life, so
  a second process can never silently steal a live `ipc://` endpoint;
- an `ipc://` path longer than libzmq allows is refused with a clear message;
- the outbound peer socket is a ROUTER with ROUTER_MANDATORY: a frame for a
  peer that is not connected fails at once and is counted, never queued;
- one `zmq.Context` per process, created by the caller after the process started;
- every queue and every frame is bounded, so a flood of frames costs bounded
  memory and bounded work per loop turn: each socket has a high-water mark of
  a few hundred frames per connection (`BUS_HWM`, `PEER_HWM`) and a MAXMSGSIZE
  equal to what its codec decodes (`harunner.net.bus.MAX_BUS_FRAME`,
  `harunner.paxos.codec.MAX_FRAME`; a bus PUB, which only reads
  subscriptions, `SUBSCRIPTION_MAX`): libzmq drops the connection of a peer
  that sends a larger frame before the process sees any of it; and `drain`
  hands out at most `BUS_DRAIN_LIMIT` or `PEER_DRAIN_LIMIT` frames per call,
  so a loop turn that reads both stays within a few milliseconds and the
  loop keeps beating. Frames left over wait for the next turn (or are
  dropped by libzmq at the high-water mark).
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
from harunner.net.bus import MAX_BUS_FRAME
from harunner.paxos.codec import MAX_FRAME as MAX_PEER_FRAME

PAXOS_LINGER_MS = 50
BUS_HWM = 1000
"""Frames queued per bus connection: 1000 beats are 20 s of one runner's beats."""
PEER_HWM = 256
"""Frames queued per peer connection (a Paxos round is a handful of batched frames)."""
SUBSCRIPTION_MAX = 32
"""MAXMSGSIZE of a bus PUB, whose only input is subscriptions: a SUB's handshake (25 bytes)
and its subscription to everything fit; a hostile subscription of megabytes, which libzmq
would store byte by byte in its subscription trie, drops the connection instead."""
BUS_DRAIN_LIMIT = 256
"""Bus frames read per `drain` (decoding one costs ~30 us)."""
PEER_DRAIN_LIMIT = 16
"""Peer frames read per `drain` (one may cost a durable write of a few ms)."""


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
        lock = filelock.FileLock(str(path) + ".lock", mode=0o600, thread_local=False)
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


def _socket(context: zmq.Context, kind: int, linger: int, max_frame: int,
            hwm: int) -> zmq.Socket:
    """A socket with LINGER, MAXMSGSIZE and both high-water marks set."""
    socket = context.socket(kind)
    socket.setsockopt(zmq.LINGER, linger)
    socket.setsockopt(zmq.MAXMSGSIZE, max_frame)
    socket.setsockopt(zmq.SNDHWM, hwm)
    socket.setsockopt(zmq.RCVHWM, hwm)
    return socket


class Publisher:
    """The PUB end of the heartbeat bus for one participant."""

    def __init__(self, context: zmq.Context, guard: BindGuard, path: Path) -> None:
        self.socket = _socket(context, zmq.PUB, 0, SUBSCRIPTION_MAX, BUS_HWM)
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

    def __init__(self, context: zmq.Context, paths: Iterable[Path],
                 topics: Iterable[bytes] = (b"",)) -> None:
        self.socket = _socket(context, zmq.SUB, 0, MAX_BUS_FRAME, BUS_HWM)
        for topic in topics:  # frame prefixes (`bus.topics`); b"" is every frame
            self.socket.setsockopt(zmq.SUBSCRIBE, topic)
        for path in paths:
            self.socket.connect(url(path))

    def drain(self, limit: int = BUS_DRAIN_LIMIT) -> Iterator[bytes]:
        """Up to `limit` frames waiting now, without blocking."""
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
        self.inbound = _socket(context, zmq.ROUTER, PAXOS_LINGER_MS, MAX_PEER_FRAME, PEER_HWM)
        self.inbound.setsockopt(zmq.ROUTING_ID, peer_identity(slot))
        guard.bind(self.inbound, peers[slot])
        self.outbound = _socket(context, zmq.ROUTER, PAXOS_LINGER_MS, MAX_PEER_FRAME, PEER_HWM)
        self.outbound.setsockopt(zmq.ROUTER_MANDATORY, 1)
        for other, path in peers.items():
            if other != slot:
                self.outbound.connect(url(path))
        self.unreachable = 0
        self.malformed = 0

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

    def drain(self, limit: int = PEER_DRAIN_LIMIT) -> Iterator[bytes]:
        """Up to `limit` frames waiting now, without blocking (the routing id is dropped).

        A message of other than two parts (routing id and frame) is dropped and
        counted in `malformed`; it counts toward `limit` too.
        """
        for _ in range(limit):
            try:
                parts = self.inbound.recv_multipart(flags=zmq.NOBLOCK, copy=True)
            except zmq.Again:
                return
            if len(parts) == 2:
                yield parts[1]
            else:
                self.malformed += 1

    def close(self) -> None:
        self.inbound.close(linger=PAXOS_LINGER_MS)
        self.outbound.close(linger=PAXOS_LINGER_MS)
