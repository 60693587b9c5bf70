"""A tier in a directory: survives restarts and is shared by every process on the machine.

Layout of the directory::

    <path>/index.sqlite3        the index: one row per entry (SQLite, WAL mode)
    <path>/index.sqlite3-wal    SQLite's write-ahead log (and -shm, its index)
    <path>/data/<token>         one file per large record
    <path>/data/<token>.tmp     a large record being written (never read)
    <path>/locks/<hash>         one lock file per entry being computed (see :meth:`DiskTier.lease`)

Each row holds the entry's name, its size in bytes, its expiry and last
access (seconds of ``clock``, the wall clock by default, since processes and
restarts must agree on it), and either the record itself (records up to
``inline_max`` bytes, 64 KiB by default) or the name of its file.

Why SQLite and files, not a format of our own: SQLite gives atomic,
crash-safe, multi-process transactions and a busy-wait between writers for
free, and ships with Python; small records read from its pages cost one
indexed lookup. Large records (images, arrays) are cheaper as plain files:
no copy through the database's pages and the WAL, and they do not bloat the
database. A file gets a fresh random name per write, so a writer never
touches a file a reader may be reading, and overwriting an entry never
exposes half of a new record under the old row.

Writes of a large record go: write ``<token>.tmp``, fsync it, rename it to
``<token>``, fsync the directory, and only then commit the row (``BEGIN
IMMEDIATE``, so concurrent writers queue on SQLite's lock with a busy
timeout instead of failing). What a crash leaves:

- killed before the commit: no row, so no entry (the old record, if any,
  stays); at worst an orphan file, removed by :meth:`DiskTier.sweep`;
- killed after the commit: the complete new entry (the file was durable
  before the row existed); the replaced file may stay as an orphan;
- power loss: SQLite runs ``synchronous=NORMAL`` in WAL mode, so the last
  commits may be lost, but the database stays consistent and every row
  that survives points at a complete file.

Not guaranteed: that a record read back is the one written (a disk may rot,
another program may write into the directory); the records are
authenticated by :mod:`infercache.codec`, which turns such a record into a
miss. A file that went missing or has the wrong size is a miss here.

``max_bytes`` bounds the sum of the records' sizes (the index's own overhead
is not counted). Every write that goes over it first drops expired entries,
then the least recently used ones, whichever process used them: the last
access lives in the shared index. A read updates it at most once per
``touch_every`` seconds per entry, so a hit is usually a pure read and the
order is exact to within that interval. The running total is kept by
triggers in the same transactions, so the budget check never scans.

Failures (an unreadable or corrupt database, a full disk) raise
:class:`~infercache.errors.TierError` or ``OSError`` from the verbs; the
engine treats them as a miss. A directory or database deleted while the
tier is open is noticed on the next verb (one ``stat`` of the database per
verb) and recreated empty; what other processes still had open on the
deleted database is lost, but no entry is ever half there.

A database that exists but is not readable as one (overwritten, truncated)
is not repaired: every verb raises TierError until it is deleted, after
which it is recreated.

Cross-process single-flight (:meth:`DiskTier.lease`) is an OS file lock
(``flock``) on ``locks/<hash of the name>``: the kernel drops it when its
holder exits or is killed, so a dead holder never blocks the others and no
expiry is needed. Lock files are empty and may be left behind;
:meth:`DiskTier.sweep` removes the old unlocked ones.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import blake3

from ..errors import TierError
from .base import Lease, Tier

if sys.platform != "win32":
    import fcntl

__all__ = ["INDEX_FILE", "DiskTier"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    name    BLOB PRIMARY KEY,
    size    INTEGER NOT NULL,
    expires REAL,
    atime   REAL NOT NULL,
    value   BLOB,
    file    TEXT
);
CREATE INDEX IF NOT EXISTS entries_atime ON entries (atime);
CREATE INDEX IF NOT EXISTS entries_expires ON entries (expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY CHECK (id = 0), bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO totals (id, bytes) VALUES (0, 0);
CREATE TRIGGER IF NOT EXISTS entries_insert AFTER INSERT ON entries
    BEGIN UPDATE totals SET bytes = bytes + NEW.size WHERE id = 0; END;
CREATE TRIGGER IF NOT EXISTS entries_delete AFTER DELETE ON entries
    BEGIN UPDATE totals SET bytes = bytes - OLD.size WHERE id = 0; END;
CREATE TRIGGER IF NOT EXISTS entries_update AFTER UPDATE OF size ON entries
    BEGIN UPDATE totals SET bytes = bytes - OLD.size + NEW.size WHERE id = 0; END;
"""

