"""A realistic job: a resumable digest of every file in a folder.

`digest_folder` walks the folder's files in sorted order (by path relative to
the folder) and keeps a running digest chained over (path, file hash). After
each file it checkpoints the index of the next file and the running digest,
so after a crash or failover it resumes at the first file not yet included,
and the final digest is the same as for an uninterrupted run. The files must
not change while the job runs (a file changed between two owners would be
hashed in its old state by one and its new state by the other).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from harunner import Context, job

CHUNK = 1024 * 1024


@job(retries=3, backoff="5s", timeout="6h")
def digest_folder(ctx: Context, folder: str) -> dict:
    """SHA-256 over the folder's files in sorted order; resumes at the last checkpoint."""
    root = Path(folder)
    if not root.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    files = list_files(root)
    index = ctx.state.get("index", 0)
    running = ctx.state.get("digest", hashlib.sha256(b"").hexdigest())
    for position in range(index, len(files)):
        running = chain(running, files[position], file_digest(root / files[position]))
        ctx.checkpoint({"index": position + 1, "digest": running})
        ctx.progress(position + 1, len(files), files[position])
    return {"files": len(files), "digest": running}


def list_files(root: Path) -> list[str]:
    """Every regular file under `root`, as sorted POSIX paths relative to it."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            if path.is_file() and not path.is_symlink():
                found.append(path.relative_to(root).as_posix())
    return sorted(found)


def file_digest(path: Path) -> str:
    """The SHA-256 of one file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def chain(running: str, name: str, file_hash: str) -> str:
    """The next running digest after including file `name` with hash `file_hash`."""
    return hashlib.sha256(f"{running}\0{name}\0{file_hash}".encode()).hexdigest()
