"""The converter: requests out in Vidu's exact JSON, responses in leniently, requests in strictly."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
from conftest import FIXTURES, load_fixture
from test_sniff import make_jpeg, make_mov, make_mp4, make_png, make_webp_vp8x

from vidu_async._convert import (
    parse_timestamp,
    request_from_json,
    request_to_json,
    structure_credits,
    structure_task,
    structure_task_list,
    task_to_json,
)
from vidu_async._media import media_to_data_uri, resolve_media
from vidu_async._models import (
    Creation,
    CreditPackage,
    CreditRemain,
    Reference2Video,
    Subject,
    Task,
    TaskState,
    VideoInfo,
)
from vidu_async.exceptions import RequestValidationError, ResponseValidationError

REQUEST_FIXTURES = sorted(p.name for p in FIXTURES.glob("reference2video-request-*.json"))
TASK_FIXTURES = sorted(
    [p.name for p in FIXTURES.glob("reference2video-response-*.json")]
    + [p.name for p in FIXTURES.glob("creations-*.json")]
)
URL = "https://example.com/ref.png"


def _walk(value: Any) -> list[Any]:
    """Every value nested in a JSON document."""
    if isinstance(value, dict):
        return [value, *(v for item in value.values() for v in _walk(item))]
    if isinstance(value, list):
        return [value, *(v for item in value for v in _walk(item))]
    return [value]


class TestReferenceExample:
    """The reseller example of vidu-api.md §2.8, built in Python, is exactly the documented body."""

    REQUEST = Reference2Video(
        model="viduq3",
        subjects=[
            Subject(name="XiaoMing", images=["https://example.com/xiaoming.png"]),
            Subject(name="XiaoHong", images=["https://example.com/xiaohong.png"]),
        ],
        prompt="@XiaoMing and @XiaoHong are cooking together, and both say they love hot pot.",
        duration=5,
    )

    def test_serializes_to_documented_json(self) -> None:
        """``request_to_json`` gives the documented body, key for key."""
        assert request_to_json(self.REQUEST) == load_fixture("reference2video-request-subjects.json")

    def test_no_none_no_empty_lists(self) -> None:
        """Nothing unset is sent: no ``null`` and no ``[]`` anywhere in the body."""
        body = request_to_json(self.REQUEST)
        assert all(v is not None and v != [] for v in _walk(body))
        assert json.loads(json.dumps(body)) == body

    def test_documented_response(self) -> None:
        """The documented create response parses: string credits, ``@1`` echo, ``task_id`` as ``id``."""
        task = structure_task(load_fixture("reference2video-response-reseller.json"))
        assert task.id == "your_task_id_here"
        assert task.state is TaskState.CREATED
        assert task.raw_state == "created"
        assert task.credits == 15
        assert task.prompt == "@1 and @2 are cooking together, and both say they love hot pot."
        assert task.created_at == datetime(2025, 1, 1, 15, 41, 31, 968916, tzinfo=UTC)
        assert (task.duration, task.resolution, task.seed) == (8, "1080p", 123456789)
        assert (task.movement_amplitude, task.payload, task.off_peak) == ("auto", "", False)
        assert task.extra == {}

    def test_documented_request_reads_back(self) -> None:
        """The documented body, read strictly, is the same request as the one built in Python."""
        assert request_from_json(load_fixture("reference2video-request-subjects.json")) == self.REQUEST


class TestRequestRoundTrip:
    """Every documented request body survives json -> model -> json unchanged."""

    @pytest.mark.parametrize("name", REQUEST_FIXTURES)
    def test_round_trip(self, name: str) -> None:
        """``request_to_json(request_from_json(body)) == body``."""
        body = load_fixture(name)
        assert request_to_json(request_from_json(body)) == body

    def test_fixtures_found(self) -> None:
        """The glob found the four documented request bodies."""
        assert len(REQUEST_FIXTURES) == 4


class TestRequestToJson:
    """Requests out: Vidu's names, unset fields left out, media encoded."""

    def test_false_zero_and_empty_string_are_sent(self) -> None:
        """Only ``None`` and empty lists are dropped: ``false``, ``0`` and ``""`` are real values."""
        request = Reference2Video(
            model="viduq2",
            subjects=[Subject(id="1", images=[URL], voice_id="")],
            prompt="@1 runs.",
            seed=0,
            bgm=False,
            off_peak=False,
            auto_subjects=False,
            payload="",
        )
        assert request_to_json(request) == {
            "model": "viduq2",
            "subjects": [{"id": "1", "images": [URL], "voice_id": ""}],
            "auto_subjects": False,
            "prompt": "@1 runs.",
            "seed": 0,
            "bgm": False,
            "payload": "",
            "off_peak": False,
        }

    def test_every_scalar_field(self) -> None:
        """Every optional field is sent under its own name."""
        request = Reference2Video(
            model="viduq3",
            images=[URL],
            prompt="Go.",
            duration=8,
            resolution="1080p",
            aspect_ratio="9:16",
            audio=True,
            audio_type="all",
            voice_id="v-1",
            bgm=True,
            seed=42,
            movement_amplitude="small",
            payload="p",
            off_peak=True,
            watermark=True,
            wm_position=2,
            wm_url="https://example.com/wm.png",
            meta_data='{"Label": "1"}',
            callback_url="https://example.com/cb",
            sounds=["https://example.com/a.mp3"],
        )
        body = request_to_json(request)
        assert body["sounds"] == ["https://example.com/a.mp3"]
        assert body["meta_data"] == '{"Label": "1"}'
        assert set(body) == {
            "model", "images", "sounds", "prompt", "duration", "resolution", "aspect_ratio", "audio",
            "audio_type", "voice_id", "bgm", "seed", "movement_amplitude", "payload", "off_peak",
            "watermark", "wm_position", "wm_url", "meta_data", "callback_url",
        }  # fmt: skip

    def test_sound_effect_alias_sent_as_documented(self) -> None:
        """``sound-effect_only`` is accepted on input and sent as ``sound_effect_only``."""
        request = Reference2Video(model="viduq3", images=[URL], prompt="Go.", audio_type="sound-effect_only")
        assert request_to_json(request)["audio_type"] == "sound_effect_only"
        body = request_from_json(
            {"model": "viduq3", "images": [URL], "prompt": "Go.", "audio_type": "sound-effect_only"}
        )
        assert request_to_json(body)["audio_type"] == "sound_effect_only"

    @pytest.mark.parametrize(
        ("data", "mime"),
        [
            pytest.param(make_png(200, 200), "image/png", id="png"),
            pytest.param(make_jpeg(200, 200), "image/jpeg", id="jpeg"),
            pytest.param(make_webp_vp8x(200, 200), "image/webp", id="webp"),
        ],
    )
    def test_image_bytes_become_data_uris(self, data: bytes, mime: str) -> None:
        """Bytes are sent as ``data:<sniffed type>;base64,...`` and decode back to the same bytes."""
        request = Reference2Video(model="viduq3", subjects=[Subject(name="A", images=[data])], prompt="@A")
        sent = request_to_json(resolve_media(request))["subjects"][0]["images"][0]
        head, _, encoded = sent.partition(",")
        assert head == f"data:{mime};base64"
        assert base64.b64decode(encoded) == data

    @pytest.mark.parametrize(
        ("data", "mime"), [(make_mp4(), "video/mp4"), (make_mov(), "video/quicktime")], ids=["mp4", "mov"]
    )
    def test_video_bytes_become_data_uris(self, data: bytes, mime: str) -> None:
        """Video bytes get their sniffed video type."""
        request = Reference2Video(model="viduq2-pro", images=[URL], videos=[data], prompt="Go.")
        assert request_to_json(resolve_media(request))["videos"][0].startswith(f"data:{mime};base64,")

    def test_path_must_be_resolved_first(self, tmp_path: Path) -> None:
        """A ``Path`` is read at submit time by another module; serializing one is a ``TypeError``."""
        image = tmp_path / "ming.png"
        image.write_bytes(make_png(200, 200))
        request = Reference2Video(model="viduq3", subjects=[Subject(name="A", images=[image])], prompt="@A")
        with pytest.raises(TypeError, match=r"ming\.png.*must be resolved first"):
            request_to_json(request)
        (sent,) = request_to_json(resolve_media(request))["subjects"][0]["images"]
        assert sent.startswith("data:image/png;base64,")

    def test_bytes_must_be_resolved_first(self) -> None:
        """The converter never encodes media: ``bytes`` are resolved into a data URI before, off the loop."""
        request = Reference2Video(model="viduq2", images=[make_png(200, 200)], prompt="Go.")
        with pytest.raises(TypeError, match="must be resolved first"):
            request_to_json(request)

    def test_media_to_data_uri_fallback(self) -> None:
        """Unrecognized bytes get the fallback type."""
        assert media_to_data_uri(b"abc") == "data:application/octet-stream;base64,YWJj"
        assert media_to_data_uri(b"abc", "audio/mpeg") == "data:audio/mpeg;base64,YWJj"


