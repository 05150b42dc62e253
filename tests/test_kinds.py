"""The task kinds beside reference2video: ``text2video``, ``img2video`` and ``start-end2video``.

Per endpoint: the documented minimal body (vidu-api-endpoints.md §2.4, §3.4, §4.4) read by
``request_from_json`` and accepted by the emulator; each documented rule just inside and just
outside its limit (the limits are written here from the facts file, not read from ``_rules``);
an undocumented field refused (``FieldUnwanted``) and never sent; a whole ``generate`` and
download; and a mixed batch of every kind with a journal, resumed once.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import attrs
import pytest
from aiohttp import web
from conftest import load_fixture, png, small_request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vidu_async as vidu
from vidu_async._convert import request_to_json
from vidu_async._kinds import KINDS, kind_of
from vidu_async.callbacks import make_callback_app
from vidu_async.emulator import Emulator, EmulatorConfig, FaultConfig
from vidu_async.exceptions import RequestValidationError

# --- what the facts file documents ----------------------------------------------------------------

#: Each endpoint's documented request fields (§2.1, §3.1, §4.1).
DOCUMENTED: dict[str, frozenset[str]] = {
    "text2video": frozenset(
        [
            "model",
            "style",
            "prompt",
            "duration",
            "seed",
            "aspect_ratio",
            "resolution",
            "movement_amplitude",
            "bgm",
            "audio",
            "payload",
            "off_peak",
            "watermark",
            "wm_position",
            "wm_url",
            "meta_data",
            "callback_url",
        ]
    ),
    "img2video": frozenset(
        [
            "model",
            "images",
            "prompt",
            "audio",
            "audio_type",
            "voice_id",
            "is_rec",
            "bgm",
            "duration",
            "seed",
            "resolution",
            "movement_amplitude",
            "payload",
            "off_peak",
            "watermark",
            "wm_position",
            "wm_url",
            "meta_data",
            "callback_url",
        ]
    ),
    "start-end2video": frozenset(
        [
            "model",
            "images",
            "prompt",
            "is_rec",
            "duration",
            "seed",
            "resolution",
            "movement_amplitude",
            "audio",
            "bgm",
            "payload",
            "off_peak",
            "watermark",
            "wm_position",
            "wm_url",
            "meta_data",
            "callback_url",
        ]
    ),
}
#: The echo of each create response (§2.3, §3.3, §4.3).
ECHO: dict[str, frozenset[str]] = {
    "text2video": frozenset(
        [
            "task_id",
            "state",
            "model",
            "style",
            "prompt",
            "duration",
            "seed",
            "aspect_ratio",
            "resolution",
            "bgm",
            "movement_amplitude",
            "payload",
            "off_peak",
            "credits",
            "watermark",
            "created_at",
        ]
    ),
    "img2video": frozenset(
        [
            "task_id",
            "state",
            "model",
            "prompt",
            "images",
            "duration",
            "audio",
            "audio_type",
            "seed",
            "resolution",
            "movement_amplitude",
            "payload",
            "off_peak",
            "credits",
            "watermark",
            "created_at",
        ]
    ),
    "start-end2video": frozenset(
        [
            "task_id",
            "state",
            "model",
            "prompt",
            "images",
            "duration",
            "seed",
            "resolution",
            "bgm",
            "movement_amplitude",
            "payload",
            "off_peak",
            "credits",
            "watermark",
            "created_at",
        ]
    ),
}
TYPES: dict[str, type[Any]] = {
    "text2video": vidu.Text2Video,
    "img2video": vidu.Img2Video,
    "start-end2video": vidu.StartEnd2Video,
}
#: Undocumented fields a client might be tempted to send (§2.1, §3.1, §4.1 "not documented").
UNDOCUMENTED: dict[str, tuple[str, ...]] = {
    "text2video": ("images", "audio_type", "voice_id", "is_rec"),
    "img2video": ("aspect_ratio", "style", "enhance"),
    "start-end2video": ("aspect_ratio", "audio_type", "voice_id"),
}
#: Durations per (endpoint, model) from the model matrices (§2.2, §3.2, §4.2), permissive side of §22.
DURATIONS: dict[tuple[str, str], tuple[int, ...]] = {
    ("text2video", "viduq3-pro"): tuple(range(1, 17)),
    ("text2video", "viduq3-turbo"): tuple(range(1, 17)),
    ("text2video", "viduq2"): tuple(range(1, 11)),
    ("text2video", "viduq1"): (5,),
    ("text2video", "vidu1.5"): (4, 8),
    ("img2video", "viduq3-pro"): tuple(range(1, 17)),
    ("img2video", "viduq3-pro-fast"): tuple(range(1, 17)),
    ("img2video", "viduq2-pro-fast"): tuple(range(1, 11)),
    ("img2video", "viduq2-turbo"): tuple(range(1, 11)),
    ("img2video", "viduq1-classic"): (5,),
    ("img2video", "vidu2.0"): (4, 8),
    ("start-end2video", "viduq3-turbo"): tuple(range(1, 17)),
    ("start-end2video", "viduq2-pro-fast"): tuple(range(1, 9)),
    ("start-end2video", "viduq2-pro"): tuple(range(1, 9)),
    ("start-end2video", "viduq1"): (5,),
    ("start-end2video", "vidu2.0"): (4, 8),
}

URL = "https://example.com/frame.jpg"
URL2 = "https://example.com/last.jpg"


def minimal(endpoint: str) -> dict[str, Any]:
    """The documented minimal body of ``endpoint`` (tests/fixtures)."""
    body: dict[str, Any] = load_fixture(f"{endpoint}-request-minimal.json")
    return body


def make(endpoint: str, **changes: Any) -> Any:
    """A request of ``endpoint``: its minimal body (as keyword arguments) with ``changes``."""
    fields = {**minimal(endpoint), **changes}
    return TYPES[endpoint](**{k: v for k, v in fields.items() if v is not None})


def refused(endpoint: str, **changes: Any) -> tuple[str, ...]:
    """The fields named by the refusal of ``make(endpoint, **changes)`` (it must be refused)."""
    with pytest.raises(RequestValidationError) as info:
        make(endpoint, **changes)
    return info.value.fields


# --- the seam ---------------------------------------------------------------------------------------


class TestSeam:
    """Each kind is a row of ``KINDS`` and a public frozen, keyword-only type."""

    @pytest.mark.parametrize("endpoint", sorted(TYPES))
    def test_kind_row(self, endpoint: str) -> None:
        kind = KINDS[endpoint]
        assert kind.request_type is TYPES[endpoint]
        assert kind.path == f"/ent/v2/{endpoint}"
        assert kind.payload is True  # §1.4
        assert kind.output == "video"  # §1.11
        assert kind_of(make(endpoint)) is kind

    @pytest.mark.parametrize("endpoint", sorted(TYPES))
    def test_exactly_the_documented_fields(self, endpoint: str) -> None:
        assert {a.name for a in attrs.fields(TYPES[endpoint])} == DOCUMENTED[endpoint]

    @pytest.mark.parametrize("endpoint", sorted(TYPES))
    def test_frozen_and_keyword_only(self, endpoint: str) -> None:
        request = make(endpoint)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            request.model = "viduq1"
        with pytest.raises(TypeError):
            TYPES[endpoint]("viduq1")


# --- reading Vidu's JSON ------------------------------------------------------------------------------


class TestFromJson:
    @pytest.mark.parametrize("endpoint", sorted(TYPES))
    def test_documented_minimal_body(self, endpoint: str) -> None:
        """The minimal body of the facts file reads as the kind's type and writes back the same."""
        request = vidu.request_from_json(minimal(endpoint), endpoint=endpoint)
        assert type(request) is TYPES[endpoint]
        assert request_to_json(request) == minimal(endpoint)

    @pytest.mark.parametrize("endpoint", sorted(TYPES))
    def test_unknown_fields_are_unwanted(self, endpoint: str) -> None:
        body = {**minimal(endpoint), **dict.fromkeys(UNDOCUMENTED[endpoint], "x")}
        with pytest.raises(RequestValidationError) as info:
            vidu.request_from_json(body, endpoint=endpoint)
        unwanted = {p.field for p in info.value.problems if p.reason == "FieldUnwanted"}
        assert unwanted == set(UNDOCUMENTED[endpoint])

    @pytest.mark.parametrize(
        ("endpoint", "required"),
        [
            ("text2video", {"model", "prompt"}),
            ("img2video", {"model", "images"}),
            ("start-end2video", {"model", "images"}),
        ],
    )
    def test_required_fields(self, endpoint: str, required: set[str]) -> None:
        with pytest.raises(RequestValidationError) as info:
            vidu.request_from_json({"duration": 5}, endpoint=endpoint)
        assert {p.field for p in info.value.problems if p.reason == "FieldLacking"} == required

    def test_every_problem_at_once(self) -> None:
        with pytest.raises(RequestValidationError) as info:
            vidu.request_from_json(
                {"model": "viduq2-pro", "images": [URL], "duration": 9, "wm_position": 7, "colour": 1},
                endpoint="start-end2video",
            )
        assert set(info.value.fields) == {"colour", "images", "duration", "wm_position"}

    def test_a_body_of_another_kind_is_refused(self) -> None:
        with pytest.raises(RequestValidationError) as info:
            vidu.request_from_json(minimal("img2video"), endpoint="text2video")
        assert "images" in info.value.fields


