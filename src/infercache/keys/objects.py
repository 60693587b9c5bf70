"""Object reflection: keys for values whose content is their Python-level state.

The rule, enforced here for every object that no adapter claims: **a key
covers an object's whole state, or the object is refused.** The whole state
of an instance is its ``__dict__`` plus every ``__slots__`` value, so:

* the class must be identifiable by name in any process (the encoder's
  :func:`~.encoder._class_identity_problem`): no local or factory-made
  classes, which would let two different classes share a key;
* no class on the instance layout may keep state in C that neither
  ``__dict__`` nor ``__slots__`` shows (:func:`_hidden_state`), which is the
  case of Cython and other extension types, also when they are heap types;
* enums are keyed by class and value; pydantic models, dataclasses and plain
  objects by their whole state (fields, but also attributes a subclass sets
  outside the fields, private attributes, extras, which fields were set);
* subclasses of the readable value types (builtins, ``datetime``,
  ``OrderedDict``, ``defaultdict``, ``deque``, ``array``, ``Decimal``,
  ``UUID``, paths, struct sequences) by the base value plus the state their
  own classes add.

These rules come after every library adapter: a library type that happens to
be a dataclass or a ``datetime`` subclass is keyed by its adapter.
"""

from __future__ import annotations

import datetime as _dt
import struct
import sys
from array import array
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable
from typing import Any

from ..libraries import loaded, module_for
from ..reflect import own_slot_names, package_of
from .encoder import (
    CORE,
    Encoder,
    Unencodable,
    enc_dict,
    enc_list,
    enc_pyarray,
    enc_str,
    enc_tuple,
    encode,
    set_object_rules,
    tagged,
    unhashable,
)
from .wire import (
    T_DATACLASS,
    T_DECIMAL,
    T_DEFAULTDICT,
    T_DEQUE,
    T_ENUM,
    T_MISSING,
    T_NONE,
    T_OBJECT,
    T_PATH,
    T_PYDANTIC,
    T_STRUCTSEQ,
    T_SUBCLASS,
    T_UUID,
    Sink,
    type_name,
    varint,
)

_PTR = struct.calcsize("P")
# Where CPython keeps an instance's __dict__ / weakref list outside the basic size.
_MANAGED_DICT = 1 << 4 if sys.version_info >= (3, 11) else 0
_MANAGED_WEAKREF = 1 << 3 if sys.version_info >= (3, 12) else 0


# ---------------------------------------------------------------- the C-state rule

def _hidden_state(t: type, root: type = object) -> str | None:
    """Why instances of ``t`` may hold state that neither ``__dict__`` nor
    ``__slots__`` shows, or ``None`` when they cannot.

    The HEAPTYPE flag does not tell: Cython and other extension types are heap
    types too. What tells is the instance layout. For every class ``c`` on the
    layout chain (``c.__base__`` down to ``root``), CPython makes a class
    statement's instances exactly as large as its base's plus one pointer per
    declared slot, plus one for a ``__dict__`` and one for a weakref list
    when ``c`` adds them and they are not kept outside the object (3.11+ and
    3.12+). Bytes beyond that are fields of a C type: state the generic
    encoder cannot read. A C base without fields (``datetime.tzinfo``, C
    mixins) adds no bytes and no state, so it passes; ``root`` is a type whose
    own content an encoder reads (``int``, ``deque``, ...).
    """
    c = t
    while c is not root and c is not object:
        base = c.__base__
        if base is None:
            break
        delta = c.__basicsize__ - base.__basicsize__
        explained = _PTR * len(own_slot_names(c))
        if c.__dictoffset__ and not base.__dictoffset__ and not c.__flags__ & _MANAGED_DICT:
            explained += _PTR
        if c.__weakrefoffset__ and not base.__weakrefoffset__ and not c.__flags__ & _MANAGED_WEAKREF:
            explained += _PTR
        if delta != explained or c.__itemsize__ != base.__itemsize__:
            return (f"its state lives in the C type {type_name(c)!r} (an extension type whose "
                    f"instances hold data that no __dict__ or __slots__ shows), which infercache "
                    f"cannot read")
        c = base
    return None


