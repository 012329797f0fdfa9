"""`harunner schedules`: the periodic jobs, their next and last fire and the last job's state.

It reads table `schedules` of the state directory (no lock, no runner needed)
and imports the job modules, so that a bad schedule is reported here as one
line (exit 2) and a schedule declared but not yet registered (no runner has
started since it was written) is listed as such. `harunner.cli.app`
registers `schedules` (with its error reporting); imports of the store and
the API are inside the command, as for every command.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer

from harunner.config import Config

NOT_REGISTERED = "declared; registered when a runner starts"
# the same options as the other commands' (harunner.cli.app, which this module must not import)
ConfigOption = Annotated[str | None, typer.Option("--config", "-c", help="TOML config file "
                                                  "(default: ./harunner.toml or "
                                                  "./config/harunner.toml)")]
StateDirOption = Annotated[str | None, typer.Option("--state-dir", help="state directory")]
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable")]


def schedules(as_json: JsonOption = False, config_file: ConfigOption = None,
              state_dir: StateDirOption = None) -> None:
    """List periodic jobs: schedule, time zone, next fire, last fire, last job and its state."""
    from harunner import config as config_module
    from harunner.api.statedir import check_state_dir

    config = config_module.load(config_file, {"state_dir": state_dir})
    check_state_dir(config.state_path)
    views = gather(config)
    typer.echo(json.dumps(views, indent=2) if as_json else render(views))


def gather(config: Config) -> list[dict[str, Any]]:
    """One plain-data view per schedule: the registered rows, then the declared-only ones."""
    from harunner.api.discovery import discover
    from harunner.errors import UnknownJobError
    from harunner.store import Store
    from harunner.store.schedules import ScheduleTable

    declared = {name: spec.schedule for name, spec in discover(config.jobs).items()
                if spec.schedule is not None}
    store = Store.from_config(config)
    views = []
    for row in ScheduleTable(store).rows():
        state = None
        if row.last_job is not None:
            try:
                state = store.get(row.last_job).state.value
            except UnknownJobError:
                state = "pruned"
        views.append(_view(row.name, row.expression, row.timezone, row.catch_up, row.overlap,
                           "enabled" if row.enabled else "disabled", row.next_fire,
                           row.last_fire, row.last_job, state, row.fired, row.skipped))
        declared.pop(row.name, None)
    for name, schedule in sorted(declared.items()):
        views.append(_view(name, schedule.text, schedule.timezone, schedule.catch_up,
                           schedule.overlap, NOT_REGISTERED, None, None, None, None, 0, 0))
    return views


def _view(name: str, expression: str, zone: str, catch_up: str, overlap: bool, status: str,
          next_fire: int | None, last_fire: int | None, last_job: str | None,
          last_state: str | None, fired: int, skipped: int) -> dict[str, Any]:
    return {"name": name, "schedule": expression, "timezone": zone, "catch_up": catch_up,
            "overlap": overlap, "status": status, "next_fire": _local(next_fire, zone),
            "last_fire": _local(last_fire, zone), "last_job": last_job,
            "last_job_state": last_state, "fired": fired, "skipped": skipped}


def _local(ms: int | None, zone: str) -> str | None:
    from zoneinfo import ZoneInfo

    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(zone)).isoformat(timespec="seconds")


def render(views: list[dict[str, Any]]) -> str:
    """The views as a text table, one schedule a line."""
    if not views:
        return "(no periodic jobs: declare one with @job(schedule=...) or @job(every=...))"
    columns = [("NAME", "name"), ("SCHEDULE", "schedule"), ("TZ", "timezone"),
               ("NEXT FIRE", "next_fire"), ("LAST FIRE", "last_fire"),
               ("LAST JOB", "last_job_state"), ("STATUS", "status")]
    cells = [[str(view[key] if view[key] is not None else "-") for _, key in columns]
             for view in views]
    widths = [max(len(title), *(len(row[i]) for row in cells))
              for i, (title, _) in enumerate(columns)]
    lines = ["  ".join(title.ljust(w) for (title, _), w in zip(columns, widths, strict=True))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
              for row in cells]
    return "\n".join(lines)
