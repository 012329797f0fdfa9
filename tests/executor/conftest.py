"""The `harness` fixture of the executor tests (helpers are in executor_harness.py)."""

from __future__ import annotations

import pytest
from executor_harness import Harness


@pytest.fixture
def harness(tmp_path):
    h = Harness(tmp_path)
    yield h
    h.close()
