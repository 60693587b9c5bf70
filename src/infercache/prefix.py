"""Longest-prefix lookup over cached keys with a compressed radix tree.

Why: reusing a transformer's KV state needs "the longest cached prompt that is a
prefix of this prompt". Scanning every cached key with ``startswith`` costs
O(entries x length) per request; walking a radix tree costs O(len(prompt)),
independent of how many entries are cached (the idea behind SGLang's
RadixAttention).

:class:`PrefixIndex` maps keys to opaque tokens (``Cache`` stores its internal
key bytes there) and answers :meth:`PrefixIndex.longest_prefix`. Three kinds of
key are searchable, each in its own tree, so a key of one kind is never a
prefix of a key of another kind:

* ``"str"``    -- ``str`` (and subclasses, stored as plain ``str``).
* ``"bytes"``  -- ``bytes`` and ``bytearray`` (stored as ``bytes``).
* ``"tokens"`` -- token-id sequences: a ``list`` or ``tuple`` of ints (numpy
  integer scalars allowed as elements; ``bool`` is not an int here), a 1-D
  numpy integer array, or a 1-D torch integer tensor. All of them are
  normalised to a ``tuple`` of Python ints, so ``[1, 2]``, ``(1, 2)`` and
  ``np.array([1, 2])`` are the *same* key. numpy and torch are never imported
  by this module; an array or tensor can only exist if its library has
  already been imported, so they are detected through
  :func:`infercache.libraries.loaded`.

Keys are returned in their normalised type: ``str``, ``bytes`` or a ``tuple``
of ints.

Edges are labelled with runs (slices of the key's own type), every non-root
node either holds a key or has at least two children, and removal merges and
prunes nodes, so memory stays proportional to the stored keys and an empty
index holds no nodes at all.

Not thread-safe: concurrent mutation and lookup must be serialised by the
caller (``Cache`` holds its lock around every call).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeAlias

from .libraries import loaded, module_for

__all__ = ["PrefixIndex", "PrefixKey"]

#: A key as stored and returned by :class:`PrefixIndex`.
PrefixKey: TypeAlias = str | bytes | tuple[int, ...]

_ABSENT: Any = object()  # marks a node that stores no key


class _Node:
    """One tree node: the run on the edge into it, its children, its token."""

    __slots__ = ("children", "label", "token")

    def __init__(self, label: PrefixKey, token: Any = _ABSENT) -> None:
        self.label = label
        # Keyed by the first element of the child's label (a 1-char str for
        # str trees, an int for bytes and token trees).
        self.children: dict[Any, _Node] = {}
        self.token = token


def _int_element(x: Any) -> int | None:
    """Return ``x`` as a Python int if it is an integer token id, else None."""
    t = type(x)
    ok = _TOKEN_TYPES.get(t)
    if ok is None:
        ok = _TOKEN_TYPES[t] = _is_token_type(t)
    return int(x) if ok else None


def _is_token_type(t: type) -> bool:
    """Whether values of type ``t`` are integer token ids: ints (not bools) and numpy integers."""
    if issubclass(t, int):
        return not issubclass(t, bool)
    np = module_for(t, "numpy")
    return np is not None and issubclass(t, np.integer)


# _is_token_type per element type, decided once per type.
_TOKEN_TYPES: dict[type, bool] = {}


def _normalize(key: Any) -> tuple[str, PrefixKey] | None:
    """Return ``(kind, normalised key)``, or None if ``key`` is not searchable."""
    if isinstance(key, str):
        return "str", key if type(key) is str else str.__str__(key)
    if isinstance(key, bytes):
        return "bytes", key if type(key) is bytes else bytes(key)
    if isinstance(key, bytearray):
        return "bytes", bytes(key)
    if isinstance(key, (list, tuple)):
        if all(type(x) is int for x in key):
            return "tokens", key if type(key) is tuple else tuple(key)
        out = []
        for x in key:
            v = _int_element(x)
            if v is None:
                return None
            out.append(v)
        return "tokens", tuple(out)
    np = loaded("numpy")
    if np is not None and isinstance(key, np.ndarray):
        if key.ndim == 1 and key.dtype.kind in "iu":
            return "tokens", tuple(key.tolist())
        return None
    torch = loaded("torch")
    if torch is not None and isinstance(key, torch.Tensor):
        dt = key.dtype
        if (
            key.dim() == 1
            and not dt.is_floating_point
            and not dt.is_complex
            and dt is not torch.bool
        ):
            return "tokens", tuple(key.tolist())
        return None
    return None


def _matches_at(key: PrefixKey, label: PrefixKey, i: int) -> bool:
    """True if ``key[i:]`` starts with ``label``."""
    if isinstance(key, tuple):
        return key[i : i + len(label)] == label
    return key.startswith(label, i)  # type: ignore[arg-type]


def _concat(a: PrefixKey, b: PrefixKey) -> PrefixKey:
    """``a + b`` for two runs of one tree, which are always of one kind."""
    if isinstance(a, str) and isinstance(b, str):
        return a + b
    if isinstance(a, bytes) and isinstance(b, bytes):
        return a + b
    if isinstance(a, tuple) and isinstance(b, tuple):
        return a + b
    raise TypeError(f"runs of two kinds: {type(a).__name__} and {type(b).__name__}")


def _common_prefix_len(label: PrefixKey, key: PrefixKey, start: int) -> int:
    """Length of the common prefix of ``label`` and ``key[start:]``.

    Binary search over C-level slice comparisons: O(len log len) machine work
    but only O(log len) Python steps, much faster than an element loop for
    the long edges that prompts produce.
    """
    lo, hi = 0, min(len(label), len(key) - start)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _matches_at(key, label[:mid], start):
            lo = mid
        else:
            hi = mid - 1
    return lo


class PrefixIndex:
    """Compressed radix tree answering "longest stored key that prefixes this".

    Maps searchable keys (see :meth:`kind`) to opaque tokens. Lookups cost
    O(len(key)) plus the number of candidates rejected by ``accept``, however
    many keys are stored. Not thread-safe; callers serialise access.
    """

    def __init__(self) -> None:
        self._roots: dict[str, _Node] = {}
        self._len = 0

    # -- classification -------------------------------------------------

    @staticmethod
    def kind(key: Any) -> str | None:
        """Return ``"str"``, ``"bytes"`` or ``"tokens"``, or None if ``key``
        cannot be prefix-searched (e.g. a dict, a float array, a 2-D tensor).
        """
        norm = _normalize(key)
        return None if norm is None else norm[0]

    @staticmethod
    def normalize(key: Any) -> PrefixKey | None:
        """Return ``key`` as the index stores it (``str``, ``bytes`` or a tuple
        of ints), or None if it is not searchable.

        Two keys with the same normalised form are the same entry here, so a
        caller whose own keys tell them apart (say ``[1, 2]`` vs ``(1, 2)``)
        should decide which one the index points at.
        """
        norm = _normalize(key)
        return None if norm is None else norm[1]

    # -- mutation -------------------------------------------------------

    def add(self, key: Any, token: Any) -> None:
        """Store ``key`` with ``token``; re-adding a key replaces its token.

        Raises TypeError if ``key`` is not searchable (see :meth:`kind`).
        """
        norm = _normalize(key)
        if norm is None:
            raise TypeError(
                f"PrefixIndex keys must be str, bytes or a 1-D sequence of int "
                f"token ids, not {type(key).__name__}"
            )
        kind, k = norm
        node = self._roots.get(kind)
        if node is None:
            node = self._roots[kind] = _Node(k[:0])
        n = len(k)
        i = 0
        while i < n:
            child = node.children.get(k[i])
            if child is None:
                node.children[k[i]] = _Node(k[i:], token)
                self._len += 1
                return
            label = child.label
            if _matches_at(k, label, i):
                node = child
                i += len(label)
                continue
            # Diverges inside the edge: split it at the common prefix.
            m = _common_prefix_len(label, k, i)
            mid = _Node(label[:m])
            child.label = label[m:]
            mid.children[child.label[0]] = child
            node.children[k[i]] = mid
            node = mid
            i += m
        if node.token is _ABSENT:
            self._len += 1
        node.token = token

    def remove(self, key: Any) -> bool:
        """Delete ``key``; return True if it was stored.

        Nodes left without a key and with fewer than two children are merged
        into their child or pruned, so the tree never outgrows its keys.
        """
        norm = _normalize(key)
        if norm is None:
            return False
        kind, k = norm
        root = self._roots.get(kind)
        if root is None:
            return False
        path: list[_Node] = [root]
        node = root
        n = len(k)
        i = 0
        while i < n:
            child = node.children.get(k[i])
            if child is None or not _matches_at(k, child.label, i):
                return False
            node = child
            path.append(node)
            i += len(child.label)
        if i != n or node.token is _ABSENT:
            return False
        node.token = _ABSENT
        self._len -= 1
        self._compact(path)
        if not root.children and root.token is _ABSENT:
            del self._roots[kind]
        return True

    def _compact(self, path: list[_Node]) -> None:
        """Restore the invariant along ``path`` after its last node lost its key."""
        node = path[-1]
        if len(path) == 1:  # the root is never merged or pruned here
            return
        parent = path[-2]
        if not node.children:
            del parent.children[node.label[0]]
            # The parent may now be a keyless pass-through node.
            if len(path) > 2 and parent.token is _ABSENT and len(parent.children) == 1:
                self._merge_into_child(path[-3], parent)
        elif len(node.children) == 1:
            self._merge_into_child(parent, node)

    @staticmethod
    def _merge_into_child(parent: _Node, node: _Node) -> None:
        """Replace keyless ``node`` (one child) by its child under ``parent``."""
        (child,) = node.children.values()
        child.label = _concat(node.label, child.label)
        parent.children[node.label[0]] = child

    def clear(self) -> None:
        """Remove every key."""
        self._roots.clear()
        self._len = 0

    # -- queries --------------------------------------------------------

    def longest_prefix(
        self,
        key: Any,
        *,
        strict: bool = False,
        accept: Callable[[Any], bool] | None = None,
    ) -> tuple[PrefixKey, Any] | None:
        """Return ``(stored_key, token)`` for the longest stored key that is a
        prefix of ``key``, or None.

        ``strict=True`` only considers proper prefixes (never ``key`` itself).
        ``accept(token)`` returning False skips that candidate and tries the
        next-longest one; ``Cache`` uses it to pass over entries that have
        expired but are not yet removed. Keys of another kind, and keys that
        are not searchable, never match.
        """
        norm = _normalize(key)
        if norm is None:
            return None
        kind, k = norm
        node = self._roots.get(kind)
        if node is None:
            return None
        # (depth, token) of every stored key met on the way down, shortest first.
        found: list[tuple[int, Any]] = []
        if node.token is not _ABSENT:
            found.append((0, node.token))
        n = len(k)
        i = 0
        while i < n:
            child = node.children.get(k[i])
            if child is None or not _matches_at(k, child.label, i):
                break
            node = child
            i += len(child.label)
            if node.token is not _ABSENT:
                found.append((i, node.token))
        for depth, token in reversed(found):
            if strict and depth == n:
                continue
            if accept is not None and not accept(token):
                continue
            return k[:depth], token
        return None

    def get(self, key: Any, default: Any = None) -> Any:
        """Return the token stored for exactly ``key``, or ``default``."""
        norm = _normalize(key)
        if norm is None:
            return default
        kind, k = norm
        node = self._roots.get(kind)
        n = len(k)
        i = 0
        while node is not None and i < n:
            child = node.children.get(k[i])
            if child is None or not _matches_at(k, child.label, i):
                return default
            node = child
            i += len(child.label)
        if node is None or node.token is _ABSENT:
            return default
        return node.token

    def __contains__(self, key: object) -> bool:
        return self.get(key, _ABSENT) is not _ABSENT

    def __len__(self) -> int:
        return self._len

    def items(self) -> Iterator[tuple[PrefixKey, Any]]:
        """Yield every ``(stored_key, token)``, kinds in insertion order, each
        tree depth-first. Do not mutate the index while iterating."""
        for root in self._roots.values():
            stack: list[tuple[_Node, PrefixKey]] = [(root, root.label)]
            while stack:
                node, prefix = stack.pop()
                if node.token is not _ABSENT:
                    yield prefix, node.token
                for child in node.children.values():
                    stack.append((child, _concat(prefix, child.label)))

    def __repr__(self) -> str:
        return f"PrefixIndex({self._len} keys)"

    # -- introspection for tests ---------------------------------------

    def _node_count(self) -> int:
        """Number of tree nodes, roots included (0 when the index is empty)."""
        count = 0
        stack = list(self._roots.values())
        while stack:
            node = stack.pop()
            count += 1
            stack.extend(node.children.values())
        return count

    def _check_invariants(self) -> None:
        """Raise AssertionError if the tree's structure is inconsistent (also under ``python -O``)."""

        def require(ok: object, message: str) -> None:
            if not ok:
                raise AssertionError(message)

        stored = 0
        for kind, root in self._roots.items():
            require(len(root.label) == 0, "root label must be empty")
            require(root.children or root.token is not _ABSENT, f"empty {kind} root kept")
            stack = [root]
            while stack:
                node = stack.pop()
                if node.token is not _ABSENT:
                    stored += 1
                if node is not root:
                    require(node.token is not _ABSENT or len(node.children) >= 2,
                            "keyless node with fewer than two children")
                for first, child in node.children.items():
                    require(len(child.label) > 0, "empty edge label")
                    require(child.label[0] == first, "child filed under wrong element")
                    stack.append(child)
        require(stored == self._len, f"len {self._len} but {stored} keys stored")
