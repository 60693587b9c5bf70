"""Memory accounting: how many bytes a cached value really holds.

:func:`sizeof` is what the store charges against ``max_memory``. Because that
bound is meant to be *hard*, the measure must not undercount the values ML
functions actually return. ``sys.getsizeof`` alone is useless here: an object
that holds a 4 MB numpy array reports ~48 bytes, so a "10 MB" cache could grow
to hundreds of megabytes.

Policy (deep, real bytes, each buffer once):

* numpy arrays: the array header plus the bytes of the buffer that *owns* the
  memory. A view costs its base's ``nbytes`` -- a small slice of a big array
  keeps the whole buffer alive -- and however many views of one buffer appear
  in the measured value, that buffer is counted once. Object arrays add their
  elements, measured recursively. Numpy scalars: ``sys.getsizeof``.
* torch tensors: ``untyped_storage().nbytes()`` once per storage (keyed by the
  storage's data pointer and device), wherever the tensor sits -- a list, a
  user object, a transformers KV cache. Meta tensors hold no memory and cost
  only their header; sparse tensors cost their index and value tensors. A
  numpy array sharing memory with a tensor (``tensor.numpy()``,
  ``torch.from_numpy``) is counted once. Memory on any device is counted (a
  cached CUDA tensor pins device memory, which is the scarcer resource).
* PIL images: width * height * the bytes per pixel Pillow uses internally for
  the mode (e.g. 4 for ``RGB``, which Pillow stores padded), plus the core
  palette for palette modes, plus the Python-side attributes (palette bytes,
  ``info``). Computed from the mode; no pixel data is touched.
* pandas DataFrame / Series / Index and extension arrays: walked through
  their internals (block values, axes, index levels and codes, lazily built
  index engines, extension arrays' numpy and Arrow buffers, categories,
  ``attrs``), so every buffer is counted once -- also when shared with other
  pandas objects or numpy arrays in the value -- and object-dtype cells are
  measured deeply (a cell holding a list of arrays costs the arrays; a cell
  holding a view costs its base buffer once). ``memory_usage(deep=True)`` is
  not used: it counts object cells shallowly.
* pyarrow Array / ChunkedArray / Table / RecordBatch: every buffer (of the
  array, its children and its dictionary) counted once by the root buffer
  that owns the memory, rounded up to Arrow's 64-byte allocation padding; a
  slice costs the whole buffers it keeps alive.
* polars DataFrame / Series: ``estimated_size()`` (the visible buffers) plus
  the Python objects of Object columns; LazyFrame: the length of its
  serialized plan (which embeds the frames it scans), else its header.
  polars exposes no buffer addresses, so frames sharing buffers are each
  counted in full (an overcount, the safe direction).
* str / bytes / bytearray: ``sys.getsizeof``. memoryview: its header plus the
  object it exposes, measured (so its buffer is counted once).
* list / tuple / dict / set / frozenset / deque and arbitrary objects: their
  own ``sys.getsizeof`` plus everything reachable through items, ``__dict__``
  and ``__slots__``. Cycles are fine; an object reachable twice is counted
  once (tracked by ``id()`` *within one measurement* -- this is accounting,
  never a cache key). Classes, modules and functions referenced by a value are
  shared program state, not data held by the value: classes and modules cost
  nothing, functions their shallow size.

Known limits: memory held privately by C extension objects that expose no
Python-visible references (e.g. a tokenizer object) is seen only through
their ``sys.getsizeof``; autograd graphs hanging off a tensor's ``grad_fn``
are not walked (values entering the cache are detached by
:mod:`infercache.safety` anyway).

Nothing heavy is imported: numpy, torch, pandas, PIL, polars and pyarrow are
recognised through :mod:`infercache.libraries` the first time a value of one
of their types is measured, and the handler chosen for each type is cached.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable
from typing import Any

from .libraries import module, module_for
from .reflect import slot_names

__all__ = ["LEAF_TYPES", "sizeof"]

_getsizeof = sys.getsizeof

# Leaf types: nothing reachable beyond the object itself.
_LEAF: frozenset[type] = frozenset(
    {
        str,
        bytes,
        bytearray,
        int,
        float,
        bool,
        complex,
        type(None),
        range,
        type(Ellipsis),
    }
)

#: Exact types whose deep size is ``sys.getsizeof``: a caller on a hot path may size them
#: itself (``getsizeof(x) if type(x) in LEAF_TYPES else sizeof(x)``), with the same result.
LEAF_TYPES = _LEAF

# Bytes per pixel as Pillow stores each mode in memory (Storage.c). Modes with
# fewer than 4 bands but more than 1 are padded to 4 bytes per pixel.
_PIL_PIXEL_SIZE: dict[str, int] = {
    "1": 1,
    "L": 1,
    "P": 1,
    "I;16": 2,
    "I;16L": 2,
    "I;16B": 2,
    "I;16N": 2,
    "BGR;15": 2,
    "BGR;16": 2,
    "BGR;24": 3,
}
_PIL_PALETTE_BYTES = 1024  # 256 RGBA entries kept by the core image for P / PA

# The exact numpy.ndarray type, once numpy has been seen (fast path).
_NDARRAY: Any = None


class _Walk:
    """State for one measurement: what was already counted, what is pending."""

    __slots__ = ("buffers", "keep", "seen", "stack")

    def __init__(self) -> None:
        self.seen: set[int] = set()
        # (data pointer, device) of buffers already counted: torch storages and
        # numpy owning buffers share this namespace so shared memory counts once.
        self.buffers: set[tuple[int, str]] = set()
        self.stack: list[Any] = []
        # Temporaries created while measuring (e.g. a sparse tensor's values)
        # are kept alive so their id() cannot be reused within the measurement.
        self.keep: list[Any] = []

    def buffer(self, ptr: int, device: str, nbytes: int) -> int:
        """``nbytes`` the first time the buffer at ``(ptr, device)`` is seen, else 0."""
        if nbytes <= 0:
            return 0
        key = (ptr, device)
        if ptr and key in self.buffers:
            return 0
        self.buffers.add(key)
        return nbytes

    def run(self, root: Any) -> int:
        total = 0
        seen = self.seen
        mark = seen.add
        stack = self.stack
        pop = stack.pop
        stack.append(root)
        handlers = _HANDLERS
        leaf = _LEAF
        getsize = _getsizeof
        while stack:
            obj = pop()
            i = id(obj)
            if i in seen:
                continue
            mark(i)
            t = type(obj)
            if t in leaf:
                total += getsize(obj)
                continue
            h = handlers.get(t)
            if h is None:
                h = _classify(t)
            total += h(obj, self)
        return total


# --------------------------------------------------------------------------- handlers
# Each handler returns the bytes of ``obj`` itself and pushes what it references.


def _h_leaf(obj: Any, w: _Walk) -> int:
    return _getsizeof(obj)


def _h_free(obj: Any, w: _Walk) -> int:
    return 0


def _h_seq(obj: Any, w: _Walk) -> int:
    w.stack.extend(obj)
    return _getsizeof(obj)


def _h_dict(obj: Any, w: _Walk) -> int:
    stack = w.stack
    for k, v in obj.items():
        stack.append(k)
        stack.append(v)
    return _getsizeof(obj)


def _push_attrs(
    obj: Any, w: _Walk, slots: tuple[str, ...], has_dict: bool = True
) -> None:
    if has_dict:
        try:
            d = object.__getattribute__(obj, "__dict__")
        except (AttributeError, TypeError):
            d = None
        if d is not None:
            w.stack.append(d)
    if slots:
        missing = _MISSING
        for name in slots:
            try:
                v = object.__getattribute__(obj, name)
            except AttributeError:  # an unset slot
                v = missing
            if v is not missing:
                w.stack.append(v)


_MISSING = object()


def _make_object_handler(
    t: type, base: Callable[[Any, _Walk], int] | None = None
) -> Callable[[Any, _Walk], int]:
    """Handler for arbitrary objects (and subclasses of builtin containers)."""
    slots = slot_names(t)
    has_dict = getattr(t, "__dictoffset__", 1) != 0

    def handler(obj: Any, w: _Walk) -> int:
        size = base(obj, w) if base is not None else _getsizeof(obj)
        _push_attrs(obj, w, slots, has_dict)
        return size

    return handler


def _h_memoryview(obj: memoryview, w: _Walk) -> int:
    size = _getsizeof(obj)
    try:
        exposed = obj.obj
    except ValueError:  # released
        return size
    if exposed is None:
        return size + obj.nbytes
    w.stack.append(exposed)
    return size


def _h_ndarray(obj: Any, w: _Walk) -> int:
    base = obj.base
    if base is None:
        # Owns its buffer; getsizeof = header + nbytes for an owning array.
        nbytes = obj.nbytes
        header = _getsizeof(obj) - (nbytes if obj.flags.owndata else 0)
        try:
            ptr = obj.__array_interface__["data"][0]
        except (AttributeError, KeyError, TypeError, ValueError):
            ptr = 0
        size = header + w.buffer(ptr, "cpu", nbytes)
        if obj.dtype.hasobject:
            size += _push_object_elements(obj, w)
    else:
        # A view (or an array over foreign memory): its header, and the owner.
        size = _getsizeof(obj)
        w.stack.append(base)
    if type(obj) is not _NDARRAY:
        _push_attrs(obj, w, ())
    return size


def _push_object_elements(arr: Any, w: _Walk) -> int:
    """Measure an object array's leaf elements (each once) and push the others; returns bytes."""
    # Through the base class: a subclass may reshape or hide its elements in tolist
    # (np.matrix nests them in a list of its own, a masked array gives None).
    arr = _NDARRAY.view(arr, _NDARRAY)
    dt = arr.dtype
    if dt.fields is None:
        return _elements(arr.ravel().tolist(), w)
    total = 0
    for name, spec in dt.fields.items():
        if spec[0].hasobject and spec[0].fields is None:
            total += _elements(arr[name].ravel().tolist(), w)
    return total


