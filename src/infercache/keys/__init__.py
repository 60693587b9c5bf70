"""Content keys: what identifies a call.

Every value is turned into a canonical byte *encoding* that depends only on its
type and content:

* each piece starts with a one-byte type tag, so ``1``, ``1.0``, ``True``,
  ``"1"``, ``b"1"``, ``[1]`` and ``(1,)`` all differ;
* every variable-length piece (strings, bytes, containers, big ints) is
  prefixed by its length as an unsigned LEB128 varint, so the encoding is
  prefix-free and concatenations cannot collide (``["ab", "c"]`` vs
  ``["a", "bc"]``);
* unordered containers (dicts, sets) are written in a canonical order, so
  insertion order does not matter;
* nothing depends on ``id()``, the builtin ``hash()``, ``PYTHONHASHSEED``, the
  process or the machine (multi-byte numbers are little-endian).

The store key is then either the encoding itself (``b"\\x00" + encoding``) when
it is at most 64 bytes long, which is exact and needs no hashing, or a tag byte
and a digest of the encoding: ``b"\\x01"`` + 32-byte BLAKE3 (the default; it is
cryptographic, so a user of a shared cache cannot craft an input that collides
with another user's key) or ``b"\\x02"`` + 16-byte XXH3-128 (faster, for trusted
inputs only). :data:`KEY_FORMAT_VERSION` names the format; the golden-key
table in the tests pins it.

Large buffers (numpy arrays, tensors, long strings or bytes) are not copied
into the encoding: the bytes gathered so far and then the buffer itself are
streamed into the hasher.

Decisions worth knowing:

* floats are encoded by their IEEE-754 bits, like numpy arrays: ``-0.0`` and
  ``0.0`` differ, and NaN is deterministic (``float("nan")`` always gives the
  same key; NaNs with other payloads give other keys);
* numpy scalars are tagged with their dtype and differ from Python numbers
  (``np.float64(1.0)`` and ``1.0`` have different keys); arrays with equal
  values but different dtypes (or byte orders) differ too;
* dicts and sets ignore insertion order, ``OrderedDict`` keeps it;
* a ``list`` or ``tuple`` of 16 or more exact floats is written packed (one
  tag, then raw doubles), which is a different but equally injective form;
* ``make_call_key(values, names)`` equals ``make_key(tuple(values))``;
* anything whose content cannot be read (functions, modules, files, locks,
  threads, generators, C objects, cycles) raises :class:`UnhashableError`
  instead of silently falling back to identity.

The rule for objects (:mod:`.objects`): **a key covers an object's whole
state, or the object is refused.** An object is keyed by its class's name and
its whole ``__dict__`` and ``__slots__`` state. A class is named by
``module:qualname`` only when that name leads back to the very class object,
so local classes, classes made by a factory and classes no longer in their
module are refused (unless registered with :func:`register_hasher`), as
enums, dataclasses, pydantic models and type objects made that way are. A
class whose instance layout holds C fields (Cython and other extension types,
heap types included) is keyed only through an adapter or a registered hasher.
Time zones are keyed by name (zoneinfo, pytz, dateutil) or by their state
(``datetime.timezone`` by offset and name), never by ``repr``.

Heavy libraries (numpy, pandas, PIL, torch, pyarrow, polars, pydantic) are
never imported here: a type is checked against a library only when one of its
classes comes from it and the library is already imported (which it must be
for such a value to exist), through :func:`infercache.libraries.module_for`.

Modules of this package:

* :mod:`.wire` — the format: ``KEY_FORMAT_VERSION``, type tags, varints,
  primitive byte forms, sinks and digests;
* :mod:`.encoder` — dispatch by type, the built-in types, resolution order,
  :func:`register_hasher` and :func:`register_adapter`;
* :mod:`.objects` — object reflection (the whole-state rule; enums,
  dataclasses, pydantic, value subclasses, ``__dict__``/``__slots__`` state);
* :mod:`.numpy`, :mod:`.pandas`, :mod:`.pil`, :mod:`.torch`, :mod:`.arrow`,
  :mod:`.polars` — library adapters;
* :mod:`.api` — :func:`make_key`, :func:`make_call_key`, :func:`hash_key`.

The names these modules share with each other (``Sink``, ``encode``,
``enc_str``, ``Unencodable``, ...) are public in their module and form the
package's internal interface; a name with a leading underscore is used by its
own module only. Users import what this module's ``__all__`` lists.

Adding a library adapter: write a module here whose builder
``builder(t: type) -> Encoder | None`` finds the library with
:func:`infercache.libraries.module_for` and is decorated with
:func:`register_adapter`, then import that module below (one line, in the
adapters block). Give its types tags in :mod:`.wire` and cases in
``tests/golden_keys_cases.py`` (then regenerate the table with
``python -m tests.golden_keys_cases --write``): the golden test fails for a
registered builder that keys no value of the table. A builder may raise
``Unencodable`` (for instance through ``type_name_bytes`` for a class that
cannot be named): the type is then refused with that reason. Any change of
an existing key is a new :data:`KEY_FORMAT_VERSION`.
"""

from __future__ import annotations

from ..errors import UnhashableError

# Object rules and library adapters register themselves when imported: one line
# per adapter module. Adapters claim disjoint types, so their order is free.
from . import arrow as arrow
from . import numpy as numpy
from . import objects as objects
from . import pandas as pandas
from . import pil as pil
from . import polars as polars
from . import torch as torch
from .api import hash_key, make_call_key, make_key
from .encoder import Builder, Encoder, register_adapter, register_hasher
from .wire import ALGORITHMS, KEY_FORMAT_VERSION, TAGS

__all__ = [
    "ALGORITHMS",
    "KEY_FORMAT_VERSION",
    "TAGS",
    "Builder",
    "Encoder",
    "UnhashableError",
    "hash_key",
    "make_call_key",
    "make_key",
    "register_adapter",
    "register_hasher",
]
