"""`harunner stop`: SIGTERM the supervisor (or, without one, the live runners) and wait."""

from __future__ import annotations

import os
import signal
import time

from harunner.config import Config
from harunner.errors import ClusterError
from harunner.store import meta
from harunner.store.layout import Layout


def stop_cluster(config: Config) -> str:
    """SIGTERM the supervisor (or, without one, the live runners) and wait for them."""
    layout = Layout(config.state_path)
    pid = meta.live_supervisor(layout)
    pids = [pid] if pid and pid > 0 else []
    if not pids:
        for slot in range(config.slots):
            info = meta.live_slot(layout, slot)
            if info and info.get("pid"):
                pids.append(int(info["pid"]))
    if not pids:
        return f"no cluster is running on {layout.root}"
    for each in pids:
        try:
            os.kill(each, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + config.stop_timeout_ms / 1000 + 1.0
    while time.monotonic() < deadline:
        if meta.live_supervisor(layout) is None and not any(
                meta.live_slot(layout, s) for s in range(config.slots)):
            return f"stopped the cluster on {layout.root}"
        time.sleep(0.05)
    raise ClusterError(f"the cluster on {layout.root} did not stop within "
                       f"{config.stop_timeout_ms} ms; pids {pids}")
