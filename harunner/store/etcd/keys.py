"""Where the etcd backend keeps each thing: the key layout under `/harunner/<cluster>/`, no I/O.

Every key of one cluster starts with its `Keys.root`; tests isolate themselves by
giving each store a fresh cluster name. The layout (docs/etcd.md, "Key layout"):

    jobs/<id>                            the job's record (JSON, `record_to_dict`)
    fence/<id>                           "<state>@<generation>", compared by a worker's write
    ckpt/<id>                            the newest checkpoint (JSON); its mod_revision is its seq
    progress/<id>                        the last progress (JSON)
    due/<not_before>/<created_at>/<id>   index: PENDING jobs, earliest first
    owned/<slot>/<incarnation>/<id>      index: RUNNING jobs by owner
    finished/<updated_at>/<id>           index: finished jobs, oldest first (prune)
    created/<created_at>/<id>            index: every job, oldest first (list_jobs)
    newest/<inverted created_at>/<id>    index: every job, newest first (list_jobs)
    head                                 written by every change of a record: the feed's head

An index key's value is the job's id. Invariants: a record's index keys are a
function of the record alone (`index_keys`), so a transition deletes the old
record's keys and puts the new one's in the same txn; numbers are fixed-width,
so byte order is number order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harunner.errors import ConfigError
from harunner.store.model import JobRecord, JobState, Owner

TIME_LIMIT = 9_999_999_999.0  # year 2286: wall times are clamped into [0, this]
CLUSTER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
INVERT = bytes(range(255, -1, -1))  # byte b -> 255 - b


def stamp(wall: float) -> str:
    """A wall time as 17 characters that sort as the number does (clamped to [0, TIME_LIMIT])."""
    return f"{min(max(wall, 0.0), TIME_LIMIT):017.6f}"


def inverted(wall: float) -> str:
    """A wall time as 17 characters that sort the other way round."""
    return stamp(TIME_LIMIT - min(max(wall, 0.0), TIME_LIMIT))


def fence_value(state: JobState, generation: int) -> bytes:
    """What `fence/<id>` holds for a record in `state` at `generation`."""
    return f"{state.value}@{generation}".encode()


def end_of(prefix: bytes) -> bytes:
    """The range end that selects every key starting with `prefix`."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


@dataclass(frozen=True)
class Keys:
    """The keys of one cluster; `cluster` must be a plain name (letters, digits, `_.-`)."""

    cluster: str

    def __post_init__(self) -> None:
        if not CLUSTER_NAME.fullmatch(self.cluster):
            raise ConfigError(f"etcd cluster name {self.cluster!r}: use 1-64 letters, digits, "
                              "'_', '.' or '-'")

    @property
    def root(self) -> bytes:
        return f"/harunner/{self.cluster}/".encode()

    def _key(self, *parts: str) -> bytes:
        return self.root + "/".join(parts).encode()

    def prefix(self, kind: str) -> bytes:
        """The prefix of every key of `kind` (`jobs`, `due`, `owned`, ...)."""
        return self._key(kind, "")

    def job(self, job_id: str) -> bytes:
        return self._key("jobs", job_id)

    def fence(self, job_id: str) -> bytes:
        return self._key("fence", job_id)

    def checkpoint(self, job_id: str) -> bytes:
        return self._key("ckpt", job_id)

    def progress(self, job_id: str) -> bytes:
        return self._key("progress", job_id)

    @property
    def head(self) -> bytes:
        return self._key("head")

    def owned(self, owner: Owner) -> bytes:
        """The prefix of the RUNNING jobs of `owner`."""
        return self._key("owned", str(owner.slot), str(owner.incarnation), "")

    def due_until(self, wall: float) -> bytes:
        """The range end of the due index that keeps every job with `not_before <= wall`."""
        return end_of(self._key("due", stamp(wall), ""))

    def finished_until(self, wall: float) -> bytes:
        """The range end of the finished index: jobs last updated before `wall`."""
        return self._key("finished", stamp(wall), "")

    def created_of(self, record: JobRecord) -> bytes:
        return self._key("created", stamp(record.created_at), record.job_id)

    def newest_of(self, record: JobRecord) -> bytes:
        """Newest first: inverted time, then the id's bytes inverted and closed by 0xff (so a
        tie of one batch sorts by id descending, as the local store's listing does)."""
        return (self._key("newest", inverted(record.created_at), "")
                + record.job_id.encode().translate(INVERT) + b"\xff")

    def state_key(self, record: JobRecord) -> bytes:
        """The record's key in the index of its state (due, owned or finished)."""
        state, job_id = record.state, record.job_id
        if state is JobState.PENDING:
            return self._key("due", stamp(record.not_before), stamp(record.created_at), job_id)
        if state is JobState.RUNNING:
            owner = record.owner or Owner(-1, -1)
            return self._key("owned", str(owner.slot), str(owner.incarnation), job_id)
        return self._key("finished", stamp(record.updated_at), job_id)

    def index_keys(self, record: JobRecord) -> set[bytes]:
        """Every index key of `record` (its state's, and the two creation-order ones)."""
        return {self.created_of(record), self.newest_of(record), self.state_key(record)}

    def per_job(self, job_id: str) -> list[bytes]:
        """The keys that exist once per job besides the indexes (deleted by prune)."""
        return [self.job(job_id), self.fence(job_id), self.checkpoint(job_id),
                self.progress(job_id)]