# --- the documented rules, just inside and just outside -----------------------------------------------


class TestCommonRules:
    @pytest.mark.parametrize("endpoint", sorted(TYPES))
    def test_prompt_length(self, endpoint: str) -> None:
        """≤ 5000 characters (the q3-era pages; 2000 and 1500 in older ones: §22.1)."""
        make(endpoint, prompt="x" * 5000)
        assert refused(endpoint, prompt="x" * 5001) == ("prompt",)

    @pytest.mark.parametrize("endpoint", sorted(TYPES))
    def test_payload_length(self, endpoint: str) -> None:
        make(endpoint, payload="p" * 1_048_576)
        assert refused(endpoint, payload="p" * 1_048_577) == ("payload",)

    @pytest.mark.parametrize("endpoint", sorted(TYPES))
    @pytest.mark.parametrize(("value", "ok"), [(1, True), (4, True), (0, False), (5, False)])
    def test_wm_position(self, endpoint: str, value: int, ok: bool) -> None:
        """An integer 1-4 on these three endpoints (§1.6; multiframe's is a string)."""
        if ok:
            make(endpoint, wm_position=value, watermark=True)
        else:
            assert refused(endpoint, wm_position=value) == ("wm_position",)

    @pytest.mark.parametrize("endpoint", sorted(TYPES))
    def test_movement_amplitude(self, endpoint: str) -> None:
        for value in ("auto", "small", "medium", "large"):
            make(endpoint, movement_amplitude=value)
        assert refused(endpoint, movement_amplitude="huge") == ("movement_amplitude",)

    @pytest.mark.parametrize("endpoint", sorted(TYPES))
    def test_seed_and_types(self, endpoint: str) -> None:
        make(endpoint, seed=0)
        assert refused(endpoint, seed=-1) == ("seed",)
        assert refused(endpoint, bgm="yes") == ("bgm",)
        assert refused(endpoint, duration="5") == ("duration",)

    @pytest.mark.parametrize("endpoint", sorted(TYPES))
    def test_unknown_model_passes_the_sdk(self, endpoint: str) -> None:
        """A model the tables do not know is the service's to judge (it may be new)."""
        make(endpoint, model="viduq9", duration=30, resolution="4K")

    @settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(key=st.sampled_from(sorted(DURATIONS)), duration=st.integers(-1, 20))
    def test_durations(self, key: tuple[str, str], duration: int) -> None:
        endpoint, model = key
        allowed = DURATIONS[key]
        resolution = "1080p" if model.startswith("viduq1") else "720p"
        if duration in allowed:
            make(endpoint, model=model, duration=duration, resolution=resolution)
        else:
            assert "duration" in refused(endpoint, model=model, duration=duration, resolution=resolution)

    @pytest.mark.parametrize("endpoint", sorted(TYPES))
    def test_boundary_durations(self, endpoint: str) -> None:
        for (where, model), allowed in DURATIONS.items():
            if where != endpoint:
                continue
            resolution = "1080p" if model.startswith("viduq1") else "720p"
            make(endpoint, model=model, duration=allowed[0], resolution=resolution)
            make(endpoint, model=model, duration=allowed[-1], resolution=resolution)
            assert "duration" in refused(
                endpoint, model=model, duration=allowed[-1] + 1, resolution=resolution
            )

    @pytest.mark.parametrize("endpoint", sorted(TYPES))
    def test_vidu_4_or_8_seconds(self, endpoint: str) -> None:
        """The old models: 4 s at 360p/720p/1080p, 8 s at 720p only."""
        model = "vidu1.5" if endpoint == "text2video" else "vidu2.0"
        make(endpoint, model=model, duration=4, resolution="360p")
        make(endpoint, model=model, duration=8, resolution="720p")
        assert refused(endpoint, model=model, duration=8, resolution="1080p") == ("resolution",)


