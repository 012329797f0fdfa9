"""Example jobs: read these to learn how a harunner job is written.

A job is a plain function decorated with `@job`. Its first parameter is the
`Context`; the others are the job's arguments, given at submission
(`harunner submit examples.counter --arg to=1000`) and always JSON values.

The rules that make a job survive a crash or a failover:
- Keep progress in `ctx.checkpoint({...})` (a JSON dict, durable before it
  returns) and start from `ctx.state` (the last checkpoint, `{}` the first time).
- Work done after the last checkpoint may be done again by the next owner
  (at-least-once between checkpoints), so make each step safe to repeat.
- Return a JSON value: it becomes the job's result.
- Raise to fail the attempt; `retries` and `backoff` in `@job(...)` decide
  whether and when it runs again (`ctx.attempt` counts attempts from 1).
"""

from __future__ import annotations

import time

from harunner import Context, job


@job
def counter(ctx: Context, to: int = 100, delay: float = 0.01) -> dict:
    """Count to `to`, checkpointing after every step; the result shows the resumptions.

    Besides the count "i", the state keeps the generations (owners) that ran
    this job, so the result proves whether and where the job was resumed.
    """
    start = ctx.state.get("i", 0)
    generations = list(ctx.state.get("generations", []))
    if not generations or generations[-1] != ctx.generation:
        generations.append(ctx.generation)
    resumes = ctx.state.get("resumes", 0) + (1 if ctx.resumed else 0)
    for i in range(start + 1, to + 1):
        time.sleep(delay)
        ctx.checkpoint({"i": i, "generations": generations, "resumes": resumes})
    return {"count": to, "resumed_from": start, "resumes": resumes, "generations": generations}


@job(timeout="1h")
def slow(ctx: Context, steps: int = 60, step_seconds: float = 1.0) -> dict:
    """A long job that reports progress (see `harunner status --watch`) and checkpoints."""
    done = ctx.state.get("done", 0)
    for step in range(done, steps):
        time.sleep(step_seconds)
        ctx.checkpoint({"done": step + 1})
        ctx.progress(step + 1, steps, f"step {step + 1} of {steps}")
        ctx.log.info("finished step %d of %d", step + 1, steps)
    return {"steps": steps}


@job(retries=2, backoff="100ms")
def flaky(ctx: Context, failures: int = 1) -> dict:
    """Fail the first `failures` attempts, then succeed: shows retries with back-off.

    With retries=2 the job may run 3 times in all; attempt n waits
    backoff * 2**(n-1) (here 100 ms, then 200 ms) before the next one.
    """
    if ctx.attempt <= failures:
        ctx.log.warning("attempt %d fails on purpose", ctx.attempt)
        raise RuntimeError(f"attempt {ctx.attempt} failed on purpose ({failures} to go)")
    return {"attempt": ctx.attempt}
