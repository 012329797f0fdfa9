"""Job modules preloaded in the forkserver; a module that breaks the preload does not break jobs.

Each test runs in a fresh Python process: the forkserver is one per process,
and its preload list is fixed when it starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from executor_harness import HERE

REPO = HERE.parent.parent

SCRIPT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from multiprocessing.connection import wait
    from harunner.executor.executor import Executor
    from harunner.store import Owner, Store

    state, folder, name = sys.argv[1:4]
    store = Store(Path(state))
    executor = Executor(Path(state), (folder,), 2.0)
    executor.warm_up()
    record = store.submit(name, {})
    executor.start(store.assign(record.job_id, Owner(0, 1), 0))
    exits = []
    while executor.running():
        wait(executor.sentinels(), 1.0)
        exits += executor.reap(time.monotonic())
    final = store.get(record.job_id)
    print(json.dumps({"outcome": exits[0].outcome, "result": final.result,
                      "error": final.error}))
""")

GOOD = "from harunner import job\n\n@job\ndef ok(ctx):\n    return {}\n"


def run_script(tmp_path, files: dict[str, str], name: str) -> dict:
    folder = tmp_path / "jobs"
    folder.mkdir()
    for file_name, text in files.items():
        (folder / file_name).write_text(text)
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "state"), str(folder), name],
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.splitlines()[-1])


def test_job_modules_are_imported_once_in_the_forkserver(tmp_path):
    module = ("import os\nfrom harunner import job\n\nIMPORTED_BY = os.getpid()\n\n"
              "@job\ndef where(ctx):\n    return {'imported_by_worker': IMPORTED_BY == "
              "os.getpid()}\n")
    report = run_script(tmp_path, {"preload_where.py": module}, "preload_where.where")
    assert report == {"outcome": "succeeded", "result": {"imported_by_worker": False},
                      "error": None}


def test_a_module_that_breaks_the_forkserver_preload_fails_its_jobs_clearly(tmp_path):
    files = {"preload_good.py": GOOD,
             "preload_broken.py": "raise RuntimeError('broken at import')\n"}
    report = run_script(tmp_path, files, "preload_good.ok")
    assert report["outcome"] == "failed"
    assert "preload_broken.py failed with RuntimeError: broken at import" in report["error"]
    assert "`jobs`" in report["error"] and "harunner/discovery.py" not in report["error"]
