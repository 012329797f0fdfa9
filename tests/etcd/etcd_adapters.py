"""One small, blocking interface over each etcd client under comparison.

Responsible for letting the same correctness tests and the same bench drive every
candidate: the standard-library gateway client (`harunner.store.etcd.gateway`), etcd3gw (HTTP
gateway, requests), aetcd (gRPC, asyncio: driven from a private event-loop
thread, as a blocking runner loop would have to) and etcd-sdk-python (`pyetcd`,
gRPC, blocking). An adapter adds no retries and no caching, so that what the
tests see is what the library does.

Invariants:
- `cas_mod` and `cas_value` are one etcd transaction each: compare, put on
  success, read the key on failure; they return (succeeded, key after/at txn);
- `lease_keepalive` returns the new TTL, or a value <= 0 when the lease is gone;
- a watch's `next_events(timeout)` returns what arrived (maybe []) and raises
  `WatchCompacted` or `EtcdUnavailable` (from `harunner.store.etcd.gateway`) when the library
  reports a compacted start revision or a broken stream.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import queue
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import harunner.store.etcd.gateway as gw
from harunner.store.etcd.gateway import EtcdUnavailable, KeyValue, WatchCompacted, WatchEvent

CLIENTS = ("gateway", "etcd3gw", "aetcd", "pyetcd")
MODULES = {"gateway": None, "etcd3gw": "etcd3gw", "aetcd": "aetcd", "pyetcd": "pyetcd"}
PACKAGES = {"etcd3gw": "etcd3gw", "aetcd": "aetcd", "pyetcd": "etcd-sdk-python"}


def selected_clients() -> list[str]:
    """The clients to test: HARUNNER_ETCD_CLIENTS (comma-separated), else the chosen one."""
    names = [n for n in os.environ.get("HARUNNER_ETCD_CLIENTS", "gateway").split(",") if n]
    unknown = [n for n in names if n not in CLIENTS]
    if unknown:
        raise ValueError(f"HARUNNER_ETCD_CLIENTS names unknown clients {unknown}; "
                         f"known: {','.join(CLIENTS)}")
    return names


def missing_reason(name: str) -> str | None:
    """Why client `name` cannot be tested here, or None when it can."""
    module = MODULES[name]
    if module is None or importlib.util.find_spec(module) is not None:
        return None
    return f"{name} not installed: pip install {PACKAGES[name]}"


def open_client(name: str, endpoint: str) -> Any:
    """An adapter of client `name` connected to the etcd at `endpoint` (http://host:port)."""
    return {"gateway": GatewayAdapter, "etcd3gw": Etcd3gwAdapter,
            "aetcd": AetcdAdapter, "pyetcd": PyetcdAdapter}[name](endpoint)


class QueueWatch:
    """A watch fed by a library's callback thread: events and errors go through a queue."""

    def __init__(self) -> None:
        self.items: queue.Queue = queue.Queue()
        self.stopper: Callable[[], None] = lambda: None

    def push(self, item: Any) -> None:
        self.items.put(item)

    def next_events(self, timeout: float) -> list[WatchEvent]:
        try:
            first = self.items.get(timeout=timeout)
        except queue.Empty:
            return []
        batch = [first]
        while not self.items.empty():
            batch.append(self.items.get_nowait())
        events = []
        for item in batch:
            if isinstance(item, BaseException):
                raise item
            events.append(item)
        return events

    def close(self) -> None:
        self.stopper()


class GatewayAdapter:
    name = "gateway"

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.client = gw.EtcdGateway([endpoint])

    def close(self) -> None:
        self.client.close()

    def put(self, key: bytes, value: bytes, lease: int = 0) -> None:
        self.client.put(key, value, lease)

    def get(self, key: bytes) -> KeyValue | None:
        return self.client.get(key)

    def _cas(self, compare: dict, key: bytes, value: bytes) -> tuple[bool, KeyValue | None]:
        result = self.client.txn([compare], [gw.op_put(key, value)], [gw.op_get(key)])
        if result.succeeded:
            return True, None
        kvs = result.responses[0].get("response_range", {}).get("kvs", [])
        return False, gw.to_kv(kvs[0]) if kvs else None

    def cas_mod(self, key: bytes, mod_revision: int, value: bytes):
        return self._cas(gw.compare_mod(key, mod_revision), key, value)

    def cas_value(self, key: bytes, expected: bytes, value: bytes):
        return self._cas(gw.compare_value(key, expected), key, value)

    def lease_grant(self, ttl: int) -> int:
        return self.client.lease_grant(ttl)

    def lease_keepalive(self, lease: int) -> int:
        return self.client.lease_keepalive(lease)

    def lease_revoke(self, lease: int) -> None:
        self.client.lease_revoke(lease)

    def watch(self, key: bytes, start_revision: int) -> Any:
        return GatewayWatchAdapter(self.client.watch(key, start_revision, prefix=True))


class GatewayWatchAdapter:
    def __init__(self, watch: gw.GatewayWatch):
        self.watch = watch

    def next_events(self, timeout: float) -> list[WatchEvent]:
        return self.watch.poll(timeout)

    def close(self) -> None:
        self.watch.close()


def _kv_from_fields(key: bytes, value: bytes, mod: Any, lease: Any = 0) -> KeyValue:
    return KeyValue(key, value, int(mod), 0, 0, int(lease or 0))


class Etcd3gwAdapter:
    name = "etcd3gw"

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        import etcd3gw
        url = urlsplit(endpoint)
        self.client = etcd3gw.Etcd3Client(host=url.hostname, port=url.port, timeout=5,
                                          api_path="/v3/")

    def close(self) -> None:
        self.client.session.close()

    def put(self, key: bytes, value: bytes, lease: int = 0) -> None:
        payload = {"key": gw.b64(key), "value": gw.b64(value)}
        if lease:  # etcd3gw's put takes a Lease object; send its id the same way it does
            payload["lease"] = str(lease)
        self.client.post(self.client.get_url("/kv/put"), json=payload)

    def get(self, key: bytes) -> KeyValue | None:
        found = self.client.get(key, metadata=True)
        if not found:
            return None
        value, meta = found[0]
        return _kv_from_fields(key, value, meta["mod_revision"], meta.get("lease", 0))

    def _cas(self, compare: dict, key: bytes, value: bytes) -> tuple[bool, KeyValue | None]:
        txn = {"compare": [compare], "success": [gw.op_put(key, value)],
               "failure": [gw.op_get(key)]}
        answer = self.client.transaction(txn)
        if answer.get("succeeded"):
            return True, None
        kvs = answer["responses"][0].get("response_range", {}).get("kvs", [])
        return False, gw.to_kv(kvs[0]) if kvs else None

    def cas_mod(self, key: bytes, mod_revision: int, value: bytes):
        return self._cas(gw.compare_mod(key, mod_revision), key, value)

    def cas_value(self, key: bytes, expected: bytes, value: bytes):
        return self._cas(gw.compare_value(key, expected), key, value)

    def lease_grant(self, ttl: int) -> int:
        return int(self.client.lease(ttl).id)

    def _lease(self, lease: int) -> Any:
        from etcd3gw.lease import Lease
        return Lease(lease, self.client)

    def lease_keepalive(self, lease: int) -> int:
        return self._lease(lease).refresh()

    def lease_revoke(self, lease: int) -> None:
        self._lease(lease).revoke()

    def watch(self, key: bytes, start_revision: int) -> Any:
        from etcd3gw.watch import Watcher
        adapter = QueueWatch()

        def on_event(event: dict) -> None:
            kv = event["kv"]
            adapter.push(WatchEvent(event.get("type", "PUT"), kv["key"], kv.get("value", b""),
                                    int(kv.get("mod_revision", 0))))
        watcher = Watcher(self.client, key, on_event, start_revision=start_revision,
                          range_end=gw.prefix_end(key))
        adapter.stopper = watcher.stop
        return adapter


class AetcdAdapter:
    """aetcd is asyncio-only: every call is run on a private loop in its own thread."""

    name = "aetcd"

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        import aetcd
        self.aetcd = aetcd
        url = urlsplit(endpoint)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = aetcd.Client(host=url.hostname, port=url.port, timeout=5)
        self.run(self.client.connect())

    def run(self, coroutine: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.run(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def put(self, key: bytes, value: bytes, lease: int = 0) -> None:
        self.run(self.client.put(key, value, lease=lease or None))

    def get(self, key: bytes) -> KeyValue | None:
        found = self.run(self.client.get(key))
        return None if found is None else _kv_from_fields(
            key, found.value, found.mod_revision, found.lease)

    def _cas(self, compare: Any, key: bytes, value: bytes) -> tuple[bool, KeyValue | None]:
        tx = self.client.transactions
        ok, responses = self.run(self.client.transaction(
            compare=[compare], success=[tx.put(key, value)], failure=[tx.get(key)]))
        if ok:
            return True, None
        kvs = responses[0]
        return False, (_kv_from_fields(key, kvs[0][0], kvs[0][1].mod_revision) if kvs else None)

    def cas_mod(self, key: bytes, mod_revision: int, value: bytes):
        return self._cas(self.client.transactions.mod(key) == mod_revision, key, value)

    def cas_value(self, key: bytes, expected: bytes, value: bytes):
        return self._cas(self.client.transactions.value(key) == expected, key, value)

    def lease_grant(self, ttl: int) -> int:
        return int(self.run(self.client.lease(ttl)).id)

    def lease_keepalive(self, lease: int) -> int:
        return int(self.run(self.client.refresh_lease(lease)).TTL)

    def lease_revoke(self, lease: int) -> None:
        self.run(self.client.revoke_lease(lease))

    def watch(self, key: bytes, start_revision: int) -> Any:
        adapter = QueueWatch()
        errors = self.aetcd.exceptions

        async def pump() -> None:
            try:
                watch = await self.client.watch(key, range_end=gw.prefix_end(key),
                                                start_revision=start_revision or None)
                adapter.stopper = lambda: self.run(watch.cancel())
                async for event in watch:
                    adapter.push(WatchEvent(event.kind, event.kv.key, event.kv.value,
                                            event.kv.mod_revision))
            except errors.RevisionCompactedError as exc:
                adapter.push(WatchCompacted(exc.compacted_revision))
            except Exception as exc:  # the library's own error types, all reported
                adapter.push(EtcdUnavailable(f"aetcd watch ended: {exc!r}"))
        asyncio.run_coroutine_threadsafe(pump(), self.loop)
        return adapter


class PyetcdAdapter:
    name = "pyetcd"

    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        import pyetcd
        self.pyetcd = pyetcd
        url = urlsplit(endpoint)
        self.client = pyetcd.client(host=url.hostname, port=url.port, timeout=5)

    def close(self) -> None:
        self.client.close()

    def put(self, key: bytes, value: bytes, lease: int = 0) -> None:
        self.client.put(key, value, lease=lease or None)

    def get(self, key: bytes) -> KeyValue | None:
        value, meta = self.client.get(key)
        return None if meta is None else _kv_from_fields(
            key, value, meta.mod_revision, meta.lease_id)

    def _cas(self, compare: Any, key: bytes, value: bytes) -> tuple[bool, KeyValue | None]:
        tx = self.client.transactions
        ok, responses = self.client.transaction(
            compare=[compare], success=[tx.put(key, value)], failure=[tx.get(key)])
        if ok:
            return True, None
        kvs = responses[0]
        return False, (_kv_from_fields(key, kvs[0][0], kvs[0][1].mod_revision) if kvs else None)

    def cas_mod(self, key: bytes, mod_revision: int, value: bytes):
        return self._cas(self.client.transactions.mod(key) == mod_revision, key, value)

    def cas_value(self, key: bytes, expected: bytes, value: bytes):
        return self._cas(self.client.transactions.value(key) == expected, key, value)

    def lease_grant(self, ttl: int) -> int:
        return int(self.client.lease(ttl).id)

    def lease_keepalive(self, lease: int) -> int:
        replies = list(self.client.refresh_lease(lease))
        return int(replies[0].TTL) if replies else 0

    def lease_revoke(self, lease: int) -> None:
        self.client.revoke_lease(lease)

    def watch(self, key: bytes, start_revision: int) -> Any:
        adapter = QueueWatch()
        errors = self.pyetcd.exceptions

        def on_response(response: Any) -> None:
            if isinstance(response, errors.RevisionCompactedError):
                adapter.push(WatchCompacted(response.compacted_revision))
            elif isinstance(response, BaseException) or response is None:
                adapter.push(EtcdUnavailable(f"pyetcd watch ended: {response!r}"))
            else:
                for event in response.events:
                    kind = "DELETE" if type(event).__name__ == "DeleteEvent" else "PUT"
                    adapter.push(WatchEvent(kind, event.key, event.value, event.mod_revision))
        watch_id = self.client.add_watch_callback(key, on_response,
                                                  range_end=gw.prefix_end(key),
                                                  start_revision=start_revision or None)
        adapter.stopper = lambda: self.client.cancel_watch(watch_id)
        return adapter
