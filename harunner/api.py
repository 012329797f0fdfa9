"""The job API: `@job`, `Context`, job discovery. (Contract; implementation in progress.)"""

from __future__ import annotations

from typing import Any


def job(fn: Any = None, **options: Any) -> Any:
    raise NotImplementedError


class Context:
    pass
