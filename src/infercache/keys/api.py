"""The public entry points: :func:`make_key`, :func:`make_call_key`, :func:`hash_key`."""

from __future__ import annotations

from typing import Any

import blake3 as _blake3
import xxhash as _xxhash

from ..errors import UnhashableError
from . import encoder
from .encoder import Unencodable, enc_tuple, encode
from .wire import (
    ALGORITHMS,
    KEY_TAG,
    PACK_MIN,
    SHORT_MAX,
    SMALL_INTS,
    STR_HDR,
    T_FALSE,
    T_FLOAT,
    T_NONE,
    T_TRUE,
    T_TUPLE,
    Sink,
    digest_sink,
    new_sink,
    pack_float,
    type_name,
    varint,
)


def _error(e: Unencodable, where: str | None, path: list[str]) -> UnhashableError:
    t = e.type_
    name = type_name(t).replace(":", ".")
    loc = "".join(reversed(path))
    subject = f"parameter {where!r}" if where is not None else "the value"
    at = f" (at {where or 'value'}{loc})" if loc else ""
    message = (
        f"infercache cannot build a cache key for {subject}{at}: "
        f"a {name} object cannot be hashed by content because {e.reason}. "
        f"Fix: choose what identifies the call (key=lambda kw: ... on the decorator; for a "
        f"Cache, a key of plain data such as a string or a tuple), or teach infercache this type "
        f"with infercache.register_hasher({t.__qualname__}, fn) where fn returns its content."
    )
    return UnhashableError(message, where=where, path=loc, type_=t, reason=e.reason)


def _encode(obj: Any, alg: str, where: str | None) -> Sink:
    out = new_sink(alg)
    try:
        encode(obj, out)
    except Unencodable as e:
        raise _error(e, where, e.path) from None
    except RecursionError:
        raise UnhashableError(
            f"infercache cannot build a cache key for "
            f"{'parameter ' + repr(where) if where else 'the value'}: it is nested too deeply "
            f"(or a registered hasher returns the object itself). Fix: choose what identifies the "
            f"call (key= on the decorator; for a Cache, a flatter key) or use infercache.register_hasher.",
            where=where, type_=type(obj), reason="nested too deeply") from None
    return out


def _check_alg(algorithm: str) -> bytes:
    tag = KEY_TAG.get(algorithm)
    if tag is None:
        raise ValueError(f"unknown hash algorithm {algorithm!r}; choose one of {ALGORITHMS}")
    return tag


def finish(out: Sink, tag: bytes) -> bytes:
    if out.hasher is None and len(out) <= SHORT_MAX:
        return b"\x00" + out
    return tag + digest_sink(out)


def make_key(obj: Any, *, algorithm: str = "blake3", where: str | None = None) -> bytes:
    """The store key for ``obj``: ``b"\\x00" + encoding`` if the encoding is at
    most 64 bytes, else ``b"\\x01"`` + BLAKE3-256 or ``b"\\x02"`` + XXH3-128 of it.

    Raises :class:`UnhashableError` (naming ``where``) if some part of ``obj``
    has no readable content, ``ValueError`` for an unknown ``algorithm``.
    """
    tag = _check_alg(algorithm)
    return finish(_encode(obj, algorithm, where), tag)


def hash_key(obj: Any, *, algorithm: str = "blake3") -> str:
    """Hex digest of ``obj``'s canonical encoding (64 hex chars for BLAKE3, 32 for XXH3)."""
    _check_alg(algorithm)
    return digest_sink(_encode(obj, algorithm, None)).hex()


_CALL_HDR = tuple(b"\x00" + T_TUPLE + varint(n) for n in range(PACK_MIN))
# Encoded chunks of recently seen short str arguments (exact str: equal means same content).
_str_chunks: dict[str, bytes] = {}
_STR_CHUNKS_MAX = 4096
# The prefix memo: per argument count, a first str argument -> the key's start up to its end
# (``_CALL_HDR[n]`` + its chunk), so a call like f("hello world", 0.7) costs one dict
# lookup, one struct.pack and one concatenation.
_call_prefixes: tuple[dict[str, bytes], ...] = tuple({} for _ in range(PACK_MIN))
STR_FLOAT_PREFIXES: dict[str, bytes] = {}
"""For callers inlining the commonest call, ``f(prompt, temperature)``: an exact ``str``
-> the key of a two-argument call up to that str, filled only when a float after it
still fits the short form, so ``STR_FLOAT_PREFIXES[s] + pack_float(T_FLOAT, x)`` is
:func:`short_call_key` of ``(s, x)`` for an exact float ``x``. Read it, never write it."""


def _remember(memo: dict[str, bytes], key: str, value: bytes) -> None:
    """``memo[key] = value``, emptying ``memo`` first once it holds :data:`_STR_CHUNKS_MAX` entries."""
    if len(memo) >= _STR_CHUNKS_MAX:
        memo.clear()
    memo[key] = value


def forget_str_chunks() -> None:
    """Empty the short-string memos (a memoized string may since have come to name a file keyed by content)."""
    _str_chunks.clear()
    STR_FLOAT_PREFIXES.clear()
    for prefixes in _call_prefixes:
        prefixes.clear()


def _short_str(v: str) -> bytes | None:
    """The short-form encoding of the exact ``str`` ``v`` (not memoized); None as for :func:`_str_chunk`."""
    if encoder.file_prefixes and v.startswith(encoder.file_prefixes):
        return None  # may name a file keyed by content: never memoized
    try:
        b = v.encode()
    except UnicodeEncodeError:
        return None
    lb = len(b)
    if lb >= 128:
        return None
    return STR_HDR[lb] + b


