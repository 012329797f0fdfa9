"""Pure pieces of the cluster: bus codec, failure detector, takeover bookkeeping, scheduler."""

from __future__ import annotations

import pytest

from harunner.net import bus
from harunner.paxos import Value
from harunner.runner.detector import Died, FailureDetector, Joined, Liveness
from harunner.runner.takeover import Takeover
from harunner.store import SCHEDULER_JOB, JobRecord, JobState, Owner


def beat(slot: int, incarnation: int = 1, pid: int = 100, owned: int = 0) -> bus.Beat:
    return bus.Beat(slot, incarnation, pid + slot, "standby", 1, owned)


@pytest.mark.parametrize("message", [
    bus.Beat(1, 2, 3, "primary", 4, 5), bus.ExitNotice(0, 99, -9), bus.SupervisorBeat(7, 8),
    bus.OwnerChange("job-1", 3, 2, 1), bus.Poke("submitted")])
def test_bus_messages_round_trip(message):
    assert bus.decode(bus.encode(message, "c1"), "c1") == message


@pytest.mark.parametrize("frame", [
    b"", b"\xff\xfe", b"[]", b'{"_v":1,"_c":"c1"}', b'{"_v":2,"_c":"c1","_t":"Poke","reason":"x"}',
    b'{"_v":1,"_c":"other","_t":"Poke","reason":"x"}',
    b'{"_v":1,"_c":"c1","_t":"Beat","slot":"0","incarnation":1,"pid":1,"role":"x","seq":1}',
    b'{"_v":1,"_c":"c1","_t":"Beat","slot":true,"incarnation":1,"pid":1,"role":"x","seq":1}',
    b'{"_v":1,"_c":"c1","_t":"Poke","reason":"x","extra":1}',
    b'{"_v":1,"_c":"c1","_t":"Nope"}', b"x" * (bus.MAX_BUS_FRAME + 1)])
def test_malformed_or_foreign_bus_frames_are_rejected(frame):
    with pytest.raises(bus.BusFrameError):
        bus.decode(frame, "c1")


def test_detector_exit_notice_kills_at_once_and_only_the_matching_pid():
    detector = FailureDetector(suspect_after=0.1, hang_timeout=0.5)
    assert detector.beat(beat(1), 0.0) == [Joined(1, 1)]
    assert detector.exit_notice(1, pid=12345) == []
    assert detector.exit_notice(1, pid=101) == [Died(1, 1, "exited")]
    assert not detector.is_live(1, 1)
    assert detector.exit_notice(1, pid=101) == []


def test_detector_suspects_then_declares_hung_on_the_monotonic_timeline():
    detector = FailureDetector(suspect_after=0.1, hang_timeout=0.5)
    detector.beat(beat(2), 10.0)
    assert detector.tick(10.05) == []
    assert detector.tick(10.2) == [] and detector.peers[2].liveness is Liveness.SUSPECTED
    assert detector.tick(10.51)[0].slot == 2
    assert detector.peers[2].liveness is Liveness.DEAD
    assert detector.beat(beat(2), 11.0) == [Joined(2, 1)]  # a paused runner is revived


def test_detector_new_incarnation_buries_the_old_one():
    detector = FailureDetector(0.1, 0.5)
    detector.beat(beat(0, 1), 0.0)
    events = detector.beat(beat(0, 2), 0.01)
    assert Died(0, 1, "restarted") in events and Joined(0, 2) in events
    assert detector.beat(beat(0, 1), 0.02) == []  # a late beat of the old one is ignored
    assert detector.is_live(0, 2)


def test_detector_forgives_silence_caused_by_its_own_pause():
    detector = FailureDetector(0.1, 0.5)
    detector.beat(beat(1), 0.0)
    detector.forgive(5.0)
    assert detector.tick(5.1) == []


def running(job_id: str, owner: Owner, generation: int = 1) -> JobRecord:
    return JobRecord(job_id, "x.y", {}, JobState.RUNNING, generation=generation, owner=owner)


def test_orphans_of_a_dead_owner_go_to_live_runners_and_the_scheduler_to_the_proposer():
    detector = FailureDetector(0.1, 0.5)
    detector.beat(beat(1), 0.0)
    detector.beat(beat(2), 0.0)
    detector.exit_notice(2, 102)
    takeover = Takeover(Owner(0, 1), backoff=0.2, grace=0.5, started=0.0)
    records = [running("a", Owner(2, 1)), running("b", Owner(2, 1), 4),
               running(SCHEDULER_JOB, Owner(2, 1)), running("mine", Owner(0, 1)),
               running("live", Owner(1, 1))]
    values = takeover.proposals(records, detector, 0.01)
    assert set(values) == {("a", 2), ("b", 5), (SCHEDULER_JOB, 2)}
    assert values[(SCHEDULER_JOB, 2)] == Value(0, 1)
    assert {values[("a", 2)], values[("b", 5)]} <= {Value(0, 1), Value(1, 1)}
    assert takeover.proposals(records, detector, 0.02) == {}, "no duplicate proposal"


def test_a_non_preferred_proposer_waits_its_backoff():
    detector = FailureDetector(0.1, 0.5)
    detector.beat(beat(0), 0.0)
    detector.beat(beat(2), 0.0)
    detector.exit_notice(2, 102)
    takeover = Takeover(Owner(1, 1), backoff=0.2, grace=0.5, started=0.0)
    records = [running("a", Owner(2, 1))]
    assert takeover.proposals(records, detector, 0.01) == {}
    assert takeover.proposals(records, detector, 0.25) == {("a", 2): Value(0, 1)}


def test_a_decided_owner_that_died_before_taking_over_gets_a_higher_generation():
    detector = FailureDetector(0.1, 0.5)
    detector.beat(beat(1), 0.0)
    detector.exit_notice(1, 101)
    takeover = Takeover(Owner(0, 1), backoff=0.2, grace=0.5, started=0.0)
    detector.beat(beat(2), 0.0)
    takeover.learned(("a", 2), Value(2, 1), 0.0)
    records = [running("a", Owner(1, 1), 1)]
    assert takeover.proposals(records, detector, 0.01) == {}, "its owner is taking over"
    assert set(takeover.proposals(records, detector, 0.6)) == {("a", 3)}, "grace over"
    takeover.learned(("a", 3), Value(2, 1), 0.7)
    detector.exit_notice(2, 102)
    assert set(takeover.proposals(records, detector, 0.71)) == {("a", 4)}, "its owner died"


def test_an_owner_never_seen_is_an_orphan_only_after_the_grace_period():
    detector = FailureDetector(0.1, 0.5)
    takeover = Takeover(Owner(0, 2), backoff=0.2, grace=0.5, started=0.0)
    records = [running("a", Owner(1, 1)), running("b", Owner(0, 1))]
    assert set(takeover.proposals(records, detector, 0.1)) == {("b", 2)}
    assert set(takeover.proposals(records, detector, 0.7)) == {("a", 2)}
