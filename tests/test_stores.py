"""store=, INFERCACHE_STORE and INFERCACHE_SECRET: what each form opens, and what it refuses."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import infercache as ic
from infercache import stores
from infercache.codec import Codec, CorruptEntry
from infercache.errors import ConfigError
from infercache.keys import hash_key
from infercache.tiers import DiskTier, MemoryTier
from infercache.tiers.guard import Guarded

SECRET = "s" * 32


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(stores.ENV_STORE, raising=False)
    monkeypatch.delenv(stores.ENV_SECRET, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _inner(tier: object) -> object:
    assert isinstance(tier, Guarded)
    return tier.tier


def test_no_store_and_no_environment_means_memory_only() -> None:
    @ic.cache
    def f(x: int) -> int:
        return x

    assert f.cache.engine.tiers == ()
    assert stores.resolve(None) is None


def test_a_directory_opens_a_disk_store_shared_by_every_cache_using_it(tmp_path: Path) -> None:
    a = stores.open_store(str(tmp_path / "s"))
    b = stores.open_store(tmp_path / "s")
    assert a is b
    inner = _inner(a)
    assert isinstance(inner, DiskTier)
    assert inner.max_bytes == stores.DEFAULT_DISK_BYTES


def test_disk_names_the_user_cache_directory(tmp_path: Path) -> None:
    inner = _inner(stores.open_store("disk"))
    assert isinstance(inner, DiskTier)
    assert Path(inner.path).is_relative_to(tmp_path / "cache")


def test_a_store_object_is_guarded_once(tmp_path: Path) -> None:
    tier = MemoryTier()
    assert stores.open_store(tier) is stores.open_store(tier)
    assert _inner(stores.open_store(tier)) is tier


@pytest.mark.parametrize(
    "spec",
    ["", "   ", "ftp://host/x", "http://127.0.0.1:6379", 42, 1.5, b"dir", ["a"]],
)
def test_a_spec_that_names_no_store_is_a_config_error(spec: object) -> None:
    with pytest.raises(ConfigError):
        stores.open_store(spec)  # type: ignore[arg-type]


def test_the_environment_gives_the_default_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(stores.ENV_STORE, str(tmp_path / "env-store"))

    @ic.cache
    def f(x: int) -> int:
        return x

    @ic.cache(store=None)
    def g(x: int) -> int:
        return x

    assert len(f.cache.engine.tiers) == 1
    assert isinstance(_inner(f.cache.engine.tiers[0]), DiskTier)
    assert g.cache.engine.tiers == ()  # an explicit None wins over the environment
    assert _inner(ic.Cache().engine.tiers[0]) is _inner(f.cache.engine.tiers[0])  # one store, shared


@pytest.mark.parametrize("value", ["", "memory", "MEMORY", "none", "  "])
def test_memory_in_the_environment_means_no_store(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(stores.ENV_STORE, value)
    assert stores.resolve(stores.FROM_ENV) is None


def test_a_redis_store_without_a_secret_is_refused_naming_the_variable() -> None:
    tier = stores.open_store("redis://127.0.0.1:1/0")  # never contacted
    assert tier is not None
    with pytest.raises(ConfigError, match="INFERCACHE_SECRET"):
        stores.codec_for(tier)


def test_a_short_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(stores.ENV_SECRET, "short")
    with pytest.raises(ConfigError, match="16"):
        stores.codec_for(MemoryTier())


def test_the_secret_from_the_environment_signs_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(stores.ENV_SECRET, SECRET)
    record = stores.codec_for(MemoryTier()).dumps(b"n", [1, 2])
    assert Codec(SECRET.encode()).loads(b"n", record) == [1, 2]
    with pytest.raises(CorruptEntry):
        Codec(b"t" * 32).loads(b"n", record)


def test_a_disk_store_without_a_secret_generates_one_private_key(tmp_path: Path) -> None:
    codec = stores.codec_for(DiskTier(tmp_path / "d"))
    key_file = tmp_path / "config" / "infercache" / "secret.key"
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not key_file.is_relative_to(tmp_path / "d")  # outside the cache directory
    record = codec.dumps(b"n", "v")
    # The same key every time (another process reads the same file).
    assert stores.codec_for(DiskTier(tmp_path / "e")).loads(b"n", record) == "v"
    assert Codec(key_file.read_text().strip().encode()).loads(b"n", record) == "v"


def test_processes_racing_to_create_the_key_agree_on_one(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "race")}
    script = "from infercache import stores; print(stores.local_secret().decode())"
    procs = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outs = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(outs) == 1
    assert len(outs.pop()) == 64


def test_threads_racing_to_create_the_key_agree_on_one() -> None:
    got: list[bytes] = []
    threads = [threading.Thread(target=lambda: got.append(stores.local_secret())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 1


def test_store_and_version_settings_are_checked() -> None:
    with pytest.raises(ConfigError):
        ic.cache(version="")
    with pytest.raises(ConfigError):
        ic.Cache(version=3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        ic.cache(store="nope://x")(lambda x: x)


SQUARED: list[int] = []


def square(x: int) -> int:
    SQUARED.append(x)
    return x * x


def test_a_cache_with_a_store_serves_what_another_cache_of_the_same_function_stored(tmp_path: Path) -> None:
    SQUARED.clear()
    first = ic.cache(store=tmp_path / "s", max_size=64)(square)
    assert first(7) == 49
    # A fresh in-memory store in front of the same directory: a new process, in effect.
    second = ic.cache(store=tmp_path / "s", max_size=65)(square)
    assert second(7) == 49
    assert SQUARED == [7]


@given(st.lists(st.one_of(st.integers(), st.text(max_size=3), st.floats(allow_nan=False)), min_size=2, max_size=4))
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_closures_over_different_values_never_share_entries(tmp_path: Path, factors: list[object]) -> None:
    """Same code, same name, different captured values: each closure gets its own results."""

    def make(k: object) -> Any:
        return ic.cache(store=tmp_path / "closures")(lambda x: [x, k])

    made = [make(k) for k in factors]
    for k, f in zip(factors, made):
        assert f(10) == [10, k]
    distinct = {hash_key(k) for k in factors}
    assert len({f.cache.engine.keyspace.version for f in made}) == len(distinct)


@pytest.mark.skipif(
    "MUTANT_UNDER_TEST" in os.environ,
    reason="under mutmut its trampoline calls Cache.__init__: every cache seems made at the trampoline's line",
)
def test_unnamed_manual_caches_made_at_different_places_do_not_share_a_store(tmp_path: Path) -> None:
    a = ic.Cache(store=tmp_path / "m")
    b = ic.Cache(store=tmp_path / "m")
    a.set("k", v=1)
    assert b.get("k") is None
    assert a.engine.identity != b.engine.identity
    assert __name__ in a.engine.identity


def test_named_manual_caches_share_a_store(tmp_path: Path) -> None:
    a = ic.Cache(store=tmp_path / "m", name="embeddings")
    b = ic.Cache(store=tmp_path / "m", name="embeddings")
    a.set("k", v=[1.0, 2.0])
    assert b.get("k") == {"v": [1.0, 2.0]}


def test_named_manual_caches_of_another_version_do_not_share_a_store(tmp_path: Path) -> None:
    ic.Cache(store=tmp_path / "m", name="embeddings", version="v1").set("k", v=1)
    assert ic.Cache(store=tmp_path / "m", name="embeddings", version="v1").get("k") == {"v": 1}
    assert ic.Cache(store=tmp_path / "m", name="embeddings", version="v2").get("k") is None
    assert ic.Cache(store=tmp_path / "m", name="embeddings").get("k") is None
    assert ic.Cache(store=tmp_path / "m", name="others", version="v1").get("k") is None
    assert ic.Cache(name="embeddings", version="v1").get("k") is None  # no store: memory only


def test_a_closure_that_cannot_be_keyed_stays_in_memory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lock = threading.Lock()  # refused as key material

    def f(x: int) -> int:
        with lock:
            return x

    cached = ic.cache(store=tmp_path / "c")(f)
    assert cached.cache.engine.tiers == ()
    assert "memory only" in caplog.text
    assert ic.cache(store=tmp_path / "c", version="v1")(f).cache.engine.tiers != ()


def test_opening_a_store_object_does_not_keep_it_alive(tmp_path: Path) -> None:
    import gc
    import weakref

    tier = DiskTier(tmp_path / "gone")
    alive = weakref.ref(tier)
    guarded = stores.open_store(tier)
    assert guarded is not None and guarded.get(b"x") is None
    del tier, guarded
    gc.collect()
    assert alive() is None
