"""The PostgreSQL store of the journal: :class:`PostgresJournal`, one batch shared by many workers.

A SQLite journal belongs to one process. This store lets any number of processes on any number of
machines share one batch and one organization's concurrency, without ever sending a create twice:

- **Load once.** A batch is named by its ``input_id`` (the sha256 of its input), not by a path.
  One worker at a time loads it (:meth:`PostgresJournal.load`), committing a chunk at a time so
  that the others claim the first items while it reads on; every later or concurrent loader inserts
  nothing and reads nothing, unless the loader's lease lapsed or it gave up: then one of them
  takes the load over and adds what is missing.
- **Leases.** :meth:`~PostgresJournal.register` gives the worker an id that is never reused and a
  lease on the database's clock; :meth:`~PostgresJournal.heartbeat` renews it only while it is
  live. Every write a worker makes is fenced by its id and its live lease: a stale worker's write
  changes nothing and is reported, never silent.
- **Slots belong to tasks.** The organization's capacity is a set of slot rows held by items (the
  Vidu task), not by connections or workers. :meth:`~PostgresJournal.claim` takes the next pending
  item and a free slot in one transaction (``FOR UPDATE SKIP LOCKED`` on both) and writes the
  intent with its ``send_by``; :meth:`~PostgresJournal.finish` ends the item and frees its slot in
  one statement, then ``NOTIFY`` wakes the waiting workers.
- **The send guard.** :meth:`~PostgresJournal.guard_send`, called right before a create's POST,
  refuses once ``send_by`` is near or the worker's own (monotonic) lease deadline is.
- **Adoption.** :meth:`~PostgresJournal.adopt_expired` takes over the unfinished items of workers
  whose lease lapsed, keeping their slots: an item with a task id is re-watched, one with only an
  intent is reconciled by its fingerprint once its ``send_by`` has passed.

It is also a :class:`~vidu_async.journal.Journal`, so one process can use it as it uses SQLite: the
protocol's writes are fenced like the rest (the journal registers a worker at :meth:`open_input`).

asyncpg is imported only when a journal is built (the ``postgres`` extra): importing vidu_async
never needs it. The DSN is kept as a :class:`~vidu_async._secret.Secret` and shown redacted in a
repr, a log line or an error.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import logging
import math
import os
import re
import socket
import urllib.parse
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, Self, TypeVar

import anyio
import anyio.abc
import attrs

from .. import _convert
from .._secret import Secret
from .._version import __version__
from ..exceptions import ConfigurationError, JournalError
from ._protocol import _EMPTY_OBJECT, DEFAULT_ENDPOINT, STATE_INTENT, JournalEntry, JournalStats

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "CHANNEL",
    "SCHEMA_VERSION",
    "STATE_ERROR",
    "STATE_PENDING",
    "Adopted",
    "BatchItem",
    "BatchSummary",
    "Claim",
    "Claimed",
    "LeaseLostError",
    "PostgresJournal",
    "PostgresJournalStats",
    "SendRefusedError",
    "StuckItem",
    "WorkerSummary",
    "redact_dsn",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The state of an item loaded and not yet claimed.
STATE_PENDING: Final = "pending"
#: The state of an item that ended without a terminal task (refused, timed out, unreadable).
STATE_ERROR: Final = "error"

#: The channel :meth:`PostgresJournal.finish` and the other slot-freeing writes ``NOTIFY``; the
#: payload is the organization's name.
CHANNEL: Final = "vidu_journal"

# Any 64-bit number nobody else is likely to pick, for the advisory lock that serializes migrations
# ("VIDUJRNL" in ASCII).
_MIGRATION_LOCK: Final = 0x5649_4455_4A52_4E4C

_EMPTY_ARRAY: Final = "[]"

# A load commits its first chunk after this many items (then four times as many each time, up to
# its chunk size), and at least every this many seconds: the workers claim while it reads on.
_FIRST_CHUNK: Final = 64
_CHUNK_SECONDS: Final = 0.25

# -- the schema -------------------------------------------------------------------------------------

# Every table is prefixed ``vidu_`` so that the store can live in a database that holds other things.
# Times are the database's (timestamptz): leases and send_by are compared on one clock, never on
# the workers' clocks.
_SCHEMA_1: Final = (
    """
    CREATE TABLE vidu_schema_version (
        only_row   boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        version    integer NOT NULL,
        written_by text NOT NULL
    )
    """,
    """
    CREATE TABLE vidu_batches (
        input_id   text PRIMARY KEY,        -- sha256 of the input
        items      integer,                 -- how many the loader inserted; NULL until loaded
        loaded_at  timestamptz,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )
    """,
    """
    CREATE TABLE vidu_workers (
        worker_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- never reused
        input_id    text,                    -- the batch it works on, when it named one first
        name        text NOT NULL,
        host        text NOT NULL,
        pid         integer NOT NULL,
        started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
        lease_until timestamptz NOT NULL,
        heartbeats  bigint NOT NULL DEFAULT 0,
        stopped_at  timestamptz
    )
    """,
    """
    CREATE TABLE vidu_items (
        input_id     text NOT NULL REFERENCES vidu_batches,
        key          text NOT NULL,
        idx          integer NOT NULL,
        endpoint     text NOT NULL DEFAULT 'reference2video',
        request      text NOT NULL,          -- JSON, Vidu's request shape
        request_hash text NOT NULL,          -- '' for items finished without an intent
        fingerprint  text NOT NULL DEFAULT '',
        state        text NOT NULL,          -- pending, intent, submitted, or the result's state
        finished     boolean NOT NULL DEFAULT false,
        task_id      text,
        credits      integer,
        err_code     text NOT NULL DEFAULT '',
        task         text,                   -- JSON of the final task
        error        text,
        attempts     integer NOT NULL DEFAULT 0,
        files        text NOT NULL DEFAULT '[]',
        worker_id    bigint REFERENCES vidu_workers,  -- the owner; every write is fenced by it
        send_by      timestamptz,            -- an intent's create is never sent after this
        adopted_from bigint,
        attention    text,                   -- why an adopter could not decide (undecidable)
        created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
        updated_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (input_id, key)
    )
    """,
    "CREATE INDEX vidu_items_pending ON vidu_items (input_id, idx) WHERE state = 'pending'",
    "CREATE INDEX vidu_items_owner ON vidu_items (worker_id) WHERE NOT finished",
    """
    CREATE TABLE vidu_orgs (
        org      text PRIMARY KEY,
        capacity integer NOT NULL CHECK (capacity >= 0)
    )
    """,
    """
    CREATE TABLE vidu_slots (
        org        text NOT NULL REFERENCES vidu_orgs,
        slot       integer NOT NULL,
        input_id   text,                     -- the item (task) holding the slot, or NULL
        key        text,
        worker_id  bigint,                   -- who answers for that item now (informative)
        held_since timestamptz,
        PRIMARY KEY (org, slot),
        FOREIGN KEY (input_id, key) REFERENCES vidu_items ON UPDATE CASCADE,
        CHECK ((input_id IS NULL) = (key IS NULL))
    )
    """,
    "CREATE UNIQUE INDEX vidu_slots_holder ON vidu_slots (input_id, key) WHERE input_id IS NOT NULL",
    "CREATE INDEX vidu_slots_free ON vidu_slots (org, slot) WHERE input_id IS NULL",
    """
    CREATE TABLE vidu_orphan_answers (
        answer_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        input_id    text NOT NULL,
        key         text NOT NULL,
        task_id     text NOT NULL,
        credits     integer,
        worker_id   bigint NOT NULL,         -- the worker the create answered
        owner_id    bigint,                  -- who owned the item then
        answered_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )
    """,
    "CREATE INDEX vidu_orphan_answers_item ON vidu_orphan_answers (input_id, key)",
)

#: Migration ``n`` (0-based) takes a database from schema ``n`` to ``n + 1``; schema 0 is a database
#: without the tables. Each runs in the transaction that records its version, under an advisory
#: lock, so concurrent workers migrate once and a failed step leaves the previous version whole.
# Loading in chunks, each committed as it is read: the worker loading the batch (its lease says
# whether it still is; a lapsed or stopped loader's batch is taken over and finished by another).
_SCHEMA_2: Final = ("ALTER TABLE vidu_batches ADD COLUMN loader bigint REFERENCES vidu_workers",)

_MIGRATIONS: tuple[tuple[str, ...], ...] = (_SCHEMA_1, _SCHEMA_2)

#: The layout this version writes. A database with a higher number was written by a newer
#: vidu-async and is refused rather than misread.
#:
#: 1. vidu-async 0.2: batches, workers, items, organizations, slots, orphan answers.
#: 2. ``vidu_batches.loader``: a batch is loaded a chunk at a time, and claimed while it loads.
SCHEMA_VERSION: Final = len(_MIGRATIONS)

_ITEM_COLUMNS: Final = (
    "key, idx, request, request_hash, fingerprint, task_id, state, credits, err_code, task, error,"
    " attempts, files, finished, extract(epoch FROM created_at)::float8,"
    " extract(epoch FROM updated_at)::float8, endpoint"
)

# A worker whose lease is live: the fence of every write.
_LIVE: Final = (
    "EXISTS (SELECT 1 FROM vidu_workers w WHERE w.worker_id = $me AND w.lease_until > clock_timestamp())"
)


def _sql(text: str) -> str:
    """``text`` with ``$me`` (the worker's id) as parameter 1."""
    return text.replace("$me", "$1::bigint")


# The protocol's intent: the item's row (a loaded one, or a new one), owned by this worker. A key
# journaled with a different request is refused (no row), and so is one another worker owns, unless
# that worker's lease lapsed and its intent can no longer be sent (past send_by).
_SQL_INTENT: Final = _sql(f"""
INSERT INTO vidu_items AS i (input_id, key, idx, request, request_hash, fingerprint, endpoint, state,
                             worker_id, attempts, send_by)
SELECT $2::text, $3::text, $4::int, $5::text, $6::text, $7::text, $8::text, 'intent', $me, 1,
       clock_timestamp() + make_interval(secs => $9::float8)
WHERE {_LIVE}
ON CONFLICT (input_id, key) DO UPDATE SET
    idx = excluded.idx, request = excluded.request, request_hash = excluded.request_hash,
    fingerprint = excluded.fingerprint, endpoint = excluded.endpoint, task_id = NULL,
    state = 'intent', credits = NULL, err_code = '', task = NULL, error = NULL,
    attempts = i.attempts + 1, files = '[]', finished = false, worker_id = excluded.worker_id,
    send_by = excluded.send_by, attention = NULL, updated_at = clock_timestamp()
WHERE (i.request_hash = excluded.request_hash OR i.request_hash = '')
  AND (i.worker_id IS NULL OR i.worker_id = excluded.worker_id
       OR (EXISTS (SELECT 1 FROM vidu_workers o
                   WHERE o.worker_id = i.worker_id AND o.lease_until <= clock_timestamp())
           AND (i.finished OR i.task_id IS NOT NULL OR i.send_by IS NULL OR i.send_by <= clock_timestamp())))
""")

# The task id a create answered with: written only by the item's owner with a live lease; anyone
# else's answer goes to vidu_orphan_answers (the second column says so). A late answer does not
# reopen a finished item.
_SQL_SUBMITTED: Final = _sql(f"""
WITH upd AS (
    UPDATE vidu_items SET task_id = $4, credits = COALESCE($5, credits),
        state = CASE WHEN finished THEN state ELSE 'submitted' END,
        send_by = NULL, attention = NULL, updated_at = clock_timestamp()
    WHERE input_id = $2 AND key = $3 AND worker_id = $me AND {_LIVE}
    RETURNING 1
), orphan AS (
    INSERT INTO vidu_orphan_answers (input_id, key, task_id, credits, worker_id, owner_id)
    SELECT $2::text, $3::text, $4::text, $5::int, $me, i.worker_id FROM vidu_items i
    WHERE i.input_id = $2 AND i.key = $3 AND NOT EXISTS (SELECT 1 FROM upd)
    RETURNING owner_id
)
SELECT (SELECT count(*) FROM upd) AS updated, (SELECT count(*) FROM orphan) AS orphaned,
       (SELECT owner_id FROM orphan) AS owner
""")

# The end of an item: terminal, and its slot freed, in one statement; then every waiting worker
# is woken (the notification is delivered at commit). An item nobody owns (a pending one that
# failed validation) may be finished by anyone live; an owned one only by its owner.
_SQL_FINISH: Final = _sql(f"""
WITH done AS (
    UPDATE vidu_items SET state = $4, credits = COALESCE($5, credits), err_code = $6, task = $7,
        error = $8, attempts = COALESCE($9, attempts), files = $10, finished = true, send_by = NULL,
        attention = NULL, updated_at = clock_timestamp()
    WHERE input_id = $2 AND key = $3 AND (worker_id = $me OR worker_id IS NULL) AND {_LIVE}
    RETURNING input_id, key
), freed AS (
    UPDATE vidu_slots s SET input_id = NULL, key = NULL, worker_id = NULL, held_since = NULL
    FROM done WHERE s.input_id = done.input_id AND s.key = done.key
    RETURNING s.org
), woken AS (
    SELECT pg_notify('{CHANNEL}', $11) FROM (SELECT 1 FROM done LIMIT 1) d
)
SELECT (SELECT count(*) FROM done) AS done, (SELECT count(*) FROM freed) AS freed,
       (SELECT count(*) FROM woken) AS woken
""")

# An item that failed before its intent and has no row yet (an invalid request): its row, finished.
_SQL_RESULT_INSERT: Final = _sql(f"""
INSERT INTO vidu_items (input_id, key, idx, request, request_hash, fingerprint, endpoint, state,
                        credits, err_code, task, error, attempts, files, finished)
SELECT $2::text, $3::text, $11::int, $12::text, '', '', $13::text, $4::text, $5::int, $6::text, $7::text,
       $8::text, COALESCE($9::int, 0), $10::text, true
WHERE {_LIVE}
ON CONFLICT (input_id, key) DO NOTHING
""")

_SQL_RENAME: Final = _sql(f"""
UPDATE vidu_items SET key = $4, updated_at = clock_timestamp()
WHERE input_id = $2 AND key = $3 AND (worker_id IS NULL OR worker_id = $me) AND {_LIVE}
  AND NOT EXISTS (SELECT 1 FROM vidu_items WHERE input_id = $2 AND key = $4)
""")

# Takes the next pending item (in input order) that no other claimer holds.
# The loader's part: taken when the batch is not loaded and nobody live has it (never held, given
# up, or its holder's lease lapsed), by a live worker.
_SQL_TAKE_LOADING: Final = _sql(f"""
UPDATE vidu_batches b SET loader = $me
WHERE b.input_id = $2 AND b.items IS NULL AND {_LIVE}
  AND (b.loader IS NULL OR b.loader = $me OR NOT EXISTS (
      SELECT 1 FROM vidu_workers o WHERE o.worker_id = b.loader AND o.lease_until > clock_timestamp()))
RETURNING true
""")

# Whether this worker still loads the batch, its lease live (the fence of every chunk).
_SQL_STILL_LOADING: Final = _sql(f"""
SELECT EXISTS (SELECT 1 FROM vidu_batches
               WHERE input_id = $2 AND loader = $me AND items IS NULL FOR SHARE) AND {_LIVE}
""")

# The load is whole: the batch's item count, written by its loader only.
_SQL_LOADED: Final = _sql(f"""
UPDATE vidu_batches SET items = (SELECT count(*) FROM vidu_items WHERE input_id = $2),
    loaded_at = clock_timestamp()
WHERE input_id = $2 AND loader = $me AND items IS NULL AND {_LIVE}
RETURNING items
""")

# Items that ended in an error although they have a task (a wait that timed out), to watch again.
_SQL_ENDED_WITH_A_TASK: Final = """
SELECT key, idx, endpoint, request, request_hash, fingerprint, task_id, attempts, worker_id FROM vidu_items
WHERE input_id = $1 AND finished AND state = $2 AND task_id IS NOT NULL
ORDER BY idx LIMIT $3 FOR UPDATE SKIP LOCKED
"""

_SQL_REWATCH: Final = _sql("""
UPDATE vidu_items SET finished = false, state = 'submitted', adopted_from = worker_id, worker_id = $me,
    error = NULL, err_code = '', attention = NULL, updated_at = clock_timestamp()
WHERE input_id = $2 AND key = ANY($3::text[])
""")

_SQL_NEXT_PENDING: Final = """
SELECT key, endpoint, request FROM vidu_items WHERE input_id = $1 AND state = 'pending'
ORDER BY idx LIMIT $2 FOR UPDATE SKIP LOCKED
"""

_SQL_ANY_PENDING: Final = "SELECT EXISTS (SELECT 1 FROM vidu_items WHERE input_id = $1 AND state = 'pending')"

# The organization's capacity, locked against set_capacity for the claim's transaction (claimers
# share the lock, so they never wait for each other). Also says whether a slot above the capacity is
# still held (a shrink in progress): then nothing is claimed until those tasks end, so the held
# slots never outnumber the capacity. Taken first: set_capacity locks the organization, then its
# slots, so a claimer never holds a slot while it waits for the organization.
_SQL_CAPACITY: Final = """
SELECT o.capacity, EXISTS (SELECT 1 FROM vidu_slots s
                           WHERE s.org = o.org AND s.slot >= o.capacity AND s.input_id IS NOT NULL) AS shrinking
FROM vidu_orgs o WHERE o.org = $1 FOR SHARE
"""

# Takes free slots below the capacity that no other claimer holds.
_SQL_FREE_SLOTS: Final = """
SELECT slot FROM vidu_slots WHERE org = $1 AND input_id IS NULL AND slot < $2
ORDER BY slot LIMIT $3 FOR UPDATE SKIP LOCKED
"""

_SQL_HOLD_SLOTS: Final = """
UPDATE vidu_slots s SET input_id = $3, key = u.key, worker_id = $4, held_since = clock_timestamp()
FROM unnest($2::int[], $5::text[]) AS u(slot, key) WHERE s.org = $1 AND s.slot = u.slot
"""

_SQL_CLAIM_ITEMS: Final = _sql("""
UPDATE vidu_items i SET state = 'intent', worker_id = $me, fingerprint = u.fingerprint,
    attempts = attempts + 1, send_by = clock_timestamp() + make_interval(secs => $5),
    updated_at = clock_timestamp()
FROM unnest($3::text[], $4::text[]) AS u(key, fingerprint)
WHERE i.input_id = $2 AND i.key = u.key
RETURNING i.key, idx, endpoint, request, request_hash, attempts, extract(epoch FROM send_by)::float8 AS send_by
""")

# Items of workers whose lease lapsed: a task id is re-watched at once; an intent only once its
# send_by has passed (until then its worker may still send it). Their slots move with them.
_SQL_ADOPT: Final = _sql(f"""
WITH cand AS (
    SELECT i.input_id, i.key, i.worker_id AS old FROM vidu_items i
    JOIN vidu_workers o ON o.worker_id = i.worker_id
    WHERE i.input_id = $2 AND NOT i.finished AND i.state IN ('intent', 'submitted')
      AND i.worker_id <> $me AND o.lease_until <= clock_timestamp()
      AND (i.task_id IS NOT NULL OR i.send_by IS NULL OR i.send_by <= clock_timestamp())
      AND ($4::boolean OR i.attention IS NULL)
      AND {_LIVE}
    ORDER BY i.idx LIMIT $3
    FOR UPDATE OF i SKIP LOCKED
), moved AS (
    UPDATE vidu_items i SET worker_id = $me, adopted_from = cand.old, updated_at = clock_timestamp()
    FROM cand WHERE i.input_id = cand.input_id AND i.key = cand.key
    RETURNING i.key, i.idx, i.endpoint, i.request, i.request_hash, i.fingerprint, i.task_id,
              i.attempts, cand.old, extract(epoch FROM i.send_by)::float8 AS send_by
), slots AS (
    UPDATE vidu_slots s SET worker_id = $me FROM moved
    WHERE s.input_id = $2 AND s.key = moved.key
    RETURNING s.key, s.slot
)
SELECT moved.*, slots.slot,
       (SELECT a.task_id FROM vidu_orphan_answers a WHERE a.input_id = $2 AND a.key = moved.key
        ORDER BY a.answer_id DESC LIMIT 1) AS answered
FROM moved LEFT JOIN slots ON slots.key = moved.key
ORDER BY moved.idx
""")

# An intent proven never sent goes back to pending (its slot is freed by the caller's transaction).
_SQL_RELEASE: Final = _sql(f"""
UPDATE vidu_items SET state = 'pending', worker_id = NULL, send_by = NULL, fingerprint = '',
    updated_at = clock_timestamp()
WHERE input_id = $2 AND key = $3 AND worker_id = $me AND state = 'intent' AND NOT finished AND {_LIVE}
RETURNING 1
""")

# A new intent for an adopted item proven absent: same fingerprint, a new send_by, the slot kept.
_SQL_REISSUE: Final = _sql(f"""
UPDATE vidu_items i SET send_by = clock_timestamp() + make_interval(secs => $4::float8),
    attempts = attempts + 1, attention = NULL, updated_at = clock_timestamp()
WHERE input_id = $2 AND key = $3 AND worker_id = $me AND state = 'intent' AND task_id IS NULL
  AND NOT finished AND {_LIVE}
RETURNING idx, endpoint, request, request_hash, fingerprint, attempts,
          extract(epoch FROM send_by)::float8 AS send_by,
          (SELECT slot FROM vidu_slots s WHERE s.input_id = i.input_id AND s.key = i.key) AS slot
""")

_SQL_UNDECIDABLE: Final = _sql(f"""
UPDATE vidu_items SET attention = $4, updated_at = clock_timestamp()
WHERE input_id = $2 AND key = $3 AND worker_id = $me AND NOT finished AND {_LIVE}
RETURNING 1
""")


# -- errors -----------------------------------------------------------------------------------------


class LeaseLostError(JournalError):
    """The worker's lease lapsed (or it never had one): it must stop sending and exit; another
    worker adopts its items.

    Attributes:
        worker_id: The worker whose lease is gone (``None`` when it never registered).
    """

    def __init__(self, message: str, *, worker_id: int | None, path: str = "") -> None:
        self.worker_id = worker_id
        super().__init__(message, path=path)


class SendRefusedError(JournalError):
    """The send guard refused a create: its ``send_by`` (less the margin) or the worker's lease
    deadline has passed, or the item is no longer this worker's intent. The POST must not go out.

    Attributes:
        key: The item's key.
        reason: Why, in a few words.
    """

    def __init__(self, key: str, reason: str, *, path: str = "") -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"item {key!r} must not be sent: {reason}", path=path)


