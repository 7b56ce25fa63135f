"""Events the processor's code raises on are set apart, the rest of the batch applied (poison.py)."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from salespulse.processor.poison import MAX_SET_APART, apply_setting_apart


class Bug(Exception):
    pass


class Aggregator:
    """A pure fold over events: an event in `poison` raises; an event in `after` raises only
    once the event it names came before it (its state comes from it)."""

    def __init__(self, poison: set[int] = frozenset(), after: dict[int, int] | None = None,
                 broken: bool = False) -> None:
        self.poison, self.after, self.broken, self.calls = poison, after or {}, broken, 0

    async def apply(self, events: list[int]) -> list[int]:
        self.calls += 1
        await asyncio.sleep(0)
        if self.broken:
            raise Bug("the code fails whatever the events")
        seen = set()
        for event in events:
            if event in self.poison or self.after.get(event) in seen:
                raise Bug(f"event {event}")
            seen.add(event)
        return list(events)


def run(aggregator: Aggregator, events: list[int], limit: int = MAX_SET_APART):
    return asyncio.run(apply_setting_apart(aggregator.apply, events, limit))


@given(st.integers(0, 300).flatmap(lambda n: st.tuples(
    st.just(list(range(n))), st.sets(st.integers(0, max(n - 1, 0)), max_size=MAX_SET_APART) if n else st.just(set()))))
def test_exactly_the_failing_events_are_set_apart_and_the_rest_applied_in_order(case):
    events, poison = case
    aggregator = Aggregator(poison)
    result, set_apart = run(aggregator, events)
    assert result == [e for e in events if e not in poison]
    assert [event for event, _ in set_apart] == sorted(poison)
    assert all(isinstance(error, Bug) and str(error) == f"event {event}" for event, error in set_apart)
    # One try, then per failing event a check of the code alone (once) and a halving search.
    halvings = math.ceil(math.log2(len(events))) if len(events) > 1 else 0
    assert aggregator.calls <= 1 + len(poison) * (halvings + 1) + (1 if poison else 0)


def test_no_failure_costs_one_apply():
    aggregator = Aggregator()
    assert run(aggregator, list(range(1000))) == (list(range(1000)), [])
    assert aggregator.calls == 1


@given(st.integers(2, 200).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 2))))
def test_an_event_that_fails_only_after_another_is_set_apart_not_the_one_before(case):
    n, first = case
    later = n - 1
    result, set_apart = run(Aggregator(after={later: first}), list(range(n)))
    assert [event for event, _ in set_apart] == [later]
    assert result == list(range(n - 1))


def test_more_failing_events_than_the_limit_fail_the_batch():
    with pytest.raises(Bug):
        run(Aggregator(poison=set(range(0, 40, 3))), list(range(40)), limit=5)


def test_code_that_fails_whatever_the_events_fails_the_batch_and_sets_nothing_apart():
    aggregator = Aggregator(broken=True)
    with pytest.raises(Bug, match="whatever"):
        run(aggregator, list(range(100)))
    assert aggregator.calls == 2  # the batch, then nothing at all: no search


def test_running_out_of_memory_is_not_taken_for_an_event():
    calls = []

    async def apply(events):
        calls.append(len(events))
        raise MemoryError

    with pytest.raises(MemoryError):
        asyncio.run(apply_setting_apart(apply, list(range(10))))
    assert calls == [10]
