"""``ViduClient`` against the emulator on a free port: every endpoint, every error class, list paging, cancel."""

from __future__ import annotations

import base64
import gc
import logging
import re
import socket
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import attrs
import pytest
from aiohttp import web
from conftest import load_fixture
from conftest import small_request as request

import vidu_async as vidu
from vidu_async.emulator import Emulator, EmulatorConfig, FaultConfig
from vidu_async.exceptions import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ClientNotOpenError,
    ConfigurationError,
    ConflictError,
    ConnectError,
    InsufficientCreditsError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    RequestTimeoutError,
    RequestValidationError,
    ResponseValidationError,
    ServerError,
    SubmitOutcomeUnknownError,
    TaskFailedError,
    TransportError,
    ViduError,
    WaitTimeoutError,
)

#: A key that must never show up in an error, a repr or a log line.
KEY = "vda_test_secret_7c0ffee5"
TRACE = re.compile(r"[0-9a-f]{32}")
FINGERPRINT = re.compile(r"vidu-async:[0-9a-f]+")
FAST: dict[str, Any] = {"api_key": KEY, "created_time": 0.01, "processing_time": 0.05}
#: Retries that do not make a test wait.
QUICK = attrs.evolve(vidu.DEFAULT_RETRY, initial=0.01, maximum=0.05, reconcile_settle=0.05)

#: The §2.8 example: the request this SDK must express first.
XIAO: dict[str, Any] = {
    "model": "viduq3",
    "subjects": [
        {"name": "XiaoMing", "images": ["https://example.com/xiaoming.png"]},
        {"name": "XiaoHong", "images": ["https://example.com/xiaohong.png"]},
    ],
    "prompt": "@XiaoMing and @XiaoHong are cooking together, and both say they love hot pot.",
    "duration": 5,
}


@asynccontextmanager
async def running(**config: Any) -> AsyncIterator[Emulator]:
    """An emulator with fast tasks, keyed with ``KEY``."""
    async with Emulator(EmulatorConfig(**{**FAST, **config})) as emu:
        yield emu


def client_for(emu: Emulator, **options: Any) -> vidu.ViduClient:
    options.setdefault("retry", QUICK)
    return vidu.ViduClient(emu.api_key, base_url=emu.base_url, **options)


@asynccontextmanager
async def connected(**config: Any) -> AsyncIterator[tuple[Emulator, vidu.ViduClient]]:
    """An emulator and an open client for it."""
    async with running(**config) as emu, client_for(emu) as client:
        yield emu, client


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Wait (bounded) until ``condition()`` holds, looking at live emulator state."""
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - polling live state under a deadline is the intent
            await anyio.sleep(0.005)


def assert_api_error(
    exc: BaseException, cls: type[APIError], *, status: int, reason: str, method: str, path: str
) -> None:
    """An API error of exactly this class, with Vidu's reason and trace id, the call, and no key."""
    assert type(exc) is cls, repr(exc)
    assert isinstance(exc, APIError)
    assert exc.status == status
    assert exc.reason == reason
    assert TRACE.fullmatch(exc.trace_id), exc.trace_id
    assert (exc.method, exc.path) == (method, path)
    assert exc.trace_id in str(exc)
    assert_no_key(exc)


def assert_no_key(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), repr(getattr(exc, "body", None)), repr(exc.args)):
        assert KEY not in text


def free_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def png_bytes(width: int, height: int) -> bytes:
    """A real, decodable RGB PNG of the given size."""
    row = b"\x00" + b"\x80\x40\x20" * width

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


Answer = tuple[int, Any]


@asynccontextmanager
async def fake_server(routes: dict[str, Answer]) -> AsyncIterator[str]:
    """A tiny aiohttp server answering each path with a fixed ``(status, body)``; yields its base URL.

    A ``bytes`` body is sent as is (labelled JSON, whatever it is); anything else is encoded as JSON.
    """

    async def handle(req: web.Request) -> web.StreamResponse:
        status, body = routes.get(
            req.path, (404, {"code": 404, "reason": "NotFound", "message": "not found"})
        )
        if isinstance(body, bytes):
            return web.Response(body=body, status=status, content_type="application/json")
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


# --- endpoints ---------------------------------------------------------------------------------------


