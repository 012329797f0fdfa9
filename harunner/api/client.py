"""The Python client: submit jobs from application code, get them back, wait for results.

    from harunner import Client
    client = Client()                           # finds the config like the CLI does
    handle = client.submit("images.resize", folder="/data")
    handle.result(timeout=60)                   # the result, or JobFailed/Cancelled/Timeout

A submission is checked (job name, signature, annotations, JSON) before
anything is stored, then written durably: when `submit` returns, the job is
on disk, whether or not a runner is up; the scheduler finds it there.
`submit_many` checks every submission first, so a bad one stores none.
Waiting polls the job's record; it never needs the cluster's sockets.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harunner import config as config_module
from harunner.api import check_arguments, parse_cli_arguments, spec_of
from harunner.api.argtypes import check_types, expects_text
from harunner.api.discovery import discover, find
from harunner.api.errors import Cancelled, JobFailed, Timeout
from harunner.api.job import JobSpec, set_submitter
from harunner.api.statedir import check_state_dir
from harunner.config import Config
from harunner.errors import StaleTransitionError, UnknownJobError
from harunner.store import SCHEDULER_JOB, JobRecord, JobState, JobStore, Progress, meta, open_store
from harunner.store.layout import Layout
from harunner.store.transitions import Submission as StoreSubmission
from harunner.store.wakeup import ring_first, sender

POLL_S = 0.05
JobRef = str | Callable[..., Any]


def runners_up(config: Config) -> bool:
    """Whether any runner slot of `config` is held by a live process (its slot lock)."""
    layout = Layout(config.state_path)
    return any(meta.live_slot(layout, slot) for slot in range(config.slots))


@dataclass(frozen=True)
class JobHandle:
    """A submitted job: its `id`, and calls that read or change it through the store."""

    id: str
    client: Client

    def record(self) -> JobRecord:
        """The job's durable record, as of now."""
        return self.client.store.get(self.id)

    def state(self) -> JobState:
        return self.record().state

    def progress(self) -> Progress | None:
        """The last progress the job reported, or None."""
        return self.client.store.read_progress(self.id)

    def wait(self, timeout: float | None = None,
             tick: Callable[[JobRecord], None] | None = None) -> JobRecord:
        """The record once the job is finished; `Timeout` after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            record = self.record()
            if tick is not None:
                tick(record)
            if record.state.finished:
                return record
            if deadline is not None and time.monotonic() >= deadline:
                hint = "" if runners_up(self.client.config) else (
                    f"; no runner is up on {self.client.config.state_path}: "
                    "run `harunner start`")
                raise Timeout(self.id, record.state.value, timeout, hint)
            time.sleep(POLL_S if deadline is None else
                       max(0.0, min(POLL_S, deadline - time.monotonic())))

    def result(self, timeout: float | None = None) -> Any:
        """The job's result; raises `JobFailed`, `Cancelled`, or `Timeout` after `timeout` s."""
        return outcome(self.wait(timeout))

    def cancel(self) -> JobRecord:
        """Cancel the job (its owner is fenced off and stops it)."""
        return self.client.cancel(self.id)

    def retry(self) -> JobHandle:
        """Put a failed or cancelled job back to pending; returns this handle."""
        self.client.store.retry(self.id)
        return self


def outcome(record: JobRecord) -> Any:
    """A finished record's result, or its end as an error (`JobFailed`, `Cancelled`)."""
    if record.state is JobState.SUCCEEDED:
        return record.result
    if record.state is JobState.CANCELLED:
        raise Cancelled(record.job_id)
    raise JobFailed(record.job_id, record.error)


@dataclass(frozen=True)
class Submission:
    """One checked submission, ready for the store."""

    spec: JobSpec
    args: dict[str, Any]