# -- values -----------------------------------------------------------------------------------------


class BatchItem(NamedTuple):
    """One item of a batch as :meth:`PostgresJournal.load` takes it (a plain tuple works too);
    ``position`` is its index in the input (``tuple.index`` takes the name)."""

    key: str
    position: int
    endpoint: str
    request_json: str
    request_hash: str


@attrs.frozen(kw_only=True)
class Claim:
    """An item this worker claimed (or re-issued), with its intent written and a slot held.

    Attributes:
        key: The item's key.
        index: Its position in the input.
        endpoint: Its endpoint (the task kind).
        request_json: The request in Vidu's JSON shape.
        request_hash: The caller's hash of the request.
        fingerprint: The fingerprint the create must carry in its ``payload``.
        attempts: Submission attempts, this one included.
        slot: The organization slot it holds.
        send_by: The database's deadline for sending the create (Unix time, seconds).
        send_deadline: The same deadline on this process's monotonic clock (``anyio.current_time()``),
            measured from before the claim's transaction, so never later than ``send_by``.
    """

    key: str
    index: int
    endpoint: str
    request_json: str
    request_hash: str
    fingerprint: str
    attempts: int
    slot: int | None
    send_by: float
    send_deadline: float

    @property
    def request(self) -> dict[str, Any]:
        """The request, decoded from :attr:`request_json`."""
        value: dict[str, Any] = json.loads(self.request_json)
        return value


