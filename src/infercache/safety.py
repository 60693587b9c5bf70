"""Mutation safety: what the cache keeps, and what each caller gets.

A cached value is shared by every later caller, so two things must hold:

1. :func:`protect` is called once, when a value enters the cache. The kept
   form shares nothing mutable with the producer's value, so the producer
   (or whoever it returned the value to) may keep mutating its object without
   corrupting the cache.
2. :func:`release` is called for *every* caller that receives the value (each
   hit, each waiting single-flight follower). Whatever it returns may be
   mutated freely -- contents, attributes, metadata such as an array's
   ``shape`` or a frame's ``index.name``, handles such as a memoryview's
   ``release()`` -- without changing what later callers get.

The rule
--------
Only objects that carry no state a caller can change are shared between
callers. Everything else is handed out as an object of the caller's own:

* **Exact immutable types are shared** (zero copies, one set lookup):
  ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``, ``bytes``,
  ``Decimal``, ``Fraction``, ``date``, ``timedelta``, ``timezone``, ``UUID``,
  ``range``, numpy scalars (not ``np.void``), tuples and frozensets made only
  of shared values (marked at protect time, so release never re-walks them),
  ``datetime`` / ``time`` whose ``tzinfo`` is ``None``, a ``timezone`` or a
  ``ZoneInfo``. :data:`PASS_THROUGH` is the set of exact types whose kept
  form *is* the value, so a caller may inline ``type(kept) in PASS_THROUGH``.
* **A subclass is shared only if its instances carry no state of their own**:
  no ``__dict__`` and no non-empty ``__slots__`` anywhere in its MRO below
  the immutable base (``class Meter(float): __slots__ = ("unit", "tags")``
  is copied; ``class Name(str): __slots__ = ()`` is shared). A numpy scalar
  subclass with state is copied by a rule of its own, also inside other
  objects (``copy.deepcopy`` returns a numpy scalar itself, state and all).
  Enum members, classes, modules and functions are program state and always
  shared (copying an enum member would break ``is``).
* **numpy arrays**: ``protect`` copies the data once into an immutable
  ``bytes`` object; ``release`` builds a *new* read-only array over it for
  each caller (a few hundred nanoseconds, no data copied). The data cannot
  be written (``ValueError: assignment destination is read-only``; call
  ``.copy()``) nor made writeable again (its ``.base`` is ``bytes``, or a
  read-only view of the record's bytes for a value read from a tier), and ``shape``,
  ``dtype``, ``strides`` and ``flags`` belong to the caller's array alone.
  A structured dtype (whose ``names`` can be reassigned) or one carrying
  ``metadata`` is copied per caller too. Object arrays and ndarray
  subclasses are deep-copied instead (read-only does not protect elements).
* **Containers** (list / dict / set / tuple / frozenset / namedtuple /
  bytearray / ``MappingProxyType``) holding anything not shared are rebuilt
  per caller, recursively; a list, dict or set of shared values is one
  C-level copy. A value in which one array appears twice keeps that
  aliasing in every released copy; one in which any other mutable object is
  reachable twice (shared references, cycles) is deep-copied as a whole.
* **memoryview**: kept as ``bytes`` plus format and shape; each caller gets a
  new read-only memoryview of the same format and shape, so ``release()`` or
  ``with view:`` ends the caller's handle only.
* **torch tensors**: ``protect`` = ``detach().clone()`` (cached tensors carry
  no autograd history), ``release`` = ``clone()`` (torch has no read-only
  tensors), so ``requires_grad``, ``grad`` and the data are per caller.
* **PIL images**: ``protect`` = ``Image.copy()``; ``release`` = a *new*
  image over the kept pixels, marked read-only, so Pillow copies them before
  its first write (``paste``, ``putpixel``, ``putdata``, ``putalpha``,
  ``alpha_composite``, ``ImageDraw``; ``thumbnail`` and ``exif_transpose``
  replace them). The writers that would write in place (``frombytes`` on the
  image, ``putpalette`` or any palette made dirty, pixel access from ``load()``,
  ``getim()`` for in-place C code such as ``ImageCms.applyTransform(...,
  inPlace=True)``) are guarded on each released image: they copy the pixels
  first, then work as on any image. Palette images (``P``, ``PA``) are copied
  per caller instead (Pillow writes their palette into the shared pixel
  store). ``info`` is the caller's own, deep-copied when it holds mutable values.
* **pandas** Series / DataFrame / Index: ``protect`` = deep copy; ``release``
  = deep copy (a shallow copy is not enough even under copy-on-write:
  ``Series.array`` writes through it), with index objects whose lazily built
  caches (hash-table engines) are the caller's own, and Python objects in
  object-dtype values and flat indexes (lists, dicts, arrays in cells)
  released per caller by this same policy. Mutable objects inside a
  MultiIndex level or categorical categories are refused (see below).
* **polars** DataFrame / Series: ``protect`` rewrites the data into buffers
  of its own (a polars frame built from numpy shares the numpy memory);
  ``release`` = ``clone()`` (polars copies on write). Object columns holding
  mutable Python objects are refused.
* **pyarrow** Array / ChunkedArray / Table / RecordBatch: ``protect``
  rewrites them into buffers backed by an immutable ``bytes`` object (Arrow
  buffers from a builder, or over a numpy array, are writable through the
  buffer protocol); they have no per-object state, so every caller shares
  the kept object.
* **Refused** (``protect`` raises ``TypeError`` with the reason; a cached
  function then warns once and returns its result uncached): iterators,
  generators, coroutines and other awaitables (they cannot be replayed to a
  second caller), open files and other I/O objects, ``mmap`` objects and
  sockets (a per-handle lifecycle over external state).
* **Everything else** -- dataclass instances (frozen or not), user classes,
  pydantic models, transformers KV caches, ``array.array``, ``deque``,
  pandas ``Timestamp`` (it has a ``__dict__``) -- ``copy.deepcopy`` on both
  sides. Inside such a value, memoryviews, mapping proxies, pandas and
  polars objects are still copied by their own rule above (``deepcopy``
  refuses the first two and shares the cells or buffers of the others), and
  instance attributes that a class's ``__reduce_ex__`` leaves out (a
  ``datetime`` subclass with a ``__dict__``) are copied too. A value
  ``deepcopy`` cannot copy is refused by the same ``TypeError`` path.

Known limits: ``torch.from_numpy(hit)`` on a released array shares its
memory; torch warns that the array is not writable and that writing to the
tensor is undefined behaviour, and such a write does change the cached data
(use ``torch.tensor(hit)``, which copies). Writes through raw pointers
(``arr.ctypes``) are likewise not prevented, nor writes to a released PIL
image through its private core (``image.im.paste(...)``) or after its
``readonly`` flag was reset by hand. Private pandas internals
(``df._mgr``) are not protected.

The kept form is opaque: pass it only to :func:`release` (and to
:func:`infercache.sizes.sizeof`, which measures it correctly). For exact
immutable values it *is* the value; for everything else it is a small
internal wrapper. :func:`register_copier` adds a policy for another type.
The policy for a type is decided once (:func:`_classify`) and cached.
"""

