"""Two versions of a job that appends lines to a file: one a crash duplicates, one it cannot.

`append_unsafe` appends line i, then checkpoints `{"done": i}`. If its process
dies after the append and before the checkpoint is acknowledged, the next
owner resumes from the checkpoint before and appends line i again: the file
ends with a duplicated line. That is at-least-once between checkpoints, and
`harunner crash-test ledger.append_unsafe --arg path={workdir}/ledger.txt`
finds it.

`append_safe` is the fix: it keeps the file's length in the checkpoint, made
durable (fsync) before the checkpoint that records it, and on resume cuts the
file back to that length, undoing whatever a killed owner appended after its
last checkpoint. The file then always ends as in a run without faults.
"""

from __future__ import annotations

import os
import time

from harunner import Context, job


@job
def append_unsafe(ctx: Context, path: str, lines: int = 20, delay: float = 0.0) -> dict:
    """Append `lines` numbered lines to `path`, checkpointing after each (a crash duplicates)."""
    done = ctx.state.get("done", 0)
    for number in range(done + 1, lines + 1):
        time.sleep(delay)
        with open(path, "a", encoding="utf-8") as ledger:
            ledger.write(f"line {number}\n")
        ctx.checkpoint({"done": number})
    return {"lines": lines}


@job
def append_safe(ctx: Context, path: str, lines: int = 20, delay: float = 0.0) -> dict:
    """Append `lines` numbered lines to `path`; resumes at the length of the last checkpoint."""
    done = ctx.state.get("done", 0)
    size = ctx.state.get("size", 0)
    with open(path, "a+b") as ledger:
        if os.fstat(ledger.fileno()).st_size < size:
            raise RuntimeError(f"{path} is shorter than the {size} bytes its checkpoint records")
        ledger.truncate(size)
        for number in range(done + 1, lines + 1):
            time.sleep(delay)
            ledger.write(f"line {number}\n".encode())
            ledger.flush()
            os.fsync(ledger.fileno())
            ctx.checkpoint({"done": number, "size": ledger.tell()})
    return {"lines": lines}