def _elements(items: list[Any], w: _Walk) -> int:
    """Leaves among ``items`` are measured here (the common object column of
    strings costs one loop, not a walk step each); the rest are pushed."""
    total = 0
    seen = w.seen
    leaf = _LEAF
    getsize = _getsizeof
    push = w.stack.append
    for x in items:
        if type(x) in leaf:
            i = id(x)
            if i not in seen:
                seen.add(i)
                total += getsize(x)
        else:
            push(x)
    return total


def _h_tensor(obj: Any, w: _Walk) -> int:
    size = _getsizeof(obj)
    d = getattr(obj, "__dict__", None)
    if d:
        w.stack.append(d)
    try:
        grad = obj.grad if obj.is_leaf and obj.requires_grad else None
    except RuntimeError:  # tensor kinds without autograd fields
        grad = None
    if grad is not None:
        w.stack.append(grad)
    device = obj.device
    if device.type == "meta":
        return size
    layout = obj.layout
    torch = module("torch")
    if layout is not torch.strided:
        parts: list[Any] = []
        try:
            if layout is torch.sparse_coo:
                parts = [obj._indices(), obj._values()]
            elif layout in (torch.sparse_csr, torch.sparse_bsr):
                parts = [obj.crow_indices(), obj.col_indices(), obj.values()]
            elif layout in (torch.sparse_csc, torch.sparse_bsc):
                parts = [obj.ccol_indices(), obj.row_indices(), obj.values()]
        except (RuntimeError, NotImplementedError):
            parts = []
        if parts:
            w.keep.extend(parts)
            w.stack.extend(parts)
            return size
    try:
        st = obj.untyped_storage()
        return size + w.buffer(st.data_ptr(), str(device), st.nbytes())
    except (RuntimeError, NotImplementedError):
        # Tensors without an accessible storage (nested, functorch wrappers,
        # ...): their logical size is the best estimate available.
        try:
            logical: int = obj.nelement() * obj.element_size()
        except (RuntimeError, NotImplementedError):
            return size
        return size + logical


