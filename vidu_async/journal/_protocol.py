"""The ``Journal`` protocol: what the batch engine needs from a durable store, and what it reads back.

Per item the engine writes, in this order:

1. **intent** (:meth:`Journal.record_intent`): key, index, endpoint, request JSON, request hash
   and the fingerprint stamped into the request's ``payload``. It is committed *before* the POST
   is sent, so after a crash every task that may exist on the server has a row naming its
   fingerprint.
2. **submitted** (:meth:`Journal.record_submitted`): the task id and credits, right after the POST
   answers. Queued and committed with the next batch; the caller does not wait.
3. **result** (:meth:`Journal.record_result`): terminal state, task JSON, error text, attempts and
   downloaded files. Batched.

On a re-run, :meth:`Journal.entries` tells the engine which items are finished (skip, yield the
stored result), which have a task id (re-attach), which have only an intent (reconcile by
fingerprint) and which are new (submit).

The journal never receives the API key: requests are stored in Vidu's JSON shape, results as
the task JSON, errors as message text, and none of those ever hold the key.

Every store shares what is defined here: the protocol, the entries it reads back, the writer's
counters and the two states the engine itself writes.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Final, Protocol, Self

import attrs

__all__ = ["DEFAULT_ENDPOINT", "STATE_INTENT", "STATE_SUBMITTED", "Journal", "JournalEntry", "JournalStats"]

#: The state of an item whose intent is journaled and whose POST may or may not have been sent.
STATE_INTENT: Final = "intent"
#: The state of an item whose POST answered with a task id (until its result is recorded).
STATE_SUBMITTED: Final = "submitted"
#: The endpoint of an item recorded without one, as of every item of a journal of 0.1.0, which
#: knew no other.
DEFAULT_ENDPOINT: Final = "reference2video"

# The request of an entry recorded without one (see JournalEntry.request_json).
_EMPTY_OBJECT: Final = "{}"


@attrs.frozen(kw_only=True)
class JournalEntry:
    """One item of a batch as the journal knows it.

    The request and the task are kept as the JSON text the journal stored and decoded on first
    access (:attr:`request`, :attr:`task`): a resume of 100k items needs every entry's key,
    state and task id at once, but each stored result only when its item is yielded.

    Attributes:
        key: The item's key (unique within the batch).
        index: The item's position in the input (``-1`` when recorded without one).
        endpoint: The item's endpoint, the task kind it creates (``"reference2video"``,
            ``"text2video"``...): the path after ``/ent/v2/``.
        request_json: The request in Vidu's JSON shape, as JSON text.
        request_hash: The caller's hash of the request ("" when the item never had an intent).
        fingerprint: The fingerprint stamped into the request's ``payload`` for reconciliation.
        task_id: The task id, once the POST answered (or reconciliation found it).
        state: ``"intent"``, ``"submitted"``, or the result's state once the item finished.
        finished: Whether a result was recorded: a re-run skips the item and yields the result.
        credits: Credits charged or reserved, when known.
        err_code: Vidu's ``err_code`` for a failed task, or "".
        task_json: The final task as JSON text, when the result had one.
        error: The error's text, when the item failed.
        attempts: Submission attempts (each ``record_intent`` counts one; a result may override).
        files: Paths of downloaded files.
        created_at: When the item was first journaled (Unix time, seconds).
        updated_at: When it last changed (Unix time, seconds).
    """

    key: str
    index: int
    endpoint: str = DEFAULT_ENDPOINT
    request_json: str = _EMPTY_OBJECT
    request_hash: str = ""
    fingerprint: str = ""
    task_id: str | None = None
    state: str = STATE_INTENT
    finished: bool = False
    credits: int | None = None
    err_code: str = ""
    task_json: str | None = None
    error: str | None = None
    attempts: int = 0
    files: tuple[str, ...] = ()
    created_at: float = 0.0
    updated_at: float = 0.0

    @functools.cached_property
    def request(self) -> dict[str, Any]:
        """The request, decoded from :attr:`request_json`."""
        value: dict[str, Any] = json.loads(self.request_json)
        return value

    @functools.cached_property
    def task(self) -> dict[str, Any] | None:
        """The final task's JSON, decoded from :attr:`task_json`, or ``None``."""
        if self.task_json is None:
            return None
        value: dict[str, Any] = json.loads(self.task_json)
        return value


@attrs.define
class JournalStats:
    """Counters of a journal's writer, for tests, benchmarks and logs.

    Attributes:
        commits: Transactions committed (one per batch that wrote something).
        operations: Operations applied (intents, submitted, results, renames, input checks).
        largest_batch: The most operations one transaction carried.
        unknown_keys: ``record_submitted`` calls for a key that had no row (a caller bug; ignored).
    """

    commits: int = 0
    operations: int = 0
    largest_batch: int = 0
    unknown_keys: int = 0


class Journal(Protocol):
    """What the batch engine needs from a durable store; bring your own by implementing it.

    A journal is used as ``async with journal:`` around the batch. The ``record_*`` methods that
    are not coroutines only queue their write; :meth:`flush` (and closing) waits for every queued
    write. :meth:`record_intent` returns only once its write is durable, because the engine sends
    the POST right after it. None of the methods is given an API key, and a store must not add one.
    """

    async def __aenter__(self) -> Self:
        """Open the store, check it can be used, and start whatever writes in the background."""
        ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        """Commit everything queued, then close."""
        ...

    async def open_input(self, input_id: str) -> None:
        """Tie the journal to one input: recorded the first time, compared on every later run.

        Raises:
            JournalError: The journal was written for a different input (naming both).
        """
        ...

    async def entries(self) -> dict[str, JournalEntry]:
        """Every item, keyed by key and ordered by index, including everything recorded so far."""
        ...

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
        """Record that the item (a request to ``endpoint``) is about to be submitted; durable when
        this returns.

        Raises:
            JournalError: The key was journaled with a different request, or the store failed.
        """
        ...

    def record_submitted(self, key: str, task_id: str, credits: int | None = None) -> None:
        """Queue the task id (and credits) the POST answered with."""
        ...

    def rename_key(self, old_key: str, new_key: str) -> None:
        """Queue renaming an item (an item a journal of an earlier release keyed by position
        gets its content key); nothing happens when ``old_key`` has no row or ``new_key`` has one."""
        ...

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
        """Queue the item's final outcome; the item then counts as finished. ``index``,
        ``request`` and ``endpoint`` (``None``: the default endpoint) are used only when the key
        has no row yet (an item that failed before its intent)."""
        ...

    async def flush(self) -> None:
        """Wait until everything queued before the call is durable."""
        ...
