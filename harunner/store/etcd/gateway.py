"""A standard-library client for etcd's v3 JSON gateway (HTTP/1.1, `/v3/...`).

Responsible for the few calls harunner needs: range, put, delete, txn, lease
grant/keep-alive/revoke/time-to-live, compaction, status, and watches read from a
plain socket that a caller's loop can poll (`GatewayWatch.fileno()`), no threads.

Invariants:
- keys and values are bytes on the caller's side, base64 on the wire; int64 fields
  arrive as JSON strings and leave here as ints; absent fields mean zero/false;
- a request is retried on the next endpoint only when the connection was refused
  (nothing was sent); any failure after sending raises `EtcdUnavailable`, because
  the outcome is unknown and the caller must re-read before it decides;
- a watch reports events in revision order and never skips one silently: a watch
  from a compacted revision raises `WatchCompacted`, a broken stream
  `EtcdUnavailable`; resume with `start_revision = last seen mod_revision + 1`.
"""

from __future__ import annotations

import base64
import http.client
import json
import select
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from harunner.errors import StoreError


class EtcdError(StoreError):
    """etcd answered with an error (the gRPC code and etcd's message)."""

    def __init__(self, message: str, code: int, path: str):
        super().__init__(f"etcd refused {path}: {message} (code {code})")
        self.message = message
        self.code = code


class EtcdUnavailable(StoreError):
    """No answer from etcd; for a write, whether it was applied is unknown."""


class WatchCompacted(StoreError):
    """The watch's start revision was compacted away; re-read, then watch from now."""

    def __init__(self, compact_revision: int):
        super().__init__(f"watch start revision compacted; oldest kept is {compact_revision}")
        self.compact_revision = compact_revision


@dataclass(frozen=True)
class KeyValue:
    key: bytes
    value: bytes
    mod_revision: int
    create_revision: int
    version: int
    lease: int


@dataclass(frozen=True)
class WatchEvent:
    kind: str  # "PUT" or "DELETE"
    key: bytes
    value: bytes
    mod_revision: int


@dataclass(frozen=True)
class TxnResult:
    succeeded: bool
    revision: int
    responses: list[dict]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def prefix_end(prefix: bytes) -> bytes:
    """The range end that selects every key starting with `prefix`."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return b"\x00"
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def to_kv(raw: dict) -> KeyValue:
    return KeyValue(unb64(raw.get("key")), unb64(raw.get("value")),
                    int(raw.get("mod_revision", 0)), int(raw.get("create_revision", 0)),
                    int(raw.get("version", 0)), int(raw.get("lease", 0)))


def compare_mod(key: bytes, mod_revision: int) -> dict:
    """Compare: the key's mod_revision equals `mod_revision` (0: the key is absent)."""
    return {"key": b64(key), "target": "MOD", "result": "EQUAL",
            "mod_revision": str(mod_revision)}


def compare_value(key: bytes, value: bytes) -> dict:
    return {"key": b64(key), "target": "VALUE", "result": "EQUAL", "value": b64(value)}


def op_put(key: bytes, value: bytes, lease: int = 0) -> dict:
    body = {"key": b64(key), "value": b64(value)}
    if lease:
        body["lease"] = str(lease)
    return {"requestPut": body}


def op_get(key: bytes) -> dict:
    return {"requestRange": {"key": b64(key)}}


