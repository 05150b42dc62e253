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
    async with (
        Emulator(EmulatorConfig(concurrency=2)) as emu,
        vidu.ViduClient(emu.api_key, base_url=emu.base_url, auth_scheme="Bearer") as client,
    ):
        return await client.submit(
            {"model": "viduq2", "images": ["https://example.com/a.png"], "prompt": "hi"}
        )


def count(event: vidu.Event) -> None:
    if isinstance(event, vidu.RequestEvent):
        print(event.endpoint, event.status)
    elif isinstance(event, vidu.StateChangeEvent):
        print(event.task_id, event.new.is_terminal)


async def engine(requests: list[vidu.Reference2Video]) -> list[vidu.BatchResult]:
    poll = attrs.evolve(vidu.DEFAULT_POLL, min_interval=1.0)
    retry: vidu.RetryPolicy = attrs.evolve(vidu.DEFAULT_RETRY, attempts=3)
    async with vidu.ViduClient("key", poll=poll, retry=retry, max_in_flight=8, hooks=[count]) as client:
        task = await client.generate(requests[0], timeout=900, cancel_remote=True)
        async for update in client.watch(task.id):
            state: vidu.TaskState = update.state
            del state
        done: vidu.Task = await client.wait(task.id, timeout=60.0)
        del done
        results: list[vidu.BatchResult] = []
        async with client.generate_many(requests, max_in_flight=4, fail_fast=False, max_credits=100) as batch:
            async for result in batch:
                if result.ok and result.task is not None:
                    results.append(result)
                elif result.error is not None:
                    print(result.index, result.key, result.error)
        unfinished: list[tuple[int, str, str | None]] = batch.unfinished
        del unfinished
        return results


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


async def every_kind(image: Path) -> list[vidu.BatchResult]:
    """The kinds beside reference2video: each type, the JSON reader by endpoint, a mixed batch."""
    t2v = vidu.Text2Video(model="viduq3-turbo", prompt="A paper boat.", style="general", aspect_ratio="16:9")
    i2v = vidu.Img2Video(model="viduq3-pro", images=[image], audio=True, audio_type="all", is_rec=False)
    se2v = vidu.StartEnd2Video(model="viduq2-turbo", images=["https://example.com/a.png", b"\x89PNG..."])
    parsed = vidu.request_from_json(
        {"model": "viduq1", "images": ["https://e.com/a.png"]}, endpoint="img2video"
    )
    images: tuple[vidu.Media, ...] = i2v.images
    del images, parsed
    results: list[vidu.BatchResult] = []
    async with vidu.ViduClient("key") as client:
        task: vidu.Task = await client.generate(t2v)
        task = await client.submit(se2v)
        del task
        async with client.generate_many([t2v, ("i2v", i2v), se2v], journal="journal.sqlite") as batch:
            async for result in batch:
                results.append(result)
    return results


async def the_other_kinds(image: Path, clip: Path, line: bytes) -> list[vidu.Task]:
    """Every kind described field by field, the sync endpoints and their result types."""
    requests: list[vidu.Request] = [
        vidu.MultiFrame(
            model="viduq2-turbo",
            start_image=image,
            image_settings=[
                vidu.KeyFrame(key_image="https://e.com/1.png", prompt="turns", duration=3),
                vidu.KeyFrame(key_image=b"\x89PNG..."),
            ],
            wm_position="bottom_left",
        ),
        vidu.Template(template="hugging", images=[image], aspect_ratio="9:16", area="auto", bgm=True),
        vidu.TemplateStory(story="love_story", images=[image]),
        vidu.Extend(model="viduq2-pro", video_creation_id="123", images=[image], duration=4),
        vidu.Upscale(video_url=clip, upscale_resolution="4K"),
        vidu.LipSync(
            video_url="https://e.com/v.mp4", text="Hello there.", voice_id="v1", speed=1.2, volume=3
        ),
        vidu.LipSync(video_url=clip, audio_url=line, ref_photo_url=image),
        vidu.Image2Dance(image_url=image, video_url="https://e.com/dance.mp4"),
        vidu.Reference2Image(model="viduq2", prompt="A teapot.", images=[image], resolution="2K"),
        vidu.Text2Audio(model="audio1.0", prompt="Rain.", duration=6.5, seed=1),
        vidu.Timing2Audio(
            model="audio1.0", timing_prompts=[vidu.TimingPrompt(from_=0.0, to=2.5, prompt="a door creaks")]
        ),
        vidu.request_from_json(
            {"template": "hugging", "images": ["https://e.com/a.png"]}, endpoint="template"
        ),
    ]
    frames: tuple[vidu.KeyFrame, ...] = (
        requests[0].image_settings if isinstance(requests[0], vidu.MultiFrame) else ()
    )
    del frames
    tasks: list[vidu.Task] = []
    async with vidu.ViduClient("key") as client:
        for request in requests:
            tasks.append(await client.submit(request))
        tasks.append(
            await client.generate({"endpoint": "text2audio", "model": "audio1.0", "prompt": "Wind."})
        )
        speech: vidu.Speech = await client.text_to_speech("Hello.", voice_id="v1", speed=1.0, emotion="calm")
        voice: vidu.ClonedVoice = await client.clone_voice(line, voice_id="narrator_01", text="Hi.")
        ideas: vidu.PromptSuggestions = await client.recommend_prompts(image, types=["template"], count=3)
        first: vidu.PromptSuggestion = ideas.prompts[0]
        url: str = speech.file_url + voice.demo_audio + voice.voice_id + first.template + first.content
        state: vidu.TaskState = speech.state
        del url, state
    return tasks
