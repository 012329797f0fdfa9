"""The Context a job sees, against a real Store in a temporary folder."""

from __future__ import annotations

import pytest

from harunner.api import Context, job_logger
from harunner.errors import FencedError
from harunner.store import JobState, Owner, Store

OWNER = Owner(slot=0, incarnation=1)
OTHER = Owner(slot=1, incarnation=1)


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "state", lock_timeout=2.0)


def running(store, **submit):
    record = store.submit("examples.counter", {"to": 3}, **submit)
    return store.assign(record.job_id, OWNER, record.generation)


def context(store, record):
    return Context(store, record, store.read_checkpoint(record.job_id), job_logger(store, record))


def test_fresh_context_has_identity_and_empty_state(store):
    record = running(store)
    ctx = context(store, record)
    assert (ctx.job_id, ctx.name, ctx.attempt, ctx.generation) == (
        record.job_id, "examples.counter", 1, 1)
    assert ctx.state == {} and not ctx.resumed and ctx.args == {"to": 3}


def test_checkpoint_is_durable_and_updates_state(store):
    record = running(store)
    ctx = context(store, record)
    state = {"i": 1, "seen": [1]}
    ctx.checkpoint(state)
    state["seen"].append(2)
    assert ctx.state == {"i": 1, "seen": [1]}
    assert store.read_checkpoint(record.job_id).state == {"i": 1, "seen": [1]}
    resumed = context(store, store.get(record.job_id))
    assert resumed.resumed and resumed.state == {"i": 1, "seen": [1]}
    resumed.state["i"] = 99
    assert store.read_checkpoint(record.job_id).state["i"] == 1


def test_checkpoint_refuses_non_json(store):
    ctx = context(store, running(store))
    with pytest.raises(TypeError, match="not JSON"):
        ctx.checkpoint({"s": {1, 2}})
    with pytest.raises(TypeError, match="must be a dict"):
        ctx.checkpoint([1, 2])  # type: ignore[arg-type]
    assert store.read_checkpoint(ctx.job_id) is None


def test_progress_is_recorded(store):
    ctx = context(store, running(store))
    ctx.progress(2, 10, "two")
    progress = store.read_progress(ctx.job_id)
    assert (progress.done, progress.total, progress.message) == (2, 10, "two")


def test_a_stale_owner_is_fenced(store):
    record = running(store)
    ctx = context(store, record)
    ctx.checkpoint({"i": 1})
    store.take_over(record.job_id, record.generation + 1, OTHER)
    with pytest.raises(FencedError):
        ctx.checkpoint({"i": 2})
    assert ctx.fenced
    with pytest.raises(FencedError):
        ctx.progress(2)
    assert store.read_checkpoint(record.job_id).state == {"i": 1}
    assert store.get(record.job_id).state is JobState.RUNNING


def test_log_lines_carry_time_and_generation(store):
    record = running(store)
    ctx = context(store, record)
    ctx.log.info("hello %s", "world")
    for handler in ctx.log.handlers:
        handler.flush()
    line = store.log_path(record.job_id).read_text().strip()
    assert line.endswith("gen=1 attempt=1 INFO hello world")
    assert line[:4].isdigit()


def test_a_write_to_a_job_that_moved_on_is_fenced_too(store):
    record = running(store)
    ctx = context(store, record)
    store.finish(record.job_id, record.generation, error="recorded elsewhere", retry_at=0.0)
    with pytest.raises(FencedError, match="moved on"):
        ctx.checkpoint({"i": 1})
    assert ctx.fenced and store.read_checkpoint(record.job_id) is None
