"""Choosing a backend from the config: `open_store` and the `backend` value's parser."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from harunner.config import Config
from harunner.errors import ConfigError
from harunner.store import Store
from harunner.store.backends import Backend, open_store, parse_backend
from harunner.store.contract import JobStore
from harunner.store.etcd.store import EtcdStore


def test_local_is_the_default_and_etcd_urls_name_every_member() -> None:
    assert parse_backend("local") == parse_backend("") == Backend("local")
    assert parse_backend("etcd://127.0.0.1:2379") == Backend("etcd", ("http://127.0.0.1:2379",))
    assert parse_backend(" etcd://10.0.0.1:2379, db2:2381 ").endpoints == (
        "http://10.0.0.1:2379", "http://db2:2381")


@pytest.mark.parametrize("value", ["etcd", "redis://x:1", "etcd://", "etcd://host",
                                   "etcd://host:port", "etcd://a:2379,,b:2379",
                                   "etcd://host:99999", "etcd://h/x:1"])
def test_a_bad_backend_is_refused_in_one_line_naming_it_and_the_fix(value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_backend(value)
    message = str(refused.value)
    assert repr(value) in message and "etcd://127.0.0.1:2379" in message and "\n" not in message


@dataclass(frozen=True)
class EtcdConfig:
    """A config as the hosts helper's will be (backend and the etcd settings)."""

    state_dir: str
    backend: str = "etcd://127.0.0.1:2379,127.0.0.1:2381"
    etcd_cluster: str = "east"
    etcd_max_value_bytes: int = 4096
    lock_timeout_ms: int = 2000

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)


def test_open_store_picks_the_backend_of_the_config(tmp_path: Path) -> None:
    local = open_store(Config(state_dir=str(tmp_path / "a")))
    assert isinstance(local, Store) and isinstance(local, JobStore)
    etcd = open_store(EtcdConfig(str(tmp_path / "b")))  # nothing is sent before a call
    assert isinstance(etcd, EtcdStore) and isinstance(etcd, JobStore)
    assert etcd.kv.endpoints == ["http://127.0.0.1:2379", "http://127.0.0.1:2381"]
    assert (etcd.keys.root, etcd.max_value_bytes) == (b"/harunner/east/", 4096)
    with pytest.raises(ConfigError, match="etcd cluster name"):
        open_store(EtcdConfig(str(tmp_path / "c"), etcd_cluster="a/b"))