class TestSubmit:
    """POST /ent/v2/reference2video through ViduClient.submit."""

    async def test_reference2video(self) -> None:
        """A Reference2Video is created; the echo is parsed into a Task (credits, created_at, state)."""
        async with connected() as (emu, client):
            task = await client.submit(request())
        assert task.state is vidu.TaskState.CREATED
        assert re.fullmatch(r"\d{18,19}", task.id)
        assert task.id in emu.tasks
        assert task.credits == 25 == emu.tasks[task.id].credits
        assert task.created_at is not None
        assert task.created_at.tzinfo is not None
        assert abs(datetime.now(UTC) - task.created_at) < timedelta(days=1)
        assert (task.model, task.duration, task.resolution) == ("viduq3", 5, "720p")
        assert emu.stats.tasks_created == 1

    async def test_vidu_json_mapping_xiaoming_xiaohong(self) -> None:
        """The §2.8 example, as Vidu JSON, is accepted and creates one task with both subjects."""
        async with connected() as (emu, client):
            task = await client.submit(XIAO)
        record = emu.tasks[task.id]
        assert [s.name for s in record.request.subjects] == ["XiaoMing", "XiaoHong"]
        assert record.request.prompt == XIAO["prompt"]
        assert task.prompt == XIAO["prompt"]
        assert task.duration == 5
        assert task.credits == 25

    async def test_fingerprint_stamped_when_no_payload(self) -> None:
        """With no payload, a `vidu-async:` fingerprint is sent in `payload` and echoed back."""
        async with connected() as (emu, client):
            first = await client.submit(XIAO)
            second = await client.submit(request())
        assert FINGERPRINT.fullmatch(first.payload)
        assert FINGERPRINT.fullmatch(second.payload)
        assert first.payload != second.payload
        assert emu.tasks[first.id].payload == first.payload
        assert emu.stats.tasks_by_payload[first.payload] == 1

    @pytest.mark.parametrize("as_json", [False, True])
    async def test_callers_payload_kept(self, as_json: bool) -> None:
        """A caller's payload is sent as given, never replaced by a fingerprint."""
        body: Any = {**XIAO, "payload": "job-42"} if as_json else request(payload="job-42")
        async with connected() as (emu, client):
            task = await client.submit(body)
        assert task.payload == "job-42"
        assert emu.tasks[task.id].payload == "job-42"
        assert emu.stats.tasks_by_payload == {"job-42": 1}

    async def test_concurrent_submits(self) -> None:
        """Many submissions at once through one client make one task each, each with its own fingerprint."""
        made: list[vidu.Task] = []

        async with connected(created_time=30.0) as (emu, client):

            async def one() -> None:
                made.append(await client.submit(request()))

            async with anyio.create_task_group() as group:
                for _ in range(20):
                    group.start_soon(one)
        assert len({t.id for t in made}) == 20 == emu.stats.tasks_created
        assert len({t.payload for t in made}) == 20
        assert all(count == 1 for count in emu.stats.tasks_by_payload.values())

    async def test_reseller_echo_parsed(self) -> None:
        """The documented reseller echo (§2.8: string credits, rewritten prompt) parses leniently."""
        echo = load_fixture("reference2video-response-reseller.json")
        async with (
            fake_server({"/vidu/ent/v2/reference2video": (200, echo)}) as url,
            vidu.ViduClient(KEY, base_url=f"{url}/vidu", auth_scheme="Bearer", retry=QUICK) as client,
        ):
            task = await client.submit(XIAO)
        assert task.id == "your_task_id_here"
        assert task.credits == 15
        assert task.state is vidu.TaskState.CREATED
        assert task.created_at == datetime(2025, 1, 1, 15, 41, 31, 968916, tzinfo=UTC)


class TestGetTask:
    """GET /ent/v2/tasks/{id}/creations through ViduClient.get_task."""

    async def test_follows_the_task_to_success(self) -> None:
        """get_task reports the current state; a finished task has its creation links."""
        async with connected() as (emu, client):
            task = await client.submit(request())
            with anyio.fail_after(5):
                await emu.wait_idle()
            done = await client.get_task(task.id)
        assert done.id == task.id
        assert done.state is vidu.TaskState.SUCCESS
        assert done.payload == task.payload
        assert len(done.creations) == 1
        assert done.creations[0].url.startswith(emu.base_url + "/files/")

    async def test_id_from_path_when_body_has_none(self) -> None:
        """With `query_includes_id=False` (the official example) the id is taken from the path."""
        async with connected(query_includes_id=False) as (_, client):
            task = await client.submit(request())
            read = await client.get_task(task.id)
        assert read.id == task.id
        assert read.state in (vidu.TaskState.CREATED, vidu.TaskState.QUEUEING, vidu.TaskState.PROCESSING)


class TestUnknownState:
    """A state string the SDK does not know."""

    async def test_unknown_state_kept(self) -> None:
        """An unknown state reads as UNKNOWN with the raw string kept, never an error."""
        async with connected(created_time=30.0) as (emu, client):
            task = await client.submit(request())
            emu.inject("get", "unknown_state")
            read = await client.get_task(task.id)
            again = await client.get_task(task.id)
        assert read.state is vidu.TaskState.UNKNOWN
        assert read.raw_state == "paused"
        assert again.state is vidu.TaskState.CREATED


class TestCancel:
    """POST /ent/v2/tasks/{id}/cancel through ViduClient.cancel."""

    async def test_cancel_created(self) -> None:
        """A task still `created` is cancelled: it ends failed with UserCancelled and is refunded."""
        async with connected(created_time=30.0) as (emu, client):
            before = (await client.get_credits()).credit_remain
            task = await client.submit(request())
            await client.cancel(task.id)
            read = await client.get_task(task.id)
            after = (await client.get_credits()).credit_remain
        assert read.state is vidu.TaskState.FAILED
        assert read.err_code == "UserCancelled"
        assert emu.tasks[task.id].err_code == "UserCancelled"
        assert after == before

    async def test_cancel_queueing(self) -> None:
        """A task waiting in `queueing` behind a busy slot can be cancelled."""
        async with connected(concurrency=1, processing_time=30.0) as (emu, client):
            running_task = await client.submit(request())
            waiting = await client.submit(request())
            await until(lambda: emu.tasks[waiting.id].state is vidu.TaskState.QUEUEING)
            await client.cancel(waiting.id)
            read = await client.get_task(waiting.id)
            assert emu.tasks[running_task.id].state is vidu.TaskState.PROCESSING
        assert read.state is vidu.TaskState.FAILED
        assert read.err_code == "UserCancelled"

    async def test_cancel_processing_refused(self) -> None:
        """A processing task cannot be cancelled: BadRequestError with Vidu's reason and trace id."""
        async with connected(processing_time=30.0) as (emu, client):
            task = await client.submit(request())
            await until(lambda: emu.tasks[task.id].state is vidu.TaskState.PROCESSING)
            with pytest.raises(BadRequestError) as caught:
                await client.cancel(task.id)
            assert emu.tasks[task.id].state is vidu.TaskState.PROCESSING
        assert_api_error(
            caught.value,
            BadRequestError,
            status=400,
            reason="BadRequest",
            method="POST",
            path=f"/ent/v2/tasks/{task.id}/cancel",
        )
        assert "can not cancel" in caught.value.message
        assert caught.value.attempts == 1

    async def test_cancel_unknown(self) -> None:
        """Cancelling an unknown task is a NotFoundError."""
        async with connected() as (_, client):
            with pytest.raises(NotFoundError) as caught:
                await client.cancel("123456789012345678")
        assert_api_error(
            caught.value,
            NotFoundError,
            status=404,
            reason="TaskNotFound",
            method="POST",
            path="/ent/v2/tasks/123456789012345678/cancel",
        )


