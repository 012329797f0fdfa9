"""Two-copy state files: a torn or corrupt newest copy falls back to the previous one."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from harunner.errors import CorruptFileError
from harunner.store.pairfile import HEADER_SIZE, read_pair, write_pair

KIND = 3


def slot_size(path: Path) -> int:
    return (os.path.getsize(path) - HEADER_SIZE) // 2


def test_each_write_alternates_copies_and_keeps_the_size(tmp_path):
    path = tmp_path / "state"
    write_pair(path, KIND, b"first")
    size = os.path.getsize(path)
    for n in range(20):
        write_pair(path, KIND, b"value %d" % n)
        assert read_pair(path, KIND) == b"value %d" % n
        assert os.path.getsize(path) == size


def test_a_payload_larger_than_a_slot_grows_the_file_and_keeps_the_newest(tmp_path):
    path = tmp_path / "state"
    write_pair(path, KIND, b"small")
    big = os.urandom(10_000)
    write_pair(path, KIND, big)
    assert read_pair(path, KIND) == big
    write_pair(path, KIND, b"after")
    assert read_pair(path, KIND) == b"after"


@pytest.mark.parametrize("seed", range(40))
def test_any_damage_to_the_newest_copy_falls_back_to_the_previous(tmp_path, seed):
    rng = random.Random(seed)
    path = tmp_path / "state"
    write_pair(path, KIND, b"old value")
    write_pair(path, KIND, b"new value")  # lands in copy 1
    data = bytearray(path.read_bytes())
    start = HEADER_SIZE + slot_size(path)
    length = 14 + 8 + len(b"new value")  # envelope header, seq, payload
    if seed % 2:
        data[start + rng.randrange(0, length)] ^= 1 << rng.randrange(8)  # a bit flip
    else:
        cut = rng.randrange(0, length)
        data[start + cut:start + length] = bytes(length - cut)  # the tail never landed
    path.write_bytes(bytes(data))
    assert read_pair(path, KIND) == b"old value"
    write_pair(path, KIND, b"next")  # overwrites the damaged copy, not the good one
    assert read_pair(path, KIND) == b"next"


def test_both_copies_bad_is_a_clear_error(tmp_path):
    path = tmp_path / "state"
    write_pair(path, KIND, b"a")
    write_pair(path, KIND, b"b")
    data = bytearray(path.read_bytes())
    for index in (0, 1):
        data[HEADER_SIZE + index * slot_size(path) + 20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="neither copy is valid.*copy 0.*copy 1"):
        read_pair(path, KIND)


@pytest.mark.parametrize("damage", [b"", b"HRNRPAIR" + bytes(100), os.urandom(9000)])
def test_a_bad_header_is_refused(tmp_path, damage):
    path = tmp_path / "state"
    path.write_bytes(damage)
    with pytest.raises(CorruptFileError):
        read_pair(path, KIND)


def test_another_kind_is_refused(tmp_path):
    path = tmp_path / "state"
    write_pair(path, KIND, b"x")
    with pytest.raises(CorruptFileError, match="kind"):
        read_pair(path, KIND + 1)


CHILD = """
import sys
from pathlib import Path
from harunner.store.pairfile import write_pair
path = Path(sys.argv[1])
for n in range(1, 1000):
    write_pair(path, 3, b"%d" % n)
    print(n, flush=True)
"""


@pytest.mark.parametrize("point", ["pair.after_write", "pair.after_sync"])
def test_a_crash_at_each_step_keeps_the_last_acknowledged_value(tmp_path, point):
    for crash_at in range(2, 24, 3):
        path = tmp_path / f"state-{point}-{crash_at}"
        env = {**os.environ, "HARUNNER_FAILPOINTS": f"{point}=exit@{crash_at}"}
        child = subprocess.run([sys.executable, "-c", CHILD, str(path)], env=env,
                               capture_output=True, text=True, timeout=60)
        assert child.returncode == 77, child.stderr
        acked = int(child.stdout.split()[-1]) if child.stdout.split() else 0
        value = int(read_pair(path, KIND))
        assert value in (acked, acked + 1), (point, crash_at, acked, value)
