"""The ten kinds described field by field, and the synchronous endpoints' requests: the SDK side.

Per endpoint (vidu-api-endpoints.md §5-§18): exactly the documented fields (written here from the
facts file, not read from ``_rules``); the documented minimal body read by ``request_from_json``
and written back unchanged; every documented limit just inside and just outside; the permissive
side where sources contradict (§22); undocumented fields refused (``FieldUnwanted``) and never
sent; local media at every media path (nested ones included) encoded as data URIs.
"""

from __future__ import annotations

import base64
import struct
from pathlib import Path
from typing import Any

import attrs
import pytest
from conftest import load_fixture, png
from hypothesis import given
from hypothesis import strategies as st

import vidu_async as vidu
from vidu_async._convert import request_to_json, sync_request_from_json
from vidu_async._kinds import KINDS, kind_named
from vidu_async._media import resolve_media
from vidu_async._models import SYNC_REQUEST_TYPES, CloneVoiceRequest, PromptRequest, SpeechRequest
from vidu_async.exceptions import RequestValidationError

# --- what the facts file documents --------------------------------------------------------------------

#: Each endpoint's documented request fields, in the docs' order (§5.1-§15.1; §16.1-§18.1).
DOCUMENTED: dict[str, tuple[str, ...]] = {
    "multiframe": (
        "model", "start_image", "image_settings", "resolution", "payload", "callback_url", "watermark",
        "wm_url", "wm_position", "meta_data",
    ),
    "template": (
        "template", "images", "prompt", "seed", "aspect_ratio", "area", "beast", "bgm", "payload",
        "callback_url", "watermark", "wm_position", "wm_url", "meta_data",
    ),
    "template-story": ("story", "images", "payload", "callback_url"),
    "reference2image": (
        "model", "images", "prompt", "seed", "aspect_ratio", "resolution", "payload", "callback_url",
    ),
    "extend": (
        "model", "video_creation_id", "video_url", "images", "prompt", "duration", "resolution", "payload",
        "callback_url",
    ),
    "upscale-new": ("video_url", "video_creation_id", "upscale_resolution", "payload", "callback_url"),
    "lip-sync": (
        "video_url", "audio_url", "text", "speed", "voice_id", "volume", "ref_photo_url", "callback_url",
        "payload",
    ),
    "image2dance": ("image_url", "video_url", "payload", "callback_url"),
    "text2audio": ("model", "prompt", "duration", "seed", "callback_url", "payload"),
    "timing2audio": ("model", "duration", "timing_prompts", "seed", "callback_url", "payload"),
    "audio-tts": (
        "text", "voice_setting_voice_id", "voice_setting_speed", "voice_setting_volume", "voice_setting_pitch",
        "voice_setting_emotion", "pronunciation_dict_tone", "payload",
    ),
    "audio-clone": ("audio_url", "voice_id", "prompt_audio_url", "prompt_text", "text", "payload"),
    "img2video-prompt-recommendation": ("images", "type", "resolution", "count"),
}  # fmt: skip

TYPES: dict[str, type[Any]] = {
    "multiframe": vidu.MultiFrame,
    "template": vidu.Template,
    "template-story": vidu.TemplateStory,
    "reference2image": vidu.Reference2Image,
    "extend": vidu.Extend,
    "upscale-new": vidu.Upscale,
    "lip-sync": vidu.LipSync,
    "image2dance": vidu.Image2Dance,
    "text2audio": vidu.Text2Audio,
    "timing2audio": vidu.Timing2Audio,
}
SYNC = ("audio-tts", "audio-clone", "img2video-prompt-recommendation")
#: Output media per kind (§21).
OUTPUT = {
    **dict.fromkeys(TYPES, "video"),
    "reference2image": "image",
    "text2audio": "audio",
    "timing2audio": "audio",
}
#: The kinds whose ``payload`` the SDK may stamp a fingerprint into (§1.4, §22.10, §22.11).
PAYLOAD = set(TYPES) - {"lip-sync", "text2audio", "timing2audio"}

