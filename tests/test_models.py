"""Request models and their validation: every documented rule, every problem reported at once."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
from test_sniff import data_uri, make_jpeg, make_mov, make_mp4, make_png, make_webp_vp8l

from vidu_async import _rules, _validate
from vidu_async._convert import request_from_json
from vidu_async._models import (
    Creation,
    CreditPackage,
    CreditRemain,
    Credits,
    Reference2Video,
    Subject,
    Task,
    TaskState,
    VideoInfo,
    media_repr,
)
from vidu_async._validate import media_bytes_problems, request_problems
from vidu_async.exceptions import Problem, RequestValidationError

URL = "https://example.com/ref.png"
VIDEO_URL = "https://example.com/motion.mp4"
MIB = 1024 * 1024


def subject(name: str = "Ming", *images: Any, **kwargs: Any) -> Subject:
    return Subject(name=name, images=list(images) or [URL], **kwargs)


def subject_call(**changes: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"model": "viduq3", "subjects": [subject()], "prompt": "@Ming cooks hot pot."}
    kwargs.update(changes)
    return kwargs


def flat_call(**changes: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"model": "viduq2", "images": [URL], "prompt": "A cat walks."}
    kwargs.update(changes)
    return kwargs


def rejected(**kwargs: Any) -> RequestValidationError:
    with pytest.raises(RequestValidationError) as info:
        Reference2Video(**kwargs)
    return info.value


def problem(error: RequestValidationError, field: str) -> Problem:
    found = [p for p in error.problems if p.field == field]
    assert found, f"no problem for {field!r} in {error}"
    return found[0]


class TestAllProblemsAtOnce:
    """Validation reports every broken rule in one error, not just the first."""

    def test_many_problems_each_named(self) -> None:
        """Seven distinct problems in one request: each field is named, in one exception."""
        error = rejected(
            model="viduq3",
            subjects=[subject("Ming"), subject("Ming")],
            prompt="@Ming and @Hong " + "x" * _rules.MAX_PROMPT_CHARS,
            duration=99,
            resolution="4k",
            seed=-5,
            wm_position=7,
            aspect_ratio="wide",
            callback_url="not a url",
        )
        for field in (
            "subjects[1].name",
            "prompt",
            "duration",
            "resolution",
            "seed",
            "wm_position",
            "aspect_ratio",
            "callback_url",
        ):
            assert field in error.fields
        assert len(error.problems) >= 8
        text = str(error)
        assert text.startswith("invalid Reference2Video (model 'viduq3') (")
        assert all(f"  {p}" in text for p in error.problems)

    def test_prompt_reports_length_and_unknown_reference(self) -> None:
        """A prompt can carry two problems at once: too long and an unknown reference."""
        error = rejected(**subject_call(prompt="@Hong " + "x" * _rules.MAX_PROMPT_CHARS))
        messages = [p.message for p in error.problems if p.field == "prompt"]
        assert any("characters" in m for m in messages)
        assert any("@Hong" in m for m in messages)

    def test_request_problems_returns_empty_for_a_valid_request(self) -> None:
        """``request_problems`` lists nothing for a valid request."""
        assert request_problems(Reference2Video(**subject_call()), subject_type=Subject) == []


class TestTypes:
    """Values of the wrong Python type are reported clearly, never crash."""

    @pytest.mark.parametrize(
        ("changes", "field", "words"),
        [
            pytest.param({"duration": "5"}, "duration", "expected an integer, got str", id="duration-str"),
            pytest.param({"duration": True}, "duration", "expected an integer, got bool", id="duration-bool"),
            pytest.param({"seed": 1.5}, "seed", "expected an integer, got float", id="seed-float"),
            pytest.param({"wm_position": "1"}, "wm_position", "expected an integer", id="wm-str"),
            pytest.param({"audio": "yes"}, "audio", "expected true or false, got str", id="audio-str"),
            pytest.param({"audio": 1}, "audio", "expected true or false, got int", id="audio-int"),
            pytest.param({"off_peak": "false"}, "off_peak", "expected true or false", id="off-peak"),
            pytest.param(
                {"resolution": 720}, "resolution", "expected a string, got int", id="resolution-int"
            ),
            pytest.param({"payload": {"a": 1}}, "payload", "expected a string, got dict", id="payload-dict"),
            pytest.param({"audio_type": 3}, "audio_type", "expected a string", id="audio-type-int"),
            pytest.param({"model": 3}, "model", "expected a model name", id="model-int"),
            pytest.param({"model": "  "}, "model", "expected a model name", id="model-blank"),
            pytest.param({"prompt": None}, "prompt", "expected a string, got NoneType", id="prompt-none"),
            pytest.param({"subjects": "Ming"}, "subjects", "expected a list, got str", id="subjects-str"),
            pytest.param(
                {"subjects": subject()}, "subjects", "expected a list, got Subject", id="subjects-one"
            ),
            pytest.param({"subjects": 5}, "subjects", "expected a list, got int", id="subjects-int"),
            pytest.param(
                {"subjects": [{"name": "Ming"}]}, "subjects[0]", "expected a Subject", id="subject-dict"
            ),
        ],
    )
    def test_subject_call_type_errors(self, changes: dict[str, Any], field: str, words: str) -> None:
        """A wrong type in a subject call names the field and the type."""
        assert words in problem(rejected(**subject_call(**changes)), field).message

    @pytest.mark.parametrize(
        ("changes", "field", "words"),
        [
            pytest.param({"images": URL}, "images", "expected a list, got str", id="images-str"),
            pytest.param({"images": b"\x89PNG"}, "images", "expected a list, got bytes", id="images-bytes"),
            pytest.param(
                {"images": [URL], "videos": VIDEO_URL}, "videos", "expected a list", id="videos-str"
            ),
            pytest.param(
                {"sounds": "https://x/a.mp3"}, "sounds", "expected a list, got str", id="sounds-str"
            ),
            pytest.param({"sounds": 5}, "sounds", "expected a list, got int", id="sounds-int"),
            pytest.param({"sounds": [5]}, "sounds[0]", "expected a URL string", id="sound-int"),
            pytest.param(
                {"images": [5]}, "images[0]", "expected a URL, data URI, Path or bytes", id="image-int"
            ),
        ],
    )
    def test_flat_call_type_errors(self, changes: dict[str, Any], field: str, words: str) -> None:
        """A wrong type in a non-subject call names the field and the type."""
        assert words in problem(rejected(**flat_call(**changes)), field).message

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            pytest.param({"name": 5, "images": [URL]}, "subjects[0].name", id="name-int"),
            pytest.param(
                {"name": "Ming", "voice_id": 7, "images": [URL]}, "subjects[0].voice_id", id="voice"
            ),
            pytest.param(
                {"name": "Ming", "server_id": 7, "images": [URL]}, "subjects[0].server_id", id="server"
            ),
            pytest.param({"name": "Ming", "images": URL}, "subjects[0].images", id="images-str"),
            pytest.param(
                {"name": "Ming", "images": [URL], "videos": VIDEO_URL}, "subjects[0].videos", id="videos"
            ),
        ],
    )
    def test_subject_type_errors(self, kwargs: dict[str, Any], field: str) -> None:
        """A wrong type inside a subject names ``subjects[i].field``."""
        error = rejected(model="viduq2-pro", subjects=[Subject(**kwargs)], prompt="@Ming and @5 run.")
        assert field in error.fields

    def test_sequences_become_tuples(self) -> None:
        """Lists and generators given for list fields are stored as tuples."""
        request = Reference2Video(
            model="viduq2", images=(u for u in [URL, URL]), sounds=["https://x/a.mp3"], prompt="Go."
        )
        assert request.images == (URL, URL)
        assert request.sounds == ("https://x/a.mp3",)


class TestShape:
    """A request is a subject call or a non-subject call, and the model must take that shape."""

    def test_both_shapes(self) -> None:
        """Subjects and images together are refused on ``subjects``."""
        assert "not both" in problem(rejected(**subject_call(images=[URL])), "subjects").message

    def test_subjects_and_videos(self) -> None:
        """Subjects with flat videos are refused too."""
        assert "subjects" in rejected(**subject_call(model="viduq2-pro", videos=[VIDEO_URL])).fields

    def test_neither_shape(self) -> None:
        """No subjects and no images is ``FieldLacking`` on ``images``."""
        assert problem(rejected(model="viduq3", prompt="hi"), "images").reason == "FieldLacking"

    def test_auto_subjects_alone(self) -> None:
        """``auto_subjects=True`` lets the service pick subjects, so neither list is needed."""
        assert Reference2Video(model="viduq3", auto_subjects=True, prompt="@Anyone waves.").auto_subjects

    @pytest.mark.parametrize("model", ["viduq3-mix", "vidu1.5"])
    def test_model_without_subject_call(self, model: str) -> None:
        """Models that only take images refuse subjects."""
        assert "does not take subjects" in problem(rejected(**subject_call(model=model)), "subjects").message

    def test_model_without_non_subject_call(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A model that only takes subjects refuses images (no such model today; the rule exists)."""
        monkeypatch.setitem(
            _rules.MODEL_RULES,
            "subjects-only",
            _rules.ModelRule(name="subjects-only", non_subject_call=False),
        )
        assert (
            "only takes subjects" in problem(rejected(**flat_call(model="subjects-only")), "images").message
        )

    @pytest.mark.parametrize(
        ("kwargs", "expected"),
        [
            pytest.param(subject_call(), True, id="subjects"),
            pytest.param(flat_call(), False, id="images"),
        ],
    )
    def test_is_subject_call(self, kwargs: dict[str, Any], expected: bool) -> None:
        """``is_subject_call`` tells the two shapes apart."""
        assert Reference2Video(**kwargs).is_subject_call is expected


