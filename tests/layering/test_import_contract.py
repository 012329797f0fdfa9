"""The layering of docs/design.md, checked on the source: no upward import, no cycle.

Each folder of `harunner/` is a box of the layering and has a rank; a module
may import modules of a lower rank and of its own folder, nothing else. Two
boxes of one rank (store/ and net/) may not import each other. `paxos/` is
the pure core: it imports only itself and `harunner.errors`. The floor
(errors, config, failpoints, polling) imports only the floor. Every import
counts, also one inside a function or under `TYPE_CHECKING`.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "harunner"

RANKS = {
    "harunner.__main__": 10,
    "harunner.cli": 9,
    "harunner.testing": 8,  # the crash-test kit: runs jobs through the api and the store
    "harunner.supervisor": 8,
    "harunner.runner": 7,
    "harunner.executor": 6,
    "harunner": 5,  # the package face hands on the job API (job, Context) to job modules
    "harunner.api": 4,
    "harunner.store": 3,
    "harunner.net": 3,
    "harunner.paxos": 2,
    "harunner.config": 1,
    "harunner.errors": 0,
    "harunner.failpoints": 0,
    "harunner.polling": 0,
    "harunner.pidfds": 0,
    "harunner.metrics": 0,  # no-ops unless metrics are on; imports prometheus_client lazily
}
PURE = {"harunner.paxos": {"harunner.paxos", "harunner.errors"}}


def box(module: str) -> str:
    """The box of the layering that `module` belongs to (the longest known prefix)."""
    parts = module.split(".")
    for length in range(len(parts), 0, -1):
        prefix = ".".join(parts[:length])
        if prefix in RANKS:
            return prefix
    raise AssertionError(f"{module} belongs to no box of the layering; add it to RANKS")


def module_name(path: Path, root: Path) -> str:
    relative = path.relative_to(root.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool, known: set[str]) -> set[str]:
    """Every harunner module that `source` (module `module`) imports, anywhere in it.

    `from pkg import name` counts as an import of `pkg.name` where that is a
    module, else of `pkg` (the face that hands on `name`).
    """
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {name for name in found if name == "harunner" or name.startswith("harunner.")}


def violations(sources: dict[str, tuple[str, bool]], known: set[str]) -> list[str]:
    """Every import of `sources` (module -> (text, is package)) that breaks the layering."""
    problems = []
    for module, (text, is_package) in sorted(sources.items()):
        mine = box(module)
        for target in sorted(imports_of(text, module, is_package, known)):
            theirs = box(target)
            if theirs == mine:
                continue
            allowed = PURE.get(mine)
            if allowed is not None and theirs not in allowed:
                problems.append(f"{module} imports {target}: {mine} may import only "
                                f"{sorted(allowed)}")
            elif RANKS[theirs] >= RANKS[mine]:
                problems.append(f"{module} (box {mine}, rank {RANKS[mine]}) imports {target} "
                                f"(box {theirs}, rank {RANKS[theirs]}): not a lower box")
    return problems


def cycles(sources: dict[str, tuple[str, bool]], known: set[str]) -> list[list[str]]:
    """Import cycles between modules (module-level or not), each as a path."""
    graph = {m: sorted(t for t in imports_of(text, m, pkg, known) if t != m)
             for m, (text, pkg) in sources.items()}
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in graph.get(node, []):
            if state.get(target) == "open":
                found.append(path[path.index(target):] + [target] if target in path
                             else [node, target])
            elif target not in state:
                visit(target, path + [target])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def package_sources() -> dict[str, tuple[str, bool]]:
    return {module_name(path, PACKAGE): (path.read_text(), path.name == "__init__.py")
            for path in PACKAGE.rglob("*.py")}


def test_no_module_imports_a_higher_or_sibling_box() -> None:
    sources = package_sources()
    assert violations(sources, set(sources)) == []


def test_no_import_cycle_between_modules() -> None:
    sources = package_sources()
    assert cycles(sources, set(sources)) == []


def test_the_contract_catches_a_deliberate_upward_import() -> None:
    sources = package_sources()
    text, is_package = sources["harunner.store.jobs"]
    sources["harunner.store.jobs"] = (text + "\nfrom harunner.runner import runner\n", is_package)
    assert violations(sources, set(sources)) == [
        "harunner.store.jobs (box harunner.store, rank 3) imports harunner.runner.runner "
        "(box harunner.runner, rank 7): not a lower box"]


def test_the_contract_catches_a_sibling_import_and_an_impure_paxos() -> None:
    sources = package_sources()
    text, is_package = sources["harunner.net.bus"]
    sources["harunner.net.bus"] = (text + "\nfrom harunner.store import meta\n", is_package)
    text, is_package = sources["harunner.paxos.node"]
    sources["harunner.paxos.node"] = (text + "\nimport harunner.config\n", is_package)
    found = violations(sources, set(sources))
    assert any(p.startswith("harunner.net.bus (box harunner.net") for p in found)
    assert any(p.startswith("harunner.paxos.node imports harunner.config") for p in found)


def test_the_cycle_check_catches_a_loop() -> None:
    sources = package_sources()
    text, is_package = sources["harunner.api.job"]
    sources["harunner.api.job"] = (text + "\nfrom harunner.api import discovery\n", is_package)
    assert any("harunner.api.job" in cycle and "harunner.api.discovery" in cycle
               for cycle in cycles(sources, set(sources)))
