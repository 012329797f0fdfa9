"""harunner: a high-availability Python job runner for one host.

The public names (`job`, `Context`, `Client`, ...) are loaded on first use
(PEP 562), together with the client, so that `harunner --version` and shell
completion import nothing else while `from harunner import job` gives the
whole API, `fn.submit` included.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harunner.api.client import Client, JobHandle
    from harunner.api.context import Context
    from harunner.api.errors import Cancelled, JobFailed, Timeout
    from harunner.api.job import job
    from harunner.errors import FencedError, HarunnerError

__all__ = ["Cancelled", "Client", "Context", "FencedError", "HarunnerError", "JobFailed",
           "JobHandle", "Timeout", "job"]
__version__ = "0.1.0"

_HOMES = {"Context": "harunner.api", "job": "harunner.api", "Client": "harunner.api.client",
          "JobHandle": "harunner.api.client", "Cancelled": "harunner.api.errors",
          "JobFailed": "harunner.api.errors", "Timeout": "harunner.api.errors",
          "FencedError": "harunner.errors", "HarunnerError": "harunner.errors"}


def __getattr__(name: str) -> Any:
    """Load a public name (and the client, which `fn.submit` needs) on first use."""
    if name not in _HOMES:
        raise AttributeError(f"module 'harunner' has no attribute {name!r}")
    importlib.import_module("harunner.api.client")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