def parse_endpoint(url: str) -> tuple[str, int]:
    """(host, port) of an `http://host:port` endpoint; ValueError naming it otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise ValueError(f"etcd endpoint {url!r}: expected http://host:port "
                         "(TLS is not supported by this client yet)")
    return parts.hostname, parts.port


class EtcdGateway:
    """A blocking client over keep-alive HTTP/1.1 connections to one of `endpoints`."""

    def __init__(self, endpoints: list[str], timeout: float = 5.0):
        if not endpoints:
            raise ValueError("etcd endpoints: none given; expected http://host:port")
        self.endpoints = [parse_endpoint(url) for url in endpoints]
        self.timeout = timeout
        self._current = 0
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connect(self) -> http.client.HTTPConnection:
        """A connection to the first endpoint, from the current one on, that accepts."""
        for attempt in range(len(self.endpoints)):
            index = (self._current + attempt) % len(self.endpoints)
            host, port = self.endpoints[index]
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
            try:
                conn.connect()
            except OSError:
                conn.close()
                continue
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._current = index
            return conn
        raise EtcdUnavailable(f"no etcd endpoint accepts a connection: {self.endpoints}")

    def request(self, path: str, body: dict) -> dict:
        """POST `body` to `path`; the decoded answer, or EtcdError / EtcdUnavailable."""
        if self._conn is None:
            self._conn = self._connect()
        payload = json.dumps(body).encode()
        try:
            self._conn.request("POST", path, payload, {"Content-Type": "application/json"})
            response = self._conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            self._current = (self._current + 1) % len(self.endpoints)
            raise EtcdUnavailable(f"etcd did not answer {path}: {exc}") from exc
        answer = json.loads(data) if data else {}
        if response.status != 200 or "error" in answer:
            raise EtcdError(str(answer.get("message", answer)), int(answer.get("code", -1)), path)
        return answer

    def fetch(self, path: str) -> dict:
        """GET `path` (such as `/version`); the decoded answer, or EtcdUnavailable."""
        if self._conn is None:
            self._conn = self._connect()
        try:
            self._conn.request("GET", path)
            response = self._conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise EtcdUnavailable(f"etcd did not answer GET {path}: {exc}") from exc
        if response.status != 200:
            raise EtcdError(data.decode(errors="replace")[:200], response.status, path)
        answer = json.loads(data) if data else {}
        return answer if isinstance(answer, dict) else {"answer": answer}

    def put(self, key: bytes, value: bytes, lease: int = 0) -> int:
        """Store `value` under `key` (attached to `lease` if non-zero); the new revision."""
        answer = self.request("/v3/kv/put", op_put(key, value, lease)["requestPut"])
        return int(answer["header"]["revision"])

    def get(self, key: bytes) -> KeyValue | None:
        kvs = self.request("/v3/kv/range", {"key": b64(key)}).get("kvs", [])
        return to_kv(kvs[0]) if kvs else None

    def get_prefix(self, prefix: bytes) -> tuple[list[KeyValue], int]:
        """Every key under `prefix` and the revision the read saw."""
        answer = self.request("/v3/kv/range",
                              {"key": b64(prefix), "range_end": b64(prefix_end(prefix))})
        return [to_kv(kv) for kv in answer.get("kvs", [])], int(answer["header"]["revision"])

    def delete(self, key: bytes) -> int:
        answer = self.request("/v3/kv/deleterange", {"key": b64(key)})
        return int(answer.get("deleted", 0))

    def txn(self, compare: list[dict], success: list[dict], failure: list[dict]) -> TxnResult:
        answer = self.request("/v3/kv/txn",
                              {"compare": compare, "success": success, "failure": failure})
        return TxnResult(bool(answer.get("succeeded", False)),
                         int(answer["header"]["revision"]), answer.get("responses", []))

    def lease_grant(self, ttl: int) -> int:
        return int(self.request("/v3/lease/grant", {"TTL": str(ttl)})["ID"])

    def lease_keepalive(self, lease: int) -> int:
        """Refresh `lease` once; its new TTL in seconds, 0 when the lease is gone."""
        answer = self.request("/v3/lease/keepalive", {"ID": str(lease)})
        return int(answer.get("result", {}).get("TTL", 0))

    def lease_revoke(self, lease: int) -> None:
        self.request("/v3/lease/revoke", {"ID": str(lease)})

    def lease_ttl(self, lease: int) -> int:
        """Seconds left on `lease`, -1 when it does not exist."""
        return int(self.request("/v3/lease/timetolive", {"ID": str(lease)}).get("TTL", -1))

    def compact(self, revision: int) -> None:
        self.request("/v3/kv/compaction", {"revision": str(revision)})

    def status(self) -> dict:
        return self.request("/v3/maintenance/status", {})

    def watch(self, key: bytes, start_revision: int = 0, prefix: bool = False) -> GatewayWatch:
        """A watch on `key` (or every key under it) from `start_revision` (0: from now)."""
        host, port = self.endpoints[self._current]
        create: dict = {"key": b64(key)}
        if prefix:
            create["range_end"] = b64(prefix_end(key))
        if start_revision:
            create["start_revision"] = str(start_revision)
        return GatewayWatch(host, port, {"create_request": create}, self.timeout)


class GatewayWatch:
    """One watch stream on its own socket; `poll` returns whole events as they arrive."""

    def __init__(self, host: str, port: int, body: dict, timeout: float):
        payload = json.dumps(body).encode()
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise EtcdUnavailable(f"cannot open a watch on {host}:{port}: {exc}") from exc
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = (f"POST /v3/watch HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
        self.sock.sendall(head.encode() + payload)
        self._raw = bytearray()     # bytes read, still chunk-encoded
        self._body = bytearray()    # de-chunked bytes, not yet a whole line
        self._headers_done = False
        self.created = False
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def poll(self, timeout: float) -> list[WatchEvent]:
        """Events that arrive within `timeout` seconds (the first batch; may be empty)."""
        deadline = time.monotonic() + timeout
        while True:
            events = self._drain()
            if events:
                return events
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            readable, _, _ = select.select([self.sock], [], [], left)
            if readable:
                self._read_some()

    def read_available(self) -> None:
        """Move what the socket holds now into this watch's buffer, without blocking: a
        caller that waits on `fileno()` calls it when the socket is readable, so that the
        same bytes do not keep it readable (`poll` parses them)."""
        self._read_some()

    def _read_some(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            raise EtcdUnavailable(f"watch stream broken: {exc}") from exc
        if not data:
            raise EtcdUnavailable("watch stream closed by etcd")
        self._raw += data

    def _drain(self) -> list[WatchEvent]:
        """Parse what is buffered: headers once, chunks, then newline-separated messages."""
        if not self._headers_done:
            end = self._raw.find(b"\r\n\r\n")
            if end < 0:
                return []
            status_line = bytes(self._raw[: self._raw.find(b"\r\n")])
            if b" 200 " not in status_line:
                raise EtcdUnavailable(f"watch refused: {status_line.decode(errors='replace')}")
            del self._raw[: end + 4]
            self._headers_done = True
        self._dechunk()
        events: list[WatchEvent] = []
        while (newline := self._body.find(b"\n")) >= 0:
            line = bytes(self._body[:newline])
            del self._body[: newline + 1]
            if line.strip():
                events += self._message(json.loads(line))
        return events

    def _dechunk(self) -> None:
        while (eol := self._raw.find(b"\r\n")) >= 0:
            size = int(bytes(self._raw[:eol]).split(b";")[0], 16)
            if size == 0:
                raise EtcdUnavailable("watch stream ended by etcd")
            if len(self._raw) < eol + 2 + size + 2:
                return
            self._body += self._raw[eol + 2: eol + 2 + size]
            del self._raw[: eol + 2 + size + 2]

    def _message(self, message: dict) -> list[WatchEvent]:
        if "error" in message:
            raise EtcdUnavailable(f"watch failed: {message['error']}")
        result = message.get("result", {})
        if result.get("created"):
            self.created = True
        if result.get("canceled"):
            compacted = int(result.get("compact_revision", 0))
            if compacted:
                raise WatchCompacted(compacted)
            raise EtcdUnavailable(f"watch cancelled by etcd: {result.get('cancel_reason')}")
        return [WatchEvent(event.get("type", "PUT"), unb64(event["kv"].get("key")),
                           unb64(event["kv"].get("value")),
                           int(event["kv"].get("mod_revision", 0)))
                for event in result.get("events", [])]
