"""The engine: one miss path for every entry point, and the tier stack behind memory."""

from __future__ import annotations

import gc
import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import infercache as ic
from infercache.codec import Codec
from infercache.config import Settings
from infercache.engine import Engine
from infercache.registry import caches
from infercache.safety import protect, release
from infercache.tiers import MemoryTier, Tier

SECRET = b"k" * 32


def tiered(tier: Tier | None = None) -> Engine:
    tiers = [tier if tier is not None else MemoryTier()]
    return Engine(Settings.of(), "tests.engine.f", tiers=tiers, codec=Codec(SECRET))


def compute_through(engine: Engine, key: bytes, value: object) -> object:
    full = ("", key)
    entry = engine.lookup(full)
    if entry is not None:
        return engine.serve(entry)
    return engine.call(full, lambda: value, (), {}, ())


kept_values = st.one_of(
    st.integers(),
    st.text(),
    st.lists(st.integers(), max_size=5),
    st.dictionaries(st.text(max_size=4), st.floats(allow_nan=False), max_size=4),
    hnp.arrays(hnp.scalar_dtypes(), hnp.array_shapes(max_dims=3, max_side=4)),
    st.builds(lambda n: pd.DataFrame({"a": list(range(n)), "b": [str(i) for i in range(n)]}), st.integers(0, 5)),
    st.builds(lambda b: memoryview(b), st.binary(max_size=16)),
)


def same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray):  # by bytes: NaN and NaT are not equal to themselves
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, pd.DataFrame):
        return isinstance(b, pd.DataFrame) and a.equals(b)
    if isinstance(a, memoryview):
        return isinstance(b, memoryview) and a.tobytes() == b.tobytes() and a.format == b.format
    return bool(a == b)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(kept_values)
def test_every_kept_value_round_trips_through_the_codec(value: object) -> None:
    """What the in-memory store holds survives the seam to the tiers unchanged."""
    codec = Codec(SECRET)
    kept = protect(value)
    back = codec.loads(b"name", codec.dumps(b"name", kept))
    assert same(release(back), value)


def test_a_miss_is_written_through_and_a_tier_hit_is_promoted_into_memory() -> None:
    tier = MemoryTier()
    engine = tiered(tier)
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    assert compute_through(engine, b"k", {"image": image}) is not None
    assert len(tier) == 1  # written through
    engine.store.clear()  # memory forgets; the tier does not
    got = compute_through(engine, b"k", "not computed again")
    assert isinstance(got, dict) and np.array_equal(got["image"], image)
    assert engine.store.peek("", b"k") is not None  # promoted
    assert not got["image"].flags.writeable


def test_a_corrupted_tier_record_is_a_miss_deleted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    tier = MemoryTier()
    engine = tiered(tier)
    compute_through(engine, b"k", "right")
    engine.store.clear()
    (name,) = list(tier._records)  # test reaches the reference tier's dict to flip a byte
    record = bytearray(tier.get(name) or b"")
    record[len(record) // 2] ^= 0xFF
    tier.set(name, bytes(record))
    with caplog.at_level(logging.WARNING, logger="infercache"):
        assert compute_through(engine, b"k", "recomputed") == "recomputed"
    assert any("dropped" in r.getMessage() for r in caplog.records)
    engine.store.clear()
    assert compute_through(engine, b"k", "unused") == "recomputed"  # the fresh record replaced it


class BrokenTier(Tier):
    """A tier whose backend is down: every verb fails."""

    name = "broken"

    def get(self, name: bytes) -> bytes | None:
        raise OSError("backend down")

    def set(self, name: bytes, record: bytes, ttl: float | None = None) -> None:
        raise OSError("backend down")

    def delete(self, name: bytes) -> bool:
        raise OSError("backend down")

    def clear(self, prefix: bytes = b"") -> int:
        raise OSError("backend down")


def test_a_failing_tier_never_fails_a_call(caplog: pytest.LogCaptureFixture) -> None:
    engine = tiered(BrokenTier())
    with caplog.at_level(logging.WARNING, logger="infercache"):
        assert compute_through(engine, b"k", 41) == 41
        assert compute_through(engine, b"k", 0) == 41  # memory still serves
        engine.clear()
        assert engine.delete(("", b"k")) is False
    assert any("broken tier failed" in r.getMessage() for r in caplog.records)


def test_tiers_need_a_codec() -> None:
    with pytest.raises(ic.ConfigError):
        Engine(Settings(), "x", tiers=[MemoryTier()])


def test_every_entry_point_goes_through_an_engine() -> None:
    @ic.cache
    def f(x: int) -> int:
        return x

    @ic.cache
    async def g(x: int) -> int:
        return x

    @ic.cache
    def h(x: int):  # type: ignore[no-untyped-def]
        yield x

    c = ic.Cache()
    for engine in (f.cache.engine, g.cache.engine, h.cache.engine, c.engine):
        assert isinstance(engine, Engine)
        assert caches.get(engine.name) is engine


def test_caches_are_named_after_their_function_or_name() -> None:
    @ic.cache
    def classify(x: int) -> int:
        return x

    @ic.cache(name="translator")
    def translate(x: int) -> int:
        return x

    assert classify.cache.name.endswith("test_caches_are_named_after_their_function_or_name.<locals>.classify")
    assert translate.cache.name.startswith("translator")
    assert ic.Cache(name="cities").name.startswith("cities")


def test_two_live_caches_never_share_a_name() -> None:
    a = ic.Cache(name="same")
    b = ic.Cache(name="same")
    assert a.name != b.name
    assert {caches.get(a.name), caches.get(b.name)} == {a.engine, b.engine}


def test_the_registry_does_not_keep_a_cache_alive() -> None:
    c = ic.Cache(name="short-lived")
    name = c.name
    del c
    gc.collect()
    assert caches.get(name) is None


def test_clear_session_reaches_per_session_caches_through_the_registry() -> None:
    @ic.cache(per_session=True)
    def f(x: int) -> int:
        return x

    shared = ic.Cache()
    with ic.session("A"):
        f(1)
        shared.set("k", v=1)
    assert ic.clear_session("A") == 1
    assert len(f.cache) == 0
    assert shared.get("k") == {"v": 1}  # not per-session: untouched


def test_registering_while_the_collector_frees_another_cache_does_not_deadlock() -> None:
    """The collector may free a cache inside Registry.add, on the thread holding its lock."""
    import threading

    from infercache.registry import Registry

    class Item:
        pass

    class CollectingName(str):
        """A name whose hashing runs the cyclic collector: inside add(), under its lock."""

        __slots__ = ()

        def __hash__(self) -> int:
            gc.collect()
            return str.__hash__(self)

    registry: Registry[Item] = Registry()
    doomed = Item()
    registry.add(doomed, "doomed")
    cycle: list[object] = [doomed]
    cycle.append(cycle)  # only the cyclic collector can free it now
    del doomed, cycle
    done = threading.Event()

    def register() -> None:
        registry.add(Item(), CollectingName("new"))
        done.set()

    worker = threading.Thread(target=register, daemon=True)
    worker.start()
    worker.join(30)
    assert done.is_set(), "Registry.add deadlocked while the collector freed another object"
    assert [name for name, _ in registry.items()] == []  # "new" was collected too; "doomed" is gone