from __future__ import annotations

import collections
import copy
import datetime
import decimal
import fractions
import functools
import importlib
import operator
import pickle
import types
import uuid
import weakref
from collections.abc import Callable
from pathlib import PurePath
from typing import Any, SupportsIndex

from .libraries import loaded, module, module_for
from .reflect import package_of, slot_names

__all__ = ["PASS_THROUGH", "protect", "register_copier", "release"]

_deepcopy = copy.deepcopy

# Exact types that are immutable and hold nothing mutable: protect() keeps them
# without looking inside and release() hands them out as they are. Grows as new
# such types (enums, numpy scalars, paths, ...) are first seen.
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
    datetime.timedelta,
    datetime.timezone,
    uuid.UUID,
}
# Exact types whose kept form is the value itself: the immutable ones, plus
# datetime/time (protect keeps them as they are only when their tzinfo is
# shared-safe; otherwise the kept form is a wrapper).
_PASS: set[type] = set(_IMMUTABLE) | {datetime.datetime, datetime.time}
#: Exact types whose kept form is handed out as it is (the caller may inline this check).
PASS_THROUGH = _PASS

# Classes whose instances are immutable although they have slots (private
# caches) or C-level state: subclasses adding nothing to them are immutable too.
_TRUSTED_BASES: tuple[type, ...] = (
    str,
    bytes,
    int,
    float,
    complex,
    decimal.Decimal,
    fractions.Fraction,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    datetime.tzinfo,
    uuid.UUID,
    PurePath,
)


# Modules whose classes between a trusted base and a user subclass are trusted
# too (pathlib's Path/PosixPath, numpy's scalar hierarchy).
_TRUSTED_MODULES = frozenset({"builtins", "pathlib", "datetime", "numpy"})


# --------------------------------------------------------------------------- kept forms


class _Kept:
    """Base of the internal wrappers :func:`protect` returns."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __repr__(self) -> str:
        return f"<infercache kept {type(self).__name__[1:]}: {self.v!r}>"


class _Same(_Kept):
    """A value with nothing a caller can change (e.g. a tuple of immutables): released as is."""

    __slots__ = ()


class _ListFlat(_Kept):
    """A list of shared values, kept as a tuple."""

    __slots__ = ()


class _ListDeep(_Kept):
    """A list with items released per caller: tuple of kept items."""

    __slots__ = ()


class _TupleDeep(_Kept):
    __slots__ = ()


class _NamedTupleDeep(_Kept):
    __slots__ = ("t",)

    def __init__(self, v: Any, t: type) -> None:
        self.v = v
        self.t = t


class _DictFlat(_Kept):
    """A dict of shared keys and values, kept as a private dict."""

    __slots__ = ()


class _DictDeep(_Kept):
    """A dict with keys or values released per caller: tuple of (kept key, kept value)."""

    __slots__ = ()


class _DictValues(_Kept):
    """A dict of shared keys (the usual ``str``) and values released per caller."""

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

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        return _load_bytearray, (_out_of_band(self.v, protocol),)


class _MappingProxy(_Kept):
    """A ``MappingProxyType``: the kept form of a private copy of its mapping."""

    __slots__ = ()


class _MemoryView(_Kept):
    """A memoryview: its bytes (``v``), and the format and shape to cast each new view to.

    ``v`` is ``bytes``, or a read-only view of ``bytes`` when read from a tier.
    """

    __slots__ = ("fmt", "shape")

    def __init__(self, v: bytes | memoryview, fmt: str | None, shape: tuple[int, ...]) -> None:
        self.v = v
        self.fmt = fmt
        self.shape = shape

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        return _load_memoryview, (_out_of_band(self.v, protocol), self.fmt, self.shape)


class _Array(_Kept):
    """A numpy array: its C-ordered data (``v``, immutable bytes), shape and dtype.

    ``v`` is ``bytes``, or a read-only view of ``bytes`` when read from a tier.
    """

    __slots__ = ("dtype", "shape")

    def __init__(self, v: bytes | memoryview, shape: tuple[int, ...], dtype: Any) -> None:
        self.v = v
        self.shape = shape
        self.dtype = dtype

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        return _load_array, (type(self), _out_of_band(self.v, protocol), self.shape, self.dtype)


class _ArrayOwnDtype(_Array):
    """A numpy array whose dtype object a caller could change (structured, metadata)."""

    __slots__ = ()


class _Tensor(_Kept):
    __slots__ = ()

    def __reduce_ex__(self, protocol: SupportsIndex) -> str | tuple[Any, ...]:
        t = self.v
        if operator.index(protocol) < 5 or loaded("numpy") is None or not _plain_tensor(t):
            return object.__reduce_ex__(self, protocol)  # torch's own pickling (any device, layout, subclass)
        torch = module("torch")
        flat = t.resolve_conj().resolve_neg().reshape(-1)
        if flat.stride() != (1,):  # a size-1 view counts as contiguous whatever its stride
            flat = flat.clone(memory_format=torch.contiguous_format)
        raw = flat.view(torch.uint8).numpy() if flat.numel() else b""
        return _load_tensor, (pickle.PickleBuffer(raw), tuple(t.shape), t.dtype)


class _Image(_Kept):
    """A private copy of a PIL image whose pixels are shared with every caller
    (read-only images over them, see :func:`_shared_image`)."""

    __slots__ = ()

    def __reduce_ex__(self, protocol: SupportsIndex) -> str | tuple[Any, ...]:
        if operator.index(protocol) < 5:
            return object.__reduce_ex__(self, protocol)
        # Pillow's own state (info, mode, size, palette, pixels), the pixels out of band.
        *state, data = self.v.__getstate__()
        return _load_image, (type(self), state, pickle.PickleBuffer(data))


class _ImageInfo(_Kept):
    """A PIL image with pixels shared as for :class:`_Image`, whose ``info``
    dict holds mutable values (deep-copied per caller)."""

    __slots__ = ()

    __reduce_ex__ = _Image.__reduce_ex__


class _ImageCopied(_Kept):
    """A palette image: copied per caller (Pillow writes palettes into the
    pixel store it would share)."""

    __slots__ = ()

    __reduce_ex__ = _Image.__reduce_ex__


class _ImageCopiedInfo(_Kept):
    """A palette image whose ``info`` holds mutable values."""

    __slots__ = ()

    __reduce_ex__ = _Image.__reduce_ex__


class _Pandas(_Kept):
    """A pandas object (deep copy) and the kept Python objects of its object-dtype storage.

    ``cells`` is a tuple of ``(where, kept list)``: ``where`` is a column
    position (int), ``"values"`` (a Series' values or an Index's elements),
    ``"index"`` or ``"columns"``.
    """

    __slots__ = ("cells",)

    def __init__(self, v: Any, cells: tuple[tuple[Any, Any], ...]) -> None:
        self.v = v
        self.cells = cells


class _Polars(_Kept):
    __slots__ = ()


class _Aliased(_Kept):
    """A kept value in which one kept array appears more than once.

    Released with a memo, so every caller's copy keeps that aliasing
    (``out[0] is out[1]``) while still getting arrays of its own.
    """

    __slots__ = ()


class _Deep(_Kept):
    """Anything else: a private deep copy, deep-copied again for each caller."""

    __slots__ = ()


class _DeepSeeded(_Kept):
    """A deep copy reaching objects ``deepcopy`` cannot copy but this policy
    can (memoryviews, mapping proxies): each caller's copy is made with those
    handed out by their own rule."""

    __slots__ = ()


class _DeepState(_Kept):
    """An object whose ``__reduce_ex__`` drops its instance attributes (a
    ``datetime`` subclass with a ``__dict__``): ``v`` is (copy, attributes),
    and each caller's deep copy gets the attributes back."""

    __slots__ = ()


