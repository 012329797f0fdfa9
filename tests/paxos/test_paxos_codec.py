"""The Paxos codec: exact round trips, and every malformed frame rejected and counted."""

from __future__ import annotations

import json
import os
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harunner.paxos import (
    NO_BALLOT,
    Accept,
    Accepted,
    Ballot,
    CodecError,
    Nack,
    NackReason,
    Prepare,
    Promise,
    Rejects,
    Report,
    Value,
    decode,
    encode,
)
from harunner.paxos.codec import MAX_FRAME
from harunner.paxos.messages import BATCH_LIMIT
from harunner.paxos.schema import MAX_GENERATION, MAX_INCARNATION, MAX_ROUND, MAX_SLOT

CLUSTER = "cluster-1"
KEY = ("job", 3)
EXAMPLES = [
    Prepare(0, Ballot(1, 0), (KEY, ("other", 0))),
    Promise(1, Ballot(1, 0), (Report(KEY, NO_BALLOT, None), Report(("x", 2), Ballot(4, 2),
                                                                     Value(2, 9)))),
    Nack(2, Ballot(1, 0), (KEY,), Ballot(7, 1), NackReason.PROMISED),
    Nack(2, Ballot(1, 0), (KEY,), NO_BALLOT, NackReason.UNUSABLE),
    Accept(0, Ballot(5, 0), ((KEY, Value(0, 1)),)),
    Accepted(1, Ballot(5, 0), ((KEY, Value(0, 1)),
                               (("unicode-free_id-9", 2**53), Value(1023, 2**53)))),
]
FUZZ_FRAMES = int(os.environ.get("HARUNNER_FUZZ_FRAMES", "12000"))


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(message: object) -> None:
    assert decode(encode(message, CLUSTER), CLUSTER) == message  # type: ignore[arg-type]


def test_the_largest_batch_a_proposer_sends_fits_under_the_frame_limit() -> None:
    """A full batch with every field at its bound and the longest job ids still decodes."""
    reports = tuple(Report(("x" * 194 + f"{i:06d}", MAX_GENERATION), Ballot(MAX_ROUND, MAX_SLOT),
                           Value(MAX_SLOT, MAX_INCARNATION)) for i in range(BATCH_LIMIT))
    frame = encode(Promise(MAX_SLOT, Ballot(MAX_ROUND, MAX_SLOT), reports), "c" * 64)
    assert len(frame) < MAX_FRAME
    assert decode(frame, "c" * 64).reports == reports  # type: ignore[union-attr]


def frame(**changes: object) -> bytes:
    body = json.loads(encode(EXAMPLES[0], CLUSTER))
    body.update(changes)
    return json.dumps(body).encode()


MALFORMED = [
    (b"\xff\xfe", "not-json"),
    (b"[1, 2", "not-json"),
    (b"[]", "no-envelope"),
    (frame(cluster="cluster-2"), "other-cluster"),
    (frame(schema=2), "other-schema"),
    (frame(schema=True), "other-schema"),
    (frame(schema=1.0), "other-schema"),
    (frame(type="propose"), "unknown-type"),
    (frame(type=["prepare"]), "unknown-type"),
    (frame(extra=1), "wrong-fields"),
    (frame(sender=True), "wrong-type"),
    (frame(sender=1024), "out-of-range"),
    (frame(sender=-1), "out-of-range"),
    (frame(ballot=[1.5, 0]), "wrong-type"),
    (frame(ballot=[2**62 + 1, 0]), "out-of-range"),
    (frame(type="decided"), "unknown-type"),
    (frame(ballot=[1, 0, 0]), "wrong-shape"),
    (frame(keys=[["", 1]]), "out-of-range"),
    (frame(keys=[["a" * 201, 1]]), "out-of-range"),
    (frame(keys=[["a", 1], ["a", 1]]), "duplicate-key"),
    (frame(keys=[["a", 1]] * 10_001), "too-many"),
    (frame(keys={"a": 1}), "wrong-type"),
    (b'{"cluster": "cluster-1", "cluster": "cluster-1"}', "not-json"),
    (frame().replace(b'"sender": 0', b'"sender": NaN'), "not-json"),
    (frame().replace(b'"sender": 0', b'"sender": 1e999'), "wrong-type"),
    (frame().replace(b'"sender": 0', b'"sender": ' + b"9" * 5000), "not-json"),
    (b"[" * 100_000 + b"]" * 100_000, "too-deep"),
    (b" " * (MAX_FRAME + 1), "too-large"),
]


