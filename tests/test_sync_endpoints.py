"""``text_to_speech``, ``clone_voice`` and ``recommend_prompts`` against the emulator.

Each returns its own result type; the billing two (``audio-tts``, ``audio-clone``) are creates to
the retry layer, so an answer lost after the service acted is ``SubmitOutcomeUnknownError`` and the
call is never sent again; prompt ideas are read-only and retried. A speech answered before its audio
is ready is waited for like a task (vidu-api-endpoints.md §16.2, §24).
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import attrs
import pytest
from aiohttp import web

import vidu_async as vidu
from vidu_async._sniff import sniff
from vidu_async.emulator import Emulator, EmulatorConfig, FaultConfig
from vidu_async.exceptions import APIError, RequestValidationError, SubmitOutcomeUnknownError

pytestmark = pytest.mark.anyio

RETRY = attrs.evolve(vidu.DEFAULT_RETRY, initial=0.01, maximum=0.05, reconcile_settle=0.05)
POLL = attrs.evolve(vidu.DEFAULT_POLL, first_check=0.02, min_interval=0.02, max_interval=0.1)


@asynccontextmanager
async def running(**config: Any) -> AsyncIterator[tuple[Emulator, vidu.ViduClient]]:
    settings: dict[str, Any] = {"created_time": 0.01, "processing_time": 0.05, **config}
    async with (
        Emulator(EmulatorConfig(**settings)) as emu,
        vidu.ViduClient(emu.api_key, base_url=emu.base_url, retry=RETRY, poll=POLL) as client,
    ):
        yield emu, client


async def fetch(url: str) -> tuple[bytes, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        return await response.read(), response.headers.get("Content-Type", "")


def wav() -> bytes:
    data = b"\x00\x00" * 8000 * 12  # 12 s: a voice sample must be 10 s to 5 min
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    body = (
        b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


class TestSpeech:
    async def test_speech_is_audio(self) -> None:
        async with running() as (emu, client):
            speech = await client.text_to_speech(
                "Your order has shipped.<#0.5#>Thank you!", voice_id="narrator", speed=1.2, payload="order-7"
            )
            assert isinstance(speech, vidu.Speech)
            assert speech.state is vidu.TaskState.SUCCESS
            assert speech.task_id
            assert speech.payload == "order-7"
            data, content_type = await fetch(speech.file_url)
        info = sniff(data[:64])
        assert info is not None
        assert info.kind == "audio"
        assert content_type.startswith("audio/")
        assert emu.stats.requests["audio-tts"] == 1

    async def test_invalid_text_is_not_sent(self) -> None:
        async with running() as (emu, client):
            with pytest.raises(RequestValidationError) as info:
                await client.text_to_speech("t" * 10_000, voice_id="narrator", pitch=13)
            assert set(info.value.fields) == {"text", "voice_setting_pitch"}
            assert emu.stats.requests["audio-tts"] == 0

    async def test_answer_lost_after_the_service_acted_is_not_resent(self) -> None:
        """audio-tts bills by the character: a lost answer is never sent again (§16, §24)."""
        async with running() as (emu, client):
            emu.inject("audio-tts", "commit_then_drop")
            with pytest.raises(SubmitOutcomeUnknownError, match="audio-tts bills"):
                await client.text_to_speech("Hello there.", voice_id="narrator")
            assert emu.stats.requests["audio-tts"] == 1

    async def test_refused_before_acting_is_retried(self) -> None:
        """A 429 means nothing was done: it is sent again, as any create would be."""
        async with running(faults=FaultConfig(retry_after=0.02)) as (emu, client):
            emu.inject("audio-tts", "rate_limit")
            speech = await client.text_to_speech("Hello there.", voice_id="narrator")
            assert speech.file_url
            assert emu.stats.requests["audio-tts"] == 2

    async def test_speech_not_ready_is_waited_for(self) -> None:
        """An answer without ``file_url`` (state ``queueing``) is followed as a task (§16.2, §23.2)."""
        gets: list[str] = []

        async def tts(request: web.Request) -> web.Response:
            return web.json_response({"task_id": "77", "state": "queueing", "credits": 1})

        async def creations(request: web.Request) -> web.Response:
            gets.append(request.match_info["task_id"])
            state = "success" if len(gets) > 1 else "processing"
            creations = (
                [{"id": "78", "url": "https://files.example.com/77.mp3"}] if state == "success" else []
            )
            return web.json_response({"id": "77", "state": state, "creations": creations})

        app = web.Application()
        app.router.add_post("/ent/v2/audio-tts", tts)
        app.router.add_get("/ent/v2/tasks/{task_id}/creations", creations)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with vidu.ViduClient("key", base_url=f"http://127.0.0.1:{port}", poll=POLL) as client:
                with anyio.fail_after(10):
                    speech = await client.text_to_speech("Hello there.", voice_id="narrator")
        finally:
            await runner.cleanup()
        assert speech.state is vidu.TaskState.SUCCESS
        assert speech.file_url == "https://files.example.com/77.mp3"
        assert gets[0] == "77"


class TestVoiceClone:
    async def test_clone_then_speak_with_it(self, tmp_path: Path) -> None:
        sample = tmp_path / "sample.wav"
        sample.write_bytes(wav())
        async with running() as (_, client):
            voice = await client.clone_voice(
                sample, voice_id="acme_narrator_01", text="This is how I sound now."
            )
            assert isinstance(voice, vidu.ClonedVoice)
            assert voice.voice_id == "acme_narrator_01"
            data, _ = await fetch(voice.demo_audio)
            info = sniff(data[:64])
            assert info is not None
            assert info.kind == "audio"
            speech = await client.text_to_speech("Now in my voice.", voice_id=voice.voice_id)
            assert speech.file_url

    async def test_duplicate_voice_refused(self) -> None:
        async with running() as (emu, client):
            await client.clone_voice("https://example.com/a.wav", voice_id="narrator_01", text="One.")
            with pytest.raises(APIError) as info:
                await client.clone_voice("https://example.com/b.wav", voice_id="narrator_01", text="Two.")
            assert "voice_id" in str(info.value)
            assert emu.stats.requests["audio-clone"] == 2

    async def test_image_as_the_sample_is_refused_before_sending(self, tmp_path: Path) -> None:
        picture = tmp_path / "sample.wav"
        picture.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
        async with running() as (emu, client):
            with pytest.raises(RequestValidationError, match="expected an audio file"):
                await client.clone_voice(picture, voice_id="narrator_02", text="Hi.")
            assert emu.stats.requests["audio-clone"] == 0


class TestPromptIdeas:
    async def test_ideas_per_type(self) -> None:
        async with running() as (_, client):
            ideas = await client.recommend_prompts(
                "https://example.com/couple.jpg", types=["template", "img2video"], count=3
            )
        assert isinstance(ideas, vidu.PromptSuggestions)
        assert ideas.id
        kinds = [idea.type for idea in ideas.prompts]
        assert kinds.count("template") == 3
        assert kinds.count("img2video") == 3
        for idea in ideas.prompts:
            assert idea.content
            if idea.type == "template":
                assert idea.template
                assert idea.prompt

    async def test_server_error_is_retried(self) -> None:
        """Prompt ideas are read, not billed: a 5xx is simply asked again."""
        async with running() as (emu, client):
            emu.inject("img2video-prompt-recommendation", "server_error")
            ideas = await client.recommend_prompts("https://example.com/couple.jpg", types=["img2video"])
            assert ideas.prompts
            assert emu.stats.requests["img2video-prompt-recommendation"] == 2

    async def test_not_a_media_item_refused(self) -> None:
        async with running() as (_, client):
            with pytest.raises(RequestValidationError):
                await client.recommend_prompts(3, types=["img2video"])  # type: ignore[arg-type]


async def test_queueing_answers_completed_from_the_task() -> None:
    """Both audio calls answered ``queueing`` without a URL (§17.2, §22.12): the client waits for
    the task and takes its creation's URL."""
    async with running(pending_audio_answers=True) as (_, client):
        with anyio.fail_after(10):
            speech = await client.text_to_speech("Hello there.", voice_id="narrator")
            voice = await client.clone_voice("https://example.com/a.wav", voice_id="narrator_09", text="Hi.")
        assert speech.state is vidu.TaskState.SUCCESS
        assert voice.state is vidu.TaskState.SUCCESS
        for url in (speech.file_url, voice.demo_audio):
            data, _ = await fetch(url)
            info = sniff(data[:64])
            assert info is not None
            assert info.kind == "audio"
