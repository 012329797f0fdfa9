"""What only the etcd backend has: unknown outcomes, the version check, etcd's txn limit,
compaction under the feed, and the sizes of records and results.

Unknown outcomes are made real: the gateway client's txn is wrapped so that one
write is sent to etcd and applied, and then its answer is lost
(`EtcdUnavailable`), or is lost before it is sent. A store that retried blindly
would then report a stale transition for its own applied change (the mutant
`BlindRetryTransactions` below: seen failing), or write twice.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harunner.errors import JobArgumentError, StoreError
from harunner.store import Assignment, JobState, Outcome, Owner, Submission
from harunner.store.etcd.gateway import EtcdUnavailable, KeyValue
from harunner.store.etcd.kv import EtcdVersionError
from harunner.store.etcd.store import EtcdStore
from harunner.store.etcd.txns import Transactions, decode, record_value
from harunner.store.model import record_to_dict, to_json

pytestmark = pytest.mark.integration
A = Owner(0, 1)


class BlindRetryTransactions(Transactions):
    """Deliberately broken: after an unknown outcome, computes again without looking."""

    def _decide(self, writes, job_keys, error):  # noqa: ANN001, ANN202
        return dict(self.kv.get_many(job_keys)) or dict.fromkeys(job_keys)


@pytest.fixture
def store(etcd_node, tmp_path: Path) -> Iterator[EtcdStore]:  # noqa: ANN001
    opened = EtcdStore(etcd_node.endpoints, tmp_path / "state",
                       cluster=f"s{uuid.uuid4().hex[:12]}")
    opened.init()
    yield opened
    opened.close()


def lose_one_answer(store: EtcdStore, *, applied: bool) -> list[int]:
    """Make the next write txn end in `EtcdUnavailable`, after (or before) etcd applied it."""
    client = store.kv.client()
    real, calls = client.txn, []

    def txn(compare: list, success: list, failure: list):  # noqa: ANN202
        writes = any("requestPut" in op or "request_delete_range" in op for op in success)
        if writes and not calls:
            calls.append(1)
            if applied:
                real(compare, success, failure)
            raise EtcdUnavailable("connection reset (injected)")
        return real(compare, success, failure)

    client.txn = txn  # type: ignore[method-assign]
    return calls


def test_an_applied_change_whose_answer_was_lost_is_recognised(store: EtcdStore) -> None:
    job = store.submit("jobs.demo", {}).job_id
    lost = lose_one_answer(store, applied=True)
    record = store.assign(job, A, 0)
    assert lost and (record.state, record.generation, record.owner) == (JobState.RUNNING, 1, A)
    assert [entry.split()[1] for entry in store.get(job).history] == ["pending@0", "running@1"]


def test_the_blind_retry_mutant_reports_its_own_change_as_stale(
        etcd_node, tmp_path: Path) -> None:  # noqa: ANN001
    """The test above, on a store that retries blindly: it must fail (and does)."""
    mutant = EtcdStore(etcd_node.endpoints, tmp_path / "m", cluster=f"m{uuid.uuid4().hex[:8]}")
    mutant.txns = BlindRetryTransactions(mutant.kv, mutant.keys)
    job = mutant.submit("jobs.demo", {}).job_id
    lose_one_answer(mutant, applied=True)
    with pytest.raises(StoreError):
        mutant.assign(job, A, 0)


def test_a_change_lost_before_etcd_applied_it_is_decided_and_sent_again(
        store: EtcdStore) -> None:
    job = store.submit("jobs.demo", {}).job_id
    lost = lose_one_answer(store, applied=False)
    assert store.assign(job, A, 0).generation == 1 and lost


def test_a_checkpoint_whose_answer_was_lost_is_recognised(store: EtcdStore) -> None:
    job = store.submit("jobs.demo", {}).job_id
    store.assign(job, A, 0)
    lose_one_answer(store, applied=True)
    seq = store.write_checkpoint(job, 1, {"v": 1})
    assert store.read_checkpoint(job).seq == seq


def test_a_submission_whose_answer_was_lost_is_not_created_twice(store: EtcdStore) -> None:
    lose_one_answer(store, applied=True)
    records = store.submit_many([Submission("jobs.demo", {"k": k}) for k in range(5)])
    assert [r.args["k"] for r in records] == list(range(5))
    assert len(store.list_jobs()) == 5


class OldEtcd(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps({"etcdserver": "3.3.25", "etcdcluster": "3.3.0"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_an_etcd_older_than_3_4_is_refused_with_its_version(tmp_path: Path) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), OldEtcd)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(EtcdVersionError, match=r"version 3\.3\.25; harunner needs etcd 3\.4"):
            EtcdStore([url], tmp_path).init()
    finally:
        server.shutdown()
        server.server_close()


def test_big_batches_are_split_to_etcds_txn_limit_and_a_wrong_limit_is_named(
        store: EtcdStore, etcd_node, tmp_path: Path) -> None:  # noqa: ANN001
    records = store.submit_many([Submission("jobs.demo", {"k": k}) for k in range(300)])
    assert len(store.assign_many([Assignment(r.job_id, A, 0) for r in records])) == 300
    too_many = EtcdStore(etcd_node.endpoints, tmp_path, cluster=store.keys.cluster,
                         max_txn_ops=1000)
    with pytest.raises(StoreError, match="set etcd_max_txn_ops to etcd's --max-txn-ops"):
        too_many.submit_many([Submission("jobs.demo", {})] * 100)
    assert len(store.list_jobs()) == 300


def test_the_feed_survives_a_compaction_past_its_cursor(store: EtcdStore) -> None:
    cursor = store.head()
    jobs = [r.job_id for r in store.submit_many([Submission("jobs.demo", {})] * 10)]
    store.assign_many([Assignment(job, A, 0) for job in jobs[:4]])
    store.kv.client().compact(store.head())
    seen = {}
    for _ in range(20):
        records, after = store.changes(cursor, 3)
        seen.update((r.job_id, r) for r in records)
        if after == cursor:
            break
        cursor = after
    assert sorted(seen) == sorted(jobs)
    assert all(seen[job] == store.get(job) for job in jobs)


def test_records_and_results_above_the_limit_are_refused_or_failed(
        etcd_node, tmp_path: Path) -> None:  # noqa: ANN001
    store = EtcdStore(etcd_node.endpoints, tmp_path, cluster=f"z{uuid.uuid4().hex[:8]}",
                      max_value_bytes=32 * 1024)
    with pytest.raises(JobArgumentError, match="etcd_max_value_bytes"):
        store.submit("jobs.demo", {"blob": "x" * 40_000})
    assert store.list_jobs() == []
    job = store.submit("jobs.demo", {}).job_id
    store.assign(job, A, 0)
    failed = store.finish(job, 1, result="y" * 20_000)
    assert failed.state is JobState.FAILED and "result of job" in failed.error


def test_a_feed_waits_for_what_was_acknowledged_elsewhere(store: EtcdStore, etcd_node,
                                                          tmp_path: Path) -> None:  # noqa: ANN001
    other = EtcdStore(etcd_node.endpoints, tmp_path / "o", cluster=store.keys.cluster)
    cursor = store.head()
    started = time.monotonic()
    job = other.submit("jobs.demo", {}).job_id
    records, _ = store.changes(cursor, 10)
    assert [r.job_id for r in records] == [job] and time.monotonic() - started < 5


def test_the_record_codec_is_the_models_and_round_trips(store: EtcdStore) -> None:
    job = store.submit("jobs.demo", {"nested": [1, {"a": None}]}, retries=1).job_id
    store.assign(job, A, 0)
    record = store.finish(job, 1, result={"r": [1.5, "x"]})
    value = record_value(record)
    assert value == to_json(record_to_dict(record)).encode()
    assert decode(KeyValue(b"k", value, 1, 1, 1, 0), job) == record == store.get(job)


def test_a_batch_of_big_records_is_split_below_etcds_request_limit(etcd_node,
                                                                   tmp_path: Path) -> None:  # noqa: ANN001
    """31 records of 100 KB in one txn would be 3 MB, over etcd's 1.5 MiB request limit."""
    store = EtcdStore(etcd_node.endpoints, tmp_path, cluster=f"b{uuid.uuid4().hex[:8]}")
    records = store.submit_many([Submission("jobs.demo", {"blob": "x" * 100_000, "k": k})
                                 for k in range(31)])
    assert len(store.assign_many([Assignment(r.job_id, A, 0) for r in records])) == 31
    assert all(r.state is JobState.RUNNING for r in store.running())


