"""The etcd backend's connection: one gateway client per process and thread, reads and txns.

Responsible for talking to etcd on the store's behalf: the server version checked
once per process (3.4 or newer), ranges with the options the store uses, reads of
many keys in one round trip, txns split to etcd's `--max-txn-ops`, and etcd's
refusals turned into one-line harunner errors.

Invariants:
- a client is used only by the process and thread that opened it (a forked child
  or another thread opens its own: an HTTP connection is never shared);
- `txn` never retries: `EtcdUnavailable` after sending means the outcome is
  unknown, and the caller re-reads to decide (docs/etcd.md, "Unknown outcomes");
  so does etcd's answer of a timeout or a leader change (`outcome_unknown`);
- a read of many keys is consistent per chunk of `max_txn_ops` keys (one txn each).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from harunner.errors import StoreError
from harunner.failpoints import failpoint
from harunner.store.etcd.gateway import (
    EtcdError,
    EtcdGateway,
    EtcdUnavailable,
    KeyValue,
    TxnResult,
    b64,
    to_kv,
)

MIN_VERSION = (3, 4)
TXN_FAILPOINTS = ("store.etcd.before_txn", "store.etcd.after_txn")


class EtcdVersionError(StoreError):
    """The etcd server is older than the backend supports."""


def check_version(answer: dict, endpoints: Sequence[str]) -> str:
    """The server version in a `/version` answer; `EtcdVersionError` below 3.4."""
    text = str(answer.get("etcdserver", "unknown"))
    try:
        found = tuple(int(part) for part in text.split(".")[:2])
    except ValueError:
        found = (0, 0)
    if found < MIN_VERSION:
        raise EtcdVersionError(f"etcd at {', '.join(endpoints)} is version {text}; harunner "
                               "needs etcd 3.4 or newer (its /v3 gateway): upgrade etcd")
    return text


def range_body(key: bytes, end: bytes | None = None, *, limit: int = 0,
               count_only: bool = False, **options: Any) -> dict:
    """A RangeRequest: `key` alone, or `[key, end)`; `options` go as they are."""
    body: dict[str, Any] = {"key": b64(key), **options}
    if end is not None:
        body["range_end"] = b64(end)
    if limit:
        body["limit"] = str(limit)
    if count_only:
        body["count_only"] = True
    return body


def txn_ranges(responses: list[dict]) -> list[list[KeyValue]]:
    """The key-values of each range response of a txn, in order."""
    return [[to_kv(kv) for kv in item.get("response_range", {}).get("kvs", [])]
            for item in responses]


def too_large(error: EtcdError) -> bool:
    return "too large" in error.message or error.code == 8


UNKNOWN_CODES = (4, 14)  # gRPC DeadlineExceeded, Unavailable
UNKNOWN_MESSAGES = ("timed out", "leader changed", "no leader", "stopped")


def outcome_unknown(error: EtcdError) -> bool:
    """Whether etcd's refusal leaves it open if the request was applied (a timeout or a
    leader change while the proposal was in flight): such a refusal is an unknown outcome."""
    return error.code in UNKNOWN_CODES or any(text in error.message
                                              for text in UNKNOWN_MESSAGES)


class EtcdKV:
    """Reads and txns on etcd at `endpoints` (`http://host:port` each)."""

    def __init__(self, endpoints: Sequence[str], *, timeout: float = 5.0,
                 max_txn_ops: int = 128) -> None:
        if max_txn_ops < 8:
            raise StoreError(f"etcd_max_txn_ops is {max_txn_ops}; etcd's default is 128, "
                             "and the backend needs at least 8")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.max_txn_ops = max_txn_ops
        self.version = ""
        self._local = threading.local()
        self._checked_in: int | None = None

    def client(self) -> EtcdGateway:
        """This process's and thread's client (opened, and the version checked, on first use)."""
        found = getattr(self._local, "client", None)
        if found is not None and self._local.pid == os.getpid():
            return found  # type: ignore[no-any-return]
        client = EtcdGateway(self.endpoints, self.timeout)
        if self._checked_in != os.getpid():
            self.version = check_version(client.fetch("/version"), self.endpoints)
            self._checked_in = os.getpid()
        self._local.client, self._local.pid = client, os.getpid()
        return client

    def close(self) -> None:
        """Close this thread's client (a later call opens a new one)."""
        found = getattr(self._local, "client", None)
        if found is not None and self._local.pid == os.getpid():
            found.close()
        self._local.client = None

    def request(self, path: str, body: dict) -> dict:
        """One read; etcd's timeout or leader change is `EtcdUnavailable` (try again)."""
        try:
            return self.client().request(path, body)
        except EtcdError as error:
            if outcome_unknown(error):
                raise EtcdUnavailable(f"etcd answered {error}; try again") from error
            raise

    def range(self, key: bytes, end: bytes | None = None, **options: Any
              ) -> tuple[list[KeyValue], int, int]:
        """(key-values, count, revision of the read) of one range."""
        answer = self.request("/v3/kv/range", range_body(key, end, **options))
        return ([to_kv(kv) for kv in answer.get("kvs", [])], int(answer.get("count", 0)),
                int(answer["header"]["revision"]))

    def get(self, key: bytes) -> KeyValue | None:
        found = self.range(key)[0]
        return found[0] if found else None

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, KeyValue]:
        """The keys that exist among `keys`, read in txns of `max_txn_ops` ranges each."""
        found: dict[bytes, KeyValue] = {}
        for start in range(0, len(keys), self.max_txn_ops):
            chunk = keys[start:start + self.max_txn_ops]
            ops = [{"request_range": range_body(key)} for key in chunk]
            answer = self.request("/v3/kv/txn", {"compare": [], "success": ops, "failure": []})
            for kvs in txn_ranges(answer.get("responses", [])):  # a read: no failpoint
                found.update((kv.key, kv) for kv in kvs)
        return found

    def txn(self, compare: list[dict], success: list[dict], failure: list[dict]) -> TxnResult:
        """One txn; a request etcd finds too large becomes a `StoreError` saying so."""
        failpoint("store.etcd.before_txn")
        try:
            result = self.client().txn(compare, success, failure)
        except EtcdError as error:
            if outcome_unknown(error):
                raise EtcdUnavailable(f"etcd answered {error}: the outcome is unknown") from error
            if too_large(error):
                raise StoreError(f"etcd refused a transaction of {len(success)} operations as "
                                 f"too large ({error.message}); send smaller batches, or raise "
                                 "--max-request-bytes on every etcd member") from None
            if "too many operations" in error.message:
                raise StoreError(f"etcd refused a transaction of {len(success)} operations "
                                 f"({error.message}); set etcd_max_txn_ops to etcd's "
                                 f"--max-txn-ops (now {self.max_txn_ops}; etcd's default is "
                                 "128)") from None
            raise
        failpoint("store.etcd.after_txn")
        return result


__all__ = ["EtcdKV", "EtcdUnavailable", "EtcdVersionError", "check_version", "range_body",
           "txn_ranges"]
