"""Several processes assign, take over, finish, cancel and retry the same jobs at once.

Each racer loops over random subsets of five jobs, reading their records and then calling
a batch method (or `cancel`/`retry`) with what it read, so most calls race on stale reads.
Every applied change is printed with the record it produced and the call's monotonic start
and end. The invariants:

- one owner per generation: no two RUNNING records of a job at the same generation name
  different owners;
- a generation is never lowered: a change whose call started after another change of the
  same job had returned has a generation at least as high, and the final record's is the
  highest seen.

Catches (seen failing): `UnfencedStore` in store_child.py, which computes each change from a
read outside the write transaction and writes it without the compare-and-set, and
`ClaimOutsideStore`, whose claim (`Store.settle` with a `Claim`, as the runners make it)
reads the due jobs before its transaction and writes them without the compare-and-set,
and `HeldUnfencedStore`, which writes a finish computed from the record its owner holds
(`Outcome.held`, as the runners send it; half the racers' finishes carry one, often stale)
without the compare-and-set.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harunner.store import Store, Submission

RACERS = 4
SECONDS = 3.0
JOBS = 5


def _race(children, root: Path, mutant: str, seconds: float = SECONDS  # noqa: ANN001
          ) -> tuple[list[tuple], Store, list[str]]:
    store = Store(root)
    jobs = [r.job_id for r in store.submit_many([Submission("jobs.demo", {})] * JOBS)]
    started = [children.start("race", root, seconds, 100 + n, mutant or "-", *jobs)
               for n in range(RACERS)]
    changes = []
    for child in started:
        out, err = child.communicate(timeout=seconds + 60)
        assert child.returncode == 0, err[-2000:]
        for line in out.splitlines():
            op, job, generation, slot, incarnation, state, start, end = line.split()
            changes.append((job, int(generation), (int(slot), int(incarnation)), state,
                            float(start), float(end), op))
    return changes, store, jobs


def _violations(changes: list[tuple], store: Store, jobs: list[str]) -> list[str]:
    problems = []
    owners: dict[tuple[str, int], set] = {}
    for job, generation, owner, state, *_ in changes:
        if state == "running":
            owners.setdefault((job, generation), set()).add(owner)
    problems += [f"job {job} generation {gen} had owners {sorted(found)}"
                 for (job, gen), found in owners.items() if len(found) > 1]
    by_end = sorted(changes, key=lambda change: change[5])
    for job, generation, _, _, start, _, op in changes:
        earlier = [c for c in by_end if c[0] == job and c[5] < start and c[1] > generation]
        if earlier:
            problems.append(f"{op} of {job} at generation {generation} after generation "
                            f"{earlier[-1][1]} had been written")
    for job in jobs:
        highest = max([c[1] for c in changes if c[0] == job], default=0)
        if store.get(job).generation < highest:
            problems.append(f"job {job} ended at generation {store.get(job).generation} "
                            f"below {highest}")
    return problems


ROUNDS = 6  # races of SECONDS each at most: a loaded machine races fewer changes in each


def _caught(children, root: Path, mutant: str) -> bool:  # noqa: ANN001
    """Whether races of a broken store show a violation, within ROUNDS races."""
    for round_ in range(ROUNDS):
        changes, store, jobs = _race(children, root / f"round-{round_}", mutant)
        if _violations(changes, store, jobs):
            return True
    return False


@pytest.mark.integration
def test_racing_processes_keep_one_owner_per_generation(children, tmp_path: Path) -> None:  # noqa: ANN001
    """Every race is checked; races go on until 100 changes of every kind were seen."""
    total, ops = 0, set()
    for round_ in range(ROUNDS):
        changes, store, jobs = _race(children, tmp_path / f"round-{round_}", "")
        assert _violations(changes, store, jobs) == []
        total += len(changes)
        ops |= {change[6] for change in changes}
        if total >= 100 and ops >= {"assign", "take", "finish", "claim"}:
            break
    assert total >= 100 and ops >= {"assign", "take", "finish", "claim"}, (total, ops)


@pytest.mark.integration
def test_a_store_without_compare_and_set_is_caught(children, tmp_path: Path) -> None:  # noqa: ANN001
    assert _caught(children, tmp_path, "unfenced"), "the unfenced store went unnoticed"


@pytest.mark.integration
def test_a_claim_read_outside_its_transaction_is_caught(children, tmp_path: Path) -> None:  # noqa: ANN001
    assert _caught(children, tmp_path, "claim_outside"), \
        "the claim outside its transaction went unnoticed"


@pytest.mark.integration
def test_a_finish_from_the_held_record_without_compare_and_set_is_caught(children,  # noqa: ANN001
                                                                         tmp_path: Path) -> None:
    assert _caught(children, tmp_path, "held_unfenced"), \
        "the finish from a held record without compare-and-set went unnoticed"
