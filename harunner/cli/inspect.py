"""Reading jobs back: `harunner jobs`, `show`, `logs`; text and JSON views of a record.

Everything here reads the store through public `Store` methods (and
`job_files.read_job_checkpoint`, to say which checkpoints are unreadable) and
takes no lock. `show`'s attempts come from the record's history (each line is
"<time> <state>@<generation> <note>"); the traceback's last frame comes from
the tail of the job's log.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harunner.api.client import Client
from harunner.errors import CorruptFileError, UsageError
from harunner.store import JobRecord, JobState, Progress, job_files

HISTORY_LINE = re.compile(r"^(\S+) (\w+)@(\d+) ?(.*)$")
FRAME_LINE = re.compile(r'^\s*File "(.+)", line (\d+), in (.+)$')
LOG_TAIL_BYTES = 64 * 1024


def when(wall: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall))


def record_view(record: JobRecord, progress: Progress | None) -> dict[str, Any]:
    """A record as plain data (what `--json` prints)."""
    return {
        "id": record.job_id, "name": record.name, "state": record.state.value,
        "args": record.args, "generation": record.generation, "attempts": record.attempts,
        "retries": record.retries,
        "owner": None if record.owner is None else
        {"slot": record.owner.slot, "incarnation": record.owner.incarnation},
        "created_at": record.created_at, "updated_at": record.updated_at,
        "progress": None if progress is None else
        {"done": progress.done, "total": progress.total, "message": progress.message},
        "result": record.result, "error": record.error, "history": list(record.history),
    }


def list_jobs(client: Client, states: list[str] | None, name: str | None, limit: int,
              before: str | None) -> list[JobRecord]:
    """A page of jobs, newest first; `before` is the last job id of the previous page."""
    if limit < 1:
        raise UsageError(f"--limit {limit}: give a page size of at least 1")
    known = {state.value for state in JobState}
    for state in states or []:
        if state not in known:
            raise UsageError(f"--state {state!r} is not a job state; one of "
                             f"{', '.join(sorted(known))}")
    return client.jobs(states or None, name=name, limit=limit, before=before)


def list_table(records: list[JobRecord]) -> str:
    """`harunner jobs` as a text table, full names, newest first."""
    if not records:
        return "(no jobs)"
    width = max(4, *(len(r.name) for r in records))
    lines = [f"{'JOB':<22} {'NAME':<{width}} {'STATE':<10} TRIES  CREATED              UPDATED"]
    for r in records:
        lines.append(f"{r.job_id:<22} {r.name:<{width}} {r.state.value:<10} {r.attempts:<6} "
                     f"{when(r.created_at)}  {when(r.updated_at)}")
    return "\n".join(lines)


def page_hint(records: list[JobRecord], limit: int) -> str | None:
    """How to see the next page, when this one is full."""
    if len(records) < limit:
        return None
    return f"(more: harunner jobs --before {records[-1].job_id} ...)"


@dataclass(frozen=True)
class Event:
    """One line of a job's history."""

    at: str
    state: str
    generation: int
    note: str


def events(record: JobRecord) -> list[Event]:
    parsed = []
    for line in record.history:
        match = HISTORY_LINE.match(line)
        if match:
            parsed.append(Event(match[1], match[2], int(match[3]), match[4]))
    return parsed


def attempts(record: JobRecord) -> list[str]:
    """One line per attempt: its number, each owner with its generation, and how it ended."""
    lines: list[str] = []
    number = 0
    for event in events(record):
        owner = re.match(r"(assigned to|taken over by) (.+)", event.note)
        if event.note.startswith("assigned to"):
            number += 1
        if owner:
            lines.append(f"attempt {number}: {event.at} {owner[1]} {owner[2]} "
                         f"(generation {event.generation})")
        elif event.note.startswith("retry:") or event.state in ("failed", "succeeded"):
            lines.append(f"attempt {number}: {event.at} ended: {event.note}")
        elif event.note in ("cancelled", "retried"):
            lines.append(f"{event.at} {event.note} (generation {event.generation})")
            number = 0 if event.note == "retried" else number
    return lines