class TestText2Video:
    def test_aspect_ratios(self) -> None:
        """Five ratios; 3:4 and 4:3 only for q2/q3 (§2.1)."""
        for ratio in ("16:9", "9:16", "3:4", "4:3", "1:1"):
            make("text2video", model="viduq2", aspect_ratio=ratio)
        make("text2video", model="viduq1", duration=5, resolution="1080p", aspect_ratio="1:1")
        assert refused("text2video", model="viduq1", duration=5, resolution="1080p", aspect_ratio="4:3") == (
            "aspect_ratio",
        )
        assert refused("text2video", aspect_ratio="2:1") == ("aspect_ratio",)

    def test_style(self) -> None:
        make("text2video", style="anime")
        assert refused("text2video", style="cartoon") == ("style",)

    def test_prompt_required(self) -> None:
        assert refused("text2video", prompt=" ") == ("prompt",)

    def test_resolutions(self) -> None:
        make("text2video", model="viduq3-pro", resolution="540p")
        assert refused("text2video", model="viduq1", duration=5, resolution="720p") == ("resolution",)


class TestImg2Video:
    def test_exactly_one_image(self) -> None:
        make("img2video", images=[URL])
        assert refused("img2video", images=[]) == ("images",)
        assert refused("img2video", images=[URL, URL2]) == ("images",)

    def test_prompt_optional(self) -> None:
        request = make("img2video", prompt=None, is_rec=True)
        assert "prompt" not in request_to_json(request)

    def test_resolutions_permissive(self) -> None:
        """q2-pro/turbo take 540p (one source says not: §22.3); q3-pro-fast does not (§3.2);
        q3-pro takes 2K (Comfy's node, no official table: §22.5)."""
        make("img2video", model="viduq2-pro", resolution="540p")
        make("img2video", model="viduq3-pro", resolution="2K")
        make("img2video", model="viduq3-pro-fast", resolution="720p")
        assert refused("img2video", model="viduq3-pro-fast", resolution="540p") == ("resolution",)
        assert refused("img2video", model="viduq2-pro-fast", resolution="540p") == ("resolution",)

    def test_audio_type(self) -> None:
        for value in ("all", "speech_only", "sound_effect_only"):
            make("img2video", audio=True, audio_type=value)
        assert make("img2video", audio_type="sound-effect_only").audio_type == "sound_effect_only"
        assert refused("img2video", audio_type="music") == ("audio_type",)

    def test_off_peak_with_audio_is_for_q3(self) -> None:
        """With audio=true only q3 models accept off_peak (§3.1)."""
        make("img2video", model="viduq3-turbo", audio=True, off_peak=True)
        make("img2video", model="viduq2-turbo", audio=False, off_peak=True)
        make("img2video", model="viduq2-turbo", off_peak=True)
        assert refused("img2video", model="viduq2-turbo", audio=True, off_peak=True) == ("off_peak",)

    def test_image_rules(self) -> None:
        """png/jpeg/webp, at least 128 px a side, aspect inside 1:4-4:1 (§1.8)."""
        make("img2video", images=[png(128, 128)])
        make("img2video", images=[png(512, 128)])
        assert refused("img2video", images=[png(127, 128)]) == ("images[0]",)
        assert refused("img2video", images=[png(520, 128)]) == ("images[0]",)
        assert refused("img2video", images=[b"GIF89a" + b"\x00" * 20]) == ("images[0]",)
        assert refused("img2video", images=["ftp://example.com/a.png"]) == ("images[0]",)


