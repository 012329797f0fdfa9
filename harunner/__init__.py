"""harunner: a high-availability Python job runner for one host."""

from harunner.api import Context, job
from harunner.api.client import Client, JobHandle
from harunner.api.errors import Cancelled, JobFailed, Timeout
from harunner.errors import FencedError, HarunnerError

__all__ = ["Cancelled", "Client", "Context", "FencedError", "HarunnerError", "JobFailed",
           "JobHandle", "Timeout", "job"]
__version__ = "0.1.0"
