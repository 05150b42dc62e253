"""``generate_many`` on a :class:`~vidu_async.journal.PostgresJournal`: one batch, many workers.

A :class:`SharedBatch` has the face of :class:`~vidu_async._batch.Batch` (an async context manager
and an async iterator of :class:`BatchResult`) but its in-flight limit is the organization's slots
in the database, shared by every worker of every machine, and its work comes from claims:

1. Enter: open the batch (``open_input``, which registers the worker and its lease) and set the
   organization's capacity (``max_in_flight``, or its concurrency plus the allowance). A batch
   already finished when the worker arrives is replayed: every stored result is yielded (files
   checked and fetched again with ``download_to``) and no task is created. Otherwise the input is
   loaded once, beside the claims: one worker reads it lazily and commits it a chunk at a time,
   so every worker claims the first items while it reads on; the others read nothing, unless the
   loader stops before the end (then one of them takes the load over).
2. Loop: ``claim()`` an item and a slot in one transaction (the intent and its ``send_by`` are
   durable when it returns) → ``guard_send()`` right before the POST → ``Submitter.submit`` with
   the claim's fingerprint and a deadline no later than the intent's send deadline and the
   worker's lease deadline → ``submitted()`` → the poll scheduler follows the task → download →
   ``finish()`` (the item ends and its slot is freed in one statement) → the result is yielded.
   With nothing to claim: ``wait_for_change()`` (``NOTIFY``, polling as the fallback), and
   ``adopt_expired()`` every so often: a lapsed worker's task is re-watched (never created again);
   its bare intent is reconciled by fingerprint (found: recorded; proven absent: a new intent with
   the same fingerprint, guarded and sent; undecidable: reported, the slot kept). A kind without
   ``payload`` cannot be looked up: such an intent is undecidable, never sent again.
3. Leave when nothing is unfinished but undecidable items, so that every worker can adopt until
   the end. A lost lease stops every send at once and ends the batch with
   :class:`~vidu_async.journal.LeaseLostError`.

The send guard and the deadline. Adopters take a bare intent only once its ``send_by`` has passed
(on the database's clock). The guard refuses a create when less than ``send_margin`` is left of
``send_by`` or of the worker's lease, and the create it lets through gets a deadline no later than
both (the claim's send deadline and the lease deadline, on this process's monotonic clock,
measured from before the statements that set them, so never later than the database's). That
deadline bounds the create's whole time, retries included, whatever ``Timeouts.create`` times
``RetryPolicy.attempts`` would allow: it caps every attempt's HTTP timeout, no attempt starts past
it, and an anyio cancel scope backs it. So no create leaves after ``send_by``, and a worker frozen
between the guard and the POST finds its deadline passed when it wakes and sends nothing. A create
cut short by the deadline is an unknown outcome: the worker, which still owns the intent, looks its
fingerprint up itself (found, absent: sent again under a new intent, or undecidable). A create of a
shared batch therefore has at most ``min(send_window, lease_seconds)`` less the margin: keep the
send window above the longest upload.

Residual risks, documented rather than hidden: a create whose bytes left just before the deadline
(a retry inside the create may start after the guard's margin, never past the deadline) may be
committed by the service after an adopter's two looks at the task list, which are
``RetryPolicy.reconcile_settle`` apart; a freeze inside the HTTP library between its own deadline
check and the socket write; a monotonic clock that stops while the machine is suspended (Linux's
``CLOCK_MONOTONIC``) while the database's clock runs on. Keep ``send_margin`` well above the time a
create needs to reach the service.

An item that outlives its ``timeout`` (or whose task the service no longer knows) is finished with
that error and frees its slot although its task may still run at Vidu: the one case where a slot
is freed before its task ends (the default timeout is an hour; Vidu queues beyond its concurrency).

Leaving the block early leaves this worker's items claimed (:attr:`SharedBatch.unfinished`); results
it finished but the caller did not take are in :attr:`SharedBatch.unread` (the database has them,
and no other worker yields them).

:data:`ENV_NO_SEND_GUARD` (``VIDU_ASYNC_UNSAFE_NO_SEND_GUARD=1``) turns the guard and the send
deadline off: it exists only so that a test can show the guard is what keeps creates single. It
also lets a worker whose lease lapsed finish what it was sending instead of cancelling it: that stop
races the create it would prevent (in the process test, without the guard, a frozen worker's held
create still went out after its thaw in four runs of five), so the proof does not hang on a race.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import anyio
import anyio.abc
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from . import _convert, _media, _retry
from ._batch import BatchResult
from ._batch_input import BatchInput, KeyMaker, read_item, request_hash
from ._caller import Absent
from ._config import PollPolicy
from ._download import Downloader
from ._kinds import kind_named, kind_of
from ._models import Request, Task, TaskState
from ._poll import Poller
from ._submit import Submitter
from .exceptions import (
    JournalError,
    SubmitOutcomeUnknownError,
    TaskFailedError,
    ViduError,
    WaitTimeoutError,
)
from .journal import (
    STATE_ERROR,
    Adopted,
    Claim,
    JournalEntry,
    LeaseLostError,
    PostgresJournal,
    SendRefusedError,
)

__all__ = ["ENV_NO_SEND_GUARD", "SharedBatch", "is_postgres_dsn", "send_guard_disabled"]

logger: Final = logging.getLogger("vidu_async")

#: Set to ``1`` to send creates without the send guard and its deadline. Unsafe: for tests only.
ENV_NO_SEND_GUARD: Final = "VIDU_ASYNC_UNSAFE_NO_SEND_GUARD"

#: Concurrent downloads of one worker.
_DOWNLOADERS: Final = 4
#: The most items one claim takes (one transaction).
_CLAIM_BATCH: Final = 32
#: The longest wait for a change before claiming, adopting and counting again, seconds.
_WAIT: Final = 1.0
#: Seconds an adopter gives the task list to settle an intent.
_RECONCILE_SECONDS: Final = 120.0
#: Rounds of "proven absent, sent again" one worker makes for an item before giving it back.
_SEND_ROUNDS: Final = 3
#: Claims of an item whose create was refused before the service took it (429s, the deadline),
#: after which its last refusal is its result.
_MAX_CLAIMS: Final = 5
#: The key of a stored request that could not be read: its value is why.
_INVALID: Final = "vidu_async:invalid"
_NOT_TAKEN: Final = frozenset(
    {_retry.Failure.NOT_SENT, _retry.Failure.THROTTLED, _retry.Failure.QUOTA, _retry.Failure.LATER}
)


def send_guard_disabled() -> bool:
    """Whether :data:`ENV_NO_SEND_GUARD` turns the send guard off (the one place it is read)."""
    return os.environ.get(ENV_NO_SEND_GUARD) == "1"


def is_postgres_dsn(value: object) -> bool:
    """Whether ``value`` names a PostgreSQL journal (``postgresql://...`` or ``postgres://...``)."""
    return isinstance(value, str) and value.startswith(("postgresql://", "postgres://"))


class _StoredError(ViduError):
    """An error a worker recorded in the database, read back as its text and its reason (the
    error's ``reason``, or its class's name)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


@attrs.define(eq=False)
class _Work:
    """One item this worker answers for: claimed or adopted, holding an organization slot."""

    index: int
    key: str
    endpoint: str
    fingerprint: str
    request: Request | None = None
    claim: Claim | None = None
    task: Task | None = None
    known: bool = False
    attempts: int = 0
    started: float = 0.0
    deadline: float = math.inf
    resumed: bool = False
    #: Why the item cannot be sent (its stored request is unreadable).
    invalid: ViduError | None = None


def _reason(error: ViduError | None) -> str:
    """What a result row says an error was: its ``reason`` (``Unauthorized``...), else its kind."""
    if error is None:
        return ""
    reason = getattr(error, "reason", "")
    return reason if isinstance(reason, str) and reason else type(error).__name__


def _fingerprint(endpoint: str, body: dict[str, Any]) -> str:
    """The ``payload`` an item's create carries: the caller's own, else a fresh fingerprint for a
    kind that has the field, else none (such a create can never be looked up)."""
    own = body.get("payload")
    if isinstance(own, str) and own:
        return own
    try:
        kind = kind_named(endpoint)
    except ValueError:
        return ""
    return _retry.new_fingerprint() if kind.payload and _INVALID not in body else ""


class SharedBatch:
    """A batch shared by many workers through a :class:`PostgresJournal`: ``async with`` it,
    then ``async for`` the results of the items this worker finished.

    Each worker yields the items it finished (claimed, or adopted from a worker whose lease
    lapsed); together the workers yield every item once. Leaving the block early leaves this
    worker's items claimed (listed in :attr:`unfinished`): another worker adopts them once the
    lease ends, at once when the batch opened the journal itself (a clean exit ends the lease),
    else when the caller closes its journal or the lease runs out.

    Args:
        requests: The input; read only by the worker that loads the batch.
        submitter, poller, downloader: The client's pieces.
        size: The organization's in-flight limit, when ``max_in_flight`` is not given.
        poll: The poll policy (item timeouts).
        callbacks: Whether tasks complete by callback.
        max_in_flight: The organization's slots (every worker should give the same).
        fail_fast: Stop this worker at its first failed item.
        timeout: Seconds each item may take from its claim to its finish.
        journal: A :class:`PostgresJournal` the caller opened, or a DSN to open one with.
        input_id: The batch: the same for every worker (the sha256 of the job file, say).
        download_to: A folder to save each successful item's files into before it is finished.

    Raises:
        ValueError: ``input_id`` is missing or ``max_in_flight`` is below 1.
    """

    def __init__(
        self,
        requests: BatchInput,
        *,
        submitter: Submitter,
        poller: Poller,
        downloader: Downloader,
        size: Callable[[], Awaitable[int]],
        poll: PollPolicy,
        callbacks: bool = False,
        max_in_flight: int | None,
        fail_fast: bool,
        timeout: float | None,
        journal: PostgresJournal | str,
        input_id: str | None,
        download_to: str | os.PathLike[str] | None = None,
    ) -> None:
        if not input_id:
            raise ValueError(
                "input_id is required with a PostgreSQL journal: it names the batch every worker shares"
                " (the sha256 of the job file, say)"
            )
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self._requests = requests
        self._submitter = submitter
        self._poller = poller
        self._downloader = downloader
        self._size = size
        self._poll = poll
        self._callbacks = callbacks
        self._max_in_flight = max_in_flight
        self._fail_fast = fail_fast
        self._timeout = timeout
        self._journal_arg = journal
        self._input_id = input_id
        self._download_to = Path(download_to) if download_to is not None else None
        self._guard = not send_guard_disabled()
        if not self._guard:
            logger.warning("%s=1: creates are sent WITHOUT the send guard (unsafe)", ENV_NO_SEND_GUARD)
        self._stack = contextlib.AsyncExitStack()
        self._group: anyio.abc.TaskGroup | None = None
        self._work = anyio.CancelScope()
        self._send: MemoryObjectSendStream[BatchResult] | None = None
        self._receive: MemoryObjectReceiveStream[BatchResult] | None = None
        self._local: anyio.CapacityLimiter | None = None
        self._downloads = anyio.CapacityLimiter(_DOWNLOADERS)
        self._active: dict[str, _Work] = {}
        self._holders: dict[str, _Work] = {}
        self._replay = False
        self._failure: JournalError | None = None
        self._raised = False
        self._charged = 0
        self._loaded = anyio.Event()
        self._rerun = False
        self._rewatch: list[Adopted] = []
        self._adopt_at = math.inf
        #: The journal (once entered).
        self.journal: PostgresJournal | None = None
        #: The organization's slots (once entered).
        self.limit = 0
        #: Items this worker read from the input (the loader reads them all, the others none).
        self.read = 0
        #: Stored results yielded from a finished batch, and items adopted from lapsed workers.
        self.resumed = 0
        #: Items this worker held when the block was left: ``(index, key, task id or None)``.
        self.unfinished: list[tuple[int, str, str | None]] = []
        #: Results this worker finished that were not taken before the block was left (the
        #: database has them too; a re-run of the finished batch lists them).
        self.unread: list[BatchResult] = []

    @property
    def credits(self) -> int:
        """Credits charged by the tasks this worker finished (failed tasks are refunded)."""
        return self._charged

    # --- context -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            journal = await self._open_journal()
            await journal.open_input(self._input_id)
            self.limit = self._max_in_flight or await self._size()
            await journal.set_capacity(self.limit)
            finished = await journal.loaded() and await journal.unfinished() == 0
            # What ended without a task is tried again, as a re-run of a SQLite batch does; a batch
            # that had finished lists its stored results first.
            reopened = await journal.reopen_refused()
            if reopened:
                logger.info(
                    "batch %s: %d items refused earlier are tried again", self._input_id[:16], reopened
                )
            # What ended with a task but no result (a wait that timed out) is watched again.
            self._rewatch = await journal.rewatch_ended_tasks(limit=self.limit)
            self._replay = finished
            self._rerun = finished and (reopened > 0 or bool(self._rewatch))
        except BaseException:
            await self._stack.aclose()
            raise
        self._local = anyio.CapacityLimiter(self.limit)
        self._send, self._receive = anyio.create_memory_object_stream[BatchResult](self.limit)
        group = anyio.create_task_group()
        await group.__aenter__()
        self._group = group
        group.start_soon(self._run, name="vidu_async shared batch")
        return self

    async def _open_journal(self) -> PostgresJournal:
        given = self._journal_arg
        journal = (
            await self._stack.enter_async_context(PostgresJournal(given)) if isinstance(given, str) else given
        )
        self.journal = journal
        return journal

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        group, self._group = self._group, None
        if group is None:
            return None
        self._work.cancel()
        try:
            # The work never raises (a failure is kept and raised to the consumer), so whatever
            # ends the block propagates as it is, not wrapped in the task group's exception group.
            await group.__aexit__(None, None, None)
        finally:
            self._leave()
            await self._stack.aclose()  # a journal opened here ends its lease: the others adopt at once
        if self._failure is not None and not self._raised and exc is None:
            self._raised = True
            raise self._failure
        return None

    def _leave(self) -> None:
        self.unfinished = [
            (w.index, w.key, w.task.id if w.task else None)
            for w in sorted(self._active.values(), key=lambda w: w.index)
        ]
        if self.unfinished:
            logger.warning(
                "left the shared batch with %d unfinished item(s) claimed; another worker adopts them"
                " once this worker's lease ends",
                len(self.unfinished),
            )
        self._active.clear()
        if self._receive is not None:
            # Finished (in the database, by this worker) while the block was being left: no
            # other worker yields these, so they are kept for the caller.
            with contextlib.suppress(anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                while True:
                    self.unread.append(self._receive.receive_nowait())
            if self.unread:
                logger.warning(
                    "left the shared batch with %d finished result(s) not taken (in SharedBatch.unread)",
                    len(self.unread),
                )
        for stream in (self._send, self._receive):
            if stream is not None:
                stream.close()

    # --- results -------------------------------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> BatchResult:
        if self._receive is None:
            raise RuntimeError("use 'async with client.generate_many(...) as results:' first")
        try:
            result = await self._receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            if self._failure is not None and not self._raised:
                self._raised = True
                raise self._failure from None
            raise StopAsyncIteration from None
        self._drop_holder(result.key)
        return result

    def _drop_holder(self, key: str) -> None:
        holder = self._holders.pop(key, None)
        if holder is not None and self._local is not None:
            self._local.release_on_behalf_of(holder)

    # --- loading -------------------------------------------------------------------------------

    async def _items(self) -> AsyncGenerator[object, None]:
        source = self._requests
        if isinstance(source, AsyncIterable):
            async for item in source:
                yield item
        else:
            for item in source:
                yield item

    async def _load_items(self) -> AsyncGenerator[tuple[str, int, str, str, str], None]:
        """The input as the journal loads it, read lazily (only the loader iterates this).

        A request is stored self-contained (local files as data URIs), so a worker on another
        machine sends exactly what the loader read; an item that cannot be read is stored with
        why, and whoever claims it finishes it with that error.
        """
        keys = KeyMaker()
        index = 0
        async with contextlib.aclosing(self._items()) as items:
            async for raw in items:
                read = read_item(index, raw, keys)
                index += 1
                self.read = index
                invalid: ViduError | None = read.invalid or keys.claim(read.key, index - 1)
                if invalid is not None and read.invalid is None:
                    # A second item with an earlier item's key has no row of its own: the loader
                    # reports it (it is never in the database, so a re-run does not list it).
                    logger.error("batch item %d not loaded: %s", index - 1, invalid)
                    assert self._send is not None
                    await self._send.send(
                        BatchResult(index=index - 1, key=read.key, request=read.request, error=invalid)
                    )
                    continue
                endpoint = "reference2video"
                body: dict[str, Any]
                digest = ""
                if read.request is not None and invalid is None:
                    endpoint = kind_of(read.request).endpoint
                    digest = read.request_hash or request_hash(read.request)
                    try:
                        body = await _shareable(read.request)
                    except ViduError as exc:
                        body = {_INVALID: str(exc)}
                else:
                    body = {_INVALID: str(invalid)}
                yield (read.key, index - 1, endpoint, _convert.dumps(body), digest)

    # --- the work ------------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._send is not None
        try:
            with self._work:
                if self._replay:
                    await self._replay_finished()
                if not self._replay or self._rerun:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._keep_lease, name="vidu_async shared batch lease")
                        tg.start_soon(self._keep_loaded, name="vidu_async shared batch load")
                        try:
                            await self._claim_loop(tg)
                        except JournalError as exc:
                            self._fail(exc)
                        if self._stops_at_once:
                            tg.cancel_scope.cancel()  # the lease keeper; every item is done
        except JournalError as exc:
            self._fail(exc)
        finally:
            self._send.close()

    def _fail(self, exc: JournalError) -> None:
        """Stop every send at once and end the batch with ``exc``."""
        if self._failure is None:
            self._failure = exc
            logger.error("shared batch stopped: %s", exc)
        if self._stops_at_once:
            self._work.cancel()

    @property
    def _stops_at_once(self) -> bool:
        """Whether a failure cancels the items in flight; only a lapsed lease without the send
        guard lets them run to their end (see :data:`ENV_NO_SEND_GUARD`)."""
        return self._guard or not isinstance(self._failure, LeaseLostError)

    def _need_journal(self) -> PostgresJournal:
        assert self.journal is not None
        return self.journal

    @property
    def _wait(self) -> float:
        """The longest wait for a change before claiming, adopting and counting again."""
        return min(_WAIT, self._need_journal().lease_seconds / 4)

    async def _keep_lease(self) -> None:
        """Renew the lease when the journal does not, and stop the batch once it is lost."""
        journal = self._need_journal()
        renew_at = anyio.current_time() + journal.heartbeat_every
        try:
            while True:
                if journal.lease_lost or anyio.current_time() >= journal.lease_deadline:
                    # Past the local deadline without a renewal (the database unreachable, say),
                    # the lease is as good as lapsed: the others may adopt any moment now.
                    raise LeaseLostError(
                        f"worker {journal.worker_id}'s lease lapsed: it stopped sending; another worker"
                        " adopts its items",
                        worker_id=journal.worker_id,
                    )
                if not journal.auto_heartbeat and anyio.current_time() >= renew_at:
                    await journal.heartbeat()
                    renew_at = anyio.current_time() + journal.heartbeat_every
                await anyio.sleep(min(0.1, journal.heartbeat_every))
        except JournalError as exc:
            self._fail(exc)

    async def _keep_loaded(self) -> None:
        """Load the batch, or, while another worker loads it, look again every so often and take
        the load over if that worker stops (its input is read only by the worker that loads)."""
        journal = self._need_journal()
        try:
            while self._failure is None and not await journal.loaded():
                inserted = await journal.load(self._input_id, self._load_items())
                if inserted:
                    logger.info("batch %s: loaded %d items", self._input_id[:16], inserted)
                elif not await journal.loaded():
                    await anyio.sleep(self._wait)
            if self._failure is None:
                self._loaded.set()
        except JournalError as exc:
            self._fail(exc)
        except (OSError, ValueError, ViduError) as exc:
            self._fail(JournalError(f"the batch's input could not be read: {exc}"))

    async def _claim_loop(self, tg: anyio.abc.TaskGroup) -> None:
        """Claim, adopt and wait until nothing is unfinished but undecidable items.

        One claimer per worker: each claim takes as many items as there are free slots and local
        places (up to :data:`_CLAIM_BATCH`) in one transaction, so a round of tasks ending at once
        costs one claim, and a change wakes each worker once, not once per claimer.
        """
        journal = self._need_journal()
        local = self._local
        assert local is not None
        try:
            # On arrival, items an adopter marked undecidable are tried once more (a re-run settles
            # them when the task list can tell again); later passes leave them, so that two running
            # workers never hand one unresolved item back and forth.
            await self._adopt(tg, undecidable=True)
            self._adopt_at = anyio.current_time() + self._wait
            rewatch, self._rewatch = self._rewatch, []
            await self._take_over(tg, rewatch)
            while True:
                # Places of the local limit first: results not taken yet hold theirs, so a slow
                # consumer slows this worker's claims (the others take the work meanwhile).
                works = [_Work(index=-1, key="", endpoint="", fingerprint="")]
                await local.acquire_on_behalf_of(works[0])
                while len(works) < _CLAIM_BATCH and local.available_tokens >= 1:
                    works.append(_Work(index=-1, key="", endpoint="", fingerprint=""))
                    local.acquire_on_behalf_of_nowait(works[-1])
                claimed = await journal.claim_many(fingerprint=_fingerprint, limit=len(works))
                for work in works[len(claimed.claims) :]:
                    local.release_on_behalf_of(work)
                for work, claim in zip(works, claimed.claims, strict=False):
                    self._take(work, claim)
                    tg.start_soon(self._drive, work, None, name=f"vidu_async item {claim.key}")
                if claimed.claims:
                    continue
                now = anyio.current_time()
                if now >= self._adopt_at:
                    self._adopt_at = now + self._wait
                    if await self._adopt(tg, undecidable=False):
                        continue
                # Items left pending wait for a slot; with none left and the batch whole, count what
                # is unfinished.
                if (
                    not claimed.pending
                    and self._loaded.is_set()
                    and await journal.unfinished(undecidable=False) == 0
                ):
                    return  # every item is finished, or undecidable (reported, its slot kept)
                await journal.wait_for_change(self._wait)
        except JournalError as exc:
            self._fail(exc)

    async def _adopt(self, tg: anyio.abc.TaskGroup, *, undecidable: bool) -> int:
        """Take over what lapsed workers left (as many items as the local limit has places for)
        and start each; returns how many."""
        local = self._local
        assert local is not None
        places = int(local.available_tokens)
        if places < 1:
            return 0
        adopted = await self._need_journal().adopt_expired(limit=places, undecidable=undecidable)
        await self._take_over(tg, adopted)
        return len(adopted)

    async def _take_over(self, tg: anyio.abc.TaskGroup, items: list[Adopted]) -> None:
        """Start each item taken over (adopted, or taken back to watch its task again)."""
        local = self._local
        assert local is not None
        for item in items:
            work = _Work(index=item.index, key=item.key, endpoint=item.endpoint, fingerprint="")
            await local.acquire_on_behalf_of(work)
            self._take_adopted(work, item)
            tg.start_soon(self._drive, work, item, name=f"vidu_async taken over {item.key}")

    def _take(self, work: _Work, claim: Claim) -> None:
        work.index, work.key, work.endpoint = claim.index, claim.key, claim.endpoint
        work.fingerprint, work.claim, work.attempts = claim.fingerprint, claim, claim.attempts
        self._start(work, claim.request_json)

    def _take_adopted(self, work: _Work, item: Adopted) -> None:
        work.fingerprint, work.attempts, work.resumed = item.fingerprint, item.attempts, True
        self.resumed += 1
        self._start(work, item.request_json)
        if item.task_id is not None:
            work.task = Task(id=item.task_id)
        elif item.answered_task_id is not None:
            # A create answered a worker that no longer owned the item: that task is the item's.
            work.task = Task(id=item.answered_task_id)

    def _start(self, work: _Work, request_json: str) -> None:
        self._active[work.key] = work
        self._holders[work.key] = work
        work.started = anyio.current_time()
        try:
            body = json.loads(request_json)
            if _INVALID in body:
                raise _StoredError(str(body[_INVALID]))
            work.request = _convert.request_from_json(
                body, endpoint=work.endpoint, what=f"batch item {work.index}"
            )
        except _StoredError as exc:
            work.invalid = exc
            return
        except (ValueError, ViduError) as exc:
            work.invalid = _StoredError(f"batch item {work.index}: its stored request cannot be read: {exc}")
            return
        limit = self._poll.timeout_for(self._timeout, work.request.is_off_peak)
        work.deadline = work.started + limit if limit is not None else math.inf

    # --- one item ------------------------------------------------------------------------------

    async def _drive(self, work: _Work, adopted: Adopted | None) -> None:
        """Everything that happens to one item this worker holds, to its finish."""
        try:
            if work.request is None:
                assert work.invalid is not None
                await self._finish(work, None, work.invalid)
                return
            if work.task is None:
                if adopted is not None:
                    task = await self._settle(work, sent_at=_sent_at(adopted, self._need_journal()))
                else:
                    task = await self._send_create(work)
                if task is None:
                    return
            elif (
                adopted is not None
                and adopted.task_id is None
                and not await self._need_journal().record_reconciled(work.key, work.task.id)
            ):
                self._lost_item(work)
                return
            await self._follow(work)
        except JournalError as exc:
            self._fail(exc)

    async def _send_create(self, work: _Work) -> Task | None:
        """Guard, send and record the create of an item holding an intent; ``None`` when it ended
        otherwise (given back, finished with an error, or undecidable)."""
        journal = self._need_journal()
        assert work.request is not None
        for _ in range(_SEND_ROUNDS):
            claim = work.claim
            assert claim is not None
            deadline = work.deadline
            if self._guard:
                try:
                    await journal.guard_send(work.key)
                except SendRefusedError as exc:
                    if journal.lease_lost:
                        raise LeaseLostError(str(exc), worker_id=journal.worker_id) from None
                    logger.warning("%s; giving the item back", exc)
                    await self._give_back(work)
                    return None
                deadline = min(deadline, claim.send_deadline, journal.lease_deadline)
            sent_at = time.time()
            try:
                with anyio.move_on_after(deadline - anyio.current_time()) as scope:
                    task, attempts = await self._submitter.submit(
                        work.request,
                        deadline=deadline,
                        fingerprint=claim.fingerprint or None,
                        on_quota=self._quota_wait,
                    )
            except SubmitOutcomeUnknownError:
                pass  # settled below, as an adopter would
            except ViduError as exc:
                failure = _retry.classify(exc)
                if failure is _retry.Failure.UNKNOWN:
                    pass  # sent, outcome unknown (the retry layer did not settle it): settled below
                elif failure in _NOT_TAKEN and work.attempts < _MAX_CLAIMS:
                    logger.info("item %r: create not taken (%s); giving the item back", work.key, exc)
                    await self._give_back(work)
                    return None
                else:
                    await self._finish(work, None, exc)
                    return None
            else:
                if not scope.cancelled_caught:
                    if not await journal.submitted(work.key, task.id, task.credits):
                        self._lost_item(work)
                        return None
                    work.task, work.known = task, True
                    work.attempts = max(work.attempts, attempts)
                    return task
            # The create's outcome is unknown: this worker still owns the intent, so it looks the
            # fingerprint up itself, then sends again only if no task carries it.
            found = await self._look_up(work, sent_at)
            if found is None:
                return None
            if isinstance(found, Task):
                return found
        await self._give_back(work)
        return None

    async def _settle(self, work: _Work, *, sent_at: float) -> Task | None:
        """An adopted intent: find its task, or send it (proven absent), or report it undecidable."""
        found = await self._look_up(work, sent_at)
        if found is None or isinstance(found, Task):
            return found
        return await self._send_create(work)

    async def _look_up(self, work: _Work, sent_at: float) -> Task | Absent | None:
        """Reconcile the item's intent: its task (recorded), :class:`Absent` (a new intent with the
        same fingerprint is written), or ``None`` when undecidable (reported, slot kept)."""
        journal = self._need_journal()
        assert work.request is not None
        if not work.fingerprint or not kind_named(work.endpoint).payload:
            await self._undecidable(
                work, f"{work.endpoint} has no payload to find its task by: its create is never sent again"
            )
            return None
        try:
            found = await self._submitter.reconcile(
                work.fingerprint,
                work.request,
                sent_at=sent_at,
                deadline=anyio.current_time() + _RECONCILE_SECONDS,
            )
        except SubmitOutcomeUnknownError as exc:
            await self._undecidable(work, str(exc))
            return None
        if isinstance(found, Absent):
            try:
                work.claim = await journal.reissue_intent(work.key)
            except LeaseLostError:
                raise
            except JournalError as exc:  # no longer this worker's intent: its owner settles it
                logger.warning("item %r: %s", work.key, exc)
                self._drop(work)
                return None
            work.attempts = work.claim.attempts
            return found
        if not await journal.record_reconciled(work.key, found.id, found.credits):
            self._lost_item(work)
            return None
        work.task, work.known = found, True
        return found

    async def _undecidable(self, work: _Work, why: str) -> None:
        journal = self._need_journal()
        if not await journal.mark_undecidable(work.key, why):
            self._lost_item(work)
            return
        self._deliver(work, self._result(work, None, SubmitOutcomeUnknownError(work.fingerprint, why)))

    async def _give_back(self, work: _Work) -> None:
        """The create was proven never made: the item is pending again and its slot free."""
        journal = self._need_journal()
        await journal.release(work.key)
        if journal.lease_lost:
            raise LeaseLostError(f"worker {journal.worker_id}'s lease lapsed", worker_id=journal.worker_id)
        self._drop(work)

    def _lost_item(self, work: _Work) -> None:
        """A fenced write changed nothing: the item is not this worker's any more."""
        journal = self._need_journal()
        if journal.lease_lost:
            raise LeaseLostError(f"worker {journal.worker_id}'s lease lapsed", worker_id=journal.worker_id)
        logger.warning("item %r is no longer this worker's; leaving it to its owner", work.key)
        self._drop(work)

    def _drop(self, work: _Work) -> None:
        self._active.pop(work.key, None)
        self._drop_holder(work.key)

    async def _quota_wait(self) -> None:
        """A 429 QuotaExceeded although the organization's slots said yes: another client of the
        organization holds some. Back off with jitter."""
        caller = self._submitter.caller
        await anyio.sleep(_retry.backoff(caller.retry, 3, caller.rng))

    async def _follow(self, work: _Work) -> None:
        """Wait for the item's task to end, save its files, finish it, yield its result."""
        assert work.task is not None
        assert work.request is not None
        callback = work.request.callback_url is not None or self._callbacks
        error: ViduError | None = None
        task: Task | None = work.task
        try:
            task = await self._poller.wait(
                work.task.id,
                deadline=work.deadline,
                known=work.task if work.known else None,
                callback=callback,
            )
        except TaskFailedError as exc:
            task = exc.task if isinstance(exc.task, Task) else task
            error = exc
        except WaitTimeoutError as exc:
            task = exc.last_task if isinstance(exc.last_task, Task) else task
            error = exc
        except ViduError as exc:
            error = exc
        await self._finish(work, task, error)

    async def _finish(self, work: _Work, task: Task | None, error: ViduError | None) -> None:
        journal = self._need_journal()
        files: tuple[Path, ...] = ()
        if error is None and task is not None and task.state is TaskState.SUCCESS:
            files, error = await self._save(work.endpoint, task)
        terminal = task is not None and task.is_terminal
        state = (task.raw_state or task.state.value) if task is not None and terminal else STATE_ERROR
        # Shielded: once the database holds the finish, the result is handed over, whatever
        # cancels the batch meanwhile (else a finished item could be yielded by no worker).
        with anyio.CancelScope(shield=True):
            done = await journal.finish(
                work.key,
                state=state,
                task=_convert.task_to_json(task) if task is not None else None,
                err_code=(task.err_code if task is not None else "") or _reason(error),
                credits=task.credits if task is not None else None,
                error=str(error) if error is not None else None,
                files=[str(f) for f in files],
            )
            if not done:
                self._lost_item(work)
                return
            if terminal and task is not None and task.credits is not None:
                self._charged += task.credits
            self._deliver(work, self._result(work, task, error, files=files))

    async def _save(self, endpoint: str, task: Task) -> tuple[tuple[Path, ...], ViduError | None]:
        if self._download_to is None:
            return (), None
        output = kind_named(endpoint).output
        async with self._downloads:
            try:
                files = await self._downloader.download(task, self._download_to, output=output)
            except ViduError as exc:
                return (), exc
        return tuple(files), None

    def _result(
        self, work: _Work, task: Task | None, error: ViduError | None, *, files: tuple[Path, ...] = ()
    ) -> BatchResult:
        return BatchResult.ended(
            index=work.index,
            key=work.key,
            request=work.request,
            task=task,
            error=error,
            attempts=work.attempts,
            started=work.started,
            files=files,
            resumed=work.resumed,
        )

    def _deliver(self, work: _Work, result: BatchResult) -> None:
        self._active.pop(work.key, None)
        assert self._send is not None
        try:
            # Never blocks: an item holds a place of the local limiter until its result is taken,
            # and the stream has as many places.
            self._send.send_nowait(result)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.WouldBlock):
            self._drop_holder(work.key)
            return
        if self._fail_fast and not result.ok:
            self._work.cancel()

    # --- a finished batch ----------------------------------------------------------------------

    async def _replay_finished(self) -> None:
        """Yield every stored result of a batch finished before this worker came; create nothing
        (the items reopened for this run are claimed after)."""
        journal = self._need_journal()
        assert self._send is not None
        # Only what is finished: items reopened for this run are claimed meanwhile, and yielded
        # when they finish.
        entries = [entry for entry in (await journal.entries()).values() if entry.finished]
        logger.info("batch %s is finished: %d stored results", self._input_id[:16], len(entries))
        places = anyio.Semaphore(_DOWNLOADERS)
        async with anyio.create_task_group() as tg:
            for entry in entries:
                await places.acquire()
                tg.start_soon(self._replay_one, entry, places)

    async def _replay_one(self, entry: JournalEntry, places: anyio.Semaphore) -> None:
        assert self._send is not None
        try:
            request: Request | None = None
            try:
                body = json.loads(entry.request_json)
                if _INVALID not in body:
                    request = _convert.request_from_json(body, endpoint=entry.endpoint)
            except (ValueError, ViduError):
                request = None
            error: ViduError | None = None
            task: Task | None = None
            try:
                task = _convert.structure_task(entry.task, task_id=entry.task_id) if entry.task else None
            except ViduError as exc:
                error = exc
            files = tuple(Path(f) for f in entry.files)
            if error is not None:
                pass
            elif task is not None and task.state is TaskState.SUCCESS:
                if self._download_to is not None:
                    try:
                        output = kind_named(entry.endpoint).output
                        files = tuple(await self._downloader.download(task, self._download_to, output=output))
                    except ViduError as exc:
                        error = exc
            elif task is not None and task.state is TaskState.FAILED:
                error = TaskFailedError(task)
            else:
                error = _StoredError(entry.error or f"item ended {entry.state}", entry.err_code)
            self.resumed += 1
            result = BatchResult(
                index=entry.index,
                key=entry.key,
                request=request,
                task=task,
                error=error,
                attempts=entry.attempts,
                files=files,
                resumed=True,
            )
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                await self._send.send(result)
        finally:
            places.release()


def _sent_at(item: Adopted, journal: PostgresJournal) -> float:
    """When an adopted intent's create may have been sent (Unix time): from its claim on."""
    if item.send_by is not None:
        return item.send_by - journal.send_window
    return time.time() - journal.send_window - journal.lease_seconds


async def _shareable(request: Request) -> dict[str, Any]:
    """``request`` in Vidu's JSON shape, self-contained: local files and bytes become data URIs
    (read off the event loop), so every worker sends the same request wherever it runs."""
    if request.has_local_media:
        request = await anyio.to_thread.run_sync(_media.resolve_media, request)
    return _convert.request_to_json(request)