class TestStartEnd2Video:
    def test_exactly_two_images(self) -> None:
        make("start-end2video", images=[URL, URL2])
        assert refused("start-end2video", images=[URL]) == ("images",)
        assert refused("start-end2video", images=[URL, URL2, URL]) == ("images",)
        assert refused("start-end2video", images=[]) == ("images",)

    def test_q2_is_1_to_8_seconds(self) -> None:
        make("start-end2video", model="viduq2-turbo", duration=8)
        assert refused("start-end2video", model="viduq2-turbo", duration=9) == ("duration",)

    def test_q3_pro_accepted(self) -> None:
        """Listed on Vidu's pages (one wrapper's guide says not: §22.4)."""
        make("start-end2video", model="viduq3-pro", duration=3)


# --- what is sent -------------------------------------------------------------------------------------

_optional = st.one_of(st.none(), st.booleans())


@st.composite
def kind_requests(draw: st.DrawFn) -> Any:
    endpoint = draw(st.sampled_from(sorted(TYPES)))
    changes: dict[str, Any] = {
        "seed": draw(st.one_of(st.none(), st.integers(0, 2**31 - 1))),
        "bgm": draw(_optional),
        "audio": draw(_optional),
        "watermark": draw(_optional),
        "wm_position": draw(st.one_of(st.none(), st.integers(1, 4))),
        "wm_url": draw(st.one_of(st.none(), st.just("https://example.com/wm.png"))),
        "meta_data": draw(st.one_of(st.none(), st.just('{"Label":"AIGC"}'))),
        "payload": draw(st.one_of(st.none(), st.text(max_size=20))),
        "movement_amplitude": draw(st.one_of(st.none(), st.sampled_from(["auto", "small"]))),
        "callback_url": draw(st.one_of(st.none(), st.just("https://example.com/cb"))),
    }
    if endpoint == "text2video":
        changes["style"] = draw(st.one_of(st.none(), st.sampled_from(["general", "anime"])))
        changes["aspect_ratio"] = draw(st.one_of(st.none(), st.sampled_from(["16:9", "4:3"])))
    else:
        changes["is_rec"] = draw(_optional)
    if endpoint == "img2video":
        changes["audio_type"] = draw(st.one_of(st.none(), st.sampled_from(["all", "speech_only"])))
        changes["voice_id"] = draw(st.one_of(st.none(), st.just("voice-1")))
    return endpoint, make(endpoint, **changes)