class TestListTasks:
    """GET /ent/v2/tasks through ViduClient.list_tasks."""

    async def test_auto_pages_over_more_than_100(self) -> None:
        """Over 100 tasks come back through every page, newest first, each exactly once."""
        async with connected(created_time=30.0) as (emu, client):
            ids = [(await client.submit(request())).id for _ in range(105)]
            listed = [task async for task in client.list_tasks(page_size=10)]
            pages = emu.stats.requests["list"]
        assert [t.id for t in listed] == ids[::-1]
        assert pages == 11
        assert all(FINGERPRINT.fullmatch(t.payload) for t in listed)
        assert all(t.state is vidu.TaskState.CREATED for t in listed)

    async def test_default_page_size_is_the_maximum(self) -> None:
        """Without page_size, 105 tasks take two requests of up to 100."""
        async with connected(created_time=30.0) as (emu, client):
            for _ in range(105):
                await client.submit(request())
            listed = [task async for task in client.list_tasks()]
            assert emu.stats.requests["list"] == 2
        assert len(listed) == 105

    async def test_limit(self) -> None:
        """`limit` stops the iteration, and no page beyond it is fetched."""
        async with connected(created_time=30.0) as (emu, client):
            ids = [(await client.submit(request())).id for _ in range(12)]
            listed = [task async for task in client.list_tasks(page_size=5, limit=7)]
            assert emu.stats.requests["list"] == 2
        assert [t.id for t in listed] == ids[::-1][:7]

    async def test_limit_zero(self) -> None:
        """`limit=0` yields no task at all."""
        async with connected(created_time=30.0) as (_, client):
            for _ in range(3):
                await client.submit(request())
            listed = [task async for task in client.list_tasks(limit=0)]
        assert listed == []

    async def test_filters(self) -> None:
        """`states` and `task_ids` filter on the server; results stay newest first."""
        async with connected(created_time=30.0) as (_, client):
            a, b, c = [(await client.submit(request())).id for _ in range(3)]
            await client.cancel(b)
            failed = [t.id async for t in client.list_tasks(states=[vidu.TaskState.FAILED])]
            created = [t.id async for t in client.list_tasks(states=["created"])]
            chosen = [t.id async for t in client.list_tasks(task_ids=[a, c], page_size=1)]
            none = [t.id async for t in client.list_tasks(states=[vidu.TaskState.SUCCESS])]
        assert failed == [b]
        assert created == [c, a]
        assert chosen == [c, a]
        assert none == []

    async def test_model_resolution_and_time_filters(self) -> None:
        """model_versions, resolutions and the created_at window filter on the server."""
        async with connected(created_time=30.0) as (_, client):
            q3 = (await client.submit(request())).id
            q2 = (await client.submit(request(model="viduq2", resolution="540p"))).id
            by_model = [t.id async for t in client.list_tasks(model_versions=["q2"])]
            by_size = [t.id async for t in client.list_tasks(resolutions=["720p"])]
            future = datetime.now(UTC) + timedelta(hours=1)
            later = [t.id async for t in client.list_tasks(created_from=future)]
            window = [t.id async for t in client.list_tasks(created_to=future)]
        assert by_model == [q2]
        assert by_size == [q3]
        assert later == []
        assert window == [q2, q3]

    async def test_empty(self) -> None:
        """An account with no tasks lists nothing, in one request."""
        async with connected() as (emu, client):
            assert [t async for t in client.list_tasks()] == []
            assert emu.stats.requests["list"] == 1


class TestCredits:
    """GET /ent/v2/credits through ViduClient.get_credits."""

    async def test_credits_and_concurrency(self) -> None:
        """The concurrency limit is reported, and credits go down by what a task costs."""
        async with connected(concurrency=3, credits=1000, created_time=30.0) as (_, client):
            before = await client.get_credits()
            task = await client.submit(request())
            after = await client.get_credits(show_detail=True)
        assert before.concurrency_limit == 3
        assert before.credit_remain == 1000
        assert task.credits is not None
        assert after.credit_remain == 1000 - task.credits
        assert after.queue_count == 1
        assert after.packages
        assert after.packages[0].credit_remain == after.credit_remain


# --- errors ------------------------------------------------------------------------------------------