URL = "https://example.com/a.jpg"
VIDEO_URL = "https://example.com/v.mp4"


def minimal(endpoint: str) -> dict[str, Any]:
    body: dict[str, Any] = load_fixture(f"{endpoint}-request-minimal.json")
    return body


def read(endpoint: str, **changes: Any) -> Any:
    """The minimal body of ``endpoint`` with ``changes`` (``None`` drops a field), read from JSON."""
    body = {k: v for k, v in {**minimal(endpoint), **changes}.items() if v is not None}
    if endpoint in SYNC:
        return sync_request_from_json(body, endpoint=endpoint)
    return vidu.request_from_json(body, endpoint=endpoint)


def problems(endpoint: str, **changes: Any) -> dict[str, str]:
    """The problems (field: reason) of the minimal body with ``changes``, which must be refused."""
    with pytest.raises(RequestValidationError) as info:
        read(endpoint, **changes)
    return {p.field: p.reason for p in info.value.problems}


def wav(seconds: float = 1.0) -> bytes:
    """A silent 8 kHz mono WAV file."""
    data = b"\x00\x00" * int(8000 * seconds)
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    body = (
        b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00\x00\x00\x08moov" + b"\x00\x00\x00\x08mdat"


# --- the seam and the fields -------------------------------------------------------------------------


class TestFields:
    @pytest.mark.parametrize("endpoint", sorted(TYPES))
    def test_a_kind_per_endpoint(self, endpoint: str) -> None:
        kind = KINDS[endpoint]
        assert kind.request_type is TYPES[endpoint]
        assert kind.path == f"/ent/v2/{endpoint}"
        assert kind.output == OUTPUT[endpoint]
        assert kind.payload is (endpoint in PAYLOAD)

    @pytest.mark.parametrize("endpoint", sorted(DOCUMENTED))
    def test_exactly_the_documented_fields(self, endpoint: str) -> None:
        cls = TYPES.get(endpoint) or SYNC_REQUEST_TYPES[endpoint]
        names = tuple("from" if a.name == "from_" else a.name for a in attrs.fields(cls))
        assert names == DOCUMENTED[endpoint]
        assert attrs.fields(cls)  # frozen, keyword-only
        assert cls.__attrs_attrs__ is not None

    def test_nested_objects_are_documented_too(self) -> None:
        assert [a.name for a in attrs.fields(vidu.KeyFrame)] == ["key_image", "prompt", "duration"]
        assert [a.name for a in attrs.fields(vidu.TimingPrompt)] == ["from_", "to", "prompt"]

    @pytest.mark.parametrize("endpoint", sorted(DOCUMENTED))
    def test_minimal_body_read_and_written_back(self, endpoint: str) -> None:
        request = read(endpoint)
        assert request_to_json(request) == minimal(endpoint)

    def test_lip_sync_text_mode_body(self) -> None:
        request = vidu.request_from_json(
            load_fixture("lip-sync-text-request-minimal.json"), endpoint="lip-sync"
        )
        assert request.text == "Welcome back<#1#>let's begin."
        assert request.speed == 1.0

    @pytest.mark.parametrize("endpoint", sorted(DOCUMENTED))
    def test_undocumented_field_refused(self, endpoint: str) -> None:
        assert problems(endpoint, off_peak_x=True) == {"off_peak_x": "FieldUnwanted"}

    @pytest.mark.parametrize(
        ("endpoint", "field"),
        [
            ("multiframe", "seed"),  # Comfy sends it to its own proxy; not documented (§5.1, §22.17)
            ("multiframe", "aspect_ratio"),
            ("extend", "seed"),
            ("extend", "watermark"),  # reseller only (§9.1)
            ("template", "model"),  # no model on model-less endpoints (§1.13)
            ("template", "duration"),
            ("upscale-new", "model"),
            ("lip-sync", "language"),  # one 2025 client only (§22.10)
            ("lip-sync", "character_id"),
            ("image2dance", "model"),
            ("reference2image", "off_peak"),
            ("text2audio", "off_peak"),
        ],
    )
    def test_fields_some_clients_send_are_refused(self, endpoint: str, field: str) -> None:
        assert problems(endpoint, **{field: 1}) == {field: "FieldUnwanted"}

    def test_unwanted_field_inside_an_object(self) -> None:
        settings = [{"key_image": URL, "seed": 3}, {"key_image": URL}]
        assert problems("multiframe", image_settings=settings) == {"image_settings[0].seed": "FieldUnwanted"}

    def test_legacy_template_path(self) -> None:
        """Job files may name ``template2video`` (the old page and the MCP server, §6, §22.8)."""
        request = vidu.request_from_json(minimal("template"), endpoint="template2video")
        assert isinstance(request, vidu.Template)
        assert kind_named("/ent/v2/template2video").path == "/ent/v2/template"

    def test_every_problem_at_once(self) -> None:
        found = problems(
            "multiframe",
            model="",
            start_image=3,
            image_settings=[{"key_image": URL, "duration": 9}],
            wm_position=2,
        )
        assert set(found) == {
            "model",
            "start_image",
            "image_settings",
            "image_settings[0].duration",
            "wm_position",
        }


# --- every documented limit, just inside and just outside --------------------------------------------

CJK = "\u4f60"


def settings(count: int, **changes: Any) -> list[dict[str, Any]]:
    return [{"key_image": URL, **changes} for _ in range(count)]


def events(*spans: tuple[float, float]) -> list[dict[str, Any]]:
    return [{"from": a, "to": b, "prompt": "a door"} for a, b in spans]


INSIDE: list[tuple[str, dict[str, Any]]] = [
    ("multiframe", {"image_settings": settings(2)}),
    ("multiframe", {"image_settings": settings(9)}),
    ("multiframe", {"image_settings": settings(2, duration=2)}),
    ("multiframe", {"image_settings": settings(2, duration=7)}),
    ("multiframe", {"model": "viduq2-pro", "resolution": "540p"}),
    ("multiframe", {"resolution": "1080p"}),
    ("multiframe", {"model": "viduq9-next", "resolution": "4K"}),  # an unknown model: generic checks only
    ("multiframe", {"wm_position": "top_left", "watermark": True, "wm_url": "https://example.com/wm.png"}),
    ("multiframe", {"meta_data": '{"Label":"AIGC"}', "payload": "x" * 1_048_576}),
    ("template", {"prompt": "p" * 2000}),
    ("template", {"aspect_ratio": "1:1"}),
    ("template", {"aspect_ratio": "9:16"}),
    ("template", {"template": "exotic_princess", "area": "japan"}),
    ("template", {"template": "beast_companion", "beast": "wolf"}),
    ("template", {"template": "a_template_added_tomorrow"}),  # an open list (§6.1)
    ("template", {"wm_position": 1, "bgm": True, "seed": 2_147_483_647}),
    ("template", {"wm_position": 4}),
    ("template", {"images": [URL, URL, URL]}),
    ("template-story", {"story": "one_shot", "images": [URL] * 10}),
    ("template-story", {"story": "a_story_added_tomorrow"}),
    ("reference2image", {"images": [URL] * 7}),
    ("reference2image", {"images": None}),  # viduq2: plain text-to-image
    ("reference2image", {"model": "viduq1", "images": [URL], "resolution": "1080p", "aspect_ratio": "3:4"}),
    ("reference2image", {"model": "viduq1", "images": [URL], "aspect_ratio": "auto"}),
    ("reference2image", {"aspect_ratio": "21:9", "resolution": "4K"}),
    ("reference2image", {"aspect_ratio": "auto", "resolution": "2K"}),
    ("reference2image", {"prompt": "p" * 2000, "seed": 0}),
    ("extend", {"video_creation_id": None, "video_url": VIDEO_URL}),
    ("extend", {"video_url": VIDEO_URL}),  # both: the service picks (§9.1)
    ("extend", {"duration": 1}),
    ("extend", {"duration": 7, "images": [URL], "resolution": "540p"}),
    ("extend", {"prompt": "p" * 2000, "model": "viduq2-pro", "resolution": "1080p"}),
    ("upscale-new", {"video_creation_id": None, "video_url": VIDEO_URL}),
    ("upscale-new", {"upscale_resolution": "8K"}),
    ("upscale-new", {"upscale_resolution": "1080p"}),
    ("lip-sync", {"audio_url": None, "text": "abcd"}),
    ("lip-sync", {"audio_url": None, "text": CJK * 2}),
    ("lip-sync", {"audio_url": None, "text": "a" * 2000}),
    ("lip-sync", {"audio_url": None, "text": CJK * 1000}),
    ("lip-sync", {"text": "audio wins", "speed": 0.5, "volume": 0}),
    ("lip-sync", {"speed": 2.0, "volume": 10, "voice_id": "v", "ref_photo_url": URL}),
    ("lip-sync", {"speed": 2}),
    ("image2dance", {"payload": "job-1"}),
    ("text2audio", {"prompt": "p" * 1500}),
    ("text2audio", {"duration": 2}),
    ("text2audio", {"duration": 10}),
    ("text2audio", {"duration": 6.5, "seed": 7}),
    ("text2audio", {"model": "audio2.0"}),  # an unknown model: generic checks only
    ("timing2audio", {"duration": None, "timing_prompts": events((0, 10))}),
    ("timing2audio", {"duration": 2, "timing_prompts": events((0, 2))}),
    ("timing2audio", {"timing_prompts": events((0, 5), (1.5, 8))}),  # events may overlap
    ("timing2audio", {"timing_prompts": [{"from": 0, "to": 1, "prompt": "p" * 1500}]}),
    ("audio-tts", {"text": "t" * 9_999}),
    ("audio-tts", {"voice_setting_speed": 0.5, "voice_setting_volume": 10, "voice_setting_pitch": -12}),
    ("audio-tts", {"voice_setting_speed": 2, "voice_setting_volume": 0, "voice_setting_pitch": 12}),
    ("audio-tts", {"voice_setting_emotion": "calm", "pronunciation_dict_tone": ["omg/oh my god"]}),
    (
        "audio-clone",
        {"text": "t" * 1000, "prompt_text": "Hello.", "prompt_audio_url": "https://example.com/p.mp3"},
    ),
    ("audio-clone", {"voice_id": "vidu01"}),  # the page's own example is 6 characters (§22.20)
    ("img2video-prompt-recommendation", {"type": ["img2video"], "count": 1, "resolution": "360p"}),
    ("img2video-prompt-recommendation", {"type": ["template"], "count": 10, "resolution": "720p"}),
]

OUTSIDE: list[tuple[str, dict[str, Any], str]] = [
    ("multiframe", {"image_settings": settings(1)}, "image_settings"),
    ("multiframe", {"image_settings": settings(10)}, "image_settings"),
    ("multiframe", {"image_settings": None}, "image_settings"),
    ("multiframe", {"image_settings": settings(2, duration=1)}, "image_settings[0].duration"),
    ("multiframe", {"image_settings": settings(2, duration=8)}, "image_settings[1].duration"),
    ("multiframe", {"image_settings": [{"prompt": "no image"}, {"key_image": URL}]}, "image_settings[0].key_image"),
    ("multiframe", {"start_image": None}, "start_image"),
    ("multiframe", {"resolution": "360p"}, "resolution"),
    ("multiframe", {"wm_position": "middle"}, "wm_position"),
    ("multiframe", {"wm_position": 3}, "wm_position"),  # a word here, not 1-4 (§22.7)
    ("multiframe", {"payload": "x" * 1_048_577}, "payload"),
    ("multiframe", {"watermark": "yes"}, "watermark"),
    ("template", {"images": []}, "images"),
    ("template", {"images": None}, "images"),
    ("template", {"template": None}, "template"),
    ("template", {"prompt": "p" * 2001}, "prompt"),
    ("template", {"aspect_ratio": "4:3"}, "aspect_ratio"),
    ("template", {"area": "mars"}, "area"),
    ("template", {"beast": "cat"}, "beast"),
    ("template", {"wm_position": 0}, "wm_position"),
    ("template", {"wm_position": 5}, "wm_position"),
    ("template", {"seed": -1}, "seed"),
    ("template", {"seed": 2_147_483_648}, "seed"),
    ("template", {"callback_url": "ftp://example.com/cb"}, "callback_url"),
    ("template-story", {"images": []}, "images"),
    ("template-story", {"story": ""}, "story"),
    ("reference2image", {"images": [URL] * 8}, "images"),
    ("reference2image", {"model": "viduq1"}, "images"),  # q1 needs a reference image
    ("reference2image", {"model": "viduq1", "images": [URL], "aspect_ratio": "21:9"}, "aspect_ratio"),
    ("reference2image", {"model": "viduq1", "images": [URL], "resolution": "2K"}, "resolution"),
    ("reference2image", {"aspect_ratio": "5:4"}, "aspect_ratio"),
    ("reference2image", {"resolution": "8K"}, "resolution"),
    ("reference2image", {"prompt": "p" * 2001}, "prompt"),
    ("reference2image", {"prompt": None}, "prompt"),
    ("extend", {"video_creation_id": None}, "video_creation_id"),
    ("extend", {"duration": 0}, "duration"),
    ("extend", {"duration": 8}, "duration"),
    ("extend", {"images": [URL, URL]}, "images"),
    ("extend", {"prompt": "p" * 2001}, "prompt"),
    ("extend", {"resolution": "360p"}, "resolution"),
    ("extend", {"video_url": "file:///tmp/v.mp4"}, "video_url"),
    ("upscale-new", {"video_creation_id": None}, "video_url"),
    ("upscale-new", {"upscale_resolution": "720p"}, "upscale_resolution"),
    ("upscale-new", {"upscale_resolution": "16K"}, "upscale_resolution"),
    ("lip-sync", {"audio_url": None}, "audio_url"),
    ("lip-sync", {"video_url": None}, "video_url"),
    ("lip-sync", {"audio_url": None, "text": "abc"}, "text"),
    ("lip-sync", {"audio_url": None, "text": CJK}, "text"),
    ("lip-sync", {"audio_url": None, "text": "a" * 2001}, "text"),
    ("lip-sync", {"audio_url": None, "text": CJK * 1001}, "text"),
    ("lip-sync", {"speed": 0.49}, "speed"),
    ("lip-sync", {"speed": 2.01}, "speed"),
    ("lip-sync", {"volume": -1}, "volume"),
    ("lip-sync", {"volume": 11}, "volume"),
    ("lip-sync", {"volume": 1.5}, "volume"),
    ("image2dance", {"image_url": None}, "image_url"),
    ("image2dance", {"video_url": None}, "video_url"),
    ("text2audio", {"prompt": "p" * 1501}, "prompt"),
    ("text2audio", {"duration": 1.99}, "duration"),
    ("text2audio", {"duration": 10.01}, "duration"),
    ("text2audio", {"duration": "6"}, "duration"),
    ("text2audio", {"model": None}, "model"),
    ("timing2audio", {"timing_prompts": []}, "timing_prompts"),
    ("timing2audio", {"timing_prompts": None}, "timing_prompts"),
    ("timing2audio", {"duration": None, "timing_prompts": events((0, 10.5))}, "timing_prompts[0].to"),
    ("timing2audio", {"timing_prompts": events((3, 3))}, "timing_prompts[0]"),
    ("timing2audio", {"timing_prompts": events((-1, 3))}, "timing_prompts[0].from"),
    ("timing2audio", {"timing_prompts": [{"from": 0, "to": 1, "prompt": "p" * 1501}]}, "timing_prompts[0].prompt"),
    ("timing2audio", {"timing_prompts": [{"from": 0, "to": 1}]}, "timing_prompts[0].prompt"),
    ("timing2audio", {"duration": 1.5}, "duration"),
    ("audio-tts", {"text": "t" * 10_000}, "text"),
    ("audio-tts", {"voice_setting_voice_id": None}, "voice_setting_voice_id"),
    ("audio-tts", {"voice_setting_speed": 2.5}, "voice_setting_speed"),
    ("audio-tts", {"voice_setting_volume": 11}, "voice_setting_volume"),
    ("audio-tts", {"voice_setting_pitch": 13}, "voice_setting_pitch"),
    ("audio-tts", {"voice_setting_pitch": -13}, "voice_setting_pitch"),
    ("audio-tts", {"voice_setting_emotion": "bored"}, "voice_setting_emotion"),
    ("audio-clone", {"text": "t" * 1001}, "text"),
    ("audio-clone", {"voice_id": ""}, "voice_id"),
    ("audio-clone", {"audio_url": None}, "audio_url"),
    ("img2video-prompt-recommendation", {"images": [URL, URL]}, "images"),
    ("img2video-prompt-recommendation", {"type": ["video"]}, "type[0]"),
    ("img2video-prompt-recommendation", {"type": []}, "type"),
    ("img2video-prompt-recommendation", {"count": 0}, "count"),
    ("img2video-prompt-recommendation", {"count": 11}, "count"),
    ("img2video-prompt-recommendation", {"resolution": "1080p"}, "resolution"),
]  # fmt: skip


class TestLimits:
    @pytest.mark.parametrize(("endpoint", "changes"), INSIDE)
    def test_inside(self, endpoint: str, changes: dict[str, Any]) -> None:
        read(endpoint, **changes)

    @pytest.mark.parametrize(("endpoint", "changes", "field"), OUTSIDE)
    def test_outside(self, endpoint: str, changes: dict[str, Any], field: str) -> None:
        assert field in problems(endpoint, **changes)

    @given(st.integers(0, 12))
    def test_key_frame_count(self, count: int) -> None:
        if 2 <= count <= 9:
            read("multiframe", image_settings=settings(count))
        else:
            reason = "FieldLacking" if count == 0 else "FieldItemCountOutOfRange"
            assert problems("multiframe", image_settings=settings(count)) == {"image_settings": reason}

    @given(st.floats(0, 12, allow_nan=False))
    def test_audio_duration(self, seconds: float) -> None:
        if 2 <= seconds <= 10:
            read("text2audio", duration=seconds)
        else:
            assert set(problems("text2audio", duration=seconds)) == {"duration"}

    @given(st.text(alphabet=st.sampled_from(["a", " ", CJK, "\u3042"]), max_size=2100))
    def test_lip_sync_text_length(self, text: str) -> None:
        """4-2000 characters, CJK ones counted two (§11.1)."""
        weight = len(text) + sum(1 for c in text if c in (CJK, "\u3042"))
        if 4 <= weight <= 2000 and text.strip():
            read("lip-sync", audio_url=None, text=text)
        else:
            assert set(problems("lip-sync", audio_url=None, text=text)) == {"text"}


# --- local media at every media path -------------------------------------------------------------------


class TestLocalMedia:
    def test_nested_key_image_from_a_file(self, tmp_path: Path) -> None:
        frame = tmp_path / "f1.png"
        frame.write_bytes(png())
        request = vidu.MultiFrame(
            model="viduq2-turbo",
            start_image=png(),
            image_settings=[vidu.KeyFrame(key_image=frame, duration=3), vidu.KeyFrame(key_image=URL)],
        )
        assert [where for where, _ in request.local_media()] == ["start_image", "image_settings[0].key_image"]
        body = request_to_json(resolve_media(request))
        assert body["start_image"].startswith("data:image/png;base64,")
        assert body["image_settings"][0]["key_image"].startswith("data:image/png;base64,")
        assert body["image_settings"][1] == {"key_image": URL}
        assert "base64" not in repr(request)

    def test_audio_file_in_an_audio_slot(self, tmp_path: Path) -> None:
        line = tmp_path / "line.wav"
        line.write_bytes(wav())
        request = vidu.LipSync(video_url=MP4, audio_url=line)
        body = request_to_json(resolve_media(request))
        assert body["audio_url"].startswith("data:audio/wav;base64,")
        assert body["video_url"].startswith("data:video/mp4;base64,")

    def test_image_in_an_audio_slot_refused(self, tmp_path: Path) -> None:
        wrong = tmp_path / "line.wav"
        wrong.write_bytes(png())
        with pytest.raises(RequestValidationError) as info:
            resolve_media(vidu.LipSync(video_url=VIDEO_URL, audio_url=wrong))
        (problem,) = info.value.problems
        assert problem.field == "audio_url"
        assert "expected an audio file" in problem.message
        assert "a PNG image" in problem.message

    def test_image_bytes_in_a_video_slot_refused(self) -> None:
        with pytest.raises(RequestValidationError) as info:
            vidu.Extend(model="viduq2-turbo", video_url=png())
        assert info.value.fields == ("video_url",)

    @pytest.mark.parametrize(
        ("size", "ok"),
        [((200, 200), True), ((199, 300), False), ((4096, 2000), True), ((4097, 2000), False), ((600, 200), True),
         ((601, 200), False)],
    )  # fmt: skip
    def test_dance_image_sides_and_aspect(self, size: tuple[int, int], ok: bool) -> None:
        """image2dance: each side 200-4096 px, aspect 1:3 to 3:1 (§12.1), not the 128 px and 1:4 of others."""
        if ok:
            vidu.Image2Dance(image_url=png(*size), video_url=VIDEO_URL)
        else:
            with pytest.raises(RequestValidationError) as info:
                vidu.Image2Dance(image_url=png(*size), video_url=VIDEO_URL)
            assert info.value.fields == ("image_url",)

    def test_dance_image_at_most_5_mb(self) -> None:
        vidu.Image2Dance(image_url=png(200, 200, padding=5 * 1024 * 1024 - 2000), video_url=VIDEO_URL)
        with pytest.raises(RequestValidationError, match=r"at most 5\.0 MB"):
            vidu.Image2Dance(image_url=png(200, 200, padding=5 * 1024 * 1024), video_url=VIDEO_URL)

    def test_data_uri_in_a_video_slot(self) -> None:
        uri = "data:video/mp4;base64," + base64.b64encode(MP4).decode()
        request = vidu.Upscale(video_url=uri, upscale_resolution="4K")
        assert request_to_json(request)["video_url"] == uri
        assert "…" in repr(request)

    def test_sync_audio_from_bytes(self) -> None:
        request = CloneVoiceRequest(audio_url=wav(), voice_id="narrator_01", text="Hello there.")
        body = request_to_json(resolve_media(request))
        assert body["audio_url"].startswith("data:audio/wav;base64,")


# --- what is sent ---------------------------------------------------------------------------------------

_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "seed": st.integers(0, 2**31 - 1),
    "payload": st.text(max_size=20),
    "callback_url": st.just("https://example.com/cb"),
    "prompt": st.text(alphabet="abc xyz", min_size=1, max_size=40),
    "watermark": st.booleans(),
    "wm_url": st.just("https://example.com/wm.png"),
    "meta_data": st.just('{"Label":"AIGC"}'),
    "bgm": st.booleans(),
}
_BY_KIND: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "multiframe": {
        "resolution": st.sampled_from(["540p", "720p", "1080p"]),
        "wm_position": st.just("top_right"),
    },
    "template": {"aspect_ratio": st.sampled_from(["16:9", "9:16", "1:1"]), "wm_position": st.integers(1, 4)},
    "reference2image": {"aspect_ratio": st.sampled_from(["16:9", "auto"]), "resolution": st.just("2K")},
    "extend": {"duration": st.integers(1, 7), "resolution": st.just("720p")},
    "upscale-new": {"upscale_resolution": st.sampled_from(["1080p", "2K", "4K", "8K"])},
    "lip-sync": {"speed": st.floats(0.5, 2.0), "volume": st.integers(0, 10), "voice_id": st.just("v1")},
    "text2audio": {"duration": st.floats(2, 10)},
    "timing2audio": {"duration": st.just(10)},
}


