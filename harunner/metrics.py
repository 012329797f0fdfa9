"""Prometheus metrics: one function per thing measured, a no-op unless metrics are on.

Metrics are on in a process when `HARUNNER_METRICS_DIR` names a folder (the
supervisor sets it, before it spawns the runners, when `metrics_port` is set;
runners, their forkservers and job workers inherit it) and
`prometheus_client` can be imported (the `metrics` extra). Otherwise every
function here returns at once and `prometheus_client` is never imported: no
cost when off.

Processes write through prometheus_client's multiprocess mode: each one
keeps its values in memory-mapped files `<type>_<pid>.db` in that folder,
and the supervisor's HTTP endpoint (`serve`) sums them at scrape time.
Invariants:
- only counters and histograms are written to files (no gauge, so no
  gauge-mode pitfalls): what is a level (jobs by state, runner up, role,
  incarnation) is computed at scrape time by the caller of `serve`;
- the files of dead processes are merged into one file per type
  (`<type>_merged.db`) at scrape time, so the work of a scrape is bounded by
  the live processes, not by every process that ever ran;
- label values are bounded: job names, outcome kinds, causes, stages, slots.
"""

from __future__ import annotations

import glob
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("harunner.metrics")

ENV = "HARUNNER_METRICS_DIR"
PROMETHEUS_ENV = "PROMETHEUS_MULTIPROC_DIR"
MERGED = "merged"
FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
FAILOVER = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LONG = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 14400.0)

_lock = threading.Lock()
_state: dict[str, Any] = {}  # "metrics": the metric objects, once decided; "off": True


@dataclass(frozen=True)
class Level:
    """One gauge sample computed at scrape time (jobs by state, runner up, ...)."""

    name: str
    help: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


# -- switching on ---------------------------------------------------------------------


def enable(directory: Path) -> None:
    """Turn metrics on for this process and the processes it starts from now on."""
    os.environ[ENV] = str(directory)
    os.environ[PROMETHEUS_ENV] = str(directory)


def _metrics() -> dict[str, Any] | None:
    """The metric objects, defined on first use; None when metrics are off here."""
    found = _state.get("metrics")
    if found is not None or _state.get("off"):
        return found
    with _lock:
        if "metrics" not in _state and "off" not in _state:
            directory = os.environ.get(ENV)
            if not directory:
                _state["off"] = True
                return None
            os.environ[PROMETHEUS_ENV] = directory  # read when prometheus_client is imported
            try:
                import prometheus_client
            except ImportError:
                log.warning("metrics are on but prometheus_client is missing: "
                            "pip install 'harunner[metrics]'")
                _state["off"] = True
                return None
            _state["metrics"] = _define(prometheus_client)
    return _state.get("metrics")


def _define(prom: Any) -> dict[str, Any]:
    def counter(name: str, text: str, labels: tuple[str, ...] = ()) -> Any:
        return prom.Counter(name, text, labels, registry=None)

    def histogram(name: str, text: str, labels: tuple[str, ...], buckets: tuple[float, ...]
                  ) -> Any:
        return prom.Histogram(name, text, labels, buckets=buckets, registry=None)

    return {
        "attempts": counter("harunner_attempts", "Attempts started (claims of due jobs)",
                            ("name",)),
        "retries": counter("harunner_retries", "Attempts that were retries of a failed one",
                           ("name",)),
        "queue_wait": histogram("harunner_queue_wait_seconds", "From due to claimed, per "
                                "attempt", ("name",), LONG),
        "attempt": histogram("harunner_attempt_seconds", "From owned to ended, per attempt, "
                             "by how it ended", ("name", "outcome"), LONG),
        "failovers": counter("harunner_failovers", "Jobs taken over from a dead or hung "
                             "owner", ("cause",)),
        "failover": histogram("harunner_failover_seconds", "Failover latency by stage: detect "
                              "(hang: silence), owned (death to owned again), checkpoint "
                              "(owned again to the first checkpoint)", ("stage",), FAILOVER),
        "decisions": counter("harunner_paxos_decisions", "Paxos instances this slot proposed "
                             "and saw decided"),
        "ballots_lost": counter("harunner_paxos_ballots_lost", "Ballots of this slot refused "
                                "by an acceptor that promised a higher one"),
        "checkpoint": histogram("harunner_checkpoint_write_seconds", "Durable, fenced "
                                "checkpoint writes", (), FAST),
        "respawns": counter("harunner_respawns", "Runner slots respawned after an exit",
                            ("slot",)),
    }


# -- what the sites call ----------------------------------------------------------------