INDEX_FILE = "index.sqlite3"
"""The index database's file name inside a disk tier's directory (tools look for it)."""
_DATA = "data"
_LOCKS = "locks"
_TMP = ".tmp"
_SELECT_FROM = "SELECT file FROM entries WHERE name >= ?"
_DELETE_FROM = "DELETE FROM entries WHERE name >= ?"
_SELECT_RANGE = "SELECT file FROM entries WHERE name >= ? AND name < ?"
_DELETE_RANGE = "DELETE FROM entries WHERE name >= ? AND name < ?"
#: (first page, next pages) of a listing of live rows, without and with an upper bound on the name.
_LIST_FROM = (
    "SELECT name, size FROM entries WHERE name >= ?"
    " AND (expires IS NULL OR expires > ?) ORDER BY name LIMIT ?",
    "SELECT name, size FROM entries WHERE name > ?"
    " AND (expires IS NULL OR expires > ?) ORDER BY name LIMIT ?",
)
_LIST_RANGE = (
    "SELECT name, size FROM entries WHERE name >= ? AND name < ?"
    " AND (expires IS NULL OR expires > ?) ORDER BY name LIMIT ?",
    "SELECT name, size FROM entries WHERE name > ? AND name < ?"
    " AND (expires IS NULL OR expires > ?) ORDER BY name LIMIT ?",
)
#: Rows per query when listing entries (bounds memory; no read transaction spans the iteration).
_LIST_BATCH = 512
#: Rows evicted per query while over budget.
_EVICT_BATCH = 64


def _after(prefix: bytes) -> bytes | None:
    """The smallest name greater than every name starting with ``prefix`` (None: no bound)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def _lock_file_name(name: bytes) -> str:
    """The lock file of entry ``name``: 128 bits of its BLAKE3 hash in hex (names may be long or hold any byte)."""
    return blake3.blake3(name).hexdigest()[:32]


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (it may have been unlinked, or unlinked and recreated)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    fst = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


class _FileLease(Lease):
    """A held ``flock`` on one lock file; :meth:`release` unlocks and closes it.

    Dropping the object without releasing it releases it too (the lock
    belongs to the open file description, which dies with the descriptor).
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._mutex = threading.Lock()

    def release(self) -> None:
        with self._mutex:
            fd, self._fd = self._fd, -1
        if fd < 0:
            return
        if sys.platform != "win32":
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            os.close(fd)

    def __del__(self) -> None:
        self.release()


class _Local(threading.local):
    """This thread's connection and the database generation it was opened for."""

    conn: sqlite3.Connection | None = None
    generation: int = -1