def _str_chunk(v: str) -> bytes | None:
    """The encoding of the exact ``str`` ``v`` (memoized), or None when the general path must encode it.

    None for strings of 128 UTF-8 bytes or more, strings UTF-8 cannot encode
    (lone surrogates) and strings that may name a file keyed by content.
    """
    chunk = _str_chunks.get(v)
    if chunk is None:
        chunk = _short_str(v)
        if chunk is None:
            return None
        _remember(_str_chunks, v, chunk)
    return chunk


def short_call_key(values: tuple[Any, ...], tag: bytes) -> bytes | None:
    """:func:`make_call_key` of fewer than 16 small arguments, or None when the general path must key them.

    Small arguments are exact ``str`` (under 128 UTF-8 bytes), ``float``,
    ``int`` in [-256, 1024], ``bool`` and ``None``. ``tag`` is the digest's
    key tag (:data:`~.wire.KEY_TAG`), used when the encoding is longer than
    :data:`~.wire.SHORT_MAX`. When not None, the key is byte for byte the
    general path's.
    """
    n = len(values)
    if n >= PACK_MIN:
        return None
    rest: tuple[Any, ...] = values
    if n and type(values[0]) is str:
        first = values[0]
        prefixes = _call_prefixes[n]
        key = prefixes.get(first)
        if key is None:
            chunk = _str_chunk(first)
            if chunk is None:
                return None
            key = _CALL_HDR[n] + chunk
            _remember(prefixes, first, key)
        if n == 2:
            second = values[1]
            if type(second) is float:  # f(prompt, temperature): no loop
                prefix = key
                key += pack_float(T_FLOAT, second)
                if len(key) <= SHORT_MAX + 1:
                    if first not in STR_FLOAT_PREFIXES:
                        _remember(STR_FLOAT_PREFIXES, first, prefix)
                    return key
                return _digest_short(key, tag)
            rest = (second,)
        else:
            rest = values[1:]
    else:
        key = _CALL_HDR[n]
    for v in rest:
        t = type(v)
        if t is str:
            chunk = _str_chunk(v)
            if chunk is None:
                return None
            key += chunk
        elif t is float:
            key += pack_float(T_FLOAT, v)
        elif t is int:
            b = SMALL_INTS.get(v)
            if b is None:
                return None
            key += b
        elif v is None:
            key += T_NONE
        elif t is bool:
            key += T_TRUE if v else T_FALSE
        else:
            return None
    if len(key) <= SHORT_MAX + 1:
        return key
    return _digest_short(key, tag)


_STR_FLOAT_HDR = _CALL_HDR[2]


def str_float_key(first: str, second: float, tag: bytes) -> bytes | None:
    """:func:`short_call_key` of ``(first, second)`` for an exact ``str`` and an exact ``float``.

    For a caller that found ``first`` missing from :data:`STR_FLOAT_PREFIXES`
    (a new prompt: the miss path): one encode, one ``struct.pack``, no memo
    of the string but that one (filled as ``short_call_key`` fills it). None
    when the general path must key the call (see :func:`_str_chunk`).
    """
    chunk = _short_str(first)
    if chunk is None:
        return None
    prefix = _STR_FLOAT_HDR + chunk
    key = prefix + pack_float(T_FLOAT, second)
    if len(key) <= SHORT_MAX + 1:
        # _remember, written out: this runs on every miss of a new prompt, where a call costs ~2%.
        if len(STR_FLOAT_PREFIXES) >= _STR_CHUNKS_MAX:
            STR_FLOAT_PREFIXES.clear()
        STR_FLOAT_PREFIXES[first] = prefix
        return key
    return _digest_short(key, tag)


def _digest_short(key: bytes, tag: bytes) -> bytes:
    # ``key`` is b"\x00" + an encoding too long for the short form: the digest of the encoding.
    # A slice of a short key is cheaper than a memoryview of it (measured: 0.5x for blake3, 0.45x for xxh3).
    if tag == b"\x01":
        return tag + _blake3.blake3(key[1:]).digest()
    return tag + _xxhash.xxh3_128_digest(key[1:])


def make_call_key(values: tuple[Any, ...], names: tuple[str, ...], algorithm: str = "blake3") -> bytes:
    """Key for one call's argument ``values`` in parameter order.

    Equal to ``make_key(tuple(values), algorithm=algorithm)``; ``names`` only
    serve the error message, which names the offending parameter.
    """
    if algorithm == "blake3":
        tag = b"\x01"
    elif algorithm == "xxh3":
        tag = b"\x02"
    else:
        tag = _check_alg(algorithm)
    if len(values) < PACK_MIN:
        key = short_call_key(values if type(values) is tuple else tuple(values), tag)
        if key is not None:
            return key
    return general_call_key(values, names, algorithm)


def general_call_key(values: tuple[Any, ...], names: tuple[str, ...], algorithm: str = "blake3") -> bytes:
    """:func:`make_call_key` through the general encoder only (for callers that tried :func:`short_call_key`)."""
    tag = _check_alg(algorithm)
    if type(values) is not tuple:
        values = tuple(values)
    out = new_sink(algorithm)
    try:
        enc_tuple(values, out)
    except Unencodable as e:
        path = e.path
        where = None
        if path and path[-1].startswith("[") and path[-1][1:-1].isdigit():
            i = int(path[-1][1:-1])
            where = names[i] if i < len(names) else f"#{i}"
            path = path[:-1]
        raise _error(e, where, path) from None
    except RecursionError:
        return make_key(values, algorithm=algorithm)
    return finish(out, tag)
