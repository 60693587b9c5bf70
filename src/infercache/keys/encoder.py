"""The generic encoder: dispatch by type, the built-in types, and resolution.

:func:`encode` writes any value into a :class:`~.wire.Sink`. It looks the
value's exact type up in :data:`_ENC`; a type seen for the first time is
*resolved* once (:func:`_resolve`) and its encoder cached there, so every
per-type decision costs one dict lookup per value afterwards. Resolution
order:

1. the built-in types with a fixed encoding (:data:`CORE`);
2. :func:`register_hasher` registrations (for the type or a base);
3. ``type`` objects, then explicit refusals (code, modules, files, locks...);
4. library adapters, in registration order (:func:`register_adapter`);
5. the object rules of :mod:`.objects` (enums, pydantic, stdlib value types,
   dataclasses, builtin subclasses), then the generic object encoder.
"""

from __future__ import annotations

import _thread
import datetime as _dt
import io
import types
from array import array
from collections.abc import Callable
from operator import countOf as _count_of
from typing import Any, Optional

from ..libraries import loaded, module_for
from ..reflect import HEAPTYPE
from .files import enc_file
from .wire import (
    BIG,
    I64_MAX,
    I64_MIN,
    NATIVE_BIG_ENDIAN,
    PACK_MIN,
    SMALL_INTS,
    STR_HDR,
    T_BYTEARRAY,
    T_BYTES,
    T_COMPLEX,
    T_DATE,
    T_DATETIME,
    T_DICT,
    T_DIGEST,
    T_ELLIPSIS,
    T_FALSE,
    T_FLOAT,
    T_FLOATS_LIST,
    T_FLOATS_TUPLE,
    T_FROZENSET,
    T_INTS_LIST,
    T_INTS_TUPLE,
    T_LIST,
    T_MEMVIEW,
    T_NONE,
    T_PYARRAY,
    T_RANGE,
    T_REGISTERED,
    T_SET,
    T_SLICE,
    T_STR,
    T_TIME,
    T_TIMEDELTA,
    T_TIMEZONE,
    T_TRUE,
    T_TUPLE,
    T_TYPE,
    T_TZINFO,
    TZ_BY_NAME,
    TZ_BY_STATE,
    VARINT_SMALL,
    Sink,
    digest_sink,
    feed,
    int_bytes,
    new_hasher,
    new_sink,
    pack_clock,
    pack_complex,
    pack_date,
    pack_float,
    pack_timedelta,
    type_name,
    varint,
    write_buffer,
)

Encoder = Callable[[Any, Sink], None]
"""Writes one value of a given type into a sink."""
Builder = Callable[[type], Optional[Encoder]]  # noqa: UP045 (a runtime alias on 3.10)
"""Given a type, its encoder, or ``None`` when the builder does not know it."""


class Unencodable(Exception):
    """Raised inside encoders; turned into :class:`UnhashableError` with the path."""

    def __init__(self, type_: type, reason: str) -> None:
        self.type_ = type_
        self.reason = reason
        self.path: list[str] = []


def encode(obj: Any, out: Sink) -> None:
    t = type(obj)
    f = _ENC.get(t)
    if f is None:
        f = _resolve(t)
    f(obj, out)


def _sub(obj: Any, out: Sink) -> bytes:
    """Standalone encoding of one element of an unordered container.

    An element holding a large buffer is replaced by a digest of its encoding
    (and the whole key becomes a digest, so short keys never embed digests).
    """
    s = new_sink(out.alg, out.stack)
    encode(obj, s)
    if s.hasher is None:
        return bytes(s)
    if out.hasher is None:
        out.hasher = new_hasher(out.alg)
    return T_DIGEST + digest_sink(s)



def _enc_none(obj: Any, out: Sink) -> None:
    out += T_NONE


def enc_bool(obj: bool, out: Sink) -> None:
    out += T_TRUE if obj else T_FALSE


