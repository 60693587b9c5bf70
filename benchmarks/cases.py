"""Inputs, peers and adapters for the infercache benchmark suite.

This module knows how to wrap a function with every cache a user might pick
instead of infercache (``gr.cache``, ``functools.lru_cache``, ``cachetools``,
``joblib.Memory``, ``diskcache``) and with infercache itself, and how to build
the inputs of every case. It is imported by ``bench_suite.py`` (timed with
pytest-benchmark) and ``memory_probe.py`` and has no pytest dependency.

Anything that is not available (a peer that is not installed, an infercache
feature that has not landed yet, an argument a cache cannot key) raises
:class:`Unavailable`; the suite turns that into an "n/a" cell with the reason
instead of crashing.

Sizes shrink when the environment variable ``INFERCACHE_BENCH_QUICK`` is ``1``
(the smoke run used by the test suite).
"""

from __future__ import annotations

import functools
import inspect
import itertools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QUICK: bool = os.environ.get("INFERCACHE_BENCH_QUICK") == "1"

#: gr.cache is the reference every ratio is computed against.
REFERENCE = "gr.cache"
#: digest options of infercache benchmarked (the first is the default).
IC_DIGESTS: tuple[str, ...] = ("blake3", "xxh3")


class Unavailable(Exception):
    """A peer, feature or input combination that cannot be measured (shown as n/a)."""


# --------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Sizes:
    """Dimensions of the inputs; the quick profile keeps the smoke run fast."""

    image_1080p: tuple[int, int, int]
    image_4k: tuple[int, int, int]
    dataframe_rows: int
    tensor_shape: tuple[int, ...]
    list_len: int
    big_buffer_bytes: int
    prompts: int
    concurrent_callers: int
    compute_seconds: float


FULL_SIZES = Sizes(
    image_1080p=(1080, 1920, 3),
    image_4k=(2160, 3840, 3),
    dataframe_rows=1_000_000,
    tensor_shape=(1, 3, 1024, 1024),
    list_len=100_000,
    big_buffer_bytes=256 * 2**20,
    prompts=10_000,
    concurrent_callers=8,
    compute_seconds=0.05,
)
QUICK_SIZES = Sizes(
    image_1080p=(108, 192, 3),
    image_4k=(216, 384, 3),
    dataframe_rows=1_000,
    tensor_shape=(1, 3, 32, 32),
    list_len=1_000,
    big_buffer_bytes=2**20,
    prompts=200,
    concurrent_callers=4,
    compute_seconds=0.01,
)
SIZES: Sizes = QUICK_SIZES if QUICK else FULL_SIZES


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class ValueCase:
    """One argument type for the "hit on a big value" cases."""

    name: str
    label: str
    build: Callable[[], Any]
    duplicate: Callable[[Any], Any]


def _rng() -> Any:
    import numpy as np

    return np.random.default_rng(1234)


def build_image(shape: tuple[int, int, int]) -> Any:
    """A random uint8 image of the given (height, width, channels) shape."""
    return _rng().integers(0, 255, size=shape, dtype="uint8")


def build_pil() -> Any:
    """A 1080p RGB PIL image (or the quick-profile size)."""
    from PIL import Image

    return Image.fromarray(build_image(SIZES.image_1080p), mode="RGB")


def build_dataframe() -> Any:
    """A numeric DataFrame (float64 + int64 columns) with ``SIZES.dataframe_rows`` rows."""
    import pandas as pd

    rng = _rng()
    n = SIZES.dataframe_rows
    return pd.DataFrame({"x": rng.random(n), "y": rng.integers(0, 1000, size=n)})


def build_tensor() -> Any:
    """A float32 torch tensor shaped like a batch of one 1024x1024 RGB image."""
    import torch

    g = torch.Generator().manual_seed(1234)
    return torch.randn(*SIZES.tensor_shape, generator=g)


def build_float_list() -> list[float]:
    """A list of floats, e.g. an embedding passed as a JSON list."""
    return [float(i) * 0.5 for i in range(SIZES.list_len)]