class TestRequestFromJson:
    """Requests in Vidu's JSON are read as strictly as the service reads them."""

    def test_unknown_fields(self) -> None:
        """Unknown top-level and subject fields are ``FieldUnwanted``, all reported."""
        body = {
            "model": "viduq3",
            "subjects": [{"name": "A", "images": [URL], "colour": "red"}],
            "prompt": "@A",
            "enhance": True,
        }
        with pytest.raises(RequestValidationError) as info:
            request_from_json(body)
        assert {(p.field, p.reason) for p in info.value.problems} == {
            ("enhance", "FieldUnwanted"),
            ("subjects[0].colour", "FieldUnwanted"),
        }

    @pytest.mark.parametrize("body", [[], "x", None, 5], ids=["list", "str", "null", "int"])
    def test_not_an_object(self, body: object) -> None:
        """A body that is not an object is ``BadRequest`` on ``body``."""
        with pytest.raises(RequestValidationError) as info:
            request_from_json(body, what="line 3")
        assert info.value.problems[0][::2] == ("body", "BadRequest")
        assert str(info.value).startswith("invalid line 3")

    @pytest.mark.parametrize(
        ("changes", "field", "words"),
        [
            pytest.param({"images": URL}, "images", "expected a JSON array, got string", id="images-str"),
            pytest.param({"images": [URL, 5]}, "images[1]", "expected a string, got number", id="image-num"),
            pytest.param({"sounds": [True]}, "sounds[0]", "expected a string, got boolean", id="sound-bool"),
            pytest.param({"duration": "5"}, "duration", "expected an integer, got str", id="duration-str"),
            pytest.param(
                {"duration": 5.0}, "duration", "expected an integer, got float", id="duration-float"
            ),
            pytest.param({"audio": "true"}, "audio", "expected true or false", id="audio-str"),
        ],
    )
    def test_json_types(self, changes: dict[str, Any], field: str, words: str) -> None:
        """Wrong JSON types are named with their JSON type and path."""
        body = {"model": "viduq2", "images": [URL], "prompt": "Go.", **changes}
        with pytest.raises(RequestValidationError) as info:
            request_from_json(body)
        assert any(p.field == field and words in p.message for p in info.value.problems), info.value

    @pytest.mark.parametrize(
        ("subjects", "field"),
        [
            pytest.param(["A"], "subjects[0]", id="not-object"),
            pytest.param([{"name": "A", "images": URL}], "subjects[0].images", id="images-str"),
            pytest.param([{"name": "A", "images": [URL, {}]}], "subjects[0].images[1]", id="image-obj"),
            pytest.param([{"name": "A", "videos": "v"}], "subjects[0].videos", id="videos-str"),
            pytest.param({"name": "A"}, "subjects", id="subjects-object"),
        ],
    )
    def test_subject_json_types(self, subjects: Any, field: str) -> None:
        """Wrong JSON types inside subjects are named with their path."""
        with pytest.raises(RequestValidationError) as info:
            request_from_json({"model": "viduq2-pro", "subjects": subjects, "prompt": "@A"})
        assert field in info.value.fields

    @pytest.mark.parametrize("missing", ["model", "prompt"])
    def test_required(self, missing: str) -> None:
        """A missing model or prompt is ``FieldLacking``, reported once."""
        body = {"model": "viduq2", "images": [URL], "prompt": "Go."}
        del body[missing]
        with pytest.raises(RequestValidationError) as info:
            request_from_json(body)
        assert [p.reason for p in info.value.problems if p.field == missing] == ["FieldLacking"]

    def test_nulls_mean_unset(self) -> None:
        """``null`` values are treated as absent."""
        request = request_from_json({"model": "viduq2", "images": [URL], "prompt": "Go.", "duration": None})
        assert request.duration is None

    def test_all_problems_at_once(self) -> None:
        """JSON-shape problems and model rules are reported together."""
        body = {"model": "viduq3", "images": [URL, 3], "prompt": "Go.", "duration": 99, "extra": 1}
        with pytest.raises(RequestValidationError) as info:
            request_from_json(body)
        assert set(info.value.fields) == {"extra", "images[1]", "duration"}