def enc_int(obj: int, out: Sink) -> None:
    b = SMALL_INTS.get(obj)
    out += b if b is not None else int_bytes(obj)


def _enc_float(obj: float, out: Sink) -> None:
    out += pack_float(T_FLOAT, obj)


def _enc_complex(obj: complex, out: Sink) -> None:
    out += pack_complex(T_COMPLEX, obj.real, obj.imag)


#: Directories (each ending with the separator) whose files a path string names are keyed by
#: their bytes, set by :func:`.files.key_files_under` (a framework's upload cache); empty: none.
file_prefixes: tuple[str, ...] = ()
#: Their longest common start ("" when none): one ``str.startswith`` of a string costs about
#: half of one of a tuple, and :func:`.files.enc_file` checks the exact directories.
file_prefix = ""


def enc_str(obj: str, out: Sink) -> None:
    if file_prefix and obj.startswith(file_prefix) and enc_file(obj, out):
        return
    _enc_text(obj, out)


def _enc_text(obj: str, out: Sink) -> None:
    """``obj`` as its characters (:func:`enc_str` once it is known not to name a keyed file)."""
    b = obj.encode("utf-8", "surrogatepass")
    n = len(b)
    if n < 128:
        out += STR_HDR[n]
        out += b
    elif n <= BIG:
        out += T_STR + varint(n)
        out += b
    else:
        out += T_STR + varint(n)
        feed(out, b)


def enc_bytes(obj: bytes, out: Sink) -> None:
    n = len(obj)
    if n < 128:
        out += T_BYTES + VARINT_SMALL[n]
        out += obj
    else:
        write_buffer(T_BYTES, memoryview(obj), out)


def _enc_bytearray(obj: bytearray, out: Sink) -> None:
    write_buffer(T_BYTEARRAY, memoryview(obj), out)


def _enc_memoryview(obj: memoryview, out: Sink) -> None:
    out += T_MEMVIEW
    enc_str(obj.format, out)
    enc_tuple(tuple(obj.shape or ()), out)
    if obj.c_contiguous:
        mv = obj.cast("B") if obj.ndim != 1 or obj.format != "B" else obj
    else:
        mv = memoryview(obj.tobytes())
    write_buffer(T_BYTES, mv, out)


def enc_pyarray(obj: array[Any], out: Sink) -> None:
    out += T_PYARRAY
    enc_str(obj.typecode, out)
    if NATIVE_BIG_ENDIAN and obj.itemsize > 1:
        obj = array(obj.typecode, obj)
        obj.byteswap()
    write_buffer(T_BYTES, memoryview(obj).cast("B"), out)


def _only(seq: Any, t: type) -> bool:
    for x in seq:
        if type(x) is not t:
            return False
    return True


def _floats_packed(obj: Any, out: Sink, tag: bytes) -> None:
    packed = array("d", obj)
    if NATIVE_BIG_ENDIAN:
        packed.byteswap()
    out += tag + varint(len(obj))
    write_buffer(b"", memoryview(packed).cast("B"), out)


def _enc_items(obj: Any, out: Sink) -> None:
    get = _ENC.get
    small_ints = SMALL_INTS
    str_hdr = STR_HDR
    files = file_prefix
    x = None
    try:
        for x in obj:
            t = type(x)
            if t is str and not (files and x.startswith(files)):
                b = x.encode("utf-8", "surrogatepass")
                if len(b) < 128:
                    out += str_hdr[len(b)]
                    out += b
                else:
                    _enc_text(x, out)
            elif t is int:
                b = small_ints.get(x)
                out += b if b is not None else int_bytes(x)
            elif t is float:
                out += pack_float(T_FLOAT, x)
            else:
                f = get(t)
                if f is None:
                    f = _resolve(t)
                f(x, out)
    except Unencodable as e:
        i = next((j for j, y in enumerate(obj) if y is x), "?")
        e.path.append(f"[{i}]")
        raise


