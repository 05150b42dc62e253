"""The durable batch journal (public): the ``Journal`` protocol and its SQLite store.

A batch that writes to a journal survives a crash at any moment and is simply re-run: each item's
intent is durable before its POST, its task id follows, then its result (see :class:`Journal`).

==============  ===================================================================
module          owns
==============  ===================================================================
``_protocol``   ``Journal``, ``JournalEntry``, ``JournalStats``, the states every store shares
``_sqlite``     ``SQLiteJournal``, the embedded default: one file, one writer, group commit
``_postgres``   ``PostgresJournal``: one batch shared by many workers (leases, fencing, slots);
                asyncpg, imported only when one is built (the ``postgres`` extra)
==============  ===================================================================

This package imports only the model layer, ``_convert`` and the leaves: the engine depends on it,
never the other way round.
"""

from __future__ import annotations

from ._postgres import (
    STATE_ERROR,
    Adopted,
    BatchItem,
    BatchSummary,
    Claim,
    Claimed,
    LeaseLostError,
    PostgresJournal,
    SendRefusedError,
)
from ._protocol import STATE_INTENT, STATE_SUBMITTED, Journal, JournalEntry, JournalStats
from ._sqlite import SQLiteJournal

__all__ = [
    "STATE_ERROR",
    "STATE_INTENT",
    "STATE_SUBMITTED",
    "Adopted",
    "BatchItem",
    "BatchSummary",
    "Claim",
    "Claimed",
    "Journal",
    "JournalEntry",
    "JournalStats",
    "LeaseLostError",
    "PostgresJournal",
    "SQLiteJournal",
    "SendRefusedError",
]
