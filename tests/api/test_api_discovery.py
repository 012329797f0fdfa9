"""Discovering jobs in folders and modules, and the errors of discovery."""

from __future__ import annotations

import sys
import uuid

import pytest

from harunner.api import forget
from harunner.api.discovery import discover, find, module_names
from harunner.errors import JobDefinitionError, UnknownJobError

JOB_FILE = """
from harunner import job

@job
def {func}(ctx, n: int = 1):
    return n

@job(name="{custom}", retries=2)
def other(ctx):
    return 0
"""


@pytest.fixture
def unique(monkeypatch):
    """A unique module-name prefix; modules with it are unloaded after the test."""
    prefix = f"m{uuid.uuid4().hex[:10]}"
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield prefix
    for name in [name for name in sys.modules if name.startswith(prefix)]:
        del sys.modules[name]
        forget(name)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_folder_jobs_are_named_after_the_file(tmp_path, unique):
    write(tmp_path / "jobs" / f"{unique}_a.py", JOB_FILE.format(func="resize",
                                                                custom=f"{unique}.custom"))
    write(tmp_path / "jobs" / "_helper.py", "raise RuntimeError('never imported')")
    write(tmp_path / "jobs" / "not-a-module.py", "raise RuntimeError('never imported')")
    jobs = discover([str(tmp_path / "jobs")])
    assert set(jobs) == {f"{unique}_a.resize", f"{unique}.custom"}
    assert jobs[f"{unique}.custom"].retries == 2
    assert jobs[f"{unique}_a.resize"].function(None, n=5) == 5
    assert discover([str(tmp_path / "jobs")]) == jobs


def test_a_folder_module_can_import_its_siblings(tmp_path, unique):
    write(tmp_path / "jobs" / f"{unique}_util.py", "VALUE = 41\n")
    write(tmp_path / "jobs" / f"{unique}_main.py",
          f"from harunner import job\nimport {unique}_util\n\n"
          f"@job\ndef answer(ctx):\n    return {unique}_util.VALUE + 1\n")
    spec = find([str(tmp_path / "jobs")], f"{unique}_main.answer")
    assert spec.function(None) == 42


def test_module_entry_jobs_are_named_by_dotted_path(tmp_path, unique, monkeypatch):
    write(tmp_path / unique / "__init__.py", "")
    write(tmp_path / unique / "tasks.py", JOB_FILE.format(func="resize", custom=f"{unique}.c"))
    monkeypatch.syspath_prepend(str(tmp_path))
    jobs = discover([f"{unique}.tasks"])
    assert set(jobs) == {f"{unique}.tasks.resize", f"{unique}.c"}
    assert module_names([f"{unique}.tasks"]) == [f"{unique}.tasks"]


def test_missing_folder_or_module_names_the_entry_and_key(unique):
    with pytest.raises(JobDefinitionError) as caught:
        discover([f"{unique}.nowhere"])
    assert f"{unique}.nowhere" in str(caught.value) and "`jobs`" in str(caught.value)
    with pytest.raises(JobDefinitionError, match="no such folder"):
        discover([f"./{unique}/missing"])


def test_import_error_names_file_error_and_key(tmp_path, unique):
    bad = write(tmp_path / "jobs" / f"{unique}_bad.py", "import os\nx = 1 / 0\n")
    with pytest.raises(JobDefinitionError) as caught:
        discover([str(tmp_path / "jobs")])
    message = str(caught.value)
    assert str(bad) in message and "ZeroDivisionError" in message and "`jobs`" in message
    assert f"{bad}:2" in message
    assert f"{unique}_bad" not in sys.modules


def test_syntax_error_and_bad_decorator_are_reported(tmp_path, unique):
    write(tmp_path / "a" / f"{unique}_syntax.py", "def broken(:\n")
    with pytest.raises(JobDefinitionError, match="SyntaxError"):
        discover([str(tmp_path / "a")])
    write(tmp_path / "b" / f"{unique}_deco.py",
          "from harunner import job\n@job(timeout='forever')\ndef j(ctx):\n    pass\n")
    with pytest.raises(JobDefinitionError, match="'forever'"):
        discover([str(tmp_path / "b")])


def test_module_importing_a_missing_dependency_is_an_import_error(tmp_path, unique, monkeypatch):
    write(tmp_path / unique / "__init__.py", "import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(JobDefinitionError, match="no_such_dependency_xyz"):
        discover([unique])


def test_duplicate_names_across_entries_are_refused(tmp_path, unique):
    for folder in ("one", "two"):
        write(tmp_path / folder / f"{unique}_{folder}.py",
              f"from harunner import job\n@job(name='{unique}.same')\ndef j(ctx):\n    pass\n")
    with pytest.raises(JobDefinitionError, match="two jobs are named"):
        discover([str(tmp_path / "one"), str(tmp_path / "two")])


def test_module_name_clash_is_refused(tmp_path, unique):
    write(tmp_path / "one" / f"{unique}_same.py", "X = 1\n")
    write(tmp_path / "two" / f"{unique}_same.py", "X = 2\n")
    discover([str(tmp_path / "one")])
    with pytest.raises(JobDefinitionError, match="already loaded"):
        discover([str(tmp_path / "two")])


def test_find_suggests_close_names(tmp_path, unique):
    write(tmp_path / "jobs" / f"{unique}_img.py", JOB_FILE.format(func="resize",
                                                                  custom=f"{unique}.other"))
    entries = [str(tmp_path / "jobs")]
    with pytest.raises(UnknownJobError) as caught:
        find(entries, f"{unique}_img.resise")
    assert f"did you mean {unique}_img.resize" in str(caught.value)
    with pytest.raises(UnknownJobError, match="known jobs"):
        find(entries, "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzz")


def test_the_shipped_example_jobs_are_discovered():
    jobs = discover(["jobs"])
    assert {"examples.counter", "examples.flaky", "examples.slow",
            "files.digest_folder"} <= set(jobs)
    assert (jobs["examples.flaky"].retries, jobs["examples.flaky"].backoff) == (2, 0.1)