def _packable(obj: Any, t: type) -> bool:
    return len(obj) >= PACK_MIN and type(obj[0]) is t and _count_of(map(type, obj), t) == len(obj)


def _ints_packable(obj: Any) -> bool:
    return _packable(obj, int) and min(obj) >= I64_MIN and max(obj) <= I64_MAX


def _ints_packed(obj: Any, out: Sink, tag: bytes) -> None:
    packed = array("q", obj)
    if NATIVE_BIG_ENDIAN:
        packed.byteswap()
    out += tag + varint(len(obj))
    write_buffer(b"", memoryview(packed).cast("B"), out)


def enc_list(obj: list[Any], out: Sink) -> None:
    if _packable(obj, float):
        _floats_packed(obj, out, T_FLOATS_LIST)
        return
    if _ints_packable(obj):
        _ints_packed(obj, out, T_INTS_LIST)
        return
    n = len(obj)
    stack = out.stack
    oid = id(obj)
    if oid in stack:
        raise Unencodable(list, "it contains itself (a reference cycle)")
    stack.add(oid)
    out += T_LIST + varint(n)
    _enc_items(obj, out)
    stack.discard(oid)


def enc_tuple(obj: tuple[Any, ...], out: Sink) -> None:
    if _packable(obj, float):
        _floats_packed(obj, out, T_FLOATS_TUPLE)
        return
    if _ints_packable(obj):
        _ints_packed(obj, out, T_INTS_TUPLE)
        return
    out += T_TUPLE + varint(len(obj))
    _enc_items(obj, out)


def _enc_mapping_items(items: Any, n: int, out: Sink) -> None:
    """Canonical order: by key when all keys are str, else by key encoding."""
    out += varint(n)
    if _only((k for k, _ in items), str):
        for k, v in sorted(items, key=_first):
            enc_str(k, out)
            try:
                encode(v, out)
            except Unencodable as e:
                e.path.append(f"[{k!r}]")
                raise
        return
    encoded = []
    for k, v in items:
        try:
            encoded.append((_sub(k, out), k, v))
        except Unencodable as e:
            e.path.append(f" (key {k!r})")
            raise
    encoded.sort(key=_first)
    for kb, k, v in encoded:
        out += kb
        try:
            encode(v, out)
        except Unencodable as e:
            e.path.append(f"[{k!r}]")
            raise


def _first(pair: tuple[Any, ...]) -> Any:
    return pair[0]


def enc_dict(obj: dict[Any, Any], out: Sink) -> None:
    stack = out.stack
    oid = id(obj)
    if oid in stack:
        raise Unencodable(dict, "it contains itself (a reference cycle)")
    stack.add(oid)
    out += T_DICT
    _enc_mapping_items(list(dict.items(obj)), len(obj), out)
    stack.discard(oid)


def _enc_set_like(tag: bytes, obj: Any, out: Sink) -> None:
    out += tag + varint(len(obj))
    if _only(obj, str):
        for s in sorted(obj):
            enc_str(s, out)
        return
    try:
        parts = sorted(_sub(x, out) for x in obj)
    except Unencodable as e:
        e.path.append(" (an element)")
        raise
    for p in parts:
        out += p


def _enc_set(obj: set[Any], out: Sink) -> None:
    _enc_set_like(T_SET, obj, out)


def _enc_frozenset(obj: frozenset[Any], out: Sink) -> None:
    _enc_set_like(T_FROZENSET, obj, out)


def _enc_type(obj: type, out: Sink) -> None:
    out += T_TYPE + type_name_bytes(obj)


# ---------------------------------------------------------------- class identity

_NAMES: dict[type, bytes] = {}


