"""``@cache``: content-keyed caching of whole function calls.

A call's key is made from its arguments bound to the function's parameters
(so ``f(1, b=2)``, ``f(a=1, b=2)`` and ``f(1)`` with default ``b=2`` are one
key) and hashed by content (:mod:`infercache.keys`). On a hit the kept value
is released to the caller (:mod:`infercache.safety`); on a miss one caller
computes while identical callers wait for it (:mod:`infercache.flight`), and
the result is protected, measured (:mod:`infercache.sizes`) and stored
(:mod:`infercache.store`). The function itself is always called with the
caller's own arguments, so ``*args``, ``**kwargs`` and positional-only
parameters work.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import time
import typing
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, ParamSpec, Protocol, TypeVar, overload

from . import hooks, sessions
from .flight import ABANDONED, AsyncRun, Call, Flights, Run, Unkept, current_work
from .keys import ALGORITHMS, make_call_key, make_key
from .safety import PASS_THROUGH as pass_through
from .safety import protect, release
from .sizes import sizeof
from .store import (
    CacheStats,
    Store,
    Ticket,
    check_max_size,
    check_ttl,
    parse_memory,
)

__all__ = ["CacheHandle", "CacheKeyError", "CachedFunction", "cache"]

P = ParamSpec("P")
R_co = TypeVar("R_co", covariant=True)
RunT = TypeVar("RunT", Run, AsyncRun)

_EMPTY = inspect.Parameter.empty
_ANY_SIGNATURE = inspect.Signature(
    [
        inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
        inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
    ]
)
_RUNTIME_REGISTRY_MAX = 1024
_registry: OrderedDict[tuple[Any, ...], Callable[..., Any]] = OrderedDict()
_registry_lock = threading.Lock()
_perf = time.perf_counter


class CacheKeyError(ValueError):
    """The ``key=`` function given to ``cache`` raised while computing a key."""


class CacheHandle:
    """``fn.cache``: inspect and clear one cached function's store."""

    def __init__(self, store: Store, per_session: bool) -> None:
        self._store = store
        self.per_session = per_session
        # Frameworks look for this name to know the function keeps per-session data.
        self._per_session = per_session

    def clear(self) -> None:
        """Drop every entry (of every session) and every result in flight.

        Computations running now are not stored, and callers arriving from now
        on compute afresh instead of joining them.
        """
        self._store.clear()

    def clear_session(self, session_id: str) -> int:
        """Drop one session's entries and in-flight results (other sessions' are untouched); returns how many entries."""
        return self._store.clear_namespace(session_id)

    def stats(self) -> CacheStats:
        """Hits, misses, joins, evictions, size, memory, hit ratio and time saved."""
        return self._store.stats()

    def __len__(self) -> int:
        return len(self._store)

    def __repr__(self) -> str:
        s = self._store.stats()
        return (
            f"<infercache {s.size} entries, {s.memory} bytes, "
            f"{s.hits} hits / {s.misses} misses>"
        )


def _has_empty(values: tuple[Any, ...] | list[Any]) -> bool:
    # By identity: ``in`` would compare arrays and DataFrames with ``==``.
    for v in values:
        if v is _EMPTY:
            return True
    return False