class _Scalar(_Kept):
    """A numpy scalar of a subclass with attributes of its own (see :func:`_copy_scalar`)."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        v = self.v
        base = _numpy_base(type(v))
        return _load_scalar, (type(v), base(v), _instance_state(v))


def _numpy_base(t: type) -> Any:
    """The numpy scalar type a subclass ``t`` extends."""
    return next(c for c in t.__mro__ if c.__module__ == "numpy")


def _copy_scalar(x: Any) -> Any:
    """A new scalar of ``x``'s own subclass, with a deep copy of its attributes.

    ``copy.deepcopy`` of a numpy scalar returns the scalar itself, so every
    caller would share (and could change) the attributes of the one kept.
    """
    new = _numpy_base(type(x)).__new__(type(x), x)
    return _with_state(new, _deepcopy(_instance_state(x)))


def _load_scalar(t: type, value: Any, state: dict[str, Any]) -> _Scalar:
    return _Scalar(_with_state(_numpy_base(t).__new__(t, value), state))


class _Custom(_Kept):
    __slots__ = ("release",)

    def __init__(self, v: Any, release: Callable[[Any], Any]) -> None:
        self.v = v
        self.release = release


# --------------------------------------------------------------------------- pickling of kept forms
#
# Tiers store kept forms pickled (protocol 5, by infercache.codec). The data
# of arrays, memoryviews, bytearrays, tensors and images goes out of band as
# a PickleBuffer, so the codec frames it once instead of pickle copying it
# into the stream, and comes back as a read-only view over the record when
# the record is immutable bytes (no copy at all for arrays).


def _out_of_band(data: Any, protocol: SupportsIndex) -> Any:
    """``data`` for a pickle stream: a PickleBuffer (out of band) from protocol 5, else bytes."""
    if operator.index(protocol) >= 5:
        return pickle.PickleBuffer(data)
    return data if type(data) is bytes else bytes(data)


def _frozen_bytes(data: Any) -> bytes | memoryview:
    """Unpickled data as something no one can write: ``data`` itself when it is, else a copy.

    Out-of-band data is a view of the buffer the unpickler was given: kept
    as is over immutable ``bytes`` (a record read from a tier), copied when
    the buffer could change under it (a bytearray, an mmap).
    """
    if type(data) is bytes:
        return data
    view = memoryview(data)
    if view.readonly and type(view.obj) is bytes and view.c_contiguous:
        return view if view.format == "B" and view.ndim == 1 else view.cast("B")
    return view.tobytes()


def _load_array(cls: type[_Array], data: Any, shape: tuple[int, ...], dtype: Any) -> _Array:
    global _NDARRAY
    if _NDARRAY is None:  # a process whose first array is one read from a tier
        _NDARRAY = importlib.import_module("numpy").ndarray
    return cls(_frozen_bytes(data), shape, dtype)


def _load_memoryview(data: Any, fmt: str | None, shape: tuple[int, ...]) -> _MemoryView:
    return _MemoryView(_frozen_bytes(data), fmt, shape)


def _load_bytearray(data: Any) -> _ByteArray:
    return _ByteArray(_frozen_bytes(data))


def _plain_tensor(t: Any) -> bool:
    """True for a tensor fully described by its dtype, shape and bytes (CPU, dense, no names or grad)."""
    torch = module("torch")
    return (
        type(t) is torch.Tensor
        and t.device.type == "cpu"
        and t.layout == torch.strided
        and not t.is_quantized
        and not t.requires_grad
        and not any(getattr(t, "names", None) or ())  # named tensors (gone from recent torch)
    )


def _load_tensor(data: Any, shape: tuple[int, ...], dtype: Any) -> _Tensor:
    # Copied once into memory torch owns: a tensor over the record's bytes would be
    # writable through torch (it has no read-only tensors).
    np = importlib.import_module("numpy")
    torch = importlib.import_module("torch")
    out = torch.empty(shape, dtype=dtype)
    if out.numel():
        out.reshape(-1).view(torch.uint8).numpy()[:] = np.frombuffer(data, dtype=np.uint8)
    return _Tensor(out)


def _load_image(cls: type[_Kept], state: list[Any], data: Any) -> _Kept:
    pil = importlib.import_module("PIL.Image")
    im = pil.Image.__new__(pil.Image)
    im.__setstate__([*state, data])  # frombytes copies the pixels into Pillow's memory
    return cls(im)


# The exact numpy.ndarray type and its constructor, once numpy has been seen.
_NDARRAY: Any = None


def _r_array(k: _Array) -> Any:
    return _NDARRAY(k.shape, k.dtype, k.v)


def _r_array_own_dtype(k: _Array) -> Any:
    return _NDARRAY(k.shape, _deepcopy(k.dtype), k.v)


def _r_memoryview(k: _MemoryView) -> memoryview:
    view = memoryview(k.v)
    if k.fmt is not None:
        # typeshed's cast() takes literal formats only; this is any format a memoryview had.
        shaped: memoryview = view.cast(k.fmt, k.shape)  # type: ignore[call-overload]
        return shaped
    return view


def _r_list_deep(k: _Kept) -> list[Any]:
    return [release(x) for x in k.v]


def _r_dict_deep(k: _Kept) -> dict[Any, Any]:
    return {release(a): release(b) for a, b in k.v}


def _r_image_info(k: _Kept) -> Any:
    out = _shared_image(k.v)
    out.info = _deepcopy(k.v.info)
    return out


def _r_image_copied_info(k: _Kept) -> Any:
    out = k.v.copy()
    out.info = _deepcopy(k.v.info)
    return out


_RELEASE: dict[type, Callable[[Any], Any]] = {
    _Array: _r_array,
    _ArrayOwnDtype: _r_array_own_dtype,
    _ListFlat: lambda k: list(k.v),
    _ListDeep: _r_list_deep,
    _TupleDeep: lambda k: tuple([release(x) for x in k.v]),
    _NamedTupleDeep: lambda k: k.t._make([release(x) for x in k.v]),
    _DictFlat: lambda k: k.v.copy(),
    _DictDeep: _r_dict_deep,
    _DictValues: lambda k: {a: release(b) for a, b in k.v},
    _SetFlat: lambda k: set(k.v),
    _SetDeep: lambda k: {release(x) for x in k.v},
    _FrozenSetDeep: lambda k: frozenset([release(x) for x in k.v]),
    _ByteArray: lambda k: bytearray(k.v),
    _MappingProxy: lambda k: types.MappingProxyType(release(k.v)),
    _MemoryView: _r_memoryview,
    _Tensor: lambda k: k.v.clone(),
    _Image: lambda k: _shared_image(k.v),
    _ImageInfo: _r_image_info,
    _ImageCopied: lambda k: k.v.copy(),
    _ImageCopiedInfo: _r_image_copied_info,
    _Pandas: lambda k: _r_pandas(k),
    _Polars: lambda k: k.v.clone(),
    _Aliased: lambda k: _release_memo(k.v, {}),
    _Deep: lambda k: _deepcopy(k.v),
    _DeepSeeded: lambda k: _deepcopy_seeded(k.v),
    _DeepState: lambda k: _with_state(_deepcopy(k.v[0]), _deepcopy(k.v[1])),
    _Custom: lambda k: k.release(k.v),
    _Scalar: lambda k: _copy_scalar(k.v),
}


def release(kept: Any) -> Any:
    """Return a value the caller may mutate without affecting later callers.

    ``kept`` must come from :func:`protect`. Immutable values come back as
    they are (no copy); each numpy array is a new read-only array over the
    kept data; containers holding anything else are rebuilt; tensors,
    images, frames and other objects are copied.
    """
    t = type(kept)
    if t in _PASS:
        return kept
    if t is _Array:
        return _NDARRAY(kept.shape, kept.dtype, kept.v)
    if t is _Same:
        return kept.v
    f = _RELEASE.get(t)
    if f is not None:
        return f(kept)
    # Not produced by protect(): be safe rather than fast.
    return release(protect(kept))


_MEMO_RELEASED: dict[type, Callable[[Any, dict[int, Any]], Any]] = {
    _ListDeep: lambda k, m: [_release_memo(x, m) for x in k.v],
    _TupleDeep: lambda k, m: tuple([_release_memo(x, m) for x in k.v]),
    _NamedTupleDeep: lambda k, m: k.t._make([_release_memo(x, m) for x in k.v]),
    _DictDeep: lambda k, m: {_release_memo(a, m): _release_memo(b, m) for a, b in k.v},
    _DictValues: lambda k, m: {a: _release_memo(b, m) for a, b in k.v},
    _SetDeep: lambda k, m: {_release_memo(x, m) for x in k.v},
    _FrozenSetDeep: lambda k, m: frozenset([_release_memo(x, m) for x in k.v]),
    _MappingProxy: lambda k, m: types.MappingProxyType(_release_memo(k.v, m)),
}


def _release_memo(kept: Any, memo: dict[int, Any]) -> Any:
    """:func:`release`, giving one released object per kept object reachable twice."""
    t = type(kept)
    if t in _PASS or t is _Same:
        return release(kept)
    i = id(kept)
    if i in memo:
        return memo[i]
    rebuild = _MEMO_RELEASED.get(t)
    # Only leaves (arrays) can be reached twice: containers reached twice fall
    # back to one deep copy in protect(), so no container is memoised half-built.
    out = rebuild(kept, memo) if rebuild is not None else release(kept)
    memo[i] = out
    return out


# --------------------------------------------------------------------------- classification

_K_PASS = "pass"  # noqa: S105 - a policy name, not a password
_K_LIST = "list"
_K_TUPLE = "tuple"
_K_NAMEDTUPLE = "namedtuple"
_K_DICT = "dict"
_K_SET = "set"
_K_FROZENSET = "frozenset"
_K_BYTEARRAY = "bytearray"
_K_MEMORYVIEW = "memoryview"
_K_MAPPINGPROXY = "mappingproxy"
_K_DATETIME = "datetime"
_K_NDARRAY = "ndarray"
_K_DTYPE = "dtype"
_K_TENSOR = "tensor"
_K_IMAGE = "image"
_K_PANDAS = "pandas"
_K_POLARS = "polars"
_K_ARROW = "arrow"
_K_REFUSE = "refuse"
_K_CUSTOM = "custom"
_K_SCALAR = "scalar"  # a numpy scalar subclass with attributes of its own
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
        types.MappingProxyType: _K_MAPPINGPROXY,
        datetime.datetime: _K_DATETIME,
        datetime.time: _K_DATETIME,
    }
)
_CUSTOM: dict[type, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {}
# Why values of a refused type cannot be cached, by type.
_REFUSED: dict[type, str] = {}


def _kind(t: type) -> str:
    k = _KIND.get(t)
    if k is None:
        k = _classify(t)
        _KIND[t] = k
        if k == _K_PASS:
            _IMMUTABLE.add(t)
            _PASS.add(t)
        elif k == _K_DATETIME:
            _PASS.add(t)  # kept as itself only when its tzinfo is shared-safe
    return k


def _classify(t: type) -> str:
    """The policy for values of exact type ``t`` (called once per type)."""
    global _NDARRAY
    import enum

    if t in _CUSTOM:
        return _K_CUSTOM
    if issubclass(t, enum.Enum):
        return _K_PASS  # singletons: program state, shared like classes
    if issubclass(
        t,
        (
            type,
            types.ModuleType,
            types.FunctionType,
            types.BuiltinFunctionType,
            types.MethodDescriptorType,
            types.WrapperDescriptorType,
        ),
    ):
        return _K_PASS  # classes, modules, functions: program state, never copied
    np = module_for(t, "numpy")
    if np is not None:
        if t is np.ndarray:
            _NDARRAY = np.ndarray
            return _K_NDARRAY
        if issubclass(t, np.dtype):
            return _K_DTYPE
        if issubclass(t, np.generic) and not issubclass(t, (np.void, np.object_)):
            return _K_PASS if _stateless(t, np.generic) else _K_SCALAR
    torch = module_for(t, "torch")
    if torch is not None:
        if issubclass(t, torch.Tensor):
            return _K_TENSOR
        if t in (torch.dtype, torch.device, torch.layout, torch.memory_format, torch.Size):
            return _K_PASS
    pd = module_for(t, "pandas")
    if pd is not None and issubclass(t, (pd.DataFrame, pd.Series, pd.Index)):
        return _K_PANDAS
    pl = module_for(t, "polars")
    if pl is not None and issubclass(t, (pl.DataFrame, pl.Series)):
        return _K_POLARS
    pa = module_for(t, "pyarrow")
    if pa is not None and issubclass(
        t, (pa.Array, pa.ChunkedArray, pa.Table, pa.RecordBatch)
    ):
        return _K_ARROW
    pil = module_for(t, "PIL.Image")
    if pil is not None and issubclass(t, pil.Image):
        return _K_IMAGE
    reason = _refusal(t)
    if reason is not None:
        _REFUSED[t] = reason
        return _K_REFUSE
    if (
        issubclass(t, tuple)
        and hasattr(t, "_fields")
        and hasattr(t, "_make")
        and _stateless(t, tuple)
    ):
        return _K_NAMEDTUPLE
    for base in _TRUSTED_BASES:
        if issubclass(t, base):
            if issubclass(t, (datetime.datetime, datetime.time)) and _stateless(t, base):
                return _K_DATETIME
            return _K_PASS if _stateless(t, base) else _K_DEEP
    return _K_DEEP


def _stateless(t: type, base: type) -> bool:
    """True when instances of ``t`` hold no state beyond what ``base`` instances hold.

    State is a ``__dict__`` (that ``base`` instances lack) or a non-empty
    ``__slots__`` declared by any class of ``t``'s MRO that is not ``base``
    or one of ``base``'s own classes. C-level fields of extension subclasses
    (which Python code cannot set) are trusted to be immutable, as their base is.
    """
    if getattr(t, "__dictoffset__", 0) != 0 and getattr(base, "__dictoffset__", 0) == 0:
        return False
    trusted = set(base.__mro__)
    for klass in t.__mro__:
        if klass in trusted or package_of(klass) in _TRUSTED_MODULES:
            continue
        slots = klass.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        if any(name != "__weakref__" for name in slots):
            return False
    return True


def _refusal(t: type) -> str | None:
    """Why values of type ``t`` cannot be cached, or None if they can."""
    import io
    import mmap
    import socket

    if issubclass(t, (io.IOBase, mmap.mmap, socket.socket)):
        return (
            "it is a handle to external state (a file, mmap or socket) with a "
            "lifecycle of its own; return its contents (e.g. bytes) instead"
        )
    if issubclass(
        t, (types.GeneratorType, types.AsyncGeneratorType, types.CoroutineType)
    ) or hasattr(t, "__next__") or hasattr(t, "__anext__"):
        return (
            "it is an iterator or generator: it is consumed by the first caller "
            "and cannot be replayed (return a list, or make the cached function "
            "a generator so that its yields are cached)"
        )
    if hasattr(t, "__await__"):
        return "it is an awaitable: it can be awaited once, not replayed (await it and return its result)"
    return None


def _shared_tz(tz: Any) -> bool:
    """True when a datetime's ``tzinfo`` may be shared by every caller.

    ``timezone`` and ``ZoneInfo`` (C types without instance state) are; a
    user ``tzinfo`` with attributes is not, so its datetime is copied.
    """
    return tz is None or _kind(type(tz)) == _K_PASS


# --------------------------------------------------------------------------- protect


class _Fallback(Exception):
    """A mutable object is reachable twice (shared or cyclic): deep-copy the whole."""


_ALIASED = -1  # memo key: a kept array was reused for a second occurrence


def protect(value: Any) -> Any:
    """Return a private, caller-independent form of ``value`` to keep in the cache.

    The result shares nothing mutable with ``value``. Pass it to
    :func:`release` to obtain a value for a caller. Raises ``TypeError``
    (with the reason) for values that cannot be handed to several callers
    safely: iterators, generators, awaitables, open files, mmaps, sockets,
    and objects ``copy.deepcopy`` cannot copy.
    """
    t = type(value)
    if t in _IMMUTABLE:
        return value
    memo: dict[int, Any] = {}
    try:
        out = _protect(value, memo)
    except _Fallback:
        return _protect_deep(value)
    if _ALIASED in memo:
        return _Aliased(out)
    return out


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
        if _frozen(previous)[0]:
            return previous  # the same immutable thing twice
        if kind == _K_NDARRAY:
            memo[_ALIASED] = True  # the same array twice: one kept form serves both
            return previous
        raise _Fallback  # a shared mutable object: keep the aliasing

    memo[i] = None  # in progress

    if kind in (_K_LIST, _K_TUPLE, _K_NAMEDTUPLE):
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
        plain_keys = []
        flat = True
        keys_flat = True
        for ka, kb in pairs:
            oka, va = _frozen(ka)
            okb, vb = _frozen(kb)
            keys_flat = keys_flat and oka
            if flat and oka and okb:
                flat_d[va] = vb
            else:
                flat = False
            plain_keys.append(va)
        if flat:
            out = _DictFlat(flat_d)
        elif keys_flat:
            out = _DictValues(tuple(zip(plain_keys, [kb for _, kb in pairs])))
        else:
            out = _DictDeep(tuple(pairs))
    elif kind in (_K_SET, _K_FROZENSET):
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
    elif kind == _K_NDARRAY:
        out = _protect_ndarray(value)
    elif kind == _K_DATETIME:
        out = value if _shared_tz(value.tzinfo) else _protect_deep(value)
    elif kind == _K_BYTEARRAY:
        out = _ByteArray(bytes(value))
    elif kind == _K_MEMORYVIEW:
        out = _protect_memoryview(value)
    elif kind == _K_MAPPINGPROXY:
        out = _MappingProxy(_protect(dict(value), memo))
    elif kind == _K_DTYPE:
        out = _Same(value) if _dtype_shared(value) else _Deep(_deepcopy(value))
    elif kind == _K_TENSOR:
        out = _Tensor(value.detach().clone())
    elif kind == _K_SCALAR:
        out = _Scalar(_copy_scalar(value))
    elif kind == _K_IMAGE:
        out = _protect_image(value)
    elif kind == _K_PANDAS:
        out = _protect_pandas(value)
    elif kind == _K_POLARS:
        out = _Polars(_protect_polars(value))
    elif kind == _K_ARROW:
        out = _Same(_protect_arrow(value))
    elif kind == _K_REFUSE:
        raise TypeError(
            f"a {t.__module__}.{t.__qualname__} cannot be cached: {_REFUSED[t]}"
        )
    elif kind == _K_CUSTOM:
        prot, rel = _CUSTOM[t]
        out = _Custom(prot(value), rel)
    else:
        out = _protect_deep(value)
    memo[i] = out
    return out


def _protect_deep(value: Any) -> _Kept:
    """A private deep copy of ``value`` (for values not classified part by part).

    Refuses (``TypeError``) a value reaching an object that cannot be
    replayed (an iterator, a file, ...), which ``deepcopy`` might copy into a
    half-working object; copies memoryviews and mapping proxies (which
    ``deepcopy`` cannot) by their own rule; keeps instance attributes that an
    object's ``__reduce_ex__`` leaves out.
    """
    reach = _reachable(value)
    seeded = False
    for obj in reach:
        t = type(obj)
        kind = _kind(t)
        if kind in _SEEDED:
            seeded = True
        elif kind == _K_REFUSE:
            raise TypeError(
                f"a value holding a {t.__module__}.{t.__qualname__} cannot be cached: "
                f"{_REFUSED[t]}"
            )
    if seeded:
        return _DeepSeeded(_deepcopy_seeded(value))
    copied = _deepcopy_detached(value)
    state = _instance_state(value)
    if state and _instance_state(copied).keys() != state.keys():
        return _DeepState((copied, _deepcopy(state)))
    return _Deep(copied)


# Kinds that ``copy.deepcopy`` copies wrongly or not at all: memoryviews and
# mapping proxies (it refuses them), pandas objects (it shares their object
# cells), polars objects (it shares buffers that may be a producer's numpy memory),
# numpy scalars with attributes (it returns the scalar itself).
_SEEDED = frozenset({_K_MEMORYVIEW, _K_MAPPINGPROXY, _K_PANDAS, _K_POLARS, _K_SCALAR})


def _deepcopy_seeded(value: Any) -> Any:
    """``copy.deepcopy`` with the objects of :data:`_SEEDED` kinds it reaches copied by their own rule."""
    reach = _reachable(value)
    memo: dict[int, Any] = {}
    for obj in reach:
        if _kind(type(obj)) in _SEEDED:
            memo[id(obj)] = release(protect(obj))
    memo[id(memo)] = reach  # keep the originals alive while copying
    return _deepcopy(value, memo)


def _instance_state(obj: Any) -> dict[str, Any]:
    """``obj``'s own attributes: its ``__dict__`` and the slots that are set."""
    state = dict(getattr(obj, "__dict__", None) or {})
    for name in slot_names(type(obj)):
        try:
            state[name] = object.__getattribute__(obj, name)
        except AttributeError:  # an unset slot
            continue
    return state


