"""The engine against the emulator: retries, budgets, the poll scheduler, watch/wait/generate and
``generate_many``, with fault injection."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

import vidu_async as vidu
from vidu_async._limits import in_flight_limit
from vidu_async._retry import FINGERPRINT_PREFIX
from vidu_async.emulator import Emulator, EmulatorConfig, FaultConfig
from vidu_async.exceptions import (
    BudgetExceededError,
    NotFoundError,
    RequestValidationError,
    SubmitOutcomeUnknownError,
    TaskFailedError,
    WaitTimeoutError,
)

FAST_RETRY = attrs.evolve(vidu.DEFAULT_RETRY, initial=0.01, maximum=0.05, reconcile_settle=0.05)
FAST_POLL = attrs.evolve(
    vidu.DEFAULT_POLL,
    first_check=0.02,
    min_interval=0.02,
    max_interval=0.1,
    requests_per_second=200,
    intermediate_every=0.05,
)
QUICK_429 = FaultConfig(retry_after=0.05)
ORDER = {
    vidu.TaskState.CREATED: 0,
    vidu.TaskState.QUEUEING: 1,
    vidu.TaskState.PROCESSING: 2,
    vidu.TaskState.SUCCESS: 3,
    vidu.TaskState.FAILED: 3,
}


def request(i: int = 0, **changes: Any) -> vidu.Reference2Video:
    """A small valid request; ``i`` makes the prompt distinct."""
    fields: dict[str, Any] = {
        "model": "viduq3",
        "subjects": [vidu.Subject(name="Ming", images=["https://example.com/ming.png"])],
        "prompt": f"@Ming cooks hot pot number {i}.",
    }
    fields.update(changes)
    return vidu.Reference2Video(**fields)


def body(i: int = 0, **changes: Any) -> dict[str, Any]:
    """A request in Vidu's own JSON shape."""
    out: dict[str, Any] = {
        "model": "viduq3",
        "subjects": [{"name": "Ming", "images": ["https://example.com/ming.png"]}],
        "prompt": f"@Ming cooks hot pot number {i}.",
    }
    out.update(changes)
    return out


@asynccontextmanager
async def running(
    faults: FaultConfig = QUICK_429,
    *,
    hooks: tuple[vidu.Hook, ...] = (),
    timeouts: vidu.Timeouts = vidu.DEFAULT_TIMEOUTS,
    retry: vidu.RetryPolicy = FAST_RETRY,
    poll: vidu.PollPolicy = FAST_POLL,
    max_in_flight: int | None = None,
    **config: Any,
) -> AsyncIterator[tuple[Emulator, vidu.ViduClient]]:
    """An emulator with quick tasks and a client on it with quick retries and polls."""
    settings: dict[str, Any] = {"created_time": 0.01, "processing_time": 0.05, "faults": faults}
    settings.update(config)
    async with (
        Emulator(EmulatorConfig(**settings)) as emu,
        vidu.ViduClient(
            emu.api_key,
            base_url=emu.base_url,
            hooks=hooks,
            timeouts=timeouts,
            retry=retry,
            poll=poll,
            max_in_flight=max_in_flight,
        ) as client,
    ):
        yield emu, client


def no_duplicates(emu: Emulator) -> None:
    """Every payload (the SDK's fingerprint) made exactly one task."""
    counts = emu.stats.tasks_by_payload
    assert counts, "no task was made"
    assert max(counts.values()) == 1, {k: v for k, v in counts.items() if v > 1}


async def collect(batch: vidu.Batch) -> list[vidu.BatchResult]:
    return [result async for result in batch]


def _sdk_side(task: asyncio.Task[Any]) -> bool:
    """A task running SDK code, or finalizing an abandoned async generator (the emulator and
    aiohttp's server run in the same loop and are left out)."""
    coro = task.get_coro()
    code = getattr(coro, "cr_code", None)
    if code is None:
        return type(coro).__name__ == "async_generator_athrow"
    name = code.co_filename.replace("\\", "/")
    return not any(part in name for part in ("vidu_async/emulator/", "/aiohttp/", "/asyncio/"))


def client_tasks() -> set[asyncio.Task[Any]]:
    """Every unfinished SDK task but this test's own (after a collection, so abandoned async
    generators are finalized now rather than whenever)."""
    gc.collect()
    me = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if t is not me and not t.done() and _sdk_side(t)}


def batch_tasks() -> set[asyncio.Task[Any]]:
    """:func:`client_tasks` without the poll scheduler's own checks: those belong to the client
    (one request each, finished or cancelled with it), not to any batch."""
    return {t for t in client_tasks() if not t.get_name().startswith("vidu_async._poll.")}


