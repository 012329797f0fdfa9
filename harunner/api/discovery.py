"""Job discovery: import the modules named by the config key `jobs` and collect their jobs.

An entry of `jobs` is either
- a folder (an existing directory, e.g. "jobs"): the folder is put first on
  `sys.path` and each `*.py` file directly in it is imported as a top-level
  module named after the file, so `jobs/images.py`'s `resize` is "images.resize".
  Files whose name starts with "_" or is not a Python identifier are skipped
  (helpers); sub-folders are not searched.
- a dotted module path (e.g. "myapp.tasks"), imported with the working
  directory on `sys.path` (appended, like Celery): its jobs are
  "myapp.tasks.resize", and those of its submodules that it imports are found too.

Invariants: every error (missing folder or module, an exception while a job
module is imported, a module name clash, two jobs with one name) is a
`JobDefinitionError` naming the entry, the file and the config key `jobs`;
a job module is executed at most once per process (a module that is already
loaded from the same file is reused, e.g. one preloaded by the forkserver).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from harunner.api import JobSpec, forget, registered
from harunner.errors import JobDefinitionError, UnknownJobError


def discover(entries: Sequence[str]) -> dict[str, JobSpec]:
    """Every job of the `jobs` entries, by name; `JobDefinitionError` on any problem."""
    found: dict[str, JobSpec] = {}
    for entry in entries:
        for spec in _jobs_of_entry(entry):
            other = found.get(spec.name)
            if other is not None and other is not spec:
                raise JobDefinitionError(
                    f"two jobs are named {spec.name!r}: {_where(other)} and {_where(spec)} "
                    "(config key `jobs`); give one of them another name=")
            found[spec.name] = spec
    return found


def find(entries: Sequence[str], name: str) -> JobSpec:
    """The job called `name`; `UnknownJobError` listing close or known names otherwise."""
    jobs = discover(entries)
    if name in jobs:
        return jobs[name]
    close = difflib.get_close_matches(name, list(jobs), n=3, cutoff=0.5)
    if close:
        hint = f"did you mean {', '.join(close)}?"
    elif jobs:
        hint = f"known jobs: {', '.join(sorted(jobs)[:20])}"
    else:
        hint = "no jobs are defined there"
    raise UnknownJobError(f"no job named {name!r} in config `jobs` = {list(entries)}; {hint}")


def on_path(entries: Sequence[str]) -> None:
    """Put the entries' folders on `sys.path` as `discover` does, importing nothing
    (a worker that remembers what it found still gives each job the same `sys.path`)."""
    for entry in entries:
        folder = Path(entry).expanduser()
        if folder.is_dir():
            if str(folder.resolve()) not in sys.path:
                sys.path.insert(0, str(folder.resolve()))
        elif os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.append(os.getcwd())


def module_names(entries: Sequence[str]) -> list[str]:
    """The module names the entries would import, without importing anything."""
    names: list[str] = []
    for entry in entries:
        folder = Path(entry).expanduser()
        if folder.is_dir():
            names.extend(path.stem for path in _job_files(folder))
        else:
            names.append(entry)
    return names


def _where(spec: JobSpec) -> str:
    return f"{spec.module}.{spec.function.__qualname__}"


def _jobs_of_entry(entry: str) -> list[JobSpec]:
    folder = Path(entry).expanduser()
    if folder.is_dir():
        return _jobs_of_folder(folder.resolve(), entry)
    if entry.replace(".", "").replace("_", "").isalnum() and not entry.startswith("."):
        return _jobs_of_module(entry)
    raise JobDefinitionError(f"config `jobs` entry {entry!r}: no such folder (looked in "
                             f"{folder.resolve()}) and not a module path like 'myapp.tasks'")


def _job_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.glob("*.py")
                  if path.stem.isidentifier() and not path.stem.startswith("_"))


def _jobs_of_folder(folder: Path, entry: str) -> list[JobSpec]:
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    specs: list[JobSpec] = []
    for path in _job_files(folder):
        module = _import_file(path, entry)
        specs.extend(registered(module.__name__).values())
    return specs


def _import_file(path: Path, entry: str) -> ModuleType:
    name = path.stem
    existing = sys.modules.get(name)
    if existing is not None:
        loaded_from = getattr(existing, "__file__", None)
        if loaded_from and Path(loaded_from).resolve() == path:
            return existing
        raise JobDefinitionError(
            f"config `jobs` entry {entry!r}: {path} would be module {name!r}, but another "
            f"module {name!r} ({loaded_from or 'built in'}) is already loaded; rename the file")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise JobDefinitionError(f"config `jobs` entry {entry!r}: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    forget(name)
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:
        sys.modules.pop(name, None)
        forget(name)
        raise _import_error(entry, str(path), error) from error
    return module


def _jobs_of_module(entry: str) -> list[JobSpec]:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    try:
        importlib.import_module(entry)
    except ModuleNotFoundError as error:
        if error.name and (entry == error.name or entry.startswith(error.name + ".")):
            raise JobDefinitionError(
                f"config `jobs` entry {entry!r}: no folder and no module of that name "
                f"(module {error.name!r} not found from {cwd}); fix the entry or sys.path"
            ) from error
        raise _import_error(entry, entry, error) from error
    except (Exception, SystemExit) as error:
        raise _import_error(entry, entry, error) from error
    specs: list[JobSpec] = []
    for name in sorted(sys.modules):
        if name == entry or name.startswith(entry + "."):
            specs.extend(registered(name).values())
    return specs


def _import_error(entry: str, what: str, error: BaseException) -> JobDefinitionError:
    frames = traceback.extract_tb(error.__traceback__)
    user = [frame for frame in frames if "importlib" not in frame.filename]
    at = f" at {user[-1].filename}:{user[-1].lineno}" if user else ""
    return JobDefinitionError(
        f"config `jobs` entry {entry!r}: importing {what} failed with "
        f"{type(error).__name__}: {error}{at}")