def _dup_numpy(v: Any) -> Any:
    return v.copy()


def _dup_pil(v: Any) -> Any:
    return v.copy()


def _dup_df(v: Any) -> Any:
    return v.copy(deep=True)


def _dup_tensor(v: Any) -> Any:
    return v.clone()


def _dup_list(v: Any) -> Any:
    return [float(x) for x in v]


def _mb(shape: tuple[int, ...], itemsize: int = 1) -> str:
    n = itemsize
    for d in shape:
        n *= d
    return f"{n / 1e6:.1f} MB"


VALUE_CASES: tuple[ValueCase, ...] = (
    ValueCase(
        "image_1080p",
        f"numpy uint8 {'x'.join(map(str, SIZES.image_1080p))} ({_mb(SIZES.image_1080p)})",
        lambda: build_image(SIZES.image_1080p),
        _dup_numpy,
    ),
    ValueCase(
        "image_4k",
        f"numpy uint8 {'x'.join(map(str, SIZES.image_4k))} ({_mb(SIZES.image_4k)})",
        lambda: build_image(SIZES.image_4k),
        _dup_numpy,
    ),
    ValueCase(
        "pil_1080p",
        f"PIL RGB {SIZES.image_1080p[1]}x{SIZES.image_1080p[0]}",
        build_pil,
        _dup_pil,
    ),
    ValueCase(
        "dataframe",
        f"DataFrame {SIZES.dataframe_rows:,} rows x 2 numeric cols",
        build_dataframe,
        _dup_df,
    ),
    ValueCase(
        "torch_tensor",
        f"torch float32 {'x'.join(map(str, SIZES.tensor_shape))} ({_mb(SIZES.tensor_shape, 4)})",
        build_tensor,
        _dup_tensor,
    ),
    ValueCase(
        "float_list",
        f"list of {SIZES.list_len:,} floats",
        build_float_list,
        _dup_list,
    ),
)
VALUE_CASES_BY_NAME: dict[str, ValueCase] = {c.name: c for c in VALUE_CASES}


def prompt_stream() -> Callable[[], str]:
    """A callable returning a new distinct prompt on every call (for miss timing)."""
    counter = itertools.count()
    return lambda: f"prompt number {next(counter)}"


# --------------------------------------------------------------------------- infercache adapters


def infercache_module() -> Any:
    """The infercache package, or :class:`Unavailable` while its core has not landed."""
    try:
        import infercache as ic
    except Exception as exc:  # pragma: no cover - depends on the checkout
        raise Unavailable(f"infercache not importable: {exc!r}") from exc
    if not hasattr(ic, "cache"):
        raise Unavailable("infercache.cache not available yet")
    return ic


def _call_with_digest(factory: Callable[..., Any], digest: str, **kwargs: Any) -> Any:
    """Call an infercache factory with the digest option, whatever it is called.

    The public option is ``digest=``; ``algorithm=`` is accepted as a fallback
    name, and the default digest may be requested by passing nothing.
    """
    errors: list[str] = []
    for option in ("digest", "algorithm"):
        try:
            return factory(**{option: digest}, **kwargs)
        except TypeError as exc:
            if option not in str(exc) and "unexpected keyword" not in str(exc):
                raise
            errors.append(str(exc))
    if digest == IC_DIGESTS[0]:
        return factory(**kwargs)
    raise Unavailable(f"infercache has no digest option for {digest!r}: {errors[-1]}")


def ic_decorate(fn: Callable[..., Any], digest: str, **kwargs: Any) -> Callable[..., Any]:
    """``fn`` wrapped with ``infercache.cache`` using ``digest``."""
    ic = infercache_module()
    decorator = _call_with_digest(ic.cache, digest, **kwargs)
    return decorator(fn)


