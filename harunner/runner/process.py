"""The process of one runner slot: its entry point, its log file and its stop signals.

`runner_main` is the target the supervisor spawns: it leaves the supervisor's
session (a runner must not die with it or with the terminal), logs to
logs/runner-<slot>.log, builds the `Runner` and turns its loop until SIGTERM
or SIGINT, which only set a flag.

File modes: `configure_logging` (the first thing the supervisor and every
runner do) sets the process's umask to 077, so every file and socket it and
its children create (SQLite's -wal and -shm, lock files, sockets, job logs)
is private to the user, and creates its log file 0600 in a 0700 folder. Job
workers inherit the umask (each attempt starts with it; a job that shares
files sets its own). A runner hands `max_checkpoint_bytes` to its workers in
the environment (`config.CHECKPOINT_ENV`). With an etcd backend the slot runs a
`host_runner.HostRunner`; one that lost its lease exits `hosts.EXIT_FENCED` after
stopping its workers, and the supervisor respawns the slot as a new incarnation.
"""

from __future__ import annotations

import logging
import os
import signal

from harunner.config import CHECKPOINT_ENV, LOCAL_BACKEND, Config, store_env
from harunner.errors import ClusterError
from harunner.failpoints import failpoint
from harunner.runner.host_runner import HostRunner
from harunner.runner.hosts import EXIT_FENCED, LeaseLost
from harunner.runner.runner import Runner
from harunner.store.job_files import make_private_dir, make_private_file
from harunner.store.layout import Layout

log = logging.getLogger("harunner.runner")
EXIT_SLOT_BUSY = 3
PRIVATE_UMASK = 0o077


def _request_stop(runner: Runner) -> None:
    def handler(signum: int, frame: object) -> None:
        runner.stopping = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def configure_logging(config: Config, name: str) -> None:
    """Umask 077, then log to logs/<name>.log (0600; the state directory and logs/ 0700)."""
    os.umask(PRIVATE_UMASK)
    layout = Layout(config.state_path)
    make_private_dir(layout.root)
    make_private_dir(layout.logs)
    make_private_file(layout.log_file(name))
    handler = logging.FileHandler(layout.log_file(name))
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(name)s %(levelname)s "
                                           "%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log_level.upper())


def runner_main(config: Config, slot: int) -> None:
    """Process target of a runner slot (top level, picklable arguments)."""
    os.setsid()  # a runner must not die with the supervisor or its terminal
    configure_logging(config, f"runner-{slot}")
    os.environ[CHECKPOINT_ENV] = str(config.max_checkpoint_bytes)  # read by its job workers
    os.environ.update(store_env(config))  # so are the backend and its limit
    kind = Runner if config.backend == LOCAL_BACKEND else HostRunner
    try:
        runner = kind(config, slot)
    except ClusterError as error:
        log.error("%s", error)
        os._exit(EXIT_SLOT_BUSY)
    _request_stop(runner)
    failpoint("runner.started")
    try:
        runner.run()
    except LeaseLost as error:  # declared dead by the cluster: stop the workers, then exit
        log.error("runner slot %d: %s", slot, error)
        runner.close()
        os._exit(EXIT_FENCED)
    except Exception:
        log.exception("runner slot %d crashed", slot)
        raise
    finally:
        runner.close()
