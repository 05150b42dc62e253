"""The SQLite store of the journal: :class:`SQLiteJournal`, the embedded default.

One file in WAL mode. :class:`SQLiteJournal` keeps one ``sqlite3`` connection, touched only
through ``anyio.to_thread.run_sync`` under a ``CapacityLimiter(1)`` so calls never overlap and the
event loop never blocks, and one background writer task that drains a queue of operations and
commits each drained batch in one transaction (group commit).
"""

from __future__ import annotations

import collections
import contextlib
import errno
import json
import logging
import operator
import os
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self

import anyio
import anyio.abc

from .. import _convert
from .._version import __version__
from ..exceptions import JournalError
from ._protocol import _EMPTY_OBJECT, DEFAULT_ENDPOINT, JournalEntry, JournalStats

__all__ = ["DEFAULT_MAX_BATCH", "SCHEMA_VERSION", "SQLiteJournal"]

logger = logging.getLogger(__name__)

#: The layout this version writes (``PRAGMA user_version``). A journal with a higher number was
#: written by a newer vidu-async and is refused rather than misread.
#:
#: 1. vidu-async 0.1.0.
#: 2. Each item's endpoint (the task kind, ``reference2video``...). A schema-1 journal is upgraded
#:    in place when opened: its rows were all ``reference2video``, the column's default.
SCHEMA_VERSION: Final = 2

# "VIDU" in ASCII, stored in the header's application id so that a stranger's SQLite file is told
# apart from a journal (``file`` and ``sqlite3`` show it too).
_APPLICATION_ID: Final = 0x56494455

#: How many queued operations one transaction takes at most (a few thousand rows keep a
#: transaction short enough that ``record_intent`` waiters are never held long).
DEFAULT_MAX_BATCH: Final = 4096

_SCHEMA: Final = """
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE items (
    key          TEXT PRIMARY KEY,
    idx          INTEGER NOT NULL,
    request      TEXT NOT NULL,            -- JSON, Vidu's request shape
    request_hash TEXT NOT NULL,            -- '' for items finished without an intent (invalid input)
    fingerprint  TEXT NOT NULL,
    task_id      TEXT,
    state        TEXT NOT NULL,
    credits      INTEGER,
    err_code     TEXT NOT NULL DEFAULT '',
    task         TEXT,                     -- JSON of the final task, when there is one
    error        TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    files        TEXT NOT NULL DEFAULT '[]',  -- JSON array of paths
    finished     INTEGER NOT NULL DEFAULT 0,
    created_at   REAL NOT NULL,            -- Unix time, seconds
    updated_at   REAL NOT NULL,
    endpoint     TEXT NOT NULL DEFAULT 'reference2video'  -- last, where schema 1's upgrade adds it
);
-- Only the key is indexed: a resume reads every row, and every write finds its row by key.
-- An index on the task id or the state would cost each write for a query nothing makes.
"""

# Schema 1 to 2, in the transaction that sets the new user_version. Adding a column with a
# constant default rewrites no row, so a journal of any size is upgraded at once.
_UPGRADE_TO_2: Final = "ALTER TABLE items ADD COLUMN endpoint TEXT NOT NULL DEFAULT 'reference2video'"

_COLUMNS: Final = (
    "key, idx, request, request_hash, fingerprint, task_id, state, credits, err_code, task, error,"
    " attempts, files, finished, created_at, updated_at, endpoint"
)

# Positional parameters throughout: binding tuples is markedly cheaper than binding dicts, and
# the writer binds a few hundred thousand of them per 100k items.

# A re-intent of a known key is a new submission attempt of the same request: everything the
# previous attempt learned is cleared. The WHERE clause refuses a different request under the
# same key (the upsert then changes no row, which the writer reports).
_SQL_INTENT: Final = """
INSERT INTO items (key, idx, request, request_hash, fingerprint, endpoint, task_id, state, credits,
                   err_code, task, error, attempts, files, finished, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, 'intent', NULL, '', NULL, NULL, 1, '[]', 0, ?7, ?7)
ON CONFLICT (key) DO UPDATE SET
    idx = excluded.idx, request = excluded.request, request_hash = excluded.request_hash,
    fingerprint = excluded.fingerprint, endpoint = excluded.endpoint, task_id = NULL,
    state = 'intent', credits = NULL, err_code = '', task = NULL, error = NULL,
    attempts = items.attempts + 1, files = '[]', finished = 0, updated_at = excluded.updated_at
WHERE items.request_hash = excluded.request_hash OR items.request_hash = ''
"""

