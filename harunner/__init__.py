"""harunner: a high-availability Python job runner for one host."""

from harunner.api import Context, job
from harunner.errors import FencedError, HarunnerError

__all__ = ["Context", "FencedError", "HarunnerError", "job"]
__version__ = "0.1.0"
