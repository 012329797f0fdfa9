"""The row codec's compare-and-set UPDATE: moving columns only when a transition keeps the
submission's own, every column otherwise; and the record copy `advance` makes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harunner.store import JobState, Owner, Store, rows
from harunner.store.model import JobRecord, advance


def test_a_transition_updates_only_its_moving_columns_and_still_fences(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    record = store.submit("x.y", {"n": 1})
    sql, params = rows.update(advance(record, JobState.RUNNING, now=5.0, note="n",
                                      generation=1, owner=Owner(0, 1)), record, 7)
    assert sql == rows.UPDATE_MOVING and "args" not in sql.split("WHERE")[0]
    assert params[-3:] == (record.job_id, 0, "pending")  # the fence: old generation, state
    assert len(params) == len(rows.MOVING) + 3


@pytest.mark.parametrize("change", [{"args": {"n": 2}}, {"name": "x.z"}, {"retries": 3},
                                    {"backoff": 9.0}, {"timeout": 1.0}, {"created_at": 1.0}])
def test_a_change_to_a_submission_column_writes_every_column(tmp_path: Path, change) -> None:
    """A write that changes what the submission set is never narrowed (it would be lost)."""
    store = Store(tmp_path / "state")
    record = store.submit("x.y", {"n": 1})
    sql, params = rows.update(dataclasses.replace(record, **change), record, 7)
    assert sql == rows.UPDATE and len(params) == len(rows.COLUMNS) - 1 + 3


def test_a_claimed_and_finished_row_reads_back_whole(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    record = store.submit("x.y", {"n": 1}, retries=2, backoff=3.0, timeout=4.0)
    running = store.assign(record.job_id, Owner(0, 1), 0)
    done = store.finish(record.job_id, running.generation, result={"r": [1, 2]})
    again = store.get(record.job_id)
    assert again == done and again.args == {"n": 1} and again.result == {"r": [1, 2]}
    assert (again.retries, again.backoff, again.timeout, again.created_at) == (
        2, 3.0, 4.0, record.created_at)
    assert again.state is JobState.SUCCEEDED and len(again.history) == 3


def test_advance_copies_the_record_as_replace_would() -> None:
    record = JobRecord("j", "x.y", {"n": 1}, JobState.PENDING, history=("a",))
    moved = advance(record, JobState.RUNNING, now=2.0, note="go", generation=1,
                    owner=Owner(0, 1))
    expected = dataclasses.replace(record, state=JobState.RUNNING, updated_at=2.0,
                                   generation=1, owner=Owner(0, 1), history=moved.history)
    assert moved == expected and moved.args is record.args
    assert record.state is JobState.PENDING and record.history == ("a",)  # untouched
    with pytest.raises(TypeError, match="no field"):
        advance(record, JobState.RUNNING, now=2.0, note="go", colour="red")
