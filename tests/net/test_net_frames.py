"""The two wire codecs: one frame-error type, bounded numbers, and the size checked first."""

from __future__ import annotations

import json

import pytest

from harunner.errors import FrameError, HarunnerError
from harunner.net import bus
from harunner.paxos import codec

CLUSTER = "c1"


def beat_frame(**changes: object) -> bytes:
    body = json.loads(bus.encode(bus.Beat(1, 2, 300, "standby", 4, 0), CLUSTER))
    body.update(changes)
    return json.dumps(body).encode()


def test_both_codecs_raise_the_one_frame_error_under_their_old_names_too() -> None:
    assert bus.BusFrameError is FrameError and codec.CodecError is FrameError
    assert issubclass(FrameError, HarunnerError) and issubclass(FrameError, ValueError)
    for decode in (bus.decode, codec.decode):
        with pytest.raises(FrameError) as caught:
            decode(b"\xff", CLUSTER)
        assert caught.value.reason == "not-json"


@pytest.mark.parametrize("frame, reason", [
    (beat_frame(slot=1024), "out-of-range"),
    (beat_frame(slot=-1), "out-of-range"),
    (beat_frame(pid=0), "out-of-range"),
    (beat_frame(pid=2**22 + 1), "out-of-range"),
    (beat_frame(incarnation=2**53 + 1), "out-of-range"),
    (beat_frame(seq=2**63), "out-of-range"),
    (beat_frame(slot=True), "wrong-type"),
    (beat_frame(slot=1.0), "wrong-type"),
    (beat_frame(role=""), "wrong-type"),
    (beat_frame(role="x" * 201), "wrong-type"),
    (beat_frame(_t=["Beat"]), "unknown-type"),
    (beat_frame(_c="c2"), "other-cluster"),
    (beat_frame(_v=2), "other-schema"),
    (beat_frame(extra=1), "wrong-fields"),
    (bus.encode(bus.OwnerChange("../etc", 1, 0, 1), CLUSTER), "bad-job-id"),
    (bus.encode(bus.OwnerChange("job", -1, 0, 1), CLUSTER), "out-of-range"),
    (bus.encode(bus.ExitNotice(0, 10, 9999), CLUSTER), "out-of-range"),
    (beat_frame().replace(b'"seq": 4', b'"seq": NaN'), "not-json"),
    (b"[" * 4000, "too-deep"),
    (b"[]", "no-envelope"),
    ("text", "not-bytes"),
])
def test_bus_frames_with_absurd_values_are_rejected_with_a_reason(frame: bytes,
                                                                  reason: str) -> None:
    with pytest.raises(FrameError) as caught:
        bus.decode(frame, CLUSTER)
    assert caught.value.reason == reason


def test_every_bus_message_at_its_bounds_round_trips_under_the_frame_limit() -> None:
    messages = [bus.Beat(1023, 2**53, 2**22, "standby", 2**63 - 1, 2**31),
                bus.OwnerChange("j" * 200, 2**53, 1023, 2**53), bus.Poke("p" * 200),
                bus.ExitNotice(1023, 2**22, -255), bus.SupervisorBeat(2**22, 2**63 - 1)]
    for message in messages:
        frame = bus.encode(message, "c" * 64)
        assert len(frame) < bus.MAX_BUS_FRAME
        assert bus.decode(frame, "c" * 64) == message


class Trap:
    def decode(self, text: str) -> object:
        raise AssertionError("an oversized frame was parsed")


def test_an_oversized_frame_is_refused_before_any_parsing(monkeypatch) -> None:
    monkeypatch.setattr(bus, "_JSON", Trap())
    with pytest.raises(FrameError, match="too-large"):
        bus.decode(b" " * (bus.MAX_BUS_FRAME + 1), CLUSTER)
    monkeypatch.setattr(codec.json, "loads", Trap().decode)
    with pytest.raises(FrameError, match="too-large"):
        codec.decode(b" " * (codec.MAX_FRAME + 1), CLUSTER)
