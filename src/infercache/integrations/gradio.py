"""Gradio integration: makes ``@ic.cache`` and ``ic.Cache()`` behave like ``gr.cache`` / ``gr.Cache``.

This is the only module of infercache that knows Gradio. It is imported lazily
by :func:`infercache.hooks.active` the first time the core runs while
``gradio`` is imported, and registers a :class:`GradioIntegration` that
cooperates with Gradio's own caching protocol (Gradio 6.x) instead of
patching Gradio:

* **Queue bypass.** Gradio's queue probes every event function that has a
  ``.cache`` attribute before queueing it: it runs the function inside
  ``gradio.caching.ProbeCache()`` and expects ``CacheMissError`` on a miss. The
  decorator asks :meth:`GradioIntegration.probing` and raises
  :meth:`GradioIntegration.miss_error`; a hit is answered right away, marked
  ``used_cache="full"`` (the ``from cache`` badge), without a concurrency slot.
* **Manual hits.** A hit of ``ic.Cache.get`` calls
  ``gradio.caching.mark_manual_cache_hit()`` (the ``used cache`` badge).
* **Sessions.** Per-session caches key by the Gradio session hash of the
  current request; when Gradio's heartbeat for a page ends it calls
  ``gradio.caching.clear_session_caches(session_hash)``, which reaches
  :data:`_SESSION_CLEARER` and drops that session's infercache entries.
* **Recognition.** ``ic.Cache`` instances get :class:`GradioCacheMixin` (a
  ``gr.Cache`` subclass) as an extra base, so Gradio injects them as default
  parameters and connects the heartbeat for per-session ones.
* **Uploaded files.** A path string (or ``pathlib`` path) under Gradio's
  upload cache (``GRADIO_TEMP_DIR``, else ``<system temp>/gradio``) is keyed
  by the file's bytes, not its name (:func:`upload_dirs`,
  :mod:`infercache.keys.files`): with ``gr.Image(type="filepath")`` the same
  picture uploaded again under any name is a hit, and a file changed at the
  same path is a miss.
* **Files.** Outputs naming files (paths, ``FileData``) are kept by content in
  infercache's own temporary directory, so a hit still serves the right bytes
  after the original temporary file was deleted, cleaned or overwritten. In a
  persistent or shared tier they are stored by content (the bytes travel in
  the record) and rematerialized on a hit, after a restart or on another
  replica.
"""

from __future__ import annotations

import atexit
import hashlib
import operator
import os
import pickle
import shutil
import stat as stat_mod
import tempfile
import threading
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path, PurePath
from typing import Any, SupportsIndex

import gradio.caching as gr_caching
from gradio.context import LocalContext
from gradio.data_classes import FileData
from gradio.events import EventData
from gradio.helpers import Progress
from gradio.oauth import OAuthProfile, OAuthToken
from gradio.route_utils import Request

from .. import hooks
from ..keys.files import key_files_under

# --------------------------------------------------------------------------
# Gradio's private names
# --------------------------------------------------------------------------
# Gradio 6.x keeps the state of its caching protocol in module-private names of
# ``gradio.caching``; cooperating with that protocol means using them, so they
# are read here, once, and nowhere else. A Gradio release renaming one fails
# this module's import (and the Gradio tests), not a request.
#
# Read by infercache:
#: WeakSet of per-session stores; ``clear_session_caches(hash)`` calls
#: ``clear_session(hash)`` on each when a page's heartbeat ends.
#: Its members are duck-typed: Gradio calls only their ``clear_session(hash)``.
_GR_PER_SESSION_STORES: weakref.WeakSet[Any] = gr_caching._per_session_stores
#: ContextVar, true while the queue probes an event function for a hit.
_GR_PROBE_MODE = gr_caching._probe_mode_active
#: ContextVar holding the current event's ``{"used": bool}`` badge flag (None outside events).
_GR_MANUAL_CACHE_USED = gr_caching._manual_cache_used
#
# Provided by infercache for Gradio to read: ``gr.Cache._store._per_session``
# (:class:`GradioCacheMixin` and :class:`_StoreView`) and ``_per_session`` on
# the members of the WeakSet above (:class:`_SessionClearer`).

