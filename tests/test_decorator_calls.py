"""Every way of calling a cached function reaches the function's own signature and one key per call.

A plain cached function whose parameters are all positional-or-keyword gets a
wrapper spelled with those parameters (no ``*args``/``**kwargs`` on its hit
path); a call that leaves a parameter to its default, passes extra positional
arguments or an unknown keyword goes through the general wrapper or fails as
the function itself would. Checked here: calls by position, by name and mixed
are one entry; the function receives the caller's own arguments; parameter
names that shadow builtins or the wrapper's own helpers work; errors are the
function's.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import infercache as ic


def test_calls_by_position_by_name_and_mixed_are_one_entry() -> None:
    seen: list[tuple[Any, ...]] = []

    @ic.cache
    def f(a: Any, b: Any = 2, c: Any = 3) -> tuple[Any, ...]:
        seen.append((a, b, c))
        return (a, b, c)

    assert f(1, 2, 3) == (1, 2, 3)
    assert f(1) == f(1, 2) == f(a=1) == f(1, c=3) == f(c=3, b=2, a=1) == f(1, b=2, c=3) == (1, 2, 3)
    assert seen == [(1, 2, 3)]
    assert f(1, c=9) == (1, 2, 9) and f(c=9, a=1) == (1, 2, 9)
    assert seen == [(1, 2, 3), (1, 2, 9)]
    stats = f.cache.stats()
    assert (stats.hits, stats.misses) == (7, 2)


def test_the_function_receives_the_callers_arguments_on_a_miss() -> None:
    received: list[tuple[Any, Any]] = []

    @ic.cache
    def f(a: Any, b: Any = "default") -> str:
        received.append((a, b))
        return f"{a}-{b}"

    assert f("x", "y") == "x-y"
    assert f("z") == "z-default"
    assert f(b="w", a="v") == "v-w"
    assert f(a="v", b="w") == "v-w"  # a hit
    assert received == [("x", "y"), ("z", "default"), ("v", "w")]


def test_parameters_named_like_builtins_and_the_wrappers_helpers_work() -> None:
    @ic.cache
    def f(type: Any, len: Any, str: Any, float: Any, hooks: Any, store: Any, func: Any) -> tuple[Any, ...]:
        return (type, len, str, float, hooks, store, func)

    args = ("t", 2, "s", 0.5, None, True, -1)
    assert f(*args) == f(*args) == args
    assert f(type="t", len=2, str="s", float=0.5, hooks=None, store=True, func=-1) == args
    assert f.cache.stats().hits == 2

    @ic.cache
    def g(prompt: str, _ic_slot: float) -> str:  # a name of the wrapper's own: the general wrapper
        return f"{prompt}/{_ic_slot}"

    assert g("p", 0.5) == g("p", 0.5) == g(prompt="p", _ic_slot=0.5) == "p/0.5"
    assert g.cache.stats().hits == 2


def test_errors_of_a_bad_call_are_the_functions() -> None:
    def f(a: Any, b: Any) -> Any:
        return a

    cached = ic.cache(f)
    bad_calls = (((1,), {}), ((1, 2, 3), {}), ((1, 2), {"c": 3}), ((), {"b": 1}), ((1,), {"a": 1}))
    for args, kwargs in bad_calls:
        with pytest.raises(TypeError):
            f(*args, **kwargs)
        with pytest.raises(TypeError):
            cached(*args, **kwargs)
    with pytest.raises(TypeError, match=r"f\(\) got an unexpected keyword argument 'c'"):
        cached(1, 2, c=3)
    assert len(cached.cache) == 0


def test_the_wrapper_keeps_the_functions_name_signature_and_docstring() -> None:
    def infer(prompt: str, temperature: float = 0.7) -> str:
        """Doc."""
        return prompt

    cached = ic.cache(infer)
    assert cached.__name__ == "infer" and cached.__doc__ == "Doc."
    assert inspect.signature(cached) == inspect.signature(infer)
    assert cached.__wrapped__ is infer  # type: ignore[attr-defined]


@settings(max_examples=300, deadline=None)
@given(
    calls=st.lists(
        st.tuples(
            st.sampled_from([0, 1, 1.0, True, "1", None, 0.0, -0.0]),
            st.integers(1, 3),  # how many leading parameters are passed by position
            st.sets(st.sampled_from(["b", "c"])),  # which of b and c are given (else their defaults)
        ),
        min_size=1,
        max_size=12,
    )
)
def test_random_call_shapes_compute_once_per_distinct_arguments(calls: list[tuple[Any, int, set[str]]]) -> None:
    computed: list[tuple[Any, ...]] = []

    @ic.cache(max_size=0)
    def f(a: Any, b: Any = "b", c: Any = "c") -> tuple[Any, ...]:
        computed.append((a, b, c))
        return (a, b, c)

    distinct: set[bytes] = set()
    for value, positional, given_names in calls:
        full = {"a": value, "b": value if "b" in given_names else "b", "c": value if "c" in given_names else "c"}
        given = ["a", *sorted(given_names)]
        # A parameter goes by position only while every one before it does too.
        by_position = [n for i, n in enumerate(["a", "b", "c"][:positional]) if n in given and i == given.index(n)]
        args = [full[n] for n in by_position]
        kwargs = {n: full[n] for n in given if n not in by_position}
        result = f(*args, **kwargs)
        assert [repr(v) for v in result] == [repr(full[n]) for n in ("a", "b", "c")]
        distinct.add(ic.keys.make_key((full["a"], full["b"], full["c"])))
    assert len(computed) == len(distinct)
    stats = f.cache.stats()
    assert (stats.hits + stats.misses, stats.misses) == (len(calls), len(distinct))


@pytest.mark.parametrize("shape", ["exact", "args"])
def test_hits_and_misses_from_many_threads_are_each_counted_once(shape: str) -> None:
    import sys
    import threading

    if shape == "exact":

        @ic.cache(max_size=4)
        def f(prompt: str, temperature: float) -> str:
            return prompt

    else:

        @ic.cache(max_size=4)
        def f(*args: Any) -> str:  # the *args wrapper's inlined lookup
            return str(args[0])

    rounds, workers = 3000, 4
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for i in range(rounds):
                # mostly hits on two hot keys, a miss (and an eviction) now and then
                prompt = "hot" if i % 2 else "warm" if i % 7 else f"cold {seed} {i}"
                assert f(prompt, 0.5) == prompt
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    stats = f.cache.stats()
    assert stats.hits + stats.misses + stats.joins == rounds * workers
    assert stats.size <= 4 and stats.size == len(f.cache)