def ic_manual_cache(digest: str = "blake3", **kwargs: Any) -> Any:
    """An ``infercache.Cache`` instance, or :class:`Unavailable`."""
    ic = infercache_module()
    if not hasattr(ic, "Cache"):
        raise Unavailable("infercache.Cache not available yet")
    return _call_with_digest(ic.Cache, digest, **kwargs)


def ic_hash_function(digest: str) -> Callable[[Any], Any]:
    """``lambda obj: infercache.hash_key(obj, <digest>)``, or :class:`Unavailable`."""
    try:
        import infercache as ic
    except Exception as exc:  # pragma: no cover
        raise Unavailable(f"infercache not importable: {exc!r}") from exc
    hash_key = getattr(ic, "hash_key", None)
    if hash_key is None:
        try:
            from infercache.keys import hash_key  # type: ignore[no-redef]
        except Exception as exc:
            raise Unavailable("infercache.hash_key not available yet") from exc
    params = inspect.signature(hash_key).parameters
    for option in ("digest", "algorithm"):
        if option in params:
            return functools.partial(hash_key, **{option: digest})
    if digest == IC_DIGESTS[0]:
        return hash_key
    raise Unavailable(f"infercache.hash_key has no digest option for {digest!r}")


def ic_sizeof() -> Callable[[Any], int]:
    """``infercache.sizes.sizeof``, or :class:`Unavailable`."""
    try:
        from infercache.sizes import sizeof
    except Exception as exc:
        raise Unavailable(f"infercache.sizes.sizeof not available yet ({exc.__class__.__name__})") from exc
    return sizeof


# --------------------------------------------------------------------------- peers


@dataclass
class Wrapped:
    """A cached callable plus how to tear it down."""

    fn: Callable[..., Any]
    close: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class Peer:
    """A cache implementation that can wrap a plain function."""

    name: str
    make: Callable[[Callable[..., Any], Path], Wrapped]
    tier: str = "memory"
    note: str = ""
    #: True when concurrent identical calls are meant to compute once.
    single_flight: bool = False


def _clear_attr(fn: Any) -> Callable[[], None]:
    def close() -> None:
        c = getattr(fn, "cache", None)
        if c is not None and hasattr(c, "clear"):
            c.clear()
        if hasattr(fn, "cache_clear"):
            fn.cache_clear()

    return close


def _make_none(fn: Callable[..., Any], tmp: Path) -> Wrapped:
    return Wrapped(fn)


def _make_gr(fn: Callable[..., Any], tmp: Path) -> Wrapped:
    try:
        import gradio as gr
    except ImportError as exc:
        raise Unavailable("gradio not installed") from exc
    w = gr.cache(fn)
    return Wrapped(w, _clear_attr(w))


def _make_lru(fn: Callable[..., Any], tmp: Path) -> Wrapped:
    w = functools.lru_cache(maxsize=128)(fn)
    return Wrapped(w, w.cache_clear)


def _make_cachetools(fn: Callable[..., Any], tmp: Path) -> Wrapped:
    try:
        import cachetools
    except ImportError as exc:
        raise Unavailable("cachetools not installed") from exc
    store = cachetools.LRUCache(maxsize=128)
    w = cachetools.cached(store, lock=threading.Lock())(fn)
    return Wrapped(w, store.clear)


def _make_cachetools_condition(fn: Callable[..., Any], tmp: Path) -> Wrapped:
    try:
        import cachetools
    except ImportError as exc:
        raise Unavailable("cachetools not installed") from exc
    if "condition" not in inspect.signature(cachetools.cached).parameters:
        raise Unavailable("this cachetools has no condition= (needs >= 5.4)")
    store = cachetools.LRUCache(maxsize=128)
    w = cachetools.cached(store, condition=threading.Condition())(fn)
    return Wrapped(w, store.clear)


def _make_joblib(fn: Callable[..., Any], tmp: Path) -> Wrapped:
    try:
        import joblib
    except ImportError as exc:
        raise Unavailable("joblib not installed") from exc
    memory = joblib.Memory(location=str(tmp / "joblib"), verbose=0)
    w = memory.cache(fn)
    return Wrapped(w, lambda: memory.clear(warn=False))