__all__ = [
    "INTEGRATION",
    "MAX_KEPT_FILE_BYTES",
    "GradioCacheMixin",
    "GradioIntegration",
    "KeptFile",
    "key_uploads_by_content",
    "upload_dirs",
]

#: Files larger than this are not copied; their path is kept as-is.
MAX_KEPT_FILE_BYTES = 2 * 1024**3

_MAX_PATH_CHARS = 4096
_MAX_DEPTH = 32
_SEP = os.sep
# Exact types that never name a file: outputs of these types are kept as they are, unlooked at.
_NEVER_FILES: frozenset[type] = frozenset({bytes, int, float, bool, complex, type(None)})
_INJECTED_TYPES: tuple[type, ...] = (
    Progress,
    Request,
    EventData,
    OAuthProfile,
    OAuthToken,
    gr_caching.Cache,
)


# --------------------------------------------------------------------------
# Recognition of ic.Cache as a gr.Cache
# --------------------------------------------------------------------------


class _StoreView:
    """What Gradio reads from ``gr.Cache._store``: only ``_per_session``."""

    __slots__ = ("_owner",)

    def __init__(self, owner: Any) -> None:
        self._owner = owner

    @property
    def _per_session(self) -> bool:
        return bool(getattr(self._owner, "per_session", False))


class GradioCacheMixin(gr_caching.Cache):
    """Extra base of ``ic.Cache`` while Gradio is loaded.

    ``gradio.helpers.special_args`` injects a parameter whose default is a
    ``gr.Cache`` instance, and ``gradio.utils.connect_heartbeat`` connects the
    page heartbeat when such a default has ``_store._per_session``. This mixin
    makes an ``ic.Cache`` pass both checks; its own methods (``get``, ``set``,
    ...) come first in the MRO, so Gradio's implementation is never used.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - never chained
        """Do nothing: ``gr.Cache.__init__`` must not build a second store."""

    @property
    def _store(self) -> _StoreView:  # type: ignore[override]
        """A view exposing ``_per_session`` (mirrors the public ``per_session``)."""
        return _StoreView(self)


# --------------------------------------------------------------------------
# Session clearing (Gradio heartbeat end -> infercache.clear_session)
# --------------------------------------------------------------------------


class _SessionClearer:
    """Registered in Gradio's WeakSet of per-session stores (:data:`_GR_PER_SESSION_STORES`)."""

    _per_session = True

    def clear_session(self, session_hash: str | None = None) -> None:
        """Drop every infercache per-session entry of ``session_hash``."""
        if not session_hash or not isinstance(session_hash, str):
            return
        import infercache

        infercache.clear_session(session_hash)


#: Strong module-level reference: the WeakSet alone would let it die.
_SESSION_CLEARER = _SessionClearer()
_GR_PER_SESSION_STORES.add(_SESSION_CLEARER)


# --------------------------------------------------------------------------
# Uploaded files: keyed by content
# --------------------------------------------------------------------------


def upload_dirs() -> tuple[str, ...]:
    """The directories Gradio saves uploads and preprocessed inputs into (its upload cache).

    ``GRADIO_TEMP_DIR`` when set, else ``<system temp>/gradio``, as
    ``gradio.utils.get_upload_folder`` names it (symbolic links resolved) and as
    ``gradio.route_utils`` spells it (unresolved). Gradio reads the variable
    when an app is built, so it must be set before then.
    """
    env = os.environ.get("GRADIO_TEMP_DIR")
    if env:
        return (env,)
    default = os.path.join(tempfile.gettempdir(), "gradio")
    return (default, str(Path(default).resolve()))


