"""Jobs used by the real-cluster CLI and client tests."""

from __future__ import annotations

import time

from harunner import Context, job


@job
def count(ctx: Context, to: int = 5, delay: float = 0.01, note: str = "") -> dict:
    """Count to `to`, reporting progress with a total; the result names the note."""
    for i in range(ctx.state.get("i", 0), to):
        time.sleep(delay)
        ctx.checkpoint({"i": i + 1})
        ctx.progress(i + 1, to, "counting")
    ctx.log.info("counted to %d", to)
    return {"count": to, "note": note}


@job
def boom(ctx: Context, message: str = "boom") -> None:
    """Fail at once, with no retry."""
    print("about to fail")
    raise ValueError(message)


@job
def wait_forever(ctx: Context) -> None:
    """Run until cancelled."""
    while True:
        time.sleep(0.02)
        ctx.progress(1)