# A late "submitted" must not reopen a finished item, hence the CASE.
_SQL_SUBMITTED: Final = """
UPDATE items SET task_id = ?1, credits = COALESCE(?2, credits),
    state = CASE WHEN finished THEN state ELSE 'submitted' END, updated_at = ?3
WHERE key = ?4
"""

# A rename never overwrites: a key that has a row keeps it (the old row then stays as it was).
_SQL_RENAME: Final = """
UPDATE items SET key = ?1, updated_at = ?2
WHERE key = ?3 AND NOT EXISTS (SELECT 1 FROM items WHERE key = ?1)
"""

# Back to "intent" (the POST may or may not have been sent): see SQLiteJournal.forget_unfinished_tasks.
_SQL_FORGOTTEN: Final = "SELECT task_id FROM items WHERE finished = 0 AND task_id IS NOT NULL"
_SQL_FORGET: Final = """
UPDATE items SET task_id = NULL, state = 'intent', credits = NULL, updated_at = ?1
WHERE finished = 0 AND (task_id IS NOT NULL OR state != 'intent')
"""

# A result normally finishes an existing row: a plain UPDATE (an upsert's failed insert first
# costs about as much again).
_SQL_RESULT_UPDATE: Final = """
UPDATE items SET state = ?4, credits = COALESCE(?5, credits), err_code = ?6, task = ?7, error = ?8,
    attempts = COALESCE(?9, attempts), files = ?10, finished = 1, updated_at = ?12
WHERE key = ?1
"""

# An item can also finish without an intent (a request that failed validation never reaches a
# POST): then the result creates its row, with an empty request hash meaning "not yet known".
# Same parameters as the UPDATE, so one tuple serves both: the endpoint (?11) is only the
# INSERT's, and the UPDATE's last number (?12) makes sqlite3 take the whole tuple there too.
_SQL_RESULT_INSERT: Final = """
INSERT OR IGNORE INTO items (key, idx, request, request_hash, fingerprint, endpoint, task_id, state,
                             credits, err_code, task, error, attempts, files, finished, created_at,
                             updated_at)
VALUES (?1, ?2, ?3, '', '', ?11, NULL, ?4, ?5, ?6, ?7, ?8, COALESCE(?9, 0), ?10, 1, ?12, ?12)
"""

_INPUT_META: Final = "input_id"
_EMPTY_ARRAY: Final = "[]"


# Compact and faithful (see _convert.dumps): NaN is refused at the caller rather than written
# and unreadable later.
_dumps: Final = _convert.dumps


def _dumps_strings(values: list[str]) -> str:
    """A JSON array of strings (file paths), equal to ``_dumps(values)`` and cheaper."""
    return "[" + ",".join(map(json.encoder.encode_basestring, values)) + "]"


class _Waiter:
    """Where the writer hands a durable operation's outcome back to the task awaiting it.

    The operations queued between two drains of the queue (a generation) share one event, set
    once the batch that drained the queue is committed: the queue is FIFO, so every operation
    of the generation is in that batch or an earlier one (an event per operation would cost
    more than its row).
    """

    __slots__ = ("committed", "error")

    def __init__(self, committed: anyio.Event) -> None:
        self.committed = committed
        self.error: JournalError | None = None


# Operation kinds, numbered in the order one item's operations come in (see _group_by_kind).
# Plain ints in tuples: a batch of a few thousand is built and applied per commit, so the queue
# carries the cheapest shape that reads clearly.
_INPUT: Final = 0
_RENAME: Final = 1
_INTENT: Final = 2
_SUBMITTED: Final = 3
_RESULT: Final = 4
_BARRIER: Final = 9

_Op = tuple[int, Any, "_Waiter | None"]


