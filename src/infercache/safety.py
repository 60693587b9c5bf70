"""Mutation safety: what the cache keeps, and what each caller gets.

A cached value is shared by every later caller, so two things must hold:

1. :func:`protect` is called once, when a value enters the cache. The kept
   form shares nothing mutable with the producer's value, so the producer
   (or whoever it returned the value to) may keep mutating its object without
   corrupting the cache.
2. :func:`release` is called for *every* caller that receives the value (each
   hit, each waiting single-flight follower). Whatever it returns may be
   mutated freely without changing what later callers get.

``release`` sits on the hit path, so the policy is the *cheapest thing that
still guarantees safety*, decided per type and cached per type:

* Immutable values -- ``None``, ``bool``, ``int``, ``float``, ``complex``,
  ``str``, ``bytes``, ``Decimal``, ``Fraction``, the ``datetime`` types,
  ``UUID``, paths, ``Enum`` members, ``range``, numpy scalars, and tuples /
  frozensets made only of immutable values -- are handed out as they are:
  zero copies, one set lookup (immutable tuples and frozensets are marked at
  protect time so release never re-walks them).
* numpy arrays are copied once by ``protect`` (C-contiguous) and made
  read-only; ``release`` hands every caller that same read-only array (zero
  copy). A caller that writes into it gets numpy's ``ValueError:
  assignment destination is read-only`` and should ``.copy()`` first. The
  array handed out is a view of a read-only buffer, so it cannot be made
  writeable again (``arr.flags.writeable = True`` raises). This is the one
  place where the policy is "refuse mutation" instead of "copy": arrays are
  the big values, and copying megabytes on every hit would defeat the cache.
  (Consequence: ``torch.from_numpy`` on such an array warns that it is not
  writable.) Object-dtype arrays and ndarray subclasses are deep-copied
  instead, since read-only does not protect their elements.
* list / dict / set / tuple / frozenset / namedtuple / bytearray containing
  mutable things are rebuilt recursively on each release; only containers
  are rebuilt, immutable leaves and read-only arrays inside are shared. A
  list, dict or set holding only immutable values is one C-level copy.
* torch tensors: ``protect`` = ``detach().clone()`` (cached tensors carry no
  autograd history), ``release`` = ``clone()`` -- torch has no read-only
  tensors, so a copy per caller is the only safe choice.
* PIL images: ``Image.copy()`` on both sides.
* pandas DataFrame / Series / Index: ``protect`` = deep copy; ``release`` =
  ``copy(deep=False)`` when copy-on-write is active (always with pandas >= 3,
  or when ``pd.options.mode.copy_on_write is True``) -- a write to the
  shallow copy then copies the touched data instead of sharing it -- and a
  deep copy otherwise. (pandas' deep copy does not copy Python objects stored
  in object columns.)
* Everything else -- dataclass instances, user classes, pydantic models,
  transformers KV caches -- ``copy.deepcopy`` on both sides. Values in which
  one mutable object is reachable twice (shared references, cycles) are also
  deep-copied as a whole, because ``deepcopy`` preserves that aliasing and a
  per-container rebuild would not.

The kept form is opaque: pass it only to :func:`release` (and to
:func:`infercache.sizes.sizeof`, which measures it correctly). For immutable
values and numpy arrays it *is* the value; for everything else it is a small
internal wrapper. :func:`register_copier` adds a policy for another type.
"""

from __future__ import annotations

import collections
import copy
import datetime
import decimal
import fractions
import sys
import uuid
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

__all__ = ["protect", "register_copier", "release"]

_deepcopy = copy.deepcopy

