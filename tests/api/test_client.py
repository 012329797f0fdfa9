"""The Python client with no cluster up: durable submit, checks, handles, listing, waiting."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from harunner import Cancelled, Client, JobFailed, Timeout
from harunner.api.argtypes import fits
from harunner.api.statedir import check_state_dir
from harunner.errors import JobArgumentError, StaleTransitionError, UnknownJobError, UsageError
from harunner.store import JobState, Owner, Store

JOBS = Path(__file__).parents[1] / "integration" / "itjobs"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder with a harunner.toml naming the test jobs; the working directory."""
    for name in list(os.environ):
        if name.startswith("HARUNNER_"):
            monkeypatch.delenv(name)
    (tmp_path / "harunner.toml").write_text(
        f'state_dir = "{tmp_path / "state"}"\njobs = ["{JOBS}"]\nslots = 1\n')
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def client(project) -> Client:
    return Client()


def finish(store: Store, job_id: str, **outcome) -> None:
    store.assign(job_id, Owner(0, 1), store.get(job_id).generation)
    store.finish(job_id, store.get(job_id).generation, **outcome)


def test_submit_is_durable_with_no_cluster(client, project):
    handle = client.submit("itjobs.ticker", to=3)
    record = Store(project / "state").get(handle.id)
    assert record.state is JobState.PENDING and record.args == {"to": 3}
    assert handle.state() is JobState.PENDING and handle.progress() is None


def test_decorated_function_submit_finds_the_config_from_the_cwd(project):
    sys.path.insert(0, str(JOBS))
    try:
        import itjobs
    finally:
        sys.path.remove(str(JOBS))
    handle = itjobs.ticker.submit(to=2)
    assert Store(project / "state").get(handle.id).name == "itjobs.ticker"


def test_state_dir_argument_overrides_the_config(project, tmp_path):
    other = Client(state_dir=tmp_path / "other")
    handle = other.submit("itjobs.ticker")
    assert Store(tmp_path / "other").get(handle.id).state is JobState.PENDING


def test_result_returns_the_result(client):
    handle = client.submit("itjobs.ticker", to=1)
    finish(client.store, handle.id, result={"count": 1})
    assert handle.result(timeout=1) == {"count": 1}


def test_result_raises_the_jobs_error(client):
    handle = client.submit("itjobs.ticker")
    finish(client.store, handle.id, error="ValueError: boom (at x.py:3 in f)")
    with pytest.raises(JobFailed, match="boom") as caught:
        handle.result()
    assert caught.value.error == "ValueError: boom (at x.py:3 in f)"
    assert caught.value.exit_code == 1


def test_result_of_a_cancelled_job_raises_cancelled(client):
    handle = client.submit("itjobs.ticker")
    handle.cancel()
    with pytest.raises(Cancelled) as caught:
        handle.result()
    assert caught.value.exit_code == 3


def test_result_times_out_and_says_no_runner_is_up(client):
    handle = client.submit("itjobs.ticker")
    with pytest.raises(Timeout, match="no runner is up") as caught:
        handle.result(timeout=0.1)
    assert caught.value.exit_code == 4


def test_retry_a_failed_job_through_the_handle(client):
    handle = client.submit("itjobs.ticker")
    finish(client.store, handle.id, error="boom")
    assert handle.retry().state() is JobState.PENDING
    assert handle.record().generation == 2


def test_cancel_of_a_finished_job_says_how_it_ended(client):
    handle = client.submit("itjobs.ticker")
    finish(client.store, handle.id, result=1)
    with pytest.raises(StaleTransitionError, match="has already succeeded"):
        handle.cancel()


def test_submit_many_stores_all_or_none(client):
    handles = client.submit_many([("itjobs.ticker", {"to": i}) for i in range(3)])
    assert [h.record().args["to"] for h in handles] == [0, 1, 2]
    with pytest.raises(JobArgumentError):
        client.submit_many([("itjobs.ticker", {"to": 1}), ("itjobs.ticker", {"to": "x"})])
    assert len(client.jobs()) == 3


def test_jobs_lists_newest_first_filtered(client):
    first = client.submit("itjobs.ticker")
    second = client.submit("itjobs.sleeper")
    first.cancel()
    assert [r.job_id for r in client.jobs()] == [second.id, first.id]
    assert [r.job_id for r in client.jobs(state="cancelled")] == [first.id]
    assert [r.job_id for r in client.jobs(name="itjobs.sleeper")] == [second.id]
    assert len(client.jobs(limit=1)) == 1


def test_value_not_fitting_the_annotation_is_refused_and_nothing_stored(client):
    with pytest.raises(JobArgumentError, match=r"to='abc'.*int"):
        client.submit("itjobs.ticker", to="abc")
    assert client.jobs() == []


def test_unknown_job_and_non_job_function(client):
    with pytest.raises(UnknownJobError):
        client.submit("itjobs.tickr")
    with pytest.raises(UnknownJobError, match="not a job"):
        client.submit(print)


@pytest.mark.parametrize(("value", "annotation", "ok"), [
    (3, int, True), (True, int, False), (3.5, int, False), (3, float, True),
    (True, bool, True), (1, bool, False), ("a", str, True), (1, str, False),
    ([1, 2], list[int], True), ([1, "a"], list[int], False), ({"a": 1}, dict, True),
    ({"a": 1.5}, dict[str, float], True), ([], dict, False), (None, int | None, True),
    (None, int, False), ("x", object, True), (7, "unknown annotation", True),
])
def test_fits(value, annotation, ok):
    assert fits(value, annotation) is ok


def test_unusable_state_dirs_are_one_line_usage_errors(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    for path, fragment in [(a_file / "state", "under the file"), (a_file, "is a file"),
                           (Path("/proc/harunner"), "virtual file system")]:
        with pytest.raises(UsageError, match=fragment) as caught:
            check_state_dir(path)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    check_state_dir(tmp_path / "new" / "state")