class TestAPIErrors:
    """Every APIError subclass the emulator can provoke, with reason, trace id, call, and no key."""

    async def test_wrong_key(self) -> None:
        """A wrong key is an AuthenticationError (401 Unauthorized), not retried."""
        async with running() as emu:
            async with vidu.ViduClient("vda_wrong_" + KEY, base_url=emu.base_url, retry=QUICK) as client:
                with pytest.raises(AuthenticationError) as caught:
                    await client.get_credits()
            assert emu.stats.requests["credits"] == 1
        assert_api_error(
            caught.value,
            AuthenticationError,
            status=401,
            reason="Unauthorized",
            method="GET",
            path="/ent/v2/credits",
        )
        assert "vda_wrong_" not in str(caught.value)

    async def test_unknown_task(self) -> None:
        """An unknown task is a NotFoundError (404 TaskNotFound)."""
        async with connected() as (_, client):
            with pytest.raises(NotFoundError) as caught:
                await client.get_task("999999999999999999")
        assert_api_error(
            caught.value,
            NotFoundError,
            status=404,
            reason="TaskNotFound",
            method="GET",
            path="/ent/v2/tasks/999999999999999999/creations",
        )

    async def test_image_download_failure(self) -> None:
        """An image Vidu cannot fetch is a BadRequestError with reason ImageDownloadFailure; no task."""
        bad = request(subjects=[vidu.Subject(name="Ming", images=["https://cdn.example.invalid/ming.png"])])
        async with connected() as (emu, client):
            with pytest.raises(BadRequestError) as caught:
                await client.submit(bad)
            assert emu.stats.tasks_created == 0
            assert emu.stats.requests["create"] == 1
        assert_api_error(
            caught.value,
            BadRequestError,
            status=400,
            reason="ImageDownloadFailure",
            method="POST",
            path="/ent/v2/reference2video",
        )

    @pytest.mark.parametrize("status", [400, 402])
    async def test_insufficient_credits(self, status: int) -> None:
        """CreditInsufficient, as a 400 int-code or a 402 string-code body, is InsufficientCreditsError."""
        async with connected(credits=30, credit_insufficient_status=status) as (emu, client):
            await client.submit(request())
            with pytest.raises(InsufficientCreditsError) as caught:
                await client.submit(request())
            assert emu.stats.tasks_created == 1
            assert emu.stats.requests["create"] == 2
        assert_api_error(
            caught.value,
            InsufficientCreditsError,
            status=status,
            reason="CreditInsufficient",
            method="POST",
            path="/ent/v2/reference2video",
        )

    @pytest.mark.parametrize(
        ("fault", "reason"), [("rate_limit", "TooManyRequests"), ("throttle", "SystemThrottling")]
    )
    async def test_rate_limited(self, fault: str, reason: str) -> None:
        """A 429 once throttle attempts run out is a RateLimitError carrying Retry-After."""
        retry = attrs.evolve(QUICK, throttle_attempts=1)
        async with (
            running(faults=FaultConfig(retry_after=2.5)) as emu,
            client_for(emu, retry=retry) as client,
        ):
            emu.inject("credits", fault, 3)
            with pytest.raises(RateLimitError) as caught:
                await client.get_credits()
            assert emu.stats.requests["credits"] == 1
        assert_api_error(
            caught.value, RateLimitError, status=429, reason=reason, method="GET", path="/ent/v2/credits"
        )
        assert isinstance(caught.value, RateLimitError)
        assert caught.value.retry_after == 2.5

    async def test_rate_limit_waits_out_retry_after(self) -> None:
        """A 429 within the throttle budget is retried after Retry-After, and the call succeeds."""
        async with running(faults=FaultConfig(retry_after=0.05)) as emu, client_for(emu) as client:
            emu.inject("get", "rate_limit", 2)
            task = await client.submit(request())
            read = await client.get_task(task.id)
            assert emu.stats.requests["get"] == 3
        assert read.id == task.id

    async def test_quota_exceeded_only_when_the_deadline_is_too_short(self) -> None:
        """QuotaExceeded is waited out while the deadline allows; it reaches the caller only after it."""
        async with running(faults=FaultConfig(retry_after=0.05)) as emu, client_for(emu) as client:
            emu.inject("create", "quota_exceeded", 3)
            task = await client.submit(request(), timeout=30)
            assert emu.stats.faults["quota_exceeded"] == 3
            assert emu.stats.tasks_created == 1

            emu.inject("create", "quota_exceeded", 1000)
            with pytest.raises(QuotaExceededError) as caught:
                await client.submit(request(), timeout=0.3)
            assert emu.stats.tasks_created == 1
        assert task.state is vidu.TaskState.CREATED
        assert_api_error(
            caught.value,
            QuotaExceededError,
            status=429,
            reason="QuotaExceeded",
            method="POST",
            path="/ent/v2/reference2video",
        )

    async def test_submit_timeout_bounds_a_slow_create(self) -> None:
        """submit(timeout=...) bounds the whole submission, a single slow attempt included."""
        async with running(faults=FaultConfig(slow_delay=4.0)) as emu, client_for(emu) as client:
            emu.inject("create", "slow")
            # Far beyond the 0.3 s asked for, far below the 4 s the service takes: only a hang trips it.
            with anyio.fail_after(2.5), pytest.raises(ViduError):
                await client.submit(request(), timeout=0.3)

    async def test_quota_from_a_full_queue(self) -> None:
        """The organization's queue cap (max_queue) answers QuotaExceeded; a short deadline surfaces it."""
        async with connected(concurrency=1, max_queue=0, processing_time=30.0) as (emu, client):
            await client.submit(request())
            with pytest.raises(QuotaExceededError) as caught:
                await client.submit(request(), timeout=1.0)
            assert emu.stats.tasks_created == 1
        assert caught.value.reason == "QuotaExceeded"
        assert TRACE.fullmatch(caught.value.trace_id)

    async def test_server_error_on_get(self) -> None:
        """A GET that keeps failing with 500 is a ServerError after the allowed attempts."""
        faults = FaultConfig(server_error=1.0, endpoints={"get"})
        retry = attrs.evolve(QUICK, attempts=2)
        async with running(faults=faults) as emu, client_for(emu, retry=retry) as client:
            task = await client.submit(request())
            with pytest.raises(ServerError) as caught:
                await client.get_task(task.id)
            assert emu.stats.requests["get"] == 2
        assert_api_error(
            caught.value,
            ServerError,
            status=500,
            reason="InternalServiceFailure",
            method="GET",
            path=f"/ent/v2/tasks/{task.id}/creations",
        )
        assert caught.value.attempts == 2