def _h_pil(obj: Any, w: _Walk) -> int:
    size = _getsizeof(obj)
    mode: str
    width: int
    height: int
    try:
        mode = obj.mode
        width, height = obj.size
    except (AttributeError, TypeError, ValueError):  # a half-initialised image
        mode, width, height = "", 0, 0
    size += width * height * _PIL_PIXEL_SIZE.get(mode, 4)
    if mode in ("P", "PA"):
        size += _PIL_PALETTE_BYTES
    _push_attrs(obj, w, ())  # palette, info, exif, ...
    return size


def _shell(obj: Any) -> int:
    """Bytes of the Python object itself, for types whose ``__sizeof__`` is deep.

    pandas objects report ``memory_usage(deep=True)`` from ``__sizeof__``
    (object cells counted shallowly, shared buffers once per object), pyarrow
    objects their ``nbytes``; their parts are walked instead.
    """
    return object.__sizeof__(obj) + _GC_HEADER


_GC_HEADER = _getsizeof([]) - [].__sizeof__()

# Attributes of pandas internals that hold data in C-level fields, invisible
# to a walk of ``__dict__``: NDArrayBacked arrays (Categorical codes,
# datetime/timedelta/period arrays), SparseIndex indices.
_PANDAS_C_FIELDS = ("_ndarray", "_dtype", "indices", "blocs", "blengths")
# What pandas keeps in C fields no Python-visible object reports (per block:
# placement arrays, reference tracking, consolidation flags, 300-500 bytes by
# tracemalloc; per manager: dtype and placement caches), charged as constants
# so that small frames stay under the bound too.
_PANDAS_BLOCK_OVERHEAD = 512
_PANDAS_MANAGER_OVERHEAD = 1024


