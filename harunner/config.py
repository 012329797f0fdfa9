"""The one frozen configuration of harunner.

Each default is written once, in `Config`'s fields. Values come from, in rising
precedence: the defaults, a TOML file, `HARUNNER_*` environment variables, and
CLI flags (passed in as `overrides`). Unknown keys, wrong types and impossible
relations are refused with a `ConfigError` that names where the value came
from, the key, and what is allowed. Relative paths resolve against the
directory `harunner` was started in (like Celery, RQ and Huey, which import
jobs relative to the working directory).
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harunner.errors import ConfigError

CONFIG_ENV = "HARUNNER_CONFIG"
ENV_PREFIX = "HARUNNER_"
DEFAULT_FILES = ("harunner.toml", "config/harunner.toml")
START_METHODS = ("spawn", "forkserver")
LOG_LEVELS = ("debug", "info", "warning", "error")
WORKER_MODES = ("pool", "process")
MIB = 1024 * 1024
MIN_CHECKPOINT_BYTES = 1024
MAX_CHECKPOINT_BYTES = 64 * MIB - 64 * 1024  # what the store can read back, less its wrapper
CHECKPOINT_ENV = "HARUNNER_MAX_CHECKPOINT_BYTES"  # how a runner hands the limit to its workers
MIN_LEASE_TTL = 2  # etcd grants no lease shorter than about 1.5 x its election timeout
LOCAL_BACKEND = "local"
BACKEND_ENV = "HARUNNER_BACKEND"  # how a runner hands the backend to its job workers
VALUE_LIMIT_ENV = "HARUNNER_ETCD_MAX_VALUE_BYTES"
RETENTION = re.compile(r"^\s*\d+(\.\d*)?\s*(ms|s|m|h|d)?\s*$")

log = logging.getLogger("harunner.config")


@dataclass(frozen=True)
class Config:
    """Every option of harunner, with its default. See config/harunner.toml."""

    state_dir: str = ".harunner"
    jobs: tuple[str, ...] = ("jobs",)
    slots: int = 3
    heartbeat_ms: int = 200
    suspect_after: int = 2
    hang_timeout_ms: int = 600
    lock_timeout_ms: int = 2000
    paxos_timeout_ms: int = 200
    respawn_backoff_ms: int = 50
    respawn_backoff_max_ms: int = 5000
    worker_grace_ms: int = 1000
    stop_timeout_ms: int = 5000
    start_method: str = "forkserver"
    concurrency: int = 0
    worker_mode: str = "pool"
    prefetch: int = 64
    log_level: str = "info"
    retention: str = ""
    max_checkpoint_bytes: int = 16 * MIB
    seed: int = 0
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    backend: str = LOCAL_BACKEND
    host_name: str = ""  # "": socket.gethostname() (see `host`)
    lease_ttl: int = 5
    etcd_max_value_bytes: int = MIB
    source: str = field(default="defaults", compare=False)

    @property
    def state_path(self) -> Path:
        """The state directory as an absolute path."""
        return Path(self.state_dir).expanduser().resolve()

    @property
    def host(self) -> str:
        """This host's name in the cluster: `host_name`, or the machine's name."""
        return self.host_name or socket.gethostname()

    def with_overrides(self, overrides: Mapping[str, Any], origin: str) -> Config:
        """A copy with `overrides` type-checked and applied (relations: see `check`)."""
        values = dataclasses.asdict(self)
        for key, raw in overrides.items():
            values[key] = _coerce(key, raw, origin)
        values["source"] = origin
        return Config(**values)

    def check(self, origin: str) -> None:
        """Refuse impossible values and relations of the final config, naming `origin`."""
        _require(self.slots >= 1, origin, "slots", f"is {self.slots}; at least 1 runner slot")
        for key in ("heartbeat_ms", "hang_timeout_ms", "lock_timeout_ms", "paxos_timeout_ms",
                    "respawn_backoff_ms", "respawn_backoff_max_ms", "stop_timeout_ms"):
            value = getattr(self, key)
            _require(value > 0, origin, key, f"is {value}; a positive number of milliseconds")
        _require(self.suspect_after >= 1, origin, "suspect_after",
                 f"is {self.suspect_after}; at least 1 missed beat")
        _require(self.worker_grace_ms >= 0, origin, "worker_grace_ms",
                 f"is {self.worker_grace_ms}; zero or more milliseconds")
        _require(self.hang_timeout_ms >= 2 * self.heartbeat_ms, origin, "hang_timeout_ms",
                 f"is {self.hang_timeout_ms} ms but heartbeat_ms is {self.heartbeat_ms}; "
                 "the hang timeout must be at least two heartbeats")
        _require(self.respawn_backoff_max_ms >= self.respawn_backoff_ms, origin,
                 "respawn_backoff_max_ms", "must be at least respawn_backoff_ms")
        _require(self.start_method in START_METHODS, origin, "start_method",
                 f"is {self.start_method!r}; allowed: {', '.join(START_METHODS)}")
        _require(self.concurrency >= 0, origin, "concurrency",
                 f"is {self.concurrency}; 0 (one worker per core) or a positive number")
        _require(self.prefetch >= 0, origin, "prefetch",
                 f"is {self.prefetch}; 0 (claim only for free workers) or a positive number")
        _require(self.worker_mode in WORKER_MODES, origin, "worker_mode",
                 f"is {self.worker_mode!r}; allowed: {', '.join(WORKER_MODES)}")
        _require(self.log_level in LOG_LEVELS, origin, "log_level",
                 f"is {self.log_level!r}; allowed: {', '.join(LOG_LEVELS)}")
        _check_checkpoint_limit(self.max_checkpoint_bytes, origin)
        _require(bool(self.jobs), origin, "jobs", "is empty; list at least one module or folder")
        _require(bool(self.state_dir), origin, "state_dir", "is empty; give a directory")
        _require(not self.retention or RETENTION.match(self.retention) is not None, origin,
                 "retention", f"is {self.retention!r}; a duration like '30d', '12h' or '90m', "
                 "or \"\" to keep finished jobs forever")
        _require(0 <= self.metrics_port <= 65535, origin, "metrics_port",
                 f"is {self.metrics_port}; 0 (metrics off) or a TCP port up to 65535")
        _require(bool(self.metrics_host), origin, "metrics_host",
                 "is empty; give an address to bind, e.g. 127.0.0.1")
        _check_hosts(self, origin)


def etcd_endpoints(backend: str) -> list[str]:
    """The `http://host:port` endpoints of an `etcd://host:port[,host:port...]` backend;
    ValueError naming what is wrong otherwise."""
    if not backend.startswith("etcd://"):
        raise ValueError(f"is {backend!r}; expected \"local\" or etcd://host:port[,host:port]")
    endpoints = []
    for part in backend[len("etcd://"):].split(","):
        host, _, port = part.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host:
            raise ValueError(f"is {backend!r}: {part.strip()!r} is not host:port; expected "
                             "etcd://host:port[,host:port]")
        endpoints.append(f"http://{host}:{int(port)}")
    return endpoints


def _check_hosts(config: Config, origin: str) -> None:
    """The multi-host options: the backend's form, the host name, the lease and value limits."""
    if config.backend != LOCAL_BACKEND:
        try:
            etcd_endpoints(config.backend)
        except ValueError as error:
            raise ConfigError(f"{origin}: backend {error}") from None
    _require(config.host_name == config.host_name.strip() and "/" not in config.host_name,
             origin, "host_name", f"is {config.host_name!r}; a name without '/' or spaces "
             "around it, or \"\" for the machine's name")
    _require(MIN_LEASE_TTL <= config.lease_ttl <= 3600, origin, "lease_ttl",
             f"is {config.lease_ttl}; from {MIN_LEASE_TTL} to 3600 seconds (etcd grants no "
             "lease shorter than about 2 s; the TTL must outlast an etcd election)")
    _require(MIN_CHECKPOINT_BYTES <= config.etcd_max_value_bytes <= 1536 * 1024 - 4096, origin,
             "etcd_max_value_bytes", f"is {config.etcd_max_value_bytes}; from "
             f"{MIN_CHECKPOINT_BYTES} to {1536 * 1024 - 4096} bytes (etcd refuses a request "
             "over --max-request-bytes, 1.5 MiB by default)")