def key_uploads_by_content() -> None:
    """Key every path argument under :func:`upload_dirs` by the file's bytes (see :mod:`infercache.keys.files`).

    Called when this integration loads; call it again if ``GRADIO_TEMP_DIR``
    changed since (before building the app).
    """
    key_files_under(upload_dirs(), owner="gradio")


# --------------------------------------------------------------------------
# File outputs
# --------------------------------------------------------------------------

_files_lock = threading.Lock()
_files_root: Path | None = None
_blobs: weakref.WeakValueDictionary[tuple[str, str], _Blob] = weakref.WeakValueDictionary()

#: Longest file name (in bytes) a kept copy may have: the usual file-system limit.
_MAX_NAME_BYTES = 255


def _root() -> Path:
    """infercache's own directory for kept file copies (created on first use).

    It is under :func:`tempfile.gettempdir`, which Gradio allows an app to
    serve files from, and it is removed when the process exits.
    """
    global _files_root
    with _files_lock:
        if _files_root is None or not _files_root.is_dir():
            _files_root = Path(tempfile.mkdtemp(prefix="infercache-files-"))
            atexit.register(shutil.rmtree, str(_files_root), True)
        return _files_root


def _remove_blob_file(path: str) -> None:
    try:
        os.unlink(path)
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass


class _Blob:
    """One kept copy of a file's bytes, shared by every entry with that content and name.

    The copy is deleted when the last :class:`KeptFile` referring to it is
    gone (its cache entry was evicted, cleared or dropped with its session).
    """

    __slots__ = ("__weakref__", "digest", "path")

    def __init__(self, path: str, digest: str) -> None:
        self.path = path
        self.digest = digest
        weakref.finalize(self, _remove_blob_file, path)