@st.composite
def kind_requests(draw: st.DrawFn) -> tuple[str, Any]:
    endpoint = draw(st.sampled_from(sorted(TYPES)))
    options = {**_VALUES, **_BY_KIND.get(endpoint, {})}
    documented = set(DOCUMENTED[endpoint]) - set(minimal(endpoint))
    changes = {name: draw(options[name]) for name in sorted(documented & set(options)) if draw(st.booleans())}
    return endpoint, read(endpoint, **changes)


class TestSent:
    @given(kind_requests())
    def test_only_documented_fields_are_sent(self, drawn: tuple[str, Any]) -> None:
        endpoint, request = drawn
        body = request_to_json(request)
        assert set(body) <= set(DOCUMENTED[endpoint])
        assert vidu.request_from_json(body, endpoint=endpoint) == request

    def test_model_less_kinds_send_no_model(self) -> None:
        for endpoint in ("template", "template-story", "upscale-new", "lip-sync", "image2dance"):
            assert "model" not in request_to_json(read(endpoint))
            assert not hasattr(read(endpoint), "model")

    def test_sync_requests_built_by_keyword(self) -> None:
        speech = SpeechRequest(text="Hi there.", voice_setting_voice_id="v", pronunciation_dict_tone=["a/b"])
        assert request_to_json(speech) == {
            "text": "Hi there.",
            "voice_setting_voice_id": "v",
            "pronunciation_dict_tone": ["a/b"],
        }
        ideas = PromptRequest(images=[URL], type=["template"])
        assert request_to_json(ideas) == {"images": [URL], "type": ["template"]}

    def test_error_names_a_model_less_request_plainly(self) -> None:
        with pytest.raises(RequestValidationError, match=r"invalid Upscale \(1 problem\)"):
            vidu.Upscale(upscale_resolution="2K")


class TestMessages:
    """A refusal reads as the limit it broke, each field named once."""

    @pytest.mark.parametrize(
        ("endpoint", "changes", "field", "message"),
        [
            ("reference2image", {"images": [URL] * 8}, "images", "has 8 items; at most 7 allowed"),
            ("reference2image", {"model": "viduq1"}, "images", "viduq1 takes 1-7 images, got 0"),
            ("multiframe", {"image_settings": settings(1)}, "image_settings", "has 1 item; 2-9 allowed"),
            ("template", {"images": []}, "images", "is required and must not be empty"),
            ("lip-sync", {"speed": 3}, "speed", "must be between 0.5 and 2, got 3"),
            ("timing2audio", {"timing_prompts": events((-1, 3))}, "timing_prompts[0].from", "must be at least 0"),
            ("upscale-new", {"video_creation_id": None}, "video_url", "upscale-new needs video_url or video_creation_id"),
        ],
    )  # fmt: skip
    def test_message(self, endpoint: str, changes: dict[str, Any], field: str, message: str) -> None:
        with pytest.raises(RequestValidationError) as info:
            read(endpoint, **changes)
        mine = [p for p in info.value.problems if p.field == field]
        assert len(mine) == 1, info.value.problems
        assert message in mine[0].message
