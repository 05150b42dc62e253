"""The emulator serves every endpoint as strictly as the docs say, over real HTTP.

The ten kinds described field by field (vidu-api-endpoints.md §5-§15) and the three synchronous
endpoints (§16-§18): each documented minimal body (tests/fixtures) accepted; the task runs to a
creation of its media (a real MP4, PNG or audio file, downloaded and checked by its bytes and
``Content-Type``); undocumented fields ``FieldUnwanted``, missing ones ``FieldLacking``, models
outside the endpoint's table ``ModelUnavailable``, names outside an open list ``FieldInvalid``;
each kind's echo (§5.3, §6.2, §7.2, §8.3, §9.2, §10.2, §11.2, §12.2, §14.2, §15.2); the legacy
``template2video`` path; and the synchronous answers, their faults and a duplicated voice.
"""

from __future__ import annotations

import asyncio
import io
import struct
import wave
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from conftest import load_fixture

from vidu_async._convert import request_from_json, sync_request_from_json
from vidu_async._models import PromptRequest, SpeechRequest, Template
from vidu_async.emulator import Emulator, EmulatorConfig, EmulatorState, FaultConfig
from vidu_async.emulator._files import MP3_FRAME_BYTES, mp3_frames, png_image, wav_audio
from vidu_async.emulator._state import StateError, kind_cost, sync_cost

pytestmark = pytest.mark.anyio

FAST: dict[str, Any] = {"created_time": 0.01, "processing_time": 0.05}
API = "/ent/v2"

#: The kinds described field by field, and the media their creation is (§21).
OUTPUT: dict[str, str] = {
    "multiframe": "video",
    "template": "video",
    "template-story": "video",
    "extend": "video",
    "upscale-new": "video",
    "lip-sync": "video",
    "image2dance": "video",
    "reference2image": "image",
    "text2audio": "audio",
    "timing2audio": "audio",
}
#: The kinds with a model table (§21).
MODEL_KINDS = ("multiframe", "reference2image", "extend", "text2audio", "timing2audio")
SYNC = ("audio-tts", "audio-clone", "img2video-prompt-recommendation")

ENVELOPE = {"task_id", "state", "credits", "created_at"}
#: Each kind's echo of its minimal body, written from the facts file. Where the docs did not
#: capture it (§10.2, §11.2, §12.2): the envelope, the request's own fields, payload where
#: documented, and defaults the task runs with (upscale_resolution).
ECHO: dict[str, set[str]] = {
    "multiframe": ENVELOPE
    | {
        "model",
        "start_image",
        "image_settings",
        "resolution",
        "watermark",
        "wm_url",
        "wm_position",
        "meta_data",
        "payload",
    },
    "template": ENVELOPE
    | {"template", "prompt", "images", "seed", "aspect_ratio", "bgm", "payload", "watermark"},
    "template-story": ENVELOPE | {"story", "images", "payload"},
    "reference2image": ENVELOPE
    | {"model", "prompt", "images", "seed", "aspect_ratio", "resolution", "callback_url", "payload"},
    "extend": ENVELOPE
    | {"model", "prompt", "duration", "resolution", "images", "payload", "video_creation_id", "video_url"},
    "upscale-new": ENVELOPE | {"video_creation_id", "upscale_resolution", "payload"},
    "lip-sync": ENVELOPE | {"video_url", "audio_url"},
    "image2dance": ENVELOPE | {"image_url", "video_url", "payload"},
    "text2audio": ENVELOPE | {"model", "prompt", "duration", "seed"},
    "timing2audio": ENVELOPE | {"model", "duration", "timing_prompts", "seed"},
}
#: What each minimal body costs: the facts file's prices where it has them (multiframe and extend
#: 15 + 5/s at q2-turbo 720p, §9.3; upscale 2/s at 2K of an unknown 5 s source, §10.2;
#: reference2image 2, §8.3; audio under 10 s 2, §14.2), else a 720p video's 5/s.
CREDITS: dict[str, int] = {
    "multiframe": 15 + 5 * 7,  # segments of 4 + 3 s
    "template": 5 * 4,
    "template-story": 5 * 10,
    "reference2image": 2,
    "extend": 15 + 5 * 4,
    "upscale-new": 2 * 5,
    "lip-sync": 5 * 5,
    "image2dance": 5 * 5,
    "text2audio": 2,
    "timing2audio": 2,
}
#: An undocumented field for each endpoint: ``model`` where there is none (§1.13), else one
#: documented elsewhere only.
UNWANTED: dict[str, str] = {
    "multiframe": "off_peak",
    "template": "model",
    "template-story": "prompt",
    "reference2image": "off_peak",
    "extend": "watermark",
    "upscale-new": "model",
    "lip-sync": "language",
    "image2dance": "model",
    "text2audio": "off_peak",
    "timing2audio": "prompt",
    "audio-tts": "speed",
    "audio-clone": "callback_url",
    "img2video-prompt-recommendation": "payload",
}
#: A required field of each endpoint (for upscale-new and lip-sync: both of a one-of pair).
REQUIRED: dict[str, tuple[str, ...]] = {
    "multiframe": ("start_image",),
    "template": ("template",),
    "template-story": ("story",),
    "reference2image": ("prompt",),
    "extend": ("model",),
    "upscale-new": ("video_creation_id",),
    "lip-sync": ("audio_url",),
    "image2dance": ("image_url",),
    "text2audio": ("prompt",),
    "timing2audio": ("timing_prompts",),
    "audio-tts": ("voice_setting_voice_id",),
    "audio-clone": ("voice_id",),
    "img2video-prompt-recommendation": ("type",),
}