def _class_identity_problem(t: type) -> str | None:
    """Why ``t`` cannot be named so that the name means this class in any process, or None.

    A class is keyed by ``module:qualname``. That name stands for one class only
    if walking the qualname from the imported module leads back to this very
    class object. It does not for a class defined in a function (``<locals>``),
    one made by a factory (several classes share the name), or one deleted or
    replaced in its module. Static C types (not heap types) exist once per
    process under a fixed name and are taken as named.
    """
    if not t.__flags__ & HEAPTYPE:
        return None
    module_name = t.__dict__.get("__module__", getattr(t, "__module__", None))
    qualname = getattr(t, "__qualname__", None)
    if not isinstance(module_name, str) or not isinstance(qualname, str):
        return "its class has no module and qualified name to identify it by"
    if "<locals>" in qualname:
        return ("its class is defined inside a function (a local class), so its name "
                "does not identify it across calls and processes")
    found: Any = loaded(module_name)
    if found is None:
        return f"its class's module {module_name!r} is not imported, so its name cannot be checked"
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if found is not t:
        return (f"the name {module_name}.{qualname} does not lead back to this class "
                "(a class made by a factory, or replaced or removed from its module), "
                "so two different classes could share it")
    return None


def type_name_bytes(t: type) -> bytes:
    """``t``'s verified ``module:qualname``, length-prefixed; raises ``Unencodable`` if
    the name does not identify ``t`` (see :func:`_class_identity_problem`)."""
    b = _NAMES.get(t)
    if b is None:
        reason = _class_identity_problem(t)
        if reason is not None:
            raise Unencodable(t, reason)
        b = _NAMES[t] = _raw_name_bytes(t)
    return b


def _raw_name_bytes(t: type) -> bytes:
    b = type_name(t).encode("utf-8", "surrogatepass")
    return varint(len(b)) + b


def tagged(tag: bytes, t: type) -> bytes:
    """``tag`` then ``t``'s verified name (raises ``Unencodable`` for an unidentifiable class)."""
    return tag + type_name_bytes(t)


def _enc_range(obj: range, out: Sink) -> None:
    out += T_RANGE
    enc_int(obj.start, out)
    enc_int(obj.stop, out)
    enc_int(obj.step, out)


def _enc_slice(obj: slice, out: Sink) -> None:
    out += T_SLICE
    encode(obj.start, out)
    encode(obj.stop, out)
    encode(obj.step, out)


def _enc_ellipsis(obj: Any, out: Sink) -> None:
    out += T_ELLIPSIS


def _enc_offset(off: _dt.timedelta | None, out: Sink) -> None:
    if off is None:
        out += T_NONE
    else:
        _enc_timedelta(off, out)


def enc_tzinfo(tz: _dt.tzinfo | None, out: Sink) -> None:
    """The zone itself, not only today's offset: Europe/London in winter is not UTC.

    ``datetime.timezone`` by offset and name; named zones (zoneinfo, pytz,
    dateutil) by their name; any other tzinfo by its whole state through the
    generic object rules (or refused). Never ``repr(tz)``: it may hold an
    address. ``utcoffset``/``dst``/``tzname`` alone are not enough, they vary
    with the datetime.
    """
    if tz is None:
        out += T_NONE
        return
    t = type(tz)
    if t is _dt.timezone:
        _enc_timezone(tz, out)  # type: ignore[arg-type]  # checked just above
        return
    f = _TZ_ENC.get(t)
    if f is None:
        generation = _generation[0]
        try:
            f = _tz_encoder(t)
        except Unencodable as e:
            f = unhashable(e.type_, e.reason)
        _remember(_TZ_ENC, t, f, generation)
    f(tz, out)


def _tz_name_getter(t: type) -> tuple[str, Callable[[Any], Any]] | None:
    """(library, how to read the zone name) for a tzinfo type of a zone library, or None."""
    zoneinfo = module_for(t, "zoneinfo")
    if zoneinfo is not None and issubclass(t, zoneinfo.ZoneInfo):
        return "zoneinfo", lambda tz: tz.key  # None for ZoneInfo.from_file(...) without a key
    pytz_tzinfo = module_for(t, "pytz.tzinfo")
    if pytz_tzinfo is not None and issubclass(t, pytz_tzinfo.BaseTzInfo):
        return "pytz", lambda tz: tz.zone  # None for pytz.FixedOffset, keyed by state
    dateutil_tz = module_for(t, "dateutil.tz")
    tzfile = getattr(dateutil_tz, "tzfile", None)
    if isinstance(tzfile, type) and issubclass(t, tzfile):
        return "dateutil", _dateutil_zone_name
    return None


