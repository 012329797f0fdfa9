"""The exit codes are one table (harunner.api.exit_codes), shown by --help and the README."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from harunner.api import errors, exit_codes
from harunner.cli.app import app

README = Path(__file__).resolve().parents[2] / "README.md"


def test_help_shows_every_exit_code():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for code, _ in exit_codes.TABLE:
        assert f"{code}=" in text


def test_readme_table_lists_the_same_codes():
    rows = re.findall(r"^\| (\d+) \| ", README.read_text(), re.M)
    assert [int(code) for code in rows] == [code for code, _ in exit_codes.TABLE]


def test_error_classes_take_their_codes_from_the_table():
    assert errors.JobFailed("j", "e").exit_code == exit_codes.JOB_FAILED
    assert errors.Cancelled("j").exit_code == exit_codes.CANCELLED
    assert errors.Timeout("j", "running", 1.0).exit_code == exit_codes.TIMED_OUT
    assert errors.NotRunning("x").exit_code == exit_codes.NOT_RUNNING
    assert errors.StateDirError("x").exit_code == exit_codes.USAGE
