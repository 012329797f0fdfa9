"""Paxos messages to bytes and back: tagged, versioned JSON. Never pickle.

Frame (UTF-8 JSON object, at most `MAX_FRAME` bytes, checked before parsing):

    {"cluster": "<id>", "schema": 1, "type": "prepare", "sender": 0, ...fields}

    prepare  ballot [round, slot], keys [[job_id, generation], ...]
    promise  ballot, reports [[job_id, generation, [round, slot], [slot, inc] | null], ...]
    nack     ballot, keys, promised [round, slot], reason "promised"|"closed"|"unusable"
    accept   ballot, proposals [[job_id, generation, [slot, inc]], ...]
    accepted ballot, proposals

`decode` raises `FrameError` (`harunner.errors`; `CodecError` is the same
class, with a short `reason`) for anything else:
bytes that are not JSON, wrong types, unknown or missing fields, another
cluster, another schema, numbers out of range, repeated instances, frames
that are too large or too deeply nested. `Rejects` counts those by reason.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from harunner.errors import FrameError
from harunner.paxos import schema
from harunner.paxos.messages import (
    Accept,
    Accepted,
    Message,
    Nack,
    NackReason,
    Prepare,
    Promise,
    Report,
)
from harunner.paxos.schema import SchemaError

SCHEMA = 1
MAX_FRAME = schema.MAX_ITEMS * schema.MAX_ITEM_BYTES + 4096
"""Largest frame decoded (332 KiB): a full batch at every bound, plus the envelope. The
peer sockets' MAXMSGSIZE is this, so a larger frame never even reaches the process."""
ENVELOPE = {"cluster", "schema", "type", "sender"}


CodecError = FrameError
"""The name this module has always raised; the one frame-error type of both codecs."""


def encode(message: Message, cluster: str) -> bytes:
    """The frame of `message` for `cluster`."""
    name, body = _ENCODERS[type(message)](message)
    frame = {"cluster": cluster, "schema": SCHEMA, "type": name, "sender": message.sender, **body}
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False).encode()


def decode(data: bytes, cluster: str) -> Message:
    """The message in `data`; `CodecError` if it is malformed or not for `cluster`."""
    obj = _parse(data)
    try:
        return _message(obj, cluster)
    except SchemaError as error:
        raise FrameError(error.reason, str(error), "paxos frame") from None


class Rejects:
    """Counts rejected frames by reason; `decode` returns None instead of raising."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def decode(self, data: bytes, cluster: str) -> Message | None:
        """The message in `data`, or None (and one more count) if it was rejected."""
        try:
            return decode(data, cluster)
        except FrameError as error:
            self.counts[error.reason] += 1
            return None

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _parse(data: Any) -> Any:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise FrameError("not-bytes", type(data).__name__, what="paxos frame")
    if len(data) > MAX_FRAME:
        raise FrameError("too-large", f"{len(data)} bytes, limit {MAX_FRAME}", what="paxos frame")
    try:
        return json.loads(bytes(data).decode("utf-8"), parse_constant=_no_constant,
                          object_pairs_hook=_no_repeats)
    except RecursionError:
        raise FrameError("too-deep", what="paxos frame") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise FrameError("not-json", str(error)[:80], what="paxos frame") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("repeated field")
    return result


def _message(obj: Any, cluster: str) -> Message:
    if type(obj) is not dict or not ENVELOPE <= set(obj):
        raise SchemaError("no-envelope", "not an object with cluster, schema, type, sender")
    if obj["cluster"] != cluster:
        raise SchemaError("other-cluster", repr(obj["cluster"])[:80])
    if obj["schema"] != SCHEMA or type(obj["schema"]) is not int:
        raise SchemaError("other-schema", repr(obj["schema"])[:40])
    decoder = _DECODERS.get(obj["type"]) if type(obj["type"]) is str else None
    if decoder is None:
        raise SchemaError("unknown-type", repr(obj["type"])[:40])
    fields, build = decoder
    body = schema.record(obj, ENVELOPE | fields, obj["type"])
    return build(schema.slot(body["sender"], "sender"), body)


def _reports(obj: Any) -> tuple[Report, ...]:
    reports = []
    for item in schema.array(obj, None, "reports"):
        job_id, generation, accepted, value = schema.array(item, 4, "report")
        key = schema.key(job_id, generation)
        reports.append(Report(key, schema.ballot(accepted), schema.optional_value(value)))
    schema.unique(tuple(report.key for report in reports))
    return tuple(reports)


def _pairs(obj: Any, what: str) -> tuple[tuple[tuple[str, int], Any], ...]:
    pairs = []
    for item in schema.array(obj, None, what):
        job_id, generation, value = schema.array(item, 3, what)
        pairs.append((schema.key(job_id, generation), schema.value(value)))
    schema.unique(tuple(key for key, _ in pairs))
    return tuple(pairs)


def _reason(obj: Any) -> NackReason:
    try:
        return NackReason(obj)
    except ValueError:
        raise SchemaError("wrong-type", "unknown nack reason") from None


def _keys(keys: tuple[tuple[str, int], ...]) -> list[list[Any]]:
    return [[job_id, generation] for job_id, generation in keys]


def _dump_pairs(pairs: Any) -> list[list[Any]]:
    return [[job, gen, schema.dump_value(value)] for (job, gen), value in pairs]


_ENCODERS: dict[type, Callable[[Any], tuple[str, dict[str, Any]]]] = {
    Prepare: lambda m: ("prepare", {"ballot": schema.dump_ballot(m.ballot),
                                    "keys": _keys(m.keys)}),
    Promise: lambda m: ("promise", {"ballot": schema.dump_ballot(m.ballot), "reports": [
        [r.key[0], r.key[1], schema.dump_ballot(r.accepted), schema.dump_value(r.value)]
        for r in m.reports]}),
    Nack: lambda m: ("nack", {"ballot": schema.dump_ballot(m.ballot), "keys": _keys(m.keys),
                              "promised": schema.dump_ballot(m.promised),
                              "reason": m.reason.value}),
    Accept: lambda m: ("accept", {"ballot": schema.dump_ballot(m.ballot),
                                  "proposals": _dump_pairs(m.proposals)}),
    Accepted: lambda m: ("accepted", {"ballot": schema.dump_ballot(m.ballot),
                                      "proposals": _dump_pairs(m.proposals)}),
}

_DECODERS: dict[str, tuple[set[str], Callable[[int, dict[str, Any]], Message]]] = {
    "prepare": ({"ballot", "keys"}, lambda s, b: Prepare(
        s, schema.ballot(b["ballot"]), schema.keys(b["keys"]))),
    "promise": ({"ballot", "reports"}, lambda s, b: Promise(
        s, schema.ballot(b["ballot"]), _reports(b["reports"]))),
    "nack": ({"ballot", "keys", "promised", "reason"}, lambda s, b: Nack(
        s, schema.ballot(b["ballot"]), schema.keys(b["keys"]), schema.ballot(b["promised"]),
        _reason(b["reason"]))),
    "accept": ({"ballot", "proposals"}, lambda s, b: Accept(
        s, schema.ballot(b["ballot"]), _pairs(b["proposals"], "proposals"))),
    "accepted": ({"ballot", "proposals"}, lambda s, b: Accepted(
        s, schema.ballot(b["ballot"]), _pairs(b["proposals"], "proposals"))),
}
