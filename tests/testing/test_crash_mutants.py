"""Mutants of the crash-test kit itself, each caught by the kit's own tests.

Each test copies harunner/, jobs/ and tests/testing/ into a temporary
project, breaks the kit in one place (a mutant), and runs the kit's tests
named for that mutant there, in a fresh pytest process: they must fail. The
unmutated copy must pass the same tests, so a failure is the mutant's doing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KIT_TESTS = "tests/testing/test_crash_kit.py"

# name -> (file, original text, mutated text, the tests that must catch it)
MUTANTS = {
    "the child does not kill itself at a checkpoint": (
        "harunner/testing/child.py",
        '    os.kill(os.getpid(), signal.SIGKILL)\n    raise AssertionError("unreachable: '
        'SIGKILL returned")\n',
        "    return  # type: ignore[misc]\n",
        ["test_catches_the_unsafe_ledger_and_names_the_first_kill_point",
         "test_passes_the_safe_ledger_with_every_kill_where_planned"]),
    "the resumed process starts from scratch, not from the last checkpoint": (
        "harunner/testing/child.py",
        "    checkpoint = store.read_checkpoint(request.job_id)\n",
        "    checkpoint = None\n",
        ["test_passes_the_safe_ledger_with_every_kill_where_planned"]),
    "the parent never fires a timed kill": (
        "harunner/testing/process.py",
        "kill_at = time.monotonic() + timed[1]\n",
        "kill_at = None\n",
        ["test_a_timed_kill_lands_between_the_planned_checkpoints"]),
}


def copy_project(target: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("harunner", "jobs", "tests/testing"):
        shutil.copytree(ROOT / folder, target / folder, ignore=ignore)
    return target


def mutate(project: Path, file: str, original: str, mutated: str) -> None:
    path = project / file
    text = path.read_text()
    assert text.count(original) == 1, f"the mutant's original text is not once in {file}"
    path.write_text(text.replace(original, mutated))


def run_tests(project: Path, tests: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(project), "PYTHONDONTWRITEBYTECODE": "1"}
    check = subprocess.run([sys.executable, "-c", "import harunner; print(harunner.__file__)"],
                           cwd=project, env=env, capture_output=True, text=True, check=True)
    assert check.stdout.strip().startswith(str(project)), check.stdout
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", KIT_TESTS,
               "-k", " or ".join(tests)]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True,
                          timeout=240)


@pytest.mark.integration
def test_the_unmutated_copy_passes(tmp_path: Path) -> None:
    tests = sorted({name for *_, caught_by in MUTANTS.values() for name in caught_by})
    result = run_tests(copy_project(tmp_path), tests)
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"{len(tests)} passed" in result.stdout


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_the_mutant_is_caught(tmp_path: Path, name: str) -> None:
    file, original, mutated, caught_by = MUTANTS[name]
    project = copy_project(tmp_path)
    mutate(project, file, original, mutated)
    result = run_tests(project, caught_by)
    assert result.returncode == 1, result.stdout[-3000:]
    assert f"{len(caught_by)} failed" in result.stdout, result.stdout[-3000:]
