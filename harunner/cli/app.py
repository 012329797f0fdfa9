"""The command line: each command parses, loads the config, calls one function.

Errors are translated to exit codes here and only here: a `HarunnerError`
prints its message (no traceback) and exits with its `exit_code` (2 for
usage errors); Typer's own usage errors exit 2 as well.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from harunner import config as config_module
from harunner.errors import HarunnerError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="harunner: Python jobs that survive the death or hang of their runner.")
F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = Annotated[str | None, typer.Option("--config", "-c",
                                                  help="TOML config file (default: "
                                                  "./harunner.toml or ./config/harunner.toml)")]
StateDirOption = Annotated[str | None, typer.Option("--state-dir", help="state directory")]


def reports_errors(command: F) -> F:
    """Print a HarunnerError as one line on stderr and exit with its code."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except HarunnerError as error:
            typer.echo(f"harunner: {error}", err=True)
            raise typer.Exit(error.exit_code) from None
    return wrapper  # type: ignore[return-value]


def load_config(config_file: str | None, **overrides: Any) -> config_module.Config:
    return config_module.load(config_file, overrides)


@app.command()
@reports_errors
def start(config_file: ConfigOption = None, state_dir: StateDirOption = None,
          slots: Annotated[int | None, typer.Option(help="runner slots")] = None,
          jobs: Annotated[list[str] | None, typer.Option("--jobs", help="job module or "
                                                         "folder (repeatable)")] = None) -> None:
    """Run the cluster in the foreground: supervisor, primary and standbys."""
    from harunner.supervisor import supervise

    config = load_config(config_file, state_dir=state_dir, slots=slots,
                         jobs=tuple(jobs) if jobs else None)
    typer.echo(f"harunner: starting {config.slots} runner slots on {config.state_path} "
               "(Ctrl-C stops)", err=True)
    supervise(config)


@app.command()
@reports_errors
def stop(config_file: ConfigOption = None, state_dir: StateDirOption = None) -> None:
    """Stop the cluster running on this state directory."""
    from harunner.cli.stop import stop_cluster

    config = load_config(config_file, state_dir=state_dir)
    typer.echo(stop_cluster(config))


@app.command()
@reports_errors
def submit(name: Annotated[str, typer.Argument(help="job name, e.g. examples.counter")],
           arg: Annotated[list[str] | None, typer.Option("--arg", "-a",
                                                         help="key=value (repeatable)")] = None,
           wait: Annotated[bool, typer.Option("--wait", help="wait for the result")] = False,
           config_file: ConfigOption = None, state_dir: StateDirOption = None) -> None:
    """Submit a job; it is durable before this returns, even with no runner up."""
    from harunner.api.client import submit_job, wait_for

    config = load_config(config_file, state_dir=state_dir)
    record = submit_job(config, name, arg or [])
    typer.echo(record.job_id)
    if wait:
        final = wait_for(config, record.job_id)
        if final.error is not None:
            typer.echo(f"harunner: job {final.job_id} {final.state.value}: {final.error}",
                       err=True)
            raise typer.Exit(1)
        typer.echo(json.dumps(final.result))


@app.command()
@reports_errors
def status(config_file: ConfigOption = None, state_dir: StateDirOption = None,
           as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
           watch: Annotated[bool, typer.Option("--watch", help="refresh every second")] = False
           ) -> None:
    """Show runners (slot, pid, incarnation, role, last beat) and jobs."""
    from harunner.cli.status import gather, render

    config = load_config(config_file, state_dir=state_dir)
    while True:
        found = gather(config)
        if as_json:
            typer.echo(json.dumps(found, indent=2))
        else:
            if watch:
                typer.echo("\x1b[2J\x1b[H", nl=False)
            typer.echo(render(found))
        if not watch:
            return
        time.sleep(1.0)


@app.command()
@reports_errors
def cancel(job_id: str, config_file: ConfigOption = None,
           state_dir: StateDirOption = None) -> None:
    """Cancel a job: its owner is fenced off and stops it."""
    from harunner.store import Store

    config = load_config(config_file, state_dir=state_dir)
    record = Store.from_config(config).cancel(job_id)
    typer.echo(f"{record.job_id} {record.state.value}")


@app.command()
@reports_errors
def demo(keep: Annotated[bool, typer.Option(help="keep the demo's temporary directory")] = False
         ) -> None:
    """Run a finite demo: start a cluster, kill the primary mid-job, show the takeover."""
    from harunner.cli.demo import run_demo

    raise typer.Exit(run_demo(keep=keep))


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
