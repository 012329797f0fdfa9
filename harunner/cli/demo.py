"""`harunner demo`: a finite, self-checking show of a failover.

It starts a real cluster (supervisor, primary, two standbys) in a temporary
directory, submits a checkpointing counter, SIGKILLs the runner that owns it
(the primary) midway, and prints the timeline of the takeover read from the
cluster's event log: kill, exit seen, detection, decision, takeover, resume.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harunner import config
from harunner.api import client
from harunner.cli.status import listen
from harunner.polling import wait_until as poll
from harunner.store import JobRecord, JobState, Store, meta
from harunner.store.events import read_events

JOB = "harunner.cli.demo_jobs.count"


def say(text: str) -> None:
    print(text, flush=True)


def run_demo(keep: bool = False) -> int:
    root = Path(tempfile.mkdtemp(prefix="hr-demo-", dir="/tmp"))
    config_path = root / "harunner.toml"
    config_path.write_text(f'state_dir = "{root / "state"}"\njobs = ["harunner.cli.demo_jobs"]\n')
    cfg = config.load(str(config_path), env={})
    say(f"demo: a cluster of 3 runner slots in {root}")
    log = open(root / "supervisor.out", "wb")
    supervisor = subprocess.Popen([sys.executable, "-m", "harunner", "start", "--config",
                                   str(config_path)], stdout=log, stderr=subprocess.STDOUT)
    try:
        return _show(cfg, supervisor)
    except TimeoutError as error:
        say(f"demo failed: {error} (logs kept in {root})")
        keep = True
        return 1
    finally:
        _stop(supervisor)
        log.close()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def _show(cfg: config.Config, supervisor: subprocess.Popen[bytes]) -> int:
    def cluster_up() -> Any:
        runners, _ = listen(cfg)
        return len(runners) == cfg.slots and any(r.role == "primary" for r in runners) and runners

    runners = poll(cluster_up, 30, "three runners and a primary")
    for r in runners:
        say(f"  slot {r.slot}: pid {r.pid} incarnation {r.incarnation} {r.role}")
    record = client.submit_job(cfg, JOB, ["to=150", "delay=0.02"])
    say(f"submitted {JOB} to=150 as job {record.job_id}")
    store = Store.from_config(cfg)

    def midway() -> Any:
        checkpoint = store.read_checkpoint(record.job_id)
        return checkpoint if checkpoint and checkpoint.state["i"] >= 50 else None

    before = poll(midway, 30, "the job to reach i=50")
    owner = store.get(record.job_id).owner
    assert owner is not None
    pid = int(meta.read_meta(meta.Layout(cfg.state_path).slot_file(owner.slot))["pid"])
    role = next((r.role for r in runners if r.slot == owner.slot), "runner")
    say(f"job at i={before.state['i']} on slot {owner.slot} ({role}, pid {pid}): SIGKILL it")
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)

    def resumed() -> Any:
        checkpoint = store.read_checkpoint(record.job_id)
        return checkpoint if checkpoint and checkpoint.generation > before.generation else None

    poll(resumed, 30, "the job to resume")
    def finished() -> JobRecord | None:
        found = store.get(record.job_id)
        return found if found.state.finished else None

    final = poll(finished, 60, "the job to finish", 0.05)
    assert final is not None
    _timeline(cfg, killed_at, final.result["resumes"][-1], record.job_id)
    say(f"job {final.state.value}: result {final.result}")
    ok = final.state is JobState.SUCCEEDED and final.result["count"] == 150
    say("demo passed: the standby resumed the job from its last checkpoint" if ok
        else "demo FAILED: the result is not what was expected")
    return 0 if ok else 1


def _timeline(cfg: config.Config, killed_at: float, resume: dict[str, Any], job_id: str
              ) -> None:
    events = [e for e in read_events(meta.Layout(cfg.state_path).events)
              if e.get("t", 0) >= killed_at]

    def first(*names: str, **match: Any) -> float | None:
        for event in events:
            if event.get("event") in names and all(event.get(k) == v
                                                   for k, v in match.items()):
                return float(event["t"])
        return None

    steps = [("SIGKILL sent", killed_at),
             ("the exit seen (pidfd)", first("runner_exit", "peer_exit")),
             ("a standby declared it dead", first("detected")),
             ("Paxos decided the new owner", first("decided", job=job_id)),
             ("new owner raised the generation", first("took_over", job=job_id)),
             ("worker started", first("worker_started", job=job_id)),
             ("first new checkpoint written", float(resume["t"]))]
    say("timeline (ms after the kill):")
    for label, at in steps:
        shown = "      -" if at is None else f"{(at - killed_at) * 1000:7.1f}"
        say(f"  {shown}  {label}")
    say(f"resumed from i={resume['from']} at generation {resume['generation']}")


def _stop(supervisor: subprocess.Popen[bytes]) -> None:
    if supervisor.poll() is None:
        supervisor.send_signal(signal.SIGTERM)
        try:
            supervisor.wait(timeout=10)
        except subprocess.TimeoutExpired:
            supervisor.kill()
            supervisor.wait()