class Recorder:
    """A hook that keeps every event."""

    def __init__(self) -> None:
        self.events: list[vidu.Event] = []

    def __call__(self, event: vidu.Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


# --- retries ------------------------------------------------------------------------------------


class TestRateLimited:
    """429 TooManyRequests/SystemThrottling: waited out (Retry-After honoured and capped), rate lowered."""

    async def test_retry_after_seconds_honoured(self) -> None:
        """A 429 with ``Retry-After: 0.05`` is retried after exactly that and the call succeeds."""
        hook = Recorder()
        async with running(hooks=(hook,)) as (emu, client):
            emu.inject("create", "rate_limit", 2)
            task = await client.submit(request())
        assert task.id in emu.tasks
        assert emu.stats.requests["create"] == 3
        assert emu.stats.tasks_created == 1
        retries = hook.of(vidu.RetryEvent)
        assert [r.delay for r in retries] == [0.05, 0.05]
        assert {r.failure for r in retries} == {"throttled"}

    async def test_retry_after_http_date_honoured(self) -> None:
        """An HTTP-date ``Retry-After`` is read as the seconds until then (at most ~1 s here)."""
        hook = Recorder()
        async with running(FaultConfig(retry_after=0.05, retry_after_http_date=True), hooks=(hook,)) as (
            emu,
            client,
        ):
            emu.inject("get", "rate_limit")
            made = await client.submit(request())
            task = await client.get_task(made.id)
        assert task.id == made.id
        assert emu.stats.requests["get"] == 2
        (retry,) = hook.of(vidu.RetryEvent)
        assert 0.0 < retry.delay <= 1.1
        (throttle,) = hook.of(vidu.ThrottleEvent)
        assert throttle.retry_after is not None
        assert 0.0 < throttle.retry_after <= 1.1

    async def test_retry_after_http_date_capped(self) -> None:
        """A ``Retry-After`` longer than ``max_retry_after`` is shortened to it."""
        hook = Recorder()
        retry = attrs.evolve(FAST_RETRY, max_retry_after=0.1)
        faults = FaultConfig(retry_after=30.0, retry_after_http_date=True)
        async with running(faults, hooks=(hook,), retry=retry) as (emu, client):
            emu.inject("create", "rate_limit")
            with anyio.fail_after(10):
                await client.submit(request())
        assert emu.stats.tasks_created == 1
        (event,) = hook.of(vidu.RetryEvent)
        assert event.delay == 0.1

    async def test_throttling_lowers_request_rate(self) -> None:
        """429 SystemThrottling lowers the client's request rate (a ThrottleEvent with a finite rate)."""
        hook = Recorder()
        async with running(hooks=(hook,)) as (emu, client):
            made = await client.submit(request())
            emu.inject("get", "throttle")
            assert (await client.get_task(made.id)).id == made.id
            assert client._caller.limiter.bucket.limited
        (throttle,) = hook.of(vidu.ThrottleEvent)
        assert throttle.kind == "rate"
        assert throttle.rate is not None
        assert 0 < throttle.rate < math.inf
        assert emu.stats.faults["throttle"] == 1

    async def test_throttle_attempts_run_out(self) -> None:
        """An endless 429 stops after ``throttle_attempts`` with the RateLimitError."""
        retry = attrs.evolve(FAST_RETRY, throttle_attempts=3)
        async with running(retry=retry) as (emu, client):
            emu.inject("credits", "rate_limit", 10)
            with pytest.raises(vidu.APIError) as info:
                await client.get_credits()
        assert info.value.status == 429
        assert emu.stats.requests["credits"] == 3


class TestQuota:
    """429 QuotaExceeded pauses submission; it never surfaces while the deadline allows."""

    async def test_batch_larger_than_queue_completes(self) -> None:
        """Twelve items with slots for 2 + 1 queued and max_in_flight=12 all succeed, no duplicate."""
        hook = Recorder()
        async with running(hooks=(hook,), concurrency=2, max_queue=1) as (emu, client):
            with anyio.fail_after(30):
                async with client.generate_many([request(i) for i in range(12)], max_in_flight=12) as batch:
                    results = await collect(batch)
        assert sorted(r.index for r in results) == list(range(12))
        assert all(r.ok for r in results), [r.error for r in results if not r.ok]
        assert emu.stats.responses[429] >= 1
        assert emu.stats.max_in_flight <= 3
        assert {t.kind for t in hook.of(vidu.ThrottleEvent)} == {"quota"}
        no_duplicates(emu)

    async def test_quota_with_none_of_ours_in_flight_backs_off(self) -> None:
        """A lone submit that meets QuotaExceeded (slots held elsewhere) retries and succeeds."""
        async with running() as (emu, client):
            emu.inject("create", "quota_exceeded", 2)
            with anyio.fail_after(10):
                task = await client.submit(request())
        assert task.id in emu.tasks
        assert emu.stats.requests["create"] == 3

    async def test_quota_surfaces_only_at_the_deadline(self) -> None:
        """Endless QuotaExceeded on a deadline: the error surfaces once the deadline is near."""
        async with running() as (emu, client):
            emu.inject("create", "quota_exceeded", 1000)
            with anyio.fail_after(10), pytest.raises(vidu.APIError) as info:
                await client.submit(request(), timeout=1.5)
        assert info.value.reason == "QuotaExceeded"
        assert emu.stats.requests["create"] > 1


class TestServerErrors:
    """5xx: GET retried; a create that committed is adopted, never duplicated."""

    async def test_get_5xx_retried(self) -> None:
        """Two 500s on GET, then the answer."""
        async with running() as (emu, client):
            made = await client.submit(request())
            emu.inject("get", "server_error", 2)
            task = await client.get_task(made.id)
        assert task.id == made.id
        assert emu.stats.requests["get"] == 3

    async def test_get_5xx_attempts_run_out(self) -> None:
        """A GET that keeps failing raises the ServerError after ``attempts`` tries."""
        retry = attrs.evolve(FAST_RETRY, attempts=3)
        async with running(retry=retry) as (emu, client):
            made = await client.submit(request())
            emu.inject("get", "server_error", 10)
            with pytest.raises(vidu.APIError) as info:
                await client.get_task(made.id)
        assert info.value.status == 500
        assert info.value.attempts == 3
        assert emu.stats.requests["get"] == 3

    async def test_create_5xx_after_commit_adopted(self) -> None:
        """The task made before the 500 is found by its fingerprint and adopted: one task, one create."""
        async with running() as (emu, client):
            emu.inject("create", "server_error_after_commit")
            task = await client.submit(request())
        assert list(emu.tasks) == [task.id]
        assert task.payload.startswith(FINGERPRINT_PREFIX)
        assert emu.stats.requests["create"] == 1
        assert emu.stats.requests["list"] >= 1
        no_duplicates(emu)

    async def test_create_5xx_before_commit_resubmitted(self) -> None:
        """A 500 that made nothing: reconciliation proves it absent, the create goes again, one task."""
        async with running() as (emu, client):
            emu.inject("create", "server_error")
            task = await client.submit(request())
        assert list(emu.tasks) == [task.id]
        assert emu.stats.requests["create"] == 2
        no_duplicates(emu)

    async def test_callers_payload_used_for_reconciliation(self) -> None:
        """A caller's own payload is kept (no fingerprint stamped) and still finds the task."""
        async with running() as (emu, client):
            emu.inject("create", "server_error_after_commit")
            task = await client.submit(request(payload="job-7"))
        assert task.payload == "job-7"
        assert emu.stats.tasks_by_payload == {"job-7": 1}


class TestTimeoutsAndDrops:
    """Slow answers and dropped connections."""

    async def test_slow_get_retried(self) -> None:
        """A GET slower than ``Timeouts.request`` times out and is sent again."""
        timeouts = attrs.evolve(vidu.DEFAULT_TIMEOUTS, request=0.2)
        async with running(FaultConfig(retry_after=0.05, slow_delay=1.0), timeouts=timeouts) as (emu, client):
            made = await client.submit(request())
            emu.inject("get", "slow")
            with anyio.fail_after(10):
                task = await client.get_task(made.id)
        assert task.id == made.id
        assert emu.stats.requests["get"] == 2

    async def test_dropped_get_retried(self) -> None:
        """A GET whose connection drops is sent again."""
        async with running() as (emu, client):
            made = await client.submit(request())
            emu.inject("get", "drop", 2)  # aiohttp itself re-sends an idempotent request once
            task = await client.get_task(made.id)
        assert task.id == made.id
        assert emu.stats.requests["get"] == 3

    async def test_create_dropped_before_commit_resubmitted_once(self) -> None:
        """A create dropped before commit: reconciliation proves it absent; exactly one task results."""
        async with running() as (emu, client):
            emu.inject("create", "drop")
            task = await client.submit(request())
        assert list(emu.tasks) == [task.id]
        assert emu.stats.requests["create"] == 2
        assert emu.stats.requests["list"] >= 2  # two looks before declaring it absent
        no_duplicates(emu)

    async def test_commit_then_drop_adopted(self) -> None:
        """A create committed and then dropped is adopted: one task, one create request."""
        async with running() as (emu, client):
            emu.inject("create", "commit_then_drop")
            task = await client.submit(request())
        assert list(emu.tasks) == [task.id]
        assert emu.stats.requests["create"] == 1
        no_duplicates(emu)

    async def test_commit_then_drop_batch_never_duplicates(self) -> None:
        """Thirty items with a third of the creates committed-then-dropped: one task per fingerprint."""
        faults = FaultConfig(retry_after=0.05, commit_then_drop=0.3, endpoints={"create"}, seed=3)
        async with running(faults, concurrency=10) as (emu, client):
            with anyio.fail_after(30):
                async with client.generate_many([request(i) for i in range(30)], max_in_flight=12) as batch:
                    results = await collect(batch)
        assert emu.stats.faults["commit_then_drop"] >= 3
        assert all(r.ok for r in results), [r.error for r in results if not r.ok]
        assert emu.stats.tasks_created == 30
        no_duplicates(emu)

    async def test_slow_create_committed_late_is_adopted(self) -> None:
        """A create slower than ``Timeouts.create`` that commits during reconciliation is adopted."""
        timeouts = attrs.evolve(vidu.DEFAULT_TIMEOUTS, create=0.1)
        retry = attrs.evolve(FAST_RETRY, reconcile_settle=0.6)
        faults = FaultConfig(retry_after=0.05, slow_delay=0.3)
        async with running(faults, timeouts=timeouts, retry=retry) as (emu, client):
            emu.inject("create", "slow")
            with anyio.fail_after(10):
                task = await client.submit(request())
        assert list(emu.tasks) == [task.id]
        no_duplicates(emu)


class TestReconcileWithoutPayloads:
    """When list rows carry no payload, an unknown create outcome cannot be settled."""

    async def test_list_rows_lack_payload(self) -> None:
        """The emulator's ``list_omits_state`` drops ``payload`` from list rows, too."""
        async with running(FaultConfig(retry_after=0.05, list_omits_state=True)) as (_emu, client):
            await client.submit(request(payload="job-1"))
            rows = [t async for t in client.list_tasks()]
        assert len(rows) == 1
        assert rows[0].payload == ""
        assert rows[0].raw_state == ""

    async def test_unknown_outcome_raises_with_fingerprint(self) -> None:
        """Commit-then-drop with payload-less rows: SubmitOutcomeUnknownError names the task's fingerprint."""
        async with running(FaultConfig(retry_after=0.05, list_omits_state=True)) as (emu, client):
            await client.submit(request(0))  # a row in the list, so the list cannot prove anything absent
            emu.inject("create", "commit_then_drop")
            with pytest.raises(SubmitOutcomeUnknownError) as info:
                await client.submit(request(1))
        fingerprint = info.value.fingerprint
        assert fingerprint.startswith(FINGERPRINT_PREFIX)
        assert emu.stats.tasks_by_payload[fingerprint] == 1
        assert emu.stats.requests["create"] == 2  # never sent again blindly

    async def test_reconcile_off(self) -> None:
        """With ``reconcile=False`` an unknown create outcome raises at once, without a list call."""
        retry = attrs.evolve(FAST_RETRY, reconcile=False)
        async with running(retry=retry) as (emu, client):
            emu.inject("create", "commit_then_drop")
            with pytest.raises(SubmitOutcomeUnknownError) as info:
                await client.submit(request())
        assert emu.stats.tasks_by_payload[info.value.fingerprint] == 1
        assert emu.stats.requests["list"] == 0


class TestOperationInProcess:
    """400 OperationInProcess is 'later', not 'no'."""

    async def test_create_retried(self) -> None:
        """Two OperationInProcess answers, then the create goes through once."""
        hook = Recorder()
        async with running(hooks=(hook,)) as (emu, client):
            emu.inject("create", "operation_in_process", 2)
            task = await client.submit(request())
        assert list(emu.tasks) == [task.id]
        assert emu.stats.requests["create"] == 3
        assert [r.failure for r in hook.of(vidu.RetryEvent)] == ["later", "later"]

    async def test_cancel_retried(self) -> None:
        """A cancel answered OperationInProcess is sent again and cancels."""
        async with running(created_time=5.0) as (emu, client):
            task = await client.submit(request())
            emu.inject("cancel", "operation_in_process")
            await client.cancel(task.id)
        assert emu.tasks[task.id].err_code == "UserCancelled"
        assert emu.stats.requests["cancel"] == 2


# --- waiting ------------------------------------------------------------------------------------


class TestTaskFailure:
    """A failed task raises TaskFailedError carrying Vidu's err_code."""

    async def test_wait_raises(self) -> None:
        """``wait`` on a task that fails."""
        faults = FaultConfig(retry_after=0.05, task_failure=1.0, task_failure_code="CreationPolicyViolation")
        async with running(faults) as (_, client):
            task = await client.submit(request())
            with anyio.fail_after(10), pytest.raises(TaskFailedError) as info:
                await client.wait(task.id)
        assert info.value.err_code == "CreationPolicyViolation"
        assert info.value.task.state is vidu.TaskState.FAILED

    async def test_generate_raises(self) -> None:
        """``generate`` of a task that fails."""
        faults = FaultConfig(retry_after=0.05, task_failure=1.0, task_failure_code="AuditFailed")
        async with running(faults) as (_, client):
            with anyio.fail_after(10), pytest.raises(TaskFailedError) as info:
                await client.generate(request())
        assert info.value.err_code == "AuditFailed"

    async def test_generate_succeeds(self) -> None:
        """The happy path: a terminal, successful task with its creations."""
        async with running() as (_, client):
            with anyio.fail_after(10):
                task = await client.generate(request())
        assert task.state is vidu.TaskState.SUCCESS
        assert task.creations

    async def test_wait_for_missing_task(self) -> None:
        """Waiting for a task that does not exist raises NotFoundError (no endless poll)."""
        async with running() as (_, client):
            with anyio.fail_after(10), pytest.raises(NotFoundError):
                await client.wait("123456789012345678")


class TestUnknownStates:
    """A state the SDK does not know is reported, watched on, and never spins."""

    async def test_watch_reports_unknown_and_completes(self) -> None:
        """Half the reads say "paused": watch yields UNKNOWN with the raw state and still ends."""
        faults = FaultConfig(retry_after=0.05, unknown_state=0.5, seed=1)
        async with running(faults, processing_time=0.3) as (_, client):
            task = await client.submit(request())
            seen: list[vidu.Task] = []
            with anyio.fail_after(15):
                async for update in client.watch(task.id, known=task):
                    seen.append(update)
        unknown = [t for t in seen if t.state is vidu.TaskState.UNKNOWN]
        assert unknown
        assert {t.raw_state for t in unknown} == {"paused"}
        assert seen[-1].state is vidu.TaskState.SUCCESS

    async def test_wait_completes_despite_unknown_states(self) -> None:
        """``wait`` finishes when some reads report an unknown state."""
        faults = FaultConfig(retry_after=0.05, unknown_state=0.5, seed=2)
        async with running(faults) as (_, client):
            with anyio.fail_after(15):
                task = await client.generate(request())
        assert task.state is vidu.TaskState.SUCCESS

    async def test_always_unknown_times_out_without_spinning(self) -> None:
        """Every read says "paused": the scheduler keeps to its poll budget and wait times out."""
        poll = attrs.evolve(FAST_POLL, requests_per_second=20)
        faults = FaultConfig(retry_after=0.05, unknown_state=1.0)
        async with running(faults, poll=poll) as (emu, client):
            task = await client.submit(request())
            before = emu.stats.requests["get"] + emu.stats.requests["list"]
            started = anyio.current_time()
            with anyio.fail_after(10), pytest.raises(WaitTimeoutError) as info:
                await client.wait(task.id, timeout=1.0)
            elapsed = anyio.current_time() - started
            polls = emu.stats.requests["get"] + emu.stats.requests["list"] - before
        assert info.value.task_id == task.id
        last = info.value.last_task
        assert last is not None
        assert last.state is vidu.TaskState.UNKNOWN
        assert last.raw_state == "paused"
        assert polls >= 2  # it kept polling
        assert polls <= poll.requests_per_second * elapsed + 2  # within the poll budget


class TestListEndpoint:
    """The scheduler copes with a list endpoint that is missing or terse."""

    async def test_list_disabled_falls_back(self) -> None:
        """A 404 list: the scheduler polls per task by itself and everything completes."""
        async with running(FaultConfig(retry_after=0.05, list_disabled=True)) as (emu, client):
            with anyio.fail_after(20):
                async with client.generate_many([request(i) for i in range(8)], max_in_flight=8) as batch:
                    results = await collect(batch)
            assert client._poller.requests["get"] > 0
        assert all(r.ok for r in results), [r.error for r in results if not r.ok]
        assert emu.stats.faults["list_disabled"] >= 1
        assert emu.stats.requests["list"] <= 2  # it stopped asking

    async def test_list_omits_state(self) -> None:
        """List rows without a state: the batch still completes."""
        async with running(FaultConfig(retry_after=0.05, list_omits_state=True)) as (emu, client):
            with anyio.fail_after(20):
                async with client.generate_many([request(i) for i in range(8)], max_in_flight=8) as batch:
                    results = await collect(batch)
        assert sorted(r.index for r in results) == list(range(8))
        assert all(r.ok for r in results), [r.error for r in results if not r.ok]
        no_duplicates(emu)


class TestWatch:
    """``watch`` yields each state once, in order, and ends after the terminal one."""

    async def test_states_once_in_order(self) -> None:
        """No duplicates, monotonic order, terminal last."""
        async with running(created_time=0.05, processing_time=0.2) as (_, client):
            task = await client.submit(request())
            with anyio.fail_after(10):
                seen = [t async for t in client.watch(task.id, known=task)]
        states = [t.state for t in seen]
        assert states[0] is vidu.TaskState.CREATED
        assert states[-1] is vidu.TaskState.SUCCESS
        assert len(states) == len(set(states))
        assert [ORDER[s] for s in states] == sorted(ORDER[s] for s in states)
        assert vidu.TaskState.PROCESSING in states

    async def test_watch_without_known_starts_with_current_state(self) -> None:
        """Without ``known`` the first item is the task as it is now."""
        async with running() as (_, client):
            task = await client.submit(request())
            with anyio.fail_after(10):
                seen = [t async for t in client.watch(task.id)]
        assert seen[-1].state is vidu.TaskState.SUCCESS
        assert all(t.id == task.id for t in seen)

    async def test_watch_of_finished_task(self) -> None:
        """A task already finished yields its terminal state once and ends."""
        async with running() as (_, client):
            done = await client.generate(request())
            with anyio.fail_after(10):
                seen = [t async for t in client.watch(done.id)]
        assert [t.state for t in seen] == [vidu.TaskState.SUCCESS]

    async def test_two_watchers_share_one_schedule(self) -> None:
        """Two watchers of one task cost no more requests than one."""

        async def watch_alone() -> tuple[int, int]:
            async with running(processing_time=0.3) as (_emu, client):
                task = await client.submit(request())
                with anyio.fail_after(10):
                    one = [t async for t in client.watch(task.id, known=task)]
                return sum(client._poller.requests.values()), len(one)

        async def watch_twice() -> tuple[int, list[list[vidu.Task]]]:
            async with running(processing_time=0.3) as (_emu, client):
                task = await client.submit(request())
                results: list[list[vidu.Task]] = [[], []]

                async def watcher(slot: int) -> None:
                    async for t in client.watch(task.id, known=task):
                        results[slot].append(t)

                with anyio.fail_after(10):
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(watcher, 0)
                        tg.start_soon(watcher, 1)
                assert len(client._poller.planner) == 0
                return sum(client._poller.requests.values()), results

        alone, _ = await watch_alone()
        together, results = await watch_twice()
        assert [t.state for t in results[0]] == [t.state for t in results[1]]
        assert results[0][-1].state is vidu.TaskState.SUCCESS
        assert together < 2 * alone
        assert together <= alone + 3  # jitter aside, the same schedule

    async def test_watch_needs_open_client(self) -> None:
        """Outside ``async with`` watching fails clearly."""
        client = vidu.ViduClient("key", base_url="http://127.0.0.1:9")
        with pytest.raises(vidu.ViduError, match="async with"):
            await client.wait("1")
        await client.aclose()


class TestGenerateCancel:
    """Timeouts and cancellation of ``generate``."""

    async def test_cancel_remote_on_timeout(self) -> None:
        """A tiny timeout with ``cancel_remote``: WaitTimeoutError, and the task is cancelled at the emulator."""
        async with running(created_time=5.0, processing_time=5.0) as (emu, client):
            with anyio.fail_after(10), pytest.raises(WaitTimeoutError) as info:
                await client.generate(request(), timeout=0.3, cancel_remote=True)
            task_id = info.value.task_id
            record = emu.tasks[task_id]
            assert record.state is vidu.TaskState.FAILED
            assert record.err_code == "UserCancelled"
            assert emu.stats.requests["cancel"] == 1

    async def test_timeout_without_cancel_remote_leaves_task(self) -> None:
        """Without ``cancel_remote`` the task goes on at the emulator."""
        async with running(created_time=5.0) as (emu, client):
            with anyio.fail_after(10), pytest.raises(WaitTimeoutError) as info:
                await client.generate(request(), timeout=0.3)
            assert info.value.last_task is not None
            assert not emu.tasks[info.value.task_id].is_terminal
            assert emu.stats.requests["cancel"] == 0

    async def test_cancel_remote_on_cancellation(self) -> None:
        """Cancelling the caller of ``wait(cancel_remote=True)`` cancels the task remotely (shielded)."""
        async with running(created_time=5.0) as (emu, client):
            task = await client.submit(request())
            with anyio.move_on_after(0.3):
                await client.wait(task.id, cancel_remote=True)
            assert emu.tasks[task.id].err_code == "UserCancelled"


# --- batches ------------------------------------------------------------------------------------


class TestBatch:
    """``generate_many``: inputs, keys, budgets, failures."""

    async def test_sync_iterable_with_keys(self) -> None:
        """A generator of ``(key, request)`` pairs and keyed mappings: every key comes back."""

        def items() -> Iterator[Any]:
            yield ("first", request(0))
            yield body(1, key="second")
            yield request(2)

        async with running() as (_, client):
            with anyio.fail_after(10):
                async with client.generate_many(items(), max_in_flight=3) as batch:
                    results = sorted(await collect(batch), key=lambda r: r.index)
        assert [r.index for r in results] == [0, 1, 2]
        assert results[0].key == "first"
        assert results[1].key == "second"
        assert results[2].key
        assert results[2].key not in ("first", "second")
        assert all(r.ok for r in results)
        assert results[1].request is not None
        assert results[1].request.prompt == "@Ming cooks hot pot number 1."

    async def test_duplicate_key_refused_with_a_journal(self, tmp_path: Path) -> None:
        """With a journal a key names one item: a later item with the same key fails, unsent,
        naming the first; a re-run yields the first's stored result and refuses the other again."""
        journal = tmp_path / "journal.sqlite"
        items = [("same", request(0)), ("same", request(1)), ("other", request(2))]
        for run in range(2):
            async with running() as (emu, client):
                with anyio.fail_after(10):
                    async with client.generate_many(items, journal=journal) as batch:
                        results = sorted(await collect(batch), key=lambda r: r.index)
            assert [r.ok for r in results] == [True, False, True]
            assert results[0].resumed == (run == 1)
            error = results[1].error
            assert isinstance(error, RequestValidationError)
            assert error.fields == ("key",)
            assert "'same' is the key of item 0" in str(error)
            assert emu.stats.tasks_created == (2 if run == 0 else 0)
        async with vidu.SQLiteJournal(journal) as store:
            entries = await store.entries()
        assert sorted(entries) == ["other", "same"]
        assert entries["same"].request["prompt"] == "@Ming cooks hot pot number 0."

    async def test_keyless_items_named_by_content(self, tmp_path: Path) -> None:
        """Keyless items are keyed by their request (identical ones by occurrence): a re-run of the
        same journal with items inserted, removed and reordered creates only the new items' tasks
        (keys used to hash the position too, so every item was billed again)."""
        journal = tmp_path / "journal.sqlite"
        runs = [
            [request(0), request(1), request(2), request(2)],
            [request(3), request(2), request(1), request(2), request(2)],
        ]
        keys: list[dict[int, str]] = []
        for run, items in enumerate(runs):
            async with running() as (emu, client):
                with anyio.fail_after(10):
                    async with client.generate_many(items, journal=journal) as batch:
                        results = sorted(await collect(batch), key=lambda r: r.index)
            assert all(r.ok for r in results)
            keys.append({r.index: r.key for r in results})
            # run 1: request(3) and a third copy of request(2) are new
            assert emu.stats.tasks_created == (4 if run == 0 else 2)
        first, second = keys
        assert first[3] == first[2] + "-2"
        assert (second[1], second[2], second[3], second[4]) == (first[2], first[1], first[3], first[2] + "-3")

    async def test_resumed_items_files_are_checked(self, tmp_path: Path) -> None:
        """A re-run of a finished batch fetches again the files deleted since (and keeps the
        ones in place, without a request); it used to yield the stored paths without a look."""
        journal, videos = tmp_path / "journal.sqlite", tmp_path / "videos"
        items = [request(0), request(1), request(2)]
        async with running(faults=FaultConfig()) as (emu, client):
            with anyio.fail_after(20):
                async with client.generate_many(items, journal=journal, download_to=videos) as batch:
                    first = {r.index: r.files for r in await collect(batch)}
                assert all(len(files) == 1 for files in first.values())
                first[0][0].unlink()
                served = emu.stats.downloads
                async with client.generate_many(items, journal=journal, download_to=videos) as batch:
                    second = {r.index: r for r in await collect(batch)}
            assert all(r.ok and r.resumed for r in second.values())
            assert emu.stats.downloads == served + 1  # the deleted one only
            assert emu.stats.tasks_created == 3
        assert {i: r.files for i, r in second.items()} == first
        assert all(files[0].stat().st_size > 0 for files in first.values())

    async def test_keys_that_are_not_strings(self) -> None:
        """A key that is not a non-empty string fails its item, unsent (it used to become text)."""
        items: list[Any] = [(True, request(0)), ("", request(1)), (None, request(2)), ("fine", request(3))]
        async with running() as (emu, client):
            with anyio.fail_after(10):
                async with client.generate_many(items) as batch:
                    results = sorted(await collect(batch), key=lambda r: r.index)
        assert [r.ok for r in results] == [False, False, False, True]
        for result in results[:3]:
            assert isinstance(result.error, RequestValidationError)
            assert result.error.fields == ("key",)
        assert emu.stats.tasks_created == 1

    async def test_duplicate_keys_without_a_journal(self) -> None:
        """Without a journal nothing is stored by key: both items run, each result by its index."""
        async with running() as (_, client):
            with anyio.fail_after(10):
                async with client.generate_many([("same", request(0)), ("same", request(1))]) as batch:
                    results = await collect(batch)
        assert sorted((r.index, r.key, r.ok) for r in results) == [(0, "same", True), (1, "same", True)]

    async def test_input_is_read_lazily(self) -> None:
        """An endless input is read only as slots free up: a million lines never sit in memory."""
        pulled = 0

        def endless() -> Iterator[vidu.Reference2Video]:
            nonlocal pulled
            while True:
                pulled += 1
                yield request(pulled)

        async with running(processing_time=0.05) as (_, client):
            with anyio.fail_after(10):
                async with client.generate_many(endless(), max_in_flight=3) as batch:
                    taken = 0
                    async for _ in batch:
                        taken += 1
                        if taken == 5:
                            break
        # Five results taken, three in flight, and the one read that waits for a slot.
        assert taken == 5
        assert pulled <= 5 + 3 + 1

    async def test_async_iterable(self) -> None:
        """An async generator input is consumed the same way."""

        async def items() -> AsyncIterator[vidu.Reference2Video]:
            for i in range(4):
                yield request(i)

        async with running() as (_, client):
            with anyio.fail_after(10):
                async with client.generate_many(items(), max_in_flight=2) as batch:
                    results = await collect(batch)
        assert sorted(r.index for r in results) == [0, 1, 2, 3]
        assert all(r.ok for r in results)

    async def test_invalid_items_do_not_stop_the_batch(self) -> None:
        """A bad mapping and a non-request become error results; the rest succeed."""
        items: list[Any] = [request(0), {"model": "viduq3", "prompt": "x", "colour": "red"}, 42, request(3)]
        async with running() as (emu, client):
            with anyio.fail_after(10):
                async with client.generate_many(items, max_in_flight=2) as batch:
                    results = sorted(await collect(batch), key=lambda r: r.index)
        assert [r.index for r in results] == [0, 1, 2, 3]
        assert results[0].ok
        assert results[3].ok
        for bad in (results[1], results[2]):
            assert isinstance(bad.error, RequestValidationError)
            assert bad.request is None
            assert bad.task is None
        assert emu.stats.tasks_created == 2

    async def test_fail_fast_stops_at_first_failure(self) -> None:
        """With ``fail_fast`` the batch ends at the first failed item; nothing more is submitted."""
        faults = FaultConfig(retry_after=0.05, task_failure=1.0)
        results: list[vidu.BatchResult] = []
        loop_ended = False
        async with running(faults, concurrency=1) as (emu, client):
            with anyio.fail_after(10):
                async with client.generate_many(
                    [request(i) for i in range(10)], max_in_flight=1, fail_fast=True
                ) as batch:
                    async for result in batch:
                        results.append(result)
                    loop_ended = True  # the consumer's own code after the loop must still run
        assert loop_ended, "fail_fast cancelled the consumer's block instead of ending the iteration"
        assert len(results) == 1
        assert isinstance(results[0].error, TaskFailedError)
        assert emu.stats.tasks_created == 1

    async def test_without_fail_fast_failures_are_results(self) -> None:
        """Failures are their own results; siblings go on."""
        faults = FaultConfig(retry_after=0.05, task_failure=0.5, seed=5)
        async with running(faults) as (_emu, client):
            with anyio.fail_after(15):
                async with client.generate_many([request(i) for i in range(10)], max_in_flight=5) as batch:
                    results = await collect(batch)
        assert sorted(r.index for r in results) == list(range(10))
        failed = [r for r in results if not r.ok]
        assert failed
        assert len(failed) < 10
        assert all(isinstance(r.error, TaskFailedError) for r in failed)

    async def test_max_credits_stops_submitting(self) -> None:
        """Once ``max_credits`` is charged, the rest are reported with BudgetExceededError, unsent."""
        async with running() as (emu, client):
            cost = (await client.generate(request(99))).credits
            assert cost
            with anyio.fail_after(15):
                async with client.generate_many(
                    [request(i) for i in range(6)], max_in_flight=1, max_credits=2 * cost
                ) as batch:
                    results = sorted(await collect(batch), key=lambda r: r.index)
        assert [r.index for r in results] == list(range(6))
        assert [r.ok for r in results] == [True, True, False, False, False, False]
        for r in results[2:]:
            assert isinstance(r.error, BudgetExceededError)
            assert r.task is None
        assert batch.credits == 2 * cost
        assert emu.stats.tasks_created == 3

    async def test_max_credits_holds_with_many_in_flight(self) -> None:
        """With ten creates allowed at once the batch still stops at the budget: the first create
        finds the price, and no create is sent that the budget could not pay for."""
        async with running(concurrency=20) as (emu, client):
            cost = (await client.generate(request(99))).credits
            assert cost
            budget = 3 * cost + cost // 2
            with anyio.fail_after(15):
                async with client.generate_many(
                    [request(i) for i in range(20)], max_in_flight=10, max_credits=budget
                ) as batch:
                    results = sorted(await collect(batch), key=lambda r: r.index)
        assert sum(r.ok for r in results) == 3
        assert batch.credits == 3 * cost <= budget
        assert emu.stats.tasks_created == 4  # the probe above and three
        refused = [r.error for r in results if not r.ok]
        assert all(isinstance(e, BudgetExceededError) for e in refused)
        assert str(refused[0]) == (
            f"not submitted: the batch has charged {3 * cost} credits of its {budget} budget,"
            f" and a task may cost {cost}"
        )

    async def test_timeout_reported(self) -> None:
        """Items not finished by the batch ``timeout`` end with WaitTimeoutError naming their task."""
        async with running(created_time=5.0) as (_, client):
            with anyio.fail_after(10):
                async with client.generate_many(
                    [request(i) for i in range(2)], max_in_flight=2, timeout=0.3
                ) as batch:
                    results = await collect(batch)
        assert len(results) == 2
        for r in results:
            assert isinstance(r.error, WaitTimeoutError)
            assert r.task is not None
            assert r.error.task_id == r.task.id

    @pytest.mark.parametrize(
        ("concurrency", "allowance", "limit"),
        [(1, None, 3), (2, None, 4), (5, None, 10), (50, None, 60), (100, None, 110), (200, None, 220),
         (1000, None, 1100), (200, 0, 200), (5, 40, 45)],
    )  # fmt: skip
    def test_queue_allowance(self, concurrency: int, allowance: int | None, limit: int) -> None:
        """The default queue covers the tasks that end during one poll interval (a tenth of the
        concurrency), at least 2 and, for small organizations, up to 10; a given one is kept."""
        assert in_flight_limit(concurrency, allowance) == limit

    async def test_default_in_flight_from_credits(self) -> None:
        """Without ``max_in_flight`` the limit is the concurrency plus the allowance, and is respected."""
        async with running(concurrency=2) as (emu, client):
            assert await client.in_flight_limit() == 4
            with anyio.fail_after(20):
                async with client.generate_many([request(i) for i in range(10)]) as batch:
                    results = await collect(batch)
                    assert batch.limit == 4
        assert all(r.ok for r in results)
        assert emu.stats.max_in_flight <= 4

    async def test_500_tasks_with_fault_mix(self) -> None:
        """500 items under ≥5% 429/5xx, commit-then-drop and task failures: each accounted once, no duplicate."""
        faults = FaultConfig(
            rate_limit=0.03,
            server_error=0.03,
            commit_then_drop=0.02,
            task_failure=0.02,
            task_failure_code="CreationPolicyViolation",
            retry_after=0.05,
            seed=7,
        )
        limit = 60
        async with running(faults, concurrency=50, processing_time=0.05) as (emu, client):
            with anyio.fail_after(120):
                async with client.generate_many(
                    [request(i) for i in range(500)], max_in_flight=limit
                ) as batch:
                    results = await collect(batch)
        assert len(results) == 500
        assert sorted(r.index for r in results) == list(range(500))
        assert len({r.key for r in results}) == 500
        no_duplicates(emu)
        assert emu.stats.max_in_flight <= limit
        answered = sum(emu.stats.responses.values())
        refused = emu.stats.responses[429] + sum(n for s, n in emu.stats.responses.items() if s >= 500)
        assert refused >= 0.05 * answered * 0.8  # the fault mix really hit (draws vary a little)
        failed = [r for r in results if not r.ok]
        assert failed
        for r in failed:
            assert isinstance(r.error, TaskFailedError), r.error
            assert r.error.err_code == "CreationPolicyViolation"
        by_task = {r.task.id for r in results if r.task is not None}
        assert len(by_task) == 500
        assert by_task == set(emu.tasks)


class TestLeavingEarly:
    """Leaving a batch early cancels local work and reports what was in flight."""

    async def test_break_out_of_batch(self) -> None:
        """``break`` after one result: no batch task survives the block; ``unfinished`` names the rest."""
        outside = client_tasks()
        async with running(concurrency=2, processing_time=0.3) as (_, client):
            before = client_tasks()
            with anyio.fail_after(10):
                async with client.generate_many([request(i) for i in range(10)], max_in_flight=4) as batch:
                    async for _ in batch:
                        break
            assert batch_tasks() <= before
            assert batch.unfinished
            indexes = [i for i, _, _ in batch.unfinished]
            assert indexes == sorted(set(indexes))
            assert len(indexes) <= 4
            assert any(task_id for _, _, task_id in batch.unfinished)
            assert len(client._poller.planner) == 0  # nothing is watched for the batch any more
        assert client_tasks() <= outside

    async def test_cancel_enclosing_scope(self) -> None:
        """Cancelling the scope around the batch: no batch task left, the client stays usable."""
        outside = client_tasks()
        async with running(concurrency=2, processing_time=0.3) as (_, client):
            before = client_tasks()
            with anyio.move_on_after(0.3) as scope:
                async with client.generate_many([request(i) for i in range(10)], max_in_flight=4) as batch:
                    async for _ in batch:
                        pass
            assert scope.cancelled_caught
            assert batch_tasks() <= before
            assert batch.unfinished
            assert len(client._poller.planner) == 0
            with anyio.fail_after(10):
                assert (await client.generate(request(99))).state is vidu.TaskState.SUCCESS
        assert client_tasks() <= outside

    async def test_nothing_left_after_client_closes(self) -> None:
        """After the client closes, none of its tasks (poll scheduler included) remain."""
        before = client_tasks()
        async with running() as (_, client):
            during = client_tasks() - before
            assert any("poll scheduler" in t.get_name() for t in during)
            with anyio.fail_after(10):
                async with client.generate_many([request(i) for i in range(3)], max_in_flight=3) as batch:
                    async for _ in batch:
                        break
        assert client_tasks() <= before


# --- hooks --------------------------------------------------------------------------------------


class TestHooks:
    """Hooks receive every kind of event; a hook that raises breaks nothing."""

    async def test_every_event_kind(self) -> None:
        """Request, retry, throttle and state-change events all arrive."""
        hook = Recorder()
        async with running(hooks=(hook,)) as (emu, client):
            emu.inject("create", "rate_limit")
            with anyio.fail_after(10):
                task = await client.generate(request())
        requests = hook.of(vidu.RequestEvent)
        assert {r.endpoint for r in requests} >= {"create", "get"} or {r.endpoint for r in requests} >= {
            "create",
            "list",
        }
        assert any(r.status == 429 for r in requests)
        assert hook.of(vidu.RetryEvent)
        assert hook.of(vidu.ThrottleEvent)
        changes = [c for c in hook.of(vidu.StateChangeEvent) if c.task_id == task.id]
        assert changes[-1].new is vidu.TaskState.SUCCESS
        assert len({c.new for c in changes}) == len(changes)

    async def test_failed_request_event(self) -> None:
        """A dropped connection is a RequestEvent with no status and an error."""
        hook = Recorder()
        async with running(hooks=(hook,)) as (emu, client):
            emu.inject("credits", "drop", 2)  # aiohttp itself re-sends an idempotent request once
            await client.get_credits()
        dropped = [r for r in hook.of(vidu.RequestEvent) if r.status is None]
        assert len(dropped) == 1
        assert dropped[0].error

    async def test_raising_hook_is_logged(self, caplog: pytest.LogCaptureFixture) -> None:
        """A hook that raises is logged and ignored: calls and waits still succeed."""

        def broken(event: vidu.Event) -> None:
            raise RuntimeError("metrics bug")

        caplog.set_level(logging.ERROR, logger="vidu_async")
        async with running(hooks=(broken,)) as (emu, client):
            emu.inject("get", "server_error")
            with anyio.fail_after(10):
                task = await client.generate(request())
        assert task.state is vidu.TaskState.SUCCESS
        assert any("hook raised" in r.getMessage() for r in caplog.records)