class TestErrorMapping:
    """Error answers the emulator never gives, from a fake server: each maps to its class."""

    @pytest.mark.parametrize(
        ("status", "body", "cls", "reason"),
        [
            (
                403,
                {"code": 403, "reason": "Forbidden", "message": "forbidden"},
                PermissionDeniedError,
                "Forbidden",
            ),
            (
                409,
                {"code": 409, "reason": "Conflict", "message": "resource conflict"},
                ConflictError,
                "Conflict",
            ),
            (
                400,
                {"code": 400, "reason": "FieldInvalid", "message": "invalid field: duration"},
                BadRequestError,
                "FieldInvalid",
            ),
            (
                400,
                {"code": 400, "reason": "CreditInsufficient", "message": "insufficient credits"},
                InsufficientCreditsError,
                "CreditInsufficient",
            ),
            (
                404,
                {"code": 404, "reason": "CreationNotFound", "message": "creation not found"},
                NotFoundError,
                "CreationNotFound",
            ),
            # A 2xx whose body is an error body (a client of the official service treats it as one).
            (
                200,
                {"code": 400, "reason": "ModelUnavailable", "message": "model unavailable"},
                BadRequestError,
                "ModelUnavailable",
            ),
        ],
    )
    async def test_documented_bodies(
        self, status: int, body: dict[str, Any], cls: type[APIError], reason: str
    ) -> None:
        """Vidu's error bodies become the matching APIError with reason, trace id and the call."""
        body = {**body, "metadata": {"trace_id": "0123456789abcdef0123456789abcdef"}}
        async with (
            fake_server({"/ent/v2/tasks/7/creations": (status, body)}) as url,
            vidu.ViduClient(KEY, base_url=url, retry=QUICK) as client,
        ):
            with pytest.raises(APIError) as caught:
                await client.get_task("7")
        assert_api_error(
            caught.value,
            cls,
            status=status if status >= 400 else body["code"],
            reason=reason,
            method="GET",
            path="/ent/v2/tasks/7/creations",
        )
        assert caught.value.message == body["message"]

    async def test_gateway_error_page(self) -> None:
        """A 502 HTML page from a proxy is a ServerError carrying the page's text, after the retries."""
        retry = attrs.evolve(QUICK, attempts=2)
        async with (
            fake_server({"/ent/v2/credits": (502, b"<html>Bad Gateway</html>")}) as url,
            vidu.ViduClient(KEY, base_url=url, retry=retry) as client,
        ):
            with pytest.raises(ServerError) as caught:
                await client.get_credits()
        assert caught.value.status == 502
        assert caught.value.reason == ""
        assert caught.value.trace_id == ""
        assert "Bad Gateway" in caught.value.message
        assert caught.value.attempts == 2
        assert_no_key(caught.value)


class TestTaskOutcomes:
    """Errors from waiting: a failed task, a deadline, a create whose outcome cannot be known."""

    async def test_task_failed(self) -> None:
        """generate() on a task the service fails raises TaskFailedError with err_code and the task."""
        faults = FaultConfig(task_failure=1.0, task_failure_code="CreationPolicyViolation")
        async with connected(faults=faults) as (emu, client):
            with pytest.raises(TaskFailedError) as caught:
                await client.generate(request(), timeout=10)
        assert caught.value.err_code == "CreationPolicyViolation"
        assert caught.value.task.state is vidu.TaskState.FAILED
        assert caught.value.task.id in emu.tasks

    async def test_wait_timeout(self) -> None:
        """wait() past its deadline raises WaitTimeoutError with the last state seen."""
        async with connected(processing_time=30.0) as (_, client):
            task = await client.submit(request())
            with pytest.raises(WaitTimeoutError) as caught:
                await client.wait(task.id, timeout=0.3)
        assert isinstance(caught.value, TimeoutError)
        assert caught.value.task_id == task.id
        assert caught.value.last_task is not None
        assert not caught.value.last_task.is_terminal

    @pytest.mark.parametrize(
        ("faults", "retry"),
        [
            (FaultConfig(list_omits_state=True), QUICK),
            (FaultConfig(list_disabled=True), QUICK),
            (FaultConfig(), attrs.evolve(QUICK, reconcile=False)),
        ],
        ids=["list-without-payloads", "no-list", "reconcile-off"],
    )
    async def test_submit_outcome_unknown(self, faults: FaultConfig, retry: vidu.RetryPolicy) -> None:
        """A lost create answer that the task list cannot settle raises SubmitOutcomeUnknownError, never a resend."""
        async with running(faults=faults) as emu, client_for(emu, retry=retry) as client:
            emu.inject("create", "commit_then_drop")
            with pytest.raises(SubmitOutcomeUnknownError) as caught:
                await client.submit(request())
            assert emu.stats.requests["create"] == 1
        assert emu.stats.tasks_created == 1
        [made] = emu.tasks.values()
        assert caught.value.fingerprint == made.payload
        assert FINGERPRINT.fullmatch(caught.value.fingerprint)
        assert caught.value.fingerprint in str(caught.value)
        assert_no_key(caught.value)