class TestPrompt:
    """The prompt is required and at most 5000 characters."""

    @pytest.mark.parametrize("prompt", ["", "   \n"], ids=["empty", "blank"])
    def test_empty(self, prompt: str) -> None:
        """An empty or blank prompt is ``FieldLacking``."""
        assert problem(rejected(**flat_call(prompt=prompt)), "prompt").reason == "FieldLacking"

    def test_longest(self) -> None:
        """Exactly 5000 characters (counted as code points, CJK included) is accepted."""
        prompt = "猫" * _rules.MAX_PROMPT_CHARS
        assert len(Reference2Video(**flat_call(prompt=prompt)).prompt) == _rules.MAX_PROMPT_CHARS

    def test_too_long(self) -> None:
        """5001 characters is refused, with the count in the message."""
        error = rejected(**flat_call(prompt="x" * (_rules.MAX_PROMPT_CHARS + 1)))
        assert "5001 characters" in problem(error, "prompt").message


class TestReferences:
    """``@name`` references in a subject call's prompt must match a subject."""

    @pytest.mark.parametrize(
        ("names", "prompt"),
        [
            pytest.param(["Ming", "Hong"], "@Ming and @Hong cook.", id="plain"),
            pytest.param(["小明", "小红"], "@小明和@小红在吃火锅。", id="chinese-adjacent"),
            pytest.param(["小明", "小红"], "@小明 和 @小红 在吃火锅", id="chinese-spaced"),
            pytest.param(["Ming"], "[@Ming] waves.", id="bracketed"),
            pytest.param(["Ming"], "@Ming's hat.", id="possessive"),
            pytest.param(["Ming"], "@Ming, write to ming@example.com.", id="email-ignored"),
            pytest.param(["Ming"], "@Ming waves @@ the crowd.", id="double-at"),
            pytest.param(["Ming", "Hong"], "@1 and @2 cook.", id="positional"),
            pytest.param(["Anne-Marie"], "@Anne-Marie dances.", id="hyphenated-name"),
            pytest.param(["Ming"], "Ming waves.", id="no-reference"),
        ],
    )
    def test_accepted(self, names: list[str], prompt: str) -> None:
        """Names (Chinese too), ``[@name]``, positional ``@1`` and e-mail addresses are fine."""
        request = Reference2Video(model="viduq3", subjects=[subject(n) for n in names], prompt=prompt)
        assert request.prompt == prompt

    @pytest.mark.parametrize(
        ("names", "prompt", "unknown"),
        [
            pytest.param(["Ming"], "@Ming and @Hong cook.", "@Hong", id="unknown-name"),
            pytest.param(["Ming", "Hong"], "@3 cooks.", "@3", id="positional-too-high"),
            pytest.param(["Ming"], "@0 cooks.", "@0", id="positional-zero"),
            pytest.param(["小明"], "@小红在吃火锅", "@小红在吃火锅", id="chinese-unknown"),
            pytest.param(["Ming"], "@ming cooks.", "@ming", id="case-sensitive"),
        ],
    )
    def test_unknown(self, names: list[str], prompt: str, unknown: str) -> None:
        """A reference that matches no subject is named, with the known subjects."""
        error = rejected(model="viduq3", subjects=[subject(n) for n in names], prompt=prompt)
        message = problem(error, "prompt").message
        assert f"{unknown} matches no subject" in message
        assert ", ".join(names) in message

    def test_each_unknown_reported_once(self) -> None:
        """The same unknown reference twice is listed once."""
        error = rejected(**subject_call(prompt="@Hong and @Hong and @Li"))
        assert problem(error, "prompt").message.startswith("@Hong, @Li matches no subject")

    def test_auto_subjects_skips_the_check(self) -> None:
        """With ``auto_subjects=True`` the service may resolve other names, so they are not checked."""
        request = Reference2Video(**subject_call(prompt="@Ming meets @Stranger.", auto_subjects=True))
        assert request.auto_subjects is True

    def test_id_handle(self) -> None:
        """A 2025-style subject with ``id`` is referenced by its id."""
        request = Reference2Video(model="viduq2", subjects=[Subject(id="7", images=[URL])], prompt="@7 runs.")
        assert request.subjects[0].handle == "7"