class _Framed:
    """A kept value that a framework integration transformed on the way in."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class _Signature:
    """The parameters of a function, precomputed for fast argument binding."""

    def __init__(self, fn: Callable[..., Any], manual_cache_type: type | None) -> None:
        try:
            self.signature = inspect.signature(fn)
        except (ValueError, TypeError):  # builtins without one: key all arguments as given
            self.signature = _ANY_SIGNATURE
        params = list(self.signature.parameters.values())
        self.names = tuple(p.name for p in params)
        self.defaults = tuple(p.default for p in params)
        self.count = len(params)
        self.simple = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
        self.index = {p.name: i for i, p in enumerate(params)}
        skip = {
            i
            for i, p in enumerate(params)
            if manual_cache_type is not None and isinstance(p.default, manual_cache_type)
        }
        self.keep = tuple(i for i in range(self.count) if i not in skip) if skip else None
        self.params = [p for i, p in enumerate(params) if i not in skip]
        if self.keep is not None:
            self.names = tuple(self.names[i] for i in self.keep)
        self._fn = fn

    def declared(self, types: tuple[type, ...]) -> frozenset[int]:
        """Positions (in :meth:`values`) of parameters a framework fills in itself.

        A parameter is the framework's when its default is an instance of one
        of ``types`` (``progress=gr.Progress()``) or its annotation names one
        (``request: gr.Request``), which is how frameworks decide what to inject.
        """
        if not types:
            return frozenset()
        try:
            hints = typing.get_type_hints(self._fn)
        except Exception:  # noqa: BLE001 - unresolvable annotations: fall back to the raw ones
            hints = {p.name: p.annotation for p in self.params}
        return frozenset(
            i
            for i, p in enumerate(self.params)
            if isinstance(p.default, types) or _names_type(hints.get(p.name), types)
        )

    def values(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """The argument of every parameter, in order, defaults applied."""
        values = self._bind(args, kwargs)
        if self.keep is not None:
            values = tuple(values[i] for i in self.keep)
        return values

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        if self.simple:
            n = len(args)
            if not kwargs:
                if n == self.count:
                    return args
                if n < self.count:
                    tail = self.defaults[n:]
                    if not _has_empty(tail):
                        return args + tail
            elif n <= self.count:
                out = list(args) + list(self.defaults[n:])
                ok = True
                for name, value in kwargs.items():
                    i = self.index.get(name)
                    if i is None or i < n:
                        ok = False
                        break
                    out[i] = value
                if ok and not _has_empty(out):
                    return tuple(out)
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return tuple(bound.arguments.values())


def _names_type(hint: Any, types: tuple[type, ...]) -> bool:
    args = typing.get_args(hint)
    if args:  # Optional[X], X | None, list[X], Annotated[X, ...]
        return any(_names_type(arg, types) for arg in args)
    try:
        return isinstance(hint, type) and issubclass(hint, types)
    except TypeError:  # generic aliases pass isinstance(..., type) on Python 3.10
        return False


def _manual_cache_type() -> type | None:
    from .manual import Cache

    return Cache


class CachedFunction(Protocol[P, R_co]):
    """What ``@cache`` returns: the function, same signature, plus ``.cache``."""

    cache: CacheHandle

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...


@overload
def cache(fn: Callable[P, R_co]) -> CachedFunction[P, R_co]: ...


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

    The wrapped function gains ``fn.cache``, a :class:`CacheHandle`.
    """
    if key is not None and not callable(key):
        raise TypeError(f"key= must be a callable taking the arguments dict, not {key!r}")
    if digest not in ALGORITHMS:
        raise ValueError(f"digest must be one of {ALGORITHMS}, not {digest!r}")
    settings = (
        key,
        check_max_size(max_size),
        parse_memory(max_memory),
        bool(per_session),
        check_ttl(ttl),
        digest,
    )

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(func):
            raise TypeError(
                "cache(...) expects a callable: use cache(fn)(*args), not cache(fn(*args))"
            )
        if isinstance(getattr(func, "cache", None), CacheHandle):
            return func
        registry_key = (func, *settings)
        try:
            hash(registry_key)
        except TypeError:  # an unhashable callable object: it gets a store of its own
            return _wrap(func, *settings)
        with _registry_lock:
            wrapper = _registry.get(registry_key)
            if wrapper is None:
                wrapper = _wrap(func, *settings)
                _registry[registry_key] = wrapper
                while len(_registry) > _RUNTIME_REGISTRY_MAX:
                    _registry.popitem(last=False)
            else:
                _registry.move_to_end(registry_key)
            return wrapper

    if fn is not None:
        return decorate(fn)
    return decorate


