"""Fixtures of the CLI tests: a project folder, and real clusters (tests/cli/cli_clusters.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytest
from cli_clusters import CLIJOBS, ITJOBS, cli_cluster  # noqa: F401


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