def _state_encoder(t: type, classes: tuple[type, ...] | None = None) -> Callable[[Any, Sink], bool]:
    """Writes an instance's ``__dict__`` and the slots declared by ``classes``
    (default: every class of ``t``); returns False if it has neither."""
    slots: list[tuple[str, Any]] = []
    for c in reversed(t.__mro__ if classes is None else classes):
        for attr in own_slot_names(c):
            desc = c.__dict__.get(attr)
            if desc is not None and hasattr(desc, "__get__"):
                slots.append((attr, desc))
    slots.sort(key=lambda slot: slot[0])
    slot_names = tuple((n, varint(len(n.encode())) + n.encode()) for n, _ in slots)
    descs = tuple(d for _, d in slots)
    count = varint(len(slots))

    def write_state(obj: Any, out: Sink) -> bool:
        try:
            d = object.__getattribute__(obj, "__dict__")
        except AttributeError:
            d = None
        if d is None and not descs:
            return False
        if d is None:
            out += T_NONE
        else:
            enc_dict(dict(d), out)
        out += count
        for (name, name_b), desc in zip(slot_names, descs):
            out += name_b
            try:
                v = desc.__get__(obj, t)
            except AttributeError:
                out += T_MISSING
                continue
            try:
                encode(v, out)
            except Unencodable as e:
                e.path.append(f".{name}")
                raise
        return True
    return write_state


def _object_path_fix(e: Unencodable) -> None:
    if e.path and e.path[-1].startswith("['"):
        e.path[-1] = "." + e.path[-1][2:-2]


def _whole_state_encoder(tag: bytes, t: type) -> Encoder:
    """``tag``, the verified class name, then the whole ``__dict__`` and slots,
    or a refusal when some of the state is out of reach."""
    reason = _hidden_state(t)
    if reason is not None:
        return unhashable(t, reason)
    head = tagged(tag, t)
    write_state = _state_encoder(t)

    def enc(obj: Any, out: Sink) -> None:
        stack = out.stack
        oid = id(obj)
        if oid in stack:
            raise Unencodable(t, "it contains itself (a reference cycle)")
        stack.add(oid)
        out += head
        try:
            ok = write_state(obj, out)
        except Unencodable as e:
            _object_path_fix(e)
            raise
        if not ok:
            raise Unencodable(t, "it has no state (no __dict__ or __slots__) to identify its content")
        stack.discard(oid)
    return enc


def extra_state_writer(t: type, family: str) -> Callable[[Any, Sink], None] | None:
    """For a subclass of a library's type, a writer of the state its non-library
    classes add (``__dict__`` and their slots), or None if they add none.

    Used by adapters: the adapter reads the library's own state, this the rest.
    Raises ``Unencodable`` if one of those classes keeps state in C.
    """
    extra = tuple(c for c in t.__mro__ if c is not object and package_of(c) != family)
    if not extra:
        return None
    reason = _hidden_state(t, next(c for c in t.__mro__ if package_of(c) == family))
    if reason is not None:
        raise Unencodable(t, reason)
    write_state = _state_encoder(t, extra)

    def write(obj: Any, out: Sink) -> None:
        if not write_state(obj, out):
            out += T_NONE
    return write


# ---------------------------------------------------------------- rules

def _enum_builder(t: type) -> Encoder | None:
    enum = module_for(t, "enum")
    if enum is None or not issubclass(t, enum.Enum):
        return None
    head = tagged(T_ENUM, t)

    def enc(obj: Any, out: Sink) -> None:
        out += head
        encode(obj._value_, out)
    return enc


def _dataclass_builder(t: type) -> Encoder | None:
    """Dataclasses by their whole state: the fields and any attribute set outside
    them (a subclass's ``__init__``), a ``field(init=False)`` not set yet included."""
    dataclasses = loaded("dataclasses")
    if dataclasses is None or not dataclasses.is_dataclass(t):
        return None
    return _whole_state_encoder(T_DATACLASS, t)


def _pydantic_builder(t: type) -> Encoder | None:
    """pydantic models by their whole state: field values as they are (nested
    models keep their types, ``exclude=True`` fields count), extras, private
    attributes, which fields were set, and anything else in ``__dict__``."""
    pydantic = module_for(t, "pydantic")
    if pydantic is None:
        return None
    base = getattr(pydantic, "BaseModel", None)
    v1 = loaded("pydantic.v1")
    if not ((base is not None and issubclass(t, base))
            or (v1 is not None and issubclass(t, v1.BaseModel))):
        return None
    return _whole_state_encoder(T_PYDANTIC, t)


def _same(obj: Any) -> Any:
    return obj


def _ordered_items(obj: Any) -> list[tuple[Any, Any]]:
    return list(OrderedDict.items(obj))