class TestStructureTask:
    """Tasks are read leniently from create, query, list-row and callback bodies."""

    @pytest.mark.parametrize("name", TASK_FIXTURES)
    def test_every_fixture_parses(self, name: str) -> None:
        """Every documented task body parses (the official example needs the path's task id)."""
        task = structure_task(load_fixture(name), task_id="916205061116293120")
        assert task.id
        assert task.state is not TaskState.UNKNOWN

    def test_official_doc_without_id(self) -> None:
        """The official query example has no ``id``: the path's task id fills it."""
        task = structure_task(load_fixture("creations-success-official-doc.json"), task_id="42")
        assert task.id == "42"
        assert task.state is TaskState.SUCCESS
        assert task.creations == (
            Creation(
                id="your_creations_id",
                url="your_generated_results_url",
                cover_url="your_generated_results_cover_url",
            ),
        )

    def test_body_id_wins_over_path(self) -> None:
        """An id in the body is kept even when a path id is given."""
        assert structure_task({"id": "1"}, task_id="2").id == "1"
        assert structure_task({"task_id": "1"}, task_id="2").id == "1"

    @pytest.mark.parametrize(
        "body", [{}, {"id": ""}, {"id": None, "task_id": ""}], ids=["none", "empty", "null"]
    )
    def test_no_id(self, body: dict[str, Any]) -> None:
        """A body without any id is unreadable."""
        with pytest.raises(ResponseValidationError, match="no id"):
            structure_task(body)

    def test_numeric_id(self) -> None:
        """A numeric id becomes a string."""
        assert structure_task({"id": 916205061116293120}).id == "916205061116293120"

    def test_success_fixture(self) -> None:
        """The success example: creations, echoes and extras."""
        task = structure_task(load_fixture("creations-success.json"))
        assert task.is_terminal
        assert (task.credits, task.payload, task.bgm, task.off_peak) == (40, "job-42", False, False)
        assert task.creations[0].watermarked_url == "https://cdn.example.com/video_wm.mp4"

    def test_failed_fixture(self) -> None:
        """The failed example keeps its ``err_code``."""
        task = structure_task(load_fixture("creations-failed.json"))
        assert (task.state, task.err_code, task.credits, task.creations) == (
            TaskState.FAILED,
            "CreationPolicyViolation",
            0,
            (),
        )

    def test_callback_body(self) -> None:
        """A callback body is a task like any other."""
        task = structure_task(load_fixture("callback-signed.json")["body"])
        assert (task.id, task.state, task.payload) == ("916205061116293120", TaskState.SUCCESS, "job-42")

    def test_unknown_fields_kept(self) -> None:
        """Unknown fields land in ``extra``, on the task and on each creation."""
        body = {
            "id": "1",
            "state": "success",
            "cus_priority": 3,
            "client_request_id": None,
            "creations": [{"id": "c", "url": "u", "attachments": [{"k": "v"}], "speech_url": "s"}],
        }
        task = structure_task(body)
        assert task.extra == {"cus_priority": 3, "client_request_id": None}
        assert task.creations[0].extra == {"attachments": [{"k": "v"}], "speech_url": "s"}

    def test_known_extras(self) -> None:
        """``err_msg``, ``progress``, ``type`` and ``key_id`` are read."""
        task = structure_task(
            {"id": "1", "err_msg": "m", "progress": "42.5", "type": "reference2video", "key_id": "k"}
        )
        assert (task.err_msg, task.progress, task.type, task.key_id) == ("m", 42.5, "reference2video", "k")

    @pytest.mark.parametrize(
        ("raw", "state"),
        [
            ("queuing", TaskState.QUEUEING),
            ("queueing", TaskState.QUEUEING),
            ("PROCESSING", TaskState.PROCESSING),
            ("scheduled", TaskState.UNKNOWN),
            ("cancelled", TaskState.UNKNOWN),
        ],
    )
    def test_states(self, raw: str, state: TaskState) -> None:
        """``queuing`` is ``QUEUEING``; unknown states are ``UNKNOWN`` with the raw string kept."""
        task = structure_task({"id": "1", "state": raw})
        assert task.state is state
        assert task.raw_state == raw

    @pytest.mark.parametrize(("raw", "text"), [(3, "3"), ([1], "[1]"), ({"a": 1}, "{'a': 1}")])
    def test_state_not_a_string(self, raw: object, text: str) -> None:
        """A state that is not a string is ``UNKNOWN``, kept as text."""
        task = structure_task({"id": "1", "state": raw})
        assert (task.state, task.raw_state) == (TaskState.UNKNOWN, text)

    def test_no_state(self) -> None:
        """No state at all is ``UNKNOWN`` with an empty raw state."""
        task = structure_task({"id": "1", "state": None})
        assert (task.state, task.raw_state) == (TaskState.UNKNOWN, "")

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            (40, 40),
            ("15", 15),
            ("15.0", 15),
            (" 15 ", 15),
            (15.0, 15),
            ("1e3", 1000),
            (0, 0),
        ],
        ids=["int", "str", "str-float", "spaces", "float", "exponent", "zero"],
    )
    def test_credits(self, raw: object, expected: int) -> None:
        """Credits may be an int, an integral float or a numeric string."""
        assert structure_task({"id": "1", "credits": raw}).credits == expected

    @pytest.mark.parametrize(
        "raw", ["15.5", "abc", True, 15.5, "", [15], "nan", "inf"], ids=lambda v: repr(v)
    )
    def test_bad_credits(self, raw: object) -> None:
        """Credits that are not a whole number are ``None``, the value kept in ``extra``."""
        task = structure_task({"id": "1", "state": "success", "credits": raw})
        assert (task.state, task.credits, task.extra) == (TaskState.SUCCESS, None, {"credits": raw})

    def test_bad_field_inside_a_creation(self) -> None:
        """A creation's unreadable field takes its default, the value kept in the creation's ``extra``."""
        task = structure_task({"id": "1", "creations": [{"id": "a"}, {"id": ["b"], "url": "u"}]})
        assert task.creations == (Creation(id="a"), Creation(url="u", extra={"id": ["b"]}))
        assert task.extra == {}

    def test_video_read_in_part(self) -> None:
        """A ``video`` with one garbled number keeps the others; the creation keeps the object as sent."""
        raw = {"fps": "fast", "duration": 8, "resolution": {"width": "wide", "height": 720}}
        (creation,) = structure_task({"id": "1", "creations": [{"url": "u", "video": raw}]}).creations
        assert creation.video == VideoInfo(duration=8.0, height=720)
        assert creation.extra == {"video": raw}

    def test_several_bad_fields(self) -> None:
        """Every unreadable field is kept in ``extra``; the readable ones are read."""
        body = {"id": "1", "state": "queueing", "credits": "x", "duration": "y", "created_at": "z", "seed": 7}
        task = structure_task(body)
        assert (task.credits, task.duration, task.created_at, task.seed) == (None, None, None, 7)
        assert task.extra == {"credits": "x", "duration": "y", "created_at": "z"}

    @pytest.mark.parametrize("body", [[], "task", 3, None], ids=["list", "str", "int", "null"])
    def test_not_an_object(self, body: object) -> None:
        """A body that is not an object is unreadable."""
        with pytest.raises(ResponseValidationError, match="expected an object"):
            structure_task(body, task_id="1")

    def test_video_info(self) -> None:
        """Video details come from ``video`` with a nested or a flat size."""
        body = {
            "id": "1",
            "creations": [
                {"video": {"duration": "8", "fps": 24, "resolution": {"width": 1280, "height": "720"}}},
                {"video": {"width": 640, "height": 360}},
                {"video": {}},
            ],
        }
        videos = [c.video for c in structure_task(body).creations]
        assert videos == [
            VideoInfo(duration=8.0, fps=24.0, width=1280, height=720),
            VideoInfo(width=640, height=360),
            VideoInfo(),
        ]

    @pytest.mark.parametrize(("raw", "expected"), [("u", ("u",)), (["a", "b"], ("a", "b")), ([], ())])
    def test_moderation_url(self, raw: object, expected: tuple[str, ...]) -> None:
        """``moderation_url`` may be one string or a list."""
        assert (
            structure_task({"id": "1", "creations": [{"url": "u", "moderation_url": raw}]})
            .creations[0]
            .moderation_url
            == expected
        )

    @pytest.mark.parametrize(("raw", "expected"), [("true", True), ("False", False), (1, True), (0, False)])
    def test_lenient_bools(self, raw: object, expected: bool) -> None:
        """Booleans may come as strings or 0/1."""
        assert structure_task({"id": "1", "bgm": raw}).bgm is expected

    def test_images_echo(self) -> None:
        """Echoed images are a tuple; a single string is one image."""
        assert structure_task({"id": "1", "images": ["a", "b"]}).images == ("a", "b")
        assert structure_task({"id": "1", "images": "a"}).images == ("a",)

    def test_nulls_are_defaults(self) -> None:
        """``null`` fields take their defaults."""
        task = structure_task({"id": "1", "err_code": None, "creations": None, "payload": None})
        assert (task.err_code, task.creations, task.payload) == ("", (), "")


