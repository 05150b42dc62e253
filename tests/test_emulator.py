"""The emulator over real HTTP: endpoints, auth, error bodies, scheduling, faults, downloads, callbacks."""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from conftest import load_fixture
from limits import LIMITS, UNKNOWN_MODEL

import vidu_async as vidu
from vidu_async import _signing
from vidu_async.emulator import CallbackConfig, Emulator, EmulatorConfig, FaultConfig
from vidu_async.exceptions import BadRequestError

TRACE = re.compile(r"^[0-9a-f]{32}$")
JSON = {"Content-Type": "application/json"}
FAST: Any = {"created_time": 0.01, "processing_time": 0.05}


def body(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": "viduq3",
        "subjects": [{"name": "Ming", "images": ["https://example.com/ming.png"]}],
        "prompt": "@Ming cooks hot pot.",
    }
    out.update(changes)
    return out


@asynccontextmanager
async def running(**config: Any) -> AsyncIterator[tuple[Emulator, aiohttp.ClientSession]]:
    """An emulator and a raw client session authorised for it."""
    async with (
        Emulator(EmulatorConfig(**{**FAST, **config})) as emu,
        aiohttp.ClientSession(headers={"Authorization": f"Token {emu.api_key}"}) as session,
    ):
        yield emu, session


async def create(emu: Emulator, session: aiohttp.ClientSession, **changes: Any) -> dict[str, Any]:
    async with session.post(f"{emu.base_url}/ent/v2/reference2video", json=body(**changes)) as response:
        assert response.status == 200, await response.text()
        data: dict[str, Any] = await response.json()
        return data


