"""Class reflection shared by keys, sizes and safety: where a class comes from,
and which attributes its instances keep in ``__slots__``.

Three modules walk an object's own state -- :mod:`infercache.keys` keys it,
:mod:`infercache.sizes` measures it, :mod:`infercache.safety` copies it -- and
must agree on what that state is; they read it through these functions.
Everything here is decided per class, never per value, and callers cache
what they build from it.
"""

from __future__ import annotations

__all__ = ["HEAPTYPE", "own_slot_names", "package_of", "slot_names"]

HEAPTYPE = 1 << 9
"""``Py_TPFLAGS_HEAPTYPE``: set on classes made at run time (class statements,
``type()``, Cython and other heap extension types), clear on static C types."""

_SPECIAL_SLOTS = ("__dict__", "__weakref__")
# slot_names per type: a class's slots are fixed when it is created.
_SLOTS: dict[type, tuple[str, ...]] = {}


def package_of(c: type) -> str:
    """The top-level package class ``c`` comes from (``pathlib`` for
    ``pathlib._local.Path``, ``numpy`` for ``numpy.ndarray``); ``""`` when it
    names none.

    The class's own ``__module__`` entry is read first, so a metaclass
    property cannot stand in for it.
    """
    module = c.__dict__.get("__module__", getattr(c, "__module__", ""))
    return module.partition(".")[0] if isinstance(module, str) else ""


def own_slot_names(c: type) -> tuple[str, ...]:
    """Attribute names of the slots class ``c`` itself declares, mangled as
    Python does (``__x`` in ``class A`` is ``_A__x``); ``__dict__`` and
    ``__weakref__`` are not state. Static C types declare none."""
    if not c.__flags__ & HEAPTYPE:
        return ()
    names = c.__dict__.get("__slots__", ())
    if isinstance(names, str):
        names = (names,)
    out = []
    for name in names:
        if not isinstance(name, str) or name in _SPECIAL_SLOTS:
            continue
        if name.startswith("__") and not name.endswith("__") and c.__name__.lstrip("_"):
            name = f"_{c.__name__.lstrip('_')}{name}"
        out.append(name)
    return tuple(out)


def slot_names(t: type) -> tuple[str, ...]:
    """Attribute names of every slot an instance of ``t`` has, from ``t`` up its
    MRO (cached per type: a class's slots are fixed when it is created)."""
    found = _SLOTS.get(t)
    if found is None:
        found = _SLOTS[t] = tuple(name for c in t.__mro__ for name in own_slot_names(c))
    return found