@attrs.frozen(kw_only=True)
class Claimed:
    """What one :meth:`PostgresJournal.claim_many` took.

    Attributes:
        claims: The items claimed, in input order (none when no slot was free or nothing pending).
        pending: Whether items of the batch were still pending when it looked (``False``: there is
            nothing left to claim; what is unfinished is held by workers).
    """

    claims: tuple[Claim, ...]
    pending: bool


@attrs.frozen(kw_only=True)
class Adopted:
    """An item taken over from a worker whose lease lapsed; its slot came with it.

    Attributes:
        action: ``"rewatch"`` (it has a task id: watch it, never create) or ``"reconcile"`` (only an
            intent: look its fingerprint up, then :meth:`PostgresJournal.record_reconciled`,
            :meth:`PostgresJournal.reissue_intent` or :meth:`PostgresJournal.mark_undecidable`).
        key: The item's key.
        index: Its position in the input.
        endpoint: Its endpoint.
        request_json: The request in Vidu's JSON shape.
        request_hash: The caller's hash of the request.
        fingerprint: The fingerprint its intent recorded.
        task_id: The task id, for ``"rewatch"``.
        attempts: Submission attempts so far.
        previous_worker: The worker whose lease lapsed.
        slot: The slot the item holds (``None`` when it held none: an item journaled through the
            :class:`~vidu_async.journal.Journal` protocol rather than claimed).
        send_by: The intent's ``send_by`` (Unix time), when it had one.
        answered_task_id: A task id a create answered to a worker that no longer owned the item
            (recorded in the orphan answers), a strong hint for the reconciliation.
    """

    action: Literal["rewatch", "reconcile"]
    key: str
    index: int
    endpoint: str
    request_json: str
    request_hash: str
    fingerprint: str
    task_id: str | None
    attempts: int
    previous_worker: int
    slot: int | None
    send_by: float | None
    answered_task_id: str | None


@attrs.frozen(kw_only=True)
class WorkerSummary:
    """One worker of a batch: its lease and the unfinished items it owns, by state."""

    worker_id: int
    name: str
    live: bool
    lease_until: float
    items: Mapping[str, int]


@attrs.frozen(kw_only=True)
class StuckItem:
    """An unfinished item that needs someone: its owner is gone, or an adopter could not decide."""

    key: str
    state: str
    worker_id: int | None
    reason: str


@attrs.frozen(kw_only=True)
class BatchSummary:
    """A batch as the database knows it, for ``vidu-async batch`` and the logs.

    Attributes:
        input_id: The batch.
        loaded: How many items the loader inserted (``None`` until a loader finished).
        states: Items per state (``pending``, ``intent``, ``submitted``, ``success``...).
        unfinished: Items not finished yet, pending ones included.
        workers: Every worker that owns an unfinished item of the batch, or registered for it and
            has a live lease.
        capacity: The organization's slots.
        slots_held: Slots held by tasks (of any batch of the organization).
        stuck: Unfinished items whose owner's lease lapsed, or that an adopter marked undecidable.
        orphan_answers: Creates answered to a worker that no longer owned the item.
    """

    input_id: str
    loaded: int | None
    states: Mapping[str, int]
    unfinished: int
    workers: tuple[WorkerSummary, ...]
    capacity: int
    slots_held: int
    stuck: tuple[StuckItem, ...]
    orphan_answers: int


@attrs.define
class PostgresJournalStats(JournalStats):
    """:class:`~vidu_async.journal.JournalStats`, plus what fencing refused.

    Attributes:
        refused_writes: Writes the fence refused (another owner, or this worker's lease lapsed).
        orphan_answers: Task ids answered to this worker for items it no longer owned (recorded).
    """

    refused_writes: int = 0
    orphan_answers: int = 0


# -- the DSN ----------------------------------------------------------------------------------------

_KEYWORD_PASSWORD: Final = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact_dsn(dsn: str) -> str:
    """``dsn`` with its password replaced by ``***`` (URL or ``key=value`` form)."""
    if "://" not in dsn:
        return _KEYWORD_PASSWORD.sub(r"\1***", dsn)
    try:
        parts = urllib.parse.urlsplit(dsn)
    except ValueError:
        return "<unreadable DSN>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}{':***' if colon else ''}@{hostinfo}"
    text = f"{parts.scheme}://{netloc}{parts.path}"
    if parts.query:
        pieces = parts.query.split("&")
        text += "?" + "&".join(
            "password=***" if piece.partition("=")[0].lower() == "password" else piece for piece in pieces
        )
    if parts.fragment:
        text += "#" + parts.fragment
    return text


def _passwords(dsn: str) -> list[str]:
    """Every password spelled in ``dsn`` (raw and percent-decoded), to scrub from messages."""
    found: list[str] = []
    for match in _KEYWORD_PASSWORD.finditer(dsn):
        found.append(match.group(2).strip("'"))
    try:
        parts = urllib.parse.urlsplit(dsn)
    except ValueError:
        return found
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        if ":" in userinfo:
            found.append(userinfo.partition(":")[2])
    found.extend(v for n, v in urllib.parse.parse_qsl(parts.query) if n.lower() == "password")
    found += [urllib.parse.unquote(p) for p in found]
    return sorted({p for p in found if p}, key=len, reverse=True)