async def get_json(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with session.get(url, **kwargs) as response:
        return response.status, await response.json()


async def post(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with session.post(url, **kwargs) as response:
        return response.status, await response.json()


def assert_error(data: Any, status: int, reason: str) -> None:
    assert data["code"] == status
    assert data["reason"] == reason
    assert isinstance(data["message"], str)
    assert TRACE.match(data["metadata"]["trace_id"])


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Wait (bounded) until ``condition()`` holds; polls the live state, never sleeps a fixed time."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - polling live state under a deadline is the intent
            await asyncio.sleep(0.005)


class TestCreate:
    """POST /ent/v2/reference2video."""

    async def test_echo(self) -> None:
        """The answer echoes the request with defaults, a numeric id, credits and a nanosecond created_at."""
        async with running() as (emu, session):
            data = await create(emu, session, payload="job-42", watermark=True)
        assert re.fullmatch(r"\d{18,19}", data["task_id"])
        assert data["state"] == "created"
        assert data["payload"] == "job-42"
        assert (data["duration"], data["resolution"], data["credits"], data["audio"]) == (5, "720p", 25, True)
        assert data["seed"] > 0
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", data["created_at"])
        assert set(data) >= {
            "model",
            "prompt",
            "images",
            "aspect_ratio",
            "movement_amplitude",
            "bgm",
            "audio_type",
            "off_peak",
            "watermark",
        }
        assert emu.stats.tasks_by_payload["job-42"] == 1

    async def test_wrong_data_uri_label_accepted(self) -> None:
        """A data URI labelled with the wrong image type is accepted, like the real service."""
        png = load_png()
        async with running() as (emu, session):
            await create(
                emu, session, subjects=[{"name": "Ming", "images": [f"data:image/jpeg;base64,{png}"]}]
            )

    @pytest.mark.parametrize(
        ("payload", "reason", "message"),
        [
            (b"{not json", "BadRequest", "bad request"),
            (b"[1]", "BadRequest", "bad request"),
            (None, "FieldUnwanted", "unwanted field: colour, size"),
            ({"model": "viduq3"}, "FieldLacking", "field is missing or empty: prompt, images"),
        ],
    )
    async def test_bad_bodies(self, payload: Any, reason: str, message: str) -> None:
        """Broken JSON and invalid requests answer 400 with Vidu's reason and message template."""
        data_kwargs = (
            {"data": payload} if isinstance(payload, bytes) else {"json": payload or body(colour=1, size=2)}
        )
        async with running() as (emu, session):
            status, data = await post(session, f"{emu.base_url}/ent/v2/reference2video", **data_kwargs)
        assert status == 400
        assert_error(data, 400, reason)
        assert data["message"] == message

    async def test_priority_of_reasons(self) -> None:
        """FieldUnwanted wins over FieldInvalid when both occur."""
        async with running() as (emu, session):
            _, data = await post(
                session, f"{emu.base_url}/ent/v2/reference2video", json=body(duration=99, colour="red")
            )
        assert data["reason"] == "FieldUnwanted"

    async def test_body_too_large(self) -> None:
        """A body over 20 MiB is a 400 BadRequest."""
        huge = b'{"prompt": "' + b"x" * (20 * 1024 * 1024) + b'"}'
        async with running() as (emu, session):
            status, data = await post(
                session, f"{emu.base_url}/ent/v2/reference2video", data=io.BytesIO(huge)
            )
        assert status == 400
        assert data["message"] == "request body too large"

    async def test_image_download_failure(self) -> None:
        """An image on a `.invalid` host cannot be fetched: ImageDownloadFailure."""
        async with running() as (emu, session):
            bad = body(subjects=[{"name": "Ming", "images": ["https://cdn.example.invalid/a.png"]}])
            async with session.post(f"{emu.base_url}/ent/v2/reference2video", json=bad) as response:
                status, data = response.status, await response.json()
        assert status == 400
        assert_error(data, 400, "ImageDownloadFailure")

    @pytest.mark.parametrize("status", [400, 402])
    async def test_credit_insufficient(self, status: int) -> None:
        """Out of credits: 400 with an int code, or the observed 402 with a string code."""
        async with running(credits=30, credit_insufficient_status=status) as (emu, session):
            await create(emu, session)
            async with session.post(f"{emu.base_url}/ent/v2/reference2video", json=body()) as response:
                got, data = response.status, await response.json()
        assert got == status
        assert data["reason"] == "CreditInsufficient"
        if status == 402:
            fixture = load_fixture("error-credit-insufficient-402-string-code.json")
            assert data["code"] == fixture["code"] == "CreditInsufficient"
            assert set(data) == set(fixture)
        else:
            assert_error(data, 400, "CreditInsufficient")

    async def test_queue_cap(self) -> None:
        """Beyond concurrency + max_queue unfinished tasks, 429 QuotaExceeded."""
        async with running(concurrency=1, max_queue=0, processing_time=5.0) as (emu, session):
            await create(emu, session)
            async with session.post(f"{emu.base_url}/ent/v2/reference2video", json=body()) as response:
                assert response.status == 429
                assert_error(await response.json(), 429, "QuotaExceeded")


def load_png() -> str:
    """A 128×128 PNG, base64: the smallest image the rules accept."""
    import base64
    import struct
    import zlib

    raw = b"".join(b"\x00" + b"\x00\x00\x00" * 128 for _ in range(128))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 128, 128, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return base64.b64encode(png).decode()


class TestAuth:
    """The Authorization header and the path prefix."""

    @pytest.mark.parametrize("header", [None, "Token wrong", "Basic vda_emulator_key", "vda_emulator_key"])
    async def test_refused(self, header: str | None) -> None:
        """A missing or wrong key, or an unknown scheme, is 401 Unauthorized."""
        async with running() as (emu, _), aiohttp.ClientSession() as session:
            headers = {"Authorization": header} if header else {}
            status, data = await get_json(session, f"{emu.base_url}/ent/v2/credits", headers=headers)
        assert status == 401
        assert_error(data, 401, "Unauthorized")

    @pytest.mark.parametrize("scheme", ["Token", "Bearer"])
    async def test_schemes(self, scheme: str) -> None:
        """Token (official) and Bearer (resellers) both work."""
        async with running() as (emu, _), aiohttp.ClientSession() as session:
            headers = {"Authorization": f"{scheme} {emu.api_key}"}
            status, _ = await get_json(session, f"{emu.base_url}/ent/v2/credits", headers=headers)
        assert status == 200

    async def test_path_prefix(self) -> None:
        """With a prefix, routes live under it and the base URL carries it."""
        async with running(path_prefix="/vidu") as (emu, session):
            assert emu.base_url.endswith("/vidu")
            data = await create(emu, session)
            assert data["state"] == "created"
            status, missing = await get_json(session, f"{emu.origin}/ent/v2/credits")
        assert status == 404
        assert_error(missing, 404, "NotFound")

    async def test_organizations(self) -> None:
        """Extra keys belong to their own organization: separate tasks and credits."""
        async with running(extra_keys={"vda_other": "other"}) as (emu, session):
            task = await create(emu, session)
            other = {"Authorization": "Token vda_other"}
            status, data = await get_json(
                session, f"{emu.base_url}/ent/v2/tasks/{task['task_id']}/creations", headers=other
            )
            assert (status, data["reason"]) == (404, "TaskNotFound")

    async def test_unknown_route(self) -> None:
        """An unknown route answers 404 NotFound in Vidu's error shape."""
        async with running() as (emu, session):
            status, data = await get_json(session, f"{emu.base_url}/ent/v2/nothing")
        assert status == 404
        assert_error(data, 404, "NotFound")


class TestQueryAndCancel:
    """GET …/creations and POST …/cancel."""

    async def test_lifecycle_and_creations(self) -> None:
        """A task ends success with one creation: links, cover, watermark and video info."""
        async with running() as (emu, session):
            task = await create(emu, session, watermark=True, payload="p")
            await emu.wait_idle()
            status, data = await get_json(session, f"{emu.base_url}/ent/v2/tasks/{task['task_id']}/creations")
        assert status == 200
        assert (data["id"], data["state"], data["err_code"], data["credits"]) == (
            task["task_id"],
            "success",
            "",
            25,
        )
        assert data["payload"] == "p"
        [creation] = data["creations"]
        assert creation["url"].startswith(emu.base_url + "/files/")
        assert {"cover_url", "watermarked_url"} <= set(creation)
        assert creation["video"] == {"duration": 5.0, "fps": 24, "resolution": {"width": 1280, "height": 720}}

    async def test_in_progress_and_no_id(self) -> None:
        """Before success there are no creations; query_includes_id=False drops `id` like the official example."""
        async with running(query_includes_id=False, processing_time=5.0) as (emu, session):
            task = await create(emu, session)
            _, data = await get_json(session, f"{emu.base_url}/ent/v2/tasks/{task['task_id']}/creations")
        assert "id" not in data
        assert data["state"] in ("created", "queueing", "processing")
        assert data["creations"] == []

    async def test_unknown_task(self) -> None:
        """An unknown id is 404 TaskNotFound."""
        async with running() as (emu, session):
            status, data = await get_json(session, f"{emu.base_url}/ent/v2/tasks/123/creations")
        assert status == 404
        assert_error(data, 404, "TaskNotFound")

    @pytest.mark.parametrize("payload", [None, {}, "id"])
    async def test_cancel_queueing(self, payload: Any) -> None:
        """A waiting task cancels with {} (any body form), ends failed UserCancelled and is refunded."""
        async with running(concurrency=1, processing_time=5.0) as (emu, session):
            await create(emu, session)
            task = await create(emu, session)
            kwargs: dict[str, Any] = {}
            if payload == "id":
                kwargs["json"] = {"id": task["task_id"]}
            elif payload is not None:
                kwargs["json"] = payload
            url = f"{emu.base_url}/ent/v2/tasks/{task['task_id']}/cancel"
            async with session.post(url, **kwargs) as response:
                assert (response.status, await response.json()) == (200, {})
            _, data = await get_json(session, f"{emu.base_url}/ent/v2/tasks/{task['task_id']}/creations")
            _, credits = await get_json(session, f"{emu.base_url}/ent/v2/credits")
        assert (data["state"], data["err_code"], data["credits"]) == ("failed", "UserCancelled", 0)
        assert credits["remains"][0]["credit_remain"] == 1_000_000 - 25

    async def test_cancel_refused_when_scheduled(self) -> None:
        """A processing task cannot be cancelled: the documented 400 body."""
        async with running(processing_time=5.0) as (emu, session):
            task = await create(emu, session)
            await until(lambda: emu.tasks[task["task_id"]].state == "processing")
            async with session.post(
                f"{emu.base_url}/ent/v2/tasks/{task['task_id']}/cancel", json={}
            ) as response:
                status, data = response.status, await response.json()
            async with session.post(f"{emu.base_url}/ent/v2/tasks/9/cancel") as response:
                missing = response.status, (await response.json())["reason"]
        documented = load_fixture("error-cancel-not-allowed.json")
        assert status == 400
        assert_error(data, 400, "BadRequest")
        assert data["message"] == documented["message"]
        assert missing == (404, "TaskNotFound")


class TestScheduling:
    """Per-organization concurrency with a FIFO queue."""

    async def test_concurrency_two_five_tasks(self) -> None:
        """Five tasks on two slots: at most two processing, started in submission order."""
        async with running(concurrency=2, processing_time=0.1) as (emu, session):
            ids = [(await create(emu, session))["task_id"] for _ in range(5)]
            _, credits = await get_json(session, f"{emu.base_url}/ent/v2/credits")
            await emu.wait_idle()
        assert credits["remains"][0]["concurrency_limit"] == 2
        assert emu.stats.max_processing == 2
        assert emu.stats.max_in_flight == 5
        tasks = [emu.tasks[i] for i in ids]
        starts = [t.started_at for t in tasks]
        assert None not in starts
        assert starts == sorted(s or 0.0 for s in starts)
        assert all(t.state == "success" for t in tasks)
        for task in tasks[2:]:
            assert task.started_at in {t.finished_at for t in tasks}


class TestList:
    """GET /ent/v2/tasks."""

    async def test_paging_over_a_hundred(self) -> None:
        """130 tasks page out newest first, 100 then 30, with either spelling of the paging keys."""
        async with running(processing_time=60.0) as (emu, session):
            ids = [(await create(emu, session, payload=str(i)))["task_id"] for i in range(130)]
            url = f"{emu.base_url}/ent/v2/tasks"
            _, first = await get_json(session, url, params={"paper.pagesz": "100"})
            _, second = await get_json(
                session, url, params={"pager.pagesz": "100", "pager.page_token": first["next_page_token"]}
            )
            _, numbered = await get_json(session, url, params={"paper.pagesz": "100", "paper.page": "1"})
            _, default = await get_json(session, url)
        assert [t["id"] for t in first["tasks"] + second["tasks"]] == ids[::-1]
        assert second["next_page_token"] == ""
        assert numbered["tasks"] == second["tasks"]
        assert len(default["tasks"]) == 10
        row = first["tasks"][0]
        assert set(row) >= {
            "id",
            "key_id",
            "model",
            "prompt",
            "images",
            "duration",
            "resolution",
            "aspect_ratio",
            "creations",
            "state",
            "err_code",
            "credits",
            "payload",
            "created_at",
        }

    async def test_filters(self) -> None:
        """task_ids (repeated or comma-separated), states, window and resolutions filter."""
        async with running(concurrency=1, processing_time=60.0) as (emu, session):
            a = (await create(emu, session))["task_id"]
            b = (await create(emu, session, resolution="1080p"))["task_id"]
            c = (await create(emu, session))["task_id"]
            await until(lambda: emu.tasks[c].state == "queueing")
            url = f"{emu.base_url}/ent/v2/tasks"

            async def ids(params: Any) -> list[str]:
                status, data = await get_json(session, url, params=params)
                assert status == 200, data
                return [t["id"] for t in data["tasks"]]

            assert await ids([("task_ids", a), ("task_ids", c)]) == [c, a]
            assert await ids({"task_ids": f"{a},{b}"}) == [b, a]
            assert await ids([("states", "queueing")]) == [c, b]
            assert await ids({"resolutions": "1080p"}) == [b]
            assert await ids({"model_versions": "q3"}) == [c, b, a]
            assert await ids({"created_at.from": "2099-01-01T00:00:00Z"}) == []
            assert await ids({"created_at.to": "2000-01-01T00:00:00.123456789Z"}) == []

    @pytest.mark.parametrize("size", ["0", "101"])
    async def test_page_size_out_of_range(self, size: str) -> None:
        """Page sizes outside 1..100 are 400 PageSizeOutOfRange."""
        async with running() as (emu, session):
            status, data = await get_json(
                session, f"{emu.base_url}/ent/v2/tasks", params={"paper.pagesz": size}
            )
        assert status == 400
        assert_error(data, 400, "PageSizeOutOfRange")

    async def test_disabled_and_omitting_state(self) -> None:
        """list_disabled answers 404; list_omits_state strips state, err_code and credits."""
        async with running(faults=FaultConfig(list_disabled=True)) as (emu, session):
            status, data = await get_json(session, f"{emu.base_url}/ent/v2/tasks")
        assert status == 404
        assert_error(data, 404, "NotFound")
        async with running(faults=FaultConfig(list_omits_state=True)) as (emu, session):
            await create(emu, session)
            _, data = await get_json(session, f"{emu.base_url}/ent/v2/tasks")
        assert not {"state", "err_code", "credits"} & set(data["tasks"][0])


class TestCreditsEndpoint:
    """GET /ent/v2/credits."""

    async def test_shape_and_accounting(self) -> None:
        """remains (and packages with show_detail) reflect charges and refunds of failed tasks."""
        faults = FaultConfig(task_failure=1.0)
        async with running(faults=faults) as (emu, session):
            url = f"{emu.base_url}/ent/v2/credits"
            _, before = await get_json(session, url, params={"show_detail": "false"})
            task = await create(emu, session, resolution="1080p")
            _, during = await get_json(session, url, params={"show_detail": "true"})
            await emu.wait_idle()
            _, after = await get_json(session, url)
            _, failed = await get_json(session, f"{emu.base_url}/ent/v2/tasks/{task['task_id']}/creations")
        assert "packages" not in before
        assert set(before["remains"][0]) == {
            "type",
            "credit_remain",
            "concurrency_limit",
            "current_concurrency",
            "queue_count",
        }
        assert during["remains"][0]["credit_remain"] == before["remains"][0]["credit_remain"] - 40
        assert during["packages"][0]["credit_remain"] == during["remains"][0]["credit_remain"]
        assert after["remains"][0]["credit_remain"] == before["remains"][0]["credit_remain"]
        assert (failed["state"], failed["err_code"], failed["credits"]) == (
            "failed",
            "CreationPolicyViolation",
            0,
        )


class TestDownloads:
    """The signed, expiring links creations point at."""

    async def test_full_range_head_and_tampering(self) -> None:
        """The real MP4 is served whole, by Range, by HEAD; a tampered link is 403, an unknown one 404."""
        async with running() as (emu, session):
            task = await create(emu, session)
            await emu.wait_idle()
            _, data = await get_json(session, f"{emu.base_url}/ent/v2/tasks/{task['task_id']}/creations")
            url = data["creations"][0]["url"]
            async with session.get(url) as response:
                whole = await response.read()
                assert response.status == 200
                assert response.headers["Content-Type"] == "video/mp4"
                assert int(response.headers["Content-Length"]) == len(whole)
            async with session.get(url, headers={"Range": "bytes=4-11"}) as response:
                assert response.status == 206
                assert response.headers["Content-Range"] == f"bytes 4-11/{len(whole)}"
                assert await response.read() == whole[4:12] == b"ftypisom"
            async with session.get(url, headers={"Range": "bytes=100-"}) as response:
                assert (response.status, await response.read()) == (206, whole[100:])
            async with session.get(url, headers={"Range": f"bytes={len(whole)}-"}) as response:
                assert response.status == 416
            async with session.head(url) as response:
                assert (response.status, response.headers["Content-Length"]) == (200, str(len(whole)))
            async with session.get(data["creations"][0]["cover_url"]) as response:
                assert (await response.read())[:2] == b"\xff\xd8"
            async with session.get(url.replace("Signature=", "Signature=0")) as response:
                assert_error(await response.json(), 403, "Forbidden")
            async with session.get(url.replace(task["task_id"], "1")) as response:
                assert response.status == 404
        assert whole[4:8] == b"ftyp"
        assert emu.stats.downloads == 5

    async def test_throttled(self) -> None:
        """``download_bytes_per_second`` serves the same bytes, a small chunk at a time (whole and
        by Range), with the same headers; a HEAD is answered at once."""
        async with running() as (emu, session):
            task = await create(emu, session)
            await emu.wait_idle()
            _, data = await get_json(session, f"{emu.base_url}/ent/v2/tasks/{task['task_id']}/creations")
            async with session.get(data["creations"][0]["url"]) as response:
                whole = await response.read()
        async with running(download_bytes_per_second=1e6) as (emu, session):
            task = await create(emu, session)
            await emu.wait_idle()
            _, data = await get_json(session, f"{emu.base_url}/ent/v2/tasks/{task['task_id']}/creations")
            url = data["creations"][0]["url"]
            async with session.get(url) as response:
                chunks = [chunk async for chunk in response.content.iter_any()]
                assert int(response.headers["Content-Length"]) == len(whole)
            async with session.get(url, headers={"Range": "bytes=100-"}) as response:
                assert (response.status, await response.read()) == (206, whole[100:])
            async with session.head(url) as response:
                assert (response.status, response.headers["Content-Length"]) == (200, str(len(whole)))
        assert b"".join(chunks) == whole
        assert max(map(len, chunks)) <= 512

    async def test_expired(self) -> None:
        """With a zero ttl every link has expired: 403."""
        async with running(url_ttl=0.0) as (emu, session):
            task = await create(emu, session)
            await emu.wait_idle()
            _, data = await get_json(session, f"{emu.base_url}/ent/v2/tasks/{task['task_id']}/creations")
            async with session.get(data["creations"][0]["url"]) as response:
                status, error = response.status, await response.json()
        assert status == 403
        assert "expired" in error["message"]


class TestFaults:
    """Injected and rate-based faults."""

    @pytest.mark.parametrize(
        ("fault", "status", "reason"),
        [
            ("rate_limit", 429, "TooManyRequests"),
            ("throttle", 429, "SystemThrottling"),
            ("quota_exceeded", 429, "QuotaExceeded"),
            ("server_error", 500, "InternalServiceFailure"),
            ("operation_in_process", 400, "OperationInProcess"),
        ],
    )
    async def test_refusals_do_nothing(self, fault: str, status: int, reason: str) -> None:
        """Refusing faults answer Vidu's error and create nothing; the next request is normal."""
        async with running() as (emu, session):
            emu.inject("create", fault)
            async with session.post(f"{emu.base_url}/ent/v2/reference2video", json=body()) as response:
                got, data, headers = response.status, await response.json(), response.headers
            assert emu.stats.tasks_created == 0
            await create(emu, session)
        assert got == status
        assert_error(data, status, reason)
        assert ("Retry-After" in headers) == (status == 429)
        if status == 429:
            assert headers["Retry-After"] == "1"
        assert emu.stats.faults[fault] == 1

    async def test_retry_after_http_date_and_none(self) -> None:
        """Retry-After can be an HTTP-date, or absent."""
        faults = FaultConfig(rate_limit=1.0, retry_after=2.0, retry_after_http_date=True)
        async with (
            running(faults=faults) as (emu, session),
            session.get(f"{emu.base_url}/ent/v2/credits") as response,
        ):
            moment = parsedate_to_datetime(response.headers["Retry-After"])
        assert 0 < (moment - datetime.now(UTC)).total_seconds() <= 3.5
        async with running(faults=FaultConfig(throttle=1.0, retry_after=None)) as (emu, session):
            response = await session.get(f"{emu.base_url}/ent/v2/credits")
            response.release()
        assert response.status == 429
        assert "Retry-After" not in response.headers

    async def test_rates_are_seeded(self) -> None:
        """Rate faults follow the seed: the same config gives the same sequence of statuses."""

        async def statuses() -> list[int]:
            faults = FaultConfig(seed=3, rate_limit=0.3, server_error=0.2)
            async with running(faults=faults) as (emu, session):
                out = []
                for _ in range(30):
                    async with session.get(f"{emu.base_url}/ent/v2/credits") as response:
                        out.append(response.status)
                return out

        first = await statuses()
        assert first == await statuses()
        assert {200, 429, 500} <= set(first)

    async def test_endpoints_scope(self) -> None:
        """Rate faults only hit the endpoints named."""
        faults = FaultConfig(server_error=1.0, endpoints=frozenset({"get"}))
        async with running(faults=faults) as (emu, session):
            task = await create(emu, session)
            status, _ = await get_json(session, f"{emu.base_url}/ent/v2/tasks/{task['task_id']}/creations")
        assert status == 500

    async def test_server_error_after_commit(self) -> None:
        """The task is created, yet the client sees a 500."""
        async with running() as (emu, session):
            emu.inject("create", "server_error_after_commit")
            async with session.post(
                f"{emu.base_url}/ent/v2/reference2video", json=body(payload="fp")
            ) as response:
                assert response.status == 500
        assert emu.stats.tasks_by_payload["fp"] == 1

    async def test_commit_then_drop(self) -> None:
        """The task is created but the connection closes with no answer."""
        async with running() as (emu, session):
            emu.inject("create", "commit_then_drop")
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await session.post(f"{emu.base_url}/ent/v2/reference2video", json=body(payload="fp"))
            assert emu.stats.tasks_by_payload["fp"] == 1
            await create(emu, session)  # the server is fine afterwards

    async def test_drop(self) -> None:
        """A drop closes the connection and does nothing."""
        async with running() as (emu, session):
            emu.inject("create", "drop")
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await session.post(f"{emu.base_url}/ent/v2/reference2video", json=body())
        assert emu.stats.tasks_created == 0
        assert emu.stats.faults["drop"] == 1

    async def test_slow(self) -> None:
        """A slow answer arrives after slow_delay (a client timeout shorter than it fires)."""
        async with running(faults=FaultConfig(slow_delay=0.3)) as (emu, session):
            emu.inject("credits", "slow")
            with pytest.raises(TimeoutError):
                await session.get(f"{emu.base_url}/ent/v2/credits", timeout=aiohttp.ClientTimeout(total=0.05))
            emu.inject("credits", "slow")
            started = asyncio.get_running_loop().time()
            status, _ = await get_json(session, f"{emu.base_url}/ent/v2/credits")
        assert status == 200
        assert asyncio.get_running_loop().time() - started >= 0.3

    async def test_unknown_state(self) -> None:
        """A read may report a state the SDK does not know; the real state is unchanged."""
        async with running(faults=FaultConfig(unknown_state=1.0, unknown_state_value="paused")) as (
            emu,
            session,
        ):
            task = await create(emu, session)
            _, data = await get_json(session, f"{emu.base_url}/ent/v2/tasks/{task['task_id']}/creations")
            _, listed = await get_json(session, f"{emu.base_url}/ent/v2/tasks")
        assert data["state"] == listed["tasks"][0]["state"] == "paused"
        assert emu.tasks[task["task_id"]].state != "paused"
        async with running() as (emu, session):
            task = await create(emu, session)
            emu.inject("get", "unknown_state")
            url = f"{emu.base_url}/ent/v2/tasks/{task['task_id']}/creations"
            states = [(await get_json(session, url))[1]["state"] for _ in range(2)]
        assert states[0] == "paused"
        assert states[1] != "paused"

    def test_inject_names_checked(self) -> None:
        """Unknown endpoints and faults are refused at once."""
        emu = Emulator()
        with pytest.raises(ValueError, match="endpoint"):
            emu.inject("nope", "drop")
        with pytest.raises(ValueError, match="fault"):
            emu.inject("create", "nope")


@asynccontextmanager
async def receiver(
    statuses: list[int] | None = None,
) -> AsyncIterator[tuple[str, list[web.Request], list[Any]]]:
    """A tiny callback receiver: records each request (and body), answers with ``statuses`` in turn, then 200."""
    seen: list[web.Request] = []
    bodies: list[Any] = []
    plan = list(statuses or [])

    async def handle(request: web.Request) -> web.Response:
        seen.append(request)
        bodies.append(await request.json())
        return web.Response(status=plan.pop(0) if plan else 200)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/hook?job=7", seen, bodies
    finally:
        await runner.cleanup()


def verify(request: web.Request, url: str, key: str) -> bool:
    names = request.headers["X-HMAC-SIGNED-HEADERS"].split(";")
    text = _signing.signing_string(
        request.method, url, request.headers["Date"], [(n, request.headers[n]) for n in names]
    )
    return _signing.sign(key, text) == request.headers["X-HMAC-SIGNATURE"]


class TestCallbacks:
    """Signed callbacks to callback_url."""

    def test_worked_vector(self) -> None:
        """The documented example reproduces through _signing."""
        vector = load_fixture("callback-signed.json")
        headers = vector["headers"]
        made = _signing.signed_headers(
            key=vector["api_key"], url=vector["url"], nonce=headers["x-request-nonce"], date=headers["Date"]
        )
        assert made["X-HMAC-SIGNATURE"] == headers["X-HMAC-SIGNATURE"]
        assert (
            _signing.signing_string(
                "POST",
                vector["url"],
                headers["Date"],
                [("Date", headers["Date"]), ("x-request-nonce", headers["x-request-nonce"])],
            )
            == vector["signing_string"]
        )

    async def test_processing_and_success_signed(self) -> None:
        """processing then success arrive, in the GET shape, signed with the creating key."""
        async with receiver() as (url, seen, bodies), running() as (emu, session):
            task = await create(emu, session, callback_url=url, payload="cb")
            await until(lambda: len(seen) == 2)
        # Deliveries run concurrently, so only the set is guaranteed, not the order.
        assert sorted(b["state"] for b in bodies) == ["processing", "success"]
        assert all(b["id"] == task["task_id"] and b["payload"] == "cb" for b in bodies)
        [success] = [b for b in bodies if b["state"] == "success"]
        assert success["creations"][0]["url"].startswith(emu.base_url)
        assert all(verify(r, url, emu.api_key) for r in seen)
        assert seen[0].headers["X-HMAC-ACCESS-KEY"] == "vidu"
        assert seen[0].path_qs == "/hook?job=7"
        assert emu.stats.callbacks_sent == 2

    async def test_failed_and_cancelled(self) -> None:
        """A cancelled task sends one failed callback."""
        async with (
            receiver() as (url, seen, bodies),
            running(concurrency=1, processing_time=5.0) as (emu, session),
        ):
            await create(emu, session)
            task = await create(emu, session, callback_url=url)
            async with session.post(f"{emu.base_url}/ent/v2/tasks/{task['task_id']}/cancel"):
                pass
            await until(lambda: len(seen) == 1)
        assert (bodies[0]["state"], bodies[0]["err_code"]) == ("failed", "UserCancelled")

    async def test_retries_terminal_on_500(self) -> None:
        """A success delivery answered 500 is retried; processing is not."""
        callbacks = CallbackConfig(retry_delay=0.01)
        async with (
            receiver([500, 500, 500]) as (url, _seen, bodies),
            running(callbacks=callbacks) as (emu, session),
        ):
            await create(emu, session, callback_url=url)
            await until(lambda: emu.stats.callbacks_sent == 1)
        # Whichever arrives first, processing is tried once and success until it gets its 200.
        assert sorted(b["state"] for b in bodies) == ["processing", "success", "success", "success"]
        assert bodies[-1]["state"] == "success"
        assert (emu.stats.callbacks_failed, emu.stats.callbacks_sent) == (3, 1)

    async def test_drop_duplicate_forge_reorder(self) -> None:
        """Delivery faults: dropped, duplicated, forged and reordered callbacks."""
        async with receiver() as (url, seen, bodies):
            async with running(callbacks=CallbackConfig(drop=1.0)) as (emu, session):
                await create(emu, session, callback_url=url)
                await until(lambda: emu.stats.callbacks_dropped == 2)
            assert seen == []
            async with running(callbacks=CallbackConfig(duplicate=1.0, forge=1.0)) as (emu, session):
                await create(emu, session, callback_url=url)
                await until(lambda: len(seen) == 4)
            assert sorted(b["state"] for b in bodies) == ["processing", "processing", "success", "success"]
            assert not any(verify(r, url, emu.api_key) for r in seen)
            assert emu.stats.callbacks_forged == 4
            seen.clear()
            bodies.clear()
            async with running(callbacks=CallbackConfig(reorder=True)) as (emu, session):
                await create(emu, session, callback_url=url)
                await until(lambda: len(seen) == 2)
            assert [b["state"] for b in bodies] == ["success", "processing"]

    async def test_disabled(self) -> None:
        """With callbacks disabled nothing is sent."""
        async with (
            receiver() as (url, seen, _),
            running(callbacks=CallbackConfig(enabled=False)) as (emu, session),
        ):
            await create(emu, session, callback_url=url)
            await emu.wait_idle()
        assert seen == []


class TestEmulatorLimits:
    """The shared limits table: the emulator accepts and refuses exactly what the table says."""

    async def test_every_row(self) -> None:
        """Every `ok` row answers 200; every other row 400 with its reason, naming its field.

        The table's unknown model is one this emulator is told it offers (``extra_models``): the
        SDK lets unknown names through, and the table checks the generic rules they then get.
        """
        wrong: list[str] = []
        async with running(extra_models=[UNKNOWN_MODEL]) as (emu, session):
            for row in LIMITS:
                data = io.BytesIO(json.dumps(row.body).encode())
                async with session.post(
                    f"{emu.base_url}/ent/v2/reference2video", data=data, headers=JSON
                ) as response:
                    status, data = response.status, await response.json()
                if row.ok and status != 200:
                    wrong.append(f"{row.id}: expected 200, got {status} {data}")
                elif not row.ok and (
                    status != 400
                    or data.get("reason") != row.reason
                    or row.field not in data.get("message", "")
                ):
                    wrong.append(
                        f"{row.id}: expected 400 {row.reason} naming {row.field}, got {status} {data}"
                    )
        assert wrong == []
        assert len(LIMITS) > 50


class TestEmulatorModels:
    """A model the service does not offer is refused, as Vidu refuses it; the SDK lets it through."""

    async def test_unknown_model_unavailable(self) -> None:
        """An unknown name answers 400 ModelUnavailable with the documented message; no task is made."""
        async with running() as (emu, session):
            async with session.post(
                f"{emu.base_url}/ent/v2/reference2video", json=body(model=UNKNOWN_MODEL), headers=JSON
            ) as response:
                status, data = response.status, await response.json()
            assert status == 400
            assert (data["reason"], data["message"]) == ("ModelUnavailable", "model unavailable")
            assert emu.stats.tasks_by_payload == {}

    async def test_body_problems_first(self) -> None:
        """A body that fails the generic checks names its field, whatever the model."""
        async with running() as (emu, session):
            async with session.post(
                f"{emu.base_url}/ent/v2/reference2video",
                json=body(model=UNKNOWN_MODEL, seed=-1),
                headers=JSON,
            ) as response:
                status, data = response.status, await response.json()
            assert (status, data["reason"]) == (400, "FieldInvalid")
            assert "seed" in data["message"]

    async def test_extra_models_accepted(self) -> None:
        """A name in ``extra_models`` is accepted and echoed."""
        async with running(extra_models=[UNKNOWN_MODEL]) as (emu, session):
            echo = await create(emu, session, model=UNKNOWN_MODEL)
            assert echo["model"] == UNKNOWN_MODEL

    async def test_client_error(self) -> None:
        """Through the SDK the refusal is a BadRequestError naming the reason, not retried."""
        async with running() as (emu, _), vidu.ViduClient(emu.api_key, base_url=emu.base_url) as client:
            request = vidu.Reference2Video(
                model=UNKNOWN_MODEL, images=["https://example.com/a.png"], prompt="x"
            )
            with pytest.raises(BadRequestError) as info:
                await client.submit(request)
            assert info.value.reason == "ModelUnavailable"
            assert emu.stats.requests.get("create", 0) == 1


class TestPublicSurface:
    """The package's exports and the emulator's handles."""

    def test_all_sorted_and_complete(self) -> None:
        """__all__ names the documented API."""
        import vidu_async.emulator as module

        # Sorted the way ruff's RUF022 sorts (constants, classes, functions), which ruff enforces.
        assert {
            "Emulator",
            "EmulatorConfig",
            "FaultConfig",
            "CallbackConfig",
            "EmulatorStats",
            "make_app",
        } <= set(module.__all__)

    async def test_handles(self) -> None:
        """base_url, api_key, repr and evolve work as documented."""
        config = attrs.evolve(EmulatorConfig(), api_key="vda_x", path_prefix="vidu/")
        async with Emulator(config) as emu:
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/vidu", emu.base_url)
            assert emu.api_key == "vda_x"
            assert "127.0.0.1" in repr(emu)