class TestSubjects:
    """Subject-call rules: names, counts, slots and video subjects."""

    def test_missing_name(self) -> None:
        """A subject without name or id is ``FieldLacking`` on its name."""
        error = rejected(model="viduq3", subjects=[Subject(images=[URL])], prompt="Someone waves.")
        assert problem(error, "subjects[0].name").reason == "FieldLacking"

    def test_duplicate_names(self) -> None:
        """A repeated name points at the first subject that used it."""
        error = rejected(**subject_call(subjects=[subject("A"), subject("B"), subject("A")], prompt="@A @B"))
        assert "already the name of subjects[0]" in problem(error, "subjects[2].name").message

    def test_name_and_id_collide(self) -> None:
        """A name equal to another subject's id is a duplicate handle."""
        error = rejected(
            model="viduq2", subjects=[Subject(id="1", images=[URL]), subject("1")], prompt="@1 runs."
        )
        assert "subjects[1].name" in error.fields

    def test_server_id_without_images(self) -> None:
        """A saved subject (``server_id``) needs no images."""
        request = Reference2Video(
            model="viduq3", subjects=[Subject(name="Ming", server_id="srv-1")], prompt="@Ming waves."
        )
        assert request.subjects[0].images == ()

    def test_no_images_no_server_id(self) -> None:
        """A subject with neither images nor ``server_id`` is ``FieldLacking``, labelled with its name."""
        error = rejected(model="viduq3", subjects=[Subject(name="Ming")], prompt="@Ming waves.")
        found = problem(error, "subjects[0].images")
        assert found.reason == "FieldLacking"
        assert "(subject 'Ming')" in found.message

    @pytest.mark.parametrize(("images", "videos"), [(4, 0), (2, 2), (3, 1)], ids=["4+0", "2+2", "3+1"])
    def test_three_slots_shared(self, images: int, videos: int) -> None:
        """Images and videos share a subject's 3 slots."""
        s = Subject(name="Ming", images=[URL] * images, videos=[VIDEO_URL] * videos)
        error = rejected(model="viduq2-pro", subjects=[s], prompt="@Ming waves.")
        assert problem(error, "subjects[0].images").reason == "FieldItemCountOutOfRange"

    def test_three_slots_filled(self) -> None:
        """Two images and one video fill the 3 slots exactly (viduq2-pro)."""
        s = Subject(name="Ming", images=[URL] * 2, videos=[VIDEO_URL])
        assert Reference2Video(model="viduq2-pro", subjects=[s], prompt="@Ming waves.").subjects == (s,)

    def test_more_than_seven_subjects(self) -> None:
        """Eight subjects are too many."""
        many = [subject(f"S{i}") for i in range(_rules.MAX_SUBJECTS + 1)]
        error = rejected(model="viduq3", subjects=many, prompt="@S0 waves.")
        assert problem(error, "subjects").reason == "FieldItemCountOutOfRange"

    def test_more_than_seven_images_in_all(self) -> None:
        """Seven images across subjects is the limit: 3+3+2 is refused."""
        subjects = [subject("A", URL, URL, URL), subject("B", URL, URL, URL), subject("C", URL, URL)]
        error = rejected(model="viduq3", subjects=subjects, prompt="@A @B @C")
        assert "8 images in all" in problem(error, "subjects").message

    def test_videos_refused_outside_q2_pro(self) -> None:
        """Subject videos are a viduq2-pro feature."""
        s = Subject(name="Ming", videos=[VIDEO_URL])
        error = rejected(model="viduq3", subjects=[s], prompt="@Ming waves.")
        assert "does not take reference videos" in problem(error, "subjects[0].videos").message

    def test_q2_pro_image_subject_limit(self) -> None:
        """viduq2-pro takes at most 4 image subjects."""
        subjects = [subject(f"S{i}") for i in range(5)]
        error = rejected(model="viduq2-pro", subjects=subjects, prompt="@S0 waves.")
        assert "at most 4 image subjects, got 5" in problem(error, "subjects").message

    def test_q2_pro_video_subject_limit(self) -> None:
        """viduq2-pro takes at most 2 video subjects."""
        subjects = [Subject(name=f"V{i}", videos=[VIDEO_URL]) for i in range(3)]
        error = rejected(model="viduq2-pro", subjects=subjects, prompt="@V0 waves.")
        assert "at most 2 video subjects, got 3" in problem(error, "subjects").message

    def test_q2_pro_mixed_subjects_inside(self) -> None:
        """Four image subjects and two video subjects is the q2-pro maximum."""
        subjects = [subject(f"S{i}") for i in range(4)] + [
            Subject(name=f"V{i}", videos=[VIDEO_URL]) for i in range(2)
        ]
        assert len(Reference2Video(model="viduq2-pro", subjects=subjects, prompt="@S0 @V1").subjects) == 6

    def test_seven_image_subjects_on_other_models(self) -> None:
        """Other models take up to seven image subjects."""
        subjects = [subject(f"S{i}") for i in range(7)]
        assert len(Reference2Video(model="viduq2", subjects=subjects, prompt="@S0").subjects) == 7