class TestLenientFields:
    """Issue 11, item 6: one field of the wrong shape no longer makes a task unreadable."""

    SUCCESS = load_fixture("creations-success.json")

    @pytest.mark.parametrize(
        ("field", "raw"),
        [
            ("credits", ""),
            ("created_at", "garbage"),
            ("progress", "50%"),
            ("seed", 1.5),
            ("bgm", "yes"),
            ("payload", {}),
            ("duration", [8]),
            ("images", {"a": 1}),
        ],
    )
    def test_field_becomes_its_default(
        self, field: str, raw: object, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The field takes its default, its value is kept in ``extra`` under its own name (with a
        debug log), and the rest of the task is read as usual."""
        caplog.set_level(logging.DEBUG, logger="vidu_async")
        good = structure_task(self.SUCCESS)
        task = structure_task({**self.SUCCESS, field: raw})
        assert task == attrs.evolve(
            good, **{field: attrs.fields_dict(Task)[field].default, "extra": {**good.extra, field: raw}}
        )
        assert task.state is TaskState.SUCCESS
        assert any(field in r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG)

    @pytest.mark.parametrize(
        "raw",
        [[None], [{}], [{"id": None, "url": None}], [3, "x", []]],
        ids=["null", "empty", "nulls", "scalars"],
    )
    def test_creations_dropped(self, raw: list[Any], caplog: pytest.LogCaptureFixture) -> None:
        """Creations that are not objects, or that hold nothing, are dropped with a debug log."""
        caplog.set_level(logging.DEBUG, logger="vidu_async")
        task = structure_task({**self.SUCCESS, "creations": raw})
        assert (task.state, task.creations) == (TaskState.SUCCESS, ())
        assert "creations" not in task.extra
        assert any(r.levelno == logging.DEBUG for r in caplog.records)

    def test_good_creations_kept(self) -> None:
        """Only the unreadable elements are dropped, in order."""
        raw = [None, {"id": "c1", "url": "u1"}, {}, {"id": "c2", "url": "u2"}]
        task = structure_task({"id": "1", "state": "success", "creations": raw})
        assert task.creations == (Creation(id="c1", url="u1"), Creation(id="c2", url="u2"))

    @pytest.mark.parametrize("raw", [{}, "x", 3], ids=["object", "str", "int"])
    def test_creations_not_a_list(self, raw: object) -> None:
        """``creations`` that is not a list is ``()``, its value kept in ``extra``."""
        task = structure_task({"id": "1", "state": "success", "creations": raw})
        assert (task.creations, task.extra) == ((), {"creations": raw})

    @pytest.mark.parametrize("raw", [["1"], {"a": 1}, True], ids=["list", "object", "bool"])
    def test_unreadable_id(self, raw: object) -> None:
        """An id that cannot be read makes the body unreadable, naming the field."""
        with pytest.raises(ResponseValidationError, match="id"):
            structure_task({"id": raw, "state": "success"}, task_id="1")

    def test_state_required_where_asked(self) -> None:
        """A query answer must say its state (``require_state``); a non-string state is still ``UNKNOWN``."""
        for body in ({"id": "1"}, {"id": "1", "state": None}, {"id": "1", "state": ""}):
            assert structure_task(body).state is TaskState.UNKNOWN
            with pytest.raises(ResponseValidationError, match="no state"):
                structure_task(body, require_state=True)
        assert structure_task({"id": "1", "state": 3}, require_state=True).raw_state == "3"

    def test_kept_values_round_trip(self) -> None:
        """``task_to_json`` writes kept values back as they came, so the task reads back equal."""
        body = {
            **self.SUCCESS,
            "credits": "",
            "payload": {},
            "created_at": "garbage",
            "creations": [{"id": ["c"], "url": "u", "video": {"fps": "fast", "duration": 8}}],
        }
        task = structure_task(body)
        assert structure_task(json.loads(json.dumps(task_to_json(task)))) == task


class TestTimestamps:
    """``created_at``: RFC 3339 with nanoseconds or offsets, or epoch seconds, always aware UTC."""

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            pytest.param("2025-01-01T15:41:31.968916Z", datetime(2025, 1, 1, 15, 41, 31, 968916), id="micro"),
            pytest.param(
                "2026-01-20T06:52:02.323137590Z", datetime(2026, 1, 20, 6, 52, 2, 323137), id="nano"
            ),
            pytest.param("2025-01-01T15:41:31.5Z", datetime(2025, 1, 1, 15, 41, 31, 500000), id="tenths"),
            pytest.param("2025-01-01T15:41:31Z", datetime(2025, 1, 1, 15, 41, 31), id="whole"),
            pytest.param("2025-01-01t15:41:31z", datetime(2025, 1, 1, 15, 41, 31), id="lower-case"),
            pytest.param("2025-01-01 15:41:31", datetime(2025, 1, 1, 15, 41, 31), id="space-no-zone"),
            pytest.param(
                "2025-01-01T23:41:31.968916+08:00", datetime(2025, 1, 1, 15, 41, 31, 968916), id="plus8"
            ),
            pytest.param("2025-01-01T10:11:31-0530", datetime(2025, 1, 1, 15, 41, 31), id="minus0530"),
            pytest.param("2025-01-02T00:41:31+09:00", datetime(2025, 1, 1, 15, 41, 31), id="day-before"),
            pytest.param(1735746091, datetime(2025, 1, 1, 15, 41, 31), id="epoch-int"),
            pytest.param(1735746091.5, datetime(2025, 1, 1, 15, 41, 31, 500000), id="epoch-float"),
        ],
    )
    def test_parse(self, raw: object, expected: datetime) -> None:
        """Each form gives the same instant in UTC, truncated to microseconds."""
        moment = parse_timestamp(raw)
        assert moment == expected.replace(tzinfo=UTC)
        assert moment.tzinfo is UTC
        assert structure_task({"id": "1", "created_at": raw}).created_at == moment

    @pytest.mark.parametrize(
        "raw",
        ["yesterday", "2025-13-01T00:00:00Z", "2025-01-01", "2025-01-01T25:00:00Z", True, [], 1e20, ""],
        ids=lambda v: repr(v)[:20],
    )
    def test_unreadable(self, raw: object) -> None:
        """Anything else is ``None``, the value kept in ``extra`` (never a crash)."""
        task = structure_task({"id": "1", "created_at": raw})
        assert (task.created_at, task.extra) == (None, {"created_at": raw})


class TestStructureCredits:
    """``GET /ent/v2/credits`` bodies."""

    def test_fixture(self) -> None:
        """The documented example gives one metered row."""
        credits = structure_credits(load_fixture("credits.json"))
        assert credits.remains == (
            CreditRemain(
                type="metered", credit_remain=1200, concurrency_limit=5, current_concurrency=2, queue_count=1
            ),
        )
        assert (credits.credit_remain, credits.concurrency_limit, credits.queue_count) == (1200, 5, 1)

    def test_remaining_credits_alias(self) -> None:
        """The field table's name ``remaining_credits`` is read as ``remains``."""
        credits = structure_credits({"remaining_credits": [{"type": "test", "credit_remain": "30"}]})
        assert credits.remains == (CreditRemain(type="test", credit_remain=30),)
        assert credits.extra == {}

    def test_remains_wins(self) -> None:
        """When both names come, ``remains`` is read and the other kept in ``extra``."""
        credits = structure_credits(
            {"remains": [{"credit_remain": 1}], "remaining_credits": [{"credit_remain": 2}]}
        )
        assert credits.credit_remain == 1
        assert credits.extra == {"remaining_credits": [{"credit_remain": 2}]}

    def test_packages_and_extras(self) -> None:
        """Packages (``show_detail=true``) keep their dates as sent; unknown fields go to ``extra``."""
        body = {
            "remains": [],
            "packages": [
                {
                    "id": 7,
                    "name": "Pro",
                    "type": "metered",
                    "concurrency": 5,
                    "credit_amount": 10000,
                    "credit_remain": 9000,
                    "created_at": "2025-01-01T00:00:00Z",
                    "valid_to": "2026-01-01T00:00:00Z",
                    "renewal": "auto",
                }
            ],
            "org": "o-1",
        }
        credits = structure_credits(body)
        assert credits.packages == (
            CreditPackage(
                id="7",
                name="Pro",
                type="metered",
                concurrency=5,
                credit_amount=10000,
                credit_remain=9000,
                created_at="2025-01-01T00:00:00Z",
                valid_to="2026-01-01T00:00:00Z",
                extra={"renewal": "auto"},
            ),
        )
        assert credits.extra == {"org": "o-1"}

    def test_lenient_rows(self) -> None:
        """A row's unreadable field is ``None`` (kept in the row's ``extra``); rows that are not
        objects, or empty, are dropped; a ``packages`` that is not a list is kept in ``extra``."""
        credits = structure_credits(
            {"remains": [{"credit_remain": 1}, {"queue_count": "many"}, None, {}], "packages": "none"}
        )
        assert credits.remains == (
            CreditRemain(credit_remain=1),
            CreditRemain(extra={"queue_count": "many"}),
        )
        assert (credits.packages, credits.extra) == ((), {"packages": "none"})

    @pytest.mark.parametrize("body", [[], None, "x"], ids=["list", "null", "str"])
    def test_not_an_object(self, body: object) -> None:
        """A body that is not an object is unreadable."""
        with pytest.raises(ResponseValidationError):
            structure_credits(body)


class TestStructureTaskList:
    """``GET /ent/v2/tasks`` pages."""

    def test_fixture(self) -> None:
        """The documented page: one task with a creation and its video, and a next page token."""
        tasks, token = structure_task_list(load_fixture("tasks-list.json"))
        assert token == "abc"
        assert [t.id for t in tasks] == ["916205061116293120"]
        assert tasks[0].key_id == "k_1"
        assert tasks[0].creations[0].video == VideoInfo(duration=8.0, fps=24.0, width=1280, height=720)

    @pytest.mark.parametrize(
        "body",
        [{}, {"tasks": None, "next_page_token": None}, {"tasks": [], "next_page_token": ""}],
        ids=["empty", "nulls", "blank"],
    )
    def test_last_page(self, body: dict[str, Any]) -> None:
        """No tasks and no token: an empty last page."""
        assert structure_task_list(body) == ([], "")

    def test_numeric_token(self) -> None:
        """A numeric token is read as a string."""
        assert structure_task_list({"tasks": [], "next_page_token": 20}) == ([], "20")

    def test_row_with_a_bad_field(self) -> None:
        """A row with an unreadable field is read like any task: the field kept in ``extra``."""
        tasks, _ = structure_task_list({"tasks": [{"id": "1"}, {"id": "2", "credits": "x"}]})
        assert [(t.id, t.credits, t.extra) for t in tasks] == [("1", None, {}), ("2", None, {"credits": "x"})]

    def test_unreadable_rows_skipped(self, caplog: pytest.LogCaptureFixture) -> None:
        """Rows without a readable id (which nothing could match) are skipped, each with a debug
        log; the rest of the page is read."""
        caplog.set_level(logging.DEBUG, logger="vidu_async")
        rows = [{"id": "1", "state": "success"}, {"state": "success"}, [], {"id": ["x"]}, {"id": "5"}]
        tasks, token = structure_task_list({"tasks": rows, "next_page_token": "n"})
        assert ([t.id for t in tasks], token) == (["1", "5"], "n")
        skipped = [r for r in caplog.records if r.levelno == logging.DEBUG and "row" in r.getMessage()]
        assert len(skipped) == 3

    @pytest.mark.parametrize(
        "body",
        [[], {"tasks": {"id": "1"}}, {"tasks": "x"}, {"tasks": [], "next_page_token": ["a"]}],
        ids=["list-body", "tasks-object", "tasks-str", "token-list"],
    )
    def test_unreadable(self, body: object) -> None:
        """Wrong shapes are ``ResponseValidationError``."""
        with pytest.raises(ResponseValidationError):
            structure_task_list(body)

    def test_rows_are_tasks(self) -> None:
        """Rows are full tasks: states and extras too."""
        tasks, _ = structure_task_list({"tasks": [{"id": "1", "state": "queuing", "template": "t"}]})
        assert tasks == [Task(id="1", state=TaskState.QUEUEING, raw_state="queuing", extra={"template": "t"})]