class TestOtherErrors:
    """Transport, validation, configuration and lifecycle errors."""

    async def test_connect_error(self) -> None:
        """A port nobody listens on is a ConnectError: request_sent False, retried, no key in it."""
        retry = attrs.evolve(QUICK, attempts=2)
        async with vidu.ViduClient(KEY, base_url=f"http://127.0.0.1:{free_port()}", retry=retry) as client:
            with pytest.raises(ConnectError) as caught:
                await client.get_credits()
            with pytest.raises(ConnectError) as on_create:
                await client.submit(request())
        for exc in (caught.value, on_create.value):
            assert exc.request_sent is False
            assert exc.attempts == 2
            assert_no_key(exc)
        assert (caught.value.method, caught.value.path) == ("GET", "/ent/v2/credits")
        assert (on_create.value.method, on_create.value.path) == ("POST", "/ent/v2/reference2video")

    async def test_request_timeout(self) -> None:
        """An answer slower than Timeouts.request is a RequestTimeoutError (also a TimeoutError)."""
        timeouts = attrs.evolve(vidu.DEFAULT_TIMEOUTS, request=0.2)
        retry = attrs.evolve(QUICK, attempts=1)
        faults = FaultConfig(slow_delay=0.6)
        async with running(faults=faults) as emu, client_for(emu, timeouts=timeouts, retry=retry) as client:
            emu.inject("credits", "slow")
            with pytest.raises(RequestTimeoutError) as caught:
                await client.get_credits()
        assert isinstance(caught.value, TimeoutError)
        assert isinstance(caught.value, TransportError)
        assert caught.value.request_sent is True
        assert (caught.value.method, caught.value.path) == ("GET", "/ent/v2/credits")
        assert_no_key(caught.value)

    async def test_request_validation_error_sends_nothing(self) -> None:
        """A Vidu-JSON request breaking rules fails with every problem at once, before any request."""
        bad = {**XIAO, "duration": 99, "colour": "red"}
        async with connected() as (emu, client):
            with pytest.raises(RequestValidationError) as caught:
                await client.submit(bad)
            assert emu.stats.requests["create"] == 0
        assert set(caught.value.fields) >= {"duration", "colour"}
        assert isinstance(caught.value, ValueError)

    async def test_response_validation_error(self) -> None:
        """Answers that are not the documented shape are ResponseValidationError, never another
        error; a task with one odd field is read, that field aside."""
        routes: dict[str, Answer] = {
            "/ent/v2/credits": (200, b"<html>not json"),
            "/ent/v2/tasks/1/creations": (200, {"id": "1", "state": "success", "credits": "lots"}),
            "/ent/v2/tasks/2/creations": (200, [1, 2, 3]),
            "/ent/v2/tasks": (200, {"tasks": "nope"}),
        }
        async with fake_server(routes) as url, vidu.ViduClient(KEY, base_url=url, retry=QUICK) as client:
            with pytest.raises(ResponseValidationError, match="not JSON"):
                await client.get_credits()
            lenient = await client.get_task("1")  # an odd field the engine does not need: kept aside
            assert (lenient.state, lenient.credits, lenient.extra) == (
                vidu.TaskState.SUCCESS,
                None,
                {"credits": "lots"},
            )
            with pytest.raises(ResponseValidationError):
                await client.get_task("2")
            with pytest.raises(ResponseValidationError):
                [t async for t in client.list_tasks()]

    def test_no_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """No key (unset, empty or blank VIDU_API_KEY) is a ConfigurationError naming the variable."""
        monkeypatch.delenv("VIDU_API_KEY", raising=False)
        with pytest.raises(ConfigurationError, match="VIDU_API_KEY"):
            vidu.ViduClient()
        for value in ("", "   "):
            monkeypatch.setenv("VIDU_API_KEY", value)
            with pytest.raises(ConfigurationError, match="VIDU_API_KEY"):
                vidu.ViduClient()

    @pytest.mark.parametrize(
        "base_url", ["ftp://api.vidu.com", "api.vidu.com", "https://", "https://api.vidu.com/?x=1"]
    )
    def test_bad_base_url(self, base_url: str) -> None:
        """A base URL that is not a plain http(s) root is a ConfigurationError that shows no key."""
        with pytest.raises(ConfigurationError) as caught:
            vidu.ViduClient(KEY, base_url=base_url)
        assert_no_key(caught.value)

    def test_bad_auth_scheme(self) -> None:
        """Only Token and Bearer are accepted."""
        with pytest.raises(ConfigurationError, match="auth_scheme"):
            vidu.ViduClient(KEY, auth_scheme="Basic")  # type: ignore[arg-type]

    @pytest.mark.parametrize("callback_url", ["http://[::1", "ftp://example.com/hook", "example.com/hook"])
    def test_bad_callback_url(self, callback_url: str) -> None:
        """A callback URL that is not an http(s) URL, a malformed one included, is a ConfigurationError."""
        with pytest.raises(ConfigurationError, match="callback_url"):
            vidu.ViduClient(KEY, callback_url=callback_url)

    async def test_closed_client(self) -> None:
        """After aclose (twice is fine), every call raises ClientClosedError and sends nothing."""
        async with running() as emu:
            client = client_for(emu)
            async with client:
                await client.get_credits()
            await client.aclose()
            assert client.closed
            assert "closed" in repr(client)
            with pytest.raises(ClientClosedError):
                await client.get_credits()
            with pytest.raises(ClientClosedError):
                await client.submit(request())
            assert emu.stats.requests["credits"] == 1
            assert emu.stats.requests["create"] == 0

    async def test_waiting_after_close(self) -> None:
        """After aclose, waiting calls raise ClientClosedError too (not "use async with")."""
        async with running() as emu:
            async with client_for(emu) as client:
                task = await client.submit(request())
            with pytest.raises(ClientClosedError):
                await client.wait(task.id)
            with pytest.raises(ClientClosedError):
                await client.generate(request())
            with pytest.raises(ClientClosedError):
                [t async for t in client.watch(task.id)]

    async def test_reopen_after_close(self) -> None:
        """A closed client cannot be entered again: ClientClosedError at `async with`, not at the first call."""
        async with running() as emu:
            client = client_for(emu)
            await client.aclose()
            with pytest.raises(ClientClosedError):
                async with client:
                    pass

    async def test_not_open(self) -> None:
        """Waiting outside `async with` raises ClientNotOpenError; plain calls still work."""
        async with running() as emu:
            client = client_for(emu)
            try:
                task = await client.submit(request())
                with pytest.raises(ClientNotOpenError):
                    await client.wait(task.id)
                with pytest.raises(ClientNotOpenError):
                    await client.generate(request())
                with pytest.raises(ClientNotOpenError):
                    [t async for t in client.watch(task.id)]
                assert (await client.get_task(task.id)).id == task.id
            finally:
                await client.aclose()
            assert emu.stats.tasks_created == 1

    async def test_every_error_is_a_vidu_error(self) -> None:
        """Everything the client raised above is catchable as ViduError."""
        async with connected() as (_, client):
            with pytest.raises(ViduError):
                await client.get_task("1")
            with pytest.raises(ViduError):
                await client.submit({"model": "viduq3"})