def _pg_text(value: str) -> str:
    """``value`` as PostgreSQL text can hold it: a NUL or a lone surrogate (a server's message,
    say) becomes its JSON escape (``\\u0000``, ``\\udXXX``), which is what it means inside the JSON
    columns and readable elsewhere, rather than failing the batch's transaction."""
    if "\x00" in value:
        value = value.replace("\x00", "\\u0000")
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _pg_texts(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Every string of ``values`` through :func:`_pg_text`."""
    return tuple(_pg_text(v) if isinstance(v, str) else v for v in values)


def _asyncpg() -> Any:
    """The asyncpg module, or the :class:`ConfigurationError` naming the extra that brings it."""
    try:
        import asyncpg
    except ImportError as exc:
        raise ConfigurationError(
            "the PostgreSQL journal needs asyncpg: pip install 'vidu-async[postgres]'"
        ) from exc
    return asyncpg


def _entry(row: Sequence[Any]) -> JournalEntry:
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
        finished=finished,
        credits=credits,
        err_code=err_code,
        task_json=task,
        error=error,
        attempts=attempts,
        files=() if files == _EMPTY_ARRAY else tuple(json.loads(files)),
        created_at=created_at,
        updated_at=updated_at,
    )


class _Waiter:
    """Where the writer hands a durable queued operation's outcome back to its caller."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.error: JournalError | None = None


# A queued operation: applied by the writer on its connection, inside the batch's transaction.
# It returns the error its caller (if waiting) should see, or None.
_Apply = Callable[["asyncpg.Connection[Any]"], Awaitable[JournalError | None]]


class PostgresJournal:
    """A :class:`~vidu_async.journal.Journal` in PostgreSQL, shared by many workers.

    ::

        async with PostgresJournal("postgresql://vidu@db/vidu", worker_name="pod-3") as journal:
            await journal.load(input_id, items)          # one loader inserts; the others join
            await journal.register()                     # a lease, renewed in the background
            await journal.set_capacity(12)               # the organization's slots
            while (claim := await journal.claim(fingerprint=make_fingerprint)) is not None:
                await journal.guard_send(claim.key)      # right before the POST
                ...

    One journal object serves one batch (its ``input_id``) and one worker. The methods that are
    not coroutines (:meth:`record_submitted`, :meth:`record_result`, :meth:`rename_key`) queue their
    write for a background writer that commits whatever accumulated in one transaction; the
    coroutines write at once. Every write is fenced: it changes the item only while this worker
    owns it and its lease is live, and a refused write is reported (a ``False`` return, an error,
    a warning in the log, :attr:`stats`), never silent.

    Args:
        dsn: A libpq connection string or URL (``postgresql://user:password@host/db``). Kept
            secret: a repr, a log line or an error shows it with the password redacted.
        worker_name: How the worker appears in :meth:`summary` (default ``host:pid``).
        org: The organization whose capacity the slots count (one per Vidu account).
        lease_seconds: How long a lease lasts without a heartbeat.
        heartbeat_every: How often the background heartbeat renews the lease (default a third of
            the lease); ``None`` with ``auto_heartbeat=False`` leaves it to the caller.
        auto_heartbeat: Renew the lease in the background once :meth:`register` returns.
        send_window: Seconds from a claim (or re-issue) to its intent's ``send_by``.
        send_margin: The guard refuses a create this many seconds before ``send_by`` or the lease
            deadline: the time a create may need to reach the server.
        min_connections: The pool's idle connections.
        max_connections: The pool's most connections (the ``LISTEN`` connection is extra).
        connect_timeout: Seconds to wait for a connection.
        max_batch: The most queued operations one transaction takes.

    Raises:
        ConfigurationError: asyncpg is not installed (the ``postgres`` extra).
        ValueError: An argument is out of range.
    """

    def __init__(
        self,
        dsn: str,
        *,
        worker_name: str | None = None,
        org: str = "default",
        lease_seconds: float = 30.0,
        heartbeat_every: float | None = None,
        auto_heartbeat: bool = True,
        send_window: float = 60.0,
        send_margin: float = 5.0,
        min_connections: int = 1,
        max_connections: int = 4,
        connect_timeout: float = 10.0,
        max_batch: int = 1024,
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, not {lease_seconds}")
        if heartbeat_every is not None and not 0 < heartbeat_every < lease_seconds:
            raise ValueError(
                f"heartbeat_every must be positive and below lease_seconds, not {heartbeat_every}"
            )
        if send_window <= 0 or send_margin < 0 or send_margin >= send_window:
            raise ValueError("send_window must be positive and send_margin between 0 and send_window")
        if not 0 <= min_connections <= max_connections or max_connections < 1:
            raise ValueError("need 0 <= min_connections <= max_connections and max_connections >= 1")
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self._asyncpg = _asyncpg()
        self._dsn = Secret(dsn)
        self._shown = redact_dsn(dsn)
        self._scrub = _passwords(dsn)
        self.worker_name = worker_name or f"{socket.gethostname()}:{os.getpid()}"
        self.org = org
        self.lease_seconds = float(lease_seconds)
        # How long the server lets one of our sessions sit idle inside a transaction (see __aenter__).
        self._idle_timeout_ms = max(10_000, math.ceil(self.lease_seconds * 1000))
        self.heartbeat_every = float(heartbeat_every) if heartbeat_every else self.lease_seconds / 3
        self.auto_heartbeat = auto_heartbeat
        self.send_window = float(send_window)
        self.send_margin = float(send_margin)
        self._pool_sizes = (min_connections, max_connections)
        self._connect_timeout = connect_timeout
        self._max_batch = max_batch
        self.stats = PostgresJournalStats()

        self._pool: asyncpg.Pool[Any] | None = None
        self._listener: asyncpg.Connection[Any] | None = None
        self._changed = anyio.Event()
        self._listen_lock = anyio.Lock()
        self._input_id: str | None = None
        self._worker_id: int | None = None
        # The lease's end on this process's monotonic clock: measured from before the statement
        # that set it, so it is never later than the database's.
        self._lease_deadline = -float("inf")
        self._lease_lost = False
        # Local send deadlines of this worker's claims (monotonic), for the guard.
        self._send_deadlines: dict[str, float] = {}
        self._queue: collections.deque[tuple[_Apply, _Waiter | None]] = collections.deque()
        self._wake = anyio.Event()
        self._writer_done = anyio.Event()
        self._task_group: anyio.abc.TaskGroup | None = None
        self._state: Literal["new", "open", "closing", "closed"] = "new"
        self._failure: str | None = None

    def __repr__(self) -> str:
        worker = f" worker {self._worker_id}" if self._worker_id is not None else ""
        return f"<PostgresJournal {self._shown!r}{worker} {self._state}>"

    # -- properties --------------------------------------------------------------------------

    @property
    def dsn(self) -> str:
        """The DSN with its password redacted (the real one is never shown)."""
        return self._shown

    @property
    def input_id(self) -> str | None:
        """The batch this journal serves, once :meth:`open_input` or :meth:`load` named it."""
        return self._input_id

    @property
    def worker_id(self) -> int | None:
        """This worker's id, once :meth:`register` returned; never reused by another worker."""
        return self._worker_id

    @property
    def lease_lost(self) -> bool:
        """Whether a heartbeat found the lease lapsed: the worker must stop sending and exit."""
        return self._lease_lost

    @property
    def lease_deadline(self) -> float:
        """The lease's end on the monotonic clock (``anyio.current_time()``); ``-inf`` unregistered."""
        return self._lease_deadline

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Connect, create or migrate the schema, and start the background writer.

        Raises:
            JournalError: The database cannot be reached, or its schema is newer than this release.
        """
        if self._state != "new":
            raise RuntimeError("a PostgresJournal can be opened only once")
        asyncpg = self._asyncpg
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn.reveal(),
                min_size=self._pool_sizes[0],
                max_size=self._pool_sizes[1],
                timeout=self._connect_timeout,
                # A worker frozen inside a transaction (SIGSTOP, a stalled host) would hold its locks
                # (the org row of a claim, say) for ever and stop every newcomer:
                # the server ends such a session after a lease's length, the time after which the
                # worker counts as gone anyway.
                server_settings={"idle_in_transaction_session_timeout": str(self._idle_timeout_ms)},
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise self._error("cannot connect to the journal's database", exc) from None
        try:
            async with self._connection() as conn:
                await migrate(conn, where=self._shown)
            self._task_group = anyio.create_task_group()
            await self._task_group.__aenter__()
            self._task_group.start_soon(self._run_writer, name=f"journal writer {self._shown}")
        except BaseException:
            self._state = "closed"
            with anyio.CancelScope(shield=True):
                await self._pool.close()
            raise
        self._state = "open"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        """Commit everything queued, end the lease (the worker's unfinished items become adoptable
        at once), and close every connection."""
        if self._state != "open":
            return None
        self._state = "closing"
        self._wake.set()
        assert self._task_group is not None
        assert self._pool is not None
        try:
            with anyio.CancelScope(shield=True):
                await self._writer_done.wait()
                self._task_group.cancel_scope.cancel()  # the heartbeat
            suppress = await self._task_group.__aexit__(exc_type, exc, tb)
            with anyio.CancelScope(shield=True):
                await self._retire()
        finally:
            self._state = "closed"
            with anyio.CancelScope(shield=True):
                if self._listener is not None:
                    await self._listener.close()
                await self._pool.close()
        if self._failure is not None and exc is None:
            raise self._failed()
        return suppress

    async def _retire(self) -> None:
        if self._worker_id is None or self._lease_lost:
            return
        try:
            async with self._connection() as conn:
                await conn.execute(
                    "UPDATE vidu_workers SET lease_until = LEAST(lease_until, clock_timestamp()),"
                    " stopped_at = clock_timestamp() WHERE worker_id = $1",
                    self._worker_id,
                )
        except JournalError as exc:
            logger.warning("%s: could not end worker %s's lease: %s", self._shown, self._worker_id, exc)

    # -- plumbing ----------------------------------------------------------------------------

    def _error(self, message: str, exc: BaseException) -> JournalError:
        """A JournalError for ``exc`` whose text holds no password."""
        return JournalError(f"{message}: {self._clean(f'{type(exc).__name__}: {exc}')}", path=self._shown)

    def _clean(self, text: str) -> str:
        for secret in self._scrub:
            text = text.replace(secret, "***")
        return text

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise self._failed()
        if self._state != "open":
            raise JournalError(f"the journal is {self._state}: use it inside `async with`", path=self._shown)

    def _failed(self) -> JournalError:
        return JournalError(f"the journal can no longer be written: {self._failure}", path=self._shown)

    @functools.cached_property
    def _db_errors(self) -> tuple[type[BaseException], ...]:
        asyncpg = self._asyncpg
        return (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

    def _connection(self) -> _Connection:
        """An async context manager: a pool connection whose database errors become JournalError."""
        return _Connection(self)

    def _need_input(self) -> str:
        if self._input_id is None:
            raise JournalError("no batch yet: call open_input() or load() first", path=self._shown)
        return self._input_id

    def _need_worker(self) -> int:
        if self._worker_id is None:
            raise LeaseLostError("this worker never registered: call register() first", worker_id=None)
        return self._worker_id

    async def _explain_refusal(self, conn: asyncpg.Connection[Any], key: str) -> str:
        """Why a fenced write to ``key`` changed nothing, in a few words (and count it)."""
        self.stats.refused_writes += 1
        owner = await conn.fetchrow(
            "SELECT worker_id, finished FROM vidu_items WHERE input_id = $1 AND key = $2", self._input_id, key
        )
        if owner is None:
            return "no such item"
        me_live = await conn.fetchval(
            "SELECT lease_until > clock_timestamp() FROM vidu_workers WHERE worker_id = $1", self._worker_id
        )
        if not me_live:
            self._lease_lost = True
            return f"worker {self._worker_id}'s lease lapsed"
        if owner["worker_id"] != self._worker_id:
            return f"owned by worker {owner['worker_id']}, not {self._worker_id}"
        return "finished" if owner["finished"] else "not in a state that allows it"

    # -- schema and batches ------------------------------------------------------------------

    async def schema_version(self) -> int:
        """The database's schema version (this release writes :data:`SCHEMA_VERSION`)."""
        self._check_usable()
        async with self._connection() as conn:
            return await _read_version(conn)

    async def open_input(self, input_id: str) -> None:
        """Tie the journal to one batch (created when new) and register this worker when it has
        not yet; see :meth:`Journal.open_input`.

        A database holds many batches, so another input is not an error; one journal object
        serves one batch, though.

        Raises:
            JournalError: The journal already serves another batch, or the database failed.
        """
        self._check_usable()
        self._set_input(input_id)
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO vidu_batches (input_id) VALUES ($1) ON CONFLICT DO NOTHING", input_id
            )
        if self._worker_id is None:
            await self.register()

    def _set_input(self, input_id: str) -> None:
        if self._input_id is not None and self._input_id != input_id:
            raise JournalError(
                f"this journal serves batch {self._input_id!r}, not {input_id!r}: use one journal per batch",
                path=self._shown,
            )
        self._input_id = input_id

    async def load(
        self,
        input_id: str,
        items: Iterable[BatchItem | tuple[str, int, str, str, str]]
        | AsyncIterable[BatchItem | tuple[str, int, str, str, str]],
        *,
        chunk: int = 5000,
    ) -> int:
        """Load the batch's items unless it is loaded or another live worker is loading it; returns
        how many this call inserted.

        The loader is one worker at a time: this one takes the part (registering first when it has
        not) when nobody has it, or when its holder's lease lapsed or it gave the part up. It then
        reads ``items`` and commits them (state ``pending``) a chunk at a time, so that the workers
        claim the first items while it reads on (the first chunks are small, and one is committed
        at least every quarter of a second, whatever the chunk size). Each commit is fenced by the
        part and the lease, and inserts only keys the batch does not have: a loader that takes over
        from one that died reads the input from the start and adds only what is missing, and a
        stale loader adds nothing. When it has read everything it marks the batch loaded (its item
        count). Otherwise (the batch is loaded, or being loaded) it returns 0 and ``items`` is not
        even read: :meth:`loaded` says whether the batch is whole.

        Args:
            input_id: The batch: the sha256 of its input.
            items: ``(key, index, endpoint, request_json, request_hash)`` per item, a sync or an
                async iterable (read lazily, only by the loader).
            chunk: The most items per commit.

        Raises:
            JournalError: The journal serves another batch, or the database failed. A loader that
                fails (its input, say) gives the part up first, so that another worker may finish
                the load.
        """
        self._check_usable()
        self._set_input(input_id)
        if self._worker_id is None:
            await self.open_input(input_id)
        me = self._need_worker()
        async with self._connection() as conn:
            taken = await conn.fetchval(_SQL_TAKE_LOADING, me, input_id)
        if not taken:
            return 0
        inserted = 0
        try:
            pending: list[tuple[str, int, str, str, str]] = []
            size = min(chunk, _FIRST_CHUNK)
            since = anyio.current_time()
            async for item in _aiter(items):
                key, position, endpoint, request_json, request_hash = item
                pending.append(
                    (
                        _pg_text(key),
                        position,
                        _pg_text(endpoint),
                        _pg_text(request_json),
                        _pg_text(request_hash),
                    )
                )
                if len(pending) >= size or anyio.current_time() - since >= _CHUNK_SECONDS:
                    added = await self._insert_chunk(input_id, pending)
                    if added is None:
                        return inserted
                    inserted += added
                    pending = []
                    size = min(chunk, size * 4)
                    since = anyio.current_time()
            if pending:
                added = await self._insert_chunk(input_id, pending)
                if added is None:
                    return inserted
                inserted += added
            async with self._connection() as conn, conn.transaction():
                done = await conn.fetchval(_SQL_LOADED, me, input_id)
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, self.org)
            if done is None:
                logger.warning("%s: worker %d lost the load of batch %s", self._shown, me, input_id[:16])
        except BaseException:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                async with self._connection() as conn:
                    await conn.execute(
                        "UPDATE vidu_batches SET loader = NULL WHERE input_id = $2 AND loader = $1 AND items IS NULL",
                        me,
                        input_id,
                    )
            raise
        return inserted

    async def _insert_chunk(self, input_id: str, pending: list[tuple[str, int, str, str, str]]) -> int | None:
        """Commit one chunk of a load (keys the batch has are skipped); ``None`` when this worker is
        not the batch's loader any more (its lease lapsed, another took over): nothing was written."""
        async with self._connection() as conn, conn.transaction():
            if not await conn.fetchval(_SQL_STILL_LOADING, self._need_worker(), input_id):
                logger.warning(
                    "%s: worker %d is no longer loading batch %s", self._shown, self._worker_id, input_id[:16]
                )
                return None
            added = await _insert_items(conn, input_id, pending)
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, self.org)
        return added

    async def loaded(self) -> bool:
        """Whether the batch's every item is in the database (a loader read its whole input)."""
        self._check_usable()
        input_id = self._need_input()
        async with self._connection() as conn:
            count = await conn.fetchval("SELECT items FROM vidu_batches WHERE input_id = $1", input_id)
        return count is not None

    # -- workers and leases ------------------------------------------------------------------

    async def register(self) -> int:
        """Register this worker: a new id (never reused) and a lease of ``lease_seconds`` on the
        database's clock; starts the background heartbeat when ``auto_heartbeat``.

        Raises:
            JournalError: The journal already registered a worker, or the database failed.
        """
        self._check_usable()
        if self._worker_id is not None:
            raise JournalError(f"this journal already registered worker {self._worker_id}", path=self._shown)
        started = anyio.current_time()
        async with self._connection() as conn:
            worker_id: int = await conn.fetchval(
                "INSERT INTO vidu_workers (input_id, name, host, pid, lease_until)"
                " VALUES ($5, $1, $2, $3, clock_timestamp() + make_interval(secs => $4)) RETURNING worker_id",
                self.worker_name,
                socket.gethostname(),
                os.getpid(),
                self.lease_seconds,
                self._input_id,
            )
        self._worker_id = worker_id
        self._lease_deadline = started + self.lease_seconds
        logger.info("%s: registered worker %d (%s)", self._shown, worker_id, self.worker_name)
        if self.auto_heartbeat:
            assert self._task_group is not None
            self._task_group.start_soon(self._run_heartbeat, name=f"journal heartbeat {worker_id}")
        return worker_id

    async def heartbeat(self) -> float:
        """Renew the lease, only while it is live; returns the new local lease deadline.

        Raises:
            LeaseLostError: The lease had lapsed (another worker may have adopted the items): the
                worker must stop sending and exit.
        """
        self._check_usable()
        me = self._need_worker()
        if self._lease_lost:
            raise LeaseLostError(f"worker {me}'s lease lapsed", worker_id=me, path=self._shown)
        started = anyio.current_time()
        async with self._connection() as conn:
            renewed = await conn.fetchval(
                "UPDATE vidu_workers SET lease_until = clock_timestamp() + make_interval(secs => $2),"
                " heartbeats = heartbeats + 1"
                " WHERE worker_id = $1 AND lease_until > clock_timestamp() AND stopped_at IS NULL"
                " RETURNING worker_id",
                me,
                self.lease_seconds,
            )
        if renewed is None:
            self._lease_lost = True
            self._lease_deadline = -float("inf")
            raise LeaseLostError(
                f"worker {me}'s lease lapsed before its heartbeat: stop sending and exit",
                worker_id=me,
                path=self._shown,
            )
        self._lease_deadline = started + self.lease_seconds
        return self._lease_deadline

    async def _run_heartbeat(self) -> None:
        while True:
            await anyio.sleep(self.heartbeat_every)
            if self._state != "open":
                return  # closing: the lease is about to end anyway
            try:
                await self.heartbeat()
            except LeaseLostError as exc:
                logger.error("%s", exc)
                return
            except JournalError as exc:
                # A database hiccup: the local deadline keeps the send guard honest meanwhile.
                logger.warning("%s: heartbeat failed, retrying: %s", self._shown, exc)

    # -- capacity ----------------------------------------------------------------------------

    async def set_capacity(self, capacity: int) -> None:
        """Make the organization's capacity ``capacity`` slots.

        Growing adds free slots. Shrinking removes the free slots above the new capacity at once
        and never takes a held one: a slot above it stays with its task until the task ends, and
        until then nothing is claimed, so the slots held never outnumber the capacity.

        Raises:
            ValueError: ``capacity`` is negative.
        """
        if capacity < 0:
            raise ValueError(f"capacity must not be negative, not {capacity}")
        self._check_usable()
        async with self._connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO vidu_orgs (org, capacity) VALUES ($1, $2)"
                " ON CONFLICT (org) DO UPDATE SET capacity = excluded.capacity",
                self.org,
                capacity,
            )
            await conn.execute(
                "INSERT INTO vidu_slots (org, slot) SELECT $1, g FROM generate_series(0, $2 - 1) g"
                " ON CONFLICT DO NOTHING",
                self.org,
                capacity,
            )
            await conn.execute(
                "DELETE FROM vidu_slots WHERE org = $1 AND slot >= $2 AND input_id IS NULL",
                self.org,
                capacity,
            )
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, self.org)

    async def capacity(self) -> tuple[int, int]:
        """The organization's capacity and how many slots tasks hold now."""
        self._check_usable()
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "SELECT COALESCE((SELECT capacity FROM vidu_orgs WHERE org = $1), 0),"
                " (SELECT count(*) FROM vidu_slots WHERE org = $1 AND input_id IS NOT NULL)",
                self.org,
            )
        assert row is not None
        return int(row[0]), int(row[1])

    # -- claiming and sending ----------------------------------------------------------------

    async def _need_live(self, conn: asyncpg.Connection[Any], me: int, what: str) -> None:
        """Raise :class:`LeaseLostError` (saying what the worker did not do) unless its lease is live."""
        if not await conn.fetchval(_sql(f"SELECT {_LIVE}"), me):
            self._lease_lost = True
            raise LeaseLostError(f"worker {me}'s lease lapsed: {what}", worker_id=me, path=self._shown)

    async def _hold_slots_for(
        self, conn: asyncpg.Connection[Any], me: int, what: str, limit: int, select: str, *args: Any
    ) -> tuple[list[int], list[asyncpg.Record]]:
        """In the caller's transaction, as this live worker: take up to ``limit`` free slots below
        the organization's capacity (none while a shrink is in progress), then as many items as
        ``select`` (whose last parameter is the count) gives, and hold one slot for each; returns the
        slots and the items, paired in order.

        Raises:
            LeaseLostError: This worker's lease lapsed (saying that it did ``what``).
        """
        await self._need_live(conn, me, what)
        org = await conn.fetchrow(_SQL_CAPACITY, self.org)
        if org is None or org["shrinking"]:
            return [], []
        slots = [row[0] for row in await conn.fetch(_SQL_FREE_SLOTS, self.org, org["capacity"], limit)]
        if not slots:
            return [], []
        rows = await conn.fetch(select, *args, len(slots))
        slots = slots[: len(rows)]
        if rows:
            input_id = self._need_input()
            await conn.execute(_SQL_HOLD_SLOTS, self.org, slots, input_id, me, [row["key"] for row in rows])
        return slots, list(rows)

    async def claim(self, *, fingerprint: Callable[[str, dict[str, Any]], str]) -> Claim | None:
        """Claim the next pending item and a free slot: :meth:`claim_many` for one item.

        Returns:
            The claim, or ``None`` when no item is pending or no slot is free (then
            :meth:`wait_for_change`).

        Raises:
            LeaseLostError: This worker's lease lapsed (nothing was claimed).
        """
        claimed = await self.claim_many(fingerprint=fingerprint, limit=1)
        return claimed.claims[0] if claimed.claims else None

    async def claim_many(self, *, fingerprint: Callable[[str, dict[str, Any]], str], limit: int) -> Claimed:
        """Claim up to ``limit`` pending items, each with a free slot, and write their intents, in
        one transaction.

        Slots and items are taken ``FOR UPDATE SKIP LOCKED``, so concurrent claimers never wait for
        each other nor take the same item or slot; items go in input order. Each intent records its
        fingerprint and ``send_by`` (the database's now + ``send_window``) and is committed when
        this returns: send only after :meth:`guard_send`.

        Args:
            fingerprint: Called with each item's endpoint and request, inside the transaction:
                the fingerprint its create will carry in ``payload`` ("" when it cannot carry one).
            limit: The most items to claim (at least 1).

        Returns:
            The claims (none when no slot is free or no item is pending), and whether items were
            left pending.

        Raises:
            LeaseLostError: This worker's lease lapsed (nothing was claimed).
            ValueError: ``limit`` is below 1.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self._check_usable()
        input_id = self._need_input()
        me = self._need_worker()
        started = anyio.current_time()
        async with self._connection() as conn, conn.transaction():
            slots, rows = await self._hold_slots_for(
                conn, me, "it claims nothing", limit, _SQL_NEXT_PENDING, input_id
            )
            if not rows:
                # No free slot, or nothing pending (or every pending item in another claim now).
                return Claimed(claims=(), pending=bool(await conn.fetchval(_SQL_ANY_PENDING, input_id)))
            keys = [row["key"] for row in rows]
            marks = {
                row["key"]: _pg_text(fingerprint(row["endpoint"], json.loads(row["request"]))) for row in rows
            }
            claimed = await conn.fetch(
                _SQL_CLAIM_ITEMS, me, input_id, keys, [marks[key] for key in keys], self.send_window
            )
        deadline = started + self.send_window
        by_key = {row["key"]: row for row in claimed}
        claims = []
        for key, slot in zip(keys, slots, strict=True):
            row = by_key[key]
            self._send_deadlines[key] = deadline
            claims.append(
                Claim(
                    key=key,
                    index=row["idx"],
                    endpoint=row["endpoint"],
                    request_json=row["request"],
                    request_hash=row["request_hash"],
                    fingerprint=marks[key],
                    attempts=row["attempts"],
                    slot=slot,
                    send_by=row["send_by"],
                    send_deadline=deadline,
                )
            )
        return Claimed(claims=tuple(claims), pending=True)

    async def guard_send(self, key: str) -> None:
        """Allow the create of ``key`` to be sent now, or raise: call it right before the POST.

        Refused when, on this process's monotonic clock, less than ``send_margin`` remains of the
        intent's ``send_by`` or of the worker's lease (no database needed to say no), and when the
        database says the item is not this worker's intent any more, its lease lapsed, or
        ``send_by`` (less the margin) has passed on its clock.

        Raises:
            SendRefusedError: The create must not be sent (the reason says why).
        """
        self._check_usable()
        input_id = self._need_input()
        me = self._need_worker()
        now = anyio.current_time()
        if now + self.send_margin > self._lease_deadline:
            raise SendRefusedError(key, f"worker {me}'s lease deadline is too near or past", path=self._shown)
        deadline = self._send_deadlines.get(key)
        if deadline is not None and now + self.send_margin > deadline:
            raise SendRefusedError(key, "its send_by is too near or past", path=self._shown)
        async with self._connection() as conn:
            row = await conn.fetchrow(
                "SELECT i.worker_id = $3 AS mine, i.state, w.lease_until > clock_timestamp() AS live,"
                " i.send_by - make_interval(secs => $4) > clock_timestamp() AS in_time"
                " FROM vidu_items i JOIN vidu_workers w ON w.worker_id = $3"
                " WHERE i.input_id = $1 AND i.key = $2",
                input_id,
                key,
                me,
                self.send_margin,
            )
        if row is None:
            raise SendRefusedError(key, "no such item", path=self._shown)
        if not row["live"]:
            self._lease_lost = True
            raise SendRefusedError(key, f"worker {me}'s lease lapsed", path=self._shown)
        if not row["mine"] or row["state"] != STATE_INTENT:
            raise SendRefusedError(key, f"it is not worker {me}'s intent any more", path=self._shown)
        if not row["in_time"]:
            raise SendRefusedError(key, "its send_by is too near or past", path=self._shown)

    async def may_send(self, key: str) -> bool:
        """:meth:`guard_send` as a yes or no (a refusal is logged)."""
        try:
            await self.guard_send(key)
        except SendRefusedError as exc:
            logger.warning("%s", exc)
            return False
        return True

    # -- fenced writes -----------------------------------------------------------------------

    async def submitted(self, key: str, task_id: str, credits: int | None = None) -> bool:
        """Record the task id a create answered with; durable when this returns.

        Returns:
            ``True`` when written. ``False`` when this worker no longer owns the item or its lease
            lapsed: the answer is then recorded in the orphan answers (an adopter's
            :attr:`Adopted.answered_task_id`) and logged, never lost.
        """
        self._check_usable()
        async with self._connection() as conn:
            error = await self._apply_submitted(conn, key, task_id, credits)
        return error is None

    async def _apply_submitted(
        self, conn: asyncpg.Connection[Any], key: str, task_id: str, credits: int | None
    ) -> JournalError | None:
        input_id = self._need_input()
        me = self._need_worker()
        key, task_id = _pg_text(key), _pg_text(task_id)
        row = await conn.fetchrow(_SQL_SUBMITTED, me, input_id, key, task_id, credits)
        assert row is not None
        if row["updated"]:
            self._send_deadlines.pop(key, None)
            return None
        if row["orphaned"]:
            self.stats.orphan_answers += 1
            self.stats.refused_writes += 1
            logger.warning(
                "%s: task %s of item %r answered worker %d, which no longer owns it (owner: worker %s);"
                " recorded as an orphan answer",
                self._shown,
                task_id,
                key,
                me,
                row["owner"],
            )
            return JournalError(
                f"item {key!r} is not worker {me}'s: task {task_id} recorded as an orphan answer"
            )
        self.stats.unknown_keys += 1
        logger.warning(
            "%s: task %s for item %r, which the batch does not have; ignored", self._shown, task_id, key
        )
        return JournalError(f"item {key!r} is not in the batch")

    async def finish(
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
    ) -> bool:
        """End the item and free its slot, in one statement, then wake the waiting workers.

        Returns:
            ``True`` when written; ``False`` (logged) when this worker does not own the item or its
            lease lapsed: nothing changed, and the item's owner finishes it.
        """
        self._check_usable()
        args = self._result_args(
            key, state, task, err_code, credits, error, attempts, files, None, None, None
        )
        async with self._connection() as conn:
            error_ = await self._apply_result(conn, args, insert=False)
        return error_ is None

    def _result_args(
        self,
        key: str,
        state: str,
        task: Mapping[str, Any] | None,
        err_code: str,
        credits: int | None,
        error: str | None,
        attempts: int | None,
        files: Iterable[str | os.PathLike[str]],
        index: int | None,
        request: Mapping[str, Any] | None,
        endpoint: str | None,
    ) -> tuple[Any, ...]:
        paths = [os.fspath(f) for f in files]
        return _pg_texts(
            (
                key,
                str(state),
                credits,
                err_code,
                None if task is None else _convert.dumps(task),
                error,
                attempts,
                _convert.dumps(paths) if paths else _EMPTY_ARRAY,
                -1 if index is None else index,
                _EMPTY_OBJECT if request is None else _convert.dumps(request),
                DEFAULT_ENDPOINT if endpoint is None else str(endpoint),
            )
        )

    async def _apply_result(
        self, conn: asyncpg.Connection[Any], args: tuple[Any, ...], *, insert: bool
    ) -> JournalError | None:
        input_id = self._need_input()
        me = self._need_worker()
        key, state, credits, err_code, task, error, attempts, files, index, request, endpoint = args
        row = await conn.fetchrow(
            _SQL_FINISH, me, input_id, key, state, credits, err_code, task, error, attempts, files, self.org
        )
        assert row is not None
        if row["done"]:
            self._send_deadlines.pop(key, None)
            return None
        if insert:
            status = await conn.execute(
                _SQL_RESULT_INSERT,
                me,
                input_id,
                key,
                state,
                credits,
                err_code,
                task,
                error,
                attempts,
                files,
                index,
                request,
                endpoint,
            )
            if status.endswith(" 1"):
                return None
        why = await self._explain_refusal(conn, key)
        logger.warning("%s: the result %r of item %r was not written: %s", self._shown, state, key, why)
        return JournalError(f"the result of item {key!r} was not written: {why}", path=self._shown)

    async def release(self, key: str) -> bool:
        """Give a claimed item back (pending again) and free its slot: for a create proven never
        sent (the guard refused it, or it was refused before the server took it).

        Returns:
            ``True`` when released; ``False`` (logged) when the worker does not own the intent.
        """
        self._check_usable()
        input_id = self._need_input()
        me = self._need_worker()
        async with self._connection() as conn, conn.transaction():
            done = await conn.fetchval(
                _SQL_RELEASE,
                me,
                input_id,
                key,
            )
            if done is None:
                why = await self._explain_refusal(conn, key)
                logger.warning("%s: item %r was not released: %s", self._shown, key, why)
                return False
            await conn.execute(
                "UPDATE vidu_slots SET input_id = NULL, key = NULL, worker_id = NULL, held_since = NULL"
                " WHERE input_id = $1 AND key = $2",
                input_id,
                key,
            )
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, self.org)
        self._send_deadlines.pop(key, None)
        return True

    # -- adoption ----------------------------------------------------------------------------

    async def adopt_expired(self, *, limit: int = 1000, undecidable: bool = True) -> list[Adopted]:
        """Take over unfinished items of workers whose lease lapsed, with their slots.

        An item with a task id comes back as ``"rewatch"`` (watch it; never create). One with only
        an intent is taken once its ``send_by`` has passed (until then its worker may still send
        it) and comes back as ``"reconcile"``: look its fingerprint up, then call
        :meth:`record_reconciled` (found), :meth:`reissue_intent` (proven absent) or
        :meth:`mark_undecidable`. Concurrent adopters never take the same item.

        Args:
            limit: The most items taken by one call.
            undecidable: Take items an adopter marked undecidable too (a worker that arrives tries
                them again once; one already running leaves them, so that two workers never pass
                the same unresolved item back and forth).

        Raises:
            LeaseLostError: This worker's own lease lapsed (nothing was adopted).
        """
        self._check_usable()
        input_id = self._need_input()
        me = self._need_worker()
        async with self._connection() as conn:
            rows = await conn.fetch(_SQL_ADOPT, me, input_id, limit, undecidable)
            if not rows:
                await self._need_live(conn, me, "it adopts nothing")
        adopted = [
            _adopted(
                row,
                previous_worker=row["old"],
                slot=row["slot"],
                send_by=row["send_by"],
                answered=row["answered"],
            )
            for row in rows
        ]
        for item in adopted:
            logger.info(
                "%s: worker %d adopted item %r of worker %d (%s)",
                self._shown,
                me,
                item.key,
                item.previous_worker,
                item.action,
            )
        return adopted

    async def reopen_refused(self) -> int:
        """Put back to ``pending`` the items that ended in an error without a task (their create was
        refused before the service took it, or never sent): a re-run tries them again, as a re-run
        of a SQLite batch does. Items that ended with a task, whatever its state, stay as they are.
        Returns how many were reopened.

        Raises:
            LeaseLostError: This worker's lease lapsed (nothing changed).
        """
        self._check_usable()
        input_id = self._need_input()
        me = self._need_worker()
        async with self._connection() as conn, conn.transaction():
            await self._need_live(conn, me, "it reopens nothing")
            status = await conn.execute(
                "UPDATE vidu_items SET state = 'pending', finished = false, worker_id = NULL, error = NULL,"
                " err_code = '', send_by = NULL, attention = NULL, updated_at = clock_timestamp()"
                " WHERE input_id = $1 AND finished AND state = $2 AND task_id IS NULL",
                input_id,
                STATE_ERROR,
            )
            reopened = int(status.rsplit(" ", 1)[1])
            if reopened:
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, self.org)
        return reopened

    async def rewatch_ended_tasks(self, *, limit: int) -> list[Adopted]:
        """Take back up to ``limit`` items that ended in an error although they have a task (the
        wait timed out, or the service did not know the task for a while), each with a free slot,
        to watch their task again: a re-run collects what such a task made, as a re-run of a SQLite
        batch does, and never creates it again. The items become this worker's (``"rewatch"``);
        those left over for want of a free slot stay as they are, for a later run.

        Raises:
            LeaseLostError: This worker's lease lapsed (nothing changed).
            ValueError: ``limit`` is below 1.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self._check_usable()
        input_id = self._need_input()
        me = self._need_worker()
        async with self._connection() as conn, conn.transaction():
            slots, rows = await self._hold_slots_for(
                conn, me, "it takes nothing back", limit, _SQL_ENDED_WITH_A_TASK, input_id, STATE_ERROR
            )
            if rows:
                await conn.execute(_SQL_REWATCH, me, input_id, [row["key"] for row in rows])
        taken = [
            _adopted(row, previous_worker=row["worker_id"], slot=slot, send_by=None, answered=None)
            for row, slot in zip(rows, slots, strict=True)
        ]
        for item in taken:
            logger.info("%s: worker %d watches the task of item %r again", self._shown, me, item.key)
        return taken

    async def record_reconciled(self, key: str, task_id: str, credits: int | None = None) -> bool:
        """Record the task an adopted intent's fingerprint found (the item is then re-watched);
        fenced like :meth:`submitted`, whose return it shares."""
        return await self.submitted(key, task_id, credits)

    async def reissue_intent(self, key: str) -> Claim:
        """A new intent for an adopted item whose create was proven never made: the same
        fingerprint, a new ``send_by``, one more attempt; the slot stays. Send it after
        :meth:`guard_send`.

        Raises:
            LeaseLostError: This worker's lease lapsed.
            JournalError: The worker does not own the item, or it is not an intent without a task id.
        """
        self._check_usable()
        input_id = self._need_input()
        me = self._need_worker()
        started = anyio.current_time()
        async with self._connection() as conn:
            row = await conn.fetchrow(
                _SQL_REISSUE,
                me,
                input_id,
                key,
                self.send_window,
            )
            if row is None:
                why = await self._explain_refusal(conn, key)
                if self._lease_lost:
                    raise LeaseLostError(f"worker {me}'s lease lapsed", worker_id=me, path=self._shown)
                raise JournalError(f"item {key!r} cannot be re-issued: {why}", path=self._shown)
        deadline = started + self.send_window
        self._send_deadlines[key] = deadline
        return Claim(
            key=key,
            index=row["idx"],
            endpoint=row["endpoint"],
            request_json=row["request"],
            request_hash=row["request_hash"],
            fingerprint=row["fingerprint"],
            attempts=row["attempts"],
            slot=row["slot"],
            send_by=row["send_by"],
            send_deadline=deadline,
        )

    async def mark_undecidable(self, key: str, why: str) -> bool:
        """Report an adopted intent whose create could be neither found nor proven absent: it
        keeps its slot and shows in :meth:`summary` as stuck. Fenced; ``False`` when refused."""
        self._check_usable()
        input_id = self._need_input()
        me = self._need_worker()
        async with self._connection() as conn:
            done = await conn.fetchval(
                _SQL_UNDECIDABLE,
                me,
                input_id,
                key,
                _pg_text(why),
            )
            if done is None:
                reason = await self._explain_refusal(conn, key)
                logger.warning("%s: item %r was not marked undecidable: %s", self._shown, key, reason)
                return False
        logger.error("%s: item %r is undecidable and keeps its slot: %s", self._shown, key, why)
        return True

    # -- waiting -----------------------------------------------------------------------------

    async def wait_for_change(self, timeout: float) -> bool:
        """Wait until another worker finishes an item, frees a slot, changes the capacity or loads
        the batch (``NOTIFY``), or ``timeout`` seconds pass; returns whether a change came.

        A change that came since the previous call returns at once, so none is lost between two
        waits. Polling (:meth:`claim` again after the timeout) stays the fallback: a notification
        is a hint, never the only way to learn of a change (one sent while the listening connection
        was being replaced is lost).

        Raises:
            JournalError: No connection to listen on could be opened.
        """
        self._check_usable()
        # Several tasks of one worker may wait at once: one of them opens the listening connection.
        async with self._listen_lock:
            if self._listener is not None and self._listener.is_closed():
                self._listener = None  # the connection was lost: listen again on a new one
            if self._listener is None:
                listener = None
                try:
                    listener = await self._asyncpg.connect(self._dsn.reveal(), timeout=self._connect_timeout)
                    await listener.add_listener(CHANNEL, self._on_notify)
                except self._db_errors as exc:
                    if listener is not None:
                        with anyio.CancelScope(shield=True):
                            await listener.close()
                    raise self._error("cannot listen for changes", exc) from None
                self._listener = listener
        changed_event = self._changed
        if not changed_event.is_set():
            with anyio.move_on_after(timeout):
                await changed_event.wait()
        changed = changed_event.is_set()
        if self._changed is changed_event:
            self._changed = anyio.Event()
        return changed

    def _on_notify(self, connection: object, pid: int, channel: str, payload: object) -> None:
        if payload == self.org:
            self._changed.set()

    # -- reads -------------------------------------------------------------------------------

    async def entries(self) -> dict[str, JournalEntry]:
        """Every item that got further than ``pending``, keyed by key and ordered by index; sees
        everything recorded before the call. Pending items are left out, as a SQLite journal has
        no row for an item never submitted.

        Raises:
            JournalError: The journal is not open, or reading failed.
        """
        await self.flush()
        input_id = self._need_input()
        async with self._connection() as conn:
            rows = await conn.fetch(
                f"SELECT {_ITEM_COLUMNS} FROM vidu_items WHERE input_id = $1 AND state <> 'pending' ORDER BY idx",
                input_id,
            )
        return {row[0]: _entry(row) for row in rows}

    async def get(self, key: str) -> JournalEntry | None:
        """One item (pending ones included), or ``None`` when the batch has no such key."""
        await self.flush()
        input_id = self._need_input()
        async with self._connection() as conn:
            row = await conn.fetchrow(
                f"SELECT {_ITEM_COLUMNS} FROM vidu_items WHERE input_id = $1 AND key = $2", input_id, key
            )
        return None if row is None else _entry(row)

    async def unfinished(self, *, undecidable: bool = True) -> int:
        """How many items of the batch are not finished (pending ones included).

        Args:
            undecidable: Count the items an adopter marked undecidable (they keep their slot
                until someone settles them); ``False`` counts only the items work can still end.
        """
        self._check_usable()
        input_id = self._need_input()
        async with self._connection() as conn:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM vidu_items WHERE input_id = $1 AND NOT finished"
                " AND ($2::boolean OR attention IS NULL)",
                input_id,
                undecidable,
            )
        return count

    async def finished_by_worker(self, input_id: str | None = None) -> dict[int, tuple[str, int]]:
        """Read-only: how many items of the batch each worker finished, by worker id, with its
        name (``input_id`` as in :meth:`summary`); for ``vidu-async batch``."""
        await self.flush()
        input_id = input_id if input_id is not None else self._need_input()
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT i.worker_id, w.name, count(*) AS n FROM vidu_items i"
                " JOIN vidu_workers w ON w.worker_id = i.worker_id"
                " WHERE i.input_id = $1 AND i.finished GROUP BY i.worker_id, w.name ORDER BY i.worker_id",
                input_id,
            )
        return {row["worker_id"]: (row["name"], row["n"]) for row in rows}

    async def summary(self, input_id: str | None = None) -> BatchSummary:
        """Per-state counts, per-worker counts and stuck items of the batch, from the database.

        Args:
            input_id: Another batch to read (read-only: the journal need not serve it, nor
                register a worker); default the journal's own.
        """
        await self.flush()
        input_id = input_id if input_id is not None else self._need_input()
        async with self._connection() as conn:
            loaded = await conn.fetchval("SELECT items FROM vidu_batches WHERE input_id = $1", input_id)
            states = await conn.fetch(
                "SELECT state, count(*) AS n, sum((NOT finished)::int) AS open FROM vidu_items"
                " WHERE input_id = $1 GROUP BY state ORDER BY state",
                input_id,
            )
            workers = await conn.fetch(
                "SELECT w.worker_id, w.name, w.lease_until > clock_timestamp() AS live,"
                " extract(epoch FROM w.lease_until)::float8 AS lease_until, i.state, count(i.key) AS n"
                " FROM vidu_workers w LEFT JOIN vidu_items i"
                "   ON i.worker_id = w.worker_id AND i.input_id = $1 AND NOT i.finished"
                " WHERE i.key IS NOT NULL"
                "    OR (w.input_id = $1 AND w.lease_until > clock_timestamp() AND w.stopped_at IS NULL)"
                " GROUP BY w.worker_id, i.state ORDER BY w.worker_id, i.state",
                input_id,
            )
            stuck = await conn.fetch(
                "SELECT i.key, i.state, i.worker_id, i.attention,"
                " i.task_id IS NULL AND i.send_by <= clock_timestamp() AS overdue"
                " FROM vidu_items i LEFT JOIN vidu_workers w ON w.worker_id = i.worker_id"
                " WHERE i.input_id = $1 AND NOT i.finished AND i.state <> 'pending'"
                "   AND (i.attention IS NOT NULL OR w.lease_until IS NULL OR w.lease_until <= clock_timestamp())"
                " ORDER BY i.idx",
                input_id,
            )
            slots = await conn.fetchrow(
                "SELECT COALESCE((SELECT capacity FROM vidu_orgs WHERE org = $1), 0) AS capacity,"
                " (SELECT count(*) FROM vidu_slots WHERE org = $1 AND input_id IS NOT NULL) AS held",
                self.org,
            )
            orphans = await conn.fetchval(
                "SELECT count(*) FROM vidu_orphan_answers WHERE input_id = $1", input_id
            )
        assert slots is not None
        by_worker: dict[int, WorkerSummary] = {}
        counts: dict[int, dict[str, int]] = {}
        for row in workers:
            worker_id = row["worker_id"]
            if worker_id not in by_worker:
                counts[worker_id] = {}
                by_worker[worker_id] = WorkerSummary(
                    worker_id=worker_id,
                    name=row["name"],
                    live=row["live"],
                    lease_until=row["lease_until"],
                    items=counts[worker_id],
                )
            if row["state"] is not None:
                counts[worker_id][row["state"]] = row["n"]
        return BatchSummary(
            input_id=input_id,
            loaded=loaded,
            states={row["state"]: row["n"] for row in states},
            unfinished=sum(row["open"] for row in states),
            workers=tuple(by_worker.values()),
            capacity=slots["capacity"],
            slots_held=slots["held"],
            stuck=tuple(
                StuckItem(
                    key=row["key"],
                    state=row["state"],
                    worker_id=row["worker_id"],
                    reason=(
                        f"undecidable: {row['attention']}"
                        if row["attention"] is not None
                        else "owner's lease lapsed, intent past send_by"
                        if row["overdue"]
                        else "owner's lease lapsed"
                    ),
                )
                for row in stuck
            ),
            orphan_answers=orphans,
        )

    # -- the Journal protocol ----------------------------------------------------------------

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
        """Record that the item is about to be submitted by this worker; durable when this returns.

        The item's row (loaded or new) becomes this worker's intent, with ``send_by`` and one more
        attempt; what an earlier attempt recorded is cleared. Nothing takes a slot here: a single
        process using the :class:`Journal` protocol keeps its own in-flight limit.

        Raises:
            JournalError: The key was journaled with a different request, another worker with a
                live lease owns it, or this worker's lease lapsed (:class:`LeaseLostError`).
            TypeError: ``request`` is not JSON-serializable (nothing is queued).
            ValueError: ``request`` holds a NaN or infinity (nothing is queued).
        """
        body = _convert.dumps(request)
        args = _pg_texts((key, index, body, request_hash, fingerprint, str(endpoint)))
        started = anyio.current_time()
        await self._enqueue_and_wait(functools.partial(self._apply_intent, args))
        self._send_deadlines[args[0]] = started + self.send_window

    async def _apply_intent(
        self, args: tuple[Any, ...], conn: asyncpg.Connection[Any]
    ) -> JournalError | None:
        input_id = self._need_input()
        me = self._need_worker()
        key, index, body, request_hash, fingerprint, endpoint = args
        status = await conn.execute(
            _SQL_INTENT, me, input_id, key, index, body, request_hash, fingerprint, endpoint, self.send_window
        )
        if status.endswith(" 1"):
            return None
        row = await conn.fetchrow(
            "SELECT i.request_hash, i.idx, i.worker_id, w.lease_until > clock_timestamp() AS owner_live"
            " FROM vidu_items i LEFT JOIN vidu_workers w ON w.worker_id = i.worker_id"
            " WHERE i.input_id = $1 AND i.key = $2",
            input_id,
            key,
        )
        me_live = await conn.fetchval(
            "SELECT lease_until > clock_timestamp() FROM vidu_workers WHERE worker_id = $1", me
        )
        self.stats.refused_writes += 1
        if not me_live:
            self._lease_lost = True
            return LeaseLostError(
                f"worker {me}'s lease lapsed: no intent written", worker_id=me, path=self._shown
            )
        if row is not None and row["request_hash"] not in ("", request_hash):
            return JournalError(
                f"key {key!r} (item {index}) was journaled with a different request"
                f" (item {row['idx']}, hash {str(row['request_hash'])[:16]}; now {str(request_hash)[:16]}):"
                " a key must name the same request on every run",
                path=self._shown,
            )
        owner = None if row is None else row["worker_id"]
        if row is not None and not row["owner_live"]:
            return JournalError(
                f"key {key!r} belongs to worker {owner}, whose lease lapsed but whose intent may still be"
                " sent until its send_by: adopt it after that",
                path=self._shown,
            )
        return JournalError(
            f"key {key!r} belongs to worker {owner}, whose lease is live: wait for it to end or expire",
            path=self._shown,
        )

    def record_submitted(self, key: str, task_id: str, credits: int | None = None) -> None:
        """Queue the task id (and credits) the POST answered with; fenced like :meth:`submitted`
        (a refused one is recorded as an orphan answer and logged).

        Raises:
            JournalError: The journal is closed or writing failed earlier.
        """

        async def apply(conn: asyncpg.Connection[Any]) -> JournalError | None:
            return await self._apply_submitted(conn, key, task_id, credits)

        self._enqueue(apply, None)

    def rename_key(self, old_key: str, new_key: str) -> None:
        """Queue renaming an item; see :meth:`Journal.rename_key` (its slot follows it)."""

        async def apply(conn: asyncpg.Connection[Any]) -> JournalError | None:
            await conn.execute(
                _SQL_RENAME, self._need_worker(), self._need_input(), _pg_text(old_key), _pg_text(new_key)
            )
            return None

        self._enqueue(apply, None)

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
        """Queue the item's final outcome, which frees its slot like :meth:`finish`; an item with no
        row yet (one that failed before its intent) gets one. A refused write is logged.

        Raises:
            JournalError: The journal is closed or writing failed earlier.
            TypeError: ``task`` or ``request`` is not JSON-serializable (nothing is queued).
            ValueError: ``task`` or ``request`` holds a NaN or infinity (nothing is queued).
        """
        args = self._result_args(
            key, state, task, err_code, credits, error, attempts, files, index, request, endpoint
        )

        async def apply(conn: asyncpg.Connection[Any]) -> JournalError | None:
            return await self._apply_result(conn, args, insert=True)

        self._enqueue(apply, None)

    async def flush(self) -> None:
        """Wait until everything queued before the call is committed.

        Raises:
            JournalError: Writing failed (the journal is then unusable).
        """
        if self._state == "closed" and self._failure is None:
            return  # closing flushed everything
        if self._worker_id is None:
            self._check_usable()  # nothing can have been queued before a worker registered
            return

        async def barrier(conn: asyncpg.Connection[Any]) -> JournalError | None:
            return None

        await self._enqueue_and_wait(barrier)

    # -- the writer --------------------------------------------------------------------------

    def _enqueue(self, apply: _Apply, waiter: _Waiter | None) -> None:
        self._check_usable()
        if self._worker_id is None:
            raise LeaseLostError(
                "this worker never registered: call open_input() or register() first", worker_id=None
            )
        self._queue.append((apply, waiter))
        self._wake.set()

    async def _enqueue_and_wait(self, apply: _Apply) -> None:
        waiter = _Waiter()
        self._enqueue(apply, waiter)
        # If this wait is cancelled the operation still runs: the writer owns it now.
        await waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error

    async def _run_writer(self) -> None:
        try:
            while True:
                if not self._queue:
                    if self._state != "open":
                        return
                    await self._wake.wait()
                    self._wake = anyio.Event()
                    continue
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))]
                # Shielded: a queued result must reach the database even while the batch is cancelled.
                with anyio.CancelScope(shield=True):
                    errors = await self._commit(batch)
                for position, (_, waiter) in enumerate(batch):
                    if waiter is not None:
                        waiter.error = errors.get(position) or (self._failed() if self._failure else None)
                        waiter.done.set()
                if self._failure is not None:
                    self._fail_queue()
                    return
        finally:
            self._writer_done.set()

    async def _commit(self, batch: list[tuple[_Apply, _Waiter | None]]) -> dict[int, JournalError]:
        errors: dict[int, JournalError] = {}
        try:
            async with self._connection() as conn, conn.transaction():
                for position, (apply, _) in enumerate(batch):
                    error = await apply(conn)
                    if error is not None:
                        errors[position] = error
        except JournalError as exc:
            self._failure = str(exc)
            logger.error("%s", exc)
            return {}
        self.stats.commits += 1
        self.stats.operations += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        return errors

    def _fail_queue(self) -> None:
        while self._queue:
            _, waiter = self._queue.popleft()
            if waiter is not None:
                waiter.error = self._failed()
                waiter.done.set()


