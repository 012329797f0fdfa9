"""The files of one job folder and of the state directory, below `harunner.store`.

This module knows names, listing, fallback and pruning; it knows nothing of
generations or job states (that is `harunner.store`). Payloads are checked by
a `check` function the caller passes in, which raises `CorruptFileError`.

Invariants:
- `record` (harunner 0.1.0's job record, now only read once to import it)
  falls back to `record.prev` when torn or mangled.
- Checkpoint files are `ckpt.<seq>` with a zero-padded seq; a new seq is
  higher than every `ckpt.*` name present, valid or not, so an acknowledged
  sequence never goes backwards and a corrupt newest file is never revived.
- A checkpoint is written only if `durable.read` will read it back: one whose
  payload is above `durable.MAX_PAYLOAD` is refused before anything is
  written (`CheckpointTooLargeError`); the configured, lower limit
  (`max_checkpoint_bytes`) is enforced by the job's Context.
- After a checkpoint is written, only it and the newest *valid* one below it
  are kept. Temp files (`.*.tmp`) in a job folder are left-overs of a crashed
  writer; they are removed by the next writer, which holds the job's lock.
- Readers never lock: they rely on files being replaced atomically and re-list
  when a file they listed has been pruned meanwhile.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harunner.errors import CheckpointTooLargeError, CorruptFileError, DiskFullError, StoreError
from harunner.failpoints import failpoint
from harunner.store.durable import (
    KIND_CHECKPOINT,
    KIND_RECORD,
    MAX_PAYLOAD,
    fsync_dir,
    read,
    write_atomic,
)
from harunner.store.layout import (
    CHECKPOINT_PREFIX,
    JOB_FOLDERS,
    PRIVATE_FOLDERS,
    RECORD,
    RECORD_PREV,
)
from harunner.store.model import Checkpoint, checkpoint_from

log = logging.getLogger("harunner.store")

SEQ_DIGITS = 12
NETWORK_FILE_SYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse.sshfs",
                                  "afs", "ceph", "glusterfs", "lustre"})
JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
RELIST_LIMIT = 100

Check = Callable[[Any], Any]
Report = Callable[[Path, CorruptFileError], None]


def new_job_id(now: float, token: bytes) -> str:
    """A short id that sorts by creation time: base-36 milliseconds, '-', 4 hex digits."""
    millis = int(now * 1000)
    digits = ""
    while millis or len(digits) < 8:
        millis, digit = divmod(millis, 36)
        digits = BASE36[digit] + digits
    return f"{digits}-{token[:2].hex()}"


def new_batch_id(now: float, token: bytes, index: int) -> str:
    """The id of item `index` of a batch: like `new_job_id`, then the index, so a batch sorts."""
    return f"{new_job_id(now, token)}{index:05x}"


def valid_job_id(job_id: str) -> bool:
    """Whether `job_id` can name a folder: letters, digits, '_' and '-' only."""
    return isinstance(job_id, str) and JOB_ID.fullmatch(job_id) is not None


def load(path: Path, kind: int, check: Check) -> Any:
    """`check` applied to the JSON payload at `path`; `FileNotFoundError` if absent."""
    payload = read(path, kind)
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptFileError(f"{path}: payload is not JSON ({error})") from None
    return check(data)


def read_record(folder: Path, check: Check, report: Report) -> tuple[Any, bool] | None:
    """(record, came from the newest file), falling back to `record.prev`; None if neither."""
    newest = folder / RECORD
    problems = []
    for path in (newest, folder / RECORD_PREV):
        try:
            return load(path, KIND_RECORD, check), path == newest
        except FileNotFoundError:
            if path == newest and (folder / RECORD_PREV).exists():
                problems.append(_report(report, CorruptFileError(f"{path}: missing"), path))
        except CorruptFileError as error:
            problems.append(_report(report, error, path))
    if problems:
        raise CorruptFileError(f"{folder}: no readable record ({'; '.join(problems)}); "
                               "restore it from a backup or remove the job folder")
    return None


def checkpoint_path(folder: Path, seq: int) -> Path:
    return folder / f"{CHECKPOINT_PREFIX}{seq:0{SEQ_DIGITS}d}"


def checkpoint_seqs(folder: Path) -> list[int]:
    """Every seq named by a `ckpt.<digits>` entry, whatever it holds, ascending."""
    seqs = []
    for name in os.listdir(folder):
        if name.startswith(CHECKPOINT_PREFIX) and name[len(CHECKPOINT_PREFIX):].isdigit():
            seqs.append(int(name[len(CHECKPOINT_PREFIX):]))
    return sorted(seqs)


def read_newest_checkpoint(folder: Path, check: Callable[[Any, int], Any],
                           report: Report) -> Any:
    """The newest checkpoint that passes `check`, or None if there are no checkpoint files."""
    for _ in range(RELIST_LIMIT):
        seqs = checkpoint_seqs(folder)
        found = _first_valid(folder, reversed(seqs), check, report)
        if found is not _VANISHED:
            return found
    raise StoreError(f"{folder}: checkpoints kept changing while being read; retry")


_VANISHED = object()


def read_job_checkpoint(folder: Path, job_id: str, report: Report) -> Checkpoint | None:
    """Job `job_id`'s newest valid checkpoint in `folder` (None if it has none); `report`
    hears of every unreadable one, newest first, before an older one is returned."""
    if not folder.is_dir():
        return None
    return read_newest_checkpoint(  # type: ignore[no-any-return]
        folder, lambda data, seq: checkpoint_from(data, job_id, seq), report)


def _first_valid(folder: Path, seqs: Any, check: Callable[[Any, int], Any],
                 report: Report) -> Any:
    problems = []
    for seq in seqs:
        path = checkpoint_path(folder, seq)
        try:
            return load(path, KIND_CHECKPOINT, functools.partial(_check_seq, check, seq))
        except FileNotFoundError:
            return _VANISHED
        except CorruptFileError as error:
            problems.append(_report(report, error, path))
    if problems:
        raise CorruptFileError(f"{folder}: no valid checkpoint ({'; '.join(problems)}); "
                               "restore one from a backup or remove the checkpoint files "
                               "to restart the job from scratch")
    return None


def _check_seq(check: Callable[[Any, int], Any], seq: int, data: Any) -> Any:
    return check(data, seq)


def append_checkpoint(folder: Path, job_id: str, generation: int, text: str,
                      report: Report) -> int:
    """Write checkpoint max(seq)+1 of `text` (a JSON object) and prune; returns its seq.

    The caller holds the job's lock and has checked that `generation` may write.
    """
    make_job_dir(folder)
    older = checkpoint_seqs(folder)
    seq = (older[-1] if older else 0) + 1
    payload = (f'{{"generation":{int(generation)},"job_id":{json.dumps(job_id)},'
               f'"seq":{seq},"state":{text}}}').encode()
    if len(payload) > MAX_PAYLOAD:
        raise CheckpointTooLargeError(
            f"job {job_id}: checkpoint of {len(payload):,} bytes refused, over the "
            f"{MAX_PAYLOAD:,} bytes a checkpoint file can hold; nothing was written")
    write_atomic(checkpoint_path(folder, seq), KIND_CHECKPOINT, payload)
    failpoint("store.checkpoint.before_prune")
    prune_checkpoints(folder, older, functools.partial(_checkpoint_good, folder, job_id, report))
    failpoint("store.checkpoint.after_prune")
    return seq


def _checkpoint_good(folder: Path, job_id: str, report: Report, seq: int) -> bool:
    """Whether checkpoint `seq` is valid (a corrupt one is reported, then pruned)."""
    path = checkpoint_path(folder, seq)
    try:
        load(path, KIND_CHECKPOINT, lambda data: checkpoint_from(data, job_id, seq))
    except FileNotFoundError:
        return False
    except CorruptFileError as error:
        report(path, error)
        return False
    return True


def prune_checkpoints(folder: Path, older: list[int], good: Callable[[int], bool]) -> None:
    """Keep the newest good seq of `older` (seqs below the one just written); remove the rest."""
    keep = next((seq for seq in reversed(older) if good(seq)), None)
    for seq in older:
        if seq != keep:
            remove_entry(checkpoint_path(folder, seq))
    for name in os.listdir(folder):
        if name.startswith(".") and name.endswith(".tmp"):
            remove_entry(folder / name)


def remove_entry(path: Path) -> None:
    """Unlink a file or symlink, or an empty directory; leave anything else (and say so)."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            os.rmdir(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        log.warning("cannot remove %s (%s); remove it by hand", path, error.strerror)


