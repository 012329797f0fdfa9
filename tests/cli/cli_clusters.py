"""Real clusters for the CLI and client tests, reaped by a subreaper that lasts one test.

The integration tests' `make_cluster` relies on the test process being a
child subreaper (so that runners, which leave the supervisor's session, stay
its descendants). Their fixture turns that on for the rest of the session;
here it is on only during a test that starts a cluster, and every process
left is killed and reaped before it is turned off, so later tests that
count zombie children see none of ours.
"""

from __future__ import annotations

import ctypes
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from integration.conftest import Cluster, kill_descendants, reap_all  # noqa: E402

from harunner import config as config_module  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36
CLIJOBS = Path(__file__).parent / "clijobs"
ITJOBS = TESTS / "integration" / "itjobs"


def _subreaper(on: bool) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0


@pytest.fixture
def cli_cluster() -> Iterator[Callable[..., Cluster]]:
    """Start a cluster serving tests/cli/clijobs and itjobs; all of it is gone afterwards."""
    _subreaper(True)
    made: list[Cluster] = []

    def make(**options: Any) -> Cluster:
        cluster = Cluster(Path(tempfile.mkdtemp(prefix="hrc-", dir="/tmp")), **options)
        made.append(cluster)
        lines = [f'jobs = ["{CLIJOBS}", "{ITJOBS}"]' if line.startswith("jobs") else line
                 for line in cluster.config_path.read_text().splitlines()]
        cluster.config_path.write_text("\n".join(lines) + "\n")
        cluster.config = config_module.load(str(cluster.config_path), env={})
        cluster.start()
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.stop()
        kill_descendants()
        reap_all()
        _subreaper(False)
        for cluster in made:
            shutil.rmtree(cluster.root, ignore_errors=True)
