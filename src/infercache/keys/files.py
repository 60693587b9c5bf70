"""Files named by a path string, keyed by their content.

A framework that hands functions the paths of files it saved (Gradio's upload
cache: ``gr.Image(type="filepath")``, ``gr.File``, ``gr.Audio(type="filepath")``
...) names the directories it saves into with :func:`key_files_under`. From
then on a ``str`` (or a ``pathlib`` path, whose content is its string) that
starts with one of those directories and names a regular file is keyed by the
file's bytes instead of its characters: the same bytes under any name are one
key, and a file changed in place is a new key. The file name is not part of
the key.

Anything else is keyed as the string it is: strings outside those
directories (decided on the characters, without a filesystem call), and
paths inside them naming no regular file (missing, a directory, a FIFO, or
unreadable), so a function given a missing file still raises as usual and
the error is not cached.

The check costs nothing for the short-string memo of
:func:`~infercache.keys.api.make_call_key` (a path in those directories is
never memoized) and one ``str.startswith`` per other string once a framework
has named directories; none before.

Encoding: :data:`~infercache.keys.wire.T_FILE`, the size as a varint and the
digest of the bytes with the key's own algorithm (BLAKE3-256 or XXH3-128),
read in chunks, never whole into memory. A key holding a file is always a
digest (short keys never embed digests).
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Iterable

from .wire import T_FILE, Sink, new_hasher, varint

__all__ = ["enc_file", "key_files_under", "keyed_dirs"]

_CHUNK = 1 << 20


def key_files_under(dirs: Iterable[str], *, owner: str = "") -> None:
    """Key by content every file named by a path string under one of ``dirs``.

    ``dirs`` replaces the directories ``owner`` named before, and only those:
    what each owner (a framework integration, a program) names is kept apart,
    and the keyed directories are all owners' together, so one party naming
    its directories never stops another's files from being keyed by content.
    Each directory is taken as given, absolute, and with symbolic links
    resolved, so each spelling a framework may hand out matches. An empty
    iterable withdraws ``owner``'s directories.
    """
    from . import api, encoder

    prefixes: set[str] = set()
    for d in dirs:
        for form in (d, os.path.abspath(d), os.path.realpath(d)):
            form = form.rstrip(os.sep)
            if form:
                prefixes.add(form + os.sep)
    if prefixes:
        _owners[owner] = frozenset(prefixes)
    else:
        _owners.pop(owner, None)
    ordered = tuple(sorted(set().union(*_owners.values())))
    # The exact tuple first: a string matching the common start is then checked against it.
    encoder.file_prefixes = ordered
    encoder.file_prefix = os.path.commonprefix(ordered) if ordered else ""  # noqa: RUF071 - a string prefix
    # A string memoized as characters before may now name a keyed file.
    api.forget_str_chunks()


#: The directory prefixes each owner named (see :func:`key_files_under`).
_owners: dict[str, frozenset[str]] = {}


def keyed_dirs() -> tuple[str, ...]:
    """The directory prefixes (each ending with the path separator) whose files are keyed by content."""
    from . import encoder

    return encoder.file_prefixes


def enc_file(path: str, out: Sink) -> bool:
    """Write the content key of the regular file ``path`` names into ``out``; False (nothing written) if none.

    Follows symbolic links (the key is of what a reader of ``path`` gets).
    The file is read in 1 MiB chunks into a hasher of ``out``'s algorithm.
    False also for a path under none of the keyed directories (the caller
    may have matched only their common start).
    """
    from .encoder import file_prefixes

    if not (file_prefixes and path.startswith(file_prefixes)):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError):
        return False
    try:
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode):
            return False
        h = new_hasher(out.alg)
        size = 0
        buf = bytearray(min(st.st_size, _CHUNK) or 1)
        view = memoryview(buf)
        with open(fd, "rb", buffering=0, closefd=False) as f:
            while n := f.readinto(buf):
                h.update(view[:n])
                size += n
    except OSError:
        return False
    finally:
        os.close(fd)
    out += T_FILE + varint(size)
    out += h.digest()
    if out.hasher is None:
        out.hasher = new_hasher(out.alg)
    return True