def _dateutil_zone_name(tz: Any) -> str | None:
    """A dateutil ``tzfile``'s zone name: the path below a ``zoneinfo`` directory
    (so ``/usr/share/zoneinfo/Europe/London`` is ``Europe/London`` on every machine)."""
    name = getattr(tz, "_filename", None)
    if not isinstance(name, str) or name.startswith("<"):
        # dateutil names a zone read from a file object without a name by that object's
        # repr ("<_io.BytesIO object at 0x...>"): an address, which another zone may reuse.
        return None
    norm = name.replace("\\", "/")
    cut = norm.rfind("/zoneinfo/")
    return norm[cut + len("/zoneinfo/"):] if cut >= 0 else name


def _tz_encoder(t: type) -> Encoder:
    """Per tzinfo type: by zone name for the zone libraries (pytz makes one class
    per zone at run time, so the library stands for the class; a subclass made
    outside the library adds its verified name), else by whole object state."""
    by_state = T_TZINFO + TZ_BY_STATE
    named = _tz_name_getter(t)
    if named is None:
        state = _tz_state_encoder(t)

        def enc_state(tz: Any, out: Sink) -> None:
            out += by_state
            state(tz, out)
        return enc_state
    library, get_name = named
    module = t.__dict__.get("__module__", getattr(t, "__module__", ""))
    own = isinstance(module, str) and module.partition(".")[0] == library
    by_name = (T_TZINFO + TZ_BY_NAME + _raw_name_bytes_of(library)
               + (varint(0) if own else type_name_bytes(t)))

    def enc_named(tz: Any, out: Sink) -> None:
        name = get_name(tz)
        if isinstance(name, str) and name:
            out += by_name
            enc_str(name, out)
        else:  # a named zone type without a name (pytz.FixedOffset, ZoneInfo.from_file)
            out += by_state
            _tz_state_encoder(t)(tz, out)
    return enc_named


def _raw_name_bytes_of(name: str) -> bytes:
    b = name.encode("utf-8")
    return varint(len(b)) + b


def _tz_state_encoder(t: type) -> Encoder:
    """The object rules' encoder for tzinfo type ``t`` (whole state, or refused)."""
    f = _TZ_STATE.get(t)
    if f is None:
        generation = _generation[0]
        try:
            f = next(f for b in (*_OBJECT_RULES, *_OBJECT_FALLBACK) if (f := b(t)) is not None)
        except Unencodable as e:
            f = unhashable(e.type_, e.reason)
        _remember(_TZ_STATE, t, f, generation)
    return f


def _enc_datetime(obj: _dt.datetime, out: Sink) -> None:
    out += pack_date(T_DATETIME, obj.year, obj.month, obj.day)
    out += pack_clock(obj.hour, obj.minute, obj.second, obj.microsecond, obj.fold)
    _enc_offset(obj.utcoffset(), out)
    enc_tzinfo(obj.tzinfo, out)


def _enc_date(obj: _dt.date, out: Sink) -> None:
    out += pack_date(T_DATE, obj.year, obj.month, obj.day)


def _enc_time(obj: _dt.time, out: Sink) -> None:
    out += T_TIME
    out += pack_clock(obj.hour, obj.minute, obj.second, obj.microsecond, obj.fold)
    _enc_offset(obj.utcoffset(), out)
    enc_tzinfo(obj.tzinfo, out)


def _enc_timedelta(obj: _dt.timedelta, out: Sink) -> None:
    out += pack_timedelta(T_TIMEDELTA, obj.days, obj.seconds, obj.microseconds)


