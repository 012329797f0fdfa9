"""Durable acceptor and proposer state of one slot; the Paxos core's files.

Files, in the state directory's `paxos/` folder, each a `harunner.durable`
envelope (magic, version, kind, length, CRC-32) around a JSON payload:

    slot-<n>.acceptor     KIND_ACCEPTOR  votes, per-job floors, min_round, top_round
    slot-<n>.proposer     KIND_PROPOSER  the highest round used
    slot-<n>.initialized  KIND_META      written once, after both files exist

First start and the rule for a missing file:

- Call `initialize(folder, slot)` at every start, then `load_acceptor` and
  `load_proposer`. Without the marker, `initialize` creates whichever of the
  two files is absent (fresh, never overwriting one that exists), then writes
  the marker. A slot votes only after that, so a missing marker proves it
  never voted.
- With the marker present, nothing is ever created: a missing or corrupt
  file loads as an unusable state (`usable` False, `reason` says which file
  and why). The slot then votes on nothing (or proposes nothing) until an
  operator runs `repair` while that slot is stopped.

The acceptor and proposer files are two-copy files updated in place
(`harunner.pairfile`): a save is one write and one `fdatasync`, with no
rename and no directory fsync, because a promise sits on the critical path
of every takeover. They are read strictly: a damaged copy makes the state
unusable even if the other copy is good, because that copy may hold a promise
already sent, and falling back would silently take it back. A process crash
cannot tear a save (the page cache keeps a completed write), so a damaged
copy means damaged media or a lost host, and the slot waits for `repair`.
The marker is a
`durable.write_atomic` file. Every number is read with the bounds of
`harunner.paxos.schema`, the same the codec and the node keep, so no state a
peer's message can lead to is one this loader refuses. A failed flush raises
`DurabilityError` and the caller must stop.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harunner.errors import CorruptFileError, StoreError
from harunner.paxos import schema
from harunner.paxos.acceptor import AcceptorState, Vote, highest_round, repaired, unusable
from harunner.paxos.ballot import majority
from harunner.paxos.proposer import ProposerState
from harunner.paxos.schema import SchemaError
from harunner.store.durable import KIND_ACCEPTOR, KIND_META, KIND_PROPOSER, write_atomic
from harunner.store.layout import Layout
from harunner.store.pairfile import read_pair, write_pair

STATE_FORMAT = 1
MAX_VOTES = 10_000_000


def initialize(layout: Layout, slot: int) -> bool:
    """Create fresh files for a slot that never started; True if it did anything."""
    if layout.paxos_marker(slot).exists():
        return False
    layout.paxos.mkdir(parents=True, exist_ok=True)
    if not layout.acceptor_file(slot).exists():
        save_acceptor(layout.acceptor_file(slot), AcceptorState())
    if not layout.proposer_file(slot).exists():
        save_proposer(layout.proposer_file(slot), ProposerState())
    write_atomic(layout.paxos_marker(slot), KIND_META, json.dumps({"slot": slot}).encode())
    return True


def save_acceptor(path: Path, state: AcceptorState) -> None:
    """Write `state` durably; returns only once it is on disk."""
    if not state.usable:
        raise StoreError(f"{path}: refusing to save an unusable acceptor state ({state.reason})")
    votes = [[job, gen, schema.dump_ballot(v.promised), schema.dump_ballot(v.accepted),
              schema.dump_value(v.value)] for (job, gen), v in state.votes.items()]
    payload = {"format": STATE_FORMAT, "min_round": state.min_round,
               "top_round": state.top_round,
               "floors": [[job, floor] for job, floor in state.floors.items()], "votes": votes}
    write_pair(Path(path), KIND_ACCEPTOR, _dumps(payload))


def load_acceptor(path: Path) -> AcceptorState:
    """The state in `path`, or an unusable state saying why it could not be read."""
    try:
        return _acceptor(_load(Path(path), KIND_ACCEPTOR))
    except (FileNotFoundError, CorruptFileError, SchemaError) as error:
        return unusable(f"acceptor file {path}: {_why(error)}; this slot will not vote "
                        "until repaired (harunner.store.paxos_files.repair)")


def save_proposer(path: Path, state: ProposerState) -> None:
    """Write the proposer's highest round durably."""
    if not state.usable:
        raise StoreError(f"{path}: refusing to save an unusable proposer state ({state.reason})")
    write_pair(Path(path), KIND_PROPOSER, _dumps({"format": STATE_FORMAT, "round": state.round}))


