"""The peer of bench/throughput_bench.py: Huey with its durable SQLite storage.

`SqliteHuey(fsync=True)` sets `PRAGMA synchronous=FULL` in WAL mode, so each
enqueue, dequeue and result is one fsynced commit, as a harunner commit is.
The database path comes from HUEY_BENCH_DB.
"""

from __future__ import annotations

import os

from huey import SqliteHuey

huey = SqliteHuey("bench", filename=os.environ.get("HUEY_BENCH_DB", "/tmp/huey-bench.db"),
                  fsync=True)


@huey.task()
def noop() -> int:
    """Nothing: the cost of Huey's task path itself (the result 1 is stored)."""
    return 1