def _h_pandas(obj: Any, w: _Walk) -> int:
    """A DataFrame, Series or Index: its shell, its ``__dict__`` and its manager's data."""
    size = _shell(obj)
    stack = w.stack
    d = getattr(obj, "__dict__", None)
    if d:
        stack.append(d)  # _mgr, attrs, name; Index: _data, _levels, _codes, _cache, ...
    return size


def _h_pandas_manager(obj: Any, w: _Walk) -> int:
    """A pandas BlockManager: each block's values, the axes and the placement arrays."""
    size = _getsizeof(obj) + _PANDAS_MANAGER_OVERHEAD
    stack = w.stack
    for block in getattr(obj, "blocks", ()):
        size += _getsizeof(block) + _PANDAS_BLOCK_OVERHEAD
        stack.append(block.values)
    for part in getattr(obj, "arrays", ()):  # pandas 2's optional ArrayManager
        stack.append(part)
    stack.extend(getattr(obj, "axes", ()))
    for name in ("_blknos", "_blklocs"):
        part = getattr(obj, name, None)
        if part is not None:
            stack.append(part)
    d = getattr(obj, "__dict__", None)
    if d:
        stack.append(d)
    return size


def _h_pandas_internal(obj: Any, w: _Walk) -> int:
    """Extension arrays and sparse indexes: ``__dict__`` plus their C-level data fields."""
    size = _shell(obj) if hasattr(type(obj), "memory_usage") else _getsizeof(obj)
    _push_attrs(obj, w, slot_names(type(obj)))
    stack = w.stack
    for name in _PANDAS_C_FIELDS:
        try:
            part = object.__getattribute__(obj, name)
        except AttributeError:
            continue
        # A field the object holds reads as the same object again; a computed one (a
        # BlockIndex's indices: every index of the array, made on each read) does not.
        if part is not None and object.__getattribute__(obj, name) is part:
            stack.append(part)
    return size


