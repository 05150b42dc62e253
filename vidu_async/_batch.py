"""``generate_many``: fan many requests out under the in-flight limit, results back in completion order.

A :class:`Batch` is an async context manager (it owns a task group, so it is a class, not a
generator: nothing here ever yields inside a task group) and an async iterator of
:class:`BatchResult`. Its work is done by a constant number of tasks whatever the batch size: one
feeder reading the input lazily, a few submitters, one deadline keeper; completions arrive from the
client's poll scheduler as callbacks. An item holds an in-flight slot from the moment it is read
until its result is handed to the consumer, so memory stays flat however large the input.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import math
from collections.abc import AsyncIterable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeAlias

import anyio
import anyio.abc
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from . import _convert, _retry
from ._models import Reference2Video, Task, TaskState
from ._poll import Listener, Update
from .exceptions import (
    BudgetExceededError,
    Problem,
    RequestValidationError,
    TaskFailedError,
    ViduError,
    WaitTimeoutError,
)

if TYPE_CHECKING:
    from ._client import ViduClient

__all__ = ["Batch", "BatchInput", "BatchItem", "BatchResult", "request_key"]

logger: Final = logging.getLogger("vidu_async")

#: One input item: a request, a body in Vidu's JSON shape (an optional ``"key"`` names it), or ``(key, request)``.
BatchItem: TypeAlias = Reference2Video | Mapping[str, Any] | tuple[str, Reference2Video | Mapping[str, Any]]
BatchInput: TypeAlias = Iterable[BatchItem] | AsyncIterable[BatchItem]

#: Concurrent create calls of one batch (creates are quick; the in-flight limit is the real bound).
_SUBMITTERS: Final = 16


@attrs.frozen(kw_only=True)
class BatchResult:
    """The outcome of one batch item.

    Attributes:
        index: The item's position in the input (from 0).
        key: The caller's key, or a stable hash of the request and its position.
        request: The request, or ``None`` when the input item could not be read as one.
        task: The task as last seen (terminal unless ``error`` says otherwise), or ``None`` if none was made.
        error: Why the item did not succeed: ``TaskFailedError``, ``WaitTimeoutError``,
            ``RequestValidationError``, ``BudgetExceededError``, an ``APIError``...; ``None`` on success.
        attempts: Create attempts made.
        elapsed: Seconds from submission to the result.
    """

    index: int
    key: str
    request: Reference2Video | None
    task: Task | None = None
    error: ViduError | None = None
    attempts: int = 0
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the item produced a successful task."""
        return self.error is None and self.task is not None and self.task.state is TaskState.SUCCESS