class TestFlatMedia:
    """Non-subject calls: image and video counts per model."""

    def test_videos_without_images(self) -> None:
        """Videos alone are not enough: a non-subject call needs an image."""
        error = rejected(model="viduq2-pro", videos=[VIDEO_URL], prompt="Go.")
        assert problem(error, "images").reason == "FieldLacking"

    @pytest.mark.parametrize("model", ["viduq2", "viduq3", "viduq3-mix", "viduq1", "vidu2.0", "vidu1.5"])
    def test_videos_only_on_q2_pro(self, model: str) -> None:
        """Every model but viduq2-pro refuses reference videos."""
        error = rejected(**flat_call(model=model, videos=[VIDEO_URL]))
        assert "only viduq2-pro" in problem(error, "videos").message

    def test_too_many_videos(self) -> None:
        """viduq2-pro takes at most 2 videos."""
        error = rejected(**flat_call(model="viduq2-pro", videos=[VIDEO_URL] * 3))
        assert problem(error, "videos").reason == "FieldItemCountOutOfRange"

    def test_images_with_videos(self) -> None:
        """viduq2-pro takes at most 4 images when videos are sent, 7 otherwise."""
        error = rejected(**flat_call(model="viduq2-pro", images=[URL] * 5, videos=[VIDEO_URL]))
        assert "when videos are sent" in problem(error, "images").message
        assert len(Reference2Video(**flat_call(model="viduq2-pro", images=[URL] * 7)).images) == 7

    def test_vidu15_three_images(self) -> None:
        """vidu1.5 takes at most 3 images."""
        error = rejected(**flat_call(model="vidu1.5", images=[URL] * 4))
        assert "vidu1.5 takes at most 3" in problem(error, "images").message

    def test_unknown_model_seven_images(self) -> None:
        """An unknown model gets the generic limit of 7 images."""
        error = rejected(**flat_call(model="viduq9", images=[URL] * 8))
        assert "the service takes at most 7" in problem(error, "images").message

    def test_too_many_sounds(self) -> None:
        """At most 7 sounds."""
        error = rejected(**flat_call(sounds=["https://x/a.mp3"] * 8))
        assert problem(error, "sounds").reason == "FieldItemCountOutOfRange"


class TestScalars:
    """Duration, resolution and the enumerations, per model."""

    @pytest.mark.parametrize(
        ("model", "duration", "words"),
        [
            pytest.param("viduq1", 4, "viduq1 takes 5 s, got 4", id="q1"),
            pytest.param("vidu2.0", 5, "vidu2.0 takes 4 s, got 5", id="2.0"),
            pytest.param("vidu1.5", 5, "vidu1.5 takes 4 s or 8 s, got 5", id="1.5"),
            pytest.param("viduq3", 2, "viduq3 takes 3-16 s, got 2", id="q3-low"),
            pytest.param("viduq2", 11, "viduq2 takes 1-10 s, got 11", id="q2-high"),
        ],
    )
    def test_duration(self, model: str, duration: int, words: str) -> None:
        """Durations outside the model's table are refused with the allowed set."""
        kwargs = flat_call(model=model, duration=duration)
        assert problem(rejected(**kwargs), "duration").message == words

    def test_unknown_model_duration(self) -> None:
        """An unknown model takes any duration but a negative one."""
        assert Reference2Video(**flat_call(model="viduq9", duration=60)).duration == 60
        assert (
            "must not be negative"
            in problem(rejected(**flat_call(model="viduq9", duration=-1)), "duration").message
        )

    def test_q2_pro_zero_duration(self) -> None:
        """viduq2-pro's documented range starts at 0 (the permissive side of a contradiction)."""
        assert Reference2Video(**flat_call(model="viduq2-pro", duration=0)).duration == 0

    @pytest.mark.parametrize(
        ("duration", "resolution", "ok"),
        [
            pytest.param(4, "1080p", True, id="4s-1080p"),
            pytest.param(4, "360p", True, id="4s-360p"),
            pytest.param(8, "720p", True, id="8s-720p"),
            pytest.param(8, "1080p", False, id="8s-1080p"),
            pytest.param(8, "360p", False, id="8s-360p"),
            pytest.param(None, "1080p", True, id="default-4s-1080p"),
        ],
    )
    def test_vidu15_resolution_by_duration(self, duration: int | None, resolution: str, ok: bool) -> None:
        """vidu1.5 at 8 s is 720p only."""
        kwargs = flat_call(model="vidu1.5", duration=duration, resolution=resolution)
        if ok:
            assert Reference2Video(**kwargs).resolution == resolution
        else:
            assert "takes 720p at 8 s" in problem(rejected(**kwargs), "resolution").message

    @pytest.mark.parametrize(
        ("model", "resolution"),
        [("viduq1", "720p"), ("vidu2.0", "1080p"), ("viduq3-mix", "540p"), ("viduq3", "360p")],
    )
    def test_resolution(self, model: str, resolution: str) -> None:
        """Resolutions outside the model's table are refused."""
        assert "resolution" in rejected(**flat_call(model=model, resolution=resolution)).fields

    @pytest.mark.parametrize("ratio", ["16:9", "9:16", "1:1", "4:3", "21:9", "auto", "1000:1"])
    def test_aspect_ratio_accepted(self, ratio: str) -> None:
        """Named ratios, any W:H of positive integers, and ``auto`` are accepted."""
        assert Reference2Video(**flat_call(aspect_ratio=ratio)).aspect_ratio == ratio

    @pytest.mark.parametrize("ratio", ["wide", "16/9", "0:1", "16:0", "-1:1", "16:9 ", "1.5:1", ""])
    def test_aspect_ratio_refused(self, ratio: str) -> None:
        """Words, zeros, decimals and stray spaces are refused."""
        assert "aspect_ratio" in rejected(**flat_call(aspect_ratio=ratio)).fields

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("audio_type", "music"),
            ("audio_type", "SPEECH_ONLY"),
            ("movement_amplitude", "huge"),
            ("movement_amplitude", "high"),
        ],
    )
    def test_enums(self, field: str, value: str) -> None:
        """Values outside the documented enumerations are refused, listing the allowed ones."""
        assert "expected one of" in problem(rejected(**flat_call(**{field: value})), field).message

    def test_audio_type_alias(self) -> None:
        """``sound-effect_only`` (one doc page's spelling) is stored as ``sound_effect_only``."""
        request = Reference2Video(**flat_call(audio=True, audio_type="sound-effect_only"))
        assert request.audio_type == "sound_effect_only"

    @pytest.mark.parametrize(("value", "ok"), [(0, False), (1, True), (4, True), (5, False), (-1, False)])
    def test_wm_position(self, value: int, ok: bool) -> None:
        """Watermark positions are 1 to 4."""
        if ok:
            assert Reference2Video(**flat_call(wm_position=value)).wm_position == value
        else:
            assert "wm_position" in rejected(**flat_call(wm_position=value)).fields

    @pytest.mark.parametrize(
        ("value", "ok"), [(0, True), (_rules.MAX_SEED, True), (-1, False), (_rules.MAX_SEED + 1, False)]
    )
    def test_seed(self, value: int, ok: bool) -> None:
        """Seeds are 0 (random) to 2**31-1."""
        if ok:
            assert Reference2Video(**flat_call(seed=value)).seed == value
        else:
            assert "seed" in rejected(**flat_call(seed=value)).fields

    def test_payload_length(self) -> None:
        """The payload holds at most 1,048,576 characters."""
        assert Reference2Video(**flat_call(payload="p" * _rules.MAX_PAYLOAD_CHARS)).payload
        assert "payload" in rejected(**flat_call(payload="p" * (_rules.MAX_PAYLOAD_CHARS + 1))).fields

    def test_large_meta_data_that_fits_is_accepted(self) -> None:
        """The docs give ``meta_data`` no limit of its own: 10 MB that fit in the body are the service's to judge."""
        meta = '{"Label":"' + "x" * (10 * MIB) + '"}'
        assert Reference2Video(**flat_call(meta_data=meta)).meta_data == meta

    def test_meta_data_that_cannot_fit_in_the_body(self) -> None:
        """``meta_data`` larger than a whole body is a problem on ``meta_data`` itself, saying why."""
        error = rejected(**flat_call(meta_data="x" * (20 * MIB + 1)))
        message = problem(error, "meta_data").message
        assert "20.0 MB" in message
        assert "no limit of its own" in message
        assert "body" in error.fields

    @pytest.mark.parametrize("field", ["meta_data", "payload", "prompt"])
    def test_body_estimate_counts_text_fields_as_json(self, field: str) -> None:
        """Quotes, backslashes and line breaks take two bytes each in the JSON body, and the estimate counts them."""
        text = '"\\\n' * 64
        plain = _validate.estimated_body_size(Reference2Video(**flat_call(**{field: "x" * len(text)})))
        escaped = _validate.estimated_body_size(Reference2Video(**flat_call(**{field: text})))
        assert escaped - plain == len(text)

    def test_escaped_meta_data_over_the_body_is_caught_when_constructed(self) -> None:
        """11 MiB of quotes are 22 MiB of JSON: over the 20 MB body, and said so before anything is read."""
        error = rejected(**flat_call(meta_data='"' * (11 * MIB)))
        assert "body" in error.fields

    def test_body_estimate_counts_every_text_field(self) -> None:
        """URLs, voice ids and subject fields count towards the body too, not only prompt, payload and meta_data."""
        small = Reference2Video(**subject_call())
        big = Reference2Video(
            **subject_call(
                subjects=[Subject(name="Ming", images=[URL], voice_id="v" * 1000, server_id="s" * 1000)],
                callback_url="https://example.com/" + "c" * 1000,
                wm_url="https://example.com/" + "w" * 1000,
                voice_id="v" * 1000,
            )
        )
        grown = _validate.estimated_body_size(big) - _validate.estimated_body_size(small)
        assert grown >= 5000

    @pytest.mark.parametrize("field", ["callback_url", "wm_url"])
    @pytest.mark.parametrize(
        "value",
        ["not a url", "ftp://example.com/cb", "https://", "/relative/path", "http://[::1"],
        ids=["words", "ftp", "no-host", "path", "bad-ipv6"],
    )
    def test_urls(self, field: str, value: str) -> None:
        """Callback and watermark URLs must be absolute http(s) URLs."""
        assert "expected an http(s) URL" in problem(rejected(**flat_call(**{field: value})), field).message

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("https://example.com/cb", True),
            ("http://[::1]:8080/cb", True),
            ("http://[::1", False),
            ("https://", False),
            ("mailto:me@example.com", False),
            (None, False),
            (5, False),
        ],
    )
    def test_is_http_url_never_raises(self, value: object, expected: bool) -> None:
        """The one URL check (validation and the client's ``callback_url``) answers, never raises."""
        assert _validate.is_http_url(value) is expected

    def test_http_urls_accepted(self) -> None:
        """http and https URLs with a host are fine."""
        request = Reference2Video(
            **flat_call(callback_url="http://127.0.0.1:8080/cb?x=1", wm_url="https://w/m.png")
        )
        assert request.callback_url == "http://127.0.0.1:8080/cb?x=1"


