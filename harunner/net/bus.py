"""Messages of the heartbeat bus and their codec (versioned JSON, never pickle).

The bus is soft state: a lost beat or notice only delays detection, never
breaks safety, because ownership is decided by Paxos and fenced by the store.
`decode` rejects anything malformed or foreign with `BusFrameError`, which the
caller counts and drops.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

SCHEMA = 1
MAX_BUS_FRAME = 1024 * 1024


@dataclass(frozen=True)
class Beat:
    """A runner is alive: sent every heartbeat from its main loop."""

    slot: int
    incarnation: int
    pid: int
    role: str
    seq: int
    owned: int = 0


@dataclass(frozen=True)
class ExitNotice:
    """The supervisor saw a runner process exit (from the OS, not a timeout)."""

    slot: int
    pid: int
    code: int


@dataclass(frozen=True)
class SupervisorBeat:
    pid: int
    seq: int


@dataclass(frozen=True)
class OwnerChange:
    """A job has a new owner at a new generation: an older owner must stop its copy."""

    job_id: str
    generation: int
    slot: int
    incarnation: int


@dataclass(frozen=True)
class Poke:
    """Something changed in the store (a submission, a finished attempt): look again."""

    reason: str


BusMessage = Beat | ExitNotice | SupervisorBeat | OwnerChange | Poke
TYPES: dict[str, type] = {cls.__name__: cls for cls in (Beat, ExitNotice, SupervisorBeat,
                                                        OwnerChange, Poke)}


class BusFrameError(ValueError):
    """A bus frame that does not parse, or belongs to another cluster or schema."""


def encode(message: BusMessage, cluster: str) -> bytes:
    body = asdict(message)
    body.update({"_v": SCHEMA, "_c": cluster, "_t": type(message).__name__})
    return json.dumps(body, separators=(",", ":")).encode()


def decode(frame: bytes, cluster: str) -> BusMessage:
    """The message in `frame`; BusFrameError for anything malformed or foreign."""
    if len(frame) > MAX_BUS_FRAME:
        raise BusFrameError("frame too large")
    try:
        body = json.loads(frame)
    except (ValueError, UnicodeDecodeError):
        raise BusFrameError("not JSON") from None
    if not isinstance(body, dict):
        raise BusFrameError("not an object")
    if body.pop("_v", None) != SCHEMA:
        raise BusFrameError("other schema version")
    if body.pop("_c", None) != cluster:
        raise BusFrameError("other cluster")
    cls = TYPES.get(body.pop("_t", None))  # type: ignore[arg-type]
    if cls is None:
        raise BusFrameError("unknown type")
    return _build(cls, body)


def _build(cls: type, body: dict[str, Any]) -> BusMessage:
    expected = {f.name: f for f in fields(cls)}
    required = {name for name, f in expected.items()
                if f.default is MISSING and f.default_factory is MISSING}
    if set(body) - set(expected) or required - set(body):
        raise BusFrameError(f"wrong fields for {cls.__name__}")
    values = {}
    for name, value in body.items():
        kind = str(expected[name].type)
        if kind == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
            raise BusFrameError(f"{cls.__name__}.{name} is not an integer")
        if kind == "str" and not isinstance(value, str):
            raise BusFrameError(f"{cls.__name__}.{name} is not a string")
        values[name] = value
    return cls(**values)  # type: ignore[no-any-return]