def last_frame(log: Path) -> str | None:
    """The last frame of the last traceback in the job's log, or None."""
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - LOG_TAIL_BYTES))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback")]
    if not starts:
        return None
    block = lines[starts[-1]:]
    frames = [i for i, line in enumerate(block) if FRAME_LINE.match(line)]
    if not frames:
        return None
    at = frames[-1]
    code = block[at + 1].strip() if at + 1 < len(block) and not FRAME_LINE.match(
        block[at + 1]) else ""
    where = FRAME_LINE.match(block[at])
    assert where is not None
    return f'{where[1]}:{where[2]} in {where[3]}' + (f": {code}" if code else "")


def show_text(client: Client, job_id: str) -> str:
    """`harunner show JOB` as text."""
    record = client.store.get(job_id)
    progress = client.store.read_progress(job_id)
    owner = "-" if record.owner is None else \
        f"slot {record.owner.slot}/incarnation {record.owner.incarnation}"
    lines = [f"job {record.job_id}  {record.name}",
             f"state:      {record.state.value} (generation {record.generation}, owner {owner})",
             f"arguments:  {record.args}",
             f"policy:     retries {record.retries}, backoff {record.backoff:g}s, "
             f"timeout {'-' if record.timeout is None else f'{record.timeout:g}s'}",
             f"submitted:  {when(record.created_at)}",
             f"updated:    {when(record.updated_at)}"]
    if progress is not None:
        total = "" if progress.total is None else f"/{progress.total:g}"
        lines.append(f"progress:   {progress.done:g}{total} {progress.message or ''}".rstrip())
    lines.append(f"checkpoint: {checkpoint_line(client, job_id)}")
    log = client.store.layout.job_log(job_id)  # not log_path: that makes the job's folder
    resumed = infra_resumes(log)
    if resumed:
        lines.append(f"resumed:    {resumed}")
    lines += ["attempts:"] + [f"  {line}" for line in attempts(record) or ["(none yet)"]]
    if record.state is JobState.SUCCEEDED:
        lines.append(f"result:     {record.result!r}")
    if record.error is not None:
        lines.append(f"error:      {record.error}")
        frame = last_frame(log)
        if frame:
            lines.append(f"last frame: {frame}")
    lines.append(f"log:        {log}")
    lines += ["history:"] + [f"  {line}" for line in record.history]
    return "\n".join(lines)


def infra_resumes(log: Path) -> str | None:
    """How often the log's tail says an attempt was re-run after an infrastructure fault."""
    try:
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - LOG_TAIL_BYTES))
            lines = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    faults = [line for line in lines if " infrastructure fault" in line]
    if not faults:
        return None
    last = faults[-1].split(" infrastructure fault", 1)[1].lstrip(":, ")
    return (f"{len(faults)} time(s) after an infrastructure fault, not counted against "
            f"retries (in the last {LOG_TAIL_BYTES // 1024} KiB of the log); last: {last}")


def checkpoint_line(client: Client, job_id: str) -> str:
    """The newest readable checkpoint, and every newer one that cannot be read back."""
    skipped: list[str] = []
    folder = client.store.layout.job_folder(job_id)
    try:
        found = job_files.read_job_checkpoint(
            folder, job_id, lambda path, error: skipped.append(f"{path.name} ({error})"))
    except CorruptFileError as error:
        return f"UNREADABLE: {error}"
    if found is None:
        return "(none)"
    line = f"seq {found.seq} (generation {found.generation})"
    if skipped:
        line += (f"; UNREADABLE and skipped: {'; '.join(skipped)}: the next attempt resumes "
                 f"from seq {found.seq}")
    return line


def follow(client: Client, job_id: str, write: Callable[[str], None], follow: bool,
           poll: float = 0.2) -> None:
    """Write the job's log; with `follow`, keep writing new lines until the job finishes."""
    client.store.get(job_id)  # checks the id; a job that wrote nothing has no log (yet)
    path = client.store.layout.job_log(job_id)
    offset = 0
    while True:
        finished = not follow or client.store.get(job_id).state.finished
        offset = _write_from(path, offset, write)
        if finished:
            return
        time.sleep(poll)


def _write_from(path: Path, offset: int, write: Callable[[str], None]) -> int:
    """Write the log from byte `offset` on; returns the new offset."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            while chunk := handle.read(65536):
                offset += len(chunk)
                write(chunk.decode("utf-8", "replace"))
    except FileNotFoundError:
        pass
    return offset
