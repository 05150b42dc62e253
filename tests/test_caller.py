"""The one caller and the one submitter: ``Retry-After`` kept by the whole client, and one
reconcile for a plain submit and a batch item alike.

Gaps are measured in the emulator's request log (``EmulatorStats.log``), on the clock both share.
"""

from __future__ import annotations

import math
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import aiohttp
import anyio
import attrs
import pytest
from conftest import small_request

import vidu_async as vidu
from vidu_async import _retry, _signing
from vidu_async._batch_input import canonical, request_hash
from vidu_async._submit import Submitter
from vidu_async.emulator import Emulator, EmulatorConfig, FaultConfig, RequestRecord
from vidu_async.exceptions import QuotaExceededError, RateLimitError

RETRY: Final = attrs.evolve(vidu.DEFAULT_RETRY, initial=0.01, maximum=0.05, reconcile_settle=0.05)
POLL: Final = attrs.evolve(
    vidu.DEFAULT_POLL, first_check=0.02, min_interval=0.02, max_interval=0.1, bulk_retry_after=1.0
)
#: Every API endpoint a TooManyRequests hold covers (downloads are not API requests).
API: Final = frozenset({"create", "get", "list", "cancel", "credits"})
#: A request that arrives this soon after a 429 was answered may have left before the client read
#: the 429 (it was in flight): only requests sent after it are held to its Retry-After.
IN_FLIGHT: Final = 0.25


def request(i: int = 0, **changes: Any) -> vidu.Reference2Video:
    """A small valid request; ``i`` makes the prompt distinct."""
    return small_request(prompt=f"@Ming cooks hot pot number {i}.", **changes)


@asynccontextmanager
async def running(faults: FaultConfig, **config: Any) -> AsyncIterator[tuple[Emulator, vidu.ViduClient]]:
    settings: dict[str, Any] = {"created_time": 0.01, "processing_time": 0.05, "faults": faults, **config}
    async with (
        Emulator(EmulatorConfig(**settings)) as emu,
        vidu.ViduClient(emu.api_key, base_url=emu.base_url, retry=RETRY, poll=POLL) as client,
    ):
        yield emu, client


def broken_promises(
    log: list[RequestRecord], covered: Callable[[RequestRecord, RequestRecord], bool]
) -> list[str]:
    """Requests that arrived while a 429's Retry-After held them (in-flight ones excepted)."""
    wrong = []
    for held in log:
        if held.status != 429 or held.hold_until is None:
            continue
        for later in log:
            if (
                later is not held
                and held.answered + IN_FLIGHT < later.arrived < held.hold_until
                and covered(held, later)
            ):
                wrong.append(
                    f"{later.endpoint} {later.arrived - held.answered:.2f}s after a 429 on {held.endpoint}"
                    f" that asked for {held.hold_until - held.answered:.2f}s"
                )
    return wrong


class TestHolds:
    """The pure record of Retry-After holds."""

    def test_throttle_holds_everything_quota_holds_creates(self) -> None:
        holds = _retry.RetryAfterHolds(vidu.DEFAULT_RETRY)
        assert holds.until(create=False) == holds.until(create=True) == -math.inf
        holds.record(QuotaExceededError(429, "QuotaExceeded", "", "", retry_after=5.0), now=100.0)
        assert (holds.until(create=False), holds.until(create=True)) == (-math.inf, 105.0)
        holds.record(RateLimitError(429, "TooManyRequests", "", "", retry_after=2.0), now=100.0)
        assert (holds.until(create=False), holds.until(create=True)) == (102.0, 105.0)

    def test_longer_extends_shorter_does_not_shorten_capped(self) -> None:
        holds = _retry.RetryAfterHolds(attrs.evolve(vidu.DEFAULT_RETRY, max_retry_after=10.0))
        holds.record(RateLimitError(429, "TooManyRequests", "", "", retry_after=3.0), now=0.0)
        holds.record(RateLimitError(429, "TooManyRequests", "", "", retry_after=1.0), now=1.0)
        assert holds.until(create=False) == 3.0
        holds.record(RateLimitError(429, "SystemThrottling", "", "", retry_after=600.0), now=1.0)
        assert holds.until(create=False) == 11.0
        assert holds.record(RateLimitError(429, "TooManyRequests", "", "", retry_after=None), now=2.0) is None
        assert holds.until(create=False) == 11.0


