"""The `harness` fixture of the executor tests (helpers are in executor_harness.py)."""

from __future__ import annotations

import pytest
from executor_harness import Harness


@pytest.fixture(params=["pool", "process"])
def harness(tmp_path, request):
    h = Harness(tmp_path, worker_mode=request.param)
    yield h
    h.close()