def minimal(endpoint: str) -> dict[str, Any]:
    """The documented minimal body of ``endpoint`` (tests/fixtures, from the facts file)."""
    body: dict[str, Any] = load_fixture(f"{endpoint}-request-minimal.json")
    return body


@asynccontextmanager
async def running(**config: Any) -> AsyncIterator[tuple[Emulator, aiohttp.ClientSession]]:
    """An emulator and a raw client session authorised for it."""
    async with (
        Emulator(EmulatorConfig(**{**FAST, **config})) as emu,
        aiohttp.ClientSession(headers={"Authorization": f"Token {emu.api_key}"}) as session,
    ):
        yield emu, session


async def post(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with session.post(url, json=body) as response:
        return response.status, await response.json()


async def get_json(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as response:
        return response.status, await response.json()


async def fetch(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, str, bytes]:
    async with session.get(url, **kwargs) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.read()


async def created(emu: Emulator, session: aiohttp.ClientSession, endpoint: str, body: Any) -> dict[str, Any]:
    status, data = await post(session, f"{emu.base_url}{API}/{endpoint}", body)
    assert status == 200, data
    out: dict[str, Any] = data
    return out


async def finished(emu: Emulator, session: aiohttp.ClientSession, task_id: str) -> dict[str, Any]:
    """The task's GET creations once every task has ended."""
    async with asyncio.timeout(5):
        await emu.wait_idle()
    status, data = await get_json(session, f"{emu.base_url}{API}/tasks/{task_id}/creations")
    assert status == 200, data
    out: dict[str, Any] = data
    return out


def suffix(url: str) -> str:
    """The file suffix of a link's path ("" when its last segment has none)."""
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    return name.rpartition(".")[2] if "." in name else ""


def assert_png(data: bytes) -> None:
    """A whole PNG: signature, IHDR first, every chunk's CRC right, IEND last."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, kinds = 8, []
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert zlib.crc32(kind + body) == crc
        kinds.append(kind)
        at += 12 + length
    assert at == len(data)
    assert (kinds[0], kinds[-1]) == (b"IHDR", b"IEND")
    assert b"IDAT" in kinds


def assert_mp3(data: bytes) -> None:
    """Whole MPEG-1 Layer III frames, each starting with its sync word."""
    assert data
    assert len(data) % MP3_FRAME_BYTES == 0
    for at in range(0, len(data), MP3_FRAME_BYTES):
        assert data[at : at + 2] == b"\xff\xfb"


def assert_wav(data: bytes) -> None:
    """A RIFF WAVE whose size matches its length, readable by the stdlib."""
    assert (data[:4], data[8:12]) == (b"RIFF", b"WAVE")
    assert struct.unpack("<I", data[4:8])[0] + 8 == len(data)
    with wave.open(io.BytesIO(data)) as wav:
        assert wav.getnframes() > 0


# --- creates -----------------------------------------------------------------------------------------


class TestMinimalBodies:
    """Each documented minimal body is taken, echoed and run to a creation of its media."""

    @pytest.mark.parametrize("endpoint", sorted(OUTPUT))
    async def test_runs_to_its_media(self, endpoint: str) -> None:
        """200 with the kind's echo; the task ends with a creation of its media, downloadable whole."""
        async with running() as (emu, session):
            echo = await created(emu, session, endpoint, minimal(endpoint))
            assert set(echo) == ECHO[endpoint]
            assert echo["state"] == "created"
            assert echo["credits"] == CREDITS[endpoint]
            data = await finished(emu, session, echo["task_id"])
            assert data["state"] == "success"
            [creation] = data["creations"]
            status, content_type, file = await fetch(session, creation["url"])
        assert status == 200
        output = OUTPUT[endpoint]
        if output == "video":
            assert (suffix(creation["url"]), content_type) == ("mp4", "video/mp4")
            assert file[4:8] == b"ftyp"
            assert creation["cover_url"]
            assert creation["video"]["duration"] > 0
        elif output == "image":
            assert (suffix(creation["url"]), content_type) == ("png", "image/png")
            assert_png(file)
            assert "cover_url" not in creation
            assert "video" not in creation
        else:
            assert (suffix(creation["url"]), content_type) == ("mp3", "audio/mpeg")
            assert_mp3(file)
            assert "cover_url" not in creation
        assert emu.stats.requests["create"] == 1

    async def test_lip_sync_text_mode(self) -> None:
        """The text-driven minimal body of lip-sync (§11.3) is taken and echoes its own fields."""
        async with running() as (emu, session):
            echo = await created(emu, session, "lip-sync", load_fixture("lip-sync-text-request-minimal.json"))
            data = await finished(emu, session, echo["task_id"])
        assert set(echo) == ENVELOPE | {"video_url", "text", "voice_id", "speed"}
        assert echo["speed"] == 1.0
        assert data["state"] == "success"

    async def test_creations_in_list_and_callbacks(self) -> None:
        """A new kind's task is listed, filtered by its model, and called back with its creation."""
        async with callback_receiver() as (url, bodies), running() as (emu, session):
            echo = await created(
                emu, session, "reference2image", {**minimal("reference2image"), "callback_url": url}
            )
            await finished(emu, session, echo["task_id"])
            status, listed = await get_json(session, f"{emu.base_url}{API}/tasks?model_versions=q2")
            async with asyncio.timeout(5):
                while not any(b["state"] == "success" for b in bodies):  # noqa: ASYNC110 - bounded
                    await asyncio.sleep(0.01)
        assert status == 200
        assert [row["id"] for row in listed["tasks"]] == [echo["task_id"]]
        assert echo["callback_url"] == url
        done = next(b for b in bodies if b["state"] == "success")
        assert suffix(done["creations"][0]["url"]) == "png"


@asynccontextmanager
async def callback_receiver() -> AsyncIterator[tuple[str, list[Any]]]:
    """A tiny callback receiver recording each body."""
    bodies: list[Any] = []

    async def handle(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", bodies
    finally:
        await runner.cleanup()


class TestEcho:
    """What each kind's create answer says, beyond its keys."""

    async def test_multiframe(self) -> None:
        """§5.3: the key frames with their durations (default 5), wm_position "unspecified" when not set."""
        body = minimal("multiframe")
        body["image_settings"][1].pop("duration")
        async with running() as (emu, session):
            echo = await created(emu, session, "multiframe", body)
        assert [s["duration"] for s in echo["image_settings"]] == [4, 5]
        assert echo["image_settings"][0]["key_image"] == "https://example.com/f1.jpg"
        assert (echo["wm_position"], echo["watermark"], echo["resolution"]) == ("unspecified", False, "720p")
        assert echo["credits"] == 15 + 5 * 9

    async def test_template_seed_and_defaults(self) -> None:
        """§6.2: seed 0 is replaced by the seed used; aspect_ratio defaults to 16:9, bgm to false."""
        async with running() as (emu, session):
            echo = await created(emu, session, "template", minimal("template"))
        assert echo["seed"] > 0
        assert (echo["template"], echo["aspect_ratio"], echo["bgm"], echo["prompt"]) == (
            "hugging",
            "16:9",
            False,
            "",
        )

    async def test_audio_durations_and_prices(self) -> None:
        """§14.2: duration as a number (default 10); under 5 s costs 1 credit, up to 10 s 2."""
        async with running() as (emu, session):
            short = await created(emu, session, "text2audio", {**minimal("text2audio"), "duration": 3.5})
            default = {k: v for k, v in minimal("text2audio").items() if k != "duration"}
            long = await created(emu, session, "text2audio", default)
            timed = await created(emu, session, "timing2audio", minimal("timing2audio"))
        assert (short["duration"], short["credits"]) == (3.5, 1)
        assert (long["duration"], long["credits"]) == (10, 2)
        assert timed["timing_prompts"] == minimal("timing2audio")["timing_prompts"]

    async def test_payload_where_documented(self) -> None:
        """payload is echoed by the kinds that document it, and kept for GET creations."""
        async with running() as (emu, session):
            echo = await created(emu, session, "image2dance", {**minimal("image2dance"), "payload": "job-9"})
            data = await finished(emu, session, echo["task_id"])
        assert echo["payload"] == data["payload"] == "job-9"
        assert emu.stats.tasks_by_payload["job-9"] == 1

    async def test_upscale_and_extend_read_their_source(self) -> None:
        """An emulator creation as the source: upscale keeps its length (4 s of a template: 4 × 4
        credits at 4K), extend adds to it; an unknown id is taken as a 5 s video."""
        async with running() as (emu, session):
            source = await created(emu, session, "template", minimal("template"))
            done = await finished(emu, session, source["task_id"])
            creation_id = done["creations"][0]["id"]
            upscale = await created(
                emu, session, "upscale-new", {"video_creation_id": creation_id, "upscale_resolution": "4K"}
            )
            extend = await created(
                emu, session, "extend", {**minimal("extend"), "video_creation_id": creation_id}
            )
            await finished(emu, session, upscale["task_id"])
            up = await finished(emu, session, upscale["task_id"])
            ext = await finished(emu, session, extend["task_id"])
        assert upscale["credits"] == 4 * 4
        assert upscale["upscale_resolution"] == "4K"
        assert up["creations"][0]["video"]["duration"] == 4.0
        assert up["creations"][0]["video"]["resolution"]["height"] == 2160
        assert ext["creations"][0]["video"]["duration"] == 4.0 + 4
        assert (extend["duration"], extend["video_url"]) == (4, "")

    async def test_upscale_default_resolution(self) -> None:
        """upscale_resolution defaults to 1080p (§10.1), echoed as the setting the task runs with."""
        async with running() as (emu, session):
            echo = await created(emu, session, "upscale-new", {"video_url": "https://example.com/a.mp4"})
        assert echo["upscale_resolution"] == "1080p"
        assert "video_creation_id" not in echo
        assert echo["credits"] == 5


class TestStrict:
    """Refusals, as the service answers them."""

    @pytest.mark.parametrize("endpoint", sorted(UNWANTED))
    async def test_undocumented_field(self, endpoint: str) -> None:
        """A field the endpoint does not document is 400 FieldUnwanted naming it; nothing is made."""
        field = UNWANTED[endpoint]
        async with running() as (emu, session):
            status, data = await post(
                session, f"{emu.base_url}{API}/{endpoint}", {**minimal(endpoint), field: "x"}
            )
        assert status == 400, data
        assert data["reason"] == "FieldUnwanted"
        assert field in data["message"]
        assert emu.stats.tasks_created == 0
        assert not emu.sync_records

    async def test_undocumented_field_in_an_object(self) -> None:
        """The objects of a list are read as strictly (a seed in a key frame, §5.1)."""
        body = minimal("multiframe")
        body["image_settings"][0]["seed"] = 3
        async with running() as (emu, session):
            status, data = await post(session, f"{emu.base_url}{API}/multiframe", body)
        assert (status, data["reason"]) == (400, "FieldUnwanted")
        assert "image_settings[0].seed" in data["message"]

    @pytest.mark.parametrize("endpoint", sorted(REQUIRED))
    async def test_missing_field(self, endpoint: str) -> None:
        """A required field left out (for a one-of pair: both) is 400 FieldLacking."""
        body = {k: v for k, v in minimal(endpoint).items() if k not in REQUIRED[endpoint]}
        async with running() as (emu, session):
            status, data = await post(session, f"{emu.base_url}{API}/{endpoint}", body)
        assert status == 400, data
        assert data["reason"] == "FieldLacking"

    @pytest.mark.parametrize("endpoint", MODEL_KINDS)
    @pytest.mark.parametrize("model", ["viduq9", "viduq3-turbo"])
    async def test_model_outside_the_table(self, endpoint: str, model: str) -> None:
        """A model outside the endpoint's own table (unknown, or another endpoint's) is ModelUnavailable."""
        async with running() as (emu, session):
            status, data = await post(
                session, f"{emu.base_url}{API}/{endpoint}", {**minimal(endpoint), "model": model}
            )
        assert (status, data["reason"]) == (400, "ModelUnavailable")

    async def test_extra_model(self) -> None:
        """extra_models are taken on the kinds with a model table too."""
        async with running(extra_models=("viduq9",)) as (emu, session):
            echo = await created(emu, session, "multiframe", {**minimal("multiframe"), "model": "viduq9"})
        assert echo["model"] == "viduq9"

    @pytest.mark.parametrize(("endpoint", "field"), [("template", "template"), ("template-story", "story")])
    async def test_unknown_open_list_value(self, endpoint: str, field: str) -> None:
        """A name outside a documented open list (templates, stories) is 400 FieldInvalid naming
        the field; ``extra_known`` lets a new one through."""
        body = {**minimal(endpoint), field: "nope"}
        async with running() as (emu, session):
            status, data = await post(session, f"{emu.base_url}{API}/{endpoint}", body)
        assert (status, data["reason"]) == (400, "FieldInvalid")
        assert field in data["message"]
        assert emu.stats.tasks_created == 0
        async with running(extra_known=("nope",)) as (emu, session):
            echo = await created(emu, session, endpoint, body)
        assert echo[field] == "nope"

    @pytest.mark.parametrize(
        ("endpoint", "changes"),
        [
            ("template", {"aspect_ratio": "4:3"}),
            ("upscale-new", {"upscale_resolution": "720p"}),
            ("multiframe", {"resolution": "360p"}),
            (
                "reference2image",
                {"model": "viduq1", "resolution": "4K", "images": ["https://example.com/a.jpg"]},
            ),
            ("text2audio", {"duration": 11}),
        ],
    )
    async def test_closed_values(self, endpoint: str, changes: dict[str, Any]) -> None:
        """Values outside a closed list or a model's table are 400 FieldInvalid."""
        async with running() as (emu, session):
            body = {**minimal(endpoint), **changes}
            status, data = await post(session, f"{emu.base_url}{API}/{endpoint}", body)
        assert (status, data["reason"]) == (400, "FieldInvalid"), data

    async def test_legacy_template_path(self) -> None:
        """/ent/v2/template2video (the older name, §6) serves template, counted as a create,
        as strictly."""
        async with running() as (emu, session):
            echo = await created(emu, session, "template2video", minimal("template"))
            data = await finished(emu, session, echo["task_id"])
            status, refused = await post(
                session, f"{emu.base_url}{API}/template2video", {**minimal("template"), "model": "x"}
            )
        assert set(echo) == ECHO["template"]
        assert isinstance(emu.tasks[echo["task_id"]].request, Template)
        assert data["state"] == "success"
        assert (status, refused["reason"]) == (400, "FieldUnwanted")
        assert emu.stats.requests["create"] == 2
        assert emu.stats.requests["other"] == 0


# --- files ---------------------------------------------------------------------------------------------


class TestFiles:
    """The image and audio files creations point at."""

    async def test_png_by_range_and_expiry(self) -> None:
        """The PNG is served whole and by Range; a tampered link is 403."""
        async with running() as (emu, session):
            echo = await created(emu, session, "reference2image", minimal("reference2image"))
            url = (await finished(emu, session, echo["task_id"]))["creations"][0]["url"]
            _, _, whole = await fetch(session, url)
            status, content_type, part = await fetch(session, url, headers={"Range": "bytes=1-3"})
            tampered, _, _ = await fetch(session, url.replace("Signature=", "Signature=0"))
        assert (status, content_type, part) == (206, "image/png", b"PNG")
        assert_png(whole)
        assert tampered == 403

    async def test_expired(self) -> None:
        """With a zero ttl an audio link has expired at once: 403."""
        async with running(url_ttl=0.0) as (emu, session):
            echo = await created(emu, session, "text2audio", minimal("text2audio"))
            url = (await finished(emu, session, echo["task_id"]))["creations"][0]["url"]
            status, _, _ = await fetch(session, url)
        assert status == 403

    async def test_wav(self) -> None:
        """audio_format="wav" serves a WAV whose RIFF size matches, as .wav and audio/wav."""
        async with running(audio_format="wav") as (emu, session):
            echo = await created(emu, session, "timing2audio", minimal("timing2audio"))
            url = (await finished(emu, session, echo["task_id"]))["creations"][0]["url"]
            _, content_type, data = await fetch(session, url)
        assert (suffix(url), content_type) == ("wav", "audio/wav")
        assert_wav(data)

    @pytest.mark.parametrize(
        ("endpoint", "content_type"),
        [("reference2image", "image/png"), ("text2audio", "audio/mpeg"), ("template", "video/mp4")],
    )
    async def test_bare_urls(self, endpoint: str, content_type: str) -> None:
        """bare_media_urls: image and audio links have no suffix (only the Content-Type tells);
        a video keeps .mp4; the file with a suffix added is not found."""
        async with running(bare_media_urls=True) as (emu, session):
            echo = await created(emu, session, endpoint, minimal(endpoint))
            url = (await finished(emu, session, echo["task_id"]))["creations"][0]["url"]
            status, served, _ = await fetch(session, url)
            path = urlsplit(url).path
            wrong, _, _ = await fetch(session, url.replace(path, f"{path}.png"))
        assert (status, served) == (200, content_type)
        assert suffix(url) == ("mp4" if endpoint == "template" else "")
        assert wrong == 404

    async def test_bare_speech_url(self) -> None:
        """bare_media_urls holds for speech too; audio_format="wav" serves it as a WAV."""
        async with running(bare_media_urls=True, audio_format="wav") as (emu, session):
            _, data = await post(session, f"{emu.base_url}{API}/audio-tts", minimal("audio-tts"))
            status, content_type, audio = await fetch(session, data["file_url"])
        assert (status, content_type, suffix(data["file_url"])) == (200, "audio/wav", "")
        assert_wav(audio)

    async def test_download_faults(self) -> None:
        """Image downloads take the download route's faults."""
        async with running() as (emu, session):
            echo = await created(emu, session, "reference2image", minimal("reference2image"))
            url = (await finished(emu, session, echo["task_id"]))["creations"][0]["url"]
            emu.inject("download", "server_error")
            first, _, _ = await fetch(session, url)
            second, _, _ = await fetch(session, url)
        assert (first, second) == (500, 200)

    def test_files_are_whole(self) -> None:
        """The generated files are what they say at any size."""
        assert_png(png_image(3, 5))
        assert_mp3(mp3_frames(3))
        assert_wav(wav_audio(0.1))


# --- the synchronous endpoints ----------------------------------------------------------------------------


class TestSync:
    """audio-tts, audio-clone and img2video-prompt-recommendation answer at once."""

    async def test_speech(self) -> None:
        """§16.2: success with a downloadable audio file_url, credits charged, payload echoed; no task."""
        async with running() as (emu, session):
            status, data = await post(
                session, f"{emu.base_url}{API}/audio-tts", {**minimal("audio-tts"), "payload": "p"}
            )
            got, content_type, audio = await fetch(session, data["file_url"])
            _, credits = await get_json(session, f"{emu.base_url}{API}/credits")
            _, lookup = await get_json(session, f"{emu.base_url}{API}/tasks/{data['task_id']}/creations")
            _, tasks = await get_json(session, f"{emu.base_url}{API}/tasks")
        assert status == 200, data
        assert set(data) == {"task_id", "state", "file_url", "credits", "payload", "created_at"}
        assert (data["state"], data["credits"], data["payload"]) == ("success", 1, "p")
        assert (got, content_type, suffix(data["file_url"])) == (200, "audio/mpeg", "mp3")
        assert_mp3(audio)
        remain = credits["remains"][0]
        assert remain["credit_remain"] == emu.config.credits - 1
        assert (remain["current_concurrency"], remain["queue_count"]) == (0, 0)
        assert emu.stats.tasks_created == 0
        assert lookup["state"] == "success"  # read back as a finished task (§16.2), never listed
        assert suffix(lookup["creations"][0]["url"]) == "mp3"
        assert (lookup["payload"], lookup["credits"]) == ("p", 1)
        assert tasks["tasks"] == []
        assert emu.stats.requests["audio-tts"] == 1

    async def test_clone_and_duplicate(self) -> None:
        """§17.2: success with voice_id and a demo_audio; the same voice_id again is 400 FieldInvalid
        "voice_id duplicated" in that organization, free in another."""
        config: dict[str, Any] = {"extra_keys": {"other-key": "other-org"}}
        async with running(**config) as (emu, session):
            url = f"{emu.base_url}{API}/audio-clone"
            status, data = await post(session, url, minimal("audio-clone"))
            again, refused = await post(session, url, minimal("audio-clone"))
            async with session.post(
                url, json=minimal("audio-clone"), headers={"Authorization": "Token other-key"}
            ) as r:
                other = r.status
            _, _, demo = await fetch(session, data["demo_audio"])
        assert status == 200, data
        assert set(data) == {"task_id", "state", "voice_id", "demo_audio", "payload", "created_at"}
        assert (data["state"], data["voice_id"]) == ("success", "acme_narrator_01")
        assert_mp3(demo)
        assert (again, refused["reason"], refused["message"]) == (400, "FieldInvalid", "voice_id duplicated")
        assert other == 200

    async def test_pending_answers(self) -> None:
        """pending_audio_answers: speech and clone answer "queueing" without their audio, which
        GET creations of the task_id then has (§17.2, §22.12)."""
        async with running(pending_audio_answers=True) as (emu, session):
            _, speech = await post(session, f"{emu.base_url}{API}/audio-tts", minimal("audio-tts"))
            _, voice = await post(session, f"{emu.base_url}{API}/audio-clone", minimal("audio-clone"))
            for answer in (speech, voice):
                _, task = await get_json(session, f"{emu.base_url}{API}/tasks/{answer['task_id']}/creations")
                status, _, audio = await fetch(session, task["creations"][0]["url"])
                assert (task["state"], status) == ("success", 200)
                assert_mp3(audio)
        assert (speech["state"], voice["state"]) == ("queueing", "queueing")
        assert set(speech) == {"task_id", "state", "credits", "payload", "created_at"}
        assert set(voice) == {"task_id", "state", "voice_id", "payload", "created_at"}

    async def test_prompts(self) -> None:
        """§18.2: count prompts per requested type; template ones carry a prompt, a known template
        and the resolution (default 360p); count defaults to 5."""
        async with running() as (emu, session):
            url = f"{emu.base_url}{API}/img2video-prompt-recommendation"
            status, data = await post(session, url, minimal("img2video-prompt-recommendation"))
            _, default = await post(
                session, url, {"images": ["https://example.com/a.jpg"], "type": ["img2video"]}
            )
            ok, _ = await post(
                session,
                f"{emu.base_url}{API}/template",
                {"template": data["prompts"][0]["template"], "images": ["https://example.com/a.jpg"]},
            )
        assert status == 200, data
        assert set(data) == {"id", "images", "count", "prompts", "created_at"}
        assert (data["count"], data["images"]) == (2, ["https://example.com/couple.jpg"])
        assert [p["type"] for p in data["prompts"]] == ["template", "template", "img2video", "img2video"]
        for prompt in data["prompts"]:
            assert prompt["content"]
            if prompt["type"] == "template":
                assert prompt["prompt"]
                assert prompt["resolution"] == "360p"
            else:
                assert set(prompt) == {"type", "content"}
        assert ok == 200  # a suggested template is one the template endpoint takes
        assert (default["count"], len(default["prompts"])) == (5, 5)
        assert emu.stats.requests["img2video-prompt-recommendation"] == 2

    @pytest.mark.parametrize(
        ("endpoint", "changes", "reason"),
        [
            ("audio-tts", {"voice_setting_emotion": "bored"}, "FieldInvalid"),
            ("audio-tts", {"voice_setting_pitch": 13}, "FieldInvalid"),
            ("audio-clone", {"text": "x" * 1001}, "FieldInvalid"),
            ("img2video-prompt-recommendation", {"type": ["text2video"]}, "FieldInvalid"),
            ("img2video-prompt-recommendation", {"count": 11}, "FieldInvalid"),
        ],
    )
    async def test_sync_rules(self, endpoint: str, changes: dict[str, Any], reason: str) -> None:
        """The documented enums and ranges of the sync bodies are enforced."""
        async with running() as (emu, session):
            status, data = await post(
                session, f"{emu.base_url}{API}/{endpoint}", {**minimal(endpoint), **changes}
            )
        assert (status, data["reason"]) == (400, reason), data

    @pytest.mark.parametrize("endpoint", SYNC)
    async def test_auth(self, endpoint: str) -> None:
        """The same auth as every endpoint: no key, 401."""
        async with running() as (emu, _), aiohttp.ClientSession() as anonymous:
            status, data = await post(anonymous, f"{emu.base_url}{API}/{endpoint}", minimal(endpoint))
        assert (status, data["reason"]) == (401, "Unauthorized")

    @pytest.mark.parametrize("endpoint", SYNC)
    async def test_injected_faults(self, endpoint: str) -> None:
        """Each sync endpoint has its own name for inject(): a 429, a 500, a dropped connection."""
        async with running() as (emu, session):
            url = f"{emu.base_url}{API}/{endpoint}"
            emu.inject(endpoint, "rate_limit")
            emu.inject(endpoint, "server_error")
            emu.inject(endpoint, "drop")
            limited, _ = await post(session, url, minimal(endpoint))
            failed, _ = await post(session, url, minimal(endpoint))
            with pytest.raises(aiohttp.ClientError):
                await post(session, url, minimal(endpoint))
            ok, _ = await post(session, url, minimal(endpoint))
        assert (limited, failed, ok) == (429, 500, 200)
        assert emu.stats.requests[endpoint] == 4
        assert emu.stats.requests["create"] == 0
        assert len(emu.sync_records) == 1

    async def test_clone_committed_then_dropped(self) -> None:
        """commit_then_drop hits a clone after it is made: sending it again finds the voice taken."""
        async with running() as (emu, session):
            url = f"{emu.base_url}{API}/audio-clone"
            emu.inject("audio-clone", "commit_then_drop")
            with pytest.raises(aiohttp.ClientError):
                await post(session, url, minimal("audio-clone"))
            status, data = await post(session, url, minimal("audio-clone"))
        assert (status, data["message"]) == (400, "voice_id duplicated")

    async def test_rate_based_faults(self) -> None:
        """Rate-based faults aimed at a sync endpoint hit it; server_error_after_commit bills a speech."""
        faults = FaultConfig(server_error_after_commit=1.0, endpoints={"audio-tts"})
        async with running(faults=faults) as (emu, session):
            status, _ = await post(session, f"{emu.base_url}{API}/audio-tts", minimal("audio-tts"))
            listed, _ = await get_json(session, f"{emu.base_url}{API}/tasks")
        assert (status, listed) == (500, 200)
        assert len(emu.sync_records) == 1

    async def test_no_commit_faults_on_prompts(self) -> None:
        """Prompt suggestions commit nothing: commit faults drawn from rates pass them by."""
        faults = FaultConfig(commit_then_drop=1.0, endpoints={"img2video-prompt-recommendation"})
        async with running(faults=faults) as (emu, session):
            url = f"{emu.base_url}{API}/img2video-prompt-recommendation"
            status, _ = await post(session, url, minimal("img2video-prompt-recommendation"))
        assert status == 200

    def test_costs(self) -> None:
        """Speech is charged by characters (one credit per 1000 started); suggestions are free."""
        speech = SpeechRequest(text="a" * 1001, voice_setting_voice_id="v")
        prompts = PromptRequest(images=["https://example.com/a.jpg"], type=["template"])
        assert (sync_cost(speech), sync_cost(prompts)) == (2, 0)


# --- the pure core -------------------------------------------------------------------------------------


class TestPureState:
    """The state machine alone: no loop, no HTTP."""

    def state(self, **config: Any) -> EmulatorState:
        return EmulatorState(EmulatorConfig(**{**FAST, **config}))

    def test_new_kinds_run_and_free_their_slot(self) -> None:
        """A template task runs through the states and holds a slot like any other."""
        state = self.state(concurrency=1)
        first, second = (
            state.submit(
                request_from_json(minimal("template"), endpoint="template"),
                now=0.0,
                wall_ns=10**18,
                org="o",
                api_key="k",
            )
            for _ in range(2)
        )
        state.advance(0.02)
        assert (first.state.value, second.state.value) == ("processing", "queueing")
        state.advance(1.0)
        assert (first.state.value, second.state.value) == ("success", "success")
        assert (first.output, first.seconds, first.credits) == ("video", 4.0, 20)

    def test_audio_and_image_outputs(self) -> None:
        """The kind's media and length are kept for the creation."""
        state = self.state()
        audio = state.submit(
            request_from_json(minimal("timing2audio"), endpoint="timing2audio"),
            now=0.0,
            wall_ns=10**18,
            org="o",
            api_key="k",
        )
        image = state.submit(
            request_from_json(minimal("reference2image"), endpoint="reference2image"),
            now=0.0,
            wall_ns=10**18,
            org="o",
            api_key="k",
        )
        assert (audio.output, audio.seconds) == ("audio", 8.0)
        assert (image.output, image.seconds, image.credits) == ("image", 0.0, 2)

    def test_duplicate_voice_and_credits(self) -> None:
        """A voice_id is the organization's once; a call the balance cannot pay is refused."""
        state = self.state(credits=1)
        clone = sync_request_from_json(minimal("audio-clone"), endpoint="audio-clone")
        record = state.call_sync(clone, endpoint="audio-clone", wall_ns=10**18, org="o")
        assert (record.voice_id, record.credits, state.credits("o").credit_remain) == (
            "acme_narrator_01",
            1,
            0,
        )
        with pytest.raises(StateError, match="voice_id duplicated"):
            state.call_sync(clone, endpoint="audio-clone", wall_ns=10**18, org="o")
        speech = sync_request_from_json(minimal("audio-tts"), endpoint="audio-tts")
        with pytest.raises(StateError, match="CreditInsufficient"):
            state.call_sync(speech, endpoint="audio-tts", wall_ns=10**18, org="o")
        assert len(state.sync_records) == 1

    @pytest.mark.parametrize(
        ("endpoint", "settings", "seconds", "credits"),
        [
            ("extend", {"model": "viduq2-pro", "resolution": "1080p", "duration": 7}, 12.0, 60 + 15 * 7),
            ("multiframe", {"model": "viduq2-pro", "resolution": "540p", "duration": 9}, 9.0, 15 + 5 * 9),
            ("upscale-new", {"resolution": "8K"}, 3.5, 4 * 16),
            ("text2audio", {}, 4.9, 1),
            ("timing2audio", {}, 5.0, 2),
            ("lip-sync", {}, 5.0, 25),
        ],
    )
    def test_kind_cost(self, endpoint: str, settings: dict[str, Any], seconds: float, credits: int) -> None:
        """The price table of the kinds described field by field."""
        assert kind_cost(endpoint, settings, seconds) == credits
