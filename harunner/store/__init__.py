"""The store: every on-disk format of harunner and the state directory's layout.

`Store` (in `jobs`) keeps job records, checkpoints and progress; `model`
is the job lifecycle as plain data; `layout` says where every file lives;
`paxos_files` holds the slots' acceptor and proposer state; `meta` the
cluster id, incarnations and the slot and supervisor locks; `events` the
failover timeline. Everything below this folder writes files, nothing
here opens a socket.
"""

from harunner.store.jobs import CHECKPOINT_FAILPOINTS, FAILPOINTS, RECORD_FAILPOINTS, Store
from harunner.store.model import (
    SCHEDULER_JOB,
    TRANSITIONS,
    Checkpoint,
    JobRecord,
    JobState,
    Owner,
    Progress,
    advance,
    check_writer,
)

__all__ = ["CHECKPOINT_FAILPOINTS", "FAILPOINTS", "RECORD_FAILPOINTS", "SCHEDULER_JOB",
           "TRANSITIONS", "Checkpoint", "JobRecord", "JobState", "Owner", "Progress", "Store",
           "advance", "check_writer"]
