"""Messages of the heartbeat bus and their codec (versioned JSON, never pickle).

The bus is soft state: a lost beat or notice only delays detection, never
breaks safety, because ownership is decided by Paxos and fenced by the store.
`decode` rejects anything malformed or foreign with `harunner.errors.FrameError`
(`BusFrameError` is the same class), which the caller counts and drops. It is
cheap on garbage: the size is checked before any parsing, and every number
must be an int within the bounds of `harunner.paxos.schema` (`FIELD_BOUNDS`),
so no field of a decoded message can make its reader fail later.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, fields
from typing import Any

from harunner.errors import FrameError
from harunner.paxos import schema

SCHEMA = 1
MAX_BUS_FRAME = 4096
"""Largest bus frame decoded; a beat is ~150 bytes, an OwnerChange with the longest
job id ~350. The bus sockets' MAXMSGSIZE is this too."""
MAX_TEXT = 200
PID_MAX = 2**22  # the kernel's highest pid_max


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
    """A hint that the store changed: look at the change feed and for work now.

    Clients ring the store's doorbell instead (`harunner.store.wakeup`); a runner
    still honours this on the bus."""

    reason: str


BusMessage = Beat | ExitNotice | SupervisorBeat | OwnerChange | Poke
TYPES: dict[str, type] = {cls.__name__: cls for cls in (Beat, ExitNotice, SupervisorBeat,
                                                        OwnerChange, Poke)}


BusFrameError = FrameError
"""The older name of the bus's frame error; callers should catch `FrameError`."""

FIELD_BOUNDS: dict[str, tuple[int, int]] = {
    "slot": (0, schema.MAX_SLOT),
    "incarnation": (0, schema.MAX_INCARNATION),
    "pid": (1, PID_MAX),
    "seq": (0, 2**63 - 1),
    "owned": (0, 2**31),
    "code": (-255, 255),
    "generation": (0, schema.MAX_GENERATION),
}


def encode(message: BusMessage, cluster: str) -> bytes:
    """The frame: JSON that starts with its type (`topics` filters on that prefix)."""
    body: dict[str, object] = {"_t": type(message).__name__}
    body.update((name, getattr(message, name)) for name in SHAPES[type(message)][0])
    body.update({"_v": SCHEMA, "_c": cluster})
    return json.dumps(body, separators=(",", ":")).encode()


def topics(*types: type) -> list[bytes]:
    """The frame prefixes of `types`, for a subscriber that wants only those: the
    publisher then sends it nothing else (ZeroMQ filters at the sending end), so a
    runner is not woken by the supervisor's beats, which only `harunner status` reads."""
    return [b'{"_t":"' + cls.__name__.encode() + b'"' for cls in types]


def decode(frame: bytes, cluster: str) -> BusMessage:
    """The message in `frame`; FrameError for anything malformed or foreign."""
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise _error("not-bytes", type(frame).__name__)
    if len(frame) > MAX_BUS_FRAME:
        raise _error("too-large", f"{len(frame)} bytes, limit {MAX_BUS_FRAME}")
    try:
        body = _JSON.decode(bytes(frame).decode("utf-8"))
    except RecursionError:
        raise _error("too-deep") from None
    except (ValueError, UnicodeDecodeError):
        raise _error("not-json") from None
    if not isinstance(body, dict):
        raise _error("no-envelope", "not an object")
    if body.pop("_v", None) != SCHEMA:
        raise _error("other-schema")
    if body.pop("_c", None) != cluster:
        raise _error("other-cluster")
    kind = body.pop("_t", None)
    cls = TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise _error("unknown-type")
    return _build(cls, body)


def _error(reason: str, detail: str = "") -> FrameError:
    return FrameError(reason, detail, "bus frame")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


_JSON = json.JSONDecoder(parse_constant=_no_constant)


def _shape(cls: type) -> tuple[frozenset[str], frozenset[str], dict[str, str]]:
    """(field names, required names, kind of each field) of a message class."""
    kinds = {f.name: str(f.type) for f in fields(cls)}
    required = {f.name for f in fields(cls)
                if f.default is MISSING and f.default_factory is MISSING}
    return frozenset(kinds), frozenset(required), kinds


SHAPES = {cls: _shape(cls) for cls in TYPES.values()}


def _build(cls: type, body: dict[str, Any]) -> BusMessage:
    names, required, kinds = SHAPES[cls]
    if not names.issuperset(body) or not required.issubset(body):
        raise _error("wrong-fields", cls.__name__)
    for name, value in body.items():
        if kinds[name] == "int":
            low, high = FIELD_BOUNDS[name]
            if type(value) is not int:
                raise _error("wrong-type", f"{cls.__name__}.{name} is not an integer")
            if not low <= value <= high:
                raise _error("out-of-range", f"{cls.__name__}.{name}={value}")
        elif not (type(value) is str and 0 < len(value) <= MAX_TEXT):
            raise _error("wrong-type", f"{cls.__name__}.{name} is not a short string")
        elif name == "job_id" and schema.JOB_ID.fullmatch(value) is None:
            raise _error("bad-job-id", "a job id has only letters, digits, - and _")
    return cls(**body)  # type: ignore[no-any-return]