def _fingerprint(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


def _hasher() -> Any:
    """The content digest naming kept copies (one per distinct content and name)."""
    return hashlib.blake2b(digest_size=20)


def _copy_and_hash(src: str, dst_dir: Path) -> tuple[str, str]:
    """Copy ``src`` into ``dst_dir`` under a temporary name; return (digest, staging path)."""
    h = _hasher()
    fd, staging = tempfile.mkstemp(dir=dst_dir, prefix="staging-")
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            while chunk := inp.read(1 << 20):
                h.update(chunk)
                out.write(chunk)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return str(h.hexdigest()), staging


def _write_staging(data: memoryview, dst_dir: Path) -> str:
    """Write ``data`` into ``dst_dir`` under a temporary name; return that path."""
    fd, staging = tempfile.mkstemp(dir=dst_dir, prefix="staging-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return staging


def _live_blob(digest: str, name: str) -> _Blob | None:
    """The kept copy of this content under this name, if this process still holds it (call under the lock)."""
    blob = _blobs.get((digest, name))
    return blob if blob is not None and os.path.isfile(blob.path) else None


def _install(root: Path, staging: str, digest: str, name: str) -> _Blob:
    """Move a staged copy to ``root/<digest>/<name>`` atomically; the existing blob if one is live."""
    with _files_lock:
        blob = _live_blob(digest, name)
        if blob is not None:
            os.unlink(staging)
            return blob
        target_dir = root / digest
        target = str(target_dir / name)
        for attempt in range(2):
            target_dir.mkdir(exist_ok=True)
            try:
                os.replace(staging, target)
                break
            except FileNotFoundError:
                # A finalized blob of the same content under another name may
                # remove the (then empty) digest directory between the two calls.
                if attempt:
                    raise
        blob = _Blob(target, digest)
        _blobs[(digest, name)] = blob
        return blob


def _keep_blob(src: str) -> _Blob:
    root = _root()
    digest, staging = _copy_and_hash(src, root)
    name = os.path.basename(src)
    try:
        _safe_name(name)
    except ValueError:  # e.g. a backslash in a POSIX name: another process would refuse it
        name = "file"
    return _install(root, staging, digest, name)


def _safe_name(name: object) -> str:
    """``name`` when it is a plain file name (no directory part, not ``.``/``..``); else ValueError.

    Names of kept copies come from stored records; the record is
    authenticated, but the name still must not lead out of the blob root.
    """
    if (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or os.path.basename(name) != name
    ):
        raise ValueError(f"a kept file's name must be a plain file name, not {name!r}")
    try:
        size = len(os.fsencode(name))
    except UnicodeError as exc:
        raise ValueError(f"a kept file's name cannot be encoded: {name!r}") from exc
    if size > _MAX_NAME_BYTES:
        raise ValueError(f"a kept file's name is longer than {_MAX_NAME_BYTES} bytes")
    return name


def _blob_from_bytes(data: memoryview, name: str) -> _Blob:
    """The kept copy holding ``data`` under ``name`` in this process's blob root (written if needed)."""
    h = _hasher()
    h.update(data)
    digest = str(h.hexdigest())
    with _files_lock:
        blob = _live_blob(digest, name)
    if blob is not None:
        return blob
    root = _root()
    return _install(root, _write_staging(data, root), digest, name)


class KeptFile:
    """A file output as kept in the cache: the original path plus a private copy.

    On a hit, :meth:`materialize` returns the original path when it still
    holds the same file; re-creates it from the copy when it was deleted (for
    example by Gradio's ``delete_cache``); and returns the private copy when
    the original path now holds other content. The returned value has the
    type the function returned (``str`` or ``Path``).

    A kept file pickles **by content** (for the persistent and shared tiers):
    the record carries the bytes, the original path and the file name, and
    unpickling writes the bytes into this process's blob root (the same
    content and name share one copy). Such a kept file came from another
    process (a replica, or an earlier run): its original path belonged to that
    process, which may delete it at any time, and may lie outside what this
    app may serve, so it is neither returned nor created. A hit serves the
    private copy (same name, same bytes, the type the function returned),
    which Gradio serves like any file under the system's temporary directory.
    """

    __slots__ = ("_abs", "_blob", "_fp", "_lock", "_owned", "original")

    def __init__(
        self,
        original: str | PurePath,
        abs_path: str,
        fp: tuple[int, ...],
        blob: _Blob,
        *,
        owned: bool = True,
    ) -> None:
        self.original = original
        self._abs = abs_path
        self._fp = fp
        self._blob = blob
        #: False when read from a tier: the original path is another process's (see the class docstring).
        self._owned = owned
        self._lock = threading.Lock()

    @property
    def copy_path(self) -> str:
        """Path of infercache's private copy of the bytes."""
        return self._blob.path

    def _as_original_type(self, path: str) -> str | PurePath:
        if isinstance(self.original, PurePath):
            return type(self.original)(path)
        return path

    def materialize(self) -> str | PurePath:
        """The path a hit returns; it exists and holds the kept bytes."""
        if not self._owned:
            return self._as_original_type(self._blob.path)
        with self._lock:
            try:
                st = os.stat(self._abs)
            except OSError:
                st = None
            if st is not None and _fingerprint(st) == self._fp:
                return self.original
            if st is None:
                try:
                    parent = os.path.dirname(self._abs)
                    os.makedirs(parent, exist_ok=True)
                    fd, staging = tempfile.mkstemp(dir=parent, prefix=".infercache-")
                    os.close(fd)
                    shutil.copyfile(self._blob.path, staging)
                    os.replace(staging, self._abs)
                    self._fp = _fingerprint(os.stat(self._abs))
                    return self.original
                except OSError:
                    pass
            return self._as_original_type(self._blob.path)

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        """Pickle by content: the kept bytes (out of band from protocol 5), the original path and the name.

        Raises :class:`pickle.PicklingError` when the private copy is gone
        (the entry then stays in this process's memory only).
        """
        try:
            with open(self._blob.path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise pickle.PicklingError(
                f"the kept copy of the file output {self.original!r} is gone ({exc.strerror}); "
                "it cannot be stored by content"
            ) from exc
        name = os.path.basename(self._blob.path)
        payload: Any = pickle.PickleBuffer(data) if operator.index(protocol) >= 5 else data
        return (_restore_kept_file, (payload, self.original, name))

    # A kept file is immutable from the cache's point of view: copies share it.
    def __copy__(self) -> KeptFile:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> KeptFile:
        return self

    def __repr__(self) -> str:
        return f"KeptFile({self.original!r})"


def _restore_kept_file(data: Any, original: Any, name: Any) -> KeptFile:
    """Unpickle a :class:`KeptFile`: its bytes go into this process's blob root, and nowhere else."""
    if not isinstance(original, (str, PurePath)):
        raise ValueError(f"a kept file's original path must be a str or a path, not {type(original).__name__}")
    with memoryview(data) as view, view.cast("B") as octets:
        blob = _blob_from_bytes(octets, _safe_name(name))
    return KeptFile(original, "", (), blob, owned=False)


def _as_file(value: Any) -> tuple[str, os.stat_result] | None:
    """(absolute path, stat) when ``value`` is a str/Path naming a regular file."""
    if isinstance(value, str):
        if (
            not value
            or len(value) > _MAX_PATH_CHARS
            or "\n" in value
            or "\x00" in value
            or ("." not in value and os.sep not in value)
            or value.startswith(("http://", "https://", "data:"))
        ):
            return None
    elif not isinstance(value, PurePath):
        return None
    try:
        st = os.stat(value)
    except (OSError, ValueError):
        return None
    if not stat_mod.S_ISREG(st.st_mode) or st.st_size > MAX_KEPT_FILE_BYTES:
        return None
    return os.path.abspath(value), st


def _keep(value: Any, depth: int = 0) -> Any:
    """``value`` with every file path replaced by a :class:`KeptFile`.

    Containers holding a file are rebuilt as the same plain container type;
    ``value`` itself is returned (same object) when it names no file.
    """
    if depth > _MAX_DEPTH or type(value) in _NEVER_FILES:
        return value
    if isinstance(value, (str, PurePath)):
        if _as_file(value) is None:
            return value
        abs_path = os.path.abspath(value)
        try:
            blob = _keep_blob(abs_path)
            st = os.stat(abs_path)
        except OSError:
            return value
        return KeptFile(value, abs_path, _fingerprint(st), blob)
    if isinstance(value, FileData):
        kept = _keep(value.path, depth + 1)
        return value if kept is value.path else value.model_copy(update={"path": kept})
    if isinstance(value, (list, tuple)):
        items = [_keep(v, depth + 1) for v in value]
        if all(a is b for a, b in zip(items, value)):
            return value
        return _rebuild(value, items)
    if isinstance(value, dict):
        changed = {}
        for k, v in value.items():
            kv = _keep(v, depth + 1)
            if kv is not v:
                changed[k] = kv
        if not changed:
            return value
        out = dict(value)
        out.update(changed)
        return out
    return value


def _rebuild(original: list[Any] | tuple[Any, ...], items: list[Any]) -> list[Any] | tuple[Any, ...]:
    """A container like ``original`` (list, tuple or namedtuple) holding ``items``."""
    if isinstance(original, list):
        return items
    if type(original) is not tuple and hasattr(original, "_fields"):
        return type(original)(*items)
    return tuple(items)


def _materialize(value: Any, depth: int = 0) -> Any:
    """``value`` with every :class:`KeptFile` replaced by an existing path."""
    if isinstance(value, KeptFile):
        return value.materialize()
    if depth > _MAX_DEPTH:
        return value
    if isinstance(value, FileData):
        if isinstance(value.path, KeptFile):
            return value.model_copy(update={"path": str(value.path.materialize())})
        return value
    if isinstance(value, (list, tuple)):
        items = [_materialize(v, depth + 1) for v in value]
        if all(a is b for a, b in zip(items, value)):
            return value
        return _rebuild(value, items)
    if isinstance(value, dict):
        for k, v in list(value.items()):
            mv = _materialize(v, depth + 1)
            if mv is not v:
                value[k] = mv  # released values belong to the caller
        return value
    return value


class _WithFiles:
    """Marks a kept output that holds :class:`KeptFile` leaves.

    Outputs without files are kept untouched (and cost nothing on a hit);
    this marker tells :meth:`GradioIntegration.load_output` to walk the rest.
    The core deep-copies it (an unknown type), which copies every container
    and value inside while sharing the immutable :class:`KeptFile` leaves.
    It pickles as a plain object; its :class:`KeptFile` leaves (also inside
    ``FileData``) pickle by content, so the whole output reaches the
    persistent and shared tiers.
    """

    def __init__(self, value: Any) -> None:
        self.value = value


# --------------------------------------------------------------------------
# The integration
# --------------------------------------------------------------------------


class GradioIntegration(hooks.Integration):
    """How infercache's core cooperates with Gradio 6.x (see the module docstring)."""

    name = "gradio"

    def session_id(self) -> str | None:
        """Gradio's session hash of the request being served, if any."""
        request = LocalContext.request.get(None)
        if isinstance(request, list):  # batched events carry one request per item
            request = request[0] if request else None
        session_hash = getattr(request, "session_hash", None)
        return session_hash if isinstance(session_hash, str) and session_hash else None

    def probing(self) -> bool:
        """True while Gradio's queue probes for a hit (``gradio.caching.ProbeCache``)."""
        return bool(_GR_PROBE_MODE.get())

    def miss_error(self) -> BaseException:
        """The error Gradio's queue catches to fall back to the queued path."""
        return gr_caching.CacheMissError()

    def manual_hit(self) -> None:
        """Show Gradio's ``used cache`` badge for the current event."""
        gr_caching.mark_manual_cache_hit()

    def hit_hook(self) -> Callable[[], None]:
        """Hits of cached helpers inside an event show Gradio's ``used cache`` badge, as gr.cache's do."""
        return _mark_hit

    def hit_event(self) -> ContextVar[Any]:
        """Gradio's badge holder: None outside an event, so a hit there skips :func:`_mark_hit`."""
        return _GR_MANUAL_CACHE_USED

    def injected_types(self) -> tuple[type, ...]:
        """Types of the values Gradio injects into event functions (left out of cache keys)."""
        return _INJECTED_TYPES

    def store_output(self, value: Any) -> Any:
        """Keep file outputs by content (see :class:`KeptFile`)."""
        t = type(value)
        if t is str:
            if "." not in value and _SEP not in value:
                return value  # cannot name a file (what _as_file checks first, without a stat)
        elif t in _NEVER_FILES:
            return value
        kept = _keep(value)
        return value if kept is value else _WithFiles(kept)

    def load_output(self, value: Any) -> Any:
        """Turn kept file outputs back into existing paths."""
        if type(value) is _WithFiles:
            return _materialize(value.value)
        return value

    def cache_bases(self) -> tuple[type, ...]:
        """Make ``ic.Cache`` a ``gr.Cache`` for Gradio's injection and heartbeat checks."""
        return (GradioCacheMixin,)


def _mark_hit() -> None:
    # Outside an event there is no holder: one ContextVar read. The queue's probe
    # reports its own hits as "from cache", so it must not mark "used cache" too.
    holder = _GR_MANUAL_CACHE_USED.get()
    if holder is not None and not _GR_PROBE_MODE.get():
        holder["used"] = True


#: The registered instance.
INTEGRATION = GradioIntegration()
key_uploads_by_content()
hooks.register(INTEGRATION)
