"""Property tests: any JSON in gives a model or our own error; valid requests round-trip; limits bite."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Literal

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_sniff import data_uri, make_png

from vidu_async import _rules
from vidu_async._convert import (
    converter,
    request_from_json,
    request_to_json,
    structure_credits,
    structure_task,
    structure_task_list,
)
from vidu_async._models import Creation, Credits, Reference2Video, Subject, Task, TaskState
from vidu_async.exceptions import RequestValidationError, ResponseValidationError

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- any JSON ------------------------------------------------------------------------------------

RESPONSE_KEYS = [
    "id", "task_id", "state", "raw_state", "err_code", "err_msg", "credits", "payload", "creations",
    "created_at", "progress", "type", "model", "prompt", "images", "duration", "seed", "aspect_ratio",
    "resolution", "movement_amplitude", "bgm", "audio", "audio_type", "off_peak", "watermark", "key_id",
    "extra", "url", "cover_url", "watermarked_url", "moderation_url", "video", "fps", "width", "height",
    "remains", "remaining_credits", "packages", "credit_remain", "concurrency_limit", "current_concurrency",
    "queue_count", "credit_amount", "valid_to", "tasks", "next_page_token",
]  # fmt: skip

WEIRD_STRINGS = st.sampled_from(
    [
        "", " ", "15", "15.0", "15.5", "-0", "1e3", "1e400", "nan", "inf", "-inf", "true", "False",
        "queuing", "queueing", "success", "SUCCESS", "failed", "unknown",
        "2025-01-01T15:41:31.968916Z", "2026-01-20T06:52:02.323137590Z", "2025-01-01T23:41:31+08:00",
        "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "2025-02-30T00:00:00Z",
        "9" * 5000, "\x00", "@1", "916205061116293120",
    ]
)  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20)
    | WEIRD_STRINGS
)
KEYS = st.sampled_from(RESPONSE_KEYS) | st.text(max_size=8)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=8),
    max_leaves=20,
)
SHALLOW = SCALARS | st.lists(SCALARS, max_size=3) | st.dictionaries(KEYS, SCALARS, max_size=4)
TASK_LIKE = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=20) | st.integers(min_value=0)},
    optional={
        **{key: SHALLOW for key in RESPONSE_KEYS if key != "id"},
        "creations": st.lists(st.dictionaries(KEYS, SHALLOW, max_size=6), max_size=2) | SHALLOW,
    },
)
CREDITS_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "remains": st.lists(st.dictionaries(KEYS, JSON, max_size=6), max_size=3) | JSON,
        "remaining_credits": JSON,
        "packages": st.lists(st.dictionaries(KEYS, JSON, max_size=6), max_size=3) | JSON,
    },
)
LIST_LIKE = st.fixed_dictionaries(
    {}, optional={"tasks": st.lists(TASK_LIKE | JSON, max_size=3) | JSON, "next_page_token": JSON}
)


class TestAnyJSON:
    """Any decoded JSON gives a model or ``ResponseValidationError``, never another exception."""

    @SETTINGS
    @given(body=JSON | TASK_LIKE, task_id=st.none() | st.text(max_size=5))
    def test_structure_task(self, body: Any, task_id: str | None) -> None:
        """``structure_task`` reads a task or raises ``ResponseValidationError``."""
        try:
            task = structure_task(body, task_id=task_id)
        except ResponseValidationError:
            return
        assert isinstance(task, Task)
        assert isinstance(task.id, str)
        assert task.id
        assert isinstance(task.state, TaskState)
        assert isinstance(task.raw_state, str)
        assert task.credits is None or isinstance(task.credits, int)
        assert task.progress is None or math.isfinite(task.progress)

    @SETTINGS
    @given(body=JSON | CREDITS_LIKE)
    def test_structure_credits(self, body: Any) -> None:
        """``structure_credits`` reads credits or raises ``ResponseValidationError``."""
        try:
            credits = structure_credits(body)
        except ResponseValidationError:
            return
        assert isinstance(credits, Credits)
        assert isinstance(credits.credit_remain, int)
        assert isinstance(credits.queue_count, int)

    @SETTINGS
    @given(body=JSON | LIST_LIKE)
    def test_structure_task_list(self, body: Any) -> None:
        """``structure_task_list`` reads a page or raises ``ResponseValidationError``."""
        try:
            tasks, token = structure_task_list(body)
        except ResponseValidationError:
            return
        assert all(isinstance(t, Task) for t in tasks)
        assert isinstance(token, str)


# --- junk in known fields -----------------------------------------------------------------------

TASK_FIELDS = [a.name for a in attrs.fields(Task) if a.name not in {"id", "state", "raw_state", "extra"}]
CREATION_FIELDS = [a.name for a in attrs.fields(Creation) if a.name != "extra"]
VIDEO_KEYS = st.sampled_from(["duration", "fps", "width", "height", "resolution"])
JUNK_CREATION = st.dictionaries(
    st.sampled_from(CREATION_FIELDS) | KEYS, JSON | st.dictionaries(VIDEO_KEYS, JSON, max_size=5), max_size=6
)
#: A task with a valid id and state, and anything at all in every other field it may have.
JUNK_TASK = st.fixed_dictionaries(
    {
        "id": st.text(min_size=1, max_size=20) | st.integers(min_value=0),
        "state": st.sampled_from([s.value for s in TaskState]) | WEIRD_STRINGS | st.text(max_size=10),
    },
    optional={
        **dict.fromkeys(TASK_FIELDS, JSON),
        "creations": st.lists(JUNK_CREATION | JSON, max_size=3) | JSON,
    },
)


class TestJunkInKnownFields:
    """Leniency is per field: only the id and the state decide whether a task can be read."""

    @SETTINGS
    @given(body=JUNK_TASK)
    def test_task_always_read(self, body: dict[str, Any]) -> None:
        """Any object with a valid id and state reads into a task with that id and state; what it
        keeps aside is exactly what was sent."""
        task = structure_task(body)
        assert task.id == str(body["id"])
        assert task.raw_state == body["state"]
        assert task.state is TaskState.parse(body["state"])
        assert all(value is body[key] for key, value in task.extra.items())
        assert all(isinstance(c, Creation) and c != Creation() for c in task.creations)

    @SETTINGS
    @given(data=st.data(), good=st.lists(JUNK_TASK, max_size=3), other=st.lists(JSON, max_size=3))
    def test_page_keeps_readable_rows(
        self, data: st.DataObject, good: list[dict[str, Any]], other: list[Any]
    ) -> None:
        """Rows that cannot be read are skipped; every row with a valid id and state is returned."""
        rows = data.draw(st.permutations(good + other))
        tasks, _ = structure_task_list({"tasks": rows})
        assert Counter(str(row["id"]) for row in good) <= Counter(task.id for task in tasks)


# --- valid requests ------------------------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z\u4e00-\u9fa5][A-Za-z0-9_\u4e00-\u9fa5]{0,7}", fullmatch=True)
PNG_URIS = [
    data_uri(make_png(256, 256)),
    data_uri(make_png(128, 512)),
    data_uri(make_png(300, 200), "image/jpeg"),
]
IMAGES = st.builds("https://example.com/img/{}.png".format, st.integers(0, 10_000)) | st.sampled_from(
    PNG_URIS
)
VIDEOS = st.builds("https://example.com/vid/{}.mp4".format, st.integers(0, 10_000))
SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
PROSE = st.text(alphabet=st.characters(exclude_characters="@", exclude_categories=SURROGATES), max_size=120)
OPTIONAL_URL = st.none() | st.builds("https://example.com/hook/{}".format, st.integers(0, 99))


@st.composite
def subjects_for(draw: st.DrawFn, rule: _rules.ModelRule) -> tuple[list[Subject], list[str]]:
    """Image subjects within every count limit, plus video subjects where the model takes them."""
    most = min(_rules.MAX_SUBJECTS, rule.max_image_subjects, _rules.MAX_SUBJECT_IMAGES_TOTAL)
    names = draw(st.lists(NAMES, min_size=1, max_size=most, unique=True))
    budget = _rules.MAX_SUBJECT_IMAGES_TOTAL - len(names)
    subjects = []
    for name in names:
        more = draw(st.integers(0, min(_rules.MAX_IMAGES_PER_SUBJECT - 1, budget)))
        budget -= more
        images = draw(st.lists(IMAGES, min_size=1 + more, max_size=1 + more))
        server_id = draw(st.none() | st.just("srv-1"))
        voice_id = draw(st.none() | st.sampled_from(["", "voice-1"]))
        subjects.append(Subject(name=name, images=images, server_id=server_id, voice_id=voice_id))
    if rule.videos:
        for i in range(draw(st.integers(0, rule.max_video_subjects))):
            subjects.append(
                Subject(name=f"Video{i}-{len(names)}", videos=draw(st.lists(VIDEOS, min_size=1, max_size=1)))
            )
    return subjects, names


@st.composite
def valid_requests(draw: st.DrawFn) -> Reference2Video:
    """A request inside every documented limit of its model."""
    model = draw(st.sampled_from(sorted(_rules.MODEL_RULES)))
    rule = _rules.MODEL_RULES[model]
    shapes = [name for name, ok in (("subjects", rule.subject_call), ("images", rule.non_subject_call)) if ok]
    kwargs: dict[str, Any] = {"model": model}
    if draw(st.sampled_from(shapes)) == "subjects":
        kwargs["subjects"], names = draw(subjects_for(rule))
        refs = draw(st.lists(st.sampled_from(names), min_size=1, max_size=4))
        kwargs["prompt"] = " and ".join(f"@{r}" for r in refs) + " " + draw(PROSE)
        kwargs["auto_subjects"] = draw(st.none() | st.booleans())
    else:
        videos = draw(st.lists(VIDEOS, max_size=rule.max_videos)) if rule.videos else []
        most = rule.max_images_with_videos if videos else rule.max_images
        kwargs["images"] = draw(st.lists(IMAGES, min_size=1, max_size=most))
        kwargs["videos"] = videos
        kwargs["prompt"] = "Scene: " + draw(PROSE)
        kwargs["bgm"] = draw(st.none() | st.booleans())
    duration = draw(st.none() | st.sampled_from(rule.allowed_durations()))
    kwargs["duration"] = duration
    kwargs["resolution"] = draw(st.none() | st.sampled_from(rule.resolutions_for(duration)))
    kwargs["aspect_ratio"] = draw(
        st.none()
        | st.sampled_from(["16:9", "9:16", "1:1", "4:3", "3:4", "auto"])
        | st.builds("{}:{}".format, st.integers(1, 64), st.integers(1, 64))
    )
    kwargs["audio"] = draw(st.none() | st.booleans())
    kwargs["audio_type"] = draw(st.none() | st.sampled_from([*_rules.AUDIO_TYPES, "sound-effect_only"]))
    kwargs["movement_amplitude"] = draw(st.none() | st.sampled_from(_rules.MOVEMENT_AMPLITUDES))
    kwargs["seed"] = draw(st.none() | st.integers(0, _rules.MAX_SEED))
    kwargs["payload"] = draw(st.none() | st.text(max_size=40))
    kwargs["off_peak"] = draw(st.none() | st.booleans())
    kwargs["watermark"] = draw(st.none() | st.booleans())
    kwargs["wm_position"] = draw(st.none() | st.sampled_from(_rules.WM_POSITIONS))
    kwargs["wm_url"] = draw(OPTIONAL_URL)
    kwargs["callback_url"] = draw(OPTIONAL_URL)
    kwargs["meta_data"] = draw(st.none() | st.just('{"Label": "1", "ContentProducer": "me"}'))
    return Reference2Video(**kwargs)


def _no_empty(value: Any) -> bool:
    if isinstance(value, dict):
        return all(v is not None and v != [] and _no_empty(v) for v in value.values())
    if isinstance(value, list):
        return all(_no_empty(v) for v in value)
    return True


class TestValidRequests:
    """Requests generated inside the model table construct, serialize and read back equal."""

    @SETTINGS
    @given(request=valid_requests())
    def test_round_trip(self, request: Reference2Video) -> None:
        """``request_from_json(request_to_json(r)) == r`` with the strict parser."""
        body = request_to_json(request)
        assert _no_empty(body)
        assert body["model"] == request.model
        assert request_from_json(body) == request

    @SETTINGS
    @given(request=valid_requests())
    def test_json_matches_fields(self, request: Reference2Video) -> None:
        """Every field that is set is sent under its own name, and nothing else is."""
        body = request_to_json(request)
        expected = {
            a.name
            for a in attrs.fields(Reference2Video)
            if getattr(request, a.name) is not None and getattr(request, a.name) != ()
        }
        assert set(body) == expected


# --- one step outside ----------------------------------------------------------------------------


def _outside_steps(request: Reference2Video) -> list[tuple[str, dict[str, Any]]]:
    """(field named, changes) pairs that each break exactly one documented limit."""
    rule = _rules.MODEL_RULES[request.model]
    durations = rule.allowed_durations()
    bad_resolution = next(
        r for r in (*_rules.RESOLUTIONS, "4k") if r not in rule.resolutions_for(request.duration)
    )
    steps: list[tuple[str, dict[str, Any]]] = [
        ("duration", {"duration": max(durations) + 1}),
        ("duration", {"duration": min(durations) - 1}),
        ("resolution", {"resolution": bad_resolution}),
        ("prompt", {"prompt": request.prompt + "x" * _rules.MAX_PROMPT_CHARS}),
        ("seed", {"seed": -1}),
        ("seed", {"seed": _rules.MAX_SEED + 1}),
        ("wm_position", {"wm_position": 0}),
        ("wm_position", {"wm_position": 5}),
        ("aspect_ratio", {"aspect_ratio": "0:1"}),
        ("audio_type", {"audio_type": "music"}),
        ("movement_amplitude", {"movement_amplitude": "huge"}),
        ("callback_url", {"callback_url": "not a url"}),
        ("payload", {"payload": "p" * (_rules.MAX_PAYLOAD_CHARS + 1)}),
    ]
    url = "https://example.com/extra.png"
    if request.is_subject_call:
        subjects = list(request.subjects)
        first = subjects[0]
        extra = [Subject(name=f"Ω{i}", images=[url]) for i in range(_rules.MAX_SUBJECTS + 1 - len(subjects))]
        overfull = attrs.evolve(first, images=[url] * (_rules.MAX_IMAGES_PER_SUBJECT + 1), videos=[])
        steps += [
            ("subjects", {"subjects": subjects + extra}),
            ("subjects[0].images", {"subjects": [overfull, *subjects[1:]]}),
            (
                f"subjects[{len(subjects)}].name",
                {"subjects": [*subjects, Subject(name=first.name, images=[url])]},
            ),
            ("prompt", {"prompt": request.prompt + " @Ωnobody", "auto_subjects": None}),
            ("subjects", {"images": [url]}),
        ]
    else:
        limit = rule.max_images_with_videos if request.videos else rule.max_images
        steps += [
            ("images", {"images": [url] * (limit + 1)}),
            ("images", {"images": [], "videos": []}),
        ]
        if not rule.videos:
            steps.append(("videos", {"videos": ["https://example.com/v.mp4"]}))
    return steps


class TestOneStepOutside:
    """A valid request moved just outside one limit fails, naming that field."""

    @SETTINGS
    @given(request=valid_requests(), data=st.data())
    def test_names_the_field(self, request: Reference2Video, data: st.DataObject) -> None:
        """Construction (``attrs.evolve`` validates again) raises, naming the broken field."""
        field, changes = data.draw(st.sampled_from(_outside_steps(request)), label="step")
        with pytest.raises(RequestValidationError) as info:
            attrs.evolve(request, **changes)
        assert field in info.value.fields, str(info.value)

    @SETTINGS
    @given(request=valid_requests(), data=st.data())
    def test_json_names_the_field(self, request: Reference2Video, data: st.DataObject) -> None:
        """The same step in the JSON body is refused by the strict parser, naming the field."""
        field, changes = data.draw(st.sampled_from(_outside_steps(request)), label="step")
        body = request_to_json(request)
        for name, value in changes.items():
            if value is None or value == []:
                body.pop(name, None)
            elif name == "subjects":
                body[name] = [converter.unstructure(s, Subject) for s in value]
            else:
                body[name] = value
        with pytest.raises(RequestValidationError) as info:
            request_from_json(body)
        assert field in info.value.fields, str(info.value)
