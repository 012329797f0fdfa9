"""The state directory's layout: the one place that knows where every file lives.

    cluster.json                  the cluster id (every frame carries it)
    jobs.db (+ -wal, -shm)        the job database: every job's record (SQLite, WAL mode)
    jobs/<id>/record              a job's record in harunner 0.1.0 (imported into jobs.db once)
    jobs/<id>/ckpt.<seq>          the newest and the previous good checkpoint
    jobs/<id>/progress            soft progress (fenced, not fsynced)
    jobs/<id>/job.log             the job's log
    locks/jobs.lock               every job's lock: one byte each (never the data file)
    locks/<id>.lock               a job's lock in harunner 0.1.0 (removed by prune)
    index/active/<id>             0.1.0's index of unfinished jobs (no longer used)
    paxos/slot-<n>.acceptor       the slot's acceptor state (two-copy file)
    paxos/slot-<n>.proposer       the slot's proposer state (two-copy file)
    paxos/slot-<n>.initialized    written once, after both exist
    paxos/slot-<n>.incarnation    the slot's incarnation counter (only grows)
    run/                          mode 0700: sockets, bind locks, slot and supervisor locks
    run/bus-<n>.sock, run/bus-supervisor.sock   each participant's PUB socket
    run/peer-<n>.sock             each runner's ROUTER socket (Paxos)
    run/wake-<n>.sock             each runner's wake-up datagram socket
    run/slot-<n>.lock, .json      held by the live runner of slot n; its pid and incarnation
    run/supervisor.lock, .json    held by the live supervisor; its pid
    run/metrics/                  mode 0700: Prometheus multiprocess files, <type>_<pid>.db
    run/spool/worker-<pid>        mode 0700/0600: a worker's spool (the output of an attempt
                                  that has no job log yet; `harunner.executor.spool`)
    logs/                         runner-<n>.log, supervisor.log, events.jsonl

Only paths are computed here; nothing is read or written, so every module
of the store (and the supervisor, the runner and the CLI) asks this class
and none spells a file name of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

SUPERVISOR = "supervisor"
JOB_FOLDERS = ("jobs", "locks", "paxos", "run")
PRIVATE_FOLDERS = ("run",)


@dataclass(frozen=True)
class Layout:
    """The paths of one state directory."""

    root: Path

    # -- folders -----------------------------------------------------------------------

    @property
    def database(self) -> Path:
        return self.root / "jobs.db"

    @cached_property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @cached_property
    def locks(self) -> Path:
        return self.root / "locks"

    @property
    def active_index(self) -> Path:
        return self.root / "index" / "active"

    @property
    def paxos(self) -> Path:
        return self.root / "paxos"

    @cached_property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def metrics(self) -> Path:
        """The Prometheus multiprocess folder (only used when metrics are on)."""
        return self.run / "metrics"

    @cached_property
    def spools(self) -> Path:
        """The workers' spools (mode 0700): `spool(pid)`."""
        return self.run / "spool"

    def spool(self, pid: int) -> Path:
        return self.spools / f"worker-{pid}"

    @cached_property
    def logs(self) -> Path:
        return self.root / "logs"

    # -- cluster files ------------------------------------------------------------------

    @property
    def cluster_file(self) -> Path:
        return self.root / "cluster.json"

    @property
    def events(self) -> Path:
        return self.logs / "events.jsonl"

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    @property
    def supervisor_lock(self) -> Path:
        return self.run / "supervisor.lock"

    @property
    def supervisor_file(self) -> Path:
        return self.run / "supervisor.json"

    def slot_lock(self, slot: int) -> Path:
        return self.run / f"slot-{slot}.lock"

    def slot_file(self, slot: int) -> Path:
        return self.run / f"slot-{slot}.json"

    def incarnation_file(self, slot: int) -> Path:
        return self.paxos / f"slot-{slot}.incarnation"

    # -- Paxos files ----------------------------------------------------------------------

    def acceptor_file(self, slot: int) -> Path:
        return self.paxos / f"slot-{slot}.acceptor"

    def proposer_file(self, slot: int) -> Path:
        return self.paxos / f"slot-{slot}.proposer"

    def paxos_marker(self, slot: int) -> Path:
        return self.paxos / f"slot-{slot}.initialized"

    # -- sockets --------------------------------------------------------------------------

    def bus(self, name: int | str) -> Path:
        """The PUB socket of runner slot `name` (or of the supervisor: SUPERVISOR)."""
        return self.run / f"bus-{name}.sock"

    def peer(self, slot: int) -> Path:
        return self.run / f"peer-{slot}.sock"

    def wake(self, slot: int) -> Path:
        return self.run / f"wake-{slot}.sock"

    def sockets(self, slots: Iterable[int]) -> list[Path]:
        """Every socket path of a cluster of `slots`."""
        return [self.bus(SUPERVISOR)] + [p for s in slots
                                         for p in (self.bus(s), self.peer(s), self.wake(s))]

    # -- a job's files --------------------------------------------------------------------

    def job_folder(self, job_id: str) -> Path:
        return self.jobs / job_id

    @property
    def job_locks(self) -> Path:
        """The lock file of every job: one byte each (`harunner.store.locks`)."""
        return self.locks / "jobs.lock"

    def legacy_job_lock(self, job_id: str) -> Path:
        return self.locks / f"{job_id}.lock"

    def job_log(self, job_id: str) -> Path:
        return self.job_folder(job_id) / "job.log"

    @cached_property
    def jobs_text(self) -> str:
        """`jobs` as text: a worker builds two job paths per attempt, and pathlib's joins
        cost more than the attempt of a no-op job itself."""
        return os.fspath(self.jobs)

    def job_folder_text(self, job_id: str) -> str:
        return f"{self.jobs_text}/{job_id}"

    def job_log_text(self, job_id: str) -> str:
        return f"{self.job_folder_text(job_id)}/job.log"

    def active_marker(self, job_id: str) -> Path:
        return self.active_index / job_id


# File names inside a job's folder (see the table above).
RECORD = "record"
RECORD_PREV = "record.prev"
PROGRESS = "progress"
CHECKPOINT_PREFIX = "ckpt."