async def _get(client: vidu.ViduClient, emu: Emulator) -> None:
    made = await client.submit(request())
    emu.inject("get", "rate_limit")
    await client.get_task(made.id)


async def _list(client: vidu.ViduClient, emu: Emulator) -> None:
    emu.inject("list", "rate_limit")
    [task async for task in client.list_tasks(limit=5)]


async def _create(client: vidu.ViduClient, emu: Emulator) -> None:
    emu.inject("create", "rate_limit")
    await client.submit(request())


async def _cancel(client: vidu.ViduClient, emu: Emulator) -> None:
    made = await client.submit(request())
    emu.inject("cancel", "rate_limit")
    await client.cancel(made.id)


CALLS: Final[dict[str, Callable[[vidu.ViduClient, Emulator], Awaitable[None]]]] = {
    "get": _get,
    "list": _list,
    "create": _create,
    "cancel": _cancel,
}


class TestRetryAfterKept:
    """After a 429 with Retry-After, the next request it covers waits until it has passed."""

    @pytest.mark.parametrize("endpoint", sorted(CALLS))
    @pytest.mark.parametrize("http_date", [False, True], ids=["seconds", "http-date"])
    async def test_each_endpoint(self, endpoint: str, http_date: bool) -> None:
        """GET, list, create and cancel, with Retry-After in seconds and as an HTTP-date."""
        faults = FaultConfig(retry_after=1.0, retry_after_http_date=http_date)
        # Long tasks: the cancelled one is still queued, and no poll runs meanwhile.
        async with running(faults, processing_time=30.0, created_time=30.0) as (emu, client):
            with anyio.fail_after(20):
                await CALLS[endpoint](client, emu)
            log = list(emu.stats.log)
        (held,) = [r for r in log if r.status == 429]
        assert held.endpoint == endpoint
        assert held.hold_until is not None
        after = [r for r in log if r.arrived > held.answered]
        assert after, "the call was not tried again"
        assert after[0].arrived >= held.hold_until, (
            f"{after[0].endpoint} went out {after[0].arrived - held.answered:.2f}s after the 429,"
            f" which asked for {held.hold_until - held.answered:.2f}s"
        )

    async def test_status_429_holds_every_request(self) -> None:
        """A 429 on a status check: no request of any kind goes out before its Retry-After has
        passed, the poll scheduler's checks included (they went out 0.39 s later before)."""
        async with running(FaultConfig(retry_after=1.0), processing_time=0.5) as (emu, client):
            made = await client.submit(request())
            emu.inject("get", "rate_limit")
            emu.inject("list", "rate_limit")
            with anyio.fail_after(20):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(client.wait, made.id)
                    tg.start_soon(client.generate, request(1))
            log = list(emu.stats.log)
        assert sum(r.status == 429 for r in log) >= 1
        assert broken_promises(log, lambda held, later: later.endpoint in API) == []

    @pytest.mark.slow
    async def test_fault_mix_batch(self) -> None:
        """A batch under 8% 429 (Retry-After 1), 3% 500, 2% dropped and 3% created-then-dropped
        creates: no request goes out while a Retry-After covers it, every input is accounted for
        once, and the emulator holds exactly one task per input."""
        faults = FaultConfig(
            seed=5, rate_limit=0.08, retry_after=1.0, server_error=0.03, drop=0.02, commit_then_drop=0.03
        )
        count = 40
        async with running(faults, concurrency=20, processing_time=0.3) as (emu, client):
            with anyio.fail_after(120):
                async with client.generate_many(
                    [request(i) for i in range(count)], max_in_flight=25
                ) as batch:
                    results = [r async for r in batch]
            log = list(emu.stats.log)
            tasks_created = emu.stats.tasks_created
            per_payload = emu.stats.tasks_by_payload
        assert sorted(r.index for r in results) == list(range(count))
        assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
        assert tasks_created == count
        assert set(per_payload.values()) == {1}
        throttled = [r for r in log if r.status == 429]
        status_checks = [r for r in log if r.endpoint in ("get", "list")]
        assert len(throttled) >= 3, "the fault mix did not throttle"
        assert status_checks
        assert broken_promises(log, lambda held, later: later.endpoint in API) == []


