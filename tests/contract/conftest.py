"""The contract suite's fixtures: every test runs once per backend (local, etcd).

`backend` says how to open a store on one test's state: the local `Store` in
`tmp_path`, or `EtcdStore` on the module's `etcd_node` (tests/etcd) with a
cluster name of its own, so tests share the etcd member but never a key.
`backend.open()` gives a second, independent store object on the same state;
`backend.argv()` hands the same to a child process (`contract_child.py`).

HARUNNER_CONTRACT_MUTANT=<name> opens a deliberately broken store instead
(`mutants.py`): the safety tests must then fail (docs/etcd.md lists which).
Without an etcd binary the etcd half is skipped with the fixtures' reason.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ETCD_TESTS = REPO / "tests" / "etcd"
for folder in (REPO, ETCD_TESTS, HERE):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from etcd_fixtures import etcd_binary, etcd_node  # noqa: E402, F401  (shared fixtures)
from mutants import MUTANT_ENV, open_backend  # noqa: E402

CHILD = HERE / "contract_child.py"


@dataclass
class Backend:
    """How to open stores on one test's state: `kind` "local" or "etcd"."""

    kind: str
    root: Path
    endpoints: list[str] = field(default_factory=list)
    cluster: str = ""
    opened: list[Any] = field(default_factory=list)

    def spec(self, **options: Any) -> dict[str, Any]:
        return {"kind": self.kind, "root": str(self.root), "endpoints": self.endpoints,
                "cluster": self.cluster, "mutant": os.environ.get(MUTANT_ENV, ""), **options}

    def open(self, **options: Any) -> Any:
        """A new store object on this state (`options`: max_value_bytes, max_txn_ops, ...)."""
        store = open_backend(self.spec(**options))
        store.init()
        self.opened.append(store)
        return store

    def argv(self, **options: Any) -> str:
        return json.dumps(self.spec(**options))

    def variant(self, name: str) -> Backend:
        """Another, empty state of the same kind (a folder or a cluster name of its own)."""
        chosen = Backend(self.kind, self.root.with_name(f"{self.root.name}-{name}"),
                         self.endpoints, f"{self.cluster}-{name}" if self.cluster else "")
        chosen.opened = self.opened
        return chosen


@pytest.fixture(params=["local", "etcd"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "etcd":
        node = request.getfixturevalue("etcd_node")
        chosen = Backend("etcd", tmp_path / "state", list(node.endpoints),
                         f"t{uuid.uuid4().hex[:12]}")
    else:
        chosen = Backend("local", tmp_path / "state")
    yield chosen
    for store in chosen.opened:
        store.close()


@pytest.fixture
def store(backend: Backend) -> Any:
    return backend.open()


class Children:
    """Child processes of `contract_child.py`; every one is killed and reaped by pid."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(self, *args: object, failpoints: str = "") -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": str(REPO), "HARUNNER_FAILPOINTS": failpoints}
        child = subprocess.Popen([sys.executable, str(CHILD), *map(str, args)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.started.append(child)
        return child

    def run(self, *args: object, failpoints: str = "", timeout: float = 120
            ) -> tuple[int, list[str], str]:
        """Run a child to its end: (exit status, stdout lines, stderr)."""
        child = self.start(*args, failpoints=failpoints)
        out, err = child.communicate(timeout=timeout)
        return child.returncode, out.splitlines(), err

    def read_line(self, child: subprocess.Popen[str], timeout: float) -> str:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], timeout)
        assert ready, f"child {child.pid} printed nothing within {timeout} s"
        return child.stdout.readline().strip()

    def close(self) -> None:
        for child in self.started:
            if child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
            child.communicate(timeout=10)


@pytest.fixture
def children() -> Iterator[Children]:
    started = Children()
    try:
        yield started
    finally:
        started.close()
