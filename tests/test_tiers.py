"""The storage interface's contract, run against every tier implementation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis_fixtures
from hypothesis import given, settings
from hypothesis import strategies as st

from infercache.tiers import DiskTier, MemoryTier, RedisTier, Tier

# The real-server fixtures the redis params use (see redis_fixtures.py).
redis_server, redis_url = redis_fixtures.redis_server, redis_fixtures.redis_url
redis_cluster, redis_cluster_url = redis_fixtures.redis_cluster, redis_fixtures.redis_cluster_url


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "disk", "disk-files", "redis", "redis-cluster"])
def tier(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Tier]:
    # "disk-files": every record above inline_max=0 goes to a file of its own.
    t: Tier
    if request.param == "memory":
        t = MemoryTier()
    elif request.param == "redis":
        t = RedisTier(request.getfixturevalue("redis_url"))
    elif request.param == "redis-cluster":
        t = RedisTier(request.getfixturevalue("redis_cluster_url"), cluster=True)
    else:
        t = DiskTier(tmp_path / "tier", inline_max=0 if request.param == "disk-files" else 64 * 1024)
    yield t
    t.close()


def test_set_then_get_returns_the_record(tier: Tier) -> None:
    assert tier.get(b"a") is None
    tier.set(b"a", b"record")
    assert tier.get(b"a") == b"record"
    tier.set(b"a", b"newer")
    assert tier.get(b"a") == b"newer"


def test_delete_reports_presence(tier: Tier) -> None:
    tier.set(b"a", b"1")
    assert tier.delete(b"a") is True
    assert tier.delete(b"a") is False
    assert tier.get(b"a") is None


def test_clear_by_prefix_removes_exactly_the_prefixed(tier: Tier) -> None:
    for name in (b"f/s1/a", b"f/s1/b", b"f/s2/a", b"g/s1/a"):
        tier.set(name, name)
    assert tier.clear(b"f/s1/") == 2
    assert [tier.get(n) for n in (b"f/s1/a", b"f/s1/b", b"f/s2/a", b"g/s1/a")] == [None, None, b"f/s2/a", b"g/s1/a"]
    assert tier.clear() == 2
    assert tier.get(b"g/s1/a") is None


def test_async_forms_match_sync(tier: Tier) -> None:
    async def main() -> None:
        await tier.aset(b"x", b"1")
        assert await tier.aget(b"x") == b"1"
        assert await tier.adelete(b"x") is True
        await tier.aset(b"p/1", b"1")
        assert await tier.aclear(b"p/") == 1

    asyncio.run(main())


def test_memory_tier_expires_records() -> None:
    clock = FakeClock()
    tier = MemoryTier(clock=clock)
    tier.set(b"a", b"1", ttl=10)
    tier.set(b"b", b"2")
    clock.now += 9.9
    assert tier.get(b"a") == b"1"
    clock.now += 0.2
    assert tier.get(b"a") is None
    assert tier.get(b"b") == b"2"


@settings(max_examples=50)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["set", "delete", "clear"]),
            st.sampled_from([b"a/1", b"a/2", b"b/1"]),
            st.binary(max_size=4),
        )
    )
)
def test_a_tier_behaves_like_a_dict(ops: list[tuple[str, bytes, bytes]]) -> None:
    tier, model = MemoryTier(), {}
    for op, name, value in ops:
        if op == "set":
            tier.set(name, value)
            model[name] = value
        elif op == "delete":
            assert tier.delete(name) == (model.pop(name, None) is not None)
        else:
            prefix = name[:2]
            gone = [n for n in model if n.startswith(prefix)]
            assert tier.clear(prefix) == len(gone)
            for n in gone:
                del model[n]
        for n in (b"a/1", b"a/2", b"b/1"):
            assert tier.get(n) == model.get(n)