def _canonical(value: Any) -> Any:
    if isinstance(value, bytes):
        return "sha256:" + hashlib.sha256(value).hexdigest()
    if isinstance(value, Path):
        return "path:" + str(value)
    if isinstance(value, Reference2Video) or attrs.has(type(value)):
        return {a.name: _canonical(getattr(value, a.name)) for a in attrs.fields(type(value))}
    if isinstance(value, tuple | list):
        return [_canonical(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    return value


def request_key(request: Reference2Video, index: int) -> str:
    """A stable key for an unnamed item: a hash of the request and its position."""
    text = json.dumps([index, _canonical(request)], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@attrs.define(eq=False)
class _Item:
    index: int
    key: str
    request: Reference2Video | None
    started: float = 0.0
    deadline: float = math.inf
    task: Task | None = None
    attempts: int = 0
    done: bool = False
    invalid: ViduError | None = None
    charged: int = 0
    listener: Listener | None = None


class Batch:
    """A running batch: ``async with`` it, then ``async for`` its results.

    After the block, :attr:`unfinished` lists the items that were still running when it was left
    (their tasks go on at Vidu; nothing here cancels them remotely).
    """

    def __init__(
        self,
        client: ViduClient,
        requests: BatchInput,
        *,
        max_in_flight: int | None,
        fail_fast: bool,
        timeout: float | None,
        max_credits: int | None,
    ) -> None:
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self._client = client
        self._requests = requests
        self._max_in_flight = max_in_flight
        self._fail_fast = fail_fast
        self._timeout = timeout
        self._max_credits = max_credits
        self._group: anyio.abc.TaskGroup | None = None
        self._slots: anyio.CapacityLimiter | None = None
        self._send: MemoryObjectSendStream[BatchResult] | None = None
        self._receive: MemoryObjectReceiveStream[BatchResult] | None = None
        self._holders: dict[int, _Item] = {}
        self._running: dict[int, _Item] = {}
        self._feeding = True
        self._ended = anyio.Event()
        self._deadlines: list[tuple[float, int, _Item]] = []
        self._deadline_wake = anyio.Event()
        self.limit = 0
        #: Credits charged by the batch's tasks so far (failed tasks are refunded).
        self.credits = 0
        #: Items read from the input so far.
        self.read = 0
        #: Items that were still running when the block was left: ``(index, key, task id or None)``.
        self.unfinished: list[tuple[int, str, str | None]] = []

    # --- context -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self.limit = self._max_in_flight or await self._client.in_flight_limit()
        self._slots = anyio.CapacityLimiter(self.limit)
        self._send, self._receive = anyio.create_memory_object_stream[BatchResult](self.limit)
        group = anyio.create_task_group()
        await group.__aenter__()
        self._group = group
        submit_send, submit_receive = anyio.create_memory_object_stream[_Item](0)
        group.start_soon(self._feed, submit_send, name="vidu_async batch feeder")
        for _ in range(min(_SUBMITTERS, self.limit)):
            group.start_soon(self._submitter, submit_receive.clone(), name="vidu_async batch submitter")
        submit_receive.close()
        group.start_soon(self._keep_deadlines, name="vidu_async batch deadlines")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        group, self._group = self._group, None
        if group is None:
            return None
        group.cancel_scope.cancel()
        try:
            return await group.__aexit__(exc_type, exc, tb)
        finally:
            self._leave()

    def _leave(self) -> None:
        for item in self._running.values():
            if item.task is not None and item.listener is not None:
                self._client._poller.unwatch(item.task.id, item.listener)
        self.unfinished = [
            (i.index, i.key, i.task.id if i.task else None)
            for i in sorted(self._running.values(), key=lambda i: i.index)
        ]
        if self.unfinished:
            ids = ", ".join(t for _, _, t in self.unfinished if t) or "none yet"
            logger.warning(
                "left the batch with %d items unfinished; tasks still running at Vidu: %s",
                len(self.unfinished),
                ids,
            )
        self._running.clear()
        if self._send is not None:
            self._send.close()
        if self._receive is not None:
            self._receive.close()

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

    # --- feeding and submitting ---------------------------------------------------------------

    async def _items(self) -> AsyncIterable[BatchItem]:
        source = self._requests
        if isinstance(source, AsyncIterable):
            async for item in source:
                yield item
        else:
            for item in source:
                yield item

    def _read_item(self, index: int, raw: object) -> _Item:
        """One input item as an _Item; anything unreadable (callers without a type checker pass
        anything) becomes an item that fails with a clear error."""
        key: str | None = None
        body: object
        if isinstance(raw, tuple) and len(raw) == 2:
            key, body = str(raw[0]), raw[1]
        else:
            body = raw
        if isinstance(body, Mapping) and not isinstance(body, Reference2Video):
            if "key" in body:
                key = str(body["key"])
                body = {k: v for k, v in body.items() if k != "key"}
            try:
                request = _convert.request_from_json(body, what=f"batch item {index}")
            except RequestValidationError as exc:
                return _Item(index, key or f"item-{index}", None, invalid=exc)
        elif isinstance(body, Reference2Video):
            request = body
        else:
            error = RequestValidationError(
                [
                    Problem(
                        "item",
                        f"expected a Reference2Video, a JSON object or a (key, request) pair, got {type(raw).__name__}",
                        "BadRequest",
                    )
                ],
                subject=f"batch item {index}",
            )
            return _Item(index, key or f"item-{index}", None, invalid=error)
        return _Item(index, key or request_key(request, index), request)

    async def _feed(self, submit: MemoryObjectSendStream[_Item]) -> None:
        assert self._slots is not None
        async with submit:
            index = 0
            async for raw in self._items():
                item = self._read_item(index, raw)
                index += 1
                self.read = index
                await self._slots.acquire_on_behalf_of(item)
                self._holders[item.index] = item
                self._running[item.index] = item
                if item.invalid is not None:
                    self._finish(item, error=item.invalid)
                elif self._max_credits is not None and self.credits >= self._max_credits:
                    self._finish(item, error=BudgetExceededError(self._max_credits, self.credits))
                else:
                    await submit.send(item)
        self._feeding = False
        self._maybe_close()

    async def _submitter(self, queue: MemoryObjectReceiveStream[_Item]) -> None:
        async with queue:
            async for item in queue:
                await self._submit(item)

    async def _submit(self, item: _Item) -> None:
        assert item.request is not None
        client = self._client
        item.started = anyio.current_time()
        timeout = client._timeout_for(self._timeout, item.request.off_peak)
        item.deadline = item.started + timeout if timeout is not None else math.inf
        try:
            task, item.attempts = await client._submit(
                item.request, deadline=item.deadline, on_quota=self._slot_freed
            )
        except ViduError as exc:
            item.attempts = getattr(exc, "attempts", 1)
            self._finish(item, error=exc)
            return
        item.task = task
        item.charged = task.credits or 0
        self.credits += item.charged
        if task.is_terminal:
            self._finish(item, task=task)
            return
        if math.isfinite(item.deadline):
            heapq.heappush(self._deadlines, (item.deadline, item.index, item))
            self._deadline_wake.set()
        item.listener = self._listener_for(item)
        callback = item.request.callback_url is not None or client.callback_url is not None
        client._poller.watch(
            task.id, item.listener, known=task, off_peak=bool(item.request.off_peak), callback=callback
        )

    async def _slot_freed(self) -> None:
        """Wait out a 429 QuotaExceeded: until one of our tasks ends, or, with none of ours
        running (another client holds the organization's slots), a jittered backoff."""
        if any(i.task is not None for i in self._running.values()):
            await self._ended.wait()
        else:
            await anyio.sleep(_retry.backoff(self._client.retry, 3, self._client._rng))

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

    def _finish(self, item: _Item, *, task: Task | None = None, error: ViduError | None = None) -> None:
        if item.done:
            return
        item.done = True
        self._running.pop(item.index, None)
        task = task or item.task
        if item.listener is not None and task is not None and not task.is_terminal:
            self._client._poller.unwatch(task.id, item.listener)
        if task is not None and task.is_terminal and task.credits is not None:
            self.credits += task.credits - item.charged  # a failed task is refunded
            item.charged = task.credits
        if error is None and task is not None and task.state is TaskState.FAILED:
            error = TaskFailedError(task)
        elapsed = anyio.current_time() - item.started if item.started else 0.0
        result = BatchResult(
            index=item.index,
            key=item.key,
            request=item.request,
            task=task,
            error=error,
            attempts=item.attempts,
            elapsed=elapsed,
        )
        assert self._send is not None
        try:
            self._send.send_nowait(result)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return
        self._ended.set()
        self._ended = anyio.Event()
        if self._fail_fast and not result.ok:
            self._feeding = False
            if self._group is not None:
                self._group.cancel_scope.cancel()
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