@pytest.mark.parametrize("data, reason", MALFORMED, ids=[reason for _, reason in MALFORMED])
def test_malformed_frames_are_rejected_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(CodecError) as caught:
        decode(data, CLUSTER)
    assert caught.value.reason == reason


def test_rejects_counts_instead_of_raising() -> None:
    rejects = Rejects()
    assert rejects.decode(frame(cluster="elsewhere"), CLUSTER) is None
    assert rejects.decode("not bytes", CLUSTER) is None  # type: ignore[arg-type]
    assert rejects.decode(encode(EXAMPLES[0], CLUSTER), CLUSTER) == EXAMPLES[0]
    assert rejects.counts == {"other-cluster": 1, "not-bytes": 1} and rejects.total == 2


def _mutate(rng: random.Random, data: bytes) -> bytes:
    """A valid frame with a few bytes flipped, cut, or spliced."""
    raw = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        if choice < 0.4 and raw:
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        elif choice < 0.6:
            del raw[rng.randrange(len(raw) + 1):]
        else:
            raw[rng.randrange(len(raw) + 1):0] = rng.choice(
                [b"[", b"]", b"{", b"}", b",", b"-1", b"null", b"true", b"1e308", b'"x"', b"0"])
    return bytes(raw)


def _random_json(rng: random.Random, depth: int = 0) -> object:
    pick = rng.randrange(8 if depth < 4 else 5)
    leaves = [None, True, rng.randint(-2**70, 2**70), rng.random(), "x" * rng.randrange(3)]
    if pick < 5:
        return leaves[pick]
    if pick == 5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["cluster", "schema", "type", "sender", "ballot", "keys", "reports", "reason"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(6))}


def _random_frame(rng: random.Random) -> bytes:
    kind = rng.randrange(3)
    if kind == 0:
        return rng.randbytes(rng.randrange(64))
    if kind == 1:
        return _mutate(rng, encode(rng.choice(EXAMPLES), CLUSTER))
    body = _random_json(rng)
    if isinstance(body, dict) and rng.random() < 0.5:
        body.update(cluster=CLUSTER, schema=1, type=rng.choice(
            ["prepare", "promise", "nack", "accept", "accepted"]),
            sender=rng.randrange(3))
    return json.dumps(body).encode()


def test_fuzzed_frames_never_escape_as_anything_but_a_rejection() -> None:
    seed = int(os.environ.get("HARUNNER_SEED", "20240601"))
    rng, rejects, accepted = random.Random(seed), Rejects(), 0
    for i in range(FUZZ_FRAMES):
        data = _random_frame(rng)
        try:
            message = rejects.decode(data, CLUSTER)
        except Exception as error:  # noqa: BLE001 - the point is that nothing escapes
            pytest.fail(f"seed {seed} frame {i} {data!r} raised {error!r}")
        if message is not None:
            accepted += 1
            assert decode(encode(message, CLUSTER), CLUSTER) == message
    assert rejects.total + accepted == FUZZ_FRAMES
    assert rejects.total > FUZZ_FRAMES // 2, f"seed {seed}: {rejects.counts}"


names = st.text(alphabet="abcXYZ019_-", min_size=1, max_size=20)  # job ids the store accepts
ints = st.integers(0, 2**53)
ballots = st.builds(Ballot, st.integers(0, 2**62), st.integers(0, 1023))
values = st.builds(Value, st.integers(0, 1023), ints)
keys = st.lists(st.tuples(names, ints), max_size=20, unique=True).map(tuple)


@given(st.integers(0, 1023), ballots, keys, st.one_of(st.none(), values))
def test_round_trip_of_arbitrary_messages(sender: int, ballot: Ballot, ks: tuple,
                                          value: Value | None) -> None:
    pairs = tuple((k, value or Value(0, 0)) for k in ks)
    for message in (Prepare(sender, ballot, ks), Accepted(sender, ballot, pairs),
                    Promise(sender, ballot, tuple(Report(k, ballot, value) for k in ks)),
                    Accept(sender, ballot, pairs)):
        assert decode(encode(message, CLUSTER), CLUSTER) == message


@pytest.mark.parametrize("job_id", ["../x", "a b", "é", "job/1", ""])
def test_a_job_id_the_store_could_never_hold_is_rejected(job_id):
    frame = encode(Prepare(0, Ballot(1, 0), (("ok", 1),)), "cluster-1").replace(
        b'"ok"', json.dumps(job_id).encode())
    with pytest.raises(CodecError):
        decode(frame, "cluster-1")
