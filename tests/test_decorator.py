"""``@cache``: function kinds, wrapping (callable objects, partials, methods,
runtime wraps), key functions, settings, stats, bounds and ttl, errors, and
mutation safety of results.

Argument binding has its own tests in ``test_binding.py``; concurrency and
invalidation in flight are in ``test_flight.py``.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import gc
import logging
import pickle
import threading
from dataclasses import dataclass

import numpy as np
import pytest
from flight_fixtures import KINDS, call, gated

import infercache as ic
from infercache import engine as engine_module
from infercache.store import Store


def test_bare_and_parametrised_decorator_and_runtime_wrap() -> None:
    runs = []

    @ic.cache
    def a(x):
        runs.append(x)
        return x * 2

    @ic.cache(max_size=4)
    def b(x):
        runs.append(x)
        return x * 3

    assert a(2) == a(2) == 4
    assert b(2) == b(2) == 6
    assert runs == [2, 2]

    def helper(x):
        runs.append(("h", x))
        return x + 1

    for _ in range(3):
        assert ic.cache(helper)(5) == 6  # runtime wraps share one store
    assert runs.count(("h", 5)) == 1
    assert ic.cache(helper) is ic.cache(helper)
    assert ic.cache(helper, max_size=3) is not ic.cache(helper)


def test_runtime_wrap_rejects_non_callable() -> None:
    with pytest.raises(TypeError, match=r"cache\(fn\)\(\*args\)"):
        ic.cache(42)  # type: ignore[call-overload]


def test_key_function_ignores_parameters() -> None:
    runs = []

    @ic.cache(key=lambda kw: kw["prompt"])
    def generate(prompt, temperature=0.7):
        runs.append(temperature)
        return prompt.upper()

    assert generate("hi", temperature=0.1) == "HI"
    assert generate("hi", temperature=0.9) == "HI"
    assert runs == [0.1]


def test_key_function_that_raises_is_a_clear_error() -> None:
    @ic.cache(key=lambda kw: kw["missing"])
    def f(x):
        return x

    with pytest.raises(ic.CacheKeyError, match="key= function") as info:
        f(1)
    assert isinstance(info.value.__cause__, KeyError)


def test_bad_settings_fail_at_decoration_time() -> None:
    with pytest.raises(ValueError, match="max_memory"):
        ic.cache(max_memory="lots")
    with pytest.raises(ValueError):
        ic.cache(max_size=-1)
    with pytest.raises(ValueError):
        ic.cache(ttl=-3)
    with pytest.raises(ValueError):
        ic.cache(digest="md5")
    with pytest.raises(TypeError):
        ic.cache(key="prompt")  # type: ignore[arg-type]



def test_bad_settings_have_the_same_clear_messages_for_cache_and_Cache() -> None:
    for make in (ic.cache, ic.Cache):
        with pytest.raises(ValueError, match="not understood"):
            make(max_memory="10 parsecs")
        with pytest.raises(ValueError, match="positive"):
            make(max_memory="-1mb")
        with pytest.raises(ValueError, match="positive"):
            make(max_memory=0)
        with pytest.raises(ValueError, match="max_memory"):
            make(max_memory=True)
        with pytest.raises(ValueError, match="ttl"):
            make(ttl=-1)
    with pytest.raises(TypeError, match="key="):
        ic.cache(key=3)


def test_unhashable_argument_names_the_parameter() -> None:
    @ic.cache
    def f(model_input, lock):
        return 1

    with pytest.raises(TypeError, match="lock"):
        f(1, threading.Lock())



class ModelWithLock:
    def __init__(self) -> None:
        self.lock = threading.Lock()


def test_a_lock_inside_an_argument_names_the_parameter_and_the_path() -> None:
    @ic.cache
    def run(model, x):
        return x

    with pytest.raises(ic.UnhashableError) as err:
        run(ModelWithLock(), 1)
    assert err.value.where == "model" and "model.lock" in str(err.value)


class Req:
    """A plain request object (module level: a local class cannot be keyed by content)."""

    def __init__(self, text):
        self.text = text


def test_identity_hashed_objects_never_served_wrong_results() -> None:
    """gr.cache keys plain objects by hash() (their id): ids get reused, results go wrong."""

    @ic.cache(max_size=0)
    def echo(r):
        return r.text

    wrong = 0
    for i in range(2000):
        r = Req(f"text-{i}")
        if echo(r) != r.text:
            wrong += 1
        del r
        gc.collect(0)
    assert wrong == 0
    assert echo(Req("text-7")) == "text-7"
    assert echo.cache.stats().hits == 1


def test_numpy_arguments_hit_by_content() -> None:
    runs = []

    @ic.cache
    def total(img):
        runs.append(1)
        return float(img.sum())

    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert total(a) == total(a.copy()) == 66.0
    assert total(np.asfortranarray(a)) == 66.0  # same content, other layout
    assert len(runs) == 1
    assert total(a.astype(np.int16)) == 66.0  # other dtype: other key
    assert len(runs) == 2


def test_callers_cannot_corrupt_cached_results() -> None:
    @ic.cache
    def tags(x):
        return ["a", "b"]

    t = tags(1)
    t.append("MUTATED")
    assert tags(1) == ["a", "b"]
    t2 = tags(1)
    t2.append("again")
    assert tags(1) == ["a", "b"]



def test_callers_cannot_corrupt_yielded_values() -> None:
    @ic.cache
    def parts(k):
        yield [1]
        yield {"x": [1]}

    first = list(parts(1))
    first[0].append(2)
    first[1]["x"].append(2)
    hit = list(parts(1))
    assert hit == [[1], {"x": [1]}]
    hit[1]["x"].append(3)
    assert list(parts(1)) == [[1], {"x": [1]}]


def test_producer_keeping_a_reference_cannot_corrupt_cache() -> None:
    shared = {"v": [1]}

    @ic.cache
    def f(x):
        return shared

    f(0)
    shared["v"].append(2)
    assert f(0) == {"v": [1]}


def test_numpy_results_are_read_only_and_stable() -> None:
    @ic.cache
    def f(x):
        return np.zeros(3)

    first = f(0)
    first[0] = 5  # the leader's own array stays writable
    hit = f(0)
    assert hit.tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError):
        hit[0] = 1


def test_exceptions_are_not_cached() -> None:
    runs = []

    @ic.cache
    def flaky(x):
        runs.append(x)
        if len(runs) == 1:
            raise RuntimeError("boom")
        return x

    with pytest.raises(RuntimeError):
        flaky(1)
    assert flaky(1) == 1
    assert flaky(1) == 1
    assert len(runs) == 2


def test_stats_and_handle() -> None:
    @ic.cache(max_size=2)
    def f(x):
        return x

    f(1), f(1), f(2), f(3)
    s = f.cache.stats()
    assert (s.hits, s.misses, s.evictions, s.size) == (1, 3, 1, 2)
    assert s.memory > 0
    assert s.hit_ratio == pytest.approx(0.25)
    assert len(f.cache) == 2
    f.cache.clear()
    assert len(f.cache) == 0
    assert "entries" in repr(f.cache)


def test_clear_session_of_one_cached_function_drops_that_session_only() -> None:
    runs = []

    @ic.cache(per_session=True)
    def f(x):
        runs.append(ic.current_session())
        return x

    @ic.cache(per_session=True)
    def g(x):
        runs.append(("g", ic.current_session()))
        return x

    for sid in ("alice", "bob"):
        with ic.session(sid):
            f(1), g(1)
    f(1)  # outside any session: the anonymous namespace
    assert f.cache.clear_session("alice") == 1
    assert len(f.cache) == 2 and len(g.cache) == 2
    for sid in ("alice", "bob"):
        with ic.session(sid):
            f(1), g(1)
    f(1)
    assert runs == ["alice", ("g", "alice"), "bob", ("g", "bob"), None, "alice"]
    assert f.cache.clear_session("nobody") == 0


def test_max_memory_bounds_objects_holding_arrays() -> None:
    """gr.cache measures such objects with getsizeof and holds 20x its bound."""

    class KV:
        def __init__(self, n):
            self.k = np.ones(n, dtype=np.float32)

    @ic.cache(max_memory="10mb", max_size=0)
    def build(i):
        return KV(1_000_000)  # 4 MB each

    for i in range(20):
        build(i)
        assert build.cache.stats().memory <= 10_000_000
    assert len(build.cache) == 2



def test_max_memory_counts_every_yield_of_a_generator() -> None:
    @ic.cache(max_memory="1mb", max_size=0)
    def chunks(i):
        for _ in range(3):
            yield np.zeros(100_000, np.uint8)  # ~300 kB per call

    for i in range(10):
        assert len(list(chunks(i))) == 3
        assert chunks.cache.stats().memory <= 1_000_000
    assert 1 <= len(chunks.cache) <= 3


class FakeClock:
    """A monotonic clock the test moves by hand (no sleeping, no timing)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A fake clock read by the store of every cache made during the test.

    Each cache's engine builds its store as ``Store(max_size, max_memory, ttl)``;
    here it is built with the store's own ``clock=`` parameter set to the fake.
    """
    fake = FakeClock()
    monkeypatch.setattr(engine_module, "Store", functools.partial(Store, clock=fake))
    return fake


@pytest.mark.parametrize("kind", KINDS)
def test_ttl_expires_results_of_every_function_kind_exactly_at_ttl(kind: str, clock: FakeClock) -> None:
    gates = [threading.Event() for _ in range(2)]
    for gate in gates:
        gate.set()
    started: list = []
    f = gated(kind, gates, started, ttl=10)
    assert call(kind, f, 1) == [1, 0]
    clock.now = 9.9
    assert call(kind, f, 1) == [1, 0]  # a hit
    clock.now = 10.0
    assert call(kind, f, 1) == [1, 1]  # expired: computed again
    assert len(started) == 2
    assert f.cache.stats().evicted["ttl"] == 1


def test_generator_all_yields_replayed() -> None:
    runs = []

    @ic.cache
    def stream(prompt):
        runs.append(prompt)
        out = ""
        for tok in prompt.split():
            out += tok
            yield out

    assert list(stream("a b c")) == ["a", "ab", "abc"]
    assert list(stream("a b c")) == ["a", "ab", "abc"]
    assert len(runs) == 1


def test_generator_zero_yields_is_a_valid_result() -> None:
    runs = []

    @ic.cache
    def nothing(x):
        runs.append(x)
        return
        yield  # pragma: no cover

    assert list(nothing(1)) == []
    assert list(nothing(1)) == []
    assert len(runs) == 1


def test_generator_closed_early_or_raising_is_not_cached() -> None:
    runs = []

    @ic.cache
    def stream(n):
        runs.append(n)
        for i in range(n):
            if n == 99 and i == 2:
                raise ValueError("bad")
            yield i

    g = stream(5)
    assert next(g) == 0
    g.close()
    assert list(stream(5)) == [0, 1, 2, 3, 4]
    assert len(runs) == 2
    with pytest.raises(ValueError):
        list(stream(99))
    with pytest.raises(ValueError):
        list(stream(99))
    assert len(runs) == 4


def test_async_function_and_async_generator() -> None:
    runs = []

    @ic.cache
    async def transcribe(audio):
        runs.append(audio)
        await asyncio.sleep(0)
        return audio[::-1]

    @ic.cache
    async def summary(text):
        runs.append(text)
        for w in text.split():
            await asyncio.sleep(0)
            yield w

    async def main():
        assert await transcribe("abc") == "cba"
        assert await transcribe("abc") == "cba"
        assert [w async for w in summary("x y")] == ["x", "y"]
        assert [w async for w in summary("x y")] == ["x", "y"]

    asyncio.run(main())
    assert runs == ["abc", "x y"]


def test_wrappers_keep_the_function_kind_and_metadata() -> None:
    import inspect

    @ic.cache
    def g(x):
        """doc"""
        yield x

    @ic.cache
    async def c(x):
        return x

    @ic.cache
    async def ag(x):
        yield x

    assert inspect.isgeneratorfunction(g)
    assert inspect.iscoroutinefunction(c)
    assert inspect.isasyncgenfunction(ag)
    assert g.__doc__ == "doc" and g.__name__ == "g"
    assert list(inspect.signature(g).parameters) == ["x"]


@dataclass
class Point:
    x: int
    y: int


def test_dataclass_arguments() -> None:
    runs = []

    @ic.cache
    def norm(p):
        runs.append(p)
        return p.x + p.y

    assert norm(Point(1, 2)) == norm(Point(1, 2)) == 3
    assert norm(Point(2, 1)) == 3
    assert len(runs) == 2


model_calls: list = []


class Model:
    """A callable model object (module level, so that ``self`` can be keyed by content)."""

    __hash__ = None  # an unhashable callable object still gets a cache

    def __init__(self, scale):
        self.scale = scale

    def __call__(self, x):
        model_calls.append(("call", x))
        return x * self.scale

    def predict(self, x):
        model_calls.append(("predict", self.scale, x))
        return x + self.scale


def test_callable_objects_partials_and_methods() -> None:
    import functools

    model_calls.clear()
    m = ic.cache(Model(2))
    assert m(3) == m(3) == 6
    predict = ic.cache(Model.predict)
    assert predict(Model(1), 5) == predict(Model(1), 5) == 6  # self keyed by content
    assert predict(Model(2), 5) == 7
    part = ic.cache(functools.partial(lambda a, b: model_calls.append(("p", a, b)) or a + b, 10))
    assert part(1) == part(1) == 11
    assert model_calls == [("call", 3), ("predict", 1, 5), ("predict", 2, 5), ("p", 10, 1)]



# Partials and callable instances have no ``__qualname__``, which naming the
# cache and its log records once relied on.


def test_a_partial_with_a_key_function_is_cached() -> None:
    import functools

    def add(a, b):
        return a + b

    cached = ic.cache(key=lambda kw: kw["b"])(functools.partial(add, 1))
    assert cached(2) == 3
    assert cached(2) == 3


class Doubler:
    def __call__(self, x):
        return 2 * x


def test_a_callable_instance_with_a_key_function_is_cached() -> None:
    cached = ic.cache(key=lambda kw: kw["x"])(Doubler())
    assert cached(3) == 6


def test_a_partial_returning_an_uncopyable_value_logs_and_returns_it(caplog: pytest.LogCaptureFixture) -> None:
    import functools

    def make_lock(name):
        return threading.Lock()

    cached = ic.cache(functools.partial(make_lock, "a"))
    with caplog.at_level(logging.WARNING, logger="infercache"):
        lock = cached()
    assert hasattr(lock, "acquire")
    assert any("could not be copied" in r.getMessage() for r in caplog.records)


def test_repeated_runtime_wraps_share_one_store() -> None:
    def square(x):
        return x * x

    assert ic.cache(square) is ic.cache(square)
    ic.cache(square)(3)
    ic.cache(square)(3)
    assert ic.cache(square).cache.stats().hits == 1


@ic.cache
def module_level_cached(x):
    return x + 1


def test_copying_or_pickling_a_cached_function_keeps_its_store() -> None:
    assert module_level_cached(1) == 2
    assert copy.copy(module_level_cached) is module_level_cached
    assert copy.deepcopy(module_level_cached) is module_level_cached
    assert pickle.loads(pickle.dumps(module_level_cached)) is module_level_cached


