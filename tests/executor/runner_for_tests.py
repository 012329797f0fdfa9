"""A stand-in runner for the orphan test: starts one worker through an Executor, then idles.

Usage: python runner_for_tests.py STATE_DIR JOBS_FOLDER JOB_ID START_METHOD
Prints "worker <pid>" once the worker is started.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from harunner.executor import Executor
from harunner.store import Store


def main() -> None:
    state_dir, jobs_folder, job_id, start_method = sys.argv[1:5]
    executor = Executor(Path(state_dir), (jobs_folder,), 2.0, start_method=start_method)
    executor.start(Store(Path(state_dir)).get(job_id))
    process = executor._workers[job_id].process
    print(f"worker {process.pid}", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
