"""The process of one runner slot: its entry point, its log file and its stop signals.

`runner_main` is the target the supervisor spawns: it leaves the supervisor's
session (a runner must not die with it or with the terminal), logs to
logs/runner-<slot>.log, builds the `Runner` and turns its loop until SIGTERM
or SIGINT, which only set a flag.
"""

from __future__ import annotations

import logging
import os
import signal

from harunner.config import Config
from harunner.errors import ClusterError
from harunner.failpoints import failpoint
from harunner.runner.runner import Runner
from harunner.store.layout import Layout

log = logging.getLogger("harunner.runner")
EXIT_SLOT_BUSY = 3


def _request_stop(runner: Runner) -> None:
    def handler(signum: int, frame: object) -> None:
        runner.stopping = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def configure_logging(config: Config, name: str) -> None:
    layout = Layout(config.state_path)
    layout.logs.mkdir(parents=True, exist_ok=True)
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
    try:
        runner = Runner(config, slot)
    except ClusterError as error:
        log.error("%s", error)
        os._exit(EXIT_SLOT_BUSY)
    _request_stop(runner)
    failpoint("runner.started")
    try:
        runner.run()
    except Exception:
        log.exception("runner slot %d crashed", slot)
        raise
    finally:
        runner.close()