class TestSecrecy:
    """The key never appears in an error, a repr or a log record."""

    async def test_reprs(self) -> None:
        """The client's repr names the URL and scheme, never the key."""
        async with connected() as (emu, client):
            assert KEY not in repr(client)
            assert emu.base_url in repr(client)
            assert "Token" in repr(client)

    async def test_debug_logs(self, caplog: pytest.LogCaptureFixture) -> None:
        """With every logger at DEBUG through retries, reconciliation and errors, no record holds the key."""
        caplog.set_level(logging.DEBUG)
        async with connected(processing_time=30.0) as (emu, client):
            emu.inject("get", "server_error")
            emu.inject("create", "commit_then_drop")
            task = await client.submit(request())
            await client.get_task(task.id)
            await client.get_credits()
            [t async for t in client.list_tasks()]
            with pytest.raises(NotFoundError):
                await client.get_task("1")
        assert caplog.records
        assert any(r.name.startswith("vidu_async") for r in caplog.records)
        for record in caplog.records:
            assert KEY not in record.getMessage()
            assert KEY not in repr(record.args)
        assert KEY not in caplog.text


# --- configuration -----------------------------------------------------------------------------------


class TestConfiguration:
    """Environment, reseller gateways, a caller's session, and the lifecycle."""

    async def test_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """VIDU_API_KEY and VIDU_BASE_URL configure a client built with no arguments."""
        async with running() as emu:
            monkeypatch.setenv("VIDU_API_KEY", emu.api_key)
            monkeypatch.setenv("VIDU_BASE_URL", emu.base_url + "/")
            async with vidu.ViduClient() as client:
                assert client.base_url == emu.base_url
                credits = await client.get_credits()
        assert credits.concurrency_limit == 5

    async def test_arguments_override_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Explicit arguments win over the environment."""
        monkeypatch.setenv("VIDU_API_KEY", "vda_not_this_one")
        monkeypatch.setenv("VIDU_BASE_URL", f"http://127.0.0.1:{free_port()}")
        async with running() as emu, vidu.ViduClient(KEY, base_url=emu.base_url) as client:
            await client.get_credits()

    async def test_default_base_url(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without VIDU_BASE_URL the global service is the default."""
        monkeypatch.delenv("VIDU_BASE_URL", raising=False)
        client = vidu.ViduClient(KEY)
        assert client.base_url == vidu.GLOBAL_BASE_URL
        await client.aclose()

    async def test_bearer_behind_a_prefix(self) -> None:
        """A reseller gateway: Bearer auth under /vidu serves every endpoint."""
        async with running(path_prefix="/vidu", auth_schemes=("Bearer",), created_time=30.0) as emu:
            assert emu.base_url.endswith("/vidu")
            async with client_for(emu, auth_scheme="Bearer") as client:
                task = await client.submit(XIAO)
                assert (await client.get_task(task.id)).id == task.id
                assert [t.id async for t in client.list_tasks()] == [task.id]
                await client.cancel(task.id)
                assert (await client.get_credits()).concurrency_limit == 5
                assert "Bearer" in repr(client)
            async with client_for(emu) as token_client:
                with pytest.raises(AuthenticationError) as caught:
                    await token_client.get_credits()
        assert caught.value.path == "/ent/v2/credits"

    async def test_callers_session_not_closed(self) -> None:
        """A caller's aiohttp session is used and left open by aclose()."""
        async with running() as emu, aiohttp.ClientSession() as session:
            async with client_for(emu, session=session) as client:
                await client.get_credits()
            assert client.closed
            assert not session.closed
            async with session.get(f"{emu.base_url}/ent/v2/credits") as response:
                assert response.status == 401  # the session itself carries no key
            assert emu.stats.requests["credits"] == 2

    async def test_closed_callers_session(self) -> None:
        """A caller's session that is already closed is a ClientClosedError, not an aiohttp error."""
        async with running() as emu:
            session = aiohttp.ClientSession()
            await session.close()
            async with client_for(emu, session=session) as client:
                with pytest.raises(ClientClosedError):
                    await client.get_credits()

    async def test_aclose_idempotent(self) -> None:
        """aclose() may be called any number of times, inside or after `async with`."""
        async with running() as emu:
            async with client_for(emu) as client:
                await client.get_credits()
                await client.aclose()
                await client.aclose()
            await client.aclose()
            assert client.closed

    async def test_unclosed_client_warns(self) -> None:
        """A client that sent a request and was never closed warns with ResourceWarning when collected."""
        async with running() as emu, aiohttp.ClientSession() as session:
            client = client_for(emu, session=session)
            await client.get_credits()
            # The client sits in reference cycles: only a collection finalizes it, inside the block.
            with pytest.warns(ResourceWarning, match="unclosed"):  # noqa: PT031
                del client
                gc.collect()


# --- local media -------------------------------------------------------------------------------------