FIELDS = {f.name: f for f in dataclasses.fields(Config) if f.name != "source"}


def _check_checkpoint_limit(value: int, origin: str) -> None:
    _require(MIN_CHECKPOINT_BYTES <= value <= MAX_CHECKPOINT_BYTES, origin,
             "max_checkpoint_bytes", f"is {value}; from {MIN_CHECKPOINT_BYTES} to "
             f"{MAX_CHECKPOINT_BYTES} bytes (the largest checkpoint the store can read back)")


def store_env(config: Config) -> dict[str, str]:
    """What a runner hands its job workers (and its own executor) so that they open the
    same store: the backend and its value limit (read back by `store_config`)."""
    return {BACKEND_ENV: config.backend,
            VALUE_LIMIT_ENV: str(config.etcd_max_value_bytes)}


def store_config(state_dir: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """The store's part of a runner's config, for a process that has only `state_dir`
    (a job worker, the executor): the backend from `store_env`, local by default."""
    env = os.environ if env is None else env
    return Config(state_dir=str(state_dir), backend=env.get(BACKEND_ENV, LOCAL_BACKEND),
                  etcd_max_value_bytes=int(env.get(VALUE_LIMIT_ENV, MIB)))


def checkpoint_limit(env: Mapping[str, str] | None = None) -> int:
    """The checkpoint size limit a worker enforces: `CHECKPOINT_ENV` (set by its runner from
    the config) or the default; a bad value is a `ConfigError`."""
    env = os.environ if env is None else env
    raw = env.get(CHECKPOINT_ENV)
    if raw is None:
        return Config.max_checkpoint_bytes
    value = _coerce("max_checkpoint_bytes", raw, f"environment ({CHECKPOINT_ENV})")
    _check_checkpoint_limit(value, f"environment ({CHECKPOINT_ENV})")
    return int(value)


def _require(ok: bool, origin: str, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{origin}: {key} {message}")


def _type_name(key: str) -> str:
    kind = FIELDS[key].type
    return {"int": "an integer", "str": "a string",
            "tuple[str, ...]": "a list of strings"}.get(str(kind), str(kind))


def _coerce(key: str, raw: Any, origin: str) -> Any:
    """Check `raw` against the type of option `key`; strings from the environment are parsed."""
    if key not in FIELDS:
        allowed = ", ".join(sorted(FIELDS))
        raise ConfigError(f"{origin}: unknown key {key!r}; allowed keys: {allowed}")
    kind = str(FIELDS[key].type)
    if kind == "int":
        if isinstance(raw, str):
            try:
                return int(raw.strip())
            except ValueError:
                pass
        elif isinstance(raw, int) and not isinstance(raw, bool):
            return raw
    elif kind == "str":
        if isinstance(raw, str):
            return raw
    elif kind == "tuple[str, ...]":
        if isinstance(raw, str):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if isinstance(raw, list | tuple) and all(isinstance(item, str) for item in raw):
            return tuple(raw)
    raise ConfigError(f"{origin}: {key} = {raw!r} is not {_type_name(key)}")


def find_config_file(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    """The config file to read: the flag, then $HARUNNER_CONFIG, then the default places."""
    chosen = explicit or env.get(CONFIG_ENV)
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist or is not a file; "
                              f"give an existing TOML file (flag --config or ${CONFIG_ENV})")
        return path
    for candidate in DEFAULT_FILES:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def read_file(path: Path) -> dict[str, Any]:
    """The key/value pairs of a TOML config file; syntax errors become `ConfigError`."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error}); fix the syntax") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror})") from None
    for key, value in data.items():
        if isinstance(value, dict):
            raise ConfigError(f"{path}: unexpected table [{key}]; options are top-level keys")
    return data


NOT_OPTIONS = frozenset({CONFIG_ENV, "HARUNNER_FAILPOINTS", "HARUNNER_SOAK",
                         "HARUNNER_FUZZ_FRAMES", "HARUNNER_METRICS_DIR"})


def from_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The `HARUNNER_<KEY>` variables.

    One that is not an option but close to one (HARUNNER_SLOT) is refused as a
    misspelling; any other (a user's own HARUNNER_BIN) is ignored with a warning.
    """
    found = {}
    for name, value in env.items():
        if name.startswith(ENV_PREFIX) and name not in NOT_OPTIONS:
            key = name[len(ENV_PREFIX):].lower()
            if key in FIELDS:
                found[key] = value
                continue
            close = difflib.get_close_matches(key, list(FIELDS), n=1, cutoff=0.8)
            if close:
                allowed = ", ".join(ENV_PREFIX + k.upper() for k in sorted(FIELDS))
                raise ConfigError(f"environment: {name} is not a harunner option (did you mean "
                                  f"{ENV_PREFIX}{close[0].upper()}?); allowed: {allowed} (and "
                                  f"{', '.join(sorted(NOT_OPTIONS))})")
            log.warning("harunner: ignoring the environment variable %s: it is not a harunner "
                        "option", name)
    return found


def load(
    explicit_file: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Defaults < file < environment < `overrides` (CLI flags); relations checked at the end."""
    env = os.environ if env is None else env
    config = Config()
    origins: list[str] = []
    path = find_config_file(explicit_file, env)
    if path is not None:
        config = config.with_overrides(read_file(path), str(path))
        origins.append(str(path))
    env_values = from_environment(env)
    if env_values:
        config = config.with_overrides(env_values, "environment (HARUNNER_*)")
        origins.append("environment (HARUNNER_*)")
    flags = {key: value for key, value in (overrides or {}).items() if value is not None}
    if flags:
        config = config.with_overrides(flags, "command line")
        origins.append("command line")
    config.check(" + ".join(origins) or "defaults")
    return config