def _report(report: Report, error: CorruptFileError, path: Path) -> str:
    report(path, error)
    return str(error)


def make_layout(root: Path) -> None:
    """Create the state directory and its folders (0700), durably; `run/` is kept 0700, and
    group and other bits are taken off the others (left by an older version)."""
    make_private_dir(root)
    for name in JOB_FOLDERS:
        make_private_dir(root / name)
    for name in PRIVATE_FOLDERS:
        os.chmod(root / name, 0o700)


def make_private_dir(path: Path) -> None:
    """Create the folder `path` (0700) if missing; take group and other bits off it."""
    _make_dir(path)
    _tighten(path)


def make_private_file(path: Path) -> None:
    """Create the file `path` empty (0600) if missing; take group and other bits off it."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    os.close(fd)
    _tighten(path)


def _tighten(path: Path) -> None:
    """Remove group and other permission bits, if any and if this user may (it owns `path`)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
    except PermissionError:
        pass


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        if not path.is_dir():
            raise StoreError(f"{path} exists and is not a directory; the state directory "
                             "needs it as a folder") from None
        return
    fsync_dir(path.parent)


def make_job_dir(folder: Path) -> bool:
    """Create a job folder durably; False if it already exists."""
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        return False
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(f"disk full: cannot create {folder}; free some space") from None
        raise
    fsync_dir(folder.parent)
    return True


def file_system_type(path: Path, mountinfo: str) -> str | None:
    """The type of the file system holding `path`, from /proc/self/mountinfo text."""
    best, kind = "", None
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        mount_point = fields[4].replace("\\040", " ")
        after = line.split(" - ", 1)[1].split()
        inside = str(path) == mount_point or str(path).startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best) and after:
            best, kind = mount_point, after[0]
    return kind


def warn_if_network(root: Path) -> None:
    """Log a warning if the state directory is on a network file system (flock is unsafe)."""
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return
    kind = file_system_type(root.resolve(), mountinfo)
    if kind in NETWORK_FILE_SYSTEMS:
        log.warning("state directory %s is on %s: file locks do not exclude across hosts there; "
                    "use a local disk", root, kind)