def _wrap(
    func: Callable[..., Any],
    key_fn: Callable[[dict[str, Any]], Any] | None,
    max_size: int,
    max_memory: int | None,
    per_session: bool,
    ttl: float | None,
    digest: str,
) -> Callable[..., Any]:
    store = Store(max_size=max_size, max_memory=max_memory, ttl=ttl)
    if per_session:
        sessions.register_store(store)
    flights = Flights()
    sig = _Signature(func, _manual_cache_type())
    label = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
    names = sig.names
    namespace = sessions.namespace
    active = hooks.active
    registered = hooks.registered()
    modules = sys.modules
    lookup = store.lookup
    claim = store.claim
    work_get, work_set, work_reset = current_work.get, current_work.set, current_work.reset
    warned: list[bool] = []

    plain = key_fn is None and not per_session
    injected_types = hooks.injected_types

    framework: list[Any] = [(), frozenset()]  # injected types seen last, positions they fill
    # Calls with exactly this many positional arguments and no keywords take the inlined path.
    fast_count = sig.count if plain and sig.simple and sig.keep is None else -1
    # The injected-types tuple for which this function has nothing to drop (checked by identity).
    nothing_injected: list[Any] = [()]

    def key_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Hashable]:
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
        if key_fn is None:
            k = make_call_key(values, arg_names, algorithm=digest)
        else:
            try:
                chosen = key_fn(dict(zip(arg_names, values)))
            except Exception as exc:
                raise CacheKeyError(
                    f"the key= function of cached {label!r} raised "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            k = make_key(chosen, algorithm=digest, where=f"key= of {label!r}")
        return (namespace() if per_session else "", k)

    def keep(value: Any, integs: list[hooks.Integration]) -> Any:
        framed = value
        for g in integs:
            framed = g.store_output(framed)
        if framed is value:
            return protect(value)
        return _Framed(protect(framed))

    def deliver(kept: Any, notify: bool = True) -> Any:
        """What a caller receives for a kept value; ``notify`` only for values served from the store."""
        if notify:
            for hook in hooks.hit_hooks:
                hook()
        kind = type(kept)
        if kind is Unkept:
            return kept.value
        if kind is not _Framed:
            return release(kept)
        value = release(kept.value)
        for g in active():
            value = g.load_output(value)
        return value

    def probe_miss(integs: list[hooks.Integration], counted: bool = True) -> None:
        for g in integs:
            if g.probing():
                if counted:
                    # The framework will call again for real: count that call's miss, not this one.
                    store.uncount_miss()
                raise g.miss_error()

    def key_or_miss(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Hashable]:
        try:
            return key_of(args, kwargs)
        except Exception:
            # While a framework only probes for a hit, a bad argument is a miss: the real
            # call then raises the same error where the framework reports it to the user.
            probe_miss(registered, counted=False)
            raise

    def save(full: tuple[str, Hashable], kept: Any, cost: float, ticket: Ticket) -> None:
        """Store a computed value; the store drops it if an invalidation covered its ticket."""
        ns, k = full
        store.set(ns, k, kept, sizeof(kept) + sizeof(k), cost=cost, ticket=ticket)

    def warn_uncached(exc: BaseException, what: str, stacklevel: int) -> None:
        if not warned:
            warned.append(True)
            warnings.warn(
                f"infercache: {what} of {label!r} could not be copied safely and "
                f"was not cached ({type(exc).__name__}: {exc})",
                RuntimeWarning,
                stacklevel=stacklevel,
            )

    def keep_or_abandon(full: tuple[str, Hashable], result: Any, integs: list[hooks.Integration]) -> Any:
        try:
            return keep(result, integs)
        except Exception as exc:  # noqa: BLE001 - any failure to copy means "do not cache"
            warn_uncached(exc, "the result", 5)
            return ABANDONED

    def settle(full: tuple[str, Hashable], call: Call, result: Any, start: float, integs: Any) -> None:
        """A leader's result: keep it (if it can be kept safely) and hand it to its followers."""
        kept = ABANDONED
        saved = False
        try:
            kept = keep_or_abandon(full, result, integs)
            if kept is not ABANDONED:
                save(full, kept, _perf() - start, call)
                saved = True  # the store consumed the ticket, stored or not
        finally:
            if not saved:
                store.end(call)
            flights.finish(full, call, value=kept)

    def new_run(kind: type[RunT], full: tuple[str, Hashable], args: Any, kwargs: Any, integs: Any) -> RunT:
        start = _perf()
        ticket = store.begin(*full)

        def on_end() -> None:
            flights.end_run(full, run)
            store.end(ticket)

        run: RunT = kind(
            lambda: func(*args, **kwargs),
            keep=lambda v: keep(v, integs),
            publish=lambda items: save(full, tuple(items), _perf() - start, ticket),
            on_end=on_end,
            # Streaming goes on uncopied: every consumer still gets every item.
            on_unkept=lambda exc: warn_uncached(exc, "an item yielded by this run", 2),
            ticket=ticket,
        )
        return run

    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        async def async_gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            integs = active()
            full = key_or_miss(args, kwargs)
            entry = lookup(full)
            if entry is not None:
                for hook in hooks.hit_hooks:  # one hit, however many items it replays
                    hook()
                for kept in entry.value:
                    yield deliver(kept, False)
                return
            probe_miss(integs)
            run = flights.join_run(full, lambda: new_run(AsyncRun, full, args, kwargs, integs))
            if run.consumers > 1:
                store.count_join()
            i = 0
            try:
                while True:
                    more, kept = await run.item(i)
                    if not more:
                        return
                    i += 1
                    yield deliver(kept, False)  # computed now, not a hit
            finally:
                await run.leave()

        wrapper: Callable[..., Any] = async_gen_wrapper

    elif inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            integs = active()
            full = key_or_miss(args, kwargs)
            entry = lookup(full)
            if entry is not None:
                for hook in hooks.hit_hooks:  # one hit, however many items it replays
                    hook()
                for kept in entry.value:
                    yield deliver(kept, False)
                return
            probe_miss(integs)
            run = flights.join_run(full, lambda: new_run(Run, full, args, kwargs, integs))
            if run.consumers > 1:
                store.count_join()
            i = 0
            try:
                while True:
                    more, kept = run.item(i)
                    if not more:
                        return
                    i += 1
                    yield deliver(kept, False)  # computed now, not a hit
            finally:
                run.leave()

        wrapper = gen_wrapper

    elif inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            integs = active()
            full = key_or_miss(args, kwargs)
            entry = lookup(full)
            if entry is not None:
                return deliver(entry.value)
            probe_miss(integs)
            while True:
                call, leader = flights.join(full, in_task=True)
                if leader:
                    break
                store.count_join()
                outcome = await flights.await_(call)
                if outcome is not ABANDONED:
                    return deliver(outcome, False)  # a follower: not served from the store
                entry = store.touch(*full)
                if entry is not None:
                    return deliver(entry.value)
            # A leader that finished between our lookup and join has stored its result.
            entry = claim(full, call)  # else the call is now the ticket of the result
            if entry is not None:
                flights.finish(full, call, value=entry.value)
                return deliver(entry.value)
            start = _perf()
            token = work_set((call, work_get()))
            try:
                result = await func(*args, **kwargs)
            except Exception as exc:
                store.end(call)
                flights.finish(full, call, error=exc)
                raise
            except BaseException:
                store.end(call)
                flights.finish(full, call)
                raise
            finally:
                work_reset(token)
            settle(full, call, result, start, integs)
            return result

        wrapper = async_wrapper

    else:

        @functools.wraps(func)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            # The hit path is inlined (this is the function gr.cache is compared on).
            if hooks._pending and len(modules) != hooks._seen_modules:
                active()  # a framework was imported since the last call: load its integration
            full: tuple[str, Hashable]
            try:
                if len(args) == fast_count and not kwargs and hooks._injected is nothing_injected[0]:
                    full = ("", make_call_key(args, names, digest))
                else:
                    full = key_of(args, kwargs)
            except Exception:
                probe_miss(registered, counted=False)
                raise
            entry = lookup(full)
            if entry is not None:
                for hook in hooks.hit_hooks:
                    hook()
                kept = entry.value
                if type(kept) in pass_through:
                    return kept
                if type(kept) is not _Framed:
                    return release(kept)
                return deliver(kept, notify=False)
            integs = registered
            probe_miss(integs)
            while True:
                call, leader = flights.join(full)
                if leader:
                    break
                store.count_join()
                outcome = flights.wait(call)
                if outcome is not ABANDONED:
                    return deliver(outcome, False)  # a follower: not served from the store
                entry = store.touch(*full)
                if entry is not None:
                    return deliver(entry.value)
            # A leader that finished between our lookup and join has stored its result.
            entry = claim(full, call)  # else the call is now the ticket of the result
            if entry is not None:
                flights.finish(full, call, value=entry.value)
                return deliver(entry.value)
            start = _perf()
            token = work_set((call, work_get()))
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                store.end(call)
                flights.finish(full, call, error=exc)
                raise
            except BaseException:
                store.end(call)
                flights.finish(full, call)
                raise
            finally:
                work_reset(token)
            settle(full, call, result, start, integs)
            return result

        wrapper = sync_wrapper

    wrapper.cache = CacheHandle(store, per_session)  # type: ignore[attr-defined]
    return wrapper