class TestUnicode:
    """Text that cannot be encoded as UTF-8 (a lone surrogate, as JSON's "\\ud800" decodes) cannot be sent."""

    LONE = "cook \ud800 hot pot"

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"prompt": LONE}, "prompt"),
            ({"model": "viduq2\udfff"}, "model"),
            ({"payload": LONE}, "payload"),
            ({"meta_data": '{"Label": "\udc80"}'}, "meta_data"),
            ({"voice_id": LONE}, "voice_id"),
            ({"callback_url": "https://example.com/cb/\ud800"}, "callback_url"),
            ({"wm_url": "https://example.com/\ud800.png"}, "wm_url"),
            ({"images": ["https://example.com/\ud800.png"]}, "images[0]"),
            ({"sounds": ["https://example.com/\ud800.mp3"]}, "sounds[0]"),
        ],
    )
    def test_lone_surrogate_is_a_problem_on_its_field(self, changes: dict[str, Any], field: str) -> None:
        message = problem(rejected(**flat_call(**changes)), field).message
        assert "is not valid Unicode text (lone surrogate" in message

    @pytest.mark.parametrize("name", ["name", "voice_id", "server_id"])
    def test_subject_fields(self, name: str) -> None:
        fields = {"name": "Ming", "images": [URL], name: "Mi\ud800ng"}
        prompt = "@Mi\ud800ng cooks." if name == "name" else "@Ming cooks."
        error = rejected(model="viduq3", subjects=[Subject(**fields)], prompt=prompt)
        assert "is not valid Unicode text (lone surrogate" in problem(error, f"subjects[0].{name}").message

    def test_from_json_escape(self) -> None:
        """The JSON escape ``\\ud800`` read from a job line is refused naming the field, not a crash later."""
        body = json.loads(
            '{"model": "viduq2", "images": ["https://x.test/a.png"], "prompt": "A \\ud800 cook."}'
        )
        with pytest.raises(RequestValidationError) as caught:
            request_from_json(body)
        assert caught.value.fields == ("prompt",)

    def test_surrogate_pair_is_fine(self) -> None:
        """A proper pair (an emoji escaped in JSON) decodes to one character and is accepted."""
        prompt = json.loads('"A cook \\ud83d\\ude00."')
        assert Reference2Video(**flat_call(prompt=prompt)).prompt == "A cook \U0001f600."


