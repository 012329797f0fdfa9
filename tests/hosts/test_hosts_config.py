"""The multi-host options: defaults, the backend's form, bad values refused in one line."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from harunner import config
from harunner.errors import ConfigError


def test_defaults() -> None:
    loaded = config.load(env={})
    assert loaded.backend == "local" and loaded.lease_ttl == 5
    assert loaded.host_name == "" and loaded.host == socket.gethostname()
    assert loaded.etcd_max_value_bytes == 1024 * 1024


def test_endpoints_of_an_etcd_backend() -> None:
    assert config.etcd_endpoints("etcd://127.0.0.1:2379,10.0.0.2:2381") == [
        "http://127.0.0.1:2379", "http://10.0.0.2:2381"]
    loaded = config.load(overrides={"backend": "etcd://127.0.0.1:2379"}, env={})
    assert loaded.backend == "etcd://127.0.0.1:2379"


@pytest.mark.parametrize(("key", "value", "says"), [
    ("backend", "etcd:/127.0.0.1:2379", "expected \"local\" or etcd://"),
    ("backend", "etcd://127.0.0.1", "is not host:port"),
    ("backend", "etcd://127.0.0.1:99999", "is not host:port"),
    ("backend", "redis://x:1", "expected \"local\""),
    ("lease_ttl", 1, "from 2 to 3600 seconds"),
    ("host_name", "a/b", "without '/'"),
    ("etcd_max_value_bytes", 2 * 1024 * 1024, "max-request-bytes"),
])
def test_bad_values_are_refused_naming_the_key(key: str, value: object, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.load(overrides={key: value}, env={})
    message = str(caught.value)
    assert "\n" not in message and key in message and says in message


def test_start_with_a_bad_backend_exits_2_with_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = subprocess.run([sys.executable, "-m", "harunner", "start", "--state-dir",
                          str(tmp_path / "s"), "--backend", "etcd://nowhere"],
                         capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin"})
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "backend" in lines[0] and "host:port" in lines[0]
