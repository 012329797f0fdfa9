"""The command line: each command parses, loads the config, calls one function.

Errors are translated to exit codes here and only here: a `HarunnerError`
prints its message (no traceback) and exits with its `exit_code`, taken from
the one table in `harunner.api.exit_codes`; an `OSError` (a state directory
that broke under us) is one line and exit 2; Typer's own usage errors exit 2,
Ctrl-C 130. Each command imports what it needs inside its body, so that
`harunner submit` loads neither zmq nor the runner.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from harunner import __version__
from harunner import config as config_module
from harunner.api import exit_codes
from harunner.cli import errors as cli_errors
from harunner.cli import report, schedules
from harunner.errors import HarunnerError

if TYPE_CHECKING:
    from harunner.api.client import Client

app = typer.Typer(no_args_is_help=True, epilog=exit_codes.epilog(),
                  help="harunner: Python jobs that survive the death or hang of their runner.")
F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = Annotated[str | None, typer.Option("--config", "-c",
                                                  help="TOML config file (default: "
                                                  "./harunner.toml or ./config/harunner.toml)")]
StateDirOption = Annotated[str | None, typer.Option("--state-dir", help="state directory")]
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable")]
TimeoutOption = Annotated[float | None, typer.Option(
    "--timeout", help="stop waiting after this many seconds (exit 4)")]


def reports_errors(command: F) -> F:
    """Print a HarunnerError (or an OSError) as one line on stderr and exit with its code."""
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (HarunnerError, OSError) as error:
            raise typer.Exit(cli_errors.report(error)) from None
    return wrapper  # type: ignore[return-value]


def load_config(config_file: str | None, **overrides: Any) -> config_module.Config:
    return config_module.load(config_file, overrides)


def load_client(config_file: str | None, state_dir: str | None) -> Client:
    """The client of the config, its state directory checked."""
    from harunner.api.client import Client
    from harunner.api.statedir import check_state_dir

    config = load_config(config_file, state_dir=state_dir)
    check_state_dir(config.state_path)
    return Client(config=config)


def say(line: str) -> None:
    typer.echo(line, err=True)


def show_version(value: bool) -> None:
    if value:
        typer.echo(f"harunner {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(version: Annotated[bool, typer.Option(
        "--version", callback=show_version, is_eager=True, help="print the version")] = False
        ) -> None:
    """harunner: Python jobs that survive the death or hang of their runner."""


@app.command()
@reports_errors
def start(config_file: ConfigOption = None, state_dir: StateDirOption = None,
          slots: Annotated[int | None, typer.Option(help="runner slots")] = None,
          jobs: Annotated[list[str] | None, typer.Option("--jobs", help="job module or "
                                                         "folder (repeatable)")] = None,
          backend: Annotated[str | None, typer.Option(
              help="job store: local, or etcd://host:port[,host:port] (docs/hosts.md)")] = None
          ) -> None:
    """Run the cluster in the foreground: supervisor, primary and standbys; Ctrl-C exits 130."""
    from harunner.cli.start import run

    config = load_config(config_file, state_dir=state_dir, slots=slots,
                         jobs=tuple(jobs) if jobs else None, backend=backend)
    raise typer.Exit(run(config, say))


@app.command()
@reports_errors
def stop(config_file: ConfigOption = None, state_dir: StateDirOption = None) -> None:
    """Stop the cluster of this state directory; exit 5 if none is running."""
    from harunner.cli.stop import stop_cluster

    typer.echo(stop_cluster(load_config(config_file, state_dir=state_dir)))


@app.command()
@reports_errors
def submit(name: Annotated[str, typer.Argument(help="job name, e.g. examples.counter")],
           arg: Annotated[list[str] | None, typer.Option("--arg", "-a",
                                                         help="key=value (repeatable)")] = None,
           wait: Annotated[bool, typer.Option("--wait", help="wait for the result")] = False,
           timeout: TimeoutOption = None,
           config_file: ConfigOption = None, state_dir: StateDirOption = None) -> None:
    """Submit a job; it is durable before this returns, even with no runner up.

    With --wait: print the result as JSON; exit 1 if the job failed, 3 if it was
    cancelled, 4 if --timeout passed first.
    """
    client = load_client(config_file, state_dir)
    handle = client.submit_cli(name, arg or [])
    typer.echo(handle.id)
    if wait:
        print_result(handle, timeout)


def print_result(handle: Any, timeout: float | None) -> None:
    """Wait for the job (bar on a terminal) and print its result as JSON."""
    import sys

    from harunner.cli.waiting import wait_for_result

    result = wait_for_result(handle, timeout, say, bar=sys.stderr.isatty())
    typer.echo(json.dumps(result))


@app.command()
@reports_errors
def status(config_file: ConfigOption = None, state_dir: StateDirOption = None,
           as_json: JsonOption = False,
           watch: Annotated[bool, typer.Option("--watch", help="refresh every second, with "
                                               "progress bars (JSON Lines with --json)")] = False
           ) -> None:
    """Show runners (slot, pid, incarnation, role, last beat) and jobs."""
    from harunner.api.statedir import check_state_dir
    from harunner.cli import status as view

    config = load_config(config_file, state_dir=state_dir)
    check_state_dir(config.state_path)
    if watch:
        view.watch(config, as_json, typer.echo)
    elif as_json:
        typer.echo(json.dumps(view.gather(config), indent=2))
    else:
        typer.echo(view.render(view.gather(config)))


@app.command()
@reports_errors
def cancel(job_id: str, config_file: ConfigOption = None,
           state_dir: StateDirOption = None) -> None:
    """Cancel a job: its owner is fenced off and stops it."""
    record = load_client(config_file, state_dir).cancel(job_id)
    typer.echo(f"{record.job_id} {record.state.value}")


@app.command("jobs")
@reports_errors
def list_jobs(state: Annotated[list[str] | None, typer.Option(
                  "--state", "-s", help="pending, running, succeeded, failed or cancelled "
                  "(repeatable)")] = None,
              name: Annotated[str | None, typer.Option("--name", help="exact job name")] = None,
              limit: Annotated[int, typer.Option("--limit", "-n", help="page size")] = 20,
              before: Annotated[str | None, typer.Option(
                  "--before", help="page: jobs submitted before this job id")] = None,
              as_json: JsonOption = False, config_file: ConfigOption = None,
              state_dir: StateDirOption = None) -> None:
    """List jobs, newest first, a page at a time."""
    from harunner.cli import inspect

    client = load_client(config_file, state_dir)
    records = inspect.list_jobs(client, state, name, limit, before)
    if as_json:
        typer.echo(json.dumps([inspect.record_view(r, None) for r in records], indent=2))
        return
    typer.echo(inspect.list_table(records))
    hint = inspect.page_hint(records, limit)
    if hint:
        typer.echo(hint, err=True)


@app.command()
@reports_errors
def show(job_id: str, as_json: JsonOption = False, config_file: ConfigOption = None,
         state_dir: StateDirOption = None) -> None:
    """Show one job: arguments, state, times, attempts and owners, progress, result or error."""
    from harunner.cli import inspect

    client = load_client(config_file, state_dir)
    if as_json:
        record = client.store.get(job_id)
        view = inspect.record_view(record, client.store.read_progress(job_id))
        typer.echo(json.dumps(view, indent=2))
    else:
        typer.echo(inspect.show_text(client, job_id))


@app.command()
@reports_errors
def result(job_id: str,
           wait: Annotated[bool, typer.Option("--wait", help="wait until it finishes")] = False,
           timeout: TimeoutOption = None, config_file: ConfigOption = None,
           state_dir: StateDirOption = None) -> None:
    """Print a job's result as JSON; exit 1 failed, 3 cancelled, 4 not finished (or timed out)."""
    handle = load_client(config_file, state_dir).get(job_id)
    print_result(handle, timeout if wait else 0.0)