def _with_state(obj: Any, state: dict[str, Any]) -> Any:
    for name, v in state.items():
        object.__setattr__(obj, name, v)
    return obj


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
        torch = loaded("torch")
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
    seen: set[int] = set()
    out: list[Any] = []
    stack = [value]
    # Looked up here, not taken from classification: a fresh process may meet its first
    # object array inside another value, before any array was classified.
    np = loaded("numpy")
    ndarray = None if np is None else np.ndarray
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
        elif ndarray is not None and isinstance(obj, ndarray) and obj.dtype.hasobject:
            # Through the base class: a subclass (a masked array) may hide elements from tolist.
            stack.extend(ndarray.view(obj, ndarray).ravel().tolist())
        try:
            stack.append(object.__getattribute__(obj, "__dict__"))
        except (AttributeError, TypeError):
            pass
        for name in slot_names(type(obj)):
            try:
                stack.append(object.__getattribute__(obj, name))
            except AttributeError:  # an unset slot
                continue
    return out


# --------------------------------------------------------------------------- numpy


def _dtype_shared(dt: Any) -> bool:
    """True when no caller can change the dtype object (no field names, no metadata)."""
    return dt.names is None and dt.metadata is None and dt.subdtype is None


def _protect_ndarray(a: Any) -> Any:
    if a.dtype.hasobject:
        return _protect_deep(a)  # numpy deep-copies the elements of object arrays
    # Immutable bytes: no array over them can ever be flagged writeable.
    data = a.tobytes(order="C")
    dt = a.dtype
    if _dtype_shared(dt):
        return _Array(data, a.shape, dt)
    return _ArrayOwnDtype(data, a.shape, _deepcopy(dt))


