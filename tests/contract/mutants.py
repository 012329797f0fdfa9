"""Opening a store from a spec, and the deliberately broken stores the safety tests must catch.

`open_backend(spec)` opens the store a spec names (the test process and
contract_child.py both use it). With `spec["mutant"]` set (from
HARUNNER_CONTRACT_MUTANT), a broken variant is opened instead:

    etcd_no_compare        EtcdStore whose transition txns compare nothing
    etcd_unfenced_writes   EtcdStore whose checkpoint/progress txns compare nothing
    etcd_progress_fences   EtcdStore whose progress write also rewrites the fence key
    etcd_no_size_check     EtcdStore that sends any checkpoint (etcd's own limit still holds)
    etcd_split_batches     EtcdStore that sends each job of a chunk in a txn of its own
    etcd_feed_repeats      EtcdStore whose feed resumes at the cursor, not after it
    etcd_feed_skips        EtcdStore whose feed resumes two revisions after the cursor
    local_unfenced         the local Store without compare-and-set and without job locks
                           (store_child.py's UnfencedStore and NoLockStore together)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harunner.store import Store
from harunner.store.etcd.feed import Feed
from harunner.store.etcd.gateway import op_put
from harunner.store.etcd.keys import fence_value
from harunner.store.etcd.store import EtcdStore
from harunner.store.etcd.txns import Transactions
from harunner.store.model import JobState, Progress, to_json

MUTANT_ENV = "HARUNNER_CONTRACT_MUTANT"


class NoCompareTransactions(Transactions):
    def commit(self, writes: Any) -> Any:
        original = self.kv.txn

        def txn(compare: list, success: list, failure: list) -> Any:
            return original([], success, failure)

        self.kv.txn = txn  # type: ignore[method-assign]
        try:
            return super().commit(writes)
        finally:
            self.kv.txn = original  # type: ignore[method-assign]


class SplitTransactions(Transactions):
    def commit(self, writes: Any) -> Any:
        for write in writes:
            fresh = super().commit([write])
            if fresh is not None:
                return fresh
        return None


class NoCompareEtcdStore(EtcdStore):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.txns = NoCompareTransactions(self.kv, self.keys)


class SplitEtcdStore(EtcdStore):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.txns = SplitTransactions(self.kv, self.keys)


class UnfencedWritesEtcdStore(EtcdStore):
    def _fenced_put(self, job_id: str, generation: int, key: bytes, value: bytes) -> int:
        return self.kv.txn([], [op_put(key, value)], []).revision


class ProgressFencesEtcdStore(EtcdStore):
    def set_progress(self, job_id: str, generation: int, progress: Progress) -> None:
        super().set_progress(job_id, generation, progress)
        value = fence_value(JobState.RUNNING, generation) + b"+progress"
        self.kv.txn([], [op_put(self.keys.fence(job_id), value)], [])


class NoSizeCheckEtcdStore(EtcdStore):
    def write_checkpoint(self, job_id: str, generation: int, state: dict[str, Any]) -> int:
        value = to_json({"job_id": job_id, "generation": generation, "state": state}).encode()
        return self._fenced_put(job_id, generation, self.keys.checkpoint(job_id), value)


class ShiftedFeed(Feed):
    shift = 0

    def changes(self, after: int, limit: int, brief_only: bool = False) -> Any:
        return super().changes(max(0, after + self.shift), limit, brief_only)


class RepeatingFeed(ShiftedFeed):
    shift = -1


class SkippingFeed(ShiftedFeed):
    shift = 1


def _feed_store(feed: type[Feed]) -> type[EtcdStore]:
    class FeedEtcdStore(EtcdStore):
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            self.feed = feed(self.kv, self.keys, self._report)

    return FeedEtcdStore


ETCD_MUTANTS: dict[str, type[EtcdStore]] = {
    "": EtcdStore, "etcd_no_compare": NoCompareEtcdStore,
    "etcd_unfenced_writes": UnfencedWritesEtcdStore,
    "etcd_progress_fences": ProgressFencesEtcdStore,
    "etcd_no_size_check": NoSizeCheckEtcdStore, "etcd_split_batches": SplitEtcdStore,
    "etcd_feed_repeats": _feed_store(RepeatingFeed), "etcd_feed_skips": _feed_store(SkippingFeed),
}


def _local_mutant(name: str) -> type[Store]:
    if name != "local_unfenced":
        return Store
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "store"))
    from store_child import NoLockStore, UnfencedStore

    class UnfencedUnlockedStore(UnfencedStore, NoLockStore):
        pass

    return UnfencedUnlockedStore


def open_backend(spec: dict[str, Any]) -> Any:
    """The store a spec names (see conftest.Backend.spec)."""
    mutant = spec.get("mutant", "")
    if spec["kind"] == "local":
        cls = _local_mutant(mutant)
        return cls(Path(spec["root"]), lock_timeout=10.0)
    cls_etcd = ETCD_MUTANTS.get(mutant, EtcdStore)
    options = {key: spec[key] for key in ("max_value_bytes", "max_txn_ops") if key in spec}
    return cls_etcd(spec["endpoints"], Path(spec["root"]), cluster=spec["cluster"], **options)
