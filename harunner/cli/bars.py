"""Live progress bars (rich) for `submit --wait` and `status --watch`.

One bar per job, fed with the job's soft progress each time it is polled;
rich estimates the rate and the time left from those samples. A job with no
total shows a pulsing bar, its count and its message. Nothing here reads the
store: callers pass in what they read.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from harunner.store import Progress as JobProgress


class RateColumn(ProgressColumn):
    """Steps per second, once rich has two samples."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.3g}/s", style="progress.data.speed")


class CountColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        done = f"{task.completed:g}"
        return Text(done if task.total is None else f"{done}/{task.total:g}")


def make_progress(console: Console) -> Progress:
    """A rich Progress with harunner's columns: name, bar, count, rate, elapsed, ETA, note."""
    return Progress(TextColumn("{task.description}"), BarColumn(), CountColumn(), RateColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[note]}"),
                    console=console, auto_refresh=False, speed_estimate_period=10.0)


class Bars:
    """The bars of a set of jobs, keyed by job id."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def show(self, job_id: str, label: str, state: str, progress: JobProgress | None) -> None:
        """Update (or add) the bar of `job_id` with its state and last progress."""
        fields: dict[str, Any] = {"description": label, "note": _note(state, progress)}
        if progress is not None:
            fields["completed"] = progress.done
            fields["total"] = progress.total
        task = self.tasks.get(job_id)
        if task is None:
            self.tasks[job_id] = self.progress.add_task(
                label, total=None if progress is None else progress.total, note=fields["note"],
                completed=0 if progress is None else int(progress.done))
        else:
            self.progress.update(task, **fields)

    def keep_only(self, job_ids: set[str]) -> None:
        """Remove the bars of jobs no longer shown."""
        for job_id in set(self.tasks) - job_ids:
            self.progress.remove_task(self.tasks.pop(job_id))


def _note(state: str, progress: JobProgress | None) -> str:
    message = progress.message if progress is not None and progress.message else ""
    return f"{state} {message}".strip()
