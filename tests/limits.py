"""One table of documented limits, each just inside (accepted) and just outside (rejected).

Both the SDK's validation test (``test_limits.py::TestSDKValidation``) and the emulator test
(``test_limits.py::TestEmulator``) run every row, so the SDK and the emulator can never drift apart.
A row is a request body in Vidu's own JSON shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs

from vidu_async._rules import (
    MAX_IMAGES_PER_SUBJECT,
    MAX_PAYLOAD_CHARS,
    MAX_PROMPT_CHARS,
    MAX_SUBJECT_IMAGES_TOTAL,
    MAX_SUBJECTS,
    MODEL_RULES,
)

URL = "https://example.com/ref-{}.png"
#: A model name no table knows: the SDK gives it the generic checks (the emulator only when told
#: it offers the model; otherwise it answers ModelUnavailable, as Vidu does).
UNKNOWN_MODEL = "viduq9-future"
VIDEO_URL = "https://example.com/motion-{}.mp4"


@attrs.frozen
class Limit:
    """One row: a body, whether the service accepts it, and if not, the field it names."""

    id: str
    body: dict[str, Any]
    ok: bool
    field: str = ""
    reason: str = ""


def subject_body(model: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "subjects": [{"name": "Ming", "images": [URL.format(0)]}],
        "prompt": "@Ming cooks hot pot.",
    }
    body.update(changes)
    return body


def flat_body(model: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "images": [URL.format(0)], "prompt": "A cat walks."}
    body.update(changes)
    return body


def subjects(count: int, images_each: int = 1) -> list[dict[str, Any]]:
    return [
        {"name": f"S{i}", "images": [URL.format(f"{i}-{j}") for j in range(images_each)]}
        for i in range(count)
    ]


def _pair(
    id: str, inside: dict[str, Any], outside: dict[str, Any], field: str, reason: str
) -> Iterator[Limit]:
    yield Limit(f"{id}-inside", inside, True)
    yield Limit(f"{id}-outside", outside, False, field, reason)


def _model_rows() -> Iterator[Limit]:
    for name, rule in MODEL_RULES.items():
        make = subject_body if rule.subject_call else flat_body
        durations = rule.allowed_durations()
        low, high = min(durations), max(durations)
        res = rule.resolutions_for(low)[0]
        yield from _pair(
            f"{name}-duration-low",
            make(name, duration=low, resolution=res),
            make(name, duration=low - 1, resolution=res),
            "duration",
            "FieldInvalid",
        )
        res_high = rule.resolutions_for(high)[0]
        yield from _pair(
            f"{name}-duration-high",
            make(name, duration=high, resolution=res_high),
            make(name, duration=high + 1, resolution=res_high),
            "duration",
            "FieldInvalid",
        )
        outside_res = next(
            r for r in ("360p", "540p", "720p", "1080p", "4k") if r not in rule.resolutions_for(low)
        )
        yield from _pair(
            f"{name}-resolution",
            make(name, duration=low, resolution=rule.resolutions_for(low)[-1]),
            make(name, duration=low, resolution=outside_res),
            "resolution",
            "FieldInvalid",
        )
        if rule.non_subject_call:
            limit = rule.max_images
            yield from _pair(
                f"{name}-images",
                flat_body(name, images=[URL.format(i) for i in range(limit)]),
                flat_body(name, images=[URL.format(i) for i in range(limit + 1)]),
                "images",
                "FieldItemCountOutOfRange",
            )
        if not rule.subject_call:
            yield Limit(f"{name}-no-subjects", subject_body(name), False, "subjects", "FieldInvalid")
        if rule.videos:
            yield from _pair(
                f"{name}-videos",
                flat_body(name, videos=[VIDEO_URL.format(i) for i in range(rule.max_videos)]),
                flat_body(name, videos=[VIDEO_URL.format(i) for i in range(rule.max_videos + 1)]),
                "videos",
                "FieldItemCountOutOfRange",
            )
            yield from _pair(
                f"{name}-images-with-videos",
                flat_body(
                    name,
                    images=[URL.format(i) for i in range(rule.max_images_with_videos)],
                    videos=[VIDEO_URL.format(0)],
                ),
                flat_body(
                    name,
                    images=[URL.format(i) for i in range(rule.max_images_with_videos + 1)],
                    videos=[VIDEO_URL.format(0)],
                ),
                "images",
                "FieldItemCountOutOfRange",
            )
        elif rule.non_subject_call:
            yield Limit(
                f"{name}-no-videos",
                flat_body(name, videos=[VIDEO_URL.format(0)]),
                False,
                "videos",
                "FieldInvalid",
            )


def _generic_rows() -> Iterator[Limit]:
    model = "viduq3"
    yield from _pair(
        "subjects-count",
        subject_body(model, subjects=subjects(MAX_SUBJECTS), prompt="@S0 waves."),
        subject_body(model, subjects=subjects(MAX_SUBJECTS + 1), prompt="@S0 waves."),
        "subjects",
        "FieldItemCountOutOfRange",
    )
    yield from _pair(
        "images-per-subject",
        subject_body(model, subjects=subjects(1, MAX_IMAGES_PER_SUBJECT), prompt="@S0 waves."),
        subject_body(model, subjects=subjects(1, MAX_IMAGES_PER_SUBJECT + 1), prompt="@S0 waves."),
        "subjects[0].images",
        "FieldItemCountOutOfRange",
    )
    # 7 images in all across subjects: 3 + 3 + 1 inside, 3 + 3 + 2 outside.
    inside = subjects(3, 3)
    inside[2]["images"] = inside[2]["images"][:1]
    outside = subjects(3, 3)
    outside[2]["images"] = outside[2]["images"][:2]
    assert sum(len(s["images"]) for s in inside) == MAX_SUBJECT_IMAGES_TOTAL
    yield from _pair(
        "subject-images-total",
        subject_body(model, subjects=inside, prompt="@S0 waves."),
        subject_body(model, subjects=outside, prompt="@S0 waves."),
        "subjects",
        "FieldItemCountOutOfRange",
    )
    yield from _pair(
        "prompt-length",
        subject_body(model, prompt="@Ming " + "x" * (MAX_PROMPT_CHARS - 6)),
        subject_body(model, prompt="@Ming " + "x" * (MAX_PROMPT_CHARS - 5)),
        "prompt",
        "FieldInvalid",
    )
    yield Limit("prompt-empty", subject_body(model, prompt=""), False, "prompt", "FieldLacking")
    yield Limit(
        "prompt-missing", {"model": model, "images": [URL.format(0)]}, False, "prompt", "FieldLacking"
    )
    yield from _pair(
        "payload-length",
        subject_body(model, payload="p" * MAX_PAYLOAD_CHARS),
        subject_body(model, payload="p" * (MAX_PAYLOAD_CHARS + 1)),
        "payload",
        "FieldInvalid",
    )
    yield from _pair(
        "reference-unknown",
        subject_body(model, prompt="@Ming and @1 cook."),
        subject_body(model, prompt="@Ming and @Hong cook."),
        "prompt",
        "FieldInvalid",
    )
    yield Limit(
        "subject-name-repeated",
        subject_body(
            model,
            subjects=[{"name": "A", "images": [URL.format(1)]}, {"name": "A", "images": [URL.format(2)]}],
            prompt="@A",
        ),
        False,
        "subjects[1].name",
        "FieldInvalid",
    )
    yield Limit("both-shapes", subject_body(model, images=[URL.format(9)]), False, "subjects", "FieldInvalid")
    yield Limit("neither-shape", {"model": model, "prompt": "hi"}, False, "images", "FieldLacking")
    yield Limit("unknown-field", subject_body(model, colour="red"), False, "colour", "FieldUnwanted")
    yield Limit(
        "subject-id-2025",
        subject_body("viduq2", subjects=[{"id": "1", "images": [URL.format(1)]}], prompt="@1 runs."),
        True,
    )
    for value in (1, 4):
        yield Limit(f"wm_position-{value}", subject_body(model, wm_position=value), True)
    for value in (0, 5):
        yield Limit(
            f"wm_position-{value}",
            subject_body(model, wm_position=value),
            False,
            "wm_position",
            "FieldInvalid",
        )
    yield Limit("seed-zero", subject_body(model, seed=0), True)
    yield Limit("seed-negative", subject_body(model, seed=-1), False, "seed", "FieldInvalid")
    for value in ("16:9", "9:16", "1:1", "4:3", "21:9", "auto"):
        yield Limit(f"aspect-{value}", subject_body(model, aspect_ratio=value), True)
    yield Limit(
        "aspect-word", subject_body(model, aspect_ratio="wide"), False, "aspect_ratio", "FieldInvalid"
    )
    for value in ("all", "speech_only", "sound_effect_only", "sound-effect_only"):
        yield Limit(f"audio_type-{value}", subject_body(model, audio=True, audio_type=value), True)
    yield Limit(
        "audio_type-bad", subject_body(model, audio_type="music"), False, "audio_type", "FieldInvalid"
    )
    for value in ("auto", "small", "medium", "large"):
        yield Limit(f"movement-{value}", subject_body(model, movement_amplitude=value), True)
    yield Limit(
        "movement-bad",
        subject_body(model, movement_amplitude="huge"),
        False,
        "movement_amplitude",
        "FieldInvalid",
    )
    yield Limit("unknown-model-generic", subject_body(UNKNOWN_MODEL, duration=99, resolution="4k"), True)
    yield Limit(
        "unknown-model-prompt",
        subject_body(UNKNOWN_MODEL, prompt="@Ming " + "x" * MAX_PROMPT_CHARS),
        False,
        "prompt",
        "FieldInvalid",
    )
    yield Limit(
        "callback-url-bad",
        subject_body(model, callback_url="not a url"),
        False,
        "callback_url",
        "FieldInvalid",
    )
    yield Limit(
        "media-not-url",
        subject_body(model, subjects=[{"name": "Ming", "images": ["ming.png"]}]),
        False,
        "subjects[0].images[0]",
        "FieldInvalid",
    )


LIMITS: list[Limit] = [*_model_rows(), *_generic_rows()]