class DiskTier(Tier):
    """Records in a directory: an SQLite index with small records inline, large ones in files.

    Args:
        path: the directory (created if missing); processes that pass the
            same directory share the records.
        max_bytes: bound on the sum of the records' sizes; None: unbounded.
        inline_max: records up to this many bytes live in the database,
            larger ones in files.
        touch_every: a read refreshes an entry's last access (its place in
            the eviction order) only if it is older than this many seconds.
        busy_timeout: seconds a writer waits for another process's write.
        clock: seconds, shared by every process using the directory (expiry
            and access times are stored); the wall clock by default.
    """

    name = "disk"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int | None = None,
        inline_max: int = 64 * 1024,
        touch_every: float = 1.0,
        busy_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"max_bytes must be None or >= 0, got {max_bytes!r}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.inline_max = inline_max
        self.touch_every = touch_every
        self.busy_timeout = busy_timeout
        self._clock = clock
        self._db = self.path / INDEX_FILE
        self._data = self.path / _DATA
        self._locks = self.path / _LOCKS
        self._local = _Local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._generation = 0
        self._identity: tuple[int, int] | None = None
        self._closed = False
        # A directory that cannot be opened now (unwritable, a corrupt database) is not an error
        # here: every verb retries and raises until it can, so a cache using it fails open.
        with contextlib.suppress(TierError, OSError), self._errors():
            self._open()

    # -- connections ---------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn SQLite's exceptions into TierError (OSError passes as is)."""
        try:
            yield
        except sqlite3.Error as e:
            raise TierError(f"disk tier at {self.path}: {e}") from e

    def _open(self) -> None:
        """Create the directory and schema if missing; note the database's identity."""
        self._data.mkdir(parents=True, exist_ok=True)
        self._locks.mkdir(exist_ok=True)
        if not self._db.exists():
            # A log left by a deleted database would be replayed into the new one.
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._db.with_name(INDEX_FILE + suffix))
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._create_schema(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.close()
        st = os.stat(self._db)
        self._identity = (st.st_dev, st.st_ino)

    @staticmethod
    def _create_schema(conn: sqlite3.Connection) -> None:
        # executescript() would commit the open transaction; run statement by statement.
        for statement in _SCHEMA.split(";\n"):
            if statement.strip():
                conn.execute(statement)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._db, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, reopened (and the directory recreated) if the database was replaced."""
        if self._closed:
            raise TierError(f"disk tier at {self.path} is closed")
        try:
            st = os.stat(self._db)
            same = (st.st_dev, st.st_ino) == self._identity
        except FileNotFoundError:
            same = False
        if not same:
            with self._lock:
                try:
                    st = os.stat(self._db)
                    same = (st.st_dev, st.st_ino) == self._identity
                except FileNotFoundError:
                    same = False
                if not same:
                    self._open()
                    self._generation += 1
        local = self._local
        if local.conn is None or local.generation != self._generation:
            conn = self._connect()
            with self._lock:
                if local.conn is not None:
                    with contextlib.suppress(ValueError):
                        self._connections.remove(local.conn)
                    local.conn.close()
                self._connections.append(conn)
            local.conn, local.generation = conn, self._generation
        return local.conn

    # -- files ---------------------------------------------------------------

    def _write_file(self, record: bytes) -> str:
        """Write ``record`` to a fresh file, durably, and return its name."""
        token = secrets.token_hex(16)
        final = self._data / token
        temp = self._data / (token + _TMP)
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileNotFoundError:  # data/ alone was deleted: the rows pointing into it are misses already
            self._data.mkdir(parents=True, exist_ok=True)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(record)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        self._sync_dir()
        return token

    def _sync_dir(self) -> None:
        """Make the rename durable before a row points at the file (POSIX only)."""
        if os.name != "posix":
            return
        fd = os.open(self._data, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _read_file(self, token: str, size: int) -> bytes | None:
        try:
            with open(self._data / token, "rb") as f:
                data = f.read(size + 1)
        except FileNotFoundError:
            return None  # replaced or cleared by another process since the row was read
        return data if len(data) == size else None

    def _unlink(self, tokens: list[str]) -> None:
        for token in tokens:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._data / token)

    # -- verbs ---------------------------------------------------------------

    def get(self, name: bytes) -> bytes | None:
        with self._errors():
            conn = self._conn()
            row = conn.execute(
                "SELECT size, expires, atime, value, file FROM entries WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                return None
            size, expires, atime, value, file = row
            now = self._clock()
            if expires is not None and expires <= now:
                self._delete_expired(conn, name, now)
                return None
            if now - atime >= self.touch_every:
                conn.execute("UPDATE entries SET atime = ? WHERE name = ? AND atime < ?", (now, name, now))
        if file is None:
            return bytes(value)
        return self._read_file(file, size)

    def _delete_expired(self, conn: sqlite3.Connection, name: bytes, now: float) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT file FROM entries WHERE name = ? AND expires <= ?", (name, now)
            ).fetchone()
            if row is not None:
                conn.execute("DELETE FROM entries WHERE name = ?", (name,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if row is not None and row[0] is not None:
            self._unlink([row[0]])

    def set(self, name: bytes, record: bytes, ttl: float | None = None) -> None:
        size = len(record)
        if self.max_bytes is not None and size > self.max_bytes:
            self.delete(name)  # never storable; an older record must not outlive this write
            return
        with self._errors():
            conn = self._conn()
            token = self._write_file(record) if size > self.inline_max else None
            doomed: list[str] = []
            try:
                now = self._clock()
                expires = None if ttl is None else now + ttl
                conn.execute("BEGIN IMMEDIATE")
                try:
                    old = conn.execute("SELECT file FROM entries WHERE name = ?", (name,)).fetchone()
                    if old is not None and old[0] is not None:
                        doomed.append(old[0])
                    conn.execute(
                        "INSERT OR REPLACE INTO entries (name, size, expires, atime, value, file)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (name, size, expires, now, None if token else bytes(record), token),
                    )
                    if self.max_bytes is not None:
                        doomed += self._evict(conn, self.max_bytes, now, keep=name)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except BaseException:
                if token is not None:
                    self._unlink([token])
                raise
        self._unlink(doomed)

    def _evict(self, conn: sqlite3.Connection, budget: int, now: float, keep: bytes) -> list[str]:
        """Inside a write transaction: drop expired, then least recently used rows, until within ``budget``.

        Returns the files of the dropped rows, to unlink after the commit.
        """
        total = self._total(conn)
        if total <= budget:
            return []
        files: list[str] = []
        expired = conn.execute(
            "SELECT name, file FROM entries WHERE expires IS NOT NULL AND expires <= ?", (now,)
        ).fetchall()
        for row_name, file in expired:
            conn.execute("DELETE FROM entries WHERE name = ?", (row_name,))
            if file is not None:
                files.append(file)
        total = self._total(conn)
        while total > budget:
            batch = conn.execute(
                "SELECT name, size, file FROM entries WHERE name != ? ORDER BY atime LIMIT ?",
                (keep, _EVICT_BATCH),
            ).fetchall()
            if not batch:
                break
            for row_name, size, file in batch:
                conn.execute("DELETE FROM entries WHERE name = ?", (row_name,))
                if file is not None:
                    files.append(file)
                total -= size
                if total <= budget:
                    break
        return files

    @staticmethod
    def _total(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT bytes FROM totals WHERE id = 0").fetchone()
        return int(row[0]) if row is not None else 0

    def delete(self, name: bytes) -> bool:
        with self._errors():
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT file FROM entries WHERE name = ?", (name,)).fetchone()
                if row is not None:
                    conn.execute("DELETE FROM entries WHERE name = ?", (name,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        if row is None:
            return False
        if row[0] is not None:
            self._unlink([row[0]])
        return True

    def clear(self, prefix: bytes = b"") -> int:
        # A range on the name, not LIKE: names may contain % and _, and BLOBs compare bytewise.
        upper = _after(prefix)
        if upper is None:
            select, delete = _SELECT_FROM, _DELETE_FROM
            params: tuple[bytes, ...] = (prefix,)
        else:
            select, delete = _SELECT_RANGE, _DELETE_RANGE
            params = (prefix, upper)
        with self._errors():
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = conn.execute(select, params).fetchall()
                conn.execute(delete, params)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._unlink([file for (file,) in rows if file is not None])
        return len(rows)

    def entries(self, prefix: bytes = b"") -> Iterator[tuple[bytes, int]]:
        """``(name, size)`` of each unexpired record whose name starts with ``prefix``, in name order.

        Read from the index alone: no record is opened. Rows come in pages,
        each its own query, so a long listing keeps no read transaction open
        (one would stop SQLite from checkpointing its log while the caller
        works) and holds at most one page in memory; a page sees what other
        processes wrote before it was read.
        """
        upper = _after(prefix)
        sql, sql_next = _LIST_FROM if upper is None else _LIST_RANGE
        lower = prefix
        now = self._clock()
        while True:
            params: tuple[bytes | float | int, ...] = (lower,) if upper is None else (lower, upper)
            with self._errors():
                rows = self._conn().execute(sql, (*params, now, _LIST_BATCH)).fetchall()
            for name, size in rows:
                yield bytes(name), int(size)
            if len(rows) < _LIST_BATCH:
                return
            sql, lower = sql_next, bytes(rows[-1][0])

    # -- cross-process leases ------------------------------------------------

    def lease(self, name: bytes, ttl: float) -> Lease | None:
        """Take the right to compute ``name`` across processes: an exclusive OS file lock, or None if held.

        The lock is ``flock(LOCK_EX | LOCK_NB)`` on ``locks/<hash of name>``
        (created if missing). It never waits: a refused caller waits for the
        entry itself. It belongs to the open file, so another thread of this
        process asking for the same name is refused too, and the OS drops it
        when its holder's process ends in any way (SIGKILL included), so
        ``ttl`` is not needed and not used: nothing expires, a dead holder
        frees the name at once.

        Limits: on Windows (no ``flock``) the base :class:`Lease` is returned,
        always granted (processes are not coordinated; each computes). On
        NFS, Linux emulates ``flock`` with POSIX record locks, which belong
        to a process: threads of one process are then not excluded. A child
        forked (not exec'd) while a lease is held shares it until both
        release or exit.
        """
        if sys.platform == "win32":
            return Lease()
        if self._closed:
            raise TierError(f"disk tier at {self.path} is closed")
        path = self._locks / _lock_file_name(name)
        while True:
            fd = self._open_lock_file(path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            except BaseException:
                os.close(fd)
                raise
            try:
                live = _same_file(fd, path)
            except BaseException:
                os.close(fd)
                raise
            if live:
                return _FileLease(fd)
            # sweep() unlinked the file between our open and our lock: this lock is on a
            # file no other process can find any more, so it excludes nobody. Start over.
            os.close(fd)

    def _open_lock_file(self, path: Path) -> int:
        flags = os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            return os.open(path, flags, 0o600)
        except FileNotFoundError:  # the directory was deleted under the tier
            self._locks.mkdir(parents=True, exist_ok=True)
            return os.open(path, flags, 0o600)

    def _sweep_locks(self, cutoff: float) -> int:
        """Unlink lock files older than ``cutoff`` that no process holds; how many."""
        if sys.platform == "win32":
            return 0
        removed = 0
        try:
            listing = os.scandir(self._locks)
        except FileNotFoundError:
            return 0
        with listing:
            for entry in listing:
                try:
                    if not entry.is_file(follow_symlinks=False) or entry.stat().st_mtime >= cutoff:
                        continue
                    fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
                except FileNotFoundError:
                    continue
                try:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # its holder is computing
                    # Locked, and the path still names this file: nobody holds it, and whoever
                    # opened it before the unlink finds the path changed after locking and
                    # starts over (see lease). Unlinked while locked, closed after.
                    if _same_file(fd, Path(entry.path)):
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    continue
                finally:
                    os.close(fd)
        return removed

    # -- upkeep --------------------------------------------------------------

    def sweep(self, older_than: float = 3600.0) -> int:
        """Remove leftover files older than ``older_than`` seconds; how many.

        Two kinds: record files no row points at (left by crashes), where the
        age guard keeps a file another process is writing, or has written but
        not yet committed, from being removed under it; and lock files no
        process holds (leases leave them behind; a held one is never removed).
        """
        with self._errors():
            conn = self._conn()
            known = {f for (f,) in conn.execute("SELECT file FROM entries WHERE file IS NOT NULL")}
        cutoff = time.time() - older_than
        removed = 0
        for entry in os.scandir(self._data):
            token = entry.name.removesuffix(_TMP)
            if token in known and not entry.name.endswith(_TMP):
                continue
            try:
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed + self._sweep_locks(cutoff)

    def size(self) -> int:
        """Sum of the stored records' sizes, in bytes (expired ones not yet removed included)."""
        with self._errors():
            return self._total(self._conn())

    def __len__(self) -> int:
        with self._errors():
            row = self._conn().execute("SELECT count(*) FROM entries").fetchone()
            return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for conn in self._connections:
                conn.close()
            self._connections.clear()