def _enc_timezone(obj: _dt.timezone, out: Sink) -> None:
    out += T_TIMEZONE
    _enc_timedelta(obj.utcoffset(None), out)
    enc_str(obj.tzname(None), out)


_ENC: dict[type, Encoder] = {
    type(None): _enc_none,
    bool: enc_bool,
    int: enc_int,
    float: _enc_float,
    complex: _enc_complex,
    str: enc_str,
    bytes: enc_bytes,
    bytearray: _enc_bytearray,
    memoryview: _enc_memoryview,
    array: enc_pyarray,
    list: enc_list,
    tuple: enc_tuple,
    dict: enc_dict,
    set: _enc_set,
    frozenset: _enc_frozenset,
    type: _enc_type,
    range: _enc_range,
    slice: _enc_slice,
    type(...): _enc_ellipsis,
    _dt.datetime: _enc_datetime,
    _dt.date: _enc_date,
    _dt.time: _enc_time,
    _dt.timedelta: _enc_timedelta,
    _dt.timezone: _enc_timezone,
}
CORE = dict(_ENC)
_REGISTRY: dict[type, Callable[[Any], Any]] = {}
_TZ_ENC: dict[type, Encoder] = {}
_TZ_STATE: dict[type, Encoder] = {}


# ---------------------------------------------------------------- resolution

def unhashable(t: type, reason: str) -> Encoder:
    def enc(obj: Any, out: Sink) -> None:
        raise Unencodable(t, reason)
    return enc


_CODE_TYPES = (types.FunctionType, types.BuiltinFunctionType, types.MethodType,
               types.MethodWrapperType, types.WrapperDescriptorType,
               types.MethodDescriptorType, types.ClassMethodDescriptorType)
_RUNNING_TYPES = (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType,
                  types.FrameType, types.TracebackType)


def _explicitly_unhashable(t: type) -> str | None:
    if issubclass(t, _CODE_TYPES):
        return "functions and methods are code, not data: their content cannot be compared"
    if issubclass(t, types.ModuleType):
        return "modules are not data"
    if issubclass(t, _RUNNING_TYPES):
        return "generators, coroutines and frames are running computations, not data"
    if issubclass(t, io.IOBase):
        return "open files and streams have no stable content"
    if issubclass(t, (_thread.LockType, _thread.RLock)):
        return "locks are synchronisation objects, not data"
    threading = loaded("threading")
    if threading is not None and issubclass(t, threading.Thread):
        return "threads are running computations, not data"
    fts = loaded("functools")
    if fts is not None and issubclass(t, fts.partial):
        return "functions and methods are code, not data: their content cannot be compared"
    return None


_ADAPTERS: list[Builder] = []
_OBJECT_RULES: list[Builder] = []
_OBJECT_FALLBACK: list[Builder] = []


def register_adapter(builder: Builder) -> Builder:
    """Add a library adapter: ``builder(t)`` returns the encoder for type ``t``
    or ``None`` if ``t`` is not one of its library's types.

    Adapters are asked in registration order, after :func:`register_hasher`
    registrations and the explicit refusals, before the generic object rules.
    A builder must find the library through :func:`infercache.libraries.module_for`
    (never import it) and is called once per type; the encoder it returns is cached.
    Usable as a decorator; returns ``builder``.
    """
    _ADAPTERS.append(builder)
    _forget_resolved()
    return builder


def set_object_rules(rules: list[Builder], fallback: Builder) -> None:
    """Installs the object rules of :mod:`.objects` (called once, at its import)."""
    _OBJECT_RULES[:] = rules
    _OBJECT_FALLBACK[:] = [fallback]
    _forget_resolved()


# Resolved encoders are remembered only if no registration came while they were built: one
# built from the rules before a registration would otherwise outlive it (the type would keep
# its old encoding for good). The generation counts registrations; the lock makes "still the
# same generation" and the store one step.
_resolved_lock = _thread.allocate_lock()
_generation = [0]


