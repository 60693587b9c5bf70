"""The Redis tier beyond the shared contract: expiry, SCAN by prefix, listing, leases, clients, cluster, crashes.

Every test runs against a real ``redis-server`` started on a free loopback
port (``redis_fixtures``); the cluster tests against three real masters.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis_fixtures
from redis.cluster import RedisCluster
from redis_fixtures import RedisCluster3, RedisServer, wait_until

from infercache.errors import ConfigError, TierError
from infercache.keyspace import Keyspace
from infercache.tiers import RedisTier
from infercache.tiers.redis import LEASE_PREFIX, glob_escape

# The fixtures, bound to this module's names (an import would be shadowed by each test's parameter).
redis_server = redis_fixtures.redis_server
redis_url = redis_fixtures.redis_url
redis_cluster = redis_fixtures.redis_cluster
redis_cluster_url = redis_fixtures.redis_cluster_url

DOWN = (redis.RedisError, OSError)


@pytest.fixture
def tier(redis_url: str) -> Iterator[RedisTier]:
    t = RedisTier(redis_url)
    yield t
    t.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as c:
        yield c


def names(ks: Keyspace, namespace: str, n: int) -> list[bytes]:
    return [ks.name(namespace, i.to_bytes(4, "big")) for i in range(n)]


# -- expiry -------------------------------------------------------------------


def test_a_record_expires_after_its_ttl(tier: RedisTier) -> None:
    tier.set(b"short", b"1", ttl=0.3)
    tier.set(b"long", b"2")
    wait_until(lambda: tier.get(b"short") is None)
    assert tier.get(b"long") == b"2"


def test_the_default_ttl_applies_when_set_is_given_none(redis_url: str, raw: redis.Redis) -> None:
    with_default = RedisTier(redis_url, default_ttl=60.0)
    without = RedisTier(redis_url, default_ttl=None)
    try:
        with_default.set(b"a", b"1")
        assert 0 < raw.pttl(b"a") <= 60_000
        with_default.set(b"b", b"1", ttl=600.0)
        assert 60_000 < raw.pttl(b"b") <= 600_000
        without.set(b"c", b"1")
        assert raw.pttl(b"c") == -1  # no expiry
    finally:
        with_default.close()
        without.close()


def test_the_stock_default_ttl_is_one_week(tier: RedisTier, raw: redis.Redis) -> None:
    tier.set(b"a", b"1")
    assert 6 * 24 * 3600 * 1000 < raw.pttl(b"a") <= 7 * 24 * 3600 * 1000


# -- clear and entries ----------------------------------------------------------


def test_clear_by_a_function_or_session_prefix_leaves_every_other_entry(tier: RedisTier) -> None:
    f, g = Keyspace("app.f", "v1"), Keyspace("app.g", "v1")
    f_s1, f_s2, f_shared, g_s1 = names(f, "s1", 5), names(f, "s2", 3), names(f, "", 2), names(g, "s1", 4)
    for n in f_s1 + f_s2 + f_shared + g_s1:
        tier.set(n, b"r")
    assert tier.clear(f.prefix("s1")) == 5
    assert {n for n, _ in tier.entries()} == set(f_s2 + f_shared + g_s1)
    assert tier.clear(f.prefix()) == 5
    assert {n for n, _ in tier.entries()} == set(g_s1)


@pytest.mark.parametrize("special", [b"*", b"?", b"[ab]", b"\\", b"[", b"]"])
def test_clear_matches_glob_characters_of_the_prefix_literally(tier: RedisTier, special: bytes) -> None:
    # Unescaped, "f*" would match every name, "f?" and "f[ab]" would match "fa", and "f\\" would match "f".
    literal = b"f" + special + b"/"
    neighbours = [b"fa/1", b"fb/1", b"f/1", b"fx/1", b"g" + special + b"/1"]
    for n in [literal + b"1", literal + b"2", *neighbours]:
        tier.set(n, b"r")
    assert tier.clear(literal) == 2
    assert sorted(n for n, _ in tier.entries()) == sorted(neighbours)
    tier.set(literal + b"3", b"r")
    assert asyncio.run(tier.aclear(literal)) == 1
    assert sorted(n for n, _ in tier.entries()) == sorted(neighbours)


def test_glob_escape_escapes_exactly_the_match_metacharacters() -> None:
    assert glob_escape(b"a*b?c[d]e\\f{g}/h") == b"a\\*b\\?c\\[d\\]e\\\\f{g}/h"


def test_clear_removes_more_entries_than_one_scan_batch(tier: RedisTier, raw: redis.Redis) -> None:
    ks = Keyspace("bulk")
    with raw.pipeline(transaction=False) as pipe:
        for n in names(ks, "", 2500):
            pipe.set(n, b"r")
        pipe.execute()
    raw.set(b"other", b"r")
    assert tier.clear(ks.prefix()) == 2500
    assert raw.dbsize() == 1


def test_entries_lists_exactly_the_live_records_with_their_sizes(tier: RedisTier, raw: redis.Redis) -> None:
    tier.set(b"p/a", b"x" * 10)
    tier.set(b"p/b", b"")
    tier.set(b"p/c", b"y" * 70_000)
    tier.set(b"q/a", b"z")
    tier.set(b"p/expiring", b"e", ttl=0.3)
    lease = tier.lease(b"p/a", 30)
    assert lease is not None
    raw.hset(b"p/not-a-string", b"field", b"value")  # another application's key: not a record
    wait_until(lambda: raw.exists(b"p/expiring") == 0)
    assert dict(tier.entries(b"p/")) == {b"p/a": 10, b"p/b": 0, b"p/c": 70_000}
    assert dict(tier.entries()) == {b"p/a": 10, b"p/b": 0, b"p/c": 70_000, b"q/a": 1}
    lease.release()


def test_clear_leaves_leases_to_expire(tier: RedisTier, raw: redis.Redis) -> None:
    ks = Keyspace("app.f")
    name = ks.name("", b"\x01")
    tier.set(name, b"r")
    lease = tier.lease(name, 30)
    assert lease is not None
    assert tier.clear(ks.prefix()) == 1
    assert tier.clear() == 0
    assert raw.exists(LEASE_PREFIX + name) == 1
    assert tier.lease(name, 30) is None
    lease.release()


# -- leases -------------------------------------------------------------------


def test_a_held_lease_is_refused_and_a_released_one_can_be_taken_again(tier: RedisTier) -> None:
    first = tier.lease(b"job", 30)
    assert first is not None
    assert tier.lease(b"job", 30) is None
    assert tier.lease(b"other-job", 30) is not None
    first.release()
    first.release()  # idempotent
    again = tier.lease(b"job", 30)
    assert again is not None
    again.release()


def test_a_lease_uses_the_tiers_lease_ttl_when_given_none(redis_url: str, raw: redis.Redis) -> None:
    tier = RedisTier(redis_url, lease_ttl=42.0)
    try:
        lease = tier.lease(b"job")
        assert lease is not None
        assert 30_000 < raw.pttl(LEASE_PREFIX + b"job") <= 42_000
        lease.release()
    finally:
        tier.close()


def test_a_release_never_deletes_another_holders_lease(tier: RedisTier, raw: redis.Redis) -> None:
    mine = tier.lease(b"job", 0.6)
    assert mine is not None
    raw.delete(LEASE_PREFIX + b"job")  # as if it had expired while this process was paused
    theirs = tier.lease(b"job", 30)
    assert theirs is not None
    wait_until(lambda: mine.lost)  # the renewal found another holder's token and stopped
    assert raw.pttl(LEASE_PREFIX + b"job") > 20_000  # ... without extending or shortening theirs
    mine.release()
    assert tier.lease(b"job", 30) is None
    theirs.release()
    assert raw.exists(LEASE_PREFIX + b"job") == 0


def test_the_renewal_thread_is_a_daemon_started_by_a_lease_and_ended_when_none_is_held(tier: RedisTier) -> None:
    assert not tier._renewer.running
    a, b = tier.lease(b"a", 30), tier.lease(b"b", 30)
    assert a is not None and b is not None
    threads = [t for t in threading.enumerate() if t.name == "infercache-redis-leases"]
    assert len(threads) == 1 and threads[0].daemon
    a.release()
    assert tier._renewer.running
    b.release()
    wait_until(lambda: not tier._renewer.running)


def test_a_forked_child_renews_its_own_leases(tier: RedisTier, raw: redis.Redis) -> None:
    parents = tier.lease(b"parent", 30)  # the parent's renewal thread runs when it forks
    assert parents is not None
    pid = os.fork()
    if pid == 0:  # the child: report by exit status only, skipping pytest's teardown
        ok = False
        try:
            lease = tier.lease(b"child", 0.6)
            time.sleep(2.0)  # past three times its ttl
            ok = lease is not None and not lease.lost and raw.pttl(LEASE_PREFIX + b"child") > 0
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    parents.release()
    assert os.waitstatus_to_exitcode(status) == 0


HOLDER = """
    import sys, time
    from infercache.tiers import RedisTier
    tier = RedisTier(sys.argv[1])
    lease = tier.lease(b"job", 1.0)
    print("held" if lease is not None else "refused", flush=True)
    time.sleep(120)
