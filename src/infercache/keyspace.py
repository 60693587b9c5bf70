"""Names of entries in a store shared beyond one process.

In memory an entry is found by ``(session namespace, key)``. A tier that
outlives the process or is shared by replicas (a directory, a Redis server)
holds the entries of many caches, many code versions and many key formats at
once, so there an entry's name says all of it::

    infercache/<key format>/{<function>/<code version>}/<namespace>/<key as hex>

- the key-format version (:data:`infercache.keys.KEY_FORMAT_VERSION`): a
  change of how values are encoded into keys never serves an old entry;
- the function's identity (module and qualified name, or the cache's
  ``name=``) and its code version: two functions never share entries, and
  editing a function's code starts a fresh set;
- the session namespace (empty for caches shared by all sessions), so one
  session's entries can be dropped, and read by no one else;
- the key itself.

Components are percent-encoded, so none contains the ``/`` separator and a
name prefix selects exactly one function or one session (``clear`` by prefix
is a SCAN over ``prefix + "*"``). The braces are a Redis Cluster hash tag:
all entries of one function version live on one slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote

__all__ = ["ROOT", "EntryName", "Keyspace"]

ROOT = "infercache"


def _part(text: str) -> str:
    return quote(text, safe="")


@dataclass(frozen=True)
class EntryName:
    """An entry name split back into its parts (see :meth:`Keyspace.parse`)."""

    key_format: int
    function: str
    version: str
    namespace: str
    key: bytes


@dataclass(frozen=True)
class Keyspace:
    """The names of one cache's entries: ``Keyspace(function, version).name(ns, key)``.

    Args:
        function: the cache's identity across processes (``module.qualname``
            of the cached function, or the cache's ``name=``).
        version: the code version (empty when the cache is not versioned).
        key_format: the key-format version the keys were made with.
    """

    function: str
    version: str = ""
    key_format: int = 1

    def __post_init__(self) -> None:
        if not self.function:
            raise ValueError("a keyspace needs a non-empty function identity")

    @property
    def root(self) -> str:
        """The prefix shared by every entry of this cache (all sessions)."""
        return (
            f"{ROOT}/{self.key_format}/{{{_part(self.function)}/{_part(self.version)}}}/"
        )

    def prefix(self, namespace: str | None = None) -> bytes:
        """The name prefix of one session's entries, or of all entries when ``namespace`` is None."""
        if namespace is None:
            return self.root.encode()
        return f"{self.root}{_part(namespace)}/".encode()

    def name(self, namespace: str, key: bytes) -> bytes:
        """The full name of the entry ``key`` in session ``namespace``."""
        return self.prefix(namespace) + key.hex().encode()

    @staticmethod
    def parse(name: bytes) -> EntryName:
        """Split an entry name made by :meth:`name`; raises ``ValueError`` for anything else."""
        text = name.decode("ascii")
        parts = text.split("/")
        if len(parts) != 6 or parts[0] != ROOT or not parts[2].startswith("{") or not parts[3].endswith("}"):
            raise ValueError(f"not an infercache entry name: {name!r}")
        try:
            key_format = int(parts[1])
            key = bytes.fromhex(parts[5])
        except ValueError:
            raise ValueError(f"not an infercache entry name: {name!r}") from None
        return EntryName(
            key_format=key_format,
            function=unquote(parts[2][1:]),
            version=unquote(parts[3][:-1]),
            namespace=unquote(parts[4]),
            key=key,
        )