def _make_diskcache(fn: Callable[..., Any], tmp: Path) -> Wrapped:
    try:
        import diskcache
    except ImportError as exc:
        raise Unavailable("diskcache not installed") from exc
    store = diskcache.Cache(str(tmp / "diskcache"))
    w = store.memoize()(fn)

    def close() -> None:
        store.clear()
        store.close()

    return Wrapped(w, close)


def _make_ic(digest: str) -> Callable[[Callable[..., Any], Path], Wrapped]:
    def make(fn: Callable[..., Any], tmp: Path) -> Wrapped:
        w = ic_decorate(fn, digest)
        return Wrapped(w, _clear_attr(w))

    return make


def ic_peer_name(digest: str) -> str:
    """Display name of the infercache row for ``digest``."""
    return f"infercache ({digest}{', default' if digest == IC_DIGESTS[0] else ''})"


PEERS: tuple[Peer, ...] = (
    Peer("no cache (plain call)", _make_none, tier="none", note="baseline: the call itself"),
    Peer(REFERENCE, _make_gr, note="SHA-256 of a repr string"),
    Peer("functools.lru_cache", _make_lru, note="floor for hashable args"),
    Peer("cachetools.cached (lock)", _make_cachetools),
    Peer(
        "cachetools.cached (condition)",
        _make_cachetools_condition,
        note="stampede-protected variant",
        single_flight=True,
    ),
    Peer("joblib.Memory", _make_joblib, tier="disk"),
    Peer("diskcache.memoize", _make_diskcache, tier="disk"),
    *(Peer(ic_peer_name(d), _make_ic(d), single_flight=True) for d in IC_DIGESTS),
)
PEERS_BY_NAME: dict[str, Peer] = {p.name: p for p in PEERS}

#: peers timed for hits on small arguments (everything).
SMALL_ARG_PEERS: tuple[str, ...] = tuple(p.name for p in PEERS if "condition" not in p.name)
#: peers timed for hits on big values.
VALUE_PEERS: tuple[str, ...] = SMALL_ARG_PEERS
#: peers in the concurrency case.
CONCURRENCY_PEERS: tuple[str, ...] = tuple(p.name for p in PEERS if p.tier != "none")


# --------------------------------------------------------------------------- persistent tiers


#: infercache with a persistent tier, and the floors it is measured against.
TIER_DISK = "infercache disk tier"
TIER_REDIS = "infercache Redis tier"
FLOOR_DISK = "floor: file read + frombuffer + key hash"
FLOOR_REDIS = "floor: redis-py GET + frombuffer + key hash"
#: the floor each infercache tier row is compared with.
FLOOR_OF = {TIER_DISK: FLOOR_DISK, TIER_REDIS: FLOOR_REDIS}
#: the disk caches people use instead, from :data:`PEERS`.
DISK_PEERS: tuple[str, ...] = tuple(p.name for p in PEERS if p.tier == "disk")
#: rows made over an infercache cache with a tier (the floors read back its record).
IC_TIER_ROWS: tuple[str, ...] = (TIER_DISK, TIER_REDIS, FLOOR_DISK, FLOOR_REDIS)
#: rows of the tier section.
TIER_PEERS: tuple[str, ...] = (TIER_DISK, TIER_REDIS, *DISK_PEERS, FLOOR_DISK, FLOOR_REDIS)


@dataclass(frozen=True)
class TierCase:
    """A function and its arguments whose hit is read back from a persistent tier."""

    name: str
    label: str
    args: Callable[[], tuple[Any, ...]]
    #: the function, given the counter of its real runs.
    function: Callable[[Counter], Callable[..., Any]]


def _small_function(counter: Counter) -> Callable[..., Any]:
    def infer(prompt: str, temperature: float = 0.7) -> str:
        counter.bump()
        return prompt.upper()

    return infer