_ARROW_PADDING = 64  # Arrow pads every allocation to a multiple of 64 bytes


def _h_arrow_buffer(obj: Any, w: _Walk) -> int:
    """A pyarrow Buffer: the root buffer owning its memory, counted once."""
    root = obj
    while root.parent is not None:
        root = root.parent
    nbytes = -(-root.size // _ARROW_PADDING) * _ARROW_PADDING
    # CPU memory shares the "cpu" namespace with numpy: an Arrow array over a
    # numpy buffer (pa.array(ndarray) is zero-copy) is that buffer, counted once.
    device = "cpu" if root.is_cpu else f"arrow:{getattr(root, 'device', '?')}"
    return _shell(obj) + w.buffer(root.address, device, nbytes)


def _h_arrow(obj: Any, w: _Walk) -> int:
    """A pyarrow Array, ChunkedArray, Table or RecordBatch: its buffers, each once."""
    pa = module("pyarrow")
    parts: list[Any]
    if isinstance(obj, pa.Array):
        parts = [b for b in obj.buffers() if b is not None]
        dictionary = getattr(obj, "dictionary", None)
        if dictionary is not None:
            parts.append(dictionary)
    elif isinstance(obj, pa.ChunkedArray):
        parts = list(obj.chunks)
    else:
        parts = list(obj.columns)
    # These wrappers are created by the calls above: keep them alive so their
    # id() is not reused by another object within this measurement.
    w.keep.extend(parts)
    w.stack.extend(parts)
    return _shell(obj)


def _h_polars(obj: Any, w: _Walk) -> int:
    """A polars DataFrame or Series: ``estimated_size()`` plus Object columns' Python objects."""
    pl = module("polars")
    size = _getsizeof(obj)
    try:
        size += int(obj.estimated_size())
    except Exception:  # noqa: BLE001 - an unsizeable frame still costs its header
        return size
    columns = obj.get_columns() if isinstance(obj, pl.DataFrame) else [obj]
    for column in columns:
        if column.dtype == pl.Object:
            items = column.to_list()
            w.keep.append(items)
            w.stack.extend(items)
    return size


def _h_polars_lazy(obj: Any, w: _Walk) -> int:
    """A polars LazyFrame: its serialized plan embeds the frames it scans."""
    size = _getsizeof(obj)
    try:
        return size + len(obj.serialize())
    except Exception:  # noqa: BLE001 - plans with Python callables cannot be serialized
        return size


# --------------------------------------------------------------------------- dispatch

_HANDLERS: dict[type, Callable[[Any, _Walk], int]] = {t: _h_leaf for t in _LEAF}
_HANDLERS.update(
    {
        list: _h_seq,
        tuple: _h_seq,
        set: _h_seq,
        frozenset: _h_seq,
        deque: _h_seq,
        dict: _h_dict,
        memoryview: _h_memoryview,
    }
)

_BUILTIN_CONTAINERS: tuple[tuple[type, Callable[[Any, _Walk], int]], ...] = (
    (dict, _h_dict),
    (list, _h_seq),
    (tuple, _h_seq),
    (set, _h_seq),
    (frozenset, _h_seq),
    (deque, _h_seq),
)


def _classify(t: type) -> Callable[[Any, _Walk], int]:
    """Choose (and cache) the handler for objects of type ``t``."""
    global _NDARRAY
    h = _choose(t)
    if h is _h_ndarray and _NDARRAY is None:
        _NDARRAY = module("numpy").ndarray
    _HANDLERS[t] = h
    return h


def _choose(t: type) -> Callable[[Any, _Walk], int]:
    import types

    if issubclass(t, (type, types.ModuleType)):
        return _h_free
    if t in (
        types.FunctionType,
        types.BuiltinFunctionType,
        types.MethodType,
        types.CodeType,
        types.FrameType,
        types.GeneratorType,
        types.CoroutineType,
        types.AsyncGeneratorType,
        types.WrapperDescriptorType,
        types.MethodWrapperType,
        types.MethodDescriptorType,
        types.GetSetDescriptorType,
        types.MemberDescriptorType,
    ):
        return _h_leaf

    np = module_for(t, "numpy")
    if np is not None:
        if issubclass(t, np.ndarray):
            return _h_ndarray
        if issubclass(t, np.generic):
            return _h_leaf
        if issubclass(t, np.dtype):
            return _h_free
    torch = module_for(t, "torch")
    if torch is not None:
        if issubclass(t, torch.Tensor):
            return _h_tensor
        if t in (torch.dtype, torch.device, torch.layout, torch.memory_format):
            return _h_free
    pd = module_for(t, "pandas")
    if pd is not None:
        if issubclass(t, (pd.DataFrame, pd.Series, pd.Index)):
            return _h_pandas
        internals = module_for(t, "pandas.core.internals.managers")
        if internals is not None and issubclass(t, internals.BaseBlockManager):
            return _h_pandas_manager
        sparse = module_for(t, "pandas._libs.sparse")
        if issubclass(t, pd.api.extensions.ExtensionArray) or (
            sparse is not None and issubclass(t, sparse.SparseIndex)
        ):
            return _h_pandas_internal
    pa = module_for(t, "pyarrow")
    if pa is not None:
        if issubclass(t, pa.Buffer):
            return _h_arrow_buffer
        if issubclass(t, (pa.Array, pa.ChunkedArray, pa.Table, pa.RecordBatch)):
            return _h_arrow
    pl = module_for(t, "polars")
    if pl is not None:
        if issubclass(t, (pl.DataFrame, pl.Series)):
            return _h_polars
        if issubclass(t, pl.LazyFrame):
            return _h_polars_lazy
    pil = module_for(t, "PIL.Image")
    if pil is not None and issubclass(t, pil.Image):
        return _h_pil

    for klass, base in _BUILTIN_CONTAINERS:
        if issubclass(t, klass):
            return _make_object_handler(t, base)
    if issubclass(t, (str, bytes, bytearray, int, float, complex)):
        return _make_object_handler(t)
    if issubclass(t, memoryview):
        return _h_memoryview
    return _make_object_handler(t)


# --------------------------------------------------------------------------- public


def sizeof(obj: Any) -> int:
    """Deep size in bytes of ``obj``: every buffer it keeps alive, each once.

    Used to enforce a hard ``max_memory`` bound, so it counts what a value
    really pins in memory (numpy/torch buffers, PIL pixels, pandas data,
    containers and object attributes, recursively) rather than the shallow
    ``sys.getsizeof``. See the module docstring for the exact policy.
    """
    t = type(obj)
    if t in _LEAF:
        return _getsizeof(obj)
    if t is _NDARRAY and not obj.dtype.hasobject:
        base = obj.base
        if base is None:
            return _getsizeof(obj)
        if type(base) is _NDARRAY and base.base is None:
            # A view of an owning array (e.g. a read-only cached array).
            return _getsizeof(obj) + _getsizeof(base)
    if t is tuple or t is list:
        # Short sequences of leaves (the usual multi-output return value).
        total = _getsizeof(obj)
        for x in obj:
            if type(x) not in _LEAF:
                break
            total += _getsizeof(x)
        else:
            return total  # (a leaf repeated is counted again: a tiny overcount)
    elif t is dict:
        total = _getsizeof(obj)
        for k, v in obj.items():
            if type(k) not in _LEAF or type(v) not in _LEAF:
                break
            total += _getsizeof(k) + _getsizeof(v)
        else:
            return total
    return _Walk().run(obj)
