"""``@cache``: content-keyed caching of whole function calls.

A call's key is made from its arguments bound to the function's parameters
(:mod:`infercache.binding`) and hashed by content (:mod:`infercache.keys`).
The key goes to the cache's :class:`~infercache.engine.Engine`, which serves a
hit or runs the miss path (single-flight, protect, size, store). The function
itself is always called with the caller's own arguments, so ``*args``,
``**kwargs`` and positional-only parameters work.
"""

from __future__ import annotations

import functools
import inspect
import keyword
import sys
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from typing import Any, ParamSpec, Protocol, TypeVar, cast, overload

from . import hooks
from .binding import Signature
from .config import Settings
from .engine import Engine, Framed, Full
from .errors import CacheKeyError, UnhashableError
from .flight import Call
from .keys import hash_key, make_call_key, make_key
from .keys.api import STR_FLOAT_PREFIXES, general_call_key, short_call_key, str_float_key
from .keys.wire import KEY_TAG, T_FLOAT, pack_float
from .log import logger
from .safety import PASS_THROUGH, release
from .store import SESSION, CacheStats, Entry
from .stores import FROM_ENV, StoreSpec, tiers_for
from .version import captured_state, code_version

__all__ = ["CacheHandle", "CachedFunction", "cache"]

P = ParamSpec("P")
R_co = TypeVar("R_co", covariant=True)

_RUNTIME_WRAPPERS_MAX = 1024
# cache(fn) called again with the same function and settings returns the same wrapper (one store).
_runtime_wrappers: OrderedDict[tuple[Any, ...], Callable[..., Any]] = OrderedDict()
_runtime_wrappers_lock = threading.Lock()


