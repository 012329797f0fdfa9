"""The crash-test command function (`harunner crash-test`) and `python -m harunner.testing`."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from harunner.config import Config
from harunner.testing.command import run_crash_test_command
from harunner.testing.report import first_difference

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Config(jobs=(str(ROOT / "jobs"),))
LEDGER = ["path={workdir}/ledger.txt", "lines=3"]


def run(name: str, items: list[str], **options: int) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_crash_test_command(CONFIG, name, items, out=out, err=err, **options)
    return code, out.getvalue(), err.getvalue()


def test_the_unsafe_ledger_exits_1_with_the_table_and_the_first_kill_point() -> None:
    code, out, _ = run("ledger.append_unsafe", LEDGER, points=2)
    assert code == 1
    assert out.splitlines()[0].split() == ["kill", "point", "killed", "ckpt", "resumed",
                                           "procs", "verdict"]
    assert len([line for line in out.splitlines() if "checkpoint" in line]) >= 6
    assert "first kill point that differs: before checkpoint 1" in out
    assert "state none" in out
    assert "at ['ledger.txt'] line 2: expected \"line 2\", got \"line 1\"" in out


def test_the_safe_ledger_exits_0() -> None:
    code, out, _ = run("ledger.append_safe", LEDGER, points=2)
    assert code == 0, out
    assert "DIFFERS" not in out
    assert "crash test of ledger.append_safe (seed 0): 8 kill points over 3 checkpoints, " \
           "all pass" in out


@pytest.mark.parametrize(("name", "items", "expected"), [
    ("ledger.apend_safe", LEDGER, "did you mean ledger.append_safe"),
    ("ledger.append_safe", ["path"], "is not KEY=VALUE"),
    ("ledger.append_safe", ["lines=3"], "missing required argument(s) path"),
    ("ledger.append_safe", [*LEDGER, "colour=red"], "has no parameter 'colour'"),
])
def test_usage_errors_exit_2_with_one_line(name: str, items: list[str], expected: str) -> None:
    code, out, err = run(name, items)
    assert code == 2 and out == ""
    assert expected in err and err.count("\n") == 1


def test_negative_points_are_a_usage_error() -> None:
    code, _, err = run("ledger.append_safe", LEDGER, points=-1)
    assert code == 2 and "--points is -1" in err


@pytest.mark.integration
def test_python_m_harunner_testing_exits_with_the_verdict() -> None:
    command = [sys.executable, "-m", "harunner.testing", "--points", "1", "--arg",
               "path={workdir}/ledger.txt", "--arg", "lines=2"]
    safe = subprocess.run([*command, "ledger.append_safe"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    unsafe = subprocess.run([*command, "ledger.append_unsafe"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert (safe.returncode, unsafe.returncode) == (0, 1), safe.stdout + unsafe.stdout
    assert "all pass" in safe.stdout and "DIFFERS" in unsafe.stdout


def test_first_difference_names_where_values_differ() -> None:
    assert first_difference([1, 2, 3], [1, 2]) == \
        "the list has 2 items, expected 3; first missing: 3"
    assert first_difference({"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}]}) == \
        "at ['a'][1]['b']: expected 2, got 3"
    assert first_difference("x\ny\n", "x\nz\n") == 'at line 2: expected "y", got "z"'