class TestLocalMedia:
    """Paths are read, checked and sent as data URIs; bad files fail before anything is sent."""

    async def test_png_path_sent_as_data_uri(self, tmp_path: Path) -> None:
        """A 256x256 PNG on disk arrives as `data:image/png;base64,` with exactly the file's bytes."""
        png = png_bytes(256, 256)
        path = tmp_path / "ming.png"
        path.write_bytes(png)
        async with connected() as (emu, client):
            subject_task = await client.submit(request(subjects=[vidu.Subject(name="Ming", images=[path])]))
            flat_task = await client.submit(
                vidu.Reference2Video(model="viduq2", images=[path], prompt="A cook.", duration=5)
            )
        for sent in (
            emu.tasks[subject_task.id].request.subjects[0].images[0],
            emu.tasks[flat_task.id].request.images[0],
        ):
            assert isinstance(sent, str)
            head, _, data = sent.partition(",")
            assert head == "data:image/png;base64"
            assert base64.b64decode(data) == png

    async def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file fails with RequestValidationError naming the subject, the field and the file."""
        missing = tmp_path / "nowhere.png"
        async with connected() as (emu, client):
            with pytest.raises(RequestValidationError) as caught:
                await client.submit(request(subjects=[vidu.Subject(name="Ming", images=[missing])]))
            assert emu.stats.requests["create"] == 0
        text = str(caught.value)
        assert "Ming" in text
        assert "nowhere.png" in text
        assert caught.value.fields == ("subjects[0].images[0]",)

    async def test_too_small_image(self, tmp_path: Path) -> None:
        """An image under 128x128 fails with RequestValidationError naming the subject and the file."""
        small = tmp_path / "tiny.png"
        small.write_bytes(png_bytes(64, 64))
        async with connected() as (emu, client):
            with pytest.raises(RequestValidationError) as caught:
                await client.submit(
                    request(subjects=[vidu.Subject(name="Hong", images=[small])], prompt="@Hong cooks.")
                )
            assert emu.stats.requests["create"] == 0
        text = str(caught.value)
        assert "Hong" in text
        assert "tiny.png" in text
        assert "128" in text

    async def test_not_an_image(self, tmp_path: Path) -> None:
        """A file that is not an image fails before sending, whatever its extension."""
        fake = tmp_path / "fake.png"
        fake.write_bytes(b"this is text, not a PNG" * 10)
        async with connected() as (emu, client):
            with pytest.raises(RequestValidationError, match=r"fake\.png"):
                await client.submit(vidu.Reference2Video(model="viduq2", images=[fake], prompt="A cook."))
            assert emu.stats.requests["create"] == 0


# --- retries (basic) ---------------------------------------------------------------------------------


class TestRetries:
    """The one retry layer, basic cases (more in the retry tests)."""

    async def test_get_500_once(self) -> None:
        """A GET answered 500 once then fine succeeds on its second attempt."""
        retry = attrs.evolve(QUICK, attempts=2)
        async with connected() as (emu, _), client_for(emu, retry=retry) as client:
            task = await client.submit(request())
            emu.inject("get", "server_error")
            read = await client.get_task(task.id)
            assert emu.stats.requests["get"] == 2
            assert emu.stats.faults["server_error"] == 1
        assert read.id == task.id

    async def test_get_connection_drop(self) -> None:
        """A GET whose connection drops without an answer is sent again."""
        async with connected() as (emu, client):
            task = await client.submit(request())
            emu.inject("get", "drop")
            read = await client.get_task(task.id)
            assert emu.stats.requests["get"] == 2
            assert emu.stats.faults["drop"] == 1
        assert read.id == task.id

    async def test_create_commit_then_drop_is_adopted(self) -> None:
        """A create that made a task but lost its answer is found by fingerprint and adopted, not resent."""
        async with connected() as (emu, client):
            emu.inject("create", "commit_then_drop")
            task = await client.submit(request())
            assert emu.stats.requests["create"] == 1
            assert emu.stats.requests["list"] >= 1
        assert emu.stats.tasks_created == 1
        assert FINGERPRINT.fullmatch(task.payload)
        assert emu.stats.tasks_by_payload[task.payload] == 1
        assert list(emu.tasks) == [task.id]

    async def test_create_500_after_commit_is_adopted(self) -> None:
        """A create answered 500 after the task was made is adopted the same way."""
        async with connected() as (emu, client):
            emu.inject("create", "server_error_after_commit")
            task = await client.submit(request())
        assert emu.stats.tasks_created == 1
        assert list(emu.tasks) == [task.id]

    async def test_create_dropped_before_commit_is_resent(self) -> None:
        """A create dropped before any task was made is proven absent and sent again: one task."""
        async with connected() as (emu, client):
            emu.inject("create", "drop")
            task = await client.submit(request())
            assert emu.stats.requests["create"] == 2
        assert emu.stats.tasks_created == 1
        assert emu.stats.tasks_by_payload[task.payload] == 1

    async def test_create_with_reused_payload_not_confused(self) -> None:
        """A lost create is never settled by an older task that merely shares the caller's payload.

        Callers' payloads need not be unique (a job type, a user id). Here the second create is
        dropped before it reaches the service; the task list shows only the first task with that
        payload, which is not the one asked for, so it must not be adopted.
        """
        async with connected(created_time=30.0) as (emu, client):
            first = await client.submit(request(payload="job-7"))
            emu.inject("create", "drop")
            second = await client.submit(request(payload="job-7", prompt="@Ming dances."))
        assert emu.stats.tasks_created == 2
        assert second.id != first.id
        assert emu.tasks[second.id].request.prompt == "@Ming dances."

    async def test_create_with_callers_payload_adopted(self) -> None:
        """The caller's own payload serves as the fingerprint when it is unique."""
        async with connected() as (emu, client):
            emu.inject("create", "commit_then_drop")
            task = await client.submit(request(payload="job-7"))
        assert task.payload == "job-7"
        assert emu.stats.tasks_by_payload == {"job-7": 1}