class CacheHandle:
    """``fn.cache``: inspect and clear one cached function's cache."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.per_session = engine.settings.per_session
        # Gradio looks for this attribute to know the function keeps per-session data.
        self._per_session = self.per_session

    @property
    def name(self) -> str:
        """The cache's name (``name=``, else the function's qualified name; unique per process)."""
        return self.engine.name

    def clear(self) -> None:
        """Drop every entry (of every session) and every result in flight.

        Computations running now are not stored, and callers arriving from now
        on compute afresh instead of joining them.
        """
        self.engine.clear()

    def clear_session(self, session_id: str) -> int:
        """Drop one session's entries and in-flight results (others' are untouched); how many entries left."""
        return self.engine.clear_session(session_id)

    def stats(self) -> CacheStats:
        """Hits, misses, joins, evictions, size, memory, hit ratio and time saved."""
        return self.engine.stats()

    def __len__(self) -> int:
        return len(self.engine)

    def __repr__(self) -> str:
        s = self.engine.stats()
        return f"<infercache {s.size} entries, {s.memory} bytes, {s.hits} hits / {s.misses} misses>"


def _manual_cache_type() -> type | None:
    from .manual import Cache

    return Cache


class CachedFunction(Protocol[P, R_co]):
    """What ``@cache`` returns: the function, same signature, plus ``.cache``."""

    cache: CacheHandle

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...


# The overloads repeat the settings because a type checker needs each form spelled out.
@overload
def cache(
    fn: Callable[P, R_co],
    *,
    key: Callable[[dict[str, Any]], Any] | None = None,
    max_size: int = 128,
    max_memory: int | str | None = None,
    per_session: bool = False,
    ttl: float | None = None,
    digest: str = "blake3",
    name: str | None = None,
    store: StoreSpec = FROM_ENV,
    version: str | None = None,
) -> CachedFunction[P, R_co]: ...


@overload
def cache(
    fn: None = None,
    *,
    key: Callable[[dict[str, Any]], Any] | None = None,
    max_size: int = 128,
    max_memory: int | str | None = None,
    per_session: bool = False,
    ttl: float | None = None,
    digest: str = "blake3",
    name: str | None = None,
    store: StoreSpec = FROM_ENV,
    version: str | None = None,
) -> Callable[[Callable[P, R_co]], CachedFunction[P, R_co]]: ...


def cache(
    fn: Callable[..., Any] | None = None,
    *,
    key: Callable[[dict[str, Any]], Any] | None = None,
    max_size: int = 128,
    max_memory: int | str | None = None,
    per_session: bool = False,
    ttl: float | None = None,
    digest: str = "blake3",
    name: str | None = None,
    store: StoreSpec = FROM_ENV,
    version: str | None = None,
) -> Any:
    """Cache a function's results by the content of its arguments.

    Use as ``@cache``, ``@cache(...)``, or at runtime as ``cache(fn)(*args)``:
    repeated runtime wraps of the same function with the same settings share
    one store. Works for functions, async functions, generators (every yield is
    kept and replayed on a hit) and async generators.

    Args:
        key: called with the bound arguments as a dict (parameter name to value,
            defaults applied); what it returns is hashed instead of all of them.
        max_size: most entries kept (least recently used evicted first); 0 for
            unlimited.
        max_memory: most bytes kept, as an int or a string like ``"512mb"``,
            ``"2gb"``, ``"1.5GiB"``; a hard bound.
        per_session: give each user session its own entries (see
            :func:`infercache.session`); bounds are shared by all sessions.
        ttl: seconds an entry stays valid.
        digest: ``"blake3"`` (cryptographic, the default: safe when inputs come
            from untrusted users) or ``"xxh3"`` (faster, for trusted inputs).
        name: the cache's name in stats and metrics (default: the function's
            qualified name; made unique per process with a ``#2`` suffix).
        store: where results also live beyond the process: None (memory
            only), a directory or ``"disk"``, a ``redis://`` / ``rediss://`` /
            ``unix://`` URL, or a store object (``DiskStore``, ``RedisStore``);
            by default ``INFERCACHE_STORE``, else memory only. See
            :mod:`infercache.stores`.
        version: names the version of the function's results in a store;
            by default derived from its code (not its line numbers or
            docstring) and captured state, so an edited function stops
            serving old results. Set it when results depend on what the code
            cannot show (a helper, weights, a library version).

    Raises :class:`~infercache.errors.ConfigError` (a ``ValueError`` and a
    ``TypeError``) for an invalid setting. The wrapped function gains
    ``fn.cache``, a :class:`CacheHandle`.
    """
    settings = Settings.of(
        key=key,
        max_size=max_size,
        max_memory=max_memory,
        per_session=per_session,
        ttl=ttl,
        digest=digest,
        name=name,
        store=store,
        version=version,
    )

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(func):
            raise TypeError("cache(...) expects a callable: use cache(fn)(*args), not cache(fn(*args))")
        if isinstance(getattr(func, "cache", None), CacheHandle):
            return func
        memo_key = (func, settings)
        try:
            hash(memo_key)
        except TypeError:  # an unhashable callable object: it gets a store of its own
            return _wrap(func, settings)
        with _runtime_wrappers_lock:
            wrapper = _runtime_wrappers.get(memo_key)
            if wrapper is None:
                wrapper = _wrap(func, settings)
                _runtime_wrappers[memo_key] = wrapper
                while len(_runtime_wrappers) > _RUNTIME_WRAPPERS_MAX:
                    _runtime_wrappers.popitem(last=False)
            else:
                _runtime_wrappers.move_to_end(memo_key)
            return wrapper

    if fn is not None:
        return decorate(fn)
    return decorate


def _names(func: Callable[..., Any]) -> tuple[str, str]:
    """``(identity, label)``: ``module.qualname`` (stable across processes) and the qualified name."""
    label = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or type(func).__qualname__
    module = getattr(func, "__module__", None) or type(func).__module__
    return f"{module}.{label}", label


def _engine(func: Callable[..., Any], settings: Settings) -> Engine:
    """The engine of a cached function, with the store ``store=`` names and the code version."""
    identity, label = _names(func)
    tiers, codec = tiers_for(settings.store)
    version = settings.version
    if tiers and version is None:
        version = code_version(func)
        state = captured_state(func)
        if state:
            try:
                version += "-" + hash_key(state)[:16]
            except UnhashableError as exc:
                logger.warning(
                    "infercache: %r keeps its results in memory only: what it captures (closure, partial "
                    "arguments or self) cannot be keyed by content (%s); pass version= to share them",
                    label,
                    exc,
                )
                tiers, codec = (), None
    return Engine(settings, identity, label=label, tiers=tiers, codec=codec, version=version or "")


def _wrap(func: Callable[..., Any], settings: Settings) -> Callable[..., Any]:
    engine = _engine(func, settings)
    label = engine.label
    sig = Signature(func, _manual_cache_type())
    names = sig.names
    digest = settings.digest
    key_fn = settings.key
    per_session = settings.per_session
    namespace = engine.namespace
    active = hooks.active
    registered = hooks.registered()
    modules = sys.modules
    lookup = engine.lookup
    alookup = engine.alookup
    deliver = engine.deliver
    probe_miss = engine.probe_miss
    tag = KEY_TAG[digest]
    str_float_prefixes_get = STR_FLOAT_PREFIXES.get
    # The inlined memory lookup (Store.lookup_slot's body) works on the store's own dict
    # and lock, bound once here; with tiers a memory miss goes on to them (Engine.lookup).
    store = engine.store
    inline = not engine.tiers
    data_get, to_end, acquire, release_lock, clock = store.lookup_parts()
    # A miss registers this caller as the slot's leader in the same critical section (Store.lead's
    # LEAD case), when no call of the slot is in flight; engine.led then computes and settles.
    calls = store.calls_table()
    led = engine.led
    ident = threading.get_ident

    plain = key_fn is None and not per_session
    injected_types = hooks.injected_types
    framework: list[Any] = [(), frozenset()]  # injected types seen last, positions they fill
    # Calls with exactly this many positional arguments and no keywords take the inlined path.
    fast_count = sig.count if plain and sig.simple and sig.keep is None else -1
    # The injected-types tuple for which this function has nothing to drop (checked by identity).
    nothing_injected: list[Any] = [()]

    def key_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Full:
        values = sig.values(args, kwargs)
        types = injected_types()
        if types is not framework[0]:
            framework[:] = [types, sig.declared(types)]
            nothing_injected[0] = types if not framework[1] else None
        drop = framework[1]
        if plain and not drop:
            return ("", make_call_key(values, names, algorithm=digest))
        arg_names = names
        if drop:
            arg_names = tuple(n for i, n in enumerate(arg_names) if i not in drop)
            values = tuple(v for i, v in enumerate(values) if i not in drop)
        k: Hashable
        if key_fn is None:
            k = make_call_key(values, arg_names, algorithm=digest)
        else:
            try:
                chosen = key_fn(dict(zip(arg_names, values)))
            except Exception as exc:
                raise CacheKeyError(
                    f"the key= function of cached {label!r} raised {type(exc).__name__}: {exc}"
                ) from exc
            k = make_key(chosen, algorithm=digest, where=f"key= of {label!r}")
        return (namespace() if per_session else "", k)

    def key_or_miss(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Full:
        try:
            return key_of(args, kwargs)
        except Exception:
            # While a framework only probes for a hit, a bad argument is a miss: the real
            # call then raises the same error where the framework reports it to the user.
            probe_miss(registered, counted=False)
            raise

    wrapper: Callable[..., Any]
    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        async def async_gen_wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            integrations = active()
            full = key_or_miss(args, kwargs)
            items = engine.astream(full, lambda: func(*args, **kwargs), integrations)
            try:
                async for item in items:
                    yield item
            finally:
                await items.aclose()

        wrapper = async_gen_wrapper

    elif inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            integrations = active()
            full = key_or_miss(args, kwargs)
            yield from engine.stream(full, lambda: func(*args, **kwargs), integrations)

        wrapper = gen_wrapper

    elif inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            if hooks.pending and len(modules) != hooks.seen_modules:
                active()
            full: Full
            try:
                if len(args) == fast_count and not kwargs and hooks.injected is nothing_injected[0]:
                    key = short_call_key(args, tag)
                    full = ("", general_call_key(args, names, digest) if key is None else key)
                else:
                    full = key_of(args, kwargs)
            except Exception:
                probe_miss(registered, counted=False)
                raise
            entry = await alookup(full) if engine.tiers else store.lookup(full)
            if entry is not None:
                gate = hooks.hit_gate
                if gate is not None and gate.get() is not None:
                    for hook in hooks.hit_hooks:
                        hook()
                kept = entry.value
                if type(kept) in PASS_THROUGH:
                    return kept
                return deliver(kept)
            probe_miss(registered)
            return await engine.acall(full, func, args, kwargs, registered)

        wrapper = async_wrapper

    else:

        @functools.wraps(func)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            # The hit path is inlined rather than calls into the engine and the store: it is
            # the path compared with gr.cache (a hit well under 1 µs), where each call layer
            # costs ~10%.
            if hooks.pending and len(modules) != hooks.seen_modules:
                active()  # a framework was imported since the last call: load its integration
            full: Full | None = None
            slot: Hashable
            try:
                if len(args) == fast_count and not kwargs and hooks.injected is nothing_injected[0]:
                    # A shared cache's slot in the store is the key itself (store.slot_of).
                    slot = None
                    if fast_count == 2:  # f(prompt, temperature): short_call_key's first case, inlined
                        first, second = args
                        if type(first) is str and type(second) is float:
                            slot = str_float_prefixes_get(first)
                            if slot is not None:
                                slot += pack_float(T_FLOAT, second)
                            else:
                                slot = str_float_key(first, second, tag)
                    if slot is None:
                        slot = short_call_key(args, tag)
                        if slot is None:
                            slot = general_call_key(args, names, digest)
                else:
                    full = key_of(args, kwargs)
                    slot = (SESSION, full[0], full[1]) if full[0] else full[1]
            except Exception:
                probe_miss(registered, counted=False)
                raise
            entry: Entry | None
            call: Call | None = None
            if inline:
                # Store.lookup_slot, inlined: counted, LRU-refreshed and expired under the lock;
                # a miss of a slot nobody computes registers this caller as its leader.
                acquire()
                try:
                    entry = data_get(slot)
                    if entry is None:
                        store.misses += 1
                        if slot not in calls:
                            call = calls[slot] = Call(ident())
                    elif entry.expires is None or entry.expires > clock():
                        to_end(slot)
                        store.hits += 1
                        store.saved_seconds += entry.cost
                    else:
                        store.expire(slot, entry)
                        entry = None
                finally:
                    release_lock()
            else:
                if full is None:
                    full = ("", slot)
                entry = lookup(full)
            if entry is not None:
                gate = hooks.hit_gate
                if gate is not None and gate.get() is not None:
                    for hook in hooks.hit_hooks:
                        hook()
                kept = entry.value
                if type(kept) in PASS_THROUGH:
                    return kept
                if type(kept) is not Framed:
                    return release(kept)
                return deliver(kept)
            if call is not None:
                return led(slot, call, func, args, kwargs, registered)
            probe_miss(registered)
            return engine.call(("", slot) if full is None else full, func, args, kwargs, registered)

        wrapper = sync_wrapper
        if inline and 0 < fast_count < _EXACT_MAX and all(_plain_name(n) for n in names):
            wrapper = functools.wraps(func)(
                _exact_sync_wrapper(
                    func,
                    names,
                    general=sync_wrapper,
                    env={
                        "hooks": hooks,
                        "modules": modules,
                        "active": active,
                        "nothing_injected": nothing_injected,
                        "prefixes_get": str_float_prefixes_get,
                        "str_float_key": str_float_key,
                        "calls": calls,
                        "Call": Call,
                        "ident": ident,
                        "led": led,
                        "pack_float": pack_float,
                        "T_FLOAT": T_FLOAT,
                        "short_call_key": short_call_key,
                        "general_call_key": general_call_key,
                        "tag": tag,
                        "names": names,
                        "digest": digest,
                        "probe_miss": probe_miss,
                        "registered": registered,
                        "acquire": acquire,
                        "release_lock": release_lock,
                        "data_get": data_get,
                        "to_end": to_end,
                        "clock": clock,
                        "store": store,
                        "PASS_THROUGH": PASS_THROUGH,
                        "Framed": Framed,
                        "release": release,
                        "deliver": deliver,
                        "engine": engine,
                        "func": func,
                    },
                )
            )

    cast(Any, wrapper).cache = CacheHandle(engine)
    return wrapper


_EXACT_MAX = 16  # most parameters of a function given an exact-signature wrapper

_NOARG: Any = type("_NoArg", (), {"__repr__": lambda self: "<no argument>", "__slots__": ()})()

# The sync wrapper's hit path (see sync_wrapper above: the same steps, in the same order)
# for a function whose parameters are all positional-or-keyword, written with the
# function's own parameters instead of *args/**kwargs: a call then builds no tuple and
# no dict (~40 ns of a 0.6 µs hit). Every name the body uses is prefixed with _ic_ (the
# function's parameters may shadow any other name, builtins included). A call that does
# not give every parameter, gives extra positional arguments or finds injected types
# this function has not seen yet takes the *args wrapper (_ic_general).
_EXACT_TEMPLATE = """
def {name}({params_with_defaults}*_ic_rest):
    if _ic_hooks.pending and _ic_len(_ic_modules) != _ic_hooks.seen_modules:
        _ic_active()
    if _ic_rest or {any_missing} or _ic_hooks.injected is not _ic_nothing_injected[0]:
        _ic_args, _ic_kwargs = _ic_given(({values}), _ic_rest)
        return _ic_general(*_ic_args, **_ic_kwargs)
    try:
        _ic_slot = None
{str_float}        if _ic_slot is None:
            _ic_slot = _ic_short_call_key(({values}), _ic_tag)
            if _ic_slot is None:
                _ic_slot = _ic_general_call_key(({values}), _ic_names, _ic_digest)
    except _ic_Exception:
        _ic_probe_miss(_ic_registered, counted=False)
        raise
    _ic_call = None
    _ic_acquire()
    try:
        _ic_entry = _ic_data_get(_ic_slot)
        if _ic_entry is None:
            _ic_store.misses += 1
            if _ic_slot not in _ic_calls:
                _ic_call = _ic_calls[_ic_slot] = _ic_Call(_ic_ident())
        elif _ic_entry.expires is None or _ic_entry.expires > _ic_clock():
            _ic_to_end(_ic_slot)
            _ic_store.hits += 1
            _ic_store.saved_seconds += _ic_entry.cost
        else:
            _ic_store.expire(_ic_slot, _ic_entry)
            _ic_entry = None
    finally:
        _ic_release_lock()
    if _ic_entry is not None:
        _ic_gate = _ic_hooks.hit_gate
        if _ic_gate is not None and _ic_gate.get() is not None:
            for _ic_hook in _ic_hooks.hit_hooks:
                _ic_hook()
        _ic_kept = _ic_entry.value
        if _ic_type(_ic_kept) in _ic_PASS_THROUGH:
            return _ic_kept
        if _ic_type(_ic_kept) is not _ic_Framed:
            return _ic_release(_ic_kept)
        return _ic_deliver(_ic_kept)
    if _ic_call is not None:
        return _ic_led(_ic_slot, _ic_call, _ic_func, ({values}), None, _ic_registered)
    _ic_probe_miss(_ic_registered)
    return _ic_engine.call(("", _ic_slot), _ic_func, ({values}), {{}}, _ic_registered)