class _Connection:
    """A pool connection for one ``async with``, mapping database errors to JournalError (with
    every password scrubbed from the text)."""

    __slots__ = ("_conn", "_journal")

    def __init__(self, journal: PostgresJournal) -> None:
        self._journal = journal
        self._conn: asyncpg.pool.PoolConnectionProxy[Any] | None = None

    async def __aenter__(self) -> asyncpg.Connection[Any]:
        journal = self._journal
        assert journal._pool is not None
        try:
            self._conn = await journal._pool.acquire(timeout=journal._connect_timeout)
        except journal._db_errors as exc:
            raise journal._error("cannot reach the journal's database", exc) from None
        return self._conn  # type: ignore[return-value]

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        journal = self._journal
        assert journal._pool is not None
        assert self._conn is not None
        with anyio.CancelScope(shield=True):
            await journal._pool.release(self._conn)
        if exc is not None and isinstance(exc, journal._db_errors):
            raise journal._error("the journal's database failed", exc) from None


async def _aiter(items: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    """``items`` as an async iterator (a sync iterable is read as it is)."""
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


def _adopted(
    row: asyncpg.Record,
    *,
    previous_worker: int,
    slot: int | None,
    send_by: float | None,
    answered: str | None,
) -> Adopted:
    """An item taken over, from its row: with a task id, to watch again; without, to reconcile."""
    return Adopted(
        action="rewatch" if row["task_id"] is not None else "reconcile",
        key=row["key"],
        index=row["idx"],
        endpoint=row["endpoint"],
        request_json=row["request"],
        request_hash=row["request_hash"],
        fingerprint=row["fingerprint"],
        task_id=row["task_id"],
        attempts=row["attempts"],
        previous_worker=previous_worker,
        slot=slot,
        send_by=send_by,
        answered_task_id=answered,
    )


async def _insert_items(
    conn: asyncpg.Connection[Any], input_id: str, items: list[tuple[str, int, str, str, str]]
) -> int:
    keys, indexes, endpoints, requests, hashes = (list(column) for column in zip(*items, strict=True))
    status = await conn.execute(
        "INSERT INTO vidu_items (input_id, key, idx, endpoint, request, request_hash, state)"
        " SELECT $1, k, i, e, r, h, 'pending'"
        " FROM unnest($2::text[], $3::int[], $4::text[], $5::text[], $6::text[]) AS t(k, i, e, r, h)"
        " ON CONFLICT DO NOTHING",
        input_id,
        keys,
        indexes,
        endpoints,
        requests,
        hashes,
    )
    return int(status.rsplit(" ", 1)[1])


async def _read_version(conn: asyncpg.Connection[Any]) -> int:
    exists = await conn.fetchval("SELECT to_regclass('vidu_schema_version') IS NOT NULL")
    if not exists:
        return 0
    version = await conn.fetchval("SELECT version FROM vidu_schema_version")
    return int(version or 0)


async def migrate(
    conn: asyncpg.Connection[Any], *, where: str = "", migrations: Sequence[Sequence[str]] | None = None
) -> int:
    """Bring the database's schema to the newest version; returns the version it had.

    Runs every missing step (``n`` to ``n + 1``) in one transaction under an advisory lock, so
    concurrent workers migrate once and a failure leaves the schema as it was.

    Raises:
        JournalError: The schema is newer than this release reads (nothing is changed).
    """
    steps = _MIGRATIONS if migrations is None else migrations
    target = len(steps)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        version = await _read_version(conn)
        if version > target:
            written_by = await conn.fetchval("SELECT written_by FROM vidu_schema_version")
            raise JournalError(
                f"the journal's database was written by a newer vidu-async ({written_by}), schema {version};"
                f" this is vidu-async {__version__}, which reads schema {target}: upgrade to use it",
                path=where,
            )
        for step in range(version, target):
            for statement in steps[step]:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO vidu_schema_version (only_row, version, written_by) VALUES (true, $1, $2)"
                " ON CONFLICT (only_row) DO UPDATE SET version = excluded.version, written_by = excluded.written_by",
                step + 1,
                f"vidu-async {__version__}",
            )
            logger.info("journal %s: schema %d -> %d", where, step, step + 1)
    return version