def _value_bases() -> list[tuple[type, bytes, Encoder]]:
    """(base, tag, content writer) for the value types whose subclasses are keyed
    by their base value plus their own state; the first matching base wins."""
    found: list[tuple[type, bytes, Encoder]] = []
    od_content = _content(enc_list, _ordered_items)  # dict order is the content
    found.append((OrderedDict, T_SUBCLASS, od_content))
    found.append((defaultdict, T_DEFAULTDICT, _enc_defaultdict))
    found.append((deque, T_DEQUE, _enc_deque))
    decimal = loaded("decimal")
    if decimal is not None:
        found.append((decimal.Decimal, T_DECIMAL, _content(enc_str, decimal.Decimal.__str__)))
    uuid = loaded("uuid")
    if uuid is not None:
        found.append((uuid.UUID, T_UUID, _content(_enc_raw, uuid.UUID.bytes.fget)))
    pathlib = loaded("pathlib")
    if pathlib is not None:
        found.append((pathlib.PurePath, T_PATH, _content(enc_str, pathlib.PurePath.__str__)))
    found.append((array, T_SUBCLASS, enc_pyarray))
    for base, convert in _BUILTIN_BASES:
        found.append((base, T_SUBCLASS, _content(CORE[base], convert)))
    return found


def _content(write: Encoder, convert: Callable[[Any], Any]) -> Encoder:
    def enc(obj: Any, out: Sink) -> None:
        write(convert(obj), out)
    return enc


# defaultdict's own slot, which a subclass's attribute of that name cannot hide.
_DEFAULT_FACTORY: Any = vars(defaultdict)["default_factory"]


def _enc_defaultdict(obj: Any, out: Sink) -> None:
    try:
        encode(_DEFAULT_FACTORY.__get__(obj), out)
    except Unencodable as e:
        e.path.append(".default_factory")
        raise
    enc_dict(dict(dict.items(obj)), out)


def _enc_deque(obj: Any, out: Sink) -> None:
    encode(deque.maxlen.__get__(obj), out)
    enc_list(list(deque.__iter__(obj)), out)


def _enc_raw(b: bytes, out: Sink) -> None:
    out += b


_BUILTIN_BASES: tuple[tuple[type, Callable[[Any], Any]], ...] = (
    (int, int.__int__),
    (float, float.__float__),
    (complex, lambda o: complex(complex.real.__get__(o), complex.imag.__get__(o))),
    (str, str.__str__),
    (bytes, lambda o: bytes(memoryview(o))),
    (bytearray, lambda o: bytearray(memoryview(o))),
    (list, list.copy),
    (tuple, lambda o: tuple(tuple.__iter__(o))),
    (dict, lambda o: dict(dict.items(o))),
    (set, lambda o: set(set.__iter__(o))),
    (frozenset, lambda o: frozenset(frozenset.__iter__(o))),
    (_dt.datetime, _same),
    (_dt.date, _same),
    (_dt.time, _same),
    (_dt.timedelta, _same),
)


def _value_builder(t: type) -> Encoder | None:
    """Subclasses of a readable value type (and the stdlib value types themselves).

    The key is the tag, ``t``'s name, the base value, then the ``__dict__`` and
    slots added by classes outside the base's package (always for builtin
    subclasses, so ``class Meter(float)`` with a ``unit`` keys the unit).
    A class between ``t`` and the base that keeps state in C (such as
    ``defaultdict`` for ``dict``, were it not listed) is refused.
    """
    found = next((rule for rule in _value_bases() if issubclass(t, rule[0])), None)
    if found is None:
        return None
    base, tag, content = found
    reason = _hidden_state(t, base)
    if reason is not None:
        return unhashable(t, reason)
    head = tagged(tag, t)
    family = package_of(base)
    extra = tuple(c for c in t.__mro__ if c not in base.__mro__ and package_of(c) != family)
    if tag is not T_SUBCLASS and not extra:
        def enc_value(obj: Any, out: Sink) -> None:
            out += head
            content(obj, out)
        return enc_value
    write_state = _state_encoder(t, extra)

    def enc(obj: Any, out: Sink) -> None:
        out += head
        content(obj, out)
        if not write_state(obj, out):
            out += T_NONE
    return enc


def _structseq_builder(t: type) -> Encoder | None:
    """Struct sequences (``os.stat_result``, ``time.struct_time``): all fields,
    also those beyond the tuple part (``st_atime_ns``...)."""
    if not (issubclass(t, tuple) and isinstance(getattr(t, "n_sequence_fields", None), int)
            and isinstance(getattr(t, "n_fields", None), int)):
        return None
    head = tagged(T_STRUCTSEQ, t)

    def enc(obj: Any, out: Sink) -> None:
        out += head
        enc_tuple(tuple(tuple.__iter__(obj)), out)
        hidden = obj.__reduce__()[1][1]  # the fields beyond the tuple, by name
        enc_dict(dict(hidden), out)
    return enc


def _generic_object_encoder(t: type) -> Encoder:
    return _whole_state_encoder(T_OBJECT, t)


set_object_rules(
    [_enum_builder, _pydantic_builder, _structseq_builder, _value_builder, _dataclass_builder],
    _generic_object_encoder,
)