class Client:
    """Submit, list and wait for jobs of one state directory; no cluster needs to be up.

    With no argument the config is found like the CLI finds it: `$HARUNNER_CONFIG`,
    then ./harunner.toml, then ./config/harunner.toml, then `HARUNNER_*` variables.
    `state_dir` overrides the config's; `config` is a `Config` or a TOML file path.
    """

    def __init__(self, state_dir: str | Path | None = None, *,
                 config: Config | str | Path | None = None) -> None:
        if isinstance(config, Config):
            loaded = config
            if state_dir is not None:
                loaded = loaded.with_overrides({"state_dir": str(state_dir)}, "Client()")
        else:
            overrides = {} if state_dir is None else {"state_dir": str(state_dir)}
            loaded = config_module.load(None if config is None else str(config), overrides)
        self.config = loaded
        self.store: JobStore = open_store(loaded)  # the backend the config names
        self.layout = Layout(loaded.state_path)
        self._resolved: dict[Any, JobSpec] = {}
        self._doorbells: list[Path] = []
        self._ringer: socket.socket | None = None

    def submit(self, job: JobRef, /, **args: Any) -> JobHandle:
        """Check and durably store one job; `job` is a name or an `@job` function."""
        return self.submit_many([(job, args)])[0]

    def submit_many(self, calls: Iterable[tuple[JobRef, Mapping[str, Any]]]) -> list[JobHandle]:
        """Check every (job, arguments) pair, then store them all; a bad one stores none."""
        checked = [self.prepare(job, args) for job, args in calls]
        if not self._doorbells:  # the state directory checked once, on the first submission
            check_state_dir(self.config.state_path)
            self._doorbells = [self.layout.wake(slot) for slot in range(self.config.slots)]
            self._ringer = sender()
        records = self.store.submit_many([
            StoreSubmission(each.spec.name, each.args, each.spec.retries, each.spec.backoff,
                            each.spec.timeout) for each in checked])
        ring_first(self._doorbells, 0, self._ringer)  # one runner; it passes the ring on
        return [JobHandle(record.job_id, self) for record in records]

    def submit_cli(self, name: str, items: Sequence[str]) -> JobHandle:
        """Submit from `--arg key=value` items; a `str` parameter takes the text as written."""
        spec = self.resolve(name)
        args = parse_cli_arguments(items)
        for item in items:
            key, _, text = item.partition("=")
            if expects_text(spec, key.strip()) and not isinstance(args[key.strip()], str):
                args[key.strip()] = text
        return self.submit(spec.name, **args)

    def prepare(self, job: JobRef, args: Mapping[str, Any]) -> Submission:
        """The checked submission of `job` with `args`; raises before anything is stored."""
        spec = self.resolve(job)
        checked = check_arguments(spec, args)
        check_types(spec, checked)
        return Submission(spec, checked)

    def resolve(self, job: JobRef) -> JobSpec:
        """The spec the cluster knows for a job name or an `@job` function (found once per
        client: a job module runs once per process, so what was found stays true)."""
        found = self._resolved.get(job)
        if found is not None:
            return found
        if isinstance(job, str):
            found = find(self.config.jobs, job)
        else:
            spec = spec_of(job)
            if spec is None:
                raise UnknownJobError(f"{job!r} is not a job; decorate it with @job")
            found = _served(spec, discover(self.config.jobs), self.config.jobs)
        self._resolved[job] = found
        return found

    def get(self, job_id: str) -> JobHandle:
        """A handle on an existing job; `UnknownJobError` if there is none."""
        self.store.get(job_id)
        return JobHandle(job_id, self)

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a pending or running job; a finished one is refused with its state."""
        record = self.store.get(job_id)
        if record.state.finished:
            raise StaleTransitionError(f"job {job_id} has already {_ended(record.state)}; "
                                       "there is nothing to cancel")
        return self.store.cancel(job_id)

    def retry(self, job_id: str) -> JobHandle:
        """Put a failed or cancelled job back to pending (generation + 1, history kept)."""
        return self.get(job_id).retry()

    def jobs(self, state: JobState | str | Iterable[JobState | str] | None = None, *,
             name: str | None = None, limit: int | None = None,
             before: str | None = None) -> list[JobRecord]:
        """Jobs newest first, filtered by state(s) and exact name, at most `limit`, older than
        job `before` (the last id of the previous page)."""
        states = None if state is None else {JobState(s) for s in (
            [state] if isinstance(state, str | JobState) else state)}
        records = self.store.list_jobs(states, name=name, newest_first=True, before=before,
                                       limit=None if limit is None else limit + 1)
        shown = [r for r in records if r.job_id != SCHEDULER_JOB]
        return shown if limit is None else shown[:limit]


def _served(spec: JobSpec, served: Mapping[str, JobSpec], entries: Sequence[str]) -> JobSpec:
    """The cluster's spec of the function behind `spec` (discovery may name it differently)."""
    code = spec.function.__code__
    for candidate in served.values():
        other = candidate.function.__code__
        if (other.co_qualname, other.co_firstlineno) == (code.co_qualname, code.co_firstlineno) \
                and Path(other.co_filename).resolve() == Path(code.co_filename).resolve():
            return candidate
    if spec.name in served:
        return served[spec.name]
    raise UnknownJobError(f"job {spec.name!r} ({code.co_filename}) is not among the jobs the "
                          f"cluster serves (config `jobs` = {list(entries)}); add its module "
                          "or folder there")


def _ended(state: JobState) -> str:
    return {JobState.SUCCEEDED: "succeeded", JobState.FAILED: "failed",
            JobState.CANCELLED: "been cancelled"}.get(state, state.value)


def default_client() -> Client:
    """The client of the config found from the working directory (what `fn.submit` uses)."""
    return Client()


def _submit_function(function: Callable[..., Any], /, **args: Any) -> JobHandle:
    return default_client().submit(function, **args)


set_submitter(_submit_function)


def submit_job(config: Config, name: str, items: list[str]) -> JobRecord:
    """Check and durably store a new job from `--arg` items; returns its record."""
    return Client(config=config).submit_cli(name, items).record()


def wait_for(config: Config, job_id: str, timeout: float | None = None) -> JobRecord:
    """The job's record once it is finished; `Timeout` after `timeout` seconds."""
    return JobHandle(job_id, Client(config=config)).wait(timeout)
