"""What `harunner status` shows: runners (from the bus) and jobs (from the store).

A RUNNING job whose owner (slot and incarnation) holds no live slot lock is
marked: "interrupted, resumes at next start" when no runner is up at all, or
"owner gone, being taken over" while others are. `watch` refreshes every
second, with a progress bar per running job, or prints JSON Lines.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zmq

from harunner.config import Config
from harunner.errors import ClusterError, StoreError
from harunner.net import bus
from harunner.net.sockets import Subscriber
from harunner.store import SCHEDULER_JOB, JobRecord, JobState, JobStore, Progress, meta, open_store
from harunner.store.layout import SUPERVISOR, Layout


@dataclass(frozen=True)
class RunnerView:
    slot: int
    pid: int
    incarnation: int
    role: str
    owned: int
    beat_age_ms: float


def listen(config: Config, window: float | None = None
           ) -> tuple[list[RunnerView], int | None]:
    """Beats heard on the bus during `window` seconds (default: a little over two
    heartbeats, so every live runner is heard); the supervisor's pid if it beat."""
    window = 2.2 * config.heartbeat_ms / 1000 if window is None else window
    layout = Layout(config.state_path)
    try:
        cluster_id = meta.cluster_id(layout)
    except (ClusterError, StoreError):  # no cluster yet (or unreadable): nothing to hear
        return [], None
    context = zmq.Context()
    paths = [layout.bus(s) for s in range(config.slots)] + [layout.bus(SUPERVISOR)]
    subscriber = Subscriber(context, paths)
    heard: dict[int, tuple[bus.Beat, float]] = {}
    supervisor = None
    deadline = time.monotonic() + window
    try:
        while time.monotonic() < deadline:
            if subscriber.socket.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                for frame in subscriber.drain():
                    try:
                        message = bus.decode(frame, cluster_id)
                    except bus.BusFrameError:
                        continue
                    if isinstance(message, bus.Beat):
                        heard[message.slot] = (message, time.monotonic())
                    elif isinstance(message, bus.SupervisorBeat):
                        supervisor = message.pid
    finally:
        subscriber.close()
        context.term()
    now = time.monotonic()
    runners = [RunnerView(b.slot, b.pid, b.incarnation, b.role, b.owned, (now - t) * 1000)
               for b, t in (heard[s] for s in sorted(heard))]
    return runners, supervisor


INTERRUPTED = "interrupted, resumes at next start"
TAKING_OVER = "owner gone, being taken over"


def live_incarnations(config: Config) -> dict[int, Any]:
    """slot -> incarnation of its live runner (from the slot locks, no socket)."""
    layout = Layout(config.state_path)
    return {slot: info.get("incarnation") for slot in range(config.slots)
            if (info := meta.live_slot(layout, slot))}


def job_note(record: JobRecord, live: dict[int, Any]) -> str | None:
    """Why a running job is not running now, or None."""
    owner = record.owner
    if record.state is not JobState.RUNNING or owner is None:
        return None
    if live.get(owner.slot) == owner.incarnation:
        return None
    return TAKING_OVER if live else INTERRUPTED


def job_view(store: JobStore, record: JobRecord, live: dict[int, Any] | None = None
             ) -> dict[str, Any]:
    progress = store.read_progress(record.job_id)
    return {
        "id": record.job_id,
        "name": record.name,
        "state": record.state.value,
        "owner": None if record.owner is None else
        {"slot": record.owner.slot, "incarnation": record.owner.incarnation},
        "generation": record.generation,
        "attempts": record.attempts,
        "progress": None if progress is None else
        {"done": progress.done, "total": progress.total, "message": progress.message},
        "result": record.result,
        "error": record.error,
        "note": job_note(record, live or {}),
    }


def gather(config: Config, window: float | None = None) -> dict[str, Any]:
    """The whole status as plain data (what `--json` prints); the bus is heard for `window`
    seconds (default: 2.2 heartbeats, so that every live runner beats in it)."""
    runners, supervisor = listen(config, window)
    store = open_store(config)
    live = live_incarnations(config)
    jobs = [job_view(store, r, live) for r in store.list_jobs() if r.job_id != SCHEDULER_JOB]
    return {
        "state_dir": str(config.state_path),
        "supervisor": supervisor,
        "runners": [vars(r) for r in runners],
        "jobs": jobs,
    }


def render(status: dict[str, Any]) -> str:
    """The status as a human-readable text table."""
    lines = [f"state dir: {status['state_dir']}",
             f"supervisor: {status['supervisor'] or 'not running'}", "",
             "SLOT  PID      INC  ROLE     JOBS  LAST BEAT"]
    for r in status["runners"]:
        lines.append(f"{r['slot']:<5} {r['pid']:<8} {r['incarnation']:<4} {r['role']:<8} "
                     f"{r['owned']:<5} {r['beat_age_ms']:.0f} ms ago")
    if not status["runners"]:
        lines.append("(no runner heard)")
    width = max([4] + [len(j["name"]) for j in status["jobs"]])
    lines += ["", f"{'JOB':<22} {'NAME':<{width}} STATE      OWNER  GEN  TRIES  PROGRESS"]
    for j in status["jobs"]:
        owner = "-" if j["owner"] is None else f"{j['owner']['slot']}/{j['owner']['incarnation']}"
        note = f"  ({j['note']})" if j.get("note") else ""
        lines.append(f"{j['id']:<22} {j['name']:<{width}} {j['state']:<10} {owner:<6} "
                     f"{j['generation']:<4} {j['attempts']:<6} {_progress(j['progress'])}{note}")
    if not status["jobs"]:
        lines.append("(no jobs)")
    return "\n".join(lines)


def _progress(progress: dict[str, Any] | None) -> str:
    if progress is None:
        return "-"
    done, total = progress["done"], progress["total"]
    text = f"{done:g}/{total:g}" if total else f"{done:g}"
    return f"{text} {progress['message'] or ''}".strip()


def watch(config: Config, as_json: bool, echo: Callable[[str], None],
          interval: float = 1.0, turns: int | None = None) -> None:
    """Refresh the status every `interval` s (JSON Lines with `as_json`), `turns` times."""
    if as_json:
        for _ in _turns(turns, interval):
            echo(json.dumps(gather(config), separators=(",", ":")))
        return
    from rich.console import Console, Group
    from rich.live import Live
    from rich.text import Text

    from harunner.cli.bars import Bars, make_progress

    console = Console()
    progress = make_progress(console)
    bars = Bars(progress)
    with Live(console=console, auto_refresh=False) as live:
        for _ in _turns(turns, interval):
            found = gather(config)
            running = [j for j in found["jobs"] if j["state"] == "running"]
            for j in running:
                shown = j["progress"]
                bars.show(j["id"], f"{j['id']} {j['name']}", j["note"] or j["state"],
                          None if shown is None else Progress(**shown))
            bars.keep_only({j["id"] for j in running})
            live.update(Group(Text(render(found)), progress), refresh=True)


def _turns(turns: int | None, interval: float) -> Any:
    count = 0
    while turns is None or count < turns:
        if count:
            time.sleep(interval)
        yield count
        count += 1
