"""Fixtures of the CLI tests: a project folder, and the real clusters of tests/integration."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from integration.conftest import make_cluster, subreaper  # noqa: E402, F401

CLIJOBS = Path(__file__).parent / "clijobs"
ITJOBS = TESTS / "integration" / "itjobs"


@pytest.fixture
def clean_env(monkeypatch):
    """No HARUNNER_* variable of the caller leaks into a test."""
    for name in list(os.environ):
        if name.startswith("HARUNNER_"):
            monkeypatch.delenv(name)


@pytest.fixture
def cli_project(tmp_path, monkeypatch, clean_env):
    """A folder with a config naming the CLI test jobs; the working directory."""
    (tmp_path / "harunner.toml").write_text(
        f'state_dir = "{tmp_path / "state"}"\njobs = ["{CLIJOBS}", "{ITJOBS}"]\n')
    monkeypatch.chdir(tmp_path)
    return tmp_path