class TestMediaStrings:
    """Media strings: URLs pass, data URIs are checked, anything else is refused."""

    def test_plain_file_name_refused(self) -> None:
        """A bare file name is neither a URL nor a data URI; the message points at ``Path``."""
        error = rejected(**flat_call(images=["ming.png"]))
        assert "pass a pathlib.Path" in problem(error, "images[0]").message

    @pytest.mark.parametrize(
        ("uri", "scheme"),
        [
            ("ftp://example.com/ming.png", "ftp"),
            ("s3://bucket/ming.png", "s3"),
            ("gs://bucket/ming.png", "gs"),
            ("FTP://EXAMPLE.COM/MING.PNG", "ftp"),
            ("mailto:ming@example.com", "mailto"),
            ("file:///home/ming/ming.png", "file"),
        ],
    )
    def test_unsupported_url_scheme(self, uri: str, scheme: str) -> None:
        """A URL Vidu cannot fetch is refused naming its scheme, not taken for anything else."""
        message = problem(rejected(**flat_call(images=[URL, uri])), "images[1]").message
        assert f"unsupported URL scheme {scheme!r}" in message

    def test_file_url_points_at_path(self) -> None:
        """A file: URL is a local file, which the Python API takes as a Path."""
        message = problem(rejected(**flat_call(images=["file:///tmp/ming.png"])), "images[0]").message
        assert "pathlib.Path" in message

    def test_unsupported_url_scheme_in_a_subject_video(self) -> None:
        """Subjects' images and videos are named with the subject."""
        s = Subject(name="Ming", images=[URL], videos=["s3://bucket/motion.mp4"])
        error = rejected(model="viduq2-pro", subjects=[s], prompt="@Ming waves.")
        message = problem(error, "subjects[0].videos[0]").message
        assert "unsupported URL scheme 's3'" in message
        assert "(subject 'Ming')" in message

    @pytest.mark.parametrize("item", ["C:/pictures/ming.png", "ming.png", "https:ming.png"])
    def test_not_a_url_scheme(self, item: str) -> None:
        """A drive letter, a bare name or a broken http(s) URL keep the plain message."""
        message = problem(rejected(**flat_call(images=[item])), "images[0]").message
        assert "expected an http(s) URL or a data URI" in message
        assert "scheme" not in message

    def test_path_with_nul_refused(self) -> None:
        """A ``Path`` holding a NUL names no file anywhere: refused at construction, not when read."""
        error = rejected(**flat_call(images=[Path("ming\0.png")]))
        assert "cannot contain a NUL" in problem(error, "images[0]").message

    def test_long_non_url_is_shortened_in_the_message(self) -> None:
        """A long bad string is cut in the message."""
        message = problem(rejected(**flat_call(images=["x" * 10_000])), "images[0]").message
        assert len(message) < 200

    def test_data_uri_not_base64(self) -> None:
        """Vidu takes base64 data URIs only."""
        error = rejected(**flat_call(images=["data:image/png,%89PNG"]))
        assert "must be base64" in problem(error, "images[0]").message

    @pytest.mark.parametrize(
        ("data", "words"),
        [
            ("iVBORw0K!!!!", "'!' at character 9"),
            ("iVBORw0KGgo=\x00", "'\\x00' at character 13"),
            ("aGVsbG8gd29ybGQ=é", "'é' at character 17"),
            ("QUJD\nRA==", "'\\n' at character 5"),
            ("QUJD RA==", "' ' at character 5"),
            ("QUJD-_A=", "'-' at character 5"),
            ("QQ", "2 characters, not a multiple of 4"),
            ("QUJDRA", "6 characters, not a multiple of 4"),
            ("QQ==QUJD", "'=' padding out of place"),
            ("Q===", "'=' padding out of place"),
            ("====", "'=' padding out of place"),
        ],
        ids=[
            "bang",
            "nul",
            "non-ascii",
            "newline",
            "space",
            "urlsafe",
            "short",
            "unpadded",
            "mid-pad",
            "3-pad",
            "all-pad",
        ],
    )
    def test_data_uri_invalid_base64(self, data: str, words: str) -> None:
        """The whole base64 part is checked strictly: a broken one is a problem on its field, not sent."""
        message = problem(
            rejected(**flat_call(images=["data:image/png;base64," + data])), "images[0]"
        ).message
        assert "is not valid base64" in message
        assert words in message

    def test_data_uri_invalid_base64_in_a_subject(self) -> None:
        """The problem names the subject, and the rest of a long data URI is not quoted."""
        s = Subject(name="Ming", images=[URL, data_uri(make_png(256, 256))[:-8] + "%%%%" + "A" * 100_000])
        found = problem(
            rejected(model="viduq3", subjects=[s], prompt="@Ming waves."), "subjects[0].images[1]"
        )
        assert "(subject 'Ming')" in found.message
        assert len(found.message) < 200

    @pytest.mark.parametrize("data", ["", "QUJD", "QUI=", "QQ==", "+/+/"])
    def test_data_uri_valid_base64(self, data: str) -> None:
        """Padded standard base64 (empty included) passes the base64 check."""
        uri = "data:image/png;base64," + data
        assert Reference2Video(**flat_call(images=[uri])).images == (uri,)

    def test_data_uri_too_big(self) -> None:
        """A data URI that decodes to more than 20 MiB is refused."""
        uri = "data:image/png;base64," + "A" * (28 * MIB)
        error = rejected(**flat_call(images=[uri]))
        assert "decodes to 21.0 MB" in problem(error, "images[0]").message
        assert "body" in error.fields

    @pytest.mark.parametrize("label", ["image/jpeg", "image/webp", "application/octet-stream", ""])
    def test_data_uri_wrong_label_accepted(self, label: str) -> None:
        """A label that differs from the bytes is accepted (the service accepts it too)."""
        uri = data_uri(make_png(256, 256), label)
        assert Reference2Video(**flat_call(images=[uri])).images == (uri,)

    def test_data_uri_small_image(self) -> None:
        """A too-small image inside a data URI is ``PageSizeOutOfRange``."""
        error = rejected(**flat_call(images=[data_uri(make_png(64, 64))]))
        found = problem(error, "images[0]")
        assert found.reason == "PageSizeOutOfRange"
        assert "64x64 px" in found.message

    def test_data_uri_in_subject_is_labelled(self) -> None:
        """Problems inside a subject name the subject."""
        s = Subject(name="Ming", images=[URL, data_uri(make_png(600, 100))])
        error = rejected(model="viduq3", subjects=[s], prompt="@Ming waves.")
        assert "(subject 'Ming')" in problem(error, "subjects[0].images[1]").message

    def test_data_uri_video_in_video_slot(self) -> None:
        """A video data URI in a video slot is not sniffed as an image."""
        request = Reference2Video(**flat_call(model="viduq2-pro", videos=[data_uri(make_mp4(), "video/mp4")]))
        assert len(request.videos) == 1


