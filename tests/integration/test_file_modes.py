"""File modes of a running cluster, and read commands run by another user (finding 7).

Every file, socket and folder in the state directory of a running cluster
that has run a job (its folder, checkpoint, progress and log; the database
with -wal and -shm; lock files; sockets; the runner and supervisor logs and
the event log) has no group or other permission bit: files 0600 (sockets and
folders 0700). And `harunner status`, `jobs`, `show` and `logs`, run as uid
65534 (nobody) against that directory, print one line naming the state
directory and what to do, and exit with the usage code, without a traceback.

Before the fix the state directory and logs/ were 0755, the runner and
supervisor logs and every lock file 0644 and the sockets 0755: the walk failed
on them.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harunner.api import exit_codes
from harunner.store import JobState

from .conftest import Cluster, poll

pytestmark = pytest.mark.integration
NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def loose_entries(root: Path) -> list[str]:
    """Every entry under `root` (and `root`) with a group or other permission bit."""
    found = []
    for folder, _folders, files in os.walk(root):
        for path in [Path(folder), *(Path(folder) / n for n in files)]:
            mode = stat.S_IMODE(os.lstat(path).st_mode)
            if mode & 0o077:
                found.append(f"{oct(mode)} {path}")
    return sorted(set(found))


def ran_a_job(cluster: Cluster) -> str:
    # 0.3 s of ticking: past the spool's delay, so the job has its log (a quiet job that
    # succeeds within it has none)
    job = cluster.submit("itjobs.ticker", to=30, delay=0.01)
    assert cluster.finished(job, timeout=60).state is JobState.SUCCEEDED
    return job


def test_every_state_file_is_private_to_its_user(make_cluster):
    cluster = make_cluster()
    cluster.start()
    job = ran_a_job(cluster)
    state = cluster.config.state_path
    for path in (cluster.layout.database, Path(f"{cluster.layout.database}-wal"),
                 cluster.layout.events, cluster.layout.log_file("supervisor"),
                 cluster.layout.log_file("runner-0"), cluster.layout.job_log(job),
                 cluster.layout.slot_lock(0), cluster.layout.peer(0), cluster.layout.spools):
        assert path.exists(), path  # the walk below does see them
    assert [p for p in cluster.layout.job_folder(job).iterdir() if p.name.startswith("ckpt.")]
    assert loose_entries(state) == []


def _nobody_can_run_python() -> str | None:
    if os.geteuid() != 0:
        return "dropping privileges to uid 65534 needs root"
    probe = subprocess.run([*AS_NOBODY, sys.executable, "-c", "import typer, harunner"],
                           capture_output=True, cwd="/", timeout=60,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    if probe.returncode != 0:
        return "uid 65534 cannot read this interpreter's packages (a 0700 virtualenv)"
    return None


@pytest.mark.parametrize("command", [["status"], ["jobs"], ["show", "JOB"], ["logs", "JOB"]])
def test_another_user_gets_one_line_naming_the_state_dir(make_cluster, command):
    why_not = _nobody_can_run_python()
    if why_not:
        pytest.skip(why_not)
    cluster = make_cluster()
    cluster.start()
    job = ran_a_job(cluster)
    os.chmod(cluster.root, 0o755)  # nobody may reach the state directory and read the config
    os.chmod(cluster.config_path, 0o644)
    state = cluster.config.state_path
    args = [job if part == "JOB" else part for part in command]
    result = subprocess.run(
        [*AS_NOBODY, sys.executable, "-m", "harunner", *args, "--config",
         str(cluster.config_path)], capture_output=True, text=True, cwd="/", timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == exit_codes.USAGE, (result.returncode, result.stderr)
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert str(state) in lines[0] and "permission denied" in lines[0], lines
    assert "fix its permissions" in lines[0] or "a folder you own" in lines[0], lines
    poll(lambda: cluster.wait_up(timeout=5), 10, "the cluster still up")