def test_bounded_reads_read_no_more_records_than_they_return(store: EtcdStore) -> None:
    """300 finished jobs present: each indexed read fetches only the records it answers with."""
    done = store.submit_many([Submission("jobs.demo", {})] * 300)
    store.assign_many([Assignment(r.job_id, A, 0) for r in done])
    store.finish_many([Outcome(r.job_id, 1, result=None) for r in done])
    waiting = store.submit_many([Submission("jobs.demo", {})] * 3)
    store.assign_many([Assignment(r.job_id, A, 0) for r in waiting[:2]])
    fetched: list[int] = []
    real = store.kv.get_many

    def counting(keys):  # noqa: ANN001, ANN202
        fetched.append(len(keys))
        return real(keys)

    store.kv.get_many = counting  # type: ignore[method-assign]
    for read, most in ((lambda: store.due_pending(time.time() + 1, 2), 2),
                       (lambda: store.owned_by(A, 1), 1), (store.running, 2),
                       (store.count_unfinished, 0)):
        fetched.clear()
        read()
        assert sum(fetched) <= most, f"{read} fetched {sum(fetched)} records"
    cursor = store.head()
    store.finish(waiting[0].job_id, 1, result=1)
    records, _ = store.changes(cursor, 1000)
    assert [r.job_id for r in records] == [waiting[0].job_id]