@app.command()
@reports_errors
def logs(job_id: str,
         follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the "
                                              "job finishes")] = False,
         config_file: ConfigOption = None, state_dir: StateDirOption = None) -> None:
    """Print a job's log (its lines, stdout, stderr and tracebacks)."""
    from harunner.cli import inspect

    inspect.follow(load_client(config_file, state_dir), job_id,
                   lambda text: typer.echo(text, nl=False), follow)


@app.command()
@reports_errors
def retry(job_id: str, config_file: ConfigOption = None,
          state_dir: StateDirOption = None) -> None:
    """Put a failed or cancelled job back to pending (a new generation; history kept)."""
    from harunner.cli import maintain

    typer.echo(maintain.retry(load_client(config_file, state_dir), job_id))


@app.command()
@reports_errors
def prune(older_than: Annotated[str | None, typer.Option(
              "--older-than", help="age such as 7d or 12h (default: the config's retention)")
          ] = None, config_file: ConfigOption = None, state_dir: StateDirOption = None) -> None:
    """Delete finished jobs (record, checkpoints, log) older than an age."""
    from harunner.cli import maintain

    typer.echo(maintain.prune(load_client(config_file, state_dir), older_than))


@app.command()
@reports_errors
def demo(keep: Annotated[bool, typer.Option(help="keep the demo's temporary directory")] = False
         ) -> None:
    """Run a finite demo: start a cluster, kill the primary mid-job, show the takeover."""
    from harunner.cli.demo import run_demo

    raise typer.Exit(run_demo(keep=keep))


@app.command("crash-test")
@reports_errors
def crash_test(name: Annotated[str, typer.Argument(help="job name, e.g. ledger.append_safe")],
               arg: Annotated[list[str] | None, typer.Option("--arg", "-a", help="key=value "
                              "(repeatable); {workdir} is each run's own folder")] = None,
               seed: Annotated[int, typer.Option(help="seed of the random kill points")] = 0,
               points: Annotated[int, typer.Option(help="random kill points")] = 10,
               config_file: ConfigOption = None) -> None:
    """SIGKILL a job after and before each checkpoint and in between; compare with a clean run."""
    from harunner.testing.command import run_crash_test_command

    config = load_config(config_file)
    raise typer.Exit(run_crash_test_command(config, name, arg or [], seed=seed, points=points))


app.command("report")(reports_errors(report.command))
app.command("schedules")(reports_errors(schedules.schedules))


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        raise SystemExit(exit_codes.INTERRUPTED) from None
