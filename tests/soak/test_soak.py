"""The nemesis soak against a real cluster: hash-chain jobs, seeded faults, a history check.

CI runs a bounded soak (at least 100 faults in a few minutes); HARUNNER_SOAK=1
runs HARUNNER_SOAK_FAULTS faults (default 2,000). HARUNNER_SEED replays a
fault sequence (the timing of real processes still varies). The mutant runs
switch a deliberately broken variant on (soakjobs.py) and show that the
checker catches it on a real cluster.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from .driver import Plan, run

pytestmark = pytest.mark.integration

SOAK = os.environ.get("HARUNNER_SOAK") == "1"
SEED = int(os.environ.get("HARUNNER_SEED", "20261201"))
FAULTS = int(os.environ.get("HARUNNER_SOAK_FAULTS", "2000" if SOAK else "100"))


def _logger(path: Path):  # noqa: ANN202
    started = time.monotonic()

    def log(message: str) -> None:
        with open(path, "a") as out:
            out.write(f"{time.monotonic() - started:8.3f} {message}\n")
    return log


def _keep(root: Path) -> None:
    """Copy the trace and the logs of a failed soak to /tmp/harunner-soak-<seed>."""
    keep = Path(f"/tmp/harunner-soak-{SEED}")
    shutil.rmtree(keep, ignore_errors=True)
    shutil.copytree(root, keep, ignore=shutil.ignore_patterns("*.sock", "run", "paxos"),
                    ignore_dangling_symlinks=True)
    print(f"soak: trace and logs kept in {keep}")


@pytest.mark.timeout(0 if SOAK else 420)
def test_nemesis_soak_finds_no_anomaly(soak_site, capsys) -> None:  # noqa: ANN001
    site = soak_site()
    plan = Plan(seed=SEED, faults=FAULTS, max_seconds=86_400.0 if SOAK else 160.0)
    try:
        outcome = run(site.cluster, plan, site.trace, site.disk, site.kill_all,
                      _logger(site.cluster.root / "nemesis.log"))
    except BaseException:
        _keep(site.cluster.root)
        raise
    report = outcome.report
    with capsys.disabled():
        print(f"\nsoak: seed {SEED} (HARUNNER_SEED), {outcome.faults} faults in "
              f"{outcome.seconds:.1f} s" + (f"; fill_disk skipped: {site.skip_reason}"
                                           if site.skip_reason else ""))
        print(report.summary(), file=sys.stdout)
    if report.anomalies or report.stuck:
        _keep(site.cluster.root)
    assert outcome.faults >= plan.faults, f"only {outcome.faults} faults in {outcome.seconds:.0f} s"
    assert not report.anomalies, report.summary()
    assert not report.stuck, report.summary()