class TestSent:
    @given(kind_requests())
    def test_only_documented_fields_are_sent(self, drawn: tuple[str, Any]) -> None:
        endpoint, request = drawn
        body = request_to_json(request)
        assert set(body) <= DOCUMENTED[endpoint]
        assert vidu.request_from_json(body, endpoint=endpoint) == request


# --- the emulator -------------------------------------------------------------------------------------

FAST: dict[str, Any] = {"created_time": 0.01, "processing_time": 0.05}


@asynccontextmanager
async def raw(**config: Any) -> AsyncIterator[tuple[Emulator, aiohttp.ClientSession]]:
    async with (
        Emulator(EmulatorConfig(**{**FAST, **config})) as emu,
        aiohttp.ClientSession(headers={"Authorization": f"Token {emu.api_key}"}) as session,
    ):
        yield emu, session


async def post(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with session.post(url, json=body) as response:
        return response.status, await response.json()


@pytest.mark.anyio
class TestEmulator:
    @pytest.mark.parametrize("endpoint", sorted(TYPES))
    async def test_minimal_body_and_echo(self, endpoint: str) -> None:
        async with raw() as (emu, session):
            status, data = await post(session, f"{emu.base_url}/ent/v2/{endpoint}", minimal(endpoint))
        assert status == 200, data
        assert set(data) == ECHO[endpoint]
        assert data["state"] == "created"
        assert data["model"] == minimal(endpoint)["model"]
        assert data["credits"] == 25  # 5 s at 720p (the q3-turbo i2v default resolution)

    async def test_start_end_q3_echoes_audio(self) -> None:
        """The q3 example of start-end2video also echoes ``audio`` (§4.3)."""
        async with raw() as (emu, session):
            body = {**minimal("start-end2video"), "model": "viduq3-turbo"}
            status, data = await post(session, f"{emu.base_url}/ent/v2/start-end2video", body)
        assert status == 200, data
        assert data["audio"] is True

    @pytest.mark.parametrize("endpoint", sorted(TYPES))
    async def test_unknown_field_refused(self, endpoint: str) -> None:
        async with raw() as (emu, session):
            field = UNDOCUMENTED[endpoint][0]
            body = {**minimal(endpoint), field: "16:9"}
            status, data = await post(session, f"{emu.base_url}/ent/v2/{endpoint}", body)
        assert status == 400
        assert data["reason"] == "FieldUnwanted"
        assert field in data["message"]
        assert emu.stats.tasks_created == 0

    @pytest.mark.parametrize(
        ("endpoint", "changes", "reason"),
        [
            ("text2video", {"prompt": None}, "FieldLacking"),
            ("img2video", {"images": None}, "FieldLacking"),
            ("start-end2video", {"images": [URL]}, "FieldItemCountOutOfRange"),
            ("text2video", {"duration": 17}, "FieldInvalid"),
            ("text2video", {"style": "cartoon"}, "FieldInvalid"),
            ("img2video", {"model": "viduq3-pro-fast", "resolution": "540p"}, "FieldInvalid"),
            ("start-end2video", {"duration": 9}, "FieldInvalid"),
            ("img2video", {"model": "viduq9"}, "ModelUnavailable"),
            ("start-end2video", {"model": "viduq3-mix"}, "ModelUnavailable"),  # a reference2video model
        ],
    )
    async def test_strict(self, endpoint: str, changes: dict[str, Any], reason: str) -> None:
        body = {k: v for k, v in {**minimal(endpoint), **changes}.items() if v is not None}
        async with raw() as (emu, session):
            status, data = await post(session, f"{emu.base_url}/ent/v2/{endpoint}", body)
        assert status == 400, data
        assert data["reason"] == reason

    async def test_is_rec_costs_10_more(self) -> None:
        """§1.7: a recommended prompt costs 10 credits more."""
        async with raw() as (emu, session):
            body = {**minimal("img2video"), "is_rec": True}
            status, data = await post(session, f"{emu.base_url}/ent/v2/img2video", body)
        assert status == 200, data
        assert data["credits"] == 35


# --- the whole engine ----------------------------------------------------------------------------------

FAST_RETRY = attrs.evolve(vidu.DEFAULT_RETRY, initial=0.01, maximum=0.05, reconcile_settle=0.05)
FAST_POLL = attrs.evolve(
    vidu.DEFAULT_POLL, first_check=0.02, min_interval=0.02, max_interval=0.1, requests_per_second=200
)


@asynccontextmanager
async def engine(emu: Emulator) -> AsyncIterator[vidu.ViduClient]:
    async with vidu.ViduClient(
        emu.api_key, base_url=emu.base_url, retry=FAST_RETRY, poll=FAST_POLL
    ) as client:
        yield client


@pytest.mark.anyio
class TestEngine:
    async def test_generate_and_download_each_kind(self, tmp_path: Path) -> None:
        """submit → wait → download for each kind, local images sent as data URIs."""
        image = tmp_path / "frame.png"
        image.write_bytes(png(256, 144))
        requests = [
            vidu.Text2Video(model="viduq2", prompt="A paper boat.", duration=2, aspect_ratio="4:3"),
            vidu.Img2Video(model="viduq3-turbo", images=[image], prompt="The kite lifts.", duration=1),
            vidu.StartEnd2Video(model="viduq2-turbo", images=[png(), image], duration=1, resolution="540p"),
        ]
        async with Emulator(EmulatorConfig(**FAST, faults=FaultConfig())) as emu, engine(emu) as client:
            for request in requests:
                with anyio.fail_after(10):
                    task = await client.generate(request)
                assert task.state is vidu.TaskState.SUCCESS
                files = await client.download(task, tmp_path / "out")
                assert len(files) == 1
                assert files[0].suffix == ".mp4"
                assert files[0].stat().st_size > 0
            created = list(emu.tasks.values())
        assert [type(t.request) for t in created] == [type(r) for r in requests]
        sent = created[1].request.images[0]
        assert isinstance(sent, str)
        assert sent.startswith("data:image/png;base64,")
        assert base64.b64decode(sent.partition(",")[2]) == image.read_bytes()

    async def test_mixed_batch_with_a_journal_resumed_once(self, tmp_path: Path) -> None:
        """Every kind in one batch; the first run stops after one result, the second resumes the
        journal: one server task per input, each made at its own endpoint."""
        journal = tmp_path / "journal.sqlite"
        items: list[Any] = [
            small_request(),
            make("text2video"),
            ("i2v", make("img2video", images=[png()])),
            {**minimal("start-end2video"), "endpoint": "start-end2video", "key": "se"},
        ]
        config = EmulatorConfig(created_time=0.01, processing_time=0.3, faults=FaultConfig())
        async with Emulator(config) as emu:
            async with engine(emu) as client:
                with anyio.fail_after(10):
                    async with client.generate_many(items, journal=journal) as batch:
                        async for first in batch:
                            assert first.ok
                            break
            assert emu.stats.tasks_created == 4  # every item was in flight
            async with engine(emu) as client:
                with anyio.fail_after(10):
                    async with client.generate_many(
                        items, journal=journal, download_to=tmp_path / "v"
                    ) as batch:
                        results = sorted([r async for r in batch], key=lambda r: r.index)
            assert emu.stats.tasks_created == 4
            assert max(emu.stats.tasks_by_payload.values()) == 1
            kinds = {t.id: kind_of(t.request).endpoint for t in emu.tasks.values()}
        assert all(r.ok and r.resumed for r in results)
        assert [type(r.request) for r in results] == [
            vidu.Reference2Video,
            vidu.Text2Video,
            vidu.Img2Video,
            vidu.StartEnd2Video,
        ]
        assert [kinds[r.task.id] for r in results if r.task is not None] == [
            "reference2video",
            "text2video",
            "img2video",
            "start-end2video",
        ]
        assert all(len(r.files) == 1 for r in results)
        async with vidu.SQLiteJournal(journal) as store:
            entries = await store.entries()
        assert {e.endpoint for e in entries.values()} == set(kinds.values())


@pytest.mark.anyio
async def test_signed_callbacks_for_every_kind() -> None:
    """The emulator signs and delivers the callbacks of every kind beside reference2video (the ten
    described field by field too), and the SDK's receiver reads them."""
    endpoints = sorted(k for k in KINDS if k != "reference2video")
    got: list[vidu.Task] = []
    done = anyio.Event()

    def on_update(task: vidu.Task) -> None:
        got.append(task)
        if sum(t.state is vidu.TaskState.SUCCESS for t in got) == len(endpoints):
            done.set()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
        runner = web.AppRunner(make_callback_app(api_key="emu-key", callback_url=url, on_update=on_update))
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            async with raw(api_key="emu-key") as (emu, session):
                ids = set()
                for endpoint in endpoints:
                    body = {**minimal(endpoint), "callback_url": url}
                    status, data = await post(session, f"{emu.base_url}/ent/v2/{endpoint}", body)
                    assert status == 200, data
                    ids.add(data["task_id"])
                with anyio.fail_after(10):
                    await done.wait()
        finally:
            await runner.cleanup()
    assert {t.id for t in got if t.state is vidu.TaskState.SUCCESS} == ids
    assert all(t.creations[0].url for t in got if t.state is vidu.TaskState.SUCCESS)