def load_proposer(path: Path) -> ProposerState:
    """The proposer state in `path`, or an unusable one saying why."""
    try:
        body = schema.record(_load(Path(path), KIND_PROPOSER), {"format", "round"}, "proposer")
        _format(body)
        return ProposerState(round=schema.integer(body["round"], 0, schema.MAX_ROUND, "round"))
    except (FileNotFoundError, CorruptFileError, SchemaError) as error:
        return ProposerState(usable=False, reason=f"proposer file {path}: {_why(error)}; "
                             "this slot will not propose until repaired")


def repair(layout: Layout, slot: int, slots: tuple[int, ...]) -> list[str]:
    """Rebuild the missing or corrupt files of a STOPPED `slot` from the other slots' files.

    Needs the acceptor files of a majority of the other voting slots (and, to
    repair an acceptor, the proposer files of all slots: the proposer of
    `slot` is repaired first). Returns what it did; raises `StoreError` if
    the files do not allow it. Why this is safe: docs/paxos.md, "Repair".
    """
    done: list[str] = []
    others = [other for other in slots if other != slot]
    peers = [s for s in (load_acceptor(layout.acceptor_file(o)) for o in others) if s.usable]
    if len(peers) < majority(len(slots)):
        raise StoreError(f"cannot repair slot {slot}: only {len(peers)} readable peer acceptor "
                         f"files, a majority of {majority(len(slots))} is needed")
    if not load_proposer(layout.proposer_file(slot)).usable:
        top = highest_round([*peers, load_acceptor(layout.acceptor_file(slot))])
        save_proposer(layout.proposer_file(slot), ProposerState(round=top))
        done.append(f"proposer of slot {slot} restarted above round {top}")
    if not load_acceptor(layout.acceptor_file(slot)).usable:
        rounds = [load_proposer(layout.proposer_file(other)) for other in slots]
        if not all(state.usable for state in rounds):
            raise StoreError(f"cannot repair the acceptor of slot {slot}: a proposer file "
                             "is unreadable; repair that slot first")
        fresh = repaired(peers, [state.round for state in rounds])
        save_acceptor(layout.acceptor_file(slot), fresh)
        done.append(f"acceptor of slot {slot} rebuilt: {len(fresh.floors)} jobs closed, "
                    f"voting from round {fresh.min_round}")
    return done


def _dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _load(path: Path, kind: int) -> Any:
    data = read_pair(path, kind, strict=True)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise SchemaError("not-json", "payload is not JSON") from None


def _format(body: dict[str, Any]) -> None:
    if body["format"] != STATE_FORMAT or type(body["format"]) is not int:
        raise SchemaError("other-format", f"format {body['format']!r}, expected {STATE_FORMAT}")


def _acceptor(obj: Any) -> AcceptorState:
    fields = {"format", "min_round", "floors", "votes"}
    if type(obj) is dict and "top_round" in obj:  # absent in files of earlier versions
        fields.add("top_round")
    body = schema.record(obj, fields, "acceptor")
    _format(body)
    floors: dict[str, int] = {}
    for item in schema.array(body["floors"], None, "floors", MAX_VOTES):
        job_id, floor = schema.array(item, 2, "floor")
        job_id, _ = schema.key(job_id, 0)
        floors[job_id] = schema.integer(floor, 0, schema.MAX_FLOOR, "floor")
    votes: dict[tuple[str, int], Vote] = {}
    for item in schema.array(body["votes"], None, "votes", MAX_VOTES):
        job_id, generation, promised, accepted, value = schema.array(item, 5, "vote")
        votes[schema.key(job_id, generation)] = Vote(
            schema.ballot(promised), schema.ballot(accepted), schema.optional_value(value))
    min_round = schema.integer(body["min_round"], 0, schema.MAX_MIN_ROUND, "min_round")
    top_round = schema.integer(body.get("top_round", 0), 0, schema.MAX_ROUND, "top_round")
    return AcceptorState(votes=votes, floors=floors, min_round=min_round, top_round=top_round)


def _why(error: Exception) -> str:
    return "missing" if isinstance(error, FileNotFoundError) else str(error)
