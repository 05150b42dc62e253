"""``generate_many``: fan many requests out under the in-flight limit, results back in completion order.

A :class:`Batch` is an async context manager (it owns a task group, so it is a class, not a
generator: nothing here ever yields inside a task group) and an async iterator of
:class:`BatchResult`. Its work is done by a constant number of tasks whatever the batch size: one
feeder reading the input lazily, a few submitters, one deadline keeper; completions arrive from the
client's poll scheduler as callbacks. An item holds an in-flight slot from the moment it is read
until its result is handed to the consumer, so memory stays flat however large the input.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import math
import os
import time
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Final, Self, TypeAlias

import anyio
import anyio.abc
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from . import _convert, _retry
from ._batch_input import BatchInput, BatchItem, KeyMaker, canonical, position_key, read_item, request_hash
from ._budget import CreditBudget, Hold
from ._caller import Absent
from ._config import PollPolicy
from ._download import Downloader
from ._kinds import kind_of
from ._models import Request, Task, TaskState
from ._poll import Listener, Poller, Update
from ._submit import Submitter
from .exceptions import (
    BudgetExceededError,
    JournalError,
    TaskFailedError,
    ViduError,
    WaitTimeoutError,
)
from .journal import Journal, JournalEntry, SQLiteJournal

__all__ = ["Batch", "BatchInput", "BatchItem", "BatchResult", "JournalLike"]

logger: Final = logging.getLogger("vidu_async")
#: Task ids named in the warning about a batch left early; ``Batch.unfinished`` has the rest.
_LOGGED_IDS: Final = 20

#: A journal, or the path of a SQLite journal the batch opens for its duration.
JournalLike: TypeAlias = Journal | str | os.PathLike[str]

#: Concurrent create calls of one batch (creates are quick; the in-flight limit is the real bound).
_SUBMITTERS: Final = 16
#: Concurrent downloads of one batch.
_DOWNLOADERS: Final = 4


@attrs.frozen(kw_only=True)
class BatchResult:
    """The outcome of one batch item.

    Attributes:
        index: The item's position in the input (from 0).
        key: The caller's key, or one made from the request's content (its hash, with an
            occurrence number for the second and later copies of one request), so that the same
            item keeps its key when others are inserted, deleted or reordered around it.
        request: The request, or ``None`` when the input item could not be read as one.
        task: The task as last seen (terminal unless ``error`` says otherwise), or ``None`` if none was made.
        error: Why the item did not succeed: ``TaskFailedError``, ``WaitTimeoutError``,
            ``RequestValidationError``, ``BudgetExceededError``, an ``APIError``...; ``None`` on success.
        attempts: Create attempts made.
        elapsed: Seconds from submission to the result.
        files: The saved videos, with ``download_to``.
        resumed: Whether the result comes from the journal of an earlier run.
    """

    index: int
    key: str
    request: Request | None
    task: Task | None = None
    error: ViduError | None = None
    attempts: int = 0
    elapsed: float = 0.0
    files: tuple[Path, ...] = ()
    resumed: bool = False

    @property
    def ok(self) -> bool:
        """Whether the item produced a successful task."""
        return self.error is None and self.task is not None and self.task.state is TaskState.SUCCESS

    @classmethod
    def ended(
        cls,
        *,
        index: int,
        key: str,
        request: Request | None,
        task: Task | None,
        error: ViduError | None,
        attempts: int,
        started: float,
        files: tuple[Path, ...] = (),
        resumed: bool = False,
    ) -> BatchResult:
        """The result of an item that ended with ``task`` (a failed one is its ``TaskFailedError``)
        or ``error``; ``started`` on ``anyio.current_time()``'s clock (0: never submitted)."""
        if error is None and task is not None and task.state is TaskState.FAILED:
            error = TaskFailedError(task)
        return cls(
            index=index,
            key=key,
            request=request,
            task=task,
            error=error,
            attempts=attempts,
            elapsed=anyio.current_time() - started if started else 0.0,
            files=files,
            resumed=resumed,
        )