class _LockFile:
    """An exclusive, non-blocking lock on a sidecar file, held for the journal's lifetime.

    The operating system drops ``flock``/``LockFileEx`` locks when the holding process dies, even
    by SIGKILL, so a crashed run never leaves a stale lock behind (a lock *row* in the database
    would). The file itself is never deleted: removing it would let a second process lock a fresh
    inode while the first still holds the old one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, journal_path: str) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._lock(fd)
        except OSError as exc:
            holder = self._holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise JournalError(f"cannot lock the journal: {exc}", path=journal_path) from exc
            who = f" (process {holder})" if holder else ""
            raise JournalError(
                f"the journal is in use by another run{who}; wait for it to finish or use another journal",
                path=journal_path,
            ) from None
        # Who holds it, for the message another run will show; best effort.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            # Closing the descriptor releases the lock; unlocking first is for clarity only.
            with contextlib.suppress(OSError):
                self._unlock(fd)
            os.close(fd)

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            return os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        except OSError:
            return ""

    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only

        @staticmethod
        def _lock(fd: int) -> None:
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

        @staticmethod
        def _unlock(fd: int) -> None:
            import msvcrt

            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

    else:

        @staticmethod
        def _lock(fd: int) -> None:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

        @staticmethod
        def _unlock(fd: int) -> None:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_UN)


class SQLiteJournal:
    """A :class:`Journal` in one SQLite file (WAL mode), with one writer and batched commits.

    ::

        async with SQLiteJournal("out/journal.sqlite") as journal:
            await journal.open_input(input_id)
            done = await journal.entries()
            ...

    Writes are queued and committed by one background writer task: whatever accumulated while
    the previous commit ran (up to ``max_batch`` operations) goes into the next transaction, so
    a thousand concurrent :meth:`record_intent` calls share a handful of commits. Every sqlite
    call runs in a worker thread, one at a time.

    Only one run may use a journal at a time: a sidecar ``<path>.lock`` file is locked while the
    journal is open, and the operating system releases that lock if the run dies.

    The journal never receives an API key and writes none: it stores the request JSON, the
    task JSON, error text and file paths it is given.

    Args:
        path: The journal file; created (with its parent directories) when missing.
        max_batch: The most queued operations one transaction takes. ``1`` commits every
            operation on its own (the benchmark's baseline).
        synchronous: ``"NORMAL"`` (default) survives any crash of the process: a commit is in
            the operating system's hands when it returns. ``"FULL"`` also survives power loss and
            OS crashes, at the price of one ``fsync`` per batch.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', not {synchronous!r}")
        self.path = Path(path)
        self.stats = JournalStats()
        self._max_batch = max_batch
        self._synchronous = synchronous
        self._lock = _LockFile(self.path.with_name(self.path.name + ".lock"))
        self._conn: sqlite3.Connection | None = None
        # One sqlite call at a time: the connection is shared by the writer and the readers, and
        # a transaction (BEGIN..COMMIT) always runs inside a single call.
        self._limiter = anyio.CapacityLimiter(1)
        self._queue: collections.deque[_Op] = collections.deque()
        self._generation = anyio.Event()  # see _Waiter
        self._wake = anyio.Event()
        self._task_group: anyio.abc.TaskGroup | None = None
        self._writer_done = anyio.Event()
        self._state: Literal["new", "open", "closing", "closed"] = "new"
        # Set once a commit failed; every later call then raises a JournalError saying so.
        self._failure: str | None = None

    def __repr__(self) -> str:
        return f"<SQLiteJournal {str(self.path)!r} {self._state}>"

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise RuntimeError("a SQLiteJournal can be opened only once")
        await anyio.to_thread.run_sync(self._open_sync, limiter=self._limiter)
        self._state = "open"
        try:
            self._task_group = anyio.create_task_group()
            await self._task_group.__aenter__()
            self._task_group.start_soon(self._run_writer, name=f"journal writer {self.path}")
        except BaseException:
            self._state = "closed"
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._close_sync, limiter=self._limiter)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if self._state != "open":
            return None
        self._state = "closing"
        self._wake.set()
        assert self._task_group is not None
        try:
            # Shielded: a cancelled batch still gets what it queued (results, task ids) on disk,
            # which is what makes the next run cheap. The writer finishes the queue and stops.
            with anyio.CancelScope(shield=True):
                await self._writer_done.wait()
            suppress = await self._task_group.__aexit__(exc_type, exc, tb)
        finally:
            self._state = "closed"
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._close_sync, limiter=self._limiter)
        if self._failure is not None and exc is None:
            raise self._failed()
        return suppress

    def _open_sync(self) -> None:
        where = str(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(f"cannot create the journal's directory: {exc}", path=where) from exc
        self._lock.acquire(where)
        conn: sqlite3.Connection | None = None
        try:
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE .. COMMIT), one per
            # batch. check_same_thread=False: worker threads take turns under the limiter.
            conn = sqlite3.connect(where, isolation_level=None, check_same_thread=False, timeout=10.0)
            self._prepare(conn, where)
        except sqlite3.OperationalError as exc:  # permissions, a full disk, a lock held too long
            self._discard(conn)
            raise JournalError(f"cannot open the journal: {exc}", path=where) from exc
        except sqlite3.DatabaseError as exc:  # "file is not a database", "disk image is malformed"
            self._discard(conn)
            raise JournalError(
                f"cannot open the journal, it is damaged or not a journal: {exc}", path=where
            ) from exc
        except BaseException:
            self._discard(conn)
            raise
        self._conn = conn

    def _discard(self, conn: sqlite3.Connection | None) -> None:
        if conn is not None:
            conn.close()
        self._lock.release()

    def _prepare(self, conn: sqlite3.Connection, where: str) -> None:
        # Read before changing anything: a newer or foreign file is refused untouched.
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        (app_id,) = conn.execute("PRAGMA application_id").fetchone()
        if version > SCHEMA_VERSION:
            written_by = ""
            with contextlib.suppress(sqlite3.Error):
                row = conn.execute("SELECT value FROM meta WHERE name = 'written_by'").fetchone()
                written_by = f" ({row[0]})" if row else ""
            raise JournalError(
                f"the journal was written by a newer vidu-async{written_by}, schema {version};"
                f" this is vidu-async {__version__}, which reads schema {SCHEMA_VERSION}: upgrade to resume it",
                path=where,
            )
        if version == 0:
            (tables,) = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            if tables:
                raise JournalError("the file is an SQLite database but not a vidu-async journal", path=where)
        elif app_id != _APPLICATION_ID:
            raise JournalError("the file is an SQLite database but not a vidu-async journal", path=where)

        # WAL: readers (a resume, a curious `sqlite3` shell) never block the writer, and a commit
        # appends to the log instead of rewriting pages.
        # synchronous=NORMAL in WAL mode is still crash-safe for the process: COMMIT returns once
        # the log is written to the OS, so a SIGKILL, an exception or Ctrl-C loses no committed
        # transaction and never corrupts the file. What it gives up is durability across power
        # loss or an OS crash: the last transactions before such an event may roll back (the file
        # stays consistent). The engine then reconciles those items by fingerprint like any
        # unrecorded intent; pass synchronous="FULL" to fsync every commit instead.
        (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        if str(mode).lower() != "wal":  # e.g. a filesystem without shared memory: still correct, slower
            logger.warning("journal %s: WAL mode unavailable, using %s", where, mode)
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        if version == 0:
            # Statement by statement rather than executescript(), which would commit on its own:
            # the schema, its version and the marker land in one transaction or not at all.
            with _transaction(conn):
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO meta (name, value) VALUES ('written_by', ?)", (f"vidu-async {__version__}",)
                )
                conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif version == 1:
            # Written by 0.1.0: upgraded in one transaction, or left as it was. It then names this
            # release as its writer, so that 0.1.0, which refuses it from now on, says who to ask.
            with _transaction(conn):
                conn.execute(_UPGRADE_TO_2)
                conn.execute(
                    "INSERT OR REPLACE INTO meta (name, value) VALUES ('written_by', ?)",
                    (f"vidu-async {__version__}",),
                )
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            logger.info("journal %s: upgraded from schema 1 to %d", where, SCHEMA_VERSION)

    def _close_sync(self) -> None:
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                conn.close()
        finally:
            self._lock.release()

    def _failed(self) -> JournalError:
        # A fresh exception per raise: one shared instance raised in many tasks would collect
        # all their tracebacks.
        return JournalError(f"writing to the journal failed earlier: {self._failure}", path=str(self.path))

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise self._failed()
        if self._state != "open":
            what = "not open yet" if self._state == "new" else "closed"
            raise JournalError(f"the journal is {what}", path=str(self.path))

    # -- the writer --------------------------------------------------------------------------

    def _enqueue(self, op: _Op) -> None:
        if self._state != "open" or self._failure is not None:
            self._check_usable()
        self._queue.append(op)
        if len(self._queue) == 1:  # the writer sleeps only on an empty queue
            self._wake.set()

    async def _run_writer(self) -> None:
        # Shielded for its whole life: the writer stops when the journal closes, never half-way
        # because the surrounding scope was cancelled, so queued results always reach the disk.
        with anyio.CancelScope(shield=True):
            try:
                while True:
                    if not self._queue:
                        if self._state != "open":
                            break
                        await self._wake.wait()
                        self._wake = anyio.Event()
                        continue
                    if len(self._queue) <= self._max_batch:
                        batch = list(self._queue)
                        self._queue.clear()
                    else:
                        batch = [self._queue.popleft() for _ in range(self._max_batch)]
                    closed = None
                    if not self._queue:
                        # Drained: this batch holds the current generation's last operations
                        # (the queue is FIFO), so later ones start the next generation.
                        closed, self._generation = self._generation, anyio.Event()
                    await self._commit(batch, closed)
            finally:
                self._writer_done.set()

    async def _commit(self, batch: list[_Op], closed: anyio.Event | None) -> None:
        errors: dict[int, JournalError] = {}
        if self._failure is None:
            try:
                try:
                    errors = await anyio.to_thread.run_sync(self._apply_sync, batch, limiter=self._limiter)
                except UnicodeEncodeError:
                    # Text with a lone surrogate (a server's message, say) is not UTF-8, so SQLite
                    # refused the batch (and rolled it back): store such text escaped, as JSON
                    # writes it (\udXXX), rather than lose the batch and the journal with it.
                    batch = [(kind, _escape_surrogates(args), waiter) for kind, args, waiter in batch]
                    errors = await anyio.to_thread.run_sync(self._apply_sync, batch, limiter=self._limiter)
            except Exception as exc:  # sqlite3.Error above all; nothing may strand the waiters
                self._failure = str(exc) or type(exc).__name__
                logger.exception("journal %s: writing failed, nothing more is journaled", self.path)
        # Waiters are released only now, after COMMIT returned: what they were promised is on disk.
        # A waiter's error stays None unless its operation was refused or the commit failed.
        if errors or self._failure is not None:
            for position, (_, _, waiter) in enumerate(batch):
                if waiter is not None:
                    waiter.error = errors.get(position) or (self._failed() if self._failure else None)
        if closed is not None:
            closed.set()

    def _apply_sync(self, batch: list[_Op]) -> dict[int, JournalError]:
        """Apply a batch in one transaction (worker thread). Returns per-operation refusals."""
        conn = self._conn
        assert conn is not None
        if all(kind == _BARRIER for kind, _, _ in batch):
            return {}
        errors: dict[int, JournalError] = {}
        now = time.time()
        with _transaction(conn):
            unknown = 0
            groups = _group_by_kind(batch)
            if groups is None:
                # Some key's operations are out of the usual order (a re-intent after its result,
                # say): apply one by one, in queue order.
                for position, (kind, args, _) in enumerate(batch):
                    unknown += self._apply_group(conn, kind, [(position, args)], now, errors)
            else:
                for kind, members in groups.items():
                    unknown += self._apply_group(conn, kind, members, now, errors)
        # Counters are touched only here, by one thread at a time, and read by the loop later.
        self.stats.commits += 1
        self.stats.operations += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        self.stats.unknown_keys += unknown
        if unknown:
            logger.warning(
                "journal %s: %d task id(s) recorded for unknown keys were ignored", self.path, unknown
            )
        return errors

    def _apply_group(
        self,
        conn: sqlite3.Connection,
        kind: int,
        members: list[tuple[int, Any]],
        now: float,
        errors: dict[int, JournalError],
    ) -> int:
        """Apply operations of one kind in queue order; returns how many named an unknown key."""
        where = str(self.path)
        if kind == _INTENT:
            rows = [(*args, now) for _, args in members]
            if len(rows) > 1:
                # The fast path assumes no key conflict; a savepoint makes that assumption free
                # to check (every row must have changed) and cheap to undo when it fails.
                conn.execute("SAVEPOINT intents")
                if conn.executemany(_SQL_INTENT, rows).rowcount == len(rows):
                    conn.execute("RELEASE intents")
                    return 0
                conn.execute("ROLLBACK TO intents")
                conn.execute("RELEASE intents")
            for (position, args), row in zip(members, rows, strict=True):
                if conn.execute(_SQL_INTENT, row).rowcount == 0:
                    errors[position] = self._key_conflict(conn, args, where)
        elif kind == _SUBMITTED:
            rows = [(task_id, credits, now, key) for _, (key, task_id, credits) in members]
            return len(rows) - conn.executemany(_SQL_SUBMITTED, rows).rowcount
        elif kind == _RESULT:
            rows = [(*args, now) for _, args in members]
            if conn.executemany(_SQL_RESULT_UPDATE, rows).rowcount < len(rows):
                # Some keys had no row: insert those. Reversed, so that when one new key has
                # two results in this group the later one is the row (the earlier is ignored).
                conn.executemany(_SQL_RESULT_INSERT, reversed(rows))
        elif kind == _RENAME:
            conn.executemany(_SQL_RENAME, [(new, now, old) for _, (old, new) in members])
        elif kind == _INPUT:
            for position, input_id in members:
                refusal = self._check_input(conn, input_id, where)
                if refusal is not None:
                    errors[position] = refusal
        return 0

    @staticmethod
    def _key_conflict(conn: sqlite3.Connection, args: tuple[Any, ...], where: str) -> JournalError:
        key, index, _, request_hash, _, _ = args
        row = conn.execute("SELECT request_hash, idx FROM items WHERE key = ?", (key,)).fetchone()
        old_hash, old_index = row if row else ("?", "?")
        return JournalError(
            f"key {key!r} (item {index}) was journaled with a different request"
            f" (item {old_index}, hash {str(old_hash)[:16]}; now {str(request_hash)[:16]}):"
            " a key must name the same request on every run",
            path=where,
        )

    @staticmethod
    def _check_input(conn: sqlite3.Connection, input_id: str, where: str) -> JournalError | None:
        row = conn.execute("SELECT value FROM meta WHERE name = ?", (_INPUT_META,)).fetchone()
        if row is None:
            conn.execute("INSERT INTO meta (name, value) VALUES (?, ?)", (_INPUT_META, input_id))
            return None
        if row[0] == input_id:
            return None
        return JournalError(
            f"the journal belongs to input {row[0]!r}, not {input_id!r}: use a new journal for a different input",
            path=where,
        )

    # -- durable operations ------------------------------------------------------------------

    async def _submit_and_wait(self, kind: int, args: Any) -> None:
        waiter = _Waiter(self._generation)
        self._enqueue((kind, args, waiter))
        # If this wait is cancelled the operation still runs: the writer owns it now, and a
        # committed intent whose POST was never sent is reconciled like any other.
        await waiter.committed.wait()
        if waiter.error is not None:
            raise waiter.error

    async def open_input(self, input_id: str) -> None:
        """Tie the journal to one input; see :meth:`Journal.open_input`.

        Raises:
            JournalError: The journal was written for a different input (the message names both).
        """
        await self._submit_and_wait(_INPUT, input_id)

    async def record_intent(
        self,
        *,
        key: str,
        index: int,
        request: Mapping[str, Any],
        request_hash: str,
        fingerprint: str,
        endpoint: str = DEFAULT_ENDPOINT,
    ) -> None:
        """Record that the item, a request to ``endpoint``, is about to be submitted; returns once
        the record is committed.

        Recording the intent of a key again (same request) starts a new attempt: ``attempts``
        goes up and what the previous attempt recorded (task id, state, result) is cleared. If the
        awaiting task is cancelled, the intent may still be committed; a re-run reconciles it by
        fingerprint like any intent without a task id.

        Raises:
            JournalError: The key was journaled with a different ``request_hash``, or writing failed.
            TypeError: ``request`` is not JSON-serializable (nothing is queued).
            ValueError: ``request`` holds a NaN or infinity (nothing is queued).
        """
        # Serialized here, in the caller, so an unserializable request fails its own call and
        # never the writer's batch.
        await self._submit_and_wait(
            _INTENT, (key, index, _dumps(request), request_hash, fingerprint, str(endpoint))
        )

    async def flush(self) -> None:
        """Wait until everything queued before the call is committed.

        Raises:
            JournalError: Writing failed (the journal is then unusable).
        """
        if self._state == "closed" and self._failure is None:
            return  # closing flushed everything
        await self._submit_and_wait(_BARRIER, None)

    # -- queued operations -------------------------------------------------------------------

    def record_submitted(self, key: str, task_id: str, credits: int | None = None) -> None:
        """Queue the task id (and credits) the POST answered with; committed with the next batch.

        Raises:
            JournalError: The journal is closed or writing failed earlier.
        """
        self._enqueue((_SUBMITTED, (key, task_id, credits), None))

    def rename_key(self, old_key: str, new_key: str) -> None:
        """Queue renaming an item; see :meth:`Journal.rename_key`.

        Raises:
            JournalError: The journal is closed or writing failed earlier.
        """
        self._enqueue((_RENAME, (old_key, new_key), None))

    def record_result(
        self,
        key: str,
        *,
        state: str,
        task: Mapping[str, Any] | None = None,
        err_code: str = "",
        credits: int | None = None,
        error: str | None = None,
        attempts: int | None = None,
        files: Iterable[str | os.PathLike[str]] = (),
        index: int | None = None,
        request: Mapping[str, Any] | None = None,
        endpoint: str | None = None,
    ) -> None:
        """Queue the item's final outcome; the item then counts as finished.

        Args:
            key: The item's key.
            state: The final state: a terminal task state, or the engine's own (``"invalid"``...).
            task: The final task's JSON, to rebuild the result on a re-run.
            err_code: Vidu's ``err_code`` for a failed task.
            credits: Credits charged (kept from ``record_submitted`` when ``None``).
            error: The error's text.
            attempts: Overrides the attempt count (kept when ``None``).
            files: Paths of downloaded files.
            index: The item's index, used only when the key has no row yet (no intent was ever
                recorded, e.g. a request that failed validation).
            request: The request JSON, likewise used only for such a new row.
            endpoint: The item's endpoint, likewise (``"reference2video"`` when ``None``).

        Raises:
            JournalError: The journal is closed or writing failed earlier.
            TypeError: ``task`` or ``request`` is not JSON-serializable (nothing is queued).
            ValueError: ``task`` or ``request`` holds a NaN or infinity (nothing is queued).
        """
        paths = [os.fspath(f) for f in files]
        args = (
            key,
            -1 if index is None else index,
            _EMPTY_OBJECT if request is None else _dumps(request),
            str(state),
            credits,
            err_code,
            None if task is None else _dumps(task),
            error,
            attempts,
            _dumps_strings(paths) if paths else _EMPTY_ARRAY,
            DEFAULT_ENDPOINT if endpoint is None else str(endpoint),
        )
        self._enqueue((_RESULT, args, None))

    # -- maintenance -------------------------------------------------------------------------

    async def forget_unfinished_tasks(self) -> list[str]:
        """Clear the task id of every unfinished item; returns the task ids cleared.

        For a re-run against a server that no longer has the earlier run's tasks, such as an
        emulator that lived in the earlier run's process: each such item is left with an intent
        and no task id, which the engine reconciles by its fingerprint (finding nothing there) and
        then submits again. Finished items keep their results. Never call it for the real service,
        whose tasks outlive any run: they would be submitted, and billed, a second time.

        Raises:
            JournalError: The journal is not open, or writing failed.
        """
        await self.flush()
        self._check_usable()

        def forget() -> list[str]:
            conn = self._conn
            assert conn is not None
            with _transaction(conn):
                rows = conn.execute(_SQL_FORGOTTEN).fetchall()
                conn.execute(_SQL_FORGET, (time.time(),))
            return [task_id for (task_id,) in rows]

        try:
            return await anyio.to_thread.run_sync(forget, limiter=self._limiter)
        except sqlite3.Error as exc:
            raise JournalError(f"writing to the journal failed: {exc}", path=str(self.path)) from exc

    # -- reads -------------------------------------------------------------------------------

    async def entries(self) -> dict[str, JournalEntry]:
        """Every item, keyed by key and ordered by index; sees everything recorded before the call.

        Raises:
            JournalError: The journal is not open, or reading failed.
        """
        await self.flush()
        rows = await self._read(f"SELECT {_COLUMNS} FROM items", ())
        # Sorted here rather than by ORDER BY: rows come back nearly in index order already,
        # which Python's sort finishes in one pass while SQLite would build a temporary b-tree.
        rows.sort(key=operator.itemgetter(1))
        return {row[0]: _entry(row) for row in rows}

    async def get(self, key: str) -> JournalEntry | None:
        """One item, or ``None`` when the key was never journaled; sees everything recorded before.

        A convenience of this store for a look at one item by its key, not part of
        :class:`Journal`: the engine reads every entry at once, with :meth:`entries`.

        Raises:
            JournalError: The journal is not open, or reading failed.
        """
        await self.flush()
        rows = await self._read(f"SELECT {_COLUMNS} FROM items WHERE key = ?", (key,))
        return _entry(rows[0]) if rows else None

    async def _read(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        self._check_usable()

        def read() -> list[tuple[Any, ...]]:
            assert self._conn is not None
            return self._conn.execute(sql, params).fetchall()

        try:
            return await anyio.to_thread.run_sync(read, limiter=self._limiter)
        except sqlite3.Error as exc:
            raise JournalError(f"reading the journal failed: {exc}", path=str(self.path)) from exc


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` .. ``COMMIT`` around the block; rolled back when the block raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def _escape_surrogates(value: Any) -> Any:
    """``value`` with every string made valid UTF-8: a lone surrogate becomes the six characters
    of its JSON escape, which is what it means inside the JSON columns and readable elsewhere."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, tuple):
        return tuple(_escape_surrogates(v) for v in value)
    return value


def _entry(row: tuple[Any, ...]) -> JournalEntry:
    # The row unpacked whole: slicing it first cost a resume about 1k instructions per entry.
    (
        key, idx, request, request_hash, fingerprint, task_id, state, credits, err_code, task, error,
        attempts, files, finished, created_at, updated_at, endpoint,
    ) = row  # fmt: skip
    return JournalEntry(
        key=key,
        index=idx,
        endpoint=endpoint,
        request_json=request,
        request_hash=request_hash,
        fingerprint=fingerprint,
        task_id=task_id,
        state=state,
        finished=bool(finished),
        credits=credits,
        err_code=err_code,
        task_json=task,
        error=error,
        attempts=attempts,
        files=() if files == _EMPTY_ARRAY else tuple(json.loads(files)),
        created_at=created_at,
        updated_at=updated_at,
    )


# The order an item's operations normally come in. Operations on different keys commute, so a
# batch whose every key follows this order can be applied kind by kind (one executemany each)
# with the same result as one by one.
_KIND_ORDER: Final = (_INPUT, _RENAME, _INTENT, _SUBMITTED, _RESULT)


def _group_by_kind(batch: list[_Op]) -> dict[int, list[tuple[int, Any]]] | None:
    """The batch's operations by kind in :data:`_KIND_ORDER`, or ``None`` when that would reorder a key."""
    groups: dict[int, list[tuple[int, Any]]] = {kind: [] for kind in _KIND_ORDER}
    last_kind: dict[str, int] = {}
    for position, (kind, args, _) in enumerate(batch):
        if kind == _BARRIER:
            continue
        if kind != _INPUT:
            # A rename touches two keys: the later operations of the new one follow it.
            for key in args[:2] if kind == _RENAME else args[:1]:
                if last_kind.get(key, kind) > kind:
                    return None
                last_kind[key] = kind
        groups[kind].append((position, args))
    return {kind: members for kind, members in groups.items() if members}
