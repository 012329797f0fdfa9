"""The client and the CLI on the etcd backend: what they submit is in etcd, for every host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harunner import config
from harunner.api.client import Client
from harunner.store import JobState, open_store

HOSTJOBS = Path(__file__).resolve().parent / "hostjobs"
REPO = Path(__file__).resolve().parents[2]


def backend_of(cluster) -> str:
    return "etcd://" + ",".join(url.split("//", 1)[1] for url in cluster.endpoints)


def test_the_client_and_the_cli_submit_to_etcd_and_read_back(etcd1, tmp_path: Path) -> None:
    backend = backend_of(etcd1)
    overrides = {"backend": backend, "state_dir": str(tmp_path / "client"),
                 "jobs": [str(HOSTJOBS)]}
    cfg = config.load(overrides=overrides, env={})
    handle = Client(config=cfg).submit("hostjobs.ticker", to=3)
    other = open_store(config.load(overrides={**overrides, "state_dir": str(tmp_path / "b")},
                                   env={}))
    record = other.get(handle.id)  # a store of another "host": nothing local in common
    assert record.state is JobState.PENDING and record.args == {"to": 3}
    assert not (tmp_path / "client" / "jobs.db").exists()  # nothing went to a local store

    env = {**os.environ, "HARUNNER_BACKEND": backend, "HARUNNER_JOBS": str(HOSTJOBS),
           "HARUNNER_STATE_DIR": str(tmp_path / "cli"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "harunner", "submit", "hostjobs.ticker",
                           "--arg", "to=5"], env=env, capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    assert other.get(job_id).args == {"to": 5}
    shown = subprocess.run([sys.executable, "-m", "harunner", "status", "--json"], env=env,
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    listed = {job["id"] for job in json.loads(shown.stdout)["jobs"]}
    assert {handle.id, job_id} <= listed
