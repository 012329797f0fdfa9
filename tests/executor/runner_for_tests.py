"""A stand-in runner for the orphan test: starts one job through an Executor, then loops.

Usage: python runner_for_tests.py STATE_DIR JOBS_FOLDER JOB_ID START_METHOD [WORKER_MODE]
Prints "worker <pid>" once the job's worker is started, then "spare <pid>"
once an idle worker is ready (pool: the other workers; process: the spare),
then "workers <pids>" (every worker), then reaps forever like a runner's loop.
"""

from __future__ import annotations

import sys
import time
from multiprocessing.connection import wait
from pathlib import Path

from harunner.executor.executor import Executor
from harunner.store import Store


def main() -> None:
    state_dir, jobs_folder, job_id, start_method = sys.argv[1:5]
    mode = sys.argv[5] if len(sys.argv) > 5 else "pool"
    executor = Executor(Path(state_dir), (jobs_folder,), 2.0, start_method=start_method,
                        worker_mode=mode, concurrency=3)
    executor.warm_up()
    executor.start(Store(Path(state_dir)).get(job_id))
    print(f"worker {executor.worker_pid(job_id)}", flush=True)
    announced = False
    while True:
        wait(executor.sentinels(), 0.02)
        executor.reap(time.monotonic())
        if not announced and executor.spare_pid is not None:
            print(f"spare {executor.spare_pid}", flush=True)
            print(f"workers {' '.join(map(str, executor.worker_pids()))}", flush=True)
            announced = True


if __name__ == "__main__":
    main()
