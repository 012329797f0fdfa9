"""Acknowledged means readable: checkpoint size limits (issue 11, finding 4).

A 70 MB checkpoint used to be acknowledged and then refused by the reader,
which fell back to the older checkpoint without a word. Now:
- the job's Context refuses a checkpoint whose JSON text is above
  `max_checkpoint_bytes` (default 16 MiB) with `CheckpointTooLargeError`
  naming the job, the size, the limit and the config key; nothing is written;
- the store itself refuses any checkpoint its reader would refuse (above
  `durable.MAX_PAYLOAD`), whatever the caller;
- the configurable limit can never be set above what the store reads back.
"""

from __future__ import annotations

import logging

import pytest

from harunner import config
from harunner.api import Context
from harunner.config import CHECKPOINT_ENV, MAX_CHECKPOINT_BYTES, Config, checkpoint_limit
from harunner.errors import CheckpointTooLargeError, ConfigError
from harunner.store import Owner, Store, durable, job_files
from harunner.store.model import state_json

OWNER = Owner(0, 1)


def test_the_default_limit_is_16_mib_and_below_what_the_store_reads_back():
    assert Config().max_checkpoint_bytes == 16 * 1024 * 1024
    longest_id = "x" * 100
    wrapper = (f'{{"generation":{2**63},"job_id":"{longest_id}","seq":{10**12},"state":}}')
    assert MAX_CHECKPOINT_BYTES + len(wrapper) <= durable.MAX_PAYLOAD


@pytest.mark.parametrize("value", [0, 1023, MAX_CHECKPOINT_BYTES + 1, 70_000_000])
def test_a_limit_outside_what_the_store_can_hold_is_refused(value):
    with pytest.raises(ConfigError, match="max_checkpoint_bytes is"):
        config.load(None, {"max_checkpoint_bytes": value}, env={})


def test_workers_read_the_limit_their_runner_hands_them():
    assert checkpoint_limit({}) == Config().max_checkpoint_bytes
    assert checkpoint_limit({CHECKPOINT_ENV: "4096"}) == 4096
    with pytest.raises(ConfigError, match=CHECKPOINT_ENV):
        checkpoint_limit({CHECKPOINT_ENV: "12"})
    assert config.load(None, env={CHECKPOINT_ENV: "2048"}).max_checkpoint_bytes == 2048


def _context(store: Store, limit: int) -> Context:
    record = store.submit("jobs.demo", {})
    record = store.assign(record.job_id, OWNER, record.generation)
    return Context(store, record, None, logging.getLogger("test.checkpoint.limits"),
                   max_checkpoint_bytes=limit)


def test_the_context_refuses_a_checkpoint_above_the_limit_and_writes_nothing(store):
    context = _context(store, 1024)
    assert context.checkpoint({"step": 1}) == 1
    fits = {"blob": "x" * (1024 - len(state_json(context.job_id, {"blob": ""})))}
    assert len(state_json(context.job_id, fits).encode()) == 1024
    assert context.checkpoint(fits) == 2  # exactly at the limit: accepted
    too_big = {"blob": "x" * 1025}
    with pytest.raises(CheckpointTooLargeError) as refused:
        context.checkpoint(too_big)
    message = str(refused.value)
    assert "\n" not in message
    size = len(state_json(context.job_id, too_big).encode())
    for part in (context.job_id, f"{size:,} bytes", "1,024 bytes", "max_checkpoint_bytes",
                 "nothing was written"):
        assert part in message, (part, message)
    assert store.read_checkpoint(context.job_id).state == fits
    assert context.state == fits
    assert job_files.checkpoint_seqs(store.layout.job_folder(context.job_id)) == [1, 2]


def test_the_store_acknowledges_only_what_it_can_read_back(store, running, monkeypatch):
    ceiling = 4096
    monkeypatch.setattr(durable, "MAX_PAYLOAD", ceiling)
    monkeypatch.setattr(job_files, "MAX_PAYLOAD", ceiling)
    previous = {"blob": ""}
    store.write_checkpoint(running, 1, previous)
    acknowledged = refused = 0
    for size in range(ceiling - 120, ceiling + 120, 7):
        state = {"blob": "y" * size}
        try:
            seq = store.write_checkpoint(running, 1, state)
        except CheckpointTooLargeError as error:
            refused += 1
            assert running in str(error) and "nothing was written" in str(error)
            assert store.read_checkpoint(running).state == previous
            continue
        acknowledged += 1
        checkpoint = store.read_checkpoint(running)
        assert (checkpoint.seq, checkpoint.state) == (seq, state), "acknowledged, not readable"
        previous = state
    assert acknowledged and refused
    assert store.corrupt_seen == 0
