"""The store: every on-disk format of harunner and the state directory's layout.

`JobStore` (in `contract`) is what the cluster needs from a store, `open_store`
(in `backends`) picks the backend a config names: `Store` (in `jobs`, one host)
or `EtcdStore` (in `etcd`, several hosts). `Store` keeps job records (in a
SQLite database, `db`, `table`, `rows`), checkpoints and progress (file-locked
job folders, `job_files`); `model` and `transitions` are the job lifecycle as
plain data; `legacy` imports 0.1.0's record files once; `locks` are the jobs'
file locks; `layout` says where every file lives; `paxos_files` holds the
slots' acceptor and proposer state; `meta` the cluster id, incarnations and the
slot and supervisor locks; `events` the failover timeline; `wakeup` the
datagrams that ring the change feed's doorbell.
Nothing here speaks ZeroMQ (that is `harunner.net`).
"""

from harunner.store.backends import open_store, parse_backend
from harunner.store.contract import JobStore
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
from harunner.store.transitions import Assignment, Outcome, Submission, TakeOver

__all__ = ["CHECKPOINT_FAILPOINTS", "FAILPOINTS", "RECORD_FAILPOINTS", "SCHEDULER_JOB",
           "TRANSITIONS", "Assignment", "Checkpoint", "JobRecord", "JobState", "JobStore",
           "Outcome", "Owner", "Progress", "Store", "Submission", "TakeOver", "advance",
           "check_writer", "open_store", "parse_backend"]