def _forget_resolved() -> None:
    # Emptied, not iterated over: another thread may resolve a type meanwhile, and an
    # iteration over a dict that changes size fails (RuntimeError).
    with _resolved_lock:
        _generation[0] += 1
        _ENC.clear()
        _ENC.update(CORE)
        _TZ_ENC.clear()
        _TZ_STATE.clear()


def _remember(table: dict[type, Encoder], t: type, f: Encoder, generation: int) -> None:
    """``table[t] = f`` unless a registration came since ``generation`` was read."""
    with _resolved_lock:
        if _generation[0] == generation:
            table[t] = f


def _resolve(t: type) -> Encoder:
    generation = _generation[0]
    f = _build(t)
    _remember(_ENC, t, f, generation)
    return f


def _build(t: type) -> Encoder:
    return _rule(t)[1]


def _rule(t: type) -> tuple[str, Encoder]:
    """The rule that keys type ``t`` (``"core"``, ``"registered"``, ``"type"``,
    ``"refused"`` or the qualified name of a builder) and the encoder it gives.

    The name serves the golden-key table's coverage check: every builder must
    key at least one value of the table.
    """
    core = CORE.get(t)
    if core is not None:
        return "core", core
    for c in t.__mro__:
        fn = _REGISTRY.get(c)
        if fn is not None:
            try:
                return "registered", _registered_encoder(t, fn, c)
            except Unencodable as e:
                return "refused", unhashable(
                    t, e.reason + f"; register_hasher({t.__qualname__}, fn) to key it")
    if issubclass(t, type):
        return "type", _enc_type
    reason = _explicitly_unhashable(t)
    if reason is not None:
        return "refused", unhashable(t, reason)
    if issubclass(t, _dt.tzinfo):
        return "tzinfo", enc_tzinfo
    for builder in (*_ADAPTERS, *_OBJECT_RULES, *_OBJECT_FALLBACK):
        try:
            f = builder(t)
        except Unencodable as e:  # the builder's type, found unidentifiable or unreadable
            return "refused", unhashable(e.type_, e.reason)
        if f is not None:
            return _builder_name(builder), f
    return "refused", unhashable(t, "no encoder knows this type")


def _builder_name(builder: Builder) -> str:
    return f"{getattr(builder, '__module__', '?')}.{getattr(builder, '__qualname__', repr(builder))}"


def _builders() -> list[str]:
    """Names of every registered builder (library adapters, object rules, fallback)."""
    return [_builder_name(b) for b in (*_ADAPTERS, *_OBJECT_RULES, *_OBJECT_FALLBACK)]


def _registered_encoder(t: type, fn: Callable[[Any], Any], registered: type) -> Encoder:
    """``fn``'s content tagged with ``t``'s name. A type registered itself is named
    as it is (its registration vouches for it); a subclass inheriting the
    registration must be identifiable by name."""
    head = T_REGISTERED + (_raw_name_bytes(t) if t is registered else type_name_bytes(t))

    def enc(obj: Any, out: Sink) -> None:
        out += head
        encode(fn(obj), out)
    return enc




def register_hasher(type_: type, fn: Callable[[Any], Any]) -> None:
    """Teach infercache the content of ``type_`` (and its subclasses).

    ``fn(obj)`` returns any encodable value standing for ``obj``'s content; the
    key is built from that value tagged with the actual type's module and
    qualified name, so two types with equal reductions still differ.
    Re-registering a type replaces its hasher. Built-in types with a fixed
    encoding (str, int, list, ...) cannot be overridden.
    """
    if not isinstance(type_, type):
        raise TypeError(f"register_hasher needs a type, got {type_!r}")
    if not callable(fn):
        raise TypeError(f"register_hasher needs a callable, got {fn!r}")
    if type_ in CORE:
        raise TypeError(f"the encoding of built-in type {type_.__qualname__} cannot be overridden")
    _REGISTRY[type_] = fn
    _forget_resolved()
