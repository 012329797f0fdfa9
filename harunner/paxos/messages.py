"""The messages of the ownership Paxos, as frozen dataclasses.

Every message names its `sender` slot and carries many instances, so that a
thousand orphaned jobs are decided by a few messages rather than a thousand.
Replies carry the ballot they answer; a reply to an older ballot is ignored.

    Prepare  proposer -> acceptors   phase 1a: promise `ballot` for `keys`
    Promise  acceptor -> proposer    phase 1b: promised; here is what I accepted
    Nack     acceptor -> proposer    refused `keys` (why, and the promise that won)
    Accept   proposer -> acceptors   phase 2a: accept these values at `ballot`
    Accepted acceptor -> every slot  phase 2b: accepted these values at `ballot`

There is no "decided" message: a claim that an instance is decided is not
evidence. Every slot learns a decision from the evidence itself, Accepted
from a majority of the voting slots for one ballot and one value.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from harunner.paxos.ballot import Ballot, InstanceKey, Value
from harunner.paxos.schema import MAX_ITEMS

BATCH_LIMIT = MAX_ITEMS
"""Most instances one message carries; proposers split larger batches."""


class NackReason(str, Enum):
    """Why an acceptor refused."""

    PROMISED = "promised"  # it promised a higher ballot: retry higher, after a back-off
    CLOSED = "closed"      # the instance was compacted: it will never vote in it again
    UNUSABLE = "unusable"  # its state file is missing or corrupt: it votes on nothing


@dataclass(frozen=True)
class Report:
    """In a Promise: what the acceptor had accepted in one instance (`value` None if nothing)."""

    key: InstanceKey
    accepted: Ballot
    value: Value | None


@dataclass(frozen=True)
class Prepare:
    sender: int
    ballot: Ballot
    keys: tuple[InstanceKey, ...]


@dataclass(frozen=True)
class Promise:
    sender: int
    ballot: Ballot
    reports: tuple[Report, ...]


@dataclass(frozen=True)
class Nack:
    sender: int
    ballot: Ballot
    keys: tuple[InstanceKey, ...]
    promised: Ballot
    reason: NackReason


@dataclass(frozen=True)
class Accept:
    sender: int
    ballot: Ballot
    proposals: tuple[tuple[InstanceKey, Value], ...]


@dataclass(frozen=True)
class Accepted:
    sender: int
    ballot: Ballot
    proposals: tuple[tuple[InstanceKey, Value], ...]

    @property
    def keys(self) -> tuple[InstanceKey, ...]:
        return tuple(key for key, _ in self.proposals)


Message = Prepare | Promise | Nack | Accept | Accepted
MESSAGE_TYPES: tuple[type, ...] = (Prepare, Promise, Nack, Accept, Accepted)
