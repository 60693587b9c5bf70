"""Object reflection: keys for values whose content is their Python-level state.

Enums (by value), pydantic models (by field values), dataclasses (by
fields), subclasses of builtin types (the builtin value plus the instance's
own state) and, as the last resort, plain objects by their ``__dict__`` and
``__slots__``. These rules come after every library adapter: a library type
that happens to be a dataclass or a ``datetime`` subclass is keyed by its
adapter.
"""

from __future__ import annotations

import datetime as _dt
import sys
from collections.abc import Callable
from typing import Any

from .encoder import (
    _CORE,
    _HEAPTYPE,
    Encoder,
    _enc,
    _enc_dict,
    _enc_list,
    _enc_str,
    _Fail,
    _first,
    _set_object_rules,
    _stdlib_builder,
    _unhashable,
)
from .wire import (
    T_DATACLASS,
    T_ENUM,
    T_MISSING,
    T_NONE,
    T_OBJECT,
    T_PYDANTIC,
    T_SUBCLASS,
    T_UNSET,
    _Sink,
    _tagged,
    _type_name,
    _varint,
)


def _enum_builder(t: type) -> Encoder | None:
    enum = sys.modules.get("enum")
    if enum is None or not issubclass(t, enum.Enum):
        return None
    head = _tagged(T_ENUM, t)

    def enc(obj: Any, out: _Sink) -> None:
        out += head
        _enc(obj._value_, out)
    return enc



def _dataclass_builder(t: type) -> Encoder | None:
    dataclasses = sys.modules.get("dataclasses")
    if dataclasses is None or not dataclasses.is_dataclass(t):
        return None
    names = tuple(f.name for f in dataclasses.fields(t))
    head = _tagged(T_DATACLASS, t) + _varint(len(names))

    def enc(obj: Any, out: _Sink) -> None:
        stack = out.stack
        oid = id(obj)
        if oid in stack:
            raise _Fail(t, "it contains itself (a reference cycle)")
        stack.add(oid)
        out += head
        for name in names:
            _enc_str(name, out)
            try:
                value = getattr(obj, name)
            except AttributeError:  # a field(init=False) not set yet is a state of its own
                out += T_UNSET
                continue
            try:
                _enc(value, out)
            except _Fail as e:
                e.path.append(f".{name}")
                raise
        stack.discard(oid)
    return enc


def _pydantic_builder(t: type) -> Encoder | None:
    pydantic = sys.modules.get("pydantic")
    if pydantic is None:
        return None
    base = getattr(pydantic, "BaseModel", None)
    v1 = sys.modules.get("pydantic.v1")
    if base is not None and issubclass(t, base):
        fields = tuple(t.model_fields)
    elif v1 is not None and issubclass(t, v1.BaseModel):
        fields = tuple(t.__fields__)
    else:
        return None
    head = _tagged(T_PYDANTIC, t)

    def enc(obj: Any, out: _Sink) -> None:
        # Field values themselves, not model_dump(): a dump turns nested models into
        # plain dicts (losing their types) and leaves out fields marked exclude=True.
        values = {name: getattr(obj, name) for name in fields}
        extra = getattr(obj, "__pydantic_extra__", None)
        if extra:
            values["__pydantic_extra__"] = extra
        out += head
        _enc(values, out)

    return enc


def _state_encoder(t: type) -> Callable[[Any, _Sink], bool]:
    """Writes an instance's ``__dict__`` and slots; returns False if it has neither."""
    slots: list[tuple[str, Any]] = []
    for c in reversed(t.__mro__):
        names = c.__dict__.get("__slots__", ())
        if isinstance(names, str):
            names = (names,)
        for name in names:
            if name in ("__dict__", "__weakref__"):
                continue
            attr = f"_{c.__name__.lstrip('_')}{name}" if name.startswith("__") and not name.endswith("__") else name
            desc = c.__dict__.get(attr)
            if desc is not None and hasattr(desc, "__get__"):
                slots.append((attr, desc))
    slots.sort(key=_first)
    slot_names = tuple((n, _varint(len(n.encode())) + n.encode()) for n, _ in slots)
    descs = tuple(d for _, d in slots)
    count = _varint(len(slots))

    def write_state(obj: Any, out: _Sink) -> bool:
        try:
            d = object.__getattribute__(obj, "__dict__")
        except AttributeError:
            d = None
        if d is None and not descs:
            return False
        if d is None:
            out += T_NONE
        else:
            _enc_dict(dict(d), out)
        out += count
        for (name, name_b), desc in zip(slot_names, descs):
            out += name_b
            try:
                v = desc.__get__(obj, t)
            except AttributeError:
                out += T_MISSING
                continue
            try:
                _enc(v, out)
            except _Fail as e:
                e.path.append(f".{name}")
                raise
        return True
    return write_state


def _object_path_fix(e: _Fail) -> None:
    if e.path and e.path[-1].startswith("['"):
        e.path[-1] = "." + e.path[-1][2:-2]


def _generic_object_encoder(t: type) -> Encoder:
    for c in t.__mro__[:-1]:
        if not c.__flags__ & _HEAPTYPE:
            return _unhashable(
                t, f"its state lives in the C type {_type_name(c)!r}, which infercache cannot read")
    head = _tagged(T_OBJECT, t)
    write_state = _state_encoder(t)

    def enc(obj: Any, out: _Sink) -> None:
        stack = out.stack
        oid = id(obj)
        if oid in stack:
            raise _Fail(t, "it contains itself (a reference cycle)")
        stack.add(oid)
        out += head
        try:
            ok = write_state(obj, out)
        except _Fail as e:
            _object_path_fix(e)
            raise
        if not ok:
            raise _Fail(t, "it has no state (no __dict__ or __slots__) to identify its content")
        stack.discard(oid)
    return enc


def _builtin_subclass_builder(t: type) -> Encoder | None:
    for base, convert in _SUBCLASS_BASES:
        if issubclass(t, base):
            break
    else:
        return None
    base_enc = _CORE[base]
    collections = sys.modules.get("collections")
    if base is dict and collections is not None and issubclass(t, collections.OrderedDict):
        base_enc = _enc_list

        def convert(obj: Any) -> Any:
            return list(obj.items())
    head = _tagged(T_SUBCLASS, t)
    write_state = _state_encoder(t)

    def enc(obj: Any, out: _Sink) -> None:
        out += head
        base_enc(convert(obj), out)
        if not write_state(obj, out):
            out += T_NONE
    return enc


def _same(obj: Any) -> Any:
    return obj


_SUBCLASS_BASES: tuple[tuple[type, Callable[[Any], Any]], ...] = (
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



_set_object_rules(
    [_enum_builder, _pydantic_builder, _stdlib_builder, _dataclass_builder, _builtin_subclass_builder],
    _generic_object_encoder,
)