class TestMediaBytes:
    """Media given as bytes: type, size and image dimensions are checked when constructed."""

    @pytest.mark.parametrize(
        "data",
        [
            pytest.param(make_png(128, 128), id="png-smallest"),
            pytest.param(make_png(128, 512), id="png-1-to-4"),
            pytest.param(make_png(512, 128), id="png-4-to-1"),
            pytest.param(make_jpeg(1280, 720), id="jpeg"),
            pytest.param(make_webp_vp8l(300, 300), id="webp"),
        ],
    )
    def test_accepted_images(self, data: bytes) -> None:
        """PNG, JPEG and WebP at least 128 px with an aspect within 1:4..4:1 are accepted."""
        assert Reference2Video(**flat_call(images=[data])).images == (data,)

    @pytest.mark.parametrize(
        ("data", "words"),
        [
            pytest.param(make_png(127, 400), "127x400 px", id="narrow"),
            pytest.param(make_png(400, 100), "400x100 px", id="short"),
            pytest.param(make_png(128, 640), "aspect must be between 1:4 and 4:1", id="1-to-5"),
            pytest.param(make_png(640, 128), "aspect must be between 1:4 and 4:1", id="5-to-1"),
            pytest.param(make_png(129, 517), "aspect", id="just-over-1-to-4"),
        ],
    )
    def test_refused_image_sizes(self, data: bytes, words: str) -> None:
        """Small images and extreme aspects are ``PageSizeOutOfRange``."""
        found = problem(rejected(**flat_call(images=[data])), "images[0]")
        assert found.reason == "PageSizeOutOfRange"
        assert words in found.message

    @pytest.mark.parametrize(
        ("data", "found"),
        [
            pytest.param(make_mp4(), "an MP4 video", id="mp4"),
            pytest.param(make_mov(), "a QuickTime video", id="mov"),
            pytest.param(b"GIF89a" + b"\x00" * 100, "not a recognized format", id="gif"),
            pytest.param(b"", "not a recognized format", id="empty"),
        ],
    )
    def test_video_or_unknown_where_an_image_is_expected(self, data: bytes, found: str) -> None:
        """A video or an unknown format in an image slot is ``ImageFormatInvalid``."""
        error = problem(rejected(**flat_call(images=[data])), "images[0]")
        assert error.reason == "ImageFormatInvalid"
        assert found in error.message

    def test_image_where_a_video_is_expected(self) -> None:
        """An image in a video slot is refused as well."""
        error = rejected(**flat_call(model="viduq2-pro", videos=[make_png(300, 300)]))
        assert (
            "expected an MP4, MOV or AVI video, but the data is a PNG image"
            in problem(error, "videos[0]").message
        )

    @pytest.mark.parametrize("data", [make_mp4(), make_mov()], ids=["mp4", "mov"])
    def test_video_bytes_accepted(self, data: bytes) -> None:
        """MP4 and MOV bytes are accepted as videos."""
        assert Reference2Video(**flat_call(model="viduq2-pro", videos=[data])).videos == (data,)

    def test_over_20_mib(self) -> None:
        """Bytes over 20 MiB are refused (and the body would be too big as well)."""
        data = make_png(256, 256) + b"\x00" * (_rules.MAX_MEDIA_BYTES)
        error = rejected(**flat_call(images=[data]))
        assert "at most 20.0 MB" in problem(error, "images[0]").message
        assert "body" in error.fields

    def test_body_size_from_many_items(self) -> None:
        """Items each under 20 MiB can still make the body too big once base64-encoded."""
        data = make_png(256, 256) + b"\x00" * (8 * MIB)
        error = rejected(**flat_call(images=[data, data]))
        assert error.fields == ("body",)

    def test_bytearray_refused(self) -> None:
        """Only ``bytes`` are media; a ``bytearray`` is named as the wrong type."""
        error = rejected(**flat_call(images=[bytearray(make_png(200, 200))]))
        assert "got bytearray" in problem(error, "images[0]").message

    def test_paths_are_not_read(self, tmp_path: Path) -> None:
        """A ``Path`` is accepted without reading it (files are read at submit time)."""
        missing = tmp_path / "not-there.png"
        request = Reference2Video(**flat_call(images=[missing, URL, make_png(200, 200)]))
        assert [where for where, _ in request.local_media()] == ["images[0]", "images[2]"]

    def test_media_paths(self) -> None:
        """``media()`` lists every item with its JSON path."""
        s = Subject(name="Ming", images=[URL], videos=[VIDEO_URL])
        request = Reference2Video(model="viduq2-pro", subjects=[subject("Hong"), s], prompt="@Ming @Hong")
        assert [where for where, _ in request.media()] == [
            "subjects[0].images[0]",
            "subjects[1].images[0]",
            "subjects[1].videos[0]",
        ]

    def test_media_bytes_problems_directly(self) -> None:
        """The same checks run on file contents at submit time, with the caller's label."""
        problems = media_bytes_problems(make_png(10, 10), "image", "subjects[0].images[0]", " (subject 'A')")
        assert problems == [
            Problem(
                "subjects[0].images[0]",
                "image is 10x10 px (subject 'A'); each side must be at least 128 px",
                "PageSizeOutOfRange",
            )
        ]


