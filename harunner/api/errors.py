"""What waiting on a job can end in, as errors: failed, cancelled, timed out; and the CLI's own.

They live in `harunner.api` (not `harunner.errors`) because only the client
and the CLI raise them; each is a `HarunnerError` with its code from
`harunner.api.exit_codes`, so the CLI maps them like every other error.
"""

from __future__ import annotations

from harunner.api import exit_codes
from harunner.errors import ClusterError, HarunnerError, UsageError


class JobFailed(HarunnerError):
    """The job ended FAILED; `error` is the one-line error its record keeps."""

    exit_code = exit_codes.JOB_FAILED

    def __init__(self, job_id: str, error: str | None) -> None:
        super().__init__(f"job {job_id} failed: {error}")
        self.job_id = job_id
        self.error = error


class Cancelled(HarunnerError):
    """The job was cancelled: it has no result."""

    exit_code = exit_codes.CANCELLED

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} was cancelled; it has no result "
                         f"(`harunner retry {job_id}` runs it again)")
        self.job_id = job_id


class Timeout(HarunnerError):
    """A wait for a job ran out of time; the job itself goes on."""

    exit_code = exit_codes.TIMED_OUT

    def __init__(self, job_id: str, state: str, timeout: float | None, hint: str = "") -> None:
        waited = "" if timeout is None else f" after {timeout:g} s"
        super().__init__(f"job {job_id} is still {state}{waited}{hint}")
        self.job_id = job_id
        self.state = state


class StateDirError(UsageError):
    """The state directory cannot be used (not a folder, no permission, a virtual file system)."""


class NotRunning(ClusterError):
    """`harunner stop` found no cluster running."""

    exit_code = exit_codes.NOT_RUNNING
