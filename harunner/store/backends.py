"""Which job store a config names: the local one, or etcd (`backend = "etcd://host:port,..."`).

`open_store(config)` is the one place that turns the config's `backend` into a
`JobStore`. `parse_backend` checks the value first and refuses a bad one with a
one-line `ConfigError` naming the value and the fix.

Config keys read here (with `getattr`, so a config without them means the
defaults): `backend` ("local"), `etcd_cluster` ("default": the key prefix
`/harunner/<cluster>/`), `etcd_max_value_bytes` (1 MiB), `etcd_max_txn_ops` (128,
etcd's `--max-txn-ops`), `etcd_timeout_ms` (2000: a retry after it lands in the next
term of an etcd election), `lock_timeout_ms`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harunner.config import etcd_endpoints
from harunner.errors import ConfigError
from harunner.store.contract import JobStore

LOCAL = "local"
ETCD_SCHEME = "etcd://"
MIB = 1024 * 1024


@dataclass(frozen=True)
class Backend:
    """A parsed `backend` value: `kind` "local" or "etcd", and etcd's client URLs."""

    kind: str
    endpoints: tuple[str, ...] = ()


def parse_backend(value: str) -> Backend:
    """The backend named by `value`; `ConfigError` naming the value and the fix."""
    text = (value or LOCAL).strip()
    if text == LOCAL:
        return Backend(LOCAL)
    fix = ('use "local" or "etcd://HOST:PORT[,HOST:PORT...]", '
           'e.g. "etcd://127.0.0.1:2379"')
    if not text.startswith(ETCD_SCHEME):
        raise ConfigError(f"backend {value!r}: unknown backend; {fix}")
    try:
        endpoints = etcd_endpoints(text)  # the one parser of the form, in the config's floor
    except ValueError as error:
        raise ConfigError(f"backend {value!r}: the value {error}; {fix}") from None
    return Backend("etcd", tuple(endpoints))


def open_store(config: Any, **kw: Any) -> JobStore:
    """The job store `config` names; `kw` goes to the store's constructor (`lock_timeout`,
    `busy_timeout` for the local one; `cluster`, `clock`, ... for etcd)."""
    backend = parse_backend(getattr(config, "backend", LOCAL))
    if backend.kind == LOCAL:
        from harunner.store.jobs import Store
        return Store.from_config(config, **kw)
    from harunner.store.etcd.store import EtcdStore
    options: dict[str, Any] = {
        "cluster": getattr(config, "etcd_cluster", "default"),
        "max_value_bytes": int(getattr(config, "etcd_max_value_bytes", MIB)),
        "max_txn_ops": int(getattr(config, "etcd_max_txn_ops", 128)),
        "timeout": int(getattr(config, "etcd_timeout_ms", 2000)) / 1000,
    }
    options.update((key, value) for key, value in kw.items()
                   if key not in ("lock_timeout", "busy_timeout"))
    return EtcdStore(list(backend.endpoints), config.state_path, **options)