def _filter_function(counter: Counter) -> Callable[..., Any]:
    def enhance(image: Any) -> Any:
        counter.bump()
        return 255 - image  # a new image of the same size

    return enhance


def _classify_function(counter: Counter) -> Callable[..., Any]:
    def classify(image: Any) -> int:
        counter.bump()
        return 1

    return classify


@functools.cache
def _tier_image() -> Any:
    return VALUE_CASES_BY_NAME["image_1080p"].build()


def _render_function(counter: Counter) -> Callable[..., Any]:
    def render(prompt: str) -> Any:
        counter.bump()
        return 255 - _tier_image()  # a new 1080p image for a short prompt

    return render


_IMAGE = f"{'x'.join(map(str, SIZES.image_1080p))} uint8 image ({_mb(SIZES.image_1080p)})"

#: The 1080p cases differ in what is hashed (the argument's key) and what is read back (the record).
TIER_CASES: tuple[TierCase, ...] = (
    TierCase("small_value", 'f("hello world", 0.7) -> str', lambda: ("hello world", 0.7), _small_function),
    TierCase("image_in_out", f"{_IMAGE} in, image out", lambda: (_tier_image(),), _filter_function),
    TierCase("image_in", f"{_IMAGE} in, int out", lambda: (_tier_image(),), _classify_function),
    TierCase("image_out", f"prompt in, {_IMAGE} out", lambda: ("a red bicycle",), _render_function),
)
#: the 1080p cases, for the targets.
TIER_IMAGE_CASES: tuple[str, ...] = ("image_in_out", "image_in", "image_out")
TIER_CASES_BY_NAME: dict[str, TierCase] = {c.name: c for c in TIER_CASES}


def ic_tier(fn: Callable[..., Any], store: str) -> Wrapped:
    """``fn`` cached by infercache with ``store=`` (a directory or a redis:// URL).

    ``version=`` is explicit: the benchmark's functions capture their run
    counter, which has no content key, so no code version is derived for them.
    """
    w = ic_decorate(fn, IC_DIGESTS[0], store=store, version="benchmark")
    return Wrapped(w, _clear_attr(w))


def stored_record(w: Wrapped) -> tuple[bytes, bytes]:
    """``(name, record)`` of the one entry an infercache tier holds after the first call."""
    engine = w.fn.cache.engine
    if not engine.tiers:
        raise Unavailable("the cache has no persistent tier")
    tier = engine.tiers[0]
    names = [name for name, _ in tier.entries(b"")]
    if len(names) != 1:
        raise Unavailable(f"expected one stored entry, found {len(names)}")
    record = tier.get(names[0])
    if record is None:
        raise Unavailable("the stored entry could not be read back")
    return names[0], record


def floor_disk(path: Path, args: tuple[Any, ...]) -> Callable[[], Any]:
    """Hash the arguments' key, read the record's file, view it as an array: a disk hit's least work."""
    import numpy as np

    hash_key = ic_hash_function(IC_DIGESTS[0])
    key_of = args[0] if len(args) == 1 else args

    def floor() -> Any:
        hash_key(key_of)
        with open(path, "rb") as f:
            data = f.read()
        return np.frombuffer(data, dtype=np.uint8)

    return floor


def floor_redis(client: Any, name: bytes, args: tuple[Any, ...]) -> Callable[[], Any]:
    """Hash the arguments' key, GET the record, view it as an array: a Redis hit's least work."""
    import numpy as np

    hash_key = ic_hash_function(IC_DIGESTS[0])
    key_of = args[0] if len(args) == 1 else args

    def floor() -> Any:
        hash_key(key_of)
        return np.frombuffer(client.get(name), dtype=np.uint8)

    return floor


# --------------------------------------------------------------------------- hashing throughput