"""


def test_a_holder_process_keeps_its_lease_while_alive_and_loses_it_when_killed(tier: RedisTier, redis_url: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), redis_url], stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        # Alive past three times its 1 s ttl: the holder's renewal thread keeps the lease.
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            assert tier.lease(b"job", 30) is None
            time.sleep(0.2)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        # Dead: nothing renews it, and it expires after its ttl.
        taken: list[object] = []
        wait_until(lambda: taken.append(tier.lease(b"job", 30)) or taken[-1] is not None, timeout=15)
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


# -- async --------------------------------------------------------------------


def test_async_verbs_and_leases_through_an_asyncio_client(redis_url: str, raw: redis.Redis) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    tier = RedisTier(client)

    async def main() -> None:
        assert tier.async_client() is client
        await tier.aset(b"p/a", b"1")
        await tier.aset(b"p/b", b"2", ttl=60)
        assert await tier.aget(b"p/a") == b"1"
        assert 0 < await client.pttl(b"p/b") <= 60_000
        assert await tier.adelete(b"p/a") is True
        assert await tier.adelete(b"p/a") is False
        lease = await tier.alease(b"job", 30)
        assert lease is not None
        assert await tier.alease(b"job", 30) is None
        await lease.arelease()
        await lease.arelease()
        again = await tier.alease(b"job", 30)
        assert again is not None
        assert await tier.aclear(b"p/") == 1
        await again.arelease()
        await client.aclose()

    try:
        asyncio.run(main())
        assert raw.keys() == []
    finally:
        tier.close()


def test_an_async_lease_is_renewed_while_held(tier: RedisTier) -> None:
    async def main() -> None:
        lease = await tier.alease(b"job", 0.6)
        assert lease is not None
        await asyncio.sleep(2.0)  # past three times its ttl
        assert await tier.alease(b"job", 30) is None
        await lease.arelease()
        again = await tier.alease(b"job", 30)
        assert again is not None
        await again.arelease()
        await tier.aclose()

    asyncio.run(main())


def test_an_async_client_is_closed_when_its_loop_shuts_down(tier: RedisTier, raw: redis.Redis) -> None:
    baseline = len(raw.client_list())
    for i in range(3):
        asyncio.run(tier.aset(b"a", bytes([i])))
    assert tier.get(b"a") == b"\x02"  # the sync client: one connection of its own
    wait_until(lambda: len(raw.client_list()) == baseline + 1)


def test_one_tier_serves_several_event_loops_at_once(tier: RedisTier) -> None:
    clients: dict[int, object] = {}

    def on_own_loop(i: int) -> None:
        async def main() -> None:
            clients[i] = tier.async_client()
            for j in range(20):
                await tier.aset(f"loop{i}/{j}".encode(), b"r")
                assert await tier.aget(f"loop{i}/{j}".encode()) == b"r"
            await tier.async_client().aclose()

        asyncio.run(main())

    threads = [threading.Thread(target=on_own_loop, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(clients) == 3 and len({id(c) for c in clients.values()}) == 3
    assert len(list(tier.entries())) == 60


# -- clients --------------------------------------------------------------------


@pytest.fixture
def acl_user(raw: redis.Redis) -> Iterator[tuple[str, str]]:
    raw.acl_setuser("infer", enabled=True, passwords=["+s3cret"], keys=["*"], commands=["+@all"])
    yield "infer", "s3cret"
    raw.acl_deluser("infer")


def test_an_async_client_is_derived_from_a_sync_one_with_its_user_password_and_db(
    redis_server: RedisServer, raw: redis.Redis, acl_user: tuple[str, str]
) -> None:
    user, password = acl_user
    given = redis.Redis(host="127.0.0.1", port=redis_server.port, db=3, username=user, password=password)
    tier = RedisTier(given, socket_timeout=0.5)

    async def main() -> None:
        derived = tier.async_client()
        assert isinstance(derived, redis.asyncio.Redis)
        assert derived.connection_pool.connection_kwargs["socket_timeout"] == 0.5
        await tier.aset(b"a", b"from async")

    try:
        asyncio.run(main())
        assert tier.client is given
        assert given.get(b"a") == b"from async"
        assert raw.get(b"a") is None  # db 3, not db 0
    finally:
        tier.close()
        given.close()


def test_a_sync_client_is_derived_from_an_async_one_with_its_user_password_and_db(
    redis_server: RedisServer, acl_user: tuple[str, str]
) -> None:
    user, password = acl_user
    given = redis.asyncio.Redis(host="127.0.0.1", port=redis_server.port, db=5, username=user, password=password)
    tier = RedisTier(given)
    try:
        assert isinstance(tier.client, redis.Redis)
        assert tier.client.connection_pool.connection_kwargs["socket_timeout"] == 1.0
        tier.set(b"a", b"from sync")

        async def main() -> bytes | None:
            value = await given.get(b"a")
            await given.aclose()
            return value

        assert asyncio.run(main()) == b"from sync"
        with redis.Redis(host="127.0.0.1", port=redis_server.port, db=5, username=user, password=password) as c:
            assert c.get(b"a") == b"from sync"
    finally:
        tier.close()


def test_a_unix_socket_url_and_a_unix_socket_client_both_work(tmp_path: Path) -> None:
    sock = tmp_path / "redis.sock"
    server = RedisServer(tmp_path / "unix", args=("--unixsocket", str(sock)))
    try:
        by_url = RedisTier(f"unix://{sock}?db=2")
        by_url.set(b"a", b"1")
        by_client = RedisTier(redis.Redis(unix_socket_path=str(sock), db=2))

        async def main() -> bytes | None:
            value = await by_client.aget(b"a")
            await by_client.aclose()
            return value

        assert asyncio.run(main()) == b"1"
        assert asyncio.run(by_url.aget(b"a")) == b"1"
        by_url.close()
    finally:
        server.stop()


def test_a_closed_tier_refuses_verbs_and_leaves_a_given_client_open(redis_url: str) -> None:
    given = redis.Redis.from_url(redis_url)
    tier = RedisTier(given)
    lease = tier.lease(b"job", 30)
    assert lease is not None
    tier.close()
    tier.close()
    assert not tier._renewer.running
    with pytest.raises(TierError):
        tier.get(b"a")
    with pytest.raises(TierError):
        asyncio.run(tier.aget(b"a"))
    assert given.ping()
    lease.release()
    given.close()


def test_bad_settings_are_clear_errors(redis_url: str) -> None:
    with pytest.raises(ConfigError, match="redis://"):
        RedisTier("http://127.0.0.1:6379")
    with pytest.raises(ConfigError, match="decode_responses"):
        RedisTier(redis.Redis.from_url(redis_url, decode_responses=True))
    with pytest.raises(ConfigError, match="socket_timeout"):
        RedisTier(redis_url, socket_timeout=0)
    with pytest.raises(ConfigError, match="default_ttl"):
        RedisTier(redis_url, default_ttl=-1)
    with pytest.raises(ConfigError, match="RedisTier takes"):
        RedisTier(42)  # type: ignore[arg-type]


def test_valkey_schemes_are_read_as_redis(redis_server: RedisServer) -> None:
    tier = RedisTier(f"valkey://127.0.0.1:{redis_server.port}/0")
    try:
        tier.set(b"a", b"1")
        assert tier.get(b"a") == b"1"
    finally:
        tier.close()


# -- a crashing server --------------------------------------------------------------


def test_verbs_raise_while_the_server_is_down_and_work_again_after_a_restart(redis_server: RedisServer) -> None:
    redis_server.flush()
    tier = RedisTier(redis_server.url)
    try:
        tier.set(b"a", b"1")
        held = tier.lease(b"job", 30)
        assert held is not None
        redis_server.kill()
        for verb in (
            lambda: tier.get(b"a"),
            lambda: tier.set(b"a", b"2"),
            lambda: tier.delete(b"a"),
            lambda: tier.clear(b"a"),
            lambda: list(tier.entries()),
            lambda: tier.lease(b"job2", 30),
            lambda: asyncio.run(tier.aget(b"a")),
            lambda: asyncio.run(tier.aset(b"a", b"2")),
        ):
            with pytest.raises(DOWN):
                verb()
        held.release()  # never raises: the lease would expire by itself
        redis_server.restart()
        assert tier.get(b"a") is None  # nothing was persisted
        tier.set(b"a", b"3")
        assert tier.get(b"a") == b"3"
        assert asyncio.run(tier.aget(b"a")) == b"3"
        again = tier.lease(b"job", 30)
        assert again is not None
        again.release()
    finally:
        tier.close()


# -- cluster --------------------------------------------------------------------------


@pytest.fixture
def cluster_tier(redis_cluster_url: str) -> Iterator[RedisTier]:
    t = RedisTier(redis_cluster_url + "?cluster=1")
    yield t
    t.close()


def test_a_cluster_url_or_flag_makes_cluster_clients(redis_cluster: RedisCluster3) -> None:
    for tier in (RedisTier(redis_cluster.url + "?cluster=1"), RedisTier(redis_cluster.url, cluster=True)):
        assert isinstance(tier.client, RedisCluster)

        async def main(t: RedisTier = tier) -> None:
            assert isinstance(t.async_client(), redis.asyncio.cluster.RedisCluster)
            await t.aclose()

        asyncio.run(main())


def test_on_a_cluster_clear_removes_exactly_the_prefix_across_every_master(
    cluster_tier: RedisTier, redis_cluster: RedisCluster3
) -> None:
    functions = [Keyspace(f"app.f{i}", "v1") for i in range(12)]
    written = {n: b"r" * i for i, ks in enumerate(functions) for n in names(ks, "s1", 3) + names(ks, "s2", 2)}
    for n, record in written.items():
        cluster_tier.set(n, record)
    client = cluster_tier.client
    assert len({client.get_node_from_key(n).name for n in written}) == 3  # spread over all three masters
    assert dict(cluster_tier.entries()) == {n: len(r) for n, r in written.items()}

    assert cluster_tier.clear(functions[0].prefix("s1")) == 3
    assert cluster_tier.clear(functions[1].prefix()) == 5
    gone = set(names(functions[0], "s1", 3) + names(functions[1], "s1", 3) + names(functions[1], "s2", 2))
    assert set(dict(cluster_tier.entries())) == set(written) - gone
    assert cluster_tier.get(names(functions[2], "s2", 1)[0]) == b"rr"
    assert cluster_tier.clear() == len(written) - len(gone)


def test_on_a_cluster_a_lease_lives_on_its_entrys_slot_and_is_exclusive(cluster_tier: RedisTier) -> None:
    from redis.crc import key_slot

    name = Keyspace("app.f", "v1").name("", b"\x01")
    assert key_slot(LEASE_PREFIX + name) == key_slot(name)
    lease = cluster_tier.lease(name, 0.6)
    assert lease is not None
    assert cluster_tier.lease(name, 30) is None
    time.sleep(2.0)  # past three times its ttl: renewed on the cluster too
    assert cluster_tier.lease(name, 30) is None
    lease.release()
    again = cluster_tier.lease(name, 30)
    assert again is not None
    again.release()


def test_on_a_cluster_the_async_verbs_work_and_clients_derive_both_ways(redis_cluster: RedisCluster3) -> None:
    redis_cluster.flush()
    ks = Keyspace("app.async", "v1")
    sync_given = redis_cluster.client()
    tier = RedisTier(sync_given)
    try:

        async def main() -> None:
            assert isinstance(tier.async_client(), redis.asyncio.cluster.RedisCluster)
            for n in names(ks, "s", 10):
                await tier.aset(n, b"r")
            assert await tier.aget(names(ks, "s", 1)[0]) == b"r"
            lease = await tier.alease(names(ks, "s", 1)[0], 30)
            assert lease is not None
            await lease.arelease()
            assert await tier.aclear(ks.prefix()) == 10
            await tier.aclose()

        asyncio.run(main())
    finally:
        sync_given.close()

    async_given = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=redis_cluster.ports[1])
    tier = RedisTier(async_given)
    try:
        assert isinstance(tier.client, RedisCluster)
        tier.set(b"x", b"1")

        async def read() -> bytes | None:
            value = await tier.aget(b"x")
            await async_given.aclose()
            return value

        assert asyncio.run(read()) == b"1"
    finally:
        tier.close()

