"""Library detection: which optional library a type belongs to, without importing it.

numpy, pandas, polars, pyarrow, torch and PIL (and the stdlib modules keys
look at lazily) are never imported by infercache: a value of one of their
types can only exist once the program has imported the library, so the
library is looked up in ``sys.modules`` when such a value is first seen.
Keys, sizes, safety and prefix all decide per type (and cache the decision),
so detection happens here, once per type:

* :func:`module_for` -- the library module for a type being classified, or
  ``None`` when the type has nothing to do with that library (one cached
  set lookup, then one ``sys.modules`` lookup);
* :func:`loaded` -- a module if the program imported it, never importing it;
* :func:`module` -- a module known to be imported (a value of its types is at
  hand), for the code that handles such a value.

A type belongs to a package when one of the classes of its MRO was defined in
it (:func:`infercache.reflect.package_of`): a user subclass of
``numpy.ndarray`` belongs to numpy, one mixing in a numpy class to a pandas
extension array belongs to both.
"""

from __future__ import annotations

import sys
from types import ModuleType

from .reflect import package_of

__all__ = ["loaded", "module", "module_for", "packages_of"]

_modules = sys.modules
# Top-level packages of each type's classes, per type (one walk of its MRO).
_PACKAGES: dict[type, frozenset[str]] = {}


def loaded(name: str) -> ModuleType | None:
    """The module ``name`` if the program has imported it, else ``None``; never imports."""
    return _modules.get(name)


def module(name: str) -> ModuleType:
    """The module ``name``, which must already be imported (the caller holds a
    value of one of its types); ``KeyError`` otherwise."""
    return _modules[name]


def packages_of(t: type) -> frozenset[str]:
    """The top-level packages the classes of ``t``'s MRO come from (cached per type)."""
    found = _PACKAGES.get(t)
    if found is None:
        found = _PACKAGES[t] = frozenset(package_of(c) for c in t.__mro__)
    return found


def module_for(t: type, name: str) -> ModuleType | None:
    """The module ``name`` (``"numpy"``, ``"PIL.Image"``, ``"pandas.core.internals.managers"``)
    when type ``t`` belongs to its top-level package and the module is imported, else ``None``.

    For per-type decisions: a type none of whose classes comes from the package
    costs one set lookup and no ``issubclass`` against the library's classes.
    """
    if name.partition(".")[0] not in packages_of(t):
        return None
    return _modules.get(name)