def hash_functions() -> dict[str, Callable[[Any], Any]]:
    """Raw digests and copies over a contiguous buffer, keyed by display name.

    Names starting with ``copy:`` are memory copies (the physical limit); the
    infercache rows are added when ``hash_key`` exists and raise
    :class:`Unavailable` otherwise.
    """
    import hashlib

    out: dict[str, Callable[[Any], Any]] = {
        "copy: np.copy (alloc + copy)": lambda a: a.copy(),
        "sha256 (hashlib)": lambda a: hashlib.sha256(a).digest(),
    }
    try:
        import blake3

        out["blake3 (1 thread)"] = lambda a: blake3.blake3(a).digest()
        out["blake3 (all threads)"] = lambda a: blake3.blake3(a, max_threads=blake3.blake3.AUTO).digest()
    except ImportError:
        pass
    try:
        import xxhash

        out["xxh3_128"] = lambda a: xxhash.xxh3_128(a).digest()
        out["xxh3_64"] = lambda a: xxhash.xxh3_64(a).digest()
    except ImportError:
        pass
    try:
        from gradio.caching import cache_hash

        out["gr.cache cache_hash(array)"] = cache_hash
    except ImportError:
        pass
    return out


HASH_ROWS: tuple[str, ...] = (
    "copy: np.copy (alloc + copy)",
    "copy: np.copyto (preallocated)",
    "sha256 (hashlib)",
    "blake3 (1 thread)",
    "blake3 (all threads)",
    "xxh3_128",
    "xxh3_64",
    "gr.cache cache_hash(array)",
    *(f"infercache hash_key ({d})" for d in IC_DIGESTS),
)


def hash_row_function(name: str, buf: Any) -> Callable[[], Any]:
    """A zero-argument callable for the hash/copy row ``name`` over ``buf``."""
    import numpy as np

    if name == "copy: np.copyto (preallocated)":
        dst = np.empty_like(buf)
        return lambda: np.copyto(dst, buf)
    if name.startswith("infercache hash_key"):
        digest = name[name.index("(") + 1 : -1]
        fn = ic_hash_function(digest)
        return lambda: fn(buf)
    table = hash_functions()
    if name not in table:
        raise Unavailable(f"{name}: library not installed")
    f = table[name]
    return lambda: f(buf)


# --------------------------------------------------------------------------- concurrency


@dataclass
class Counter:
    """Thread-safe count of how many times the wrapped body really ran."""

    n: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bump(self) -> None:
        with self.lock:
            self.n += 1


def slow_function(counter: Counter, seconds: float) -> Callable[..., Any]:
    """A function that stands for a model: counts its runs and sleeps ``seconds``."""

    def infer(prompt: str, temperature: float = 0.7) -> str:
        counter.bump()
        time.sleep(seconds)
        return prompt.upper()

    return infer


def run_burst(fn: Callable[..., Any], callers: int) -> list[Any]:
    """Call ``fn("same prompt", 0.7)`` from ``callers`` threads released together."""
    barrier = threading.Barrier(callers)
    results: list[Any] = [None] * callers
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn("the same prompt", 0.7)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


# --------------------------------------------------------------------------- prefix search


def build_prompts(n: int) -> list[str]:
    """``n`` distinct chat-like prompts of realistic length (~100-300 characters)."""
    words = [
        "system", "user", "assistant", "image", "model", "cache", "tensor", "prompt", "token",
        "reply", "please", "describe", "the", "following", "picture", "in", "detail", "with",
        "colours",
    ]
    out = []
    for i in range(n):
        k = 15 + i % 30
        body = " ".join(words[(i * 7 + j * 3) % len(words)] for j in range(k))
        out.append(f"[conv {i}] {body}")
    return out


def guide_longest_prefix(cache: Any, prompt: str) -> Any:
    """The prefix loop from the Gradio caching guide: scan ``keys()`` for the longest prefix."""
    best_key = None
    best_len = 0
    for cached_key in cache.keys():  # noqa: SIM118 - the guide's loop; gr.Cache is not iterable
        if isinstance(cached_key, str) and prompt.startswith(cached_key) and len(cached_key) > best_len:
            best_key = cached_key
            best_len = len(cached_key)
    return best_key