"""

_EXACT_STR_FLOAT = """        if _ic_type({p0}) is _ic_str and _ic_type({p1}) is _ic_float:
            _ic_slot = _ic_prefixes_get({p0})
            if _ic_slot is not None:
                _ic_slot += _ic_pack_float(_ic_T_FLOAT, {p1})
            else:
                _ic_slot = _ic_str_float_key({p0}, {p1}, _ic_tag)
"""


def _plain_name(name: str) -> bool:
    """A parameter name an exact wrapper can spell: an identifier, not a keyword, not one of its own."""
    return name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_ic_")


def _given_for(
    names: tuple[str, ...],
) -> Callable[[tuple[Any, ...], tuple[Any, ...]], tuple[tuple[Any, ...], dict[str, Any]]]:
    """For an exact wrapper over ``names``: the caller's own arguments again, from its parameters.

    Parameters before the first one not given were given by position or by
    name, which is the same for a positional-or-keyword parameter; those given
    after it are passed by name (extra positional arguments can only follow a
    full set).
    """

    def given(values: tuple[Any, ...], rest: tuple[Any, ...]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        cut = next((i for i, v in enumerate(values) if v is _NOARG), len(values))
        kwargs = {n: v for n, v in zip(names[cut:], values[cut:]) if v is not _NOARG}
        return values[:cut] + rest, kwargs

    return given


def _exact_sync_wrapper(
    func: Callable[..., Any], names: tuple[str, ...], *, general: Callable[..., Any], env: dict[str, Any]
) -> Callable[..., Any]:
    """``general`` (the *args sync wrapper) with the hit path written over ``names`` (see _EXACT_TEMPLATE)."""
    values = "".join(f"{n}, " for n in names)
    source = _EXACT_TEMPLATE.format(
        name="sync_wrapper",
        params_with_defaults="".join(f"{n}=_ic_NOARG, " for n in names),
        any_missing=" or ".join(f"{n} is _ic_NOARG" for n in names),
        values=values,
        str_float=_EXACT_STR_FLOAT.format(p0=names[0], p1=names[1]) if len(names) == 2 else "",
    )
    namespace: dict[str, Any] = {f"_ic_{k}": v for k, v in env.items()}
    namespace.update(
        _ic_NOARG=_NOARG,
        _ic_general=general,
        _ic_given=_given_for(names),
        _ic_len=len,
        _ic_type=type,
        _ic_str=str,
        _ic_float=float,
        _ic_Exception=Exception,
    )
    # The source is the template above with parameter names checked to be identifiers.
    exec(compile(source, f"<infercache wrapper of {getattr(func, '__qualname__', '?')}>", "exec"), namespace)  # noqa: S102
    made: Callable[..., Any] = namespace["sync_wrapper"]
    # Python's own errors (an unexpected keyword argument) name the function, as its own call would.
    name = getattr(func, "__name__", None)
    if isinstance(name, str) and name.isidentifier():
        code = made.__code__.replace(co_name=name)
        qualname = getattr(func, "__qualname__", None)
        if sys.version_info >= (3, 11) and isinstance(qualname, str):
            code = code.replace(co_qualname=qualname)
        made.__code__ = code
    return made