def claimed(name: str, attempt: int, queue_wait: float) -> None:
    """An attempt of job `name` was claimed after waiting `queue_wait` seconds."""
    if (m := _metrics()) is not None:
        m["attempts"].labels(name).inc()
        if attempt > 1:
            m["retries"].labels(name).inc()
        m["queue_wait"].labels(name).observe(max(0.0, queue_wait))


def attempt_ended(name: str, outcome: str, seconds: float) -> None:
    """An attempt of job `name` ended as `outcome` after `seconds` owned."""
    if (m := _metrics()) is not None:
        m["attempt"].labels(name, outcome).observe(max(0.0, seconds))


def failover(cause: str, owned_seconds: float | None) -> None:
    """A job was taken over (`cause`: crash, hang, restart), `owned_seconds` after the death."""
    if (m := _metrics()) is not None:
        m["failovers"].labels(cause).inc()
        if owned_seconds is not None:
            m["failover"].labels("owned").observe(max(0.0, owned_seconds))


def failover_stage(stage: str, seconds: float) -> None:
    """One stage of a failover took `seconds` (detect, checkpoint)."""
    if (m := _metrics()) is not None:
        m["failover"].labels(stage).observe(max(0.0, seconds))


def paxos_decided(count: int) -> None:
    if count and (m := _metrics()) is not None:
        m["decisions"].inc(count)


def ballot_lost() -> None:
    if (m := _metrics()) is not None:
        m["ballots_lost"].inc()


def checkpoint_written(seconds: float) -> None:
    if (m := _metrics()) is not None:
        m["checkpoint"].observe(max(0.0, seconds))


def respawned(slot: int) -> None:
    if (m := _metrics()) is not None:
        m["respawns"].labels(str(slot)).inc()


# -- the supervisor's side: files and the endpoint ------------------------------------


def prepare_folder(directory: Path) -> None:
    """Create `directory` (0700) and remove the files of processes no longer alive."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for path in glob.glob(str(directory / "*.db")):
        pid = _pid_of(path)
        if pid is None or not _alive(pid):
            os.unlink(path)


def serve(host: str, port: int, directory: Path, levels: Callable[[], Iterable[Level]]
          ) -> Callable[[], None]:
    """Serve /metrics on `host`:`port` from a thread; returns the function that stops it."""
    import prometheus_client
    from prometheus_client import multiprocess

    registry = prometheus_client.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))
    registry.register(_Levels(levels, directory))
    server, thread = prometheus_client.start_http_server(port, addr=host, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=2.0)

    return stop


class _Levels:
    """A collector of the caller's gauges; first it merges the files of dead processes."""

    def __init__(self, levels: Callable[[], Iterable[Level]], directory: Path) -> None:
        self.levels = levels
        self.directory = directory

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            merge_dead(self.directory)
        except OSError as error:
            log.warning("could not merge the metrics files of dead processes: %s", error)
        families: dict[str, Any] = {}
        for level in self.levels():
            family = families.get(level.name)
            if family is None:
                family = families[level.name] = GaugeMetricFamily(
                    level.name, level.help, labels=sorted(level.labels))
            family.add_metric([level.labels[k] for k in sorted(level.labels)], level.value)
        return list(families.values())


def merge_dead(directory: Path) -> int:
    """Fold the counter and histogram files of dead processes into `<type>_merged.db`.

    The new merged file is written beside and renamed over the old one, then
    the dead files are removed: a crash between the two counts them twice
    until the next start of the cluster (which clears dead files). Returns
    how many files were merged.
    """
    from prometheus_client.mmap_dict import MmapedDict

    merged = 0
    for kind in ("counter", "histogram"):
        dead = [p for p in glob.glob(str(directory / f"{kind}_*.db"))
                if (pid := _pid_of(p)) is not None and not _alive(pid)]
        if not dead:
            continue
        target = directory / f"{kind}_{MERGED}.db"
        totals: dict[str, float] = {}
        for path in ([str(target)] if target.exists() else []) + dead:
            for key, value, _stamp, _pos in MmapedDict.read_all_values_from_file(path):
                totals[key] = totals.get(key, 0.0) + value
        temporary = directory / f".{kind}_{MERGED}.tmp"
        store = MmapedDict(str(temporary))
        for key, value in totals.items():
            store.write_value(key, value, 0.0)
        store.close()
        os.replace(temporary, target)
        for path in dead:
            os.unlink(path)
        merged += len(dead)
    return merged


def _pid_of(path: str) -> int | None:
    stem = os.path.basename(path)[:-3]
    tail = stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