class TestRepr:
    """A repr never prints a whole data URI or raw bytes."""

    LONG_BASE64 = re.compile(r"[A-Za-z0-9+/]{40,}")

    def test_data_uri_and_bytes(self) -> None:
        """A request holding 100 KB media has a short repr without long base64 runs."""
        png = make_png(256, 256) + b"\x00" * 100_000
        uri = data_uri(png)
        request = Reference2Video(
            model="viduq3",
            subjects=[Subject(name="Ming", images=[uri, png])],
            prompt="@Ming waves.",
        )
        text = repr(request)
        assert len(text) < 1000
        assert not self.LONG_BASE64.search(text)
        assert f"<{len(png)} bytes>" in text
        assert "data:image/png;base64," in text

    def test_flat_and_sounds(self) -> None:
        """Flat images, videos and sounds are shortened too."""
        uri = data_uri(make_png(256, 256) + b"\x00" * 100_000)
        request = Reference2Video(
            model="viduq2-pro",
            images=[uri],
            videos=[make_mp4() + b"\x00" * 100_000],
            sounds=["data:audio/mpeg;base64," + "A" * 100_000],
            prompt="Go.",
        )
        text = repr(request)
        assert len(text) < 1000
        assert not self.LONG_BASE64.search(text)

    @pytest.mark.parametrize(
        ("item", "expected"),
        [
            pytest.param(b"abc", "<3 bytes>", id="bytes"),
            pytest.param(bytearray(b"ab"), "<2 bytes>", id="bytearray"),
            pytest.param(Path("a/b.png"), "Path('a/b.png')", id="path"),
            pytest.param(URL, repr(URL), id="url"),
            pytest.param(
                "data:image/png;base64," + "A" * 50,
                "'data:image/png;base64,AAAAAAAAAAAA…<50 chars>'",
                id="uri",
            ),
        ],
    )
    def test_media_repr(self, item: object, expected: str) -> None:
        """``media_repr`` renders each kind of item briefly."""
        assert media_repr(item) == expected

    def test_task_images_repr(self) -> None:
        """Echoed images on a task are shortened as well."""
        task = Task(id="1", images=("data:image/png;base64," + "A" * 10_000,))
        assert len(repr(task)) < 1000


class TestFrozenKeywordOnly:
    """Models are frozen and keyword-only."""

    @pytest.mark.parametrize(
        ("instance", "field"),
        [
            pytest.param(Reference2Video(**flat_call()), "prompt", id="request"),
            pytest.param(subject(), "name", id="subject"),
            pytest.param(Task(id="1"), "state", id="task"),
            pytest.param(Creation(), "url", id="creation"),
            pytest.param(VideoInfo(), "fps", id="video"),
            pytest.param(Credits(), "remains", id="credits"),
            pytest.param(CreditRemain(), "credit_remain", id="remain"),
            pytest.param(CreditPackage(), "name", id="package"),
        ],
    )
    def test_frozen(self, instance: object, field: str) -> None:
        """Assigning a field raises ``FrozenInstanceError``."""
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(instance, field, "x")

    @pytest.mark.parametrize(
        ("cls", "args"),
        [
            pytest.param(Reference2Video, ("viduq3", (), None, (URL,))),
            pytest.param(Subject, ("Ming",)),
            pytest.param(Task, ("1",)),
        ],
        ids=["request", "subject", "task"],
    )
    def test_keyword_only(self, cls: type, args: tuple[Any, ...]) -> None:
        """Positional arguments are refused."""
        with pytest.raises(TypeError):
            cls(*args)

    def test_evolve_revalidates(self) -> None:
        """``attrs.evolve`` builds a new request, validated again."""
        request = Reference2Video(**flat_call())
        assert attrs.evolve(request, duration=8).duration == 8
        with pytest.raises(RequestValidationError):
            attrs.evolve(request, duration=11)

    def test_equal_and_hashable(self) -> None:
        """Two requests built from the same values are equal and hash alike."""
        a, b = Reference2Video(**subject_call()), Reference2Video(**subject_call())
        assert a == b
        assert hash(a) == hash(b)


class TestTaskState:
    """Task states and their parsing."""

    @pytest.mark.parametrize(
        ("state", "terminal"),
        [
            (TaskState.CREATED, False),
            (TaskState.QUEUEING, False),
            (TaskState.PROCESSING, False),
            (TaskState.SUCCESS, True),
            (TaskState.FAILED, True),
            (TaskState.UNKNOWN, False),
        ],
        ids=lambda v: str(v),
    )
    def test_is_terminal(self, state: TaskState, terminal: bool) -> None:
        """Only success and failed are terminal, on the state and on a task."""
        assert state.is_terminal is terminal
        assert Task(id="1", state=state).is_terminal is terminal

    @pytest.mark.parametrize(
        ("raw", "state"),
        [
            ("created", TaskState.CREATED),
            ("queueing", TaskState.QUEUEING),
            ("queuing", TaskState.QUEUEING),
            (" SUCCESS ", TaskState.SUCCESS),
            ("Failed", TaskState.FAILED),
            ("scheduled", TaskState.UNKNOWN),
            ("", TaskState.UNKNOWN),
        ],
    )
    def test_parse(self, raw: str, state: TaskState) -> None:
        """``queuing`` is the old spelling of ``queueing``; case and spaces ignored; others unknown."""
        assert TaskState.parse(raw) is state

    def test_is_a_string(self) -> None:
        """States compare equal to Vidu's strings."""
        assert str(TaskState.SUCCESS) == "success"
        assert TaskState("success") is TaskState.SUCCESS


class TestCredits:
    """The totals over the rows of ``remains``."""

    def test_totals(self) -> None:
        """Remains and queues add up; the concurrency limit is the largest reported."""
        credits = Credits(
            remains=(
                CreditRemain(
                    type="metered",
                    credit_remain=1200,
                    concurrency_limit=5,
                    current_concurrency=2,
                    queue_count=1,
                ),
                CreditRemain(type="test", credit_remain=30, concurrency_limit=1, current_concurrency=1),
                CreditRemain(type="concurrent"),
            )
        )
        assert credits.credit_remain == 1230
        assert credits.concurrency_limit == 5
        assert credits.current_concurrency == 3
        assert credits.queue_count == 1

    def test_empty(self) -> None:
        """No rows: zero credits, no known limit."""
        credits = Credits()
        assert (
            credits.credit_remain,
            credits.concurrency_limit,
            credits.current_concurrency,
            credits.queue_count,
        ) == (
            0,
            None,
            0,
            0,
        )

    def test_zero_limit_is_unknown(self) -> None:
        """A zero concurrency limit is not a limit."""
        assert Credits(remains=(CreditRemain(concurrency_limit=0),)).concurrency_limit is None


class TestTaskDefaults:
    """A task built with only an id has sensible defaults."""

    def test_defaults(self) -> None:
        """Unknown state, no creations, empty extra."""
        task = Task(id="1")
        assert (task.state, task.raw_state, task.creations, task.extra, task.credits) == (
            TaskState.UNKNOWN,
            "",
            (),
            {},
            None,
        )

    def test_created_at_kept(self) -> None:
        """An aware datetime is stored as given."""
        moment = datetime(2025, 1, 1, tzinfo=UTC)
        assert Task(id="1", created_at=moment).created_at == moment
