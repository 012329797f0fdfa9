"""`harunner report`: the availability figures of the cluster's event log, as text or JSON.

The log (logs/events.jsonl) is read once, line by line, and folded by
`harunner.store.availability.summarize`: time grows with the log's size
(every line is parsed, also those before `--since`, because they say who
owned what when the window opens), memory with the jobs running at one time
and those that had downtime, not with the log.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Annotated, Any

import typer

from harunner.errors import UsageError

AGE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*(ms|s|m|h|d)\s*$")
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
STAGE_NAMES = {
    "detect": "detect (death to verdict)",
    "decide": "decide (death to decision)",
    "owned": "owned again (downtime)",
    "resume": "resume (worker running)",
    "checkpoint": "first checkpoint",
}


def parse_since(text: str | None, now: float) -> float | None:
    """`--since`: an age with its unit (90m, 12h, 7d), an ISO 8601 time, or Unix seconds."""
    if not text:
        return None
    age = AGE.match(text)
    if age is not None:
        return now - float(age.group(1)) * UNITS[age.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since {text!r} is neither an age (90m, 12h, 7d), an ISO 8601 time "
                         "(2026-12-01T14:00) nor Unix seconds") from None
    return stamp.timestamp()


def build(config_file: str | None, state_dir: str | None, since: str | None,
          now: float | None = None) -> dict[str, Any]:
    """The report of the configured cluster's event log, as the JSON object `--json` prints."""
    from harunner import config as config_module
    from harunner.store.availability import summarize
    from harunner.store.events import iter_events
    from harunner.store.layout import Layout

    config = config_module.load(config_file, {"state_dir": state_dir})
    path = Layout(config.state_path).events
    if not path.exists():
        raise UsageError(f"no event log at {path}: has a cluster run with this state directory "
                         "(config state_dir, --state-dir)?")
    window = parse_since(since, time.time() if now is None else now)
    report = summarize(iter_events(path), window).to_json()
    report["log"] = str(path)
    return report


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.1f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{value / 60:.1f} min" if value < 7200 else f"{value / 3600:.1f} h"


def wall(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp)) + "Z"


def as_text(report: dict[str, Any]) -> str:
    """The report for people."""
    window, failovers = report["window"], report["failovers"]
    causes = ", ".join(f"{cause} {count}" for cause, count in sorted(failovers.items()))
    lines = [f"{report['log']}: {report['events']} events, {wall(window['start'])} .. "
             f"{wall(window['end'])} ({seconds(window['seconds'])})",
             f"failovers (runner deaths): {sum(failovers.values())} ({causes}); "
             f"jobs failed over: {report['jobs_moved']}",
             "", f"{'stage, from the death':30} {'count':>5} {'median':>10} {'p99':>10} "
             f"{'worst':>10}"]
    for stage, figures in report["stages"].items():
        lines.append(f"{STAGE_NAMES.get(stage, stage):30} {figures['count']:>5} "
                     f"{seconds(figures['median']):>10} {seconds(figures['p99']):>10} "
                     f"{seconds(figures['worst']):>10}")
    lines += ["", f"availability: {report['availability'] * 100:.3f} % of "
              f"{seconds(report['needed_seconds'])} that jobs needed an owner "
              f"(down {seconds(report['down_seconds'])}); attempts without downtime: "
              f"{report['attempts_without_downtime']}"]
    if report["jobs"]:
        lines += ["", f"{'JOB':24} {'DOWN':>10} {'NEEDED':>10} {'FAILOVERS':>9} "
                  f"{'AVAILABILITY':>12}"]
        lines += [f"{job['job']:24} {seconds(job['down_seconds']):>10} "
                  f"{seconds(job['needed_seconds']):>10} {job['failovers']:>9} "
                  f"{job['availability'] * 100:>11.3f}%" for job in report["jobs"]]
    if report["still_down"]:
        lines += ["", "still without an owner at the end of the log: "
                  + ", ".join(report["still_down"])]
    return "\n".join(lines)


def command(
    since: Annotated[str | None, typer.Option(
        help="window start: an age (90m, 12h, 7d), an ISO 8601 time or Unix seconds "
             "(default: the whole log)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
    config_file: Annotated[str | None, typer.Option("--config", "-c", help="TOML config file")
                           ] = None,
    state_dir: Annotated[str | None, typer.Option("--state-dir", help="state directory")] = None,
) -> None:
    """Failovers by cause, time to detect, decide and resume, downtime and availability per job."""
    report = build(config_file, state_dir, since)
    typer.echo(json.dumps(report, indent=2) if as_json else as_text(report))
