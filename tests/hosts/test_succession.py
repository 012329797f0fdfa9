"""The pure succession rules: who takes a dead runner's jobs, and when (fake clock)."""

from __future__ import annotations

from harunner.runner.succession import Succession
from harunner.store.model import Owner

BACKOFF = 0.2


def test_lowest_live_runner_takes_at_once_others_after_backoff_times_rank() -> None:
    low, mid = Succession(Owner(0, 3), BACKOFF), Succession(Owner(1, 7), BACKOFF)
    for core in (low, mid):
        core.listed({3: 0, 7: 1, 9: 2}, 0.0)
        core.left(9, 1.0)
    assert low.due(1.0) == [Owner(2, 9)]
    assert mid.due(1.0) == []
    assert mid.due(1.0 + BACKOFF) == [Owner(2, 9)]


def test_dead_owner_stays_due_until_settled() -> None:
    core = Succession(Owner(0, 3), BACKOFF)
    core.listed({3: 0, 9: 2}, 0.0)
    core.left(9, 0.0)
    assert core.due(0.0) == [Owner(2, 9)]
    assert core.due(0.1) == []
    assert core.due(0.0 + BACKOFF) == [Owner(2, 9)]  # a lost race is looked at again
    core.more(Owner(2, 9), 0.3)
    assert core.due(0.3) == [Owner(2, 9)]
    core.settled(Owner(2, 9))
    assert core.due(5.0) == [] and core.deadline() is None


def test_a_listing_turns_the_missing_into_departures() -> None:
    core = Succession(Owner(0, 3), BACKOFF)
    core.listed({3: 0, 5: 1, 9: 2}, 0.0)
    core.listed({3: 0, 9: 2}, 2.0)  # 5 left while the watch was broken
    assert core.due(2.0) == [Owner(1, 5)]


def test_owners_of_running_records_not_live_are_orphans() -> None:
    core = Succession(Owner(0, 12), BACKOFF)
    core.listed({12: 0, 13: 1}, 0.0)
    core.unowned([Owner(0, 3), Owner(1, 13), Owner(0, 12)], 0.0)  # a restart of everything
    assert core.due(0.0) == [Owner(0, 3)]


def test_self_is_never_an_orphan_and_rank_counts_only_live() -> None:
    core = Succession(Owner(1, 7), BACKOFF)
    core.listed({3: 0}, 0.0)  # its own key not listed yet
    assert core.rank() == 1
    core.left(7, 0.0)
    core.left(3, 0.0)
    assert core.rank() == 0
    assert core.due(0.0) == [Owner(0, 3)]  # now the lowest: at once


def test_a_key_put_again_after_it_left_does_not_resurrect() -> None:
    core = Succession(Owner(0, 3), BACKOFF)
    core.listed({3: 0, 9: 2}, 0.0)
    core.left(9, 0.0)
    core.joined(9, 2)
    assert 9 not in core.live