@attrs.define(eq=False)
class _Item:
    index: int
    key: str
    request: Request | None
    started: float = 0.0
    deadline: float = math.inf
    task: Task | None = None
    attempts: int = 0
    done: bool = False
    invalid: ViduError | None = None
    charged: int = 0
    #: Credits held for this item's create while it is unanswered (``max_credits`` only).
    hold: Hold | None = None
    listener: Listener | None = None
    fingerprint: str | None = None
    entry: JournalEntry | None = None
    #: The request's hash, once worked out (see :attr:`hash`).
    known_hash: str | None = None
    #: Whether the key was made from the content (else the caller gave it).
    keyless: bool = False
    #: A keyless item's position as journals written before content keys named it, when it is
    #: not its index (a job file's line).
    position: int | None = None

    @property
    def hash(self) -> str:
        """The request's hash, worked out once."""
        assert self.request is not None
        if self.known_hash is None:
            self.known_hash = request_hash(self.request)
        return self.known_hash


class Batch:
    """A running batch: ``async with`` it, then ``async for`` its results.

    With a journal, every item's intent is durable before its create is sent, its task id and
    result follow, and a re-run of the same input skips finished items (yielding their stored
    results), re-attaches to running ones, reconciles intents that never got a task id, and
    submits the rest. With ``download_to``, a successful item's videos are saved before its result
    is yielded (and recorded).

    After the block, :attr:`unfinished` lists the items that were still running when it was left
    (their tasks go on at Vidu; nothing here cancels them remotely).
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
        max_credits: int | None,
        journal: JournalLike | None = None,
        input_id: str | None = None,
        download_to: str | os.PathLike[str] | None = None,
    ) -> None:
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self._submitter = submitter
        self._poller = poller
        self._downloader = downloader
        self._size = size
        self._poll = poll
        self._callbacks = callbacks
        self._requests = requests
        self._max_in_flight = max_in_flight
        self._fail_fast = fail_fast
        self._timeout = timeout
        self._max_credits = max_credits
        self._journal_arg = journal
        self._input_id = input_id
        self._download_to = Path(download_to) if download_to is not None else None
        self.journal: Journal | None = None
        self._stack = contextlib.AsyncExitStack()
        self._entries: dict[str, JournalEntry] = {}
        self._key_maker = KeyMaker()
        self._group: anyio.abc.TaskGroup | None = None
        self._work = anyio.CancelScope()
        self._slots: anyio.CapacityLimiter | None = None
        self._send: MemoryObjectSendStream[BatchResult] | None = None
        self._receive: MemoryObjectReceiveStream[BatchResult] | None = None
        self._downloads: MemoryObjectSendStream[BatchResult] | None = None
        self._holders: dict[int, _Item] = {}
        self._running: dict[int, _Item] = {}
        self._feeding = True
        self._ended = anyio.Event()
        self._deadlines: list[tuple[float, int, _Item]] = []
        self._deadline_wake = anyio.Event()
        self.limit = 0
        self._budget = CreditBudget(max_credits)
        #: Items read from the input so far.
        self.read = 0
        #: Items whose stored result was yielded, re-attached, or reconciled from an earlier run.
        self.resumed = 0
        #: Items that were still running when the block was left: ``(index, key, task id or None)``.
        self.unfinished: list[tuple[int, str, str | None]] = []

    @property
    def credits(self) -> int:
        """Credits charged by the batch's tasks so far (failed tasks are refunded)."""
        return self._budget.charged

    # --- context -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            await self._open_journal()
            self.limit = self._max_in_flight or await self._size()
        except BaseException:
            await self._stack.aclose()
            raise
        self._slots = anyio.CapacityLimiter(self.limit)
        self._send, self._receive = anyio.create_memory_object_stream[BatchResult](self.limit)
        group = anyio.create_task_group()
        await group.__aenter__()
        self._group = group
        group.start_soon(self._run, name="vidu_async batch")
        return self

    async def _run(self) -> None:
        """All the batch's work, under its own cancel scope: stopping the work (fail_fast, leaving
        the block) cancels this scope, never the consumer's code around the ``async for``."""
        with self._work:
            async with anyio.create_task_group() as tg:
                submit_send, submit_receive = anyio.create_memory_object_stream[_Item](0)
                tg.start_soon(self._feed, submit_send, name="vidu_async batch feeder")
                for _ in range(min(_SUBMITTERS, self.limit)):
                    tg.start_soon(
                        self._submit_worker, submit_receive.clone(), name="vidu_async batch submitter"
                    )
                submit_receive.close()
                if self._download_to is not None:
                    # Unbounded, but only items holding an in-flight slot are ever in it.
                    downloads, download_receive = anyio.create_memory_object_stream[BatchResult](math.inf)
                    self._downloads = downloads
                    for _ in range(_DOWNLOADERS):
                        tg.start_soon(
                            self._download_worker, download_receive.clone(), name="vidu_async batch downloads"
                        )
                    download_receive.close()
                tg.start_soon(self._keep_deadlines, name="vidu_async batch deadlines")

    async def _open_journal(self) -> None:
        given = self._journal_arg
        if given is None:
            return
        if isinstance(given, str | os.PathLike):
            journal: Journal = await self._stack.enter_async_context(SQLiteJournal(given))
        else:
            journal = given
        if self._input_id is not None:
            await journal.open_input(self._input_id)
        self._entries = await journal.entries()
        self.journal = journal

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        group, self._group = self._group, None
        if group is None:
            return None
        self._work.cancel()
        try:
            return await group.__aexit__(exc_type, exc, tb)
        finally:
            self._leave()
            await self._stack.aclose()  # the journal shields its own final flush

    def _leave(self) -> None:
        for item in self._running.values():
            if item.task is not None and item.listener is not None:
                self._poller.unwatch(item.task.id, item.listener)
        self.unfinished = [
            (i.index, i.key, i.task.id if i.task else None)
            for i in sorted(self._running.values(), key=lambda i: i.index)
        ]
        if self.unfinished:
            running = [t for _, _, t in self.unfinished if t]
            ids = ", ".join(running[:_LOGGED_IDS]) or "none yet"
            if len(running) > _LOGGED_IDS:
                ids += f" and {len(running) - _LOGGED_IDS} more (all in Batch.unfinished)"
            logger.warning(
                "left the batch with %d unfinished item(s); tasks still running at Vidu: %s",
                len(self.unfinished),
                ids,
            )
        self._running.clear()
        for stream in (self._send, self._receive, self._downloads):
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
            raise StopAsyncIteration from None
        holder = self._holders.pop(result.index, None)
        if holder is not None and self._slots is not None:
            self._slots.release_on_behalf_of(holder)
        return result

    # --- feeding -------------------------------------------------------------------------------

    async def _items(self) -> AsyncGenerator[BatchItem, None]:
        source = self._requests
        if isinstance(source, AsyncIterable):
            async for item in source:
                yield item
        else:
            for item in source:
                yield item

    def _read_item(self, index: int, raw: object) -> _Item:
        read = read_item(index, raw, self._key_maker)
        return _Item(
            index,
            read.key,
            read.request,
            invalid=read.invalid,
            # Kept only where a journal will ask for it (memory per item in flight counts).
            known_hash=read.request_hash if self._journal_arg is not None else None,
            # A batch item's old key used its index: only a job line's differing position is kept.
            position=read.position if read.position != index else None,
            keyless=read.position is not None,
        )

    async def _feed(self, submit: MemoryObjectSendStream[_Item]) -> None:
        assert self._slots is not None
        async with submit, contextlib.aclosing(self._items()) as items:
            index = 0
            async for raw in items:
                item = self._read_item(index, raw)
                index += 1
                self.read = index
                if self.journal is not None and item.invalid is None:
                    item.invalid = self._key_maker.claim(item.key, item.index)
                entry = self._entry_of(item)
                await self._slots.acquire_on_behalf_of(item)
                self._holders[item.index] = item
                self._running[item.index] = item
                if item.invalid is not None:
                    self._finish(item, error=item.invalid)
                elif entry is not None and self._resume(item, entry):
                    self.resumed += 1
                elif (hold := await self._budget.reserve()) is None:
                    assert self._max_credits is not None
                    budget = self._budget
                    self._finish(
                        item, error=BudgetExceededError(self._max_credits, budget.charged, budget.price)
                    )
                else:
                    item.hold = hold
                    await submit.send(item)
        self._feeding = False
        self._maybe_close()

    def _entry_of(self, item: _Item) -> JournalEntry | None:
        """What the journal holds of ``item``: under its key, or for a keyless item under the
        key a journal written before content keys gave it (renamed to the content key, so that
        the item keeps its identity however the input changes from now on)."""
        entry = self._entries.pop(item.key, None)
        if entry is not None or not item.keyless or not self._entries or item.request is None:
            return entry
        old_key = position_key(item.request, item.index if item.position is None else item.position)
        entry = self._entries.pop(old_key, None)
        if entry is None or self.journal is None:
            return None
        self.journal.rename_key(old_key, item.key)
        return attrs.evolve(entry, key=item.key)

    def _resume(self, item: _Item, entry: JournalEntry) -> bool:
        """Pick up an item an earlier run journaled; False when it must be submitted as new."""
        assert item.request is not None
        if entry.request_hash and entry.request_hash != item.hash:
            raise JournalError(
                f"item {item.index} (key {item.key!r}) is not the request this journal recorded under that key:"
                " a journal resumes the input it was written for; use a new journal for a changed input"
            )
        stored = _convert.structure_task(entry.task, task_id=entry.task_id) if entry.task else None
        if entry.finished and stored is not None and stored.is_terminal:
            item.task, item.attempts = stored, entry.attempts
            result = self._result(item, stored, None, files=tuple(Path(f) for f in entry.files), resumed=True)
            if result.ok and self._downloads is not None:
                # Files are checked before the result is yielded: one deleted or cut short since
                # is fetched again (with a fresh link when it expired), or the item fails saying why.
                self._downloads.send_nowait(result)
            else:
                self._send_result(item, result)
            return True
        item.fingerprint = entry.fingerprint or None
        item.attempts = entry.attempts
        item.entry = entry
        if entry.task_id:
            self._start_clock(item)
            self._watch(item, stored or Task(id=entry.task_id), known=stored is not None)
            return True
        return False  # an intent without a task id: the submitter reconciles it first

    # --- submitting ----------------------------------------------------------------------------

    async def _submit_worker(self, queue: MemoryObjectReceiveStream[_Item]) -> None:
        async with queue:
            async for item in queue:
                await self._submit(item)

    def _start_clock(self, item: _Item) -> None:
        assert item.request is not None
        item.started = anyio.current_time()
        timeout = self._poll.timeout_for(self._timeout, item.request.is_off_peak)
        item.deadline = item.started + timeout if timeout is not None else math.inf

    async def _submit(self, item: _Item) -> None:
        try:
            await self._create(item)
        finally:
            self._budget.settle(item.hold, answered=item.task is not None, price=item.charged)

    async def _create(self, item: _Item) -> None:
        assert item.request is not None
        self._start_clock(item)
        try:
            if item.entry is not None and item.fingerprint:
                # An intent an earlier run journaled without a task id: its create may have made
                # a task. Settled as any create whose answer was lost (the one rule of _submit).
                sent_at = item.entry.created_at or time.time()
                found = await self._submitter.reconcile(
                    item.fingerprint, item.request, sent_at=sent_at, deadline=item.deadline
                )
                if not isinstance(found, Absent):
                    logger.info("item %r: adopted task %s from an earlier run", item.key, found.id)
                    self._submitted(item, found)
                    return
            await self._record_intent(item)
            task, attempts = await self._submitter.submit(
                item.request, deadline=item.deadline, fingerprint=item.fingerprint, on_quota=self._slot_freed
            )
        except JournalError:
            raise  # the journal cannot be trusted any more: stop the batch
        except ViduError as exc:
            item.attempts += getattr(exc, "attempts", 1)
            self._finish(item, error=exc)
            return
        item.attempts += attempts
        self._submitted(item, task)

    async def _record_intent(self, item: _Item) -> None:
        assert item.request is not None
        if self.journal is None:
            return
        kind = kind_of(item.request)
        if item.fingerprint is None:
            # Without a payload field the create cannot be found again: no fingerprint, and a lost
            # answer is SubmitOutcomeUnknownError on resume as on the first run.
            item.fingerprint = item.request.payload or (_retry.new_fingerprint() if kind.payload else "")
        await self.journal.record_intent(
            key=item.key,
            index=item.index,
            request=canonical(item.request),
            request_hash=item.hash,
            fingerprint=item.fingerprint,
            endpoint=kind.endpoint,
        )
        item.known_hash = None  # journaled: not needed again

    def _submitted(self, item: _Item, task: Task) -> None:
        item.task = task
        if self.journal is not None:
            self.journal.record_submitted(item.key, task.id, task.credits)
        item.charged = task.credits or 0
        self._budget.charge(item.charged)
        if task.is_terminal:
            self._finish(item, task=task)
        else:
            self._watch(item, task, known=True)

    def _watch(self, item: _Item, task: Task, *, known: bool) -> None:
        assert item.request is not None
        item.task = task
        if math.isfinite(item.deadline):
            heapq.heappush(self._deadlines, (item.deadline, item.index, item))
            self._deadline_wake.set()
        item.listener = self._listener_for(item)
        callback = item.request.callback_url is not None or self._callbacks
        self._poller.watch(
            task.id,
            item.listener,
            known=task if known else None,
            off_peak=item.request.is_off_peak,
            callback=callback,
        )

    async def _slot_freed(self) -> None:
        """Wait out a 429 QuotaExceeded: until one of our tasks ends, or, with none of ours
        running (another client holds the organization's slots), a jittered backoff."""
        if any(i.task is not None for i in self._running.values()):
            await self._ended.wait()
        else:
            caller = self._submitter.caller
            await anyio.sleep(_retry.backoff(caller.retry, 3, caller.rng))

    # --- completion ---------------------------------------------------------------------------

    def _listener_for(self, item: _Item) -> Listener:
        def listener(update: Update) -> None:
            if isinstance(update, ViduError):
                self._finish(item, error=update)
            else:
                item.task = update
                if update.is_terminal:
                    self._finish(item, task=update)

        return listener

    def _result(
        self,
        item: _Item,
        task: Task | None,
        error: ViduError | None,
        *,
        files: tuple[Path, ...] = (),
        resumed: bool = False,
    ) -> BatchResult:
        return BatchResult.ended(
            index=item.index,
            key=item.key,
            request=item.request,
            task=task,
            error=error,
            attempts=item.attempts,
            started=item.started,
            files=files,
            resumed=resumed,
        )

    def _finish(self, item: _Item, *, task: Task | None = None, error: ViduError | None = None) -> None:
        """The item's task ended (or it failed without one): download if asked, then deliver."""
        if item.done:
            return
        item.done = True
        task = task or item.task
        if item.listener is not None and task is not None and not task.is_terminal:
            self._poller.unwatch(task.id, item.listener)
        if task is not None and task.is_terminal and task.credits is not None:
            self._budget.charge(task.credits - item.charged)  # a failed task is refunded
            item.charged = task.credits
        result = self._result(item, task, error)
        self._ended.set()
        self._ended = anyio.Event()
        if result.ok and self._downloads is not None:
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                self._downloads.send_nowait(result)
            return
        self._deliver(item, result)

    async def _download_worker(self, queue: MemoryObjectReceiveStream[BatchResult]) -> None:
        assert self._download_to is not None
        async with queue:
            async for result in queue:
                item = self._running.get(result.index)
                if item is None or result.task is None:
                    continue
                try:
                    files = await self._downloader.download(
                        result.task, self._download_to, output=kind_of(result.request).output
                    )
                except ViduError as exc:
                    result = attrs.evolve(result, error=exc)
                else:
                    result = attrs.evolve(result, files=tuple(files))
                self._deliver(item, result)

    def _deliver(self, item: _Item, result: BatchResult) -> None:
        """Record the result (when final), hand it to the consumer, and close when all are done."""
        self._record_result(item, result)
        self._send_result(item, result)

    def _record_result(self, item: _Item, result: BatchResult) -> None:
        # Only outcomes a re-run must not repeat are final: a success (with its files) or a failed
        # task. Anything else (timeout, budget, a refused create, a failed download) is tried again.
        task = result.task
        final = result.ok or (task is not None and task.state is TaskState.FAILED)
        if self.journal is None or not final or task is None:
            return
        self.journal.record_result(
            item.key,
            state=task.raw_state or task.state.value,
            task=_convert.task_to_json(task),
            err_code=task.err_code,
            credits=task.credits,
            error=str(result.error) if result.error is not None else None,
            attempts=item.attempts,
            files=[str(f) for f in result.files],
            index=item.index,
        )

    def _send_result(self, item: _Item, result: BatchResult) -> None:
        self._running.pop(item.index, None)
        assert self._send is not None
        try:
            self._send.send_nowait(result)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return
        if self._fail_fast and not result.ok:
            self._feeding = False
            self._work.cancel()
            self._send.close()
            return
        self._maybe_close()

    def _maybe_close(self) -> None:
        if not self._feeding and not self._running and self._send is not None:
            self._send.close()

    async def _keep_deadlines(self) -> None:
        """Finish items whose deadline passed with :class:`WaitTimeoutError` (one task for all)."""
        while True:
            while self._deadlines and (
                self._deadlines[0][2].done or self._deadlines[0][0] <= anyio.current_time()
            ):
                _, _, item = heapq.heappop(self._deadlines)
                if not item.done and item.task is not None:
                    self._finish(item, error=WaitTimeoutError(item.task.id, item.task))
            wait = self._deadlines[0][0] - anyio.current_time() if self._deadlines else math.inf
            self._deadline_wake = anyio.Event()
            with anyio.move_on_after(wait):
                await self._deadline_wake.wait()
