"""Exercises the public API under ``mypy --strict`` (never run, only type-checked).

If a public signature changes in a way that breaks callers, mypy fails here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import attrs

import vidu_async as vidu
from vidu_async import exceptions
from vidu_async.emulator import Emulator, EmulatorConfig


async def one_request() -> vidu.Task:
    request = vidu.Reference2Video(
        model="viduq3",
        subjects=[
            vidu.Subject(name="Ming", images=["https://example.com/ming.png", Path("hong.jpg")]),
            vidu.Subject(name="Hong", images=[b"\x89PNG..."]),
        ],
        prompt="@Ming and @Hong cook hot pot.",
        duration=5,
        resolution="720p",
        audio=True,
        audio_type="speech_only",
        payload="job-1",
    )
    timeouts: vidu.Timeouts = attrs.evolve(vidu.DEFAULT_TIMEOUTS, create=600.0)
    async with vidu.ViduClient("key", base_url=vidu.CHINA_BASE_URL, timeouts=timeouts) as client:
        task: vidu.Task = await client.submit(request)
        task = await client.get_task(task.id)
        state: vidu.TaskState = task.state
        terminal: bool = state.is_terminal
        credits_used: int | None = task.credits
        created: datetime | None = task.created_at
        urls: list[str] = [c.url for c in task.creations]
        del terminal, credits_used, created, urls
        await client.cancel(task.id)
        async for row in client.list_tasks(states=[vidu.TaskState.SUCCESS], created_from=datetime.now(UTC)):
            print(row.id)
        account: vidu.Credits = await client.get_credits(show_detail=True)
        limit: int | None = account.concurrency_limit
        del limit
        return task


async def from_json_body() -> vidu.Task:
    async with Emulator(EmulatorConfig(concurrency=2)) as emu:
        async with vidu.ViduClient(emu.api_key, base_url=emu.base_url, auth_scheme="Bearer") as client:
            return await client.submit({"model": "viduq2", "images": ["https://example.com/a.png"], "prompt": "hi"})


def errors(exc: Exception) -> str:
    if isinstance(exc, exceptions.RequestValidationError):
        return "; ".join(f"{p.field}: {p.message}" for p in exc.problems)
    if isinstance(exc, exceptions.RateLimitError):
        return f"retry after {exc.retry_after}"
    if isinstance(exc, exceptions.APIError):
        return f"{exc.status} {exc.reason} {exc.trace_id}"
    if isinstance(exc, exceptions.TaskFailedError):
        return exc.err_code
    if isinstance(exc, exceptions.WaitTimeoutError):
        return exc.task_id
    if isinstance(exc, exceptions.SubmitOutcomeUnknownError):
        return exc.fingerprint
    return str(exc)