@attrs.define
class Spy:
    """Records every call of ``Submitter.reconcile``: (payload, sent_at, the window's start)."""

    calls: list[tuple[str, float]] = attrs.field(factory=list)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    record = Spy()
    original = Submitter.reconcile

    async def reconcile(
        self: Submitter, payload: str, req: Any, *, sent_at: float, deadline: float = math.inf
    ) -> Any:
        record.calls.append((payload, sent_at))
        return await original(self, payload, req, sent_at=sent_at, deadline=deadline)

    monkeypatch.setattr(Submitter, "reconcile", reconcile)
    return record


class TestOneReconcile:
    """A plain submit and a batch item settle a create whose answer was lost the same way."""

    async def test_plain_submit_and_batch_resume(self, spy: Spy, tmp_path: Path) -> None:
        """Both ask the one Submitter.reconcile, with the time the create was sent; both adopt
        the task the lost create made; no second task is made either way."""
        async with running(FaultConfig()) as (emu, client):
            # A plain submit whose answer is dropped after the task was made.
            emu.inject("create", "commit_then_drop")
            before = time.time()
            adopted = await client.submit(request(0))
            assert emu.stats.tasks_created == 1
            (payload, sent_at) = spy.calls[0]
            assert before <= sent_at <= time.time()
            assert adopted.payload == payload

            # A batch item whose intent a crashed run journaled, and whose create made a task.
            fingerprint = _retry.new_fingerprint()
            journal_path = tmp_path / "journal.sqlite"
            async with vidu.SQLiteJournal(journal_path) as journal:
                item = request(1)
                await journal.record_intent(
                    key="item", index=0, request=canonical(item), request_hash=request_hash(item),
                    fingerprint=fingerprint,
                )  # fmt: skip
                intended = (await journal.entries())["item"].created_at
            made = await client.submit(attrs.evolve(item, payload=fingerprint))  # what the lost create did
            async with client.generate_many([("item", item)], journal=journal_path) as batch:
                (result,) = [r async for r in batch]
            assert result.ok
            assert result.task is not None
            assert result.task.id == made.id
            assert emu.stats.tasks_created == 2  # the plain one and the lost one: nothing more
            assert spy.calls[1] == (fingerprint, intended)


class TestCallbacksWithoutId:
    """A callback body without ``id`` (the documented shape) is matched through its payload."""

    async def test_matched_by_payload(self) -> None:
        """An id-less finish is read with one GET of the task its payload names (it was refused
        with 400 before); a payload that names no watched task is answered 404; a body with
        neither id nor payload 400."""
        port = free_port()
        url = f"http://127.0.0.1:{port}/cb"
        config = EmulatorConfig(processing_time=60.0, query_includes_id=False)
        async with (
            Emulator(config) as emu,
            vidu.ViduClient(emu.api_key, base_url=emu.base_url, callback_url=url, poll=POLL) as client,
            client.serve_callbacks("127.0.0.1", port) as receiver,
            aiohttp.ClientSession() as session,
        ):
            made = await client.submit(request())

            async def post(body: dict[str, Any]) -> int:
                headers = _signing.signed_headers(
                    key=emu.api_key, url=url, nonce=str(uuid.uuid4()), date=_signing.http_date()
                )
                async with session.post(url, json=body, headers=headers) as response:
                    return response.status

            async def until(condition: Callable[[], bool]) -> None:
                with anyio.fail_after(10):
                    while not condition():  # noqa: ASYNC110 - the client's live state, under a deadline
                        await anyio.sleep(0.01)

            async with anyio.create_task_group() as tg:
                tg.start_soon(client.wait, made.id)
                await until(lambda: client._poller.planner.task_of_payload(made.payload) == made.id)
                gets = emu.stats.requests["get"]
                assert await post({"state": "success", "payload": made.payload}) == 200
                await until(lambda: emu.stats.requests["get"] == gets + 1)  # the hint's confirming read
                assert await post({"state": "success", "payload": "vidu-async:nobody"}) == 404
                assert await post({"state": "success"}) == 400
                tg.cancel_scope.cancel()
            # Accepted: the id-less finish (and the emulator's own processing callbacks, id-less too).
            assert receiver.stats.accepted >= 1
            assert (receiver.stats.unmatched, receiver.stats.bad_body) == (1, 1)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
