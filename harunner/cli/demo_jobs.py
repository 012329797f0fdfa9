"""The job the demo runs: a counter that checkpoints every step and remembers resumes.

It is an ordinary job module, shipped inside the package so that `harunner
demo` works from any directory. Each checkpoint records the wall-clock time
it was taken (for the demo's timeline) and the generations that ran it.
"""

from __future__ import annotations

import time

from harunner import Context, job


@job(retries=2)
def count(ctx: Context, to: int = 100, delay: float = 0.02) -> dict:
    """Count to `to`, one checkpoint a step; the result says where each owner resumed."""
    state = dict(ctx.state)
    i = state.get("i", 0)
    resumes = list(state.get("resumes", []))
    resumes.append({"generation": ctx.generation, "from": i})
    while i < to:
        i += 1  # one step of work: here, counting; then a pause standing for real work
        resumes[-1].setdefault("t", time.time())  # when this owner's first checkpoint was taken
        ctx.checkpoint({"i": i, "t": time.time(), "resumes": resumes})
        ctx.progress(i, to)
        time.sleep(delay)
    return {"count": i, "resumes": resumes}