# --------------------------------------------------------------------------- memoryview


def _protect_memoryview(m: memoryview) -> Any:
    data = m.tobytes()
    fmt: str | None = None
    shape = tuple(m.shape or ())
    if m.ndim != 1 or m.format != "B":
        fmt = m.format
        try:
            memoryview(data).cast(fmt, shape)  # type: ignore[call-overload]  # any format, see _r_memoryview
        except (TypeError, ValueError):
            # memoryview.cast supports native single-character formats only:
            # others are handed out as flat bytes.
            fmt = None
    return _MemoryView(data, fmt, shape)


# --------------------------------------------------------------------------- PIL


def _protect_image(im: Any) -> Any:
    kept = im.copy()
    shared = kept.palette is None and kept.mode not in ("P", "PA")
    info = getattr(im, "info", None)
    if info and not all(_frozen(protect(v))[0] for v in info.values()):
        kept.info = _deepcopy(info)
        return _ImageInfo(kept) if shared else _ImageCopiedInfo(kept)
    return _Image(kept) if shared else _ImageCopied(kept)


# A released image shares the kept image's core (Pillow's pixel store). It is
# marked read-only, which Pillow's own writers honour by copying the core
# first (Image._ensure_mutable). The few ways to write into a core that skip
# that check are shadowed on the released image by guards (instance
# attributes, so the image stays an exact PIL.Image.Image) that give it its own
# core first. A guard holds the image weakly: no reference cycle keeps pixels alive.


