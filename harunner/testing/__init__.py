"""The crash-test kit: prove that a job ends the same when its process is SIGKILLed.

`crash_test(job, args, observe)` runs the job once without faults, then once
per kill point (right after each checkpoint, when each checkpoint is asked
for, and at seeded random moments in between) with the process running it
SIGKILLed there and the job resumed as the cluster would (generation + 1,
from the last acknowledged checkpoint, in a new process). It raises
`CrashTestFailure` naming the first kill point where the result or
`observe()` differs; `run_crash_test` returns the `CrashReport` instead.
With pytest, the `crash_test` fixture (the `harunner` plugin) does the same
in the test's temporary directory. See docs/jobs.md, "Testing your job
against crashes". Layering: above `harunner.api` and `harunner.store`; only
the CLI imports it.
"""

from harunner.testing.kit import (
    WORKDIR,
    CrashTestFailure,
    crash_test,
    kill_points,
    run_crash_test,
    snapshot,
)
from harunner.testing.report import CrashReport, KillPoint, RunOutcome

__all__ = ["WORKDIR", "CrashReport", "CrashTestFailure", "KillPoint", "RunOutcome",
           "crash_test", "kill_points", "run_crash_test", "snapshot"]
