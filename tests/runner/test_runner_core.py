"""Unit tests of the pure ownership core: inputs in, actions out, no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

from harunner.config import Config, load
from harunner.net.bus import Beat, OwnerChange
from harunner.paxos import Value
from harunner.runner.actions import (
    Announce,
    BecomePrimary,
    Detected,
    Kill,
    LosePrimary,
    Paused,
    Propose,
    Read,
    Start,
    TakeOver,
)
from harunner.runner.ownership import OwnershipCore, Timing
from harunner.runner.slot import make_rng
from harunner.store.model import SCHEDULER_JOB, JobRecord, JobState, Owner

TIMING = Timing(suspect_after=0.1, hang=0.5, paxos=0.2)
ME = Owner(0, 1)
PEER = Owner(1, 1)
CORE = Path(__file__).resolve().parents[2] / "harunner" / "runner" / "ownership.py"


def record(job_id: str, owner: Owner, generation: int = 1,
           state: JobState = JobState.RUNNING) -> JobRecord:
    return JobRecord(job_id, "x.y", {}, state, generation=generation, owner=owner)


def beat(owner: Owner) -> Beat:
    return Beat(owner.slot, owner.incarnation, 100 + owner.slot, "standby", 1)


def core_with_peer(now: float = 0.0) -> OwnershipCore:
    core = OwnershipCore(ME, TIMING, now)
    core.heard(beat(PEER), now)
    return core


def kinds(actions: list) -> list[type]:
    return [type(a) for a in actions]


def test_the_core_imports_no_io() -> None:
    tree = ast.parse(CORE.read_text())
    names = {alias.name.split(".")[0] for node in ast.walk(tree)
             if isinstance(node, ast.Import | ast.ImportFrom)
             for alias in (node.names if isinstance(node, ast.Import) else [node])
             if isinstance(alias, ast.alias)}
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not names & {"zmq", "os", "time", "filelock", "multiprocessing", "select"}
    assert not {m for m in modules if m and (m.startswith("harunner.store.jobs")
                                            or m == "harunner.store")}


def test_a_record_naming_me_starts_a_worker_once() -> None:
    core = core_with_peer()
    assert kinds(core.observe([record("a", ME)], 0.01)) == [Start]
    assert core.observe([record("a", ME)], 0.02) == []


def test_a_newer_generation_for_another_owner_kills_my_worker() -> None:
    core = core_with_peer()
    core.observe([record("a", ME)], 0.01)
    assert core.observe([record("a", PEER, 2)], 0.02) == [Kill("a", 2)]


def test_an_older_record_is_ignored() -> None:
    core = core_with_peer()
    core.observe([record("a", PEER, 3)], 0.01)
    assert core.observe([record("a", ME, 2)], 0.02) == []
    assert core.records["a"].generation == 3


def test_a_decision_for_me_takes_over_before_it_starts() -> None:
    core = core_with_peer()
    core.observe([record("a", Owner(2, 1))], 0.01)
    assert core.decided({("a", 2): Value(0, 1)}, 0.02) == [TakeOver("a", 2)]
    raised = record("a", ME, 2)
    assert core.took_over(raised, 0.03) == [Announce(raised), Start(raised)]


def test_a_decision_below_the_known_generation_is_ignored() -> None:
    core = core_with_peer()
    core.observe([record("a", PEER, 3)], 0.01)
    assert core.decided({("a", 2): Value(0, 1)}, 0.02) == []


def test_a_hung_peer_is_detected_and_its_jobs_proposed_in_one_batch() -> None:
    core = core_with_peer()
    core.reconcile([record("a", PEER), record("b", PEER)], 0.01)
    actions = []
    now = 0.01
    while now < 0.7:
        now += 0.01
        actions += core.listened(now) + core.tick(now)
    assert Detected in kinds(actions)
    proposals = [a for a in actions if isinstance(a, Propose)]
    assert len(proposals) == 1 and set(proposals[0].values) == {("a", 2), ("b", 2)}


def test_my_own_pause_is_not_my_peers_silence() -> None:
    """A long gap between two inputs, wherever it falls: peers get a fresh hang timeout."""
    core = core_with_peer()
    core.reconcile([record("a", PEER)], 0.01)
    core.listened(0.01)
    first = core.tick(0.9)  # woke from a pause inside the wait: no beat delivered yet
    assert kinds(first) == [Paused]
    later = [a for t in range(91, 130) for a in core.listened(t / 100) + core.tick(t / 100)]
    assert later == []  # still within the fresh hang timeout: nobody judged


def test_time_spent_busy_and_deaf_to_the_bus_is_not_my_peers_silence() -> None:
    """Inputs keep coming (decisions, takeovers) but the bus is not drained: no verdict."""
    core = core_with_peer()
    core.reconcile([record("a", PEER)], 0.01)
    core.listened(0.01)
    busy = [a for t in range(2, 90) for a in core.tick(t / 100)]
    assert busy == []  # judged as of the last drain only
    assert kinds(core.listened(0.9)) == [Paused]  # beats queued meanwhile may still lag
    assert [a for t in range(91, 130) for a in core.listened(t / 100) + core.tick(t / 100)] == []


def test_a_peer_judged_hung_before_my_pause_is_revived_by_it() -> None:
    core = core_with_peer()
    core.reconcile([record("a", PEER)], 0.01)
    for t in range(2, 70):
        core.listened(t / 100)
        core.tick(t / 100)
    assert not core.detector.is_live(1, 1)
    core.tick(2.0)  # then this runner itself was paused
    assert core.detector.is_live(1, 1)


def test_a_peer_that_exited_stays_dead_after_my_pause() -> None:
    core = core_with_peer()
    core.exit_notice(1, 101, 0.01)
    core.tick(2.0)
    assert not core.detector.is_live(1, 1)
    assert core.heard(beat(PEER), 2.01) == []  # a late beat from before its exit


def test_the_scheduler_record_makes_me_primary_and_a_newer_one_demotes_me() -> None:
    core = core_with_peer()
    assert core.observe([record(SCHEDULER_JOB, ME)], 0.01) == [BecomePrimary(1)]
    change = OwnerChange(SCHEDULER_JOB, 2, PEER.slot, PEER.incarnation)
    assert LosePrimary(2) in core.owner_changed(change, 0.02)


def test_an_owner_change_naming_me_asks_for_the_record() -> None:
    core = core_with_peer()
    assert core.owner_changed(OwnerChange("a", 1, 0, 1), 0.01) == [Read("a")]


def test_per_job_state_is_dropped_when_the_job_is_no_longer_running() -> None:
    core = core_with_peer()
    jobs = [record(f"j{n}", Owner(2, 1)) for n in range(50)]
    core.reconcile(jobs, 0.01)
    core.tick(0.6)  # slot 2 never seen: unseen clocks for all fifty
    core.decided({(r.job_id, 2): Value(1, 1) for r in jobs}, 0.6)
    assert len(core.takeover.unseen_since) == 50 and len(core.takeover.decided) == 50
    done = [record(r.job_id, Owner(2, 1), 1, JobState.SUCCEEDED) for r in jobs]
    core.observe(done, 0.61)
    core.reconcile([], 0.62)
    takeover = core.takeover
    assert not (takeover.first_seen or takeover.unseen_since or takeover.decided
                or takeover.proposed or core.records or core.awaiting)


def test_the_seed_key_makes_the_runner_randomness_replayable(tmp_path: Path) -> None:
    path = tmp_path / "harunner.toml"
    path.write_text("seed = 7\n")
    assert Config().seed == 0
    assert load(str(path), env={}).seed == 7
    assert load(str(path), env={"HARUNNER_SEED": "42"}).seed == 42
    first = make_rng(42, 1, 3).random()
    assert first == make_rng(42, 1, 3).random()
    assert first != make_rng(42, 2, 3).random()
