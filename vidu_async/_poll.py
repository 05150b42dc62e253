"""The poll scheduler: one background task per client that watches every task it is told about.

:class:`PollPlanner` is the pure part: it decides when each task is next checked (soon after
submission, then less often as the task ages, jittered) and what an observation means (a change to
report, a task to drop). :class:`Poller` is the I/O part: it sleeps until something is due, then asks
the service, in bulk through the task list (``task_ids`` + ``states``, up to 100 tasks a request) where
that works and one task at a time where it does not, within a poll budget of requests per second.

Listeners of one task share one schedule. A finish seen in the list is confirmed with one
``GET /tasks/{id}/creations`` before anyone hears of it, so listeners always get the full task.
A finish a callback reports (:meth:`Poller.hint`) is read the same way, at once and outside the
poll budget; tasks completed by callback are otherwise polled only at the safety-net interval.
An answer that cannot be read as a task is warned of and read again, backing off; after
``PollPolicy.unreadable_attempts`` such answers in a row the watch ends with that error.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import math
import random
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Final, TypeAlias

import anyio
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from . import _http
from ._caller import Caller
from ._config import PollPolicy
from ._events import StateChangeEvent, emit
from ._limits import TokenBucket
from ._models import Task, TaskState
from .exceptions import (
    APIError,
    NotFoundError,
    ResponseValidationError,
    TaskFailedError,
    ViduError,
    WaitTimeoutError,
)

__all__ = ["Listener", "PollPlanner", "Poller", "Subscription", "Update"]

logger: Final = logging.getLogger("vidu_async")

#: What a listener hears: the task in a new state, or the error that ends the watch (not found,
#: or answers that stay unreadable).
Update: TypeAlias = Task | ViduError
Listener: TypeAlias = Callable[[Update], None]

_TERMINAL: Final = (TaskState.SUCCESS.value, TaskState.FAILED.value)
_PAGE: Final = _http.MAX_PAGE_SIZE


@attrs.define(eq=False)
class _Entry:
    task_id: str
    added_at: float
    next_check: float
    off_peak: bool
    created_at: datetime
    last: Task | None = None
    state_since: float = 0.0
    failures: int = 0
    unreadable: int = 0  # answers in a row that could not be read as a task
    version: int = 0
    callback: bool = False
    hinted: bool = False
    payload: str = ""
    listeners: list[Listener] = attrs.field(factory=list)


class PollPlanner:
    """Pure scheduling decisions for every watched task. Time is passed in, in seconds."""

    def __init__(self, policy: PollPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self._rng = rng or random.Random()
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._hinted: dict[str, None] = {}  # an ordered set: hinted, not yet taken
        self._by_payload: dict[str, str] = {}  # payload -> task id, for callbacks without an id

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._entries

    def entry(self, task_id: str) -> _Entry | None:
        """The entry of a watched task (for the poller and tests)."""
        return self._entries.get(task_id)

    # --- membership ---------------------------------------------------------------------------

    def add(
        self,
        task_id: str,
        listener: Listener,
        now: float,
        *,
        known: Task | None = None,
        off_peak: bool = False,
        callback: bool = False,
    ) -> list[tuple[Listener, Update]]:
        """Watch ``task_id`` for ``listener``; returns what to tell listeners right away.

        A ``callback`` task gets its updates pushed, so it is polled only at the safety-net interval.

        A new listener hears the last known state at once (so every watch starts with the task as it
        is); a task already watched keeps its schedule.
        """
        entry = self._entries.get(task_id)
        if entry is None:
            created = known.created_at if known is not None and known.created_at else datetime.now(UTC)
            entry = _Entry(
                task_id=task_id,
                added_at=now,
                next_check=now,
                off_peak=off_peak,
                created_at=created,
                state_since=now,
                callback=callback,
            )
            self._entries[task_id] = entry
            if known is not None:
                entry.last = known
                self._learn_payload(entry, known.payload)
                self._schedule(entry, now + self._jittered(self._first_interval(entry)))
            else:
                self._schedule(entry, now)  # nothing known: look at once
        entry.listeners.append(listener)
        out: list[tuple[Listener, Update]] = []
        current = entry.last if entry.last is not None else known
        if current is not None:
            out.append((listener, current))
            if current.is_terminal:
                self.remove(task_id)
        return out

    def remove_listener(self, task_id: str, listener: Listener) -> None:
        """Stop telling ``listener``; the task is dropped when nobody listens any more."""
        entry = self._entries.get(task_id)
        if entry is None:
            return
        if listener in entry.listeners:
            entry.listeners.remove(listener)
        if not entry.listeners:
            self.remove(task_id)

    def remove(self, task_id: str) -> None:
        """Stop watching ``task_id`` (its heap entries become stale and are skipped)."""
        entry = self._entries.pop(task_id, None)
        self._hinted.pop(task_id, None)
        if entry is not None and entry.payload:
            self._by_payload.pop(entry.payload, None)

    def _learn_payload(self, entry: _Entry, payload: str) -> None:
        # Only tasks whose updates come by callback can be named by payload alone: the others
        # spend no memory on it (a client may watch tens of thousands).
        if entry.callback and payload and not entry.payload:
            entry.payload = payload
            self._by_payload[payload] = entry.task_id

    def task_of_payload(self, payload: str) -> str | None:
        """The watched task whose ``payload`` is ``payload`` (the SDK's fingerprint, unique), if any."""
        return self._by_payload.get(payload) if payload else None

    # --- timing -------------------------------------------------------------------------------

    def _first_interval(self, entry: _Entry) -> float:
        if entry.callback:
            return self.policy.callback_interval
        if entry.off_peak:
            return self.policy.off_peak_min_interval
        return self.policy.first_check

    def interval(self, entry: _Entry, now: float) -> float:
        """The un-jittered interval before the next check: a fraction of the task's age, bounded."""
        if entry.callback:
            low = high = max(
                self.policy.callback_interval, self.policy.off_peak_min_interval if entry.off_peak else 0
            )
        elif entry.off_peak:
            low, high = self.policy.off_peak_min_interval, self.policy.off_peak_max_interval
        else:
            low, high = self.policy.min_interval, self.policy.max_interval
        age = max(0.0, now - entry.added_at)
        base = min(high, max(low, age * self.policy.age_fraction))
        if entry.failures:
            base = min(high, base * 2.0 ** min(entry.failures, 6))
        return base

    def _jittered(self, seconds: float) -> float:
        spread = self.policy.jitter
        return seconds * (1.0 - spread / 2 + spread * self._rng.random())

    def _schedule(self, entry: _Entry, when: float) -> None:
        entry.version += 1
        entry.next_check = when
        heapq.heappush(self._heap, (when, entry.version, entry.task_id))

    def _clean_top(self) -> None:
        while self._heap:
            _, version, task_id = self._heap[0]
            entry = self._entries.get(task_id)
            if entry is not None and entry.version == version:
                return
            heapq.heappop(self._heap)

    def next_wake(self) -> float | None:
        """When the earliest check is due, or ``None`` when nothing is watched."""
        self._clean_top()
        return self._heap[0][0] if self._heap else None

    def take_due(self, now: float, *, fill_to: int = 1) -> list[_Entry]:
        """Every entry due by ``now``; then, up to a multiple of ``fill_to``, the ones due soonest after.

        In bulk mode one request covers ``fill_to`` tasks whatever their number, so a page is filled
        with the tasks that would be due next: they are checked earlier at no extra cost. Only a page
        that is sent anyway is filled: entries read one by one (never seen, or hinted by a callback)
        take no room in it, and when they are all that is due no page is sent at all.
        """
        due: list[_Entry] = []
        self._clean_top()
        while self._heap and self._heap[0][0] <= now:
            _, _, task_id = heapq.heappop(self._heap)
            due.append(self._entries[task_id])
            self._clean_top()
        if due and fill_to > 1:
            listed = sum(1 for entry in due if entry.last is not None and not entry.hinted)
            room = -listed % fill_to  # 0 when nothing due goes to the list
            while room and self._heap:
                _, _, task_id = heapq.heappop(self._heap)
                due.append(self._entries[task_id])
                room -= 1
                self._clean_top()
        for entry in due:
            entry.version += 1  # taken: its old heap slot is stale until it is rescheduled
        return due

    # --- observations -------------------------------------------------------------------------

    def observe(self, task: Task, now: float) -> list[tuple[Listener, Update]]:
        """Record ``task`` as seen now; returns the notifications for a change (none if unchanged)."""
        entry = self._entries.get(task.id)
        if entry is None:
            return []
        entry.failures = 0
        entry.unreadable = 0
        entry.hinted = False
        self._learn_payload(entry, task.payload)
        previous = entry.last
        changed = previous is None or previous.raw_state != task.raw_state or previous.state is not task.state
        entry.last = task
        out: list[tuple[Listener, Update]] = []
        if changed:
            entry.state_since = now
            out = [(listener, task) for listener in entry.listeners]
        if task.is_terminal:
            self.remove(task.id)
        else:
            self._schedule(entry, now + self._jittered(self.interval(entry, now)))
        return out

    def hint(self, task_id: str) -> bool:
        """A callback says ``task_id`` finished: it is to be read at once, outside the schedule
        (:meth:`take_hinted`). Returns False when it is not watched or already hinted."""
        entry = self._entries.get(task_id)
        if entry is None or entry.hinted:
            return False
        entry.hinted = True
        self._hinted[task_id] = None
        return True

    @property
    def has_hints(self) -> bool:
        """Whether hinted entries wait to be taken."""
        return bool(self._hinted)

    def take_hinted(self) -> list[_Entry]:
        """The hinted entries, each taken once: their schedule waits for the observation (or the
        failure) of the read, which reschedules them."""
        taken = [entry for task_id in self._hinted if (entry := self._entries.get(task_id)) is not None]
        self._hinted.clear()
        for entry in taken:
            entry.version += 1  # its heap slot is stale until it is rescheduled
        return taken

    def reschedule(self, task_id: str, when: float) -> None:
        """Check ``task_id`` at ``when`` instead."""
        entry = self._entries.get(task_id)
        if entry is not None:
            self._schedule(entry, when)

    def unchanged(self, task_id: str, now: float) -> None:
        """A check found no change: schedule the next one."""
        entry = self._entries.get(task_id)
        if entry is not None:
            entry.failures = 0
            self._schedule(entry, now + self._jittered(self.interval(entry, now)))

    def failed(self, task_id: str, now: float, *, not_before: float = -math.inf) -> None:
        """A check could not be made (network, 5xx, 429): try again later, backing off, and no
        earlier than ``not_before`` (the service's ``Retry-After``)."""
        entry = self._entries.get(task_id)
        if entry is not None:
            entry.failures += 1
            self._schedule(entry, max(not_before, now + self._jittered(self.interval(entry, now))))

    def unreadable(self, task_id: str, now: float) -> int:
        """A read of ``task_id`` answered something that cannot be read as a task. Returns how many
        answers in a row did so (0 when the task is not watched). Below
        ``policy.unreadable_attempts`` the task is checked again, backing off as after a failed
        check; at it, the caller ends the watch with :meth:`error`. A readable answer starts the
        count again."""
        entry = self._entries.get(task_id)
        if entry is None:
            return 0
        entry.unreadable += 1
        if entry.unreadable < self.policy.unreadable_attempts:
            self.failed(task_id, now)
        return entry.unreadable

    def error(self, task_id: str, exc: ViduError) -> list[tuple[Listener, Update]]:
        """A check showed the watch cannot go on (the task does not exist): tell everyone and drop it."""
        entry = self._entries.pop(task_id, None)
        self._hinted.pop(task_id, None)
        return [(listener, exc) for listener in entry.listeners] if entry is not None else []


class Subscription:
    """A watch on one task: a stream of updates, closed with :meth:`close`."""

    def __init__(self, poller: Poller, task_id: str) -> None:
        self.task_id = task_id
        self._poller = poller
        send: MemoryObjectSendStream[Update]
        receive: MemoryObjectReceiveStream[Update]
        # Unbounded, but a task changes state a handful of times at most.
        send, receive = anyio.create_memory_object_stream[Update](math.inf)
        self._send = send
        self.updates = receive

    def deliver(self, update: Update) -> None:
        """The listener the poller calls (never blocks)."""
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._send.send_nowait(update)  # a closed stream: the watcher already left

    def close(self) -> None:
        """Stop watching (idempotent)."""
        self._poller.unwatch(self.task_id, self.deliver)
        self._send.close()
        self.updates.close()


class Poller:
    """The poll scheduler: run :meth:`run` as one background task; register tasks with :meth:`watch`.

    Args:
        caller: Sends each check once (through the client's budgets and ``Retry-After`` holds);
            its hooks hear the state changes.
        policy: The poll policy.
        rng: Draws the jitter.
    """

    def __init__(self, caller: Caller, policy: PollPolicy, *, rng: random.Random | None = None) -> None:
        self._caller = caller
        self.policy = policy
        self.planner = PollPlanner(policy, rng)
        self._hooks = caller.hooks
        self._wake = anyio.Event()
        self._budget: TokenBucket | None = None
        self._bulk_ok_after = -math.inf
        self._rows_carry_state: bool | None = None
        self._filter_mismatches = 0
        self._intermediate_at = -math.inf
        self.requests: dict[str, int] = {"list": 0, "get": 0}

    # --- registration --------------------------------------------------------------------------

    def watch(
        self,
        task_id: str,
        listener: Listener,
        *,
        known: Task | None = None,
        off_peak: bool = False,
        callback: bool = False,
    ) -> None:
        """Start telling ``listener`` about ``task_id`` (it hears the known state at once)."""
        now = anyio.current_time()
        notes = self.planner.add(task_id, listener, now, known=known, off_peak=off_peak, callback=callback)
        self._notify(notes, None)
        self._wake.set()

    def subscribe(
        self, task_id: str, *, known: Task | None = None, off_peak: bool = False, callback: bool = False
    ) -> Subscription:
        """A :class:`Subscription` (stream) for ``task_id``."""
        subscription = Subscription(self, task_id)
        self.watch(task_id, subscription.deliver, known=known, off_peak=off_peak, callback=callback)
        return subscription

    async def wait(
        self,
        task_id: str,
        *,
        deadline: float,
        known: Task | None = None,
        callback: bool = False,
        on_give_up: Callable[[], Awaitable[None]] | None = None,
    ) -> Task:
        """Wait until ``task_id`` finishes, or ``deadline`` passes.

        Args:
            task_id: The task.
            deadline: When to stop waiting (``anyio.current_time()`` scale).
            known: The task as last read (saves the first request; tells if it is off-peak).
            callback: Whether its updates come by callback (polled as a safety net only).
            on_give_up: Run when the wait ends without a finish (timeout or cancellation): a
                remote cancel, say (it should shield itself).

        Raises:
            TaskFailedError: the task ended ``failed``.
            WaitTimeoutError: not finished by ``deadline``.
            NotFoundError, ResponseValidationError: what ended the watch.
        """
        last = known
        subscription = self.subscribe(
            task_id, known=known, off_peak=bool(known and known.off_peak), callback=callback
        )
        try:
            with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
                async for update in subscription.updates:
                    if isinstance(update, ViduError):
                        raise update
                    last = update
                    if update.is_terminal:
                        break
        except anyio.get_cancelled_exc_class():
            if on_give_up is not None:
                await on_give_up()
            raise
        finally:
            subscription.close()
        if last is None or not last.is_terminal:
            if on_give_up is not None:
                await on_give_up()
            raise WaitTimeoutError(task_id, last)
        if last.state is TaskState.FAILED:
            raise TaskFailedError(last)
        return last

    def unwatch(self, task_id: str, listener: Listener) -> None:
        """Stop telling ``listener`` about ``task_id``."""
        self.planner.remove_listener(task_id, listener)

    def hint(self, task: Task) -> bool:
        """A callback says ``task`` finished: read it with one GET before anyone hears of it.

        The body is not signed, so it is only a hint; hints of unfinished states change nothing
        (each would cost a request, and the finish brings the task whole). A body without an id
        (the documented callback shape is the query's, which may have none) is matched to its
        task through its ``payload`` (the SDK's fingerprint).

        Returns:
            Whether the body names a watched task (by id, or by payload).
        """
        task_id = task.id or self.planner.task_of_payload(task.payload)
        if task_id is None or task_id not in self.planner:
            return False
        if task.is_terminal and self.planner.hint(task_id):
            self._wake.set()
        return True

    # --- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Check tasks as they fall due, forever (cancel the enclosing task group to stop)."""
        rate = self.policy.requests_per_second
        self._budget = TokenBucket(rate, now=anyio.current_time(), burst=max(1.0, rate / 4))
        last_bulk_tick = -math.inf
        while True:
            if self.planner.has_hints:
                # Read at once, not at the next bulk check: a hint needs no list request, and
                # answering it sooner than polling would is what the callback is for.
                await self._confirm_hints()
                continue
            wake = self.planner.next_wake()
            now = anyio.current_time()
            if wake is not None and self._bulk_mode(now):
                # One bulk check covers every watched task, so checks are spaced at least
                # min_interval apart: tasks due in between wait for the next one instead of each
                # starting a request of its own.
                wake = max(wake, last_bulk_tick + self.policy.min_interval)
            if wake is None or wake > now:
                self._wake = anyio.Event()
                with anyio.move_on_after(math.inf if wake is None else wake - now):
                    await self._wake.wait()
                continue
            if self._bulk_mode(now):
                last_bulk_tick = now
            await self._tick()

    async def _spend(self) -> None:
        assert self._budget is not None
        delay = self._budget.reserve(anyio.current_time())
        if delay > 0:
            await anyio.sleep(delay)

    async def _confirm_hints(self) -> None:
        """One GET for each task a callback said finished, outside the poll budget like
        :meth:`_confirm` (one per finish: the work bounds them)."""
        async with anyio.create_task_group() as tg:
            for entry in self.planner.take_hinted():
                tg.start_soon(self._check_one, entry.task_id)

    def _bulk_mode(self, now: float) -> bool:
        return self.policy.bulk and now >= self._bulk_ok_after

    async def _tick(self) -> None:
        now = anyio.current_time()
        bulk = self._bulk_mode(now)
        due = self.planner.take_due(now, fill_to=_PAGE if bulk else 1)
        # Never seen, or a callback said it finished: one GET each. The rest: one list per 100.
        unknown = [e for e in due if e.last is None or e.hinted]
        known = [e for e in due if e.last is not None and not e.hinted]
        # Each check is paid for before its task starts, so the tasks alive are the requests the
        # budget lets out now, not one per page or task due (10,000 due tasks make 100 pages).
        async with anyio.create_task_group() as tg:
            for entry in unknown if bulk else due:
                # A hint whose first read failed is read again here, still outside the budget.
                if not entry.hinted:
                    await self._spend()
                tg.start_soon(self._check_one, entry.task_id)
            if bulk and known:
                for start in range(0, len(known), _PAGE):
                    await self._spend()
                    tg.start_soon(self._bulk_check, known[start : start + _PAGE])

    async def _request(self, call: _http.ApiRequest, *, budgeted: bool = True) -> _http.ApiResponse:
        """Send one status request. Checks spend the poll budget; the one GET confirming a finish does
        not (there is exactly one per finished task, so the work bounds it), but like every request it
        passes the client's request-rate budget."""
        if budgeted:
            await self._spend()
        self.requests[call.endpoint] = self.requests.get(call.endpoint, 0) + 1
        return await self._caller.attempt(call)

    async def _get(self, task_id: str, doing: str) -> Task | None:
        """One ``GET /tasks/{id}/creations``, not charged to the poll budget (the caller paid, or it
        is a read outside the budget); ``None`` when it failed, which the planner is told."""
        call = _http.build_get_task(task_id)
        try:
            return _http.read_task(call, await self._request(call, budgeted=False), task_id=task_id)
        except NotFoundError as exc:
            self._notify(self.planner.error(task_id, exc), None)
        except ResponseValidationError as exc:
            self._unreadable(task_id, exc)
        except ViduError as exc:
            logger.debug("%s %s failed: %s", doing, task_id, exc)
            self.planner.failed(task_id, anyio.current_time(), not_before=self._not_before())
        return None

    def _not_before(self) -> float:
        """When a failed check may be made again at the earliest: after the hold a 429's
        ``Retry-After`` set (the caller would hold the request anyway; the schedule follows it)."""
        return self._caller.holds.until(create=False)

    def _unreadable(self, task_id: str, exc: ResponseValidationError) -> None:
        """An answer about ``task_id`` that is not a task: check again a few times (a proxy's error
        page passes), then fail the watch rather than poll silently until the deadline."""
        streak = self.planner.unreadable(task_id, anyio.current_time())
        if streak == 0:
            return  # no longer watched
        why = "; ".join(line.strip() for line in str(exc).splitlines())
        limit = self.policy.unreadable_attempts
        if streak == 1:  # once per streak: the next answers are most likely the same
            logger.warning(
                "task %s: the answer cannot be read as a task (%s); its watchers get an error "
                "after %d such answers in a row",
                task_id, why, limit,
            )  # fmt: skip
        else:
            logger.debug("task %s: answer %d in a row that cannot be read: %s", task_id, streak, why)
        if streak >= limit:
            first = str(exc).partition("\n")[0]  # the details follow, from ``errors``
            error = ResponseValidationError(
                f"task {task_id}: {streak} answers in a row could not be read as a task ({first})",
                errors=exc.errors,
                body=exc.body,
            )
            error.__cause__ = exc
            self._notify(self.planner.error(task_id, error), None)

    async def _check_one(self, task_id: str) -> None:
        """Poll one task with a GET (paid for from the poll budget, or a callback's finish)."""
        task = await self._get(task_id, "poll of")
        if task is not None:
            self._observe(task)

    async def _bulk_check(self, entries: list[_Entry]) -> None:
        """Ask the list which of ``entries`` finished (a request already paid for from the poll
        budget); confirm each finish with one GET."""
        ids = [e.task_id for e in entries]
        since = min(e.created_at for e in entries) - timedelta(hours=1)
        rows = await self._list(ids, list(_TERMINAL), since, budgeted=False)
        now = anyio.current_time()
        if rows is None:
            not_before = self._not_before()
            for task_id in ids:
                self.planner.failed(task_id, now, not_before=not_before)
            return
        asked = set(ids)
        changed = {row.id: row for row in rows if row.id in asked}
        intermediate: list[_Entry] = []
        if now - self._intermediate_at >= self.policy.intermediate_every:
            intermediate = [
                e
                for e in entries
                if e.task_id not in changed
                and e.last is not None
                and e.last.state in (TaskState.CREATED, TaskState.QUEUEING, TaskState.UNKNOWN)
            ]
            if intermediate:
                self._intermediate_at = now
        async with anyio.create_task_group() as tg:
            for task_id, row in changed.items():
                if row.raw_state and not row.is_terminal:
                    # The list ignored the states filter but told the state: take it as it is.
                    self._observe(row)
                else:
                    tg.start_soon(self._confirm, task_id)
            if intermediate:
                tg.start_soon(self._intermediate_check, intermediate, since)
        for entry in entries:
            if entry.task_id not in changed and entry.task_id in self.planner:
                self.planner.unchanged(entry.task_id, now)

    async def _confirm(self, task_id: str) -> None:
        """The list says ``task_id`` finished: read it whole before telling anyone."""
        task = await self._get(task_id, "confirming")
        if task is None:
            return
        if not task.is_terminal and self._rows_carry_state is False:
            self._filter_mismatches += 1
            if self._filter_mismatches >= 3:
                self._fall_back("the task list does not honour its states filter")
        self._observe(task)

    async def _intermediate_check(self, entries: list[_Entry], since: datetime) -> None:
        """Look for tasks that moved on to ``processing`` (``queueing`` too when rows carry a state)."""
        states = ["queueing", "processing"] if self._rows_carry_state else ["processing"]
        rows = await self._list([e.task_id for e in entries], states, since)
        if not rows:
            return
        wanted = {e.task_id for e in entries}
        for row in rows:
            if row.id not in wanted:
                continue
            if not row.raw_state:
                row = attrs.evolve(row, state=TaskState.PROCESSING, raw_state=TaskState.PROCESSING.value)
            if not row.is_terminal:
                self._observe(row)

    async def _list(
        self, ids: list[str], states: list[str], since: datetime, *, budgeted: bool = True
    ) -> list[Task] | None:
        """One list request for ``ids`` in ``states``; ``None`` when it failed (then maybe fall back)."""
        call = _http.build_list(task_ids=ids, states=states, created_from=since, page_size=_PAGE)
        try:
            rows, _ = _http.read_task_list(call, await self._request(call, budgeted=budgeted))
        except (ResponseValidationError, APIError) as exc:
            if isinstance(exc, ResponseValidationError) or (
                exc.status in (400, 404, 405, 501) and exc.reason not in ("TooManyRequests", "QuotaExceeded")
            ):
                self._fall_back(f"the task list cannot be used ({exc})")
            return None
        except ViduError as exc:
            logger.debug("list probe failed: %s", exc)
            return None
        if rows:
            self._rows_carry_state = any(row.raw_state for row in rows)
        return rows

    def _fall_back(self, why: str) -> None:
        if self._bulk_mode(anyio.current_time()):
            logger.info("polling one task at a time for %.0f s: %s", self.policy.bulk_retry_after, why)
        self._bulk_ok_after = anyio.current_time() + self.policy.bulk_retry_after
        self._filter_mismatches = 0

    # --- delivery ------------------------------------------------------------------------------

    def _observe(self, task: Task) -> None:
        entry = self.planner.entry(task.id)
        old = entry.last.state if entry is not None and entry.last is not None else None
        self._notify(self.planner.observe(task, anyio.current_time()), old)

    def _notify(self, notes: Iterable[tuple[Listener, Update]], old: TaskState | None) -> None:
        announced: set[str] = set()
        for listener, update in notes:
            if isinstance(update, Task) and update.id not in announced:
                announced.add(update.id)
                emit(
                    self._hooks,
                    StateChangeEvent(
                        task_id=update.id, old=old, new=update.state, raw_state=update.raw_state
                    ),
                )
            try:
                listener(update)
            except Exception:
                logger.exception("a task listener raised; ignored")
