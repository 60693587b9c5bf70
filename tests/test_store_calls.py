"""The store's single-flight table: ``Store.lead``, ``Store.settle``, ``Store.forget``.

A miss looks up the store and registers its call in one critical section
(``lead``), and a leader stores its value and leaves the table in one more
(``settle``). ``settle`` has a short path of its own for the usual entry (a
shared slot in a store bounded by count only); whatever path it takes, a
miss settled through the table must leave the store exactly as the general
path does (``begin`` then ``set`` with the ticket).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from infercache.flight import Call, check_recursion
from infercache.store import FOLLOW, FOUND, LEAD, Store, slot_of

NAMESPACES = ["", "", "", "", "A", "B"]  # the shared namespace most often, as in an app
KEYS = [b"k", b"j", b"i", b"h", b"g", b"f"]
BOUNDS = [
    {"max_size": 3},  # the short path of settle
    {"max_size": 0},  # unbounded: the short path, nothing evicted
    {"max_size": 3, "max_memory": 150},  # _put's path: the memory bound
    {"max_size": 2, "ttl": 100.0},  # _put's path: expiry order kept
]


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def _never_recursive(call: Any, owner: int) -> None:
    return None


def _ops() -> st.SearchStrategy[list[tuple[Any, ...]]]:
    ns, key = st.sampled_from(NAMESPACES), st.sampled_from(KEYS)
    size = st.integers(min_value=0, max_value=60)
    how = st.sampled_from(["delete", "clear_namespace", "clear", "other_key", "other_namespace"])
    miss = st.tuples(st.just("miss"), ns, key, size)
    return st.lists(
        st.one_of(
            miss,  # misses most often: they fill the store and evict
            miss,
            miss,
            miss,
            miss,
            st.tuples(st.just("covered"), ns, key, size, how),
            st.tuples(st.just("hit"), ns, key),
            st.tuples(st.just("delete"), ns, key),
            st.tuples(st.just("clear_namespace"), ns),
            st.tuples(st.just("tick"), st.floats(min_value=0, max_value=80)),
        ),
        min_size=10,
        max_size=50,
    )


def _view(store: Store) -> tuple[Any, ...]:
    """Everything observable of a store but the computation counters (which only settle keeps)."""
    stats = store.stats()
    entries = [(k, e.value, e.size, e.cost, e.expires) for k, e in store.entries()]
    per_namespace = {ns: [e.value for e in store.values(ns)] for ns in sorted(set(NAMESPACES))}
    return (
        entries,
        per_namespace,
        store.memory,
        stats.hits,
        stats.misses,
        stats.evictions,
        stats.expirations,
        stats.evicted,
        stats.size,
    )


def _invalidate(store: Store, how: str, ns: str, key: bytes) -> None:
    if how == "delete":
        store.delete(ns, key)
    elif how == "clear_namespace":
        store.clear_namespace(ns)
    elif how == "clear":
        store.clear()
    elif how == "other_key":
        store.delete(ns, b"other" + key)
    else:
        store.clear_namespace(ns + "-other")


@pytest.mark.parametrize("bounds", BOUNDS, ids=lambda b: ",".join(f"{k}={v}" for k, v in b.items()))
@settings(max_examples=150, deadline=None)
@given(ops=_ops())
@example(ops=[("miss", "", key, 40) for key in KEYS])  # shared misses past every bound
@example(ops=[("miss", "A", b"k", 40), *[("miss", "", key, 40) for key in KEYS], ("clear_namespace", "A")])
def test_a_miss_settled_through_the_table_leaves_the_store_as_begin_and_set_do(
    bounds: dict[str, Any], ops: list[tuple[Any, ...]]
) -> None:
    clock = Clock()
    general, table = Store(**bounds, clock=clock), Store(**bounds, clock=clock)
    serial = 0
    for op in ops:
        serial += 1
        if op[0] in ("miss", "covered"):
            _, ns, key, size = op[:4]
            if general.peek(ns, key) is not None:
                continue  # a live entry is a hit, not a miss: lead() would say FOUND
            ticket = general.begin(ns, key)
            kind, call = table.lead(slot_of(ns, key), 1, Call, _never_recursive)
            assert kind == LEAD
            if op[0] == "covered":
                _invalidate(general, op[4], ns, key)
                _invalidate(table, op[4], ns, key)
            stored = general.set(ns, key, serial, size, ticket=ticket, cost=0.5)
            assert table.settle(slot_of(ns, key), call, serial, size, 0.5) is stored
            assert table.in_flight() == 0
        elif op[0] == "hit":
            assert (general.get(op[1], op[2]) is None) is (table.get(op[1], op[2]) is None)
        elif op[0] == "delete":
            assert general.delete(op[1], op[2]) == table.delete(op[1], op[2])
        elif op[0] == "clear_namespace":
            assert general.clear_namespace(op[1]) == table.clear_namespace(op[1])
        else:
            clock.now += op[1]
        assert _view(table) == _view(general)


def test_lead_says_found_for_an_entry_stored_since_the_lookup_and_counts_nothing() -> None:
    store = Store()
    assert store.get("", b"k") is None  # the caller's lookup: one miss
    store.set("", b"k", "v", 1)  # another leader finished meanwhile
    kind, entry = store.lead(b"k", 1, Call, check_recursion)
    assert kind == FOUND and entry.value == "v"
    stats = store.stats()
    assert (stats.hits, stats.misses, stats.joins) == (0, 1, 0)
    assert store.in_flight() == 0


def test_lead_turns_the_followers_miss_into_a_join_and_makes_one_future() -> None:
    store = Store()
    for _ in range(3):
        store.get("", b"k")  # three callers miss
    kind, call = store.lead(b"k", 1, Call, check_recursion)
    assert kind == LEAD and call.future is None  # nobody waits yet: no future made
    futures = [store.lead(b"k", owner, Call, check_recursion) for owner in (2, 3)]
    assert [kind for kind, _ in futures] == [FOLLOW, FOLLOW]
    assert futures[0][1] is futures[1][1] is call.future
    stats = store.stats()
    assert (stats.misses, stats.joins) == (1, 2)
    assert store.settle(b"k", call, "v", 1, 0.25) is True
    assert call.future is not None and not call.future.done()  # the engine resolves it, outside the lock
    stats = store.stats()
    assert (stats.computations, stats.compute_seconds, stats.size) == (1, 0.25, 1)


def test_lead_refuses_a_caller_inside_the_call_before_counting_it_as_a_join() -> None:
    store = Store()
    store.get("", b"k")
    _, call = store.lead(b"k", threading.get_ident(), Call, check_recursion)
    store.get("", b"k")
    with pytest.raises(RecursionError):
        store.lead(b"k", threading.get_ident(), Call, check_recursion)  # the leader's own thread
    stats = store.stats()
    assert (stats.misses, stats.joins) == (2, 0)
    assert store.forget(b"k", call, 0.5) is None
    assert (store.stats().computations, store.in_flight()) == (1, 0)


def test_a_call_covered_by_an_invalidation_leaves_the_table_and_a_new_leader_keeps_its_place() -> None:
    store = Store()
    _, old = store.lead(b"k", 1, Call, check_recursion)
    store.delete("", b"k")
    assert old.stale and store.in_flight() == 0
    kind, new = store.lead(b"k", 2, Call, check_recursion)
    assert kind == LEAD and new is not old  # not joined: the old result will not be stored
    assert store.settle(b"k", old, "old", 1, 0.0) is False
    assert store.in_flight() == 1  # the new leader's call is still the slot's
    assert store.settle(b"k", new, "new", 1, 0.0) is True
    assert store.peek("", b"k").value == "new"


def test_a_call_is_the_ticket_of_a_plain_set_too() -> None:
    """Engine._adopt stores what another process computed with set(ticket=call)."""
    store = Store()
    _, call = store.lead(slot_of("A", b"k"), 1, Call, check_recursion)
    assert store.set("A", b"k", "v", 1, ticket=call) is True
    assert store.in_flight() == 0
    assert store.set("A", b"k", "again", 1, ticket=call) is False  # used once
    assert store.clear_namespace("A") == 1


# -- settle's short path and the counters of the table ---------------------------------


def test_settle_holds_a_store_of_one_to_one_entry_with_its_own_size() -> None:
    store = Store(max_size=1)
    for key, size in ((b"a", 5), (b"b", 7), (b"c", 3)):
        _, call = store.lead(key, 1, Call, check_recursion)
        assert store.settle(key, call, key.decode(), size, 0.0) is True
    assert [k for k, _ in store.entries()] == [b"c"]
    assert store.memory == 3 and store.stats().evicted["size"] == 2


def test_settle_keeps_the_memory_bound_without_a_ttl() -> None:
    store = Store(max_size=10, max_memory=100)
    for key in (b"a", b"b"):
        _, call = store.lead(key, 1, Call, check_recursion)
        store.settle(key, call, key.decode(), 60, 0.0)
    assert [k for k, _ in store.entries()] == [b"b"]
    assert store.memory == 60 and store.stats().evicted["memory"] == 1


def test_settle_over_an_entry_stored_meanwhile_replaces_it_and_counts_one() -> None:
    """A value stored under the slot while its call computed (``Cache.set``) is replaced, not added to."""
    store = Store()
    _, call = store.lead(b"k", 1, Call, check_recursion)
    store.set("", b"k", "set meanwhile", 40)
    assert store.settle(b"k", call, "computed", 10, 0.0) is True
    assert store.peek("", b"k").value == "computed"
    assert store.memory == 10 and len(store) == 1


def test_settle_with_nothing_to_store_says_so_and_forgets_the_call() -> None:
    store = Store()
    _, call = store.lead(b"k", 1, Call, check_recursion)
    assert store.settle(b"k", call, None, -1, 0.5) is False  # a result that could not be kept
    assert store.peek("", b"k") is None and store.in_flight() == 0
    assert store.stats().computations == 1


def test_a_short_path_eviction_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    store = Store(max_size=1)
    with caplog.at_level(logging.DEBUG, logger="infercache"):
        for key in (b"a", b"b"):
            _, call = store.lead(key, 1, Call, check_recursion)
            store.settle(key, call, "v", 1, 0.0)
    assert [r.getMessage() for r in caplog.records] == [
        "infercache: evicted 1 entries to stay within the cache's bounds"
    ]


def test_computations_and_their_seconds_add_up_however_a_call_ends() -> None:
    store = Store()
    for i, key in enumerate((b"a", b"b")):
        _, call = store.lead(key, 1, Call, check_recursion)
        store.settle(key, call, "v", 1, 0.25 * (i + 1))  # stored: 0.25 + 0.5
    for key in (b"c", b"d"):
        _, call = store.lead(key, 1, Call, check_recursion)
        store.forget(key, call, 1.0)  # raised after a second each
    _, call = store.lead(b"e", 1, Call, check_recursion)
    store.forget(b"e", call)  # abandoned before computing: not counted
    store.computed(2.0)
    store.computed(4.0)  # counted without storing (a tier's leader, a generator run)
    stats = store.stats()
    assert stats.computations == 6
    assert stats.compute_seconds == 0.25 + 0.5 + 1.0 + 1.0 + 2.0 + 4.0


def test_forget_hands_over_the_followers_future_and_the_call_keeps_none() -> None:
    store = Store()
    _, call = store.lead(b"k", 1, Call, check_recursion)
    _, future = store.lead(b"k", 2, Call, check_recursion)
    assert store.forget(b"k", call) is future
    assert call.future is None  # the call may live on in contexts; its followers' future must not
    assert store.forget(b"k", call) is None  # forgotten already: nobody to wake


def test_joins_and_probes_move_misses_exactly() -> None:
    store = Store()
    for _ in range(4):
        store.get("", b"k")  # four misses
    _, call = store.lead(b"k", 1, Call, check_recursion)
    store.lead(b"k", 2, Call, check_recursion)  # a follower: its miss becomes a join
    store.count_join()
    store.count_join()  # two more (the engine's async and tier paths)
    store.uncount_miss()  # a framework's probe: its miss is counted when it calls again
    stats = store.stats()
    assert (stats.misses, stats.joins) == (0, 3)
    store.forget(b"k", call)


def test_lead_finds_an_entry_live_until_its_expiry_and_not_at_it() -> None:
    clock = Clock()
    store = Store(ttl=10, clock=clock)
    store.set("", b"k", "v", 1)
    clock.now += 9.5
    assert store.lead(b"k", 1, Call, check_recursion)[0] == FOUND
    clock.now += 0.5  # the expiry, exactly
    kind, call = store.lead(b"k", 1, Call, check_recursion)
    assert kind == LEAD
    store.forget(b"k", call)


def test_a_session_call_covered_by_deleting_its_key_is_not_stored() -> None:
    store = Store()
    slot = slot_of("A", b"k")
    _, call = store.lead(slot, 1, Call, check_recursion)
    store.delete("A", b"k")
    assert call.stale and store.in_flight() == 0
    assert store.settle(slot, call, "computed before the delete", 1, 0.0) is False
    assert store.peek("A", b"k") is None