def _shared_image(kept: Any) -> Any:
    """A new image over ``kept``'s pixels for one caller: its own mode, size,
    info and flags, read-only pixels, in-place writers guarded."""
    core = kept.im
    out = kept._new(core)
    out.readonly = 1
    ref = weakref.ref(out)
    attrs = out.__dict__
    attrs["load"] = functools.partial(_guarded_load, ref, core)
    attrs["frombytes"] = functools.partial(_guarded_writer, ref, core, "frombytes")
    attrs["getim"] = functools.partial(_guarded_writer, ref, core, "getim")
    return out


def _image_of(ref: Callable[[], Any]) -> Any:
    im = ref()
    if im is None:
        raise ReferenceError("the image this method belonged to no longer exists")
    return im


def _own_core(im: Any, core: Any) -> None:
    """Gives ``im`` its own copy of the shared ``core`` if it still uses it."""
    if im._im is core:
        im.im = core.copy()
        im.readonly = 0


def _guarded_writer(ref: Callable[[], Any], core: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    im = _image_of(ref)
    _own_core(im, core)
    return getattr(type(im), name)(im, *args, **kwargs)


def _guarded_load(ref: Callable[[], Any], core: Any) -> Any:
    im = _image_of(ref)
    load = type(im).load
    if im._im is not core:
        return load(im)
    palette = im.palette
    if palette is not None and palette.dirty:
        # load() would install it into the core (putpalette, apply_transparency and
        # a palette set by hand all end here), even turning an L core into P.
        _own_core(im, core)
        return load(im)
    pixels = load(im)
    return None if pixels is None else _PixelsOnWrite(im, core, pixels)


class _PixelsOnWrite:
    """The pixel access object of a released image still sharing the cached
    pixels: reads go to them; the first write gives the image its own copy
    and then writes there, as on any image."""

    __slots__ = ("core", "im", "pixels")

    def __init__(self, im: Any, core: Any, pixels: Any) -> None:
        self.im = im
        self.core = core
        self.pixels = pixels

    def _current(self) -> Any:
        core = self.core
        if core is not None and self.im._im is not core:
            # The image has its own pixels now (this write, or paste() & co.).
            self.pixels = type(self.im).load(self.im)
            self.core = None
        return self.pixels

    def __getitem__(self, xy: Any) -> Any:
        return self._current()[xy]

    def __setitem__(self, xy: Any, value: Any) -> None:
        core = self.core
        if core is not None and self.im._im is core:
            _own_core(self.im, core)
        self._current()[xy] = value

    def __repr__(self) -> str:
        return f"<pixel access of {self.im!r}>"


# --------------------------------------------------------------------------- pandas


def _shared_elements(arr: Any) -> bool:
    """True when every element of an object ndarray is shared as is by :func:`release`."""
    items = arr.ravel().tolist()
    if {type(x) for x in items} <= _IMMUTABLE:
        return True
    return all(_frozen(protect(x))[0] for x in items)


def _object_storage(obj: Any) -> Any:
    """The object ndarray behind an Index's elements, or None when not object dtype."""
    np = module("numpy")
    dtype = getattr(obj, "dtype", None)
    if not isinstance(dtype, np.dtype) or dtype.kind != "O":
        return None
    return obj.to_numpy(dtype=object)


def _index_cells(idx: Any, where: str, pd: Any) -> list[tuple[Any, Any]]:
    """Kept cells of a flat object Index; refuses mutable objects in nested index storage."""
    if isinstance(idx, pd.MultiIndex):
        for level in idx.levels:
            arr = _object_storage(level)
            if arr is not None and not _shared_elements(arr):
                raise TypeError(
                    "a pandas MultiIndex level holding mutable Python objects cannot "
                    "be cached (its elements cannot be copied per caller)"
                )
        return []
    if isinstance(idx.dtype, pd.CategoricalDtype):
        _check_categories(idx.dtype)
        return []
    arr = _object_storage(idx)
    if arr is None or _shared_elements(arr):
        return []
    return [(where, protect(arr.tolist()))]


def _check_categories(dtype: Any) -> None:
    arr = _object_storage(dtype.categories)
    if arr is not None and not _shared_elements(arr):
        raise TypeError(
            "pandas categories holding mutable Python objects cannot be cached "
            "(they cannot be copied per caller)"
        )


def _protect_pandas(value: Any) -> Any:
    pd = module("pandas")
    np = module("numpy")
    copied = value.copy(deep=True)
    _own_index_caches(copied, pd)
    cells: list[tuple[Any, Any]] = []
    if isinstance(copied, pd.DataFrame):
        for j, dtype in enumerate(copied.dtypes):
            if isinstance(dtype, pd.CategoricalDtype):
                _check_categories(dtype)
            elif isinstance(dtype, np.dtype) and dtype.kind == "O":
                arr = copied.iloc[:, j].to_numpy(dtype=object)
                if not _shared_elements(arr):
                    cells.append((j, protect(arr.tolist())))
                    # The kept frame holds a placeholder: release() fills in
                    # copies, and the producer's objects are not kept alive.
                    copied.isetitem(j, np.full(len(arr), None, dtype=object))
        cells += _index_cells(copied.index, "index", pd)
        cells += _index_cells(copied.columns, "columns", pd)
    elif isinstance(copied, pd.Series):
        if isinstance(copied.dtype, pd.CategoricalDtype):
            _check_categories(copied.dtype)
        elif isinstance(copied.dtype, np.dtype) and copied.dtype.kind == "O":
            arr = copied.to_numpy(dtype=object)
            if not _shared_elements(arr):
                cells.append(("values", protect(arr.tolist())))
                copied.iloc[:] = None
        cells += _index_cells(copied.index, "index", pd)
    else:
        cells += _index_cells(copied, "values", pd)
    return _Pandas(copied, tuple(cells))


def _object_array(items: list[Any]) -> Any:
    np = module("numpy")
    return np.fromiter(items, dtype=object, count=len(items))


def _r_pandas(k: _Pandas) -> Any:
    pd = module("pandas")
    out = k.v.copy(deep=True)
    _own_index_caches(out, pd)
    for where, kept in k.cells:
        arr = _object_array(release(kept))
        if type(where) is int:
            out.isetitem(where, arr)
        elif where == "values":
            if isinstance(out, pd.Index):
                out = pd.Index(arr, dtype=object, name=out.name)
            else:
                out.iloc[:] = arr
        elif where == "index":
            out.index = pd.Index(arr, dtype=object, name=out.index.name)
        else:
            out.columns = pd.Index(arr, dtype=object, name=out.columns.name)
    return out


def _own_index_caches(obj: Any, pd: Any) -> None:
    """Give ``obj``'s index objects caches of their own.

    pandas copies index objects as views sharing one ``_cache`` dict, where
    lookups build hash-table engines lazily: without this, a caller's
    ``.loc`` would grow the kept object (past its charged size), and the
    producer's lookups would grow it too.
    """
    axes: tuple[Any, ...]
    if isinstance(obj, pd.DataFrame):
        axes = (obj.index, obj.columns)
    elif isinstance(obj, pd.Series):
        axes = (obj.index,)
    else:
        axes = (obj,)
    for idx in axes:
        try:
            idx._cache = {}
            for level in getattr(idx, "_levels", ()):
                level._cache = {}
        except AttributeError:  # a pandas without index caches
            pass


# --------------------------------------------------------------------------- polars and pyarrow


def _protect_polars(value: Any) -> Any:
    """A polars DataFrame/Series rewritten into buffers of its own.

    ``clone()`` would share buffers with the producer's object, and a polars
    object built from numpy shares the numpy array's memory, which the
    producer may still write to. An IPC round trip copies the data (and
    refuses Object columns, whose Python objects cannot be copied per caller).
    """
    import io

    pl = module("polars")
    frame = value.to_frame() if isinstance(value, pl.Series) else value
    if any(dtype == pl.Object for dtype in frame.dtypes):
        raise TypeError(
            "a polars object with an Object column cannot be cached "
            "(its Python objects cannot be copied per caller)"
        )
    buf = io.BytesIO()
    frame.write_ipc(buf)
    buf.seek(0)
    copied = pl.read_ipc(buf)
    return copied.to_series() if isinstance(value, pl.Series) else copied


def _protect_arrow(value: Any) -> Any:
    """A pyarrow object rewritten into buffers backed by one immutable ``bytes`` object.

    Arrow buffers made by pyarrow (or wrapping a numpy array) are writable
    through the buffer protocol; buffers over ``bytes`` are not, so every
    caller can share the kept object. The IPC stream writes only the visible
    part of a slice, so the kept object holds no parent buffer either.
    """
    pa = module("pyarrow")
    if isinstance(value, pa.Table):
        schema, batches = value.schema, value.to_batches()
    elif isinstance(value, pa.RecordBatch):
        schema, batches = value.schema, [value]
    elif isinstance(value, pa.ChunkedArray):
        table = pa.table({"v": value})
        schema, batches = table.schema, table.to_batches()
    else:
        batch = pa.RecordBatch.from_arrays([value], names=["v"])
        schema, batches = batch.schema, [batch]
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    data = sink.getvalue().to_pybytes()
    copied = list(pa.ipc.open_stream(pa.py_buffer(data)))
    if isinstance(value, pa.RecordBatch):
        return copied[0]
    table = pa.Table.from_batches(copied, schema=schema)
    if isinstance(value, pa.Table):
        return table
    column = table.column(0)
    if isinstance(value, pa.ChunkedArray):
        return column
    return copied[0].column(0)


def register_copier(
    type_: type,
    *,
    protect: Callable[[Any], Any],
    release: Callable[[Any], Any],
) -> None:
    """Keep values of exactly ``type_`` with your own copy functions
    (``infercache.register_copier``, the companion of ``register_hasher``).

    For a type the cache would otherwise deep-copy on the way in and on every
    hit, or could not copy at all. ``protect(value)`` is called once, when a
    value enters the cache, and must return a form sharing nothing mutable
    with ``value`` (its producer may go on changing it). ``release(kept)`` is
    called for every caller that receives the value (each hit, each caller
    that joined a running computation) and must return an object that caller
    may mutate without changing what later callers get. For a type whose
    instances never change, ``protect=lambda v: v, release=lambda k: k``
    shares one object with every caller.

    The rule covers values of exactly ``type_`` (not its subclasses), alone
    or inside the containers the cache rebuilds per caller (lists, tuples,
    dicts, sets). Inside other objects, which are deep-copied as a whole,
    ``copy.deepcopy`` copies them. Registering a type again replaces its rule.
    """
    _CUSTOM[type_] = (protect, release)
    _KIND[type_] = _K_CUSTOM
    _IMMUTABLE.discard(type_)
    _PASS.discard(type_)