# Exact types that are immutable: protect() keeps them and release() hands
# them out as they are. Grows as new immutable types (enums, numpy scalars,
# paths, ...) are first seen.
_IMMUTABLE: set[type] = {
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    range,
    type(Ellipsis),
    type(NotImplemented),
    decimal.Decimal,
    fractions.Fraction,
    datetime.date,
    datetime.datetime,
    datetime.time,
    datetime.timedelta,
    datetime.timezone,
    uuid.UUID,
}
# Exact types release() returns as they are: the immutable ones plus
# numpy.ndarray (every kept ndarray is read-only) once numpy has been seen.
_PASS: set[type] = set(_IMMUTABLE)
#: Types whose kept form is handed out as it is (the caller may inline this check).
PASS_THROUGH = _PASS


# --------------------------------------------------------------------------- kept forms


class _Kept:
    """Base of the internal wrappers :func:`protect` returns."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __repr__(self) -> str:
        return f"<infercache kept {type(self).__name__[1:]}: {self.v!r}>"


class _Same(_Kept):
    """An immutable value (e.g. a tuple of immutables): released as is."""

    __slots__ = ()


class _ListFlat(_Kept):
    """A list of immutable values, kept as a tuple."""

    __slots__ = ()


class _ListDeep(_Kept):
    """A list with mutable items: tuple of kept items."""

    __slots__ = ()


class _TupleDeep(_Kept):
    __slots__ = ()


class _NamedTupleDeep(_Kept):
    __slots__ = ("t",)

    def __init__(self, v: Any, t: type) -> None:
        self.v = v
        self.t = t


class _DictFlat(_Kept):
    """A dict of immutable keys and values, kept as a private dict."""

    __slots__ = ()


class _DictDeep(_Kept):
    """A dict with mutable keys or values: tuple of (kept key, kept value)."""

    __slots__ = ()


class _SetFlat(_Kept):
    __slots__ = ()


class _SetDeep(_Kept):
    __slots__ = ()


class _FrozenSetDeep(_Kept):
    __slots__ = ()


class _ByteArray(_Kept):
    """A bytearray, kept as bytes."""

    __slots__ = ()


class _Tensor(_Kept):
    __slots__ = ()


class _Image(_Kept):
    __slots__ = ()


class _Pandas(_Kept):
    __slots__ = ()


class _Deep(_Kept):
    """Anything else: a private deep copy, deep-copied again for each caller."""

    __slots__ = ()


class _Custom(_Kept):
    __slots__ = ("release",)

    def __init__(self, v: Any, release: Callable[[Any], Any]) -> None:
        self.v = v
        self.release = release


def _r_list_deep(k: _Kept) -> list[Any]:
    return [release(x) for x in k.v]


def _r_dict_deep(k: _Kept) -> dict[Any, Any]:
    return {release(a): release(b) for a, b in k.v}


def _numpy_backed(obj: Any) -> bool:
    """True when every array of a pandas object (values and index) is a plain numpy array."""
    import numpy as np

    dtypes = list(obj.dtypes) if hasattr(obj, "columns") else [obj.dtype]
    index = getattr(obj, "index", None)
    if index is not None:
        dtypes.extend(getattr(index, "dtypes", [index.dtype]))
    columns = getattr(obj, "columns", None)
    if columns is not None:
        dtypes.extend(getattr(columns, "dtypes", [columns.dtype]))
    return all(isinstance(dt, np.dtype) and not dt.hasobject for dt in dtypes)


def _r_pandas(k: _Kept) -> Any:
    if _pandas_cow():
        return k.v.copy(deep=False)
    return k.v.copy(deep=True)


_RELEASE: dict[type, Callable[[Any], Any]] = {
    _ListFlat: lambda k: list(k.v),
    _ListDeep: _r_list_deep,
    _TupleDeep: lambda k: tuple([release(x) for x in k.v]),
    _NamedTupleDeep: lambda k: k.t._make([release(x) for x in k.v]),
    _DictFlat: lambda k: k.v.copy(),
    _DictDeep: _r_dict_deep,
    _SetFlat: lambda k: set(k.v),
    _SetDeep: lambda k: {release(x) for x in k.v},
    _FrozenSetDeep: lambda k: frozenset([release(x) for x in k.v]),
    _ByteArray: lambda k: bytearray(k.v),
    _Tensor: lambda k: k.v.clone(),
    _Image: lambda k: k.v.copy(),
    _Pandas: _r_pandas,
    _Deep: lambda k: _deepcopy(k.v),
    _Custom: lambda k: k.release(k.v),
}


def release(kept: Any) -> Any:
    """Return a value the caller may mutate without affecting later callers.

    ``kept`` must come from :func:`protect`. Immutable values and read-only
    numpy arrays come back as they are (no copy); containers holding mutable
    things are rebuilt; tensors, images and other objects are copied.
    """
    t = type(kept)
    if t in _PASS:
        return kept
    if t is _Same:
        return kept.v
    f = _RELEASE.get(t)
    if f is not None:
        return f(kept)
    # Not produced by protect(): be safe rather than fast.
    return release(protect(kept))


# --------------------------------------------------------------------------- classification

_K_PASS = "pass"
_K_LIST = "list"
_K_TUPLE = "tuple"
_K_NAMEDTUPLE = "namedtuple"
_K_DICT = "dict"
_K_SET = "set"
_K_FROZENSET = "frozenset"
_K_BYTEARRAY = "bytearray"
_K_MEMORYVIEW = "memoryview"
_K_NDARRAY = "ndarray"
_K_TENSOR = "tensor"
_K_IMAGE = "image"
_K_PANDAS = "pandas"
_K_DEEP = "deep"

_KIND: dict[type, str] = {t: _K_PASS for t in _IMMUTABLE}
_KIND.update(
    {
        list: _K_LIST,
        tuple: _K_TUPLE,
        dict: _K_DICT,
        set: _K_SET,
        frozenset: _K_FROZENSET,
        bytearray: _K_BYTEARRAY,
        memoryview: _K_MEMORYVIEW,
    }
)
_CUSTOM: dict[type, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {}


def _kind(t: type) -> str:
    k = _KIND.get(t)
    if k is None:
        k = _classify(t)
        _KIND[t] = k
        if k == _K_PASS:
            _IMMUTABLE.add(t)
            _PASS.add(t)
    return k


def _classify(t: type) -> str:
    import enum
    import types

    if t in _CUSTOM:
        return "custom"
    if issubclass(t, enum.Enum):
        return _K_PASS
    if issubclass(
        t, (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)
    ):
        return _K_PASS  # classes, modules, functions: program state, never copied
    if issubclass(t, PurePath):
        return _K_PASS
    np = sys.modules.get("numpy")
    if np is not None:
        if t is np.ndarray:
            return _K_NDARRAY
        if issubclass(t, np.generic) and not issubclass(t, (np.void, np.object_)):
            return _K_PASS
        if issubclass(t, np.dtype):
            return _K_PASS
    torch = sys.modules.get("torch")
    if torch is not None:
        if issubclass(t, torch.Tensor):
            return _K_TENSOR
        if t in (torch.dtype, torch.device, torch.layout, torch.memory_format):
            return _K_PASS
        if t is torch.Size:
            return _K_PASS
    pd = sys.modules.get("pandas")
    if pd is not None and issubclass(t, (pd.DataFrame, pd.Series, pd.Index)):
        return _K_PANDAS
    pil = sys.modules.get("PIL.Image")
    if pil is not None and issubclass(t, pil.Image):
        return _K_IMAGE
    if (
        issubclass(t, tuple)
        and hasattr(t, "_fields")
        and hasattr(t, "_make")
        and _no_dict(t)
    ):
        return _K_NAMEDTUPLE
    immutable_bases = (
        str,
        bytes,
        int,
        float,
        complex,
        datetime.date,
        datetime.time,
        datetime.timedelta,
    )
    if issubclass(t, immutable_bases) and _no_dict(t):
        # Subclasses of immutable builtins are immutable unless they add attributes.
        return _K_PASS
    return _K_DEEP


def _no_dict(t: type) -> bool:
    return getattr(t, "__dictoffset__", 1) == 0 and "__dict__" not in dir(t)


_COW: bool | None = None


def _pandas_cow() -> bool:
    """Whether pandas copy-on-write is in effect (always for pandas >= 3)."""
    global _COW
    if _COW is True:
        return True
    pd = sys.modules["pandas"]
    if _COW is None:
        try:
            major = int(pd.__version__.split(".", 1)[0])
        except ValueError:
            major = 0
        if major >= 3:
            _COW = True
            return True
        _COW = False
    try:
        return pd.options.mode.copy_on_write is True
    except Exception:
        return False


# --------------------------------------------------------------------------- protect


class _Fallback(Exception):
    """A mutable object is reachable twice (shared or cyclic): deep-copy the whole."""


def protect(value: Any) -> Any:
    """Return a private, caller-independent form of ``value`` to keep in the cache.

    The result shares nothing mutable with ``value``. Pass it to
    :func:`release` to obtain a value for a caller.
    """
    t = type(value)
    if t in _IMMUTABLE:
        return value
    try:
        return _protect(value, {})
    except _Fallback:
        return _Deep(_deepcopy(value))


def _frozen(k: Any) -> tuple[bool, Any]:
    """(True, plain value) if the kept ``k`` is released as-is."""
    t = type(k)
    if t in _PASS:
        return True, k
    if t is _Same:
        return True, k.v
    return False, None


def _protect(value: Any, memo: dict[int, Any]) -> Any:
    t = type(value)
    if t in _IMMUTABLE:
        return value
    kind = _kind(t)
    if kind == _K_PASS:
        return value

    i = id(value)
    if i in memo:
        previous = memo[i]
        if previous is None:
            raise _Fallback  # a cycle
        if kind == _K_NDARRAY or _frozen(previous)[0]:
            # The same array (or immutable tuple) twice: one kept form serves both.
            return previous
        raise _Fallback  # a shared mutable object: keep the aliasing

    memo[i] = None  # in progress

    if kind == _K_LIST or kind == _K_TUPLE or kind == _K_NAMEDTUPLE:
        kept_items = [_protect(x, memo) for x in value]
        plain = []
        flat = True
        for k in kept_items:
            ok, v = _frozen(k)
            if not ok:
                flat = False
                break
            plain.append(v)
        if kind == _K_LIST:
            out: Any = _ListFlat(tuple(plain)) if flat else _ListDeep(tuple(kept_items))
        elif kind == _K_TUPLE:
            if flat:
                same = all(p is v for p, v in zip(plain, value))
                out = _Same(value if same else tuple(plain))
            else:
                out = _TupleDeep(tuple(kept_items))
        else:
            out = (
                _Same(t._make(plain)) if flat else _NamedTupleDeep(tuple(kept_items), t)
            )
    elif kind == _K_DICT:
        pairs = [(_protect(a, memo), _protect(b, memo)) for a, b in value.items()]
        flat_d: dict[Any, Any] = {}
        flat = True
        for ka, kb in pairs:
            oka, va = _frozen(ka)
            okb, vb = _frozen(kb)
            if not (oka and okb):
                flat = False
                break
            flat_d[va] = vb
        out = _DictFlat(flat_d) if flat else _DictDeep(tuple(pairs))
    elif kind == _K_SET or kind == _K_FROZENSET:
        kept_items = [_protect(x, memo) for x in value]
        plain = []
        flat = True
        for k in kept_items:
            ok, v = _frozen(k)
            if not ok:
                flat = False
                break
            plain.append(v)
        if kind == _K_SET:
            out = _SetFlat(frozenset(plain)) if flat else _SetDeep(tuple(kept_items))
        else:
            out = _Same(frozenset(plain)) if flat else _FrozenSetDeep(tuple(kept_items))
    elif kind == _K_BYTEARRAY:
        out = _ByteArray(bytes(value))
    elif kind == _K_MEMORYVIEW:
        out = _Same(_readonly_memoryview(value))
    elif kind == _K_NDARRAY:
        out = _protect_ndarray(value)
    elif kind == _K_TENSOR:
        out = _Tensor(value.detach().clone())
    elif kind == _K_IMAGE:
        out = _Image(value.copy())
    elif kind == _K_PANDAS:
        copied = value.copy(deep=True)
        # Copy-on-write protects numpy-backed data only; extension arrays (Int64,
        # string, category, ...) can be written through a shallow copy's .values.
        out = _Pandas(copied) if _numpy_backed(copied) else _Deep(copied)
    elif kind == "custom":
        prot, rel = _CUSTOM[t]
        out = _Custom(prot(value), rel)
    else:
        out = _Deep(_deepcopy_detached(value))
    memo[i] = out
    return out


def _deepcopy_detached(value: Any) -> Any:
    """``copy.deepcopy``, retried with tensors detached if autograd refuses.

    ``deepcopy`` of a tensor with autograd history (e.g. a transformers
    ``ModelOutput`` computed outside ``torch.no_grad()``) raises; the retry
    seeds deepcopy's memo with detached clones of every tensor reachable from
    ``value``, so the kept copy holds plain tensors, like a protected tensor.
    """
    try:
        return _deepcopy(value)
    except RuntimeError:
        torch = sys.modules.get("torch")
        if torch is None:
            raise
        memo: dict[int, Any] = {}
        tensors = [t for t in _reachable(value) if isinstance(t, torch.Tensor)]
        if not tensors:
            raise
        for t in tensors:
            memo[id(t)] = t.detach().clone()
        memo[id(memo)] = tensors  # keep the originals alive while copying
        return _deepcopy(value, memo)


def _reachable(value: Any) -> list[Any]:
    """Objects reachable through containers, ``__dict__`` and ``__slots__``."""
    from .sizes import _slot_names

    seen: set[int] = set()
    out: list[Any] = []
    stack = [value]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or type(obj) in _IMMUTABLE or isinstance(obj, type):
            continue
        seen.add(id(obj))
        out.append(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset, collections.deque)):
            stack.extend(obj)
        try:
            stack.append(object.__getattribute__(obj, "__dict__"))
        except (AttributeError, TypeError):
            pass
        for name in _slot_names(type(obj)):
            try:
                stack.append(object.__getattribute__(obj, name))
            except Exception:
                pass
    return out


def _frombuffer_readonly(a: Any) -> Any:
    """A read-only C-contiguous copy of ``a`` whose buffer is an immutable bytes object."""
    import numpy as np

    return np.frombuffer(a.tobytes(order="C"), dtype=a.dtype).reshape(a.shape)


def _protect_ndarray(a: Any) -> Any:
    if a.dtype.hasobject:
        return _Deep(_deepcopy(a))
    if a.size:
        # Backed by an immutable bytes object: neither the array nor its .base
        # can ever be flagged writeable again, so no caller can re-enable writes.
        kept = _frombuffer_readonly(a)
    else:
        owner = a.copy(order="C")
        owner.flags.writeable = False
        kept = owner.view()
    _PASS.add(type(kept))
    return kept


def _readonly_memoryview(m: memoryview) -> memoryview:
    data = m.tobytes()
    view = memoryview(data)
    try:
        if m.ndim != 1 or m.format != "B":
            view = view.cast(m.format, m.shape)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        pass
    return view


def register_copier(
    type_: type,
    *,
    protect: Callable[[Any], Any],
    release: Callable[[Any], Any],
) -> None:
    """Use ``protect(value)`` / ``release(kept)`` for values of exactly ``type_``.

    ``protect`` must return something sharing nothing mutable with its
    argument; ``release`` must return something the caller may mutate.
    Register ``release=lambda x: x`` for types you know to be immutable.
    """
    _CUSTOM[type_] = (protect, release)
    _KIND[type_] = "custom"
    _IMMUTABLE.discard(type_)
    _PASS.discard(type_)
