"""Request validation: every documented rule of each task kind, every problem reported at once.

Pure: reads the request and the rules table, never a file or the network. Local files are
checked by ``_media`` at submit time with :func:`media_bytes_problems`, the same checks as
``bytes`` inputs get here.

Works on plain values: a request is read by its field names (:class:`Request` says what else is
called on it), and the subject class is handed in by the caller, so that ``_models``, which
validates its requests when they are constructed, is not imported back from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from . import _rules, _sniff
from .exceptions import Problem, RequestValidationError

__all__ = [
    "Request",
    "check_kind_request",
    "check_request",
    "check_spec_request",
    "estimated_body_size",
    "is_http_url",
    "json_text_size",
    "kind_request_problems",
    "media_bytes_problems",
    "megabytes",
    "request_label",
    "request_problems",
    "spec_body_size",
    "spec_request_problems",
    "url_scheme",
    "where_label",
]

_LACKING = "FieldLacking"
_COUNT = "FieldItemCountOutOfRange"
_INVALID = "FieldInvalid"
_FORMAT = "ImageFormatInvalid"
_SIZE = "PageSizeOutOfRange"  # Vidu's reason for image size, format and aspect problems

# A reference is "@" at the start of the prompt or after a non-word character, then a handle;
# "[@name]" is the subject-library spelling. An e-mail address ("me@x.com") is not a reference.
_REFERENCE = re.compile(r"(?<![\w@])@(\w+)")
_ASPECT = re.compile(r"^[1-9]\d*:[1-9]\d*$")
# Standard base64 with its padding (the length is checked apart); one pass, nothing copied.
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/=]")
# A UTF-16 surrogate code point on its own (JSON's "\ud800" decodes to one): no UTF-8 encodes it.
_SURROGATE = re.compile("[\ud800-\udfff]")
# A URL scheme (RFC 3986) of two characters or more: "C:/x.png" is a Windows drive, not a scheme.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]+):")


class Request(Protocol):
    """What validation calls on a request (``_models.Reference2Video``).

    Its fields (``model``, ``prompt``, ``subjects``, ``images``...) are read by name and their
    types checked here, not trusted: a request built without a type checker may hold anything.
    A request may also keep its body estimate (:func:`estimated_body_size`) as ``_body_estimate``,
    worked out once for validation and submission alike.
    """

    @property
    def model(self) -> object:
        """The model name."""
        ...

    def media(self) -> Sequence[tuple[str, object]]:
        """Every media item with its JSON field path (``subjects[0].images[1]``, ``images[0]``...)."""
        ...

    def media_values(self) -> Iterable[object]:
        """Every media item, without its field path."""
        ...


def check_request(request: Request, *, subject_type: type[Any]) -> None:
    """Raise :class:`RequestValidationError` listing every problem with ``request``.

    Args:
        request: The request.
        subject_type: The class every item of ``request.subjects`` must be (``_models.Subject``).
    """
    problems = request_problems(request, subject_type=subject_type)
    if problems:
        raise RequestValidationError(problems, subject=request_label(request))


def request_label(request: object) -> str:
    """How error messages name a request: ``Text2Video (model 'viduq2')``, or ``Upscale`` for an
    endpoint without a model."""
    name = type(request).__name__
    model: object = getattr(request, "model", _ABSENT)
    return name if model is _ABSENT else f"{name} (model {model!r})"


def request_problems(request: Request, *, subject_type: type[Any]) -> list[Problem]:
    """Every problem with ``request``, in field order (``subject_type`` as for :func:`check_request`).

    The checks below take ``Any`` on purpose: a request built without a type checker may hold
    values that break its annotations, and each of those must become a clear problem, not a crash.
    """
    out: list[Problem] = []
    r: Any = request
    _check_types(r, out)
    _check_text(r, out)
    rule = _rules.MODEL_RULES.get(r.model) if isinstance(r.model, str) else None
    _check_prompt(r, out)
    _check_shape(r, rule, out)
    if isinstance(r.subjects, tuple) and r.subjects:
        _check_subjects(r, subject_type, rule, out)
    if isinstance(r.images, tuple) and isinstance(r.videos, tuple) and not r.subjects:
        _check_flat_media(r, rule, out)
    _check_scalars(r, rule, out)
    _check_all_media(r, out)
    _check_body_size(r, out)
    return out


# --- types -------------------------------------------------------------------------------------

_STR_FIELDS = (
    "resolution",
    "aspect_ratio",
    "audio_type",
    "voice_id",
    "movement_amplitude",
    "payload",
    "wm_url",
    "meta_data",
    "callback_url",
)
_BOOL_FIELDS = ("auto_subjects", "audio", "bgm", "off_peak", "watermark")
_INT_FIELDS = ("duration", "seed", "wm_position")


def _type_name(value: object) -> str:
    return type(value).__name__


def _check_types(request: Any, out: list[Problem]) -> None:
    if not isinstance(request.model, str) or not request.model.strip():
        out.append(Problem("model", f"expected a model name, got {request.model!r}", _LACKING))
    for name in _STR_FIELDS:
        value = getattr(request, name)
        if value is not None and not isinstance(value, str):
            out.append(Problem(name, f"expected a string, got {_type_name(value)}"))
    for name in _BOOL_FIELDS:
        value = getattr(request, name)
        if value is not None and not isinstance(value, bool):
            out.append(Problem(name, f"expected true or false, got {_type_name(value)}"))
    for name in _INT_FIELDS:
        value = getattr(request, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            out.append(Problem(name, f"expected an integer, got {_type_name(value)}"))
    for name in ("subjects", "images", "videos", "sounds"):
        value = getattr(request, name)
        if not isinstance(value, tuple):
            out.append(Problem(name, f"expected a list, got {_type_name(value)}"))
    if isinstance(request.sounds, tuple):
        for i, sound in enumerate(request.sounds):
            if not isinstance(sound, str):
                out.append(Problem(f"sounds[{i}]", f"expected a URL string, got {_type_name(sound)}"))


def _unicode_problem(value: str) -> str | None:
    """Why ``value`` cannot be sent as UTF-8 text, or ``None``; quick for ASCII (most values)."""
    if value.isascii():
        return None
    found = _SURROGATE.search(value)
    if found is None:
        return None
    return f"is not valid Unicode text (lone surrogate U+{ord(found.group()):04X} at character {found.start() + 1})"


def _check_text(request: Any, out: list[Problem]) -> None:
    """Text fields must encode as UTF-8 (the body is UTF-8 JSON); media strings are checked with the media."""
    for name in _TEXT_FIELDS:
        value = getattr(request, name)
        if isinstance(value, str) and (why := _unicode_problem(value)) is not None:
            out.append(Problem(name, why))
    subjects = request.subjects if isinstance(request.subjects, tuple) else ()
    for s, subject in enumerate(subjects):
        for name in _SUBJECT_TEXT_FIELDS:
            value = getattr(subject, name, None)
            if isinstance(value, str) and (why := _unicode_problem(value)) is not None:
                out.append(Problem(f"subjects[{s}].{name}", f"{why}{_subject_label(subject)}"))
    sounds = request.sounds if isinstance(request.sounds, tuple) else ()
    for i, sound in enumerate(sounds):
        if isinstance(sound, str) and (why := _unicode_problem(sound)) is not None:
            out.append(Problem(f"sounds[{i}]", why))


# --- prompt, shape -------------------------------------------------------------------------------


def _check_prompt(request: Any, out: list[Problem]) -> None:
    prompt = request.prompt
    if not isinstance(prompt, str):
        out.append(Problem("prompt", f"expected a string, got {_type_name(prompt)}", _LACKING))
        return
    if not prompt.strip():
        out.append(Problem("prompt", "is required and must not be empty", _LACKING))
    elif len(prompt) > _rules.MAX_PROMPT_CHARS:
        out.append(
            Problem("prompt", f"is {len(prompt)} characters; at most {_rules.MAX_PROMPT_CHARS} allowed")
        )


def _check_shape(request: Any, rule: _rules.ModelRule | None, out: list[Problem]) -> None:
    subjects = request.subjects if isinstance(request.subjects, tuple) else ()
    flat = (request.images if isinstance(request.images, tuple) else ()) or (
        request.videos if isinstance(request.videos, tuple) else ()
    )
    if subjects and flat:
        out.append(
            Problem(
                "subjects",
                "a request is either a subject call (subjects) or a non-subject call (images/videos), not both",
            )
        )
    elif not subjects and not flat and not request.auto_subjects:
        out.append(
            Problem("images", "give subjects (a subject call) or images (a non-subject call)", _LACKING)
        )
    if rule is not None:
        if subjects and not rule.subject_call:
            out.append(Problem("subjects", f"{rule.name} does not take subjects; send images instead"))
        if flat and not subjects and not rule.non_subject_call:
            out.append(Problem("images", f"{rule.name} only takes subjects"))


# --- subject call --------------------------------------------------------------------------------


def _subject_label(subject: object) -> str:
    name = getattr(subject, "name", None)
    handle = name if isinstance(name, str) else getattr(subject, "id", None)
    return f" (subject {handle!r})" if isinstance(handle, str) and handle else ""


def _check_subjects(
    request: Any, subject_type: type[Any], rule: _rules.ModelRule | None, out: list[Problem]
) -> None:
    subjects = request.subjects
    if len(subjects) > _rules.MAX_SUBJECTS:
        out.append(
            Problem(
                "subjects", f"has {len(subjects)} subjects; at most {_rules.MAX_SUBJECTS} allowed", _COUNT
            )
        )
    seen: dict[str, int] = {}
    total_images = image_subjects = video_subjects = 0
    for s, item in enumerate(subjects):
        where = f"subjects[{s}]"
        if not isinstance(item, subject_type):
            out.append(Problem(where, f"expected a {subject_type.__name__}, got {_type_name(item)}"))
            continue
        subject: Any = item
        label = _subject_label(subject)
        for name in ("name", "id", "voice_id", "server_id"):
            value = getattr(subject, name)
            if value is not None and not isinstance(value, str):
                out.append(Problem(f"{where}.{name}", f"expected a string, got {_type_name(value)}"))
        handle = (
            subject.handle
            if isinstance(subject.name, str | None) and isinstance(subject.id, str | None)
            else ""
        )
        if not handle.strip():
            out.append(Problem(f"{where}.name", "every subject needs a name (referenced as @name)", _LACKING))
        elif handle in seen:
            out.append(
                Problem(f"{where}.name", f"{handle!r} is already the name of subjects[{seen[handle]}]")
            )
        else:
            seen[handle] = s
        images = subject.images if isinstance(subject.images, tuple) else ()
        videos = subject.videos if isinstance(subject.videos, tuple) else ()
        for name in ("images", "videos"):
            if not isinstance(getattr(subject, name), tuple):
                out.append(Problem(f"{where}.{name}", f"expected a list{label}"))
        slots = len(images) + len(videos)
        if slots > _rules.MAX_IMAGES_PER_SUBJECT:
            out.append(
                Problem(
                    f"{where}.images",
                    f"has {slots} images and videos{label}; at most {_rules.MAX_IMAGES_PER_SUBJECT} per subject",
                    _COUNT,
                )
            )
        if slots == 0 and not subject.server_id:
            out.append(
                Problem(f"{where}.images", f"needs at least one image (or a server_id){label}", _LACKING)
            )
        if videos and rule is not None and not rule.videos:
            out.append(Problem(f"{where}.videos", f"{rule.name} does not take reference videos{label}"))
        total_images += len(images)
        if videos:
            video_subjects += 1
        else:
            image_subjects += 1
    if total_images > _rules.MAX_SUBJECT_IMAGES_TOTAL:
        out.append(
            Problem(
                "subjects",
                f"have {total_images} images in all; at most {_rules.MAX_SUBJECT_IMAGES_TOTAL} across all subjects",
                _COUNT,
            )
        )
    if rule is not None and rule.videos:
        if image_subjects > rule.max_image_subjects:
            out.append(
                Problem(
                    "subjects",
                    f"{rule.name} takes at most {rule.max_image_subjects} image subjects, got {image_subjects}",
                    _COUNT,
                )
            )
        if video_subjects > rule.max_video_subjects:
            out.append(
                Problem(
                    "subjects",
                    f"{rule.name} takes at most {rule.max_video_subjects} video subjects, got {video_subjects}",
                    _COUNT,
                )
            )
    if isinstance(request.prompt, str) and not request.auto_subjects:
        _check_references(request.prompt, list(seen), len(subjects), out)


def _check_references(prompt: str, handles: list[str], count: int, out: list[Problem]) -> None:
    """Each ``@ref`` must start with a subject's handle (so "@小明和" matches 小明) or be ``@1``...``@count``."""
    unknown: list[str] = []
    for match in _REFERENCE.finditer(prompt):
        token = match.group(1)
        # Compare with the prompt text, not the token: a handle may hold non-word characters ("Anne-Marie").
        if any(prompt.startswith(h, match.start(1)) for h in handles if h):
            continue
        if token.isdigit() and 1 <= int(token) <= count:
            continue  # positional references, as the service echoes them
        if token not in unknown:
            unknown.append(token)
    if unknown:
        names = ", ".join(f"@{u}" for u in unknown)
        known = ", ".join(handles) or "none"
        out.append(Problem("prompt", f"{names} matches no subject (subjects: {known})"))


# --- non-subject call ----------------------------------------------------------------------------


def _check_flat_media(request: Any, rule: _rules.ModelRule | None, out: list[Problem]) -> None:
    images, videos = request.images, request.videos
    if not images and not videos:
        return
    if not images:
        out.append(Problem("images", "a non-subject call needs at least one image", _LACKING))
    max_images = rule.max_images if rule is not None else 7
    if videos:
        if rule is not None and not rule.videos:
            out.append(
                Problem("videos", f"{rule.name} does not take reference videos (only viduq2-pro does)")
            )
        elif rule is not None and len(videos) > rule.max_videos:
            out.append(
                Problem(
                    "videos", f"has {len(videos)} videos; {rule.name} takes at most {rule.max_videos}", _COUNT
                )
            )
        if rule is not None and rule.videos:
            max_images = rule.max_images_with_videos
    if len(images) > max_images:
        model = rule.name if rule is not None else "the service"
        extra = " when videos are sent" if videos and rule is not None and rule.videos else ""
        out.append(
            Problem("images", f"has {len(images)} images; {model} takes at most {max_images}{extra}", _COUNT)
        )
    if isinstance(request.sounds, tuple) and len(request.sounds) > 7:
        out.append(Problem("sounds", f"has {len(request.sounds)} sounds; at most 7", _COUNT))


# --- scalars -------------------------------------------------------------------------------------


def _check_scalars(request: Any, rule: _rules.ModelRule | None, out: list[Problem]) -> None:
    _check_duration_resolution(request, rule, out)
    if isinstance(request.aspect_ratio, str) and not (
        request.aspect_ratio in _rules.ASPECT_RATIO_WORDS or _ASPECT.match(request.aspect_ratio)
    ):
        out.append(
            Problem(
                "aspect_ratio", f"expected 'auto' or a ratio such as '16:9', got {request.aspect_ratio!r}"
            )
        )
    _check_enum(out, "audio_type", request.audio_type, _rules.AUDIO_TYPES)
    _check_common_scalars(request, out)


def _int_value(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _check_duration_resolution(request: Any, rule: _rules.ModelRule | None, out: list[Problem]) -> None:
    """``duration`` and ``resolution`` against the model's row (only ``duration >= 0`` for a model
    the table does not know: a model added to the service works on day one)."""
    duration = _int_value(request.duration)
    if duration is not None:
        if rule is not None:
            allowed = rule.allowed_durations()
            if duration not in allowed:
                out.append(
                    Problem("duration", f"{rule.name} takes {_describe_durations(rule)}, got {duration}")
                )
        elif duration < 0:
            out.append(Problem("duration", f"must not be negative, got {duration}"))
    if isinstance(request.resolution, str) and rule is not None:
        allowed_res = rule.resolutions_for(duration)
        if request.resolution not in allowed_res:
            at = f" at {duration} s" if duration is not None and rule.resolutions_by_duration else ""
            out.append(
                Problem(
                    "resolution",
                    f"{rule.name} takes {', '.join(allowed_res)}{at}, got {request.resolution!r}",
                )
            )


def _check_common_scalars(request: Any, out: list[Problem]) -> None:
    """The rules every video endpoint shares: movement, watermark, seed, meta_data, payload, URLs."""
    _check_enum(out, "movement_amplitude", request.movement_amplitude, _rules.MOVEMENT_AMPLITUDES)
    wm = _int_value(request.wm_position)
    if wm is not None and wm not in _rules.WM_POSITIONS:
        out.append(Problem("wm_position", f"expected 1 (top left), 2, 3 or 4, got {wm}"))
    seed = _int_value(request.seed)
    if seed is not None and not 0 <= seed <= _rules.MAX_SEED:
        out.append(Problem("seed", f"must be between 0 and {_rules.MAX_SEED}, got {seed}"))
    # The docs give meta_data no limit of its own (vidu-api.md §2.2): only one that cannot fit in
    # a body at all is refused here; the service judges the rest.
    if isinstance(request.meta_data, str):
        size = json_text_size(request.meta_data)
        if size > _rules.MAX_BODY_BYTES:
            out.append(
                Problem(
                    "meta_data",
                    f"is {megabytes(size)} as JSON text, more than a whole request body may be"
                    f" ({megabytes(_rules.MAX_BODY_BYTES)}); the docs give meta_data no limit of its own",
                )
            )
    if isinstance(request.payload, str) and len(request.payload) > _rules.MAX_PAYLOAD_CHARS:
        out.append(
            Problem(
                "payload", f"is {len(request.payload)} characters; at most {_rules.MAX_PAYLOAD_CHARS} allowed"
            )
        )
    for name in ("callback_url", "wm_url"):
        value = getattr(request, name)
        if isinstance(value, str) and not is_http_url(value):
            out.append(Problem(name, f"expected an http(s) URL, got {value!r}"))


# --- the kinds without subjects (text2video, img2video, start-end2video) -------------------------

_KIND_STR_FIELDS: Final = ("style", *_STR_FIELDS)
_KIND_BOOL_FIELDS: Final = ("audio", "bgm", "is_rec", "off_peak", "watermark")
_ABSENT: Final = object()


def check_kind_request(request: Request, rule: _rules.EndpointRule) -> None:
    """Raise :class:`RequestValidationError` listing every problem with ``request``, a request of
    an endpoint without subjects (``rule`` says which: ``_rules.ENDPOINT_RULES``)."""
    problems = kind_request_problems(request, rule)
    if problems:
        raise RequestValidationError(problems, subject=request_label(request))


def kind_request_problems(request: Request, rule: _rules.EndpointRule) -> list[Problem]:
    """Every problem with a request of an endpoint without subjects, in field order.

    The request's fields are read by name; a field its endpoint does not have is simply absent
    from the request (``aspect_ratio`` on img2video), so only the fields it has are checked.
    """
    out: list[Problem] = []
    r: Any = request
    fields = {name: value for name in _KIND_FIELDS if (value := getattr(r, name, _ABSENT)) is not _ABSENT}
    if not isinstance(r.model, str) or not r.model.strip():
        out.append(Problem("model", f"expected a model name, got {r.model!r}", _LACKING))
    for name in _KIND_STR_FIELDS:
        value = fields.get(name)
        if value is not None and not isinstance(value, str):
            out.append(Problem(name, f"expected a string, got {_type_name(value)}"))
    for name in _KIND_BOOL_FIELDS:
        value = fields.get(name)
        if value is not None and not isinstance(value, bool):
            out.append(Problem(name, f"expected true or false, got {_type_name(value)}"))
    for name in _INT_FIELDS:
        value = fields.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            out.append(Problem(name, f"expected an integer, got {_type_name(value)}"))
    for name in ("model", "prompt", *_KIND_STR_FIELDS):
        value = fields.get(name) if name != "model" else r.model
        if isinstance(value, str) and (why := _unicode_problem(value)) is not None:
            out.append(Problem(name, why))
    if rule.prompt_required:
        _check_prompt(r, out)
    elif fields.get("prompt") is not None:
        prompt = fields["prompt"]
        if not isinstance(prompt, str):
            out.append(Problem("prompt", f"expected a string, got {_type_name(prompt)}"))
        elif len(prompt) > _rules.MAX_PROMPT_CHARS:
            out.append(
                Problem("prompt", f"is {len(prompt)} characters; at most {_rules.MAX_PROMPT_CHARS} allowed")
            )
    if rule.images:
        images = fields.get("images")
        if not isinstance(images, tuple):
            out.append(Problem("images", f"expected a list, got {_type_name(images)}"))
        elif not images:
            out.append(Problem("images", f"{rule.endpoint} needs {_images(rule.images)}", _LACKING))
        elif len(images) != rule.images:
            out.append(
                Problem(
                    "images",
                    f"has {_images(len(images))}; {rule.endpoint} takes exactly {_images(rule.images)}",
                    _COUNT,
                )
            )
    model = rule.models.get(r.model) if isinstance(r.model, str) else None
    _check_duration_resolution(r, model, out)
    aspect = fields.get("aspect_ratio")
    if isinstance(aspect, str):
        allowed = (model.aspect_ratios if model is not None else None) or _rules.T2V_ASPECT_RATIOS
        if aspect not in allowed:
            whose = f"{model.name} takes" if model is not None and model.aspect_ratios else "expected one of"
            out.append(Problem("aspect_ratio", f"{whose} {', '.join(allowed)}, got {aspect!r}"))
    _check_enum(out, "style", fields.get("style"), _rules.STYLES)
    _check_enum(out, "audio_type", fields.get("audio_type"), _rules.AUDIO_TYPES)
    _check_common_scalars(r, out)
    if (
        rule.q3_only_off_peak_with_audio
        and model is not None
        and fields.get("off_peak") is True
        and fields.get("audio") is True
        and not model.name.startswith("viduq3")
    ):
        out.append(Problem("off_peak", f"with audio on, only q3 models run off-peak; {model.name} does not"))
    _check_all_media(r, out)
    _check_body_size(r, out)
    return out


def _images(count: int) -> str:
    return "1 image" if count == 1 else f"{count} images"


def _describe_durations(rule: _rules.ModelRule) -> str:
    if rule.durations is not None:
        return " or ".join(f"{d} s" for d in rule.durations)
    return f"{rule.min_duration}-{rule.max_duration} s"


def _check_enum(out: list[Problem], name: str, value: object, allowed: tuple[str, ...]) -> None:
    if isinstance(value, str) and value not in allowed:
        out.append(Problem(name, f"expected one of {', '.join(allowed)}, got {value!r}"))


def is_http_url(value: object) -> bool:
    """Whether ``value`` is an absolute ``http(s)`` URL with a host. Never raises: anything else,
    a malformed URL (``http://[::1``) or a value that is not a string, is ``False``."""
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:  # a bad IPv6 literal, a host that NFKC normalization changes
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


# --- media ---------------------------------------------------------------------------------------


def _slot_kind(where: str) -> str:
    return "video" if ".videos[" in where or where.startswith("videos[") else "image"


def where_label(request: Any, where: str) -> str:
    """`` (subject 'Ming')`` for a media path inside a subject (as ``request.media()`` names it), else ""."""
    if where.startswith("subjects["):
        index = int(where[9 : where.index("]")])
        return _subject_label(request.subjects[index])
    return ""


def _check_all_media(request: Any, out: list[Problem]) -> None:
    for where, item in request.media():
        label = where_label(request, where)
        kind = _slot_kind(where)
        if isinstance(item, str):
            out.extend(_media_string_problems(item, kind, where, label))
        elif isinstance(item, bytes):
            out.extend(media_bytes_problems(item, kind, where, label))
        elif isinstance(item, Path):
            if "\0" in str(item):  # no file system takes it; open() would raise ValueError, not OSError
                out.append(Problem(where, f"a file name cannot contain a NUL character{label}"))
        else:
            out.append(
                Problem(where, f"expected a URL, data URI, Path or bytes, got {_type_name(item)}{label}")
            )


def _media_string_problems(
    item: str, kind: str, where: str, label: str, rule: _rules.FieldRule | None = None
) -> list[Problem]:
    unsendable = _unicode_problem(item)
    if unsendable is not None:
        return [Problem(where, f"{unsendable}{label}")]
    if is_http_url(item):
        return []
    data_uri = _sniff.parse_data_uri(item)
    scheme = url_scheme(item) if data_uri is None else None
    if scheme is not None and scheme not in ("http", "https"):
        hint = " (to send a local file, pass a pathlib.Path)" if scheme == "file" else ""
        return [
            Problem(
                where,
                f"unsupported URL scheme {scheme!r}{label}: Vidu takes http(s) URLs and base64 data URIs{hint}",
            )
        ]
    if data_uri is None:
        shown = item if len(item) <= 60 else item[:57] + "..."
        return [
            Problem(
                where,
                f"expected an http(s) URL or a data URI{label}, got {shown!r}"
                " (to send a local file, pass a pathlib.Path)",
            )
        ]
    if not data_uri.is_base64:
        return [Problem(where, f"a data URI must be base64 ('data:<type>;base64,...'){label}")]
    broken = _base64_error(item, data_uri.data_start)
    if broken is not None:
        return [Problem(where, f"the data URI is not valid base64{label}: {broken}")]
    size = _sniff.base64_decoded_size(len(item) - data_uri.data_start, item[-2:])
    limit = rule.max_bytes if rule is not None else _rules.MAX_MEDIA_BYTES
    problems: list[Problem] = []
    if size > limit:
        problems.append(Problem(where, f"decodes to {megabytes(size)}{label}; at most {megabytes(limit)}"))
    if kind == "image":
        # The service accepts a label that differs from the bytes, so only the bytes are checked.
        info = _sniff.sniff_base64_head(item, data_uri.data_start)
        if info is not None and info.kind == "image":
            problems.extend(_image_size_problems(info, where, label, rule or _DEFAULT_IMAGE))
    return problems


def url_scheme(item: str) -> str | None:
    """The URL scheme ``item`` starts with, lower-cased (``ftp``, ``data``...), or ``None``.

    One letter before the colon is a Windows drive (``C:/x.png``), not a scheme.
    """
    match = _SCHEME.match(item)
    return match.group(1).lower() if match is not None else None


def _base64_error(text: str, start: int) -> str | None:
    """What is wrong with the base64 from ``start`` to the end of ``text``, or ``None``.

    Strict, as ``base64.b64decode(..., validate=True)`` is: the standard alphabet only (no line
    breaks, no URL-safe ``-_``), and ``=`` padding to a multiple of 4, at the end only. A regular
    expression over the text in place: a 20 MB image's data URI is checked in tens of milliseconds
    and never copied or decoded.
    """
    if _BASE64.fullmatch(text, start) is not None and (len(text) - start) % 4 == 0:
        return None
    bad = _NOT_BASE64.search(text, start)
    if bad is not None:
        return f"{bad.group()!r} at character {bad.start() - start + 1} of its data"
    if _BASE64.fullmatch(text, start) is None:
        return "'=' padding out of place"
    return f"its data is {len(text) - start} characters, not a multiple of 4 (missing '=' padding?)"


_EXPECTED_MEDIA: Final = {
    "image": "a PNG, JPEG or WebP image",
    "video": "an MP4, MOV or AVI video",
    "audio": "an audio file (MP3, WAV, M4A, AAC, Ogg, FLAC or WMA)",
}
#: The limits of a media slot that its endpoint does not narrow (``_rules.FieldRule`` defaults).
_DEFAULT_IMAGE: Final = _rules.FieldRule(name="images", type="image")


def media_bytes_problems(
    data: bytes, kind: str, where: str, label: str = "", *, rule: _rules.FieldRule | None = None
) -> list[Problem]:
    """Problems with one media item given as bytes (or read from a file): type, size, image size
    (``rule``: the slot's own limits, where its endpoint narrows the defaults)."""
    info = _sniff.sniff(data[: 256 * 1024])
    limit = rule.max_bytes if rule is not None else _rules.MAX_MEDIA_BYTES
    problems: list[Problem] = []
    if info is None or info.kind != kind:
        found = _sniff.describe(data[:64]) if info is not None else "not a recognized format"
        problems.append(
            Problem(where, f"expected {_EXPECTED_MEDIA[kind]}{label}, but the data is {found}", _FORMAT)
        )
    if len(data) > limit:
        problems.append(Problem(where, f"is {megabytes(len(data))}{label}; at most {megabytes(limit)}"))
    if info is not None and info.kind == "image" == kind:
        problems.extend(_image_size_problems(info, where, label, rule or _DEFAULT_IMAGE))
    return problems


def _image_size_problems(
    info: _sniff.MediaInfo, where: str, label: str, rule: _rules.FieldRule
) -> list[Problem]:
    if info.width is None or info.height is None:
        return []
    w, h = info.width, info.height
    side = rule.min_side
    if w < side or h < side:
        return [Problem(where, f"image is {w}x{h} px{label}; each side must be at least {side} px", _SIZE)]
    if rule.max_side is not None and max(w, h) > rule.max_side:
        return [
            Problem(where, f"image is {w}x{h} px{label}; each side must be at most {rule.max_side} px", _SIZE)
        ]
    if max(w, h) > rule.max_aspect * min(w, h):
        ratio = f"1:{rule.max_aspect:g} and {rule.max_aspect:g}:1"
        return [Problem(where, f"image is {w}x{h} px{label}; its aspect must be between {ratio}", _SIZE)]
    return []


def megabytes(size: int) -> str:
    """A size in bytes as problems show it: ``20.0 MB`` (MiB, as the limits are read)."""
    return f"{size / (1024 * 1024):.1f} MB"


# --- body size -----------------------------------------------------------------------------------


def _check_body_size(request: Any, out: list[Problem]) -> None:
    """Estimate the JSON body from what is known now (local files are measured at submit time)."""
    estimate = getattr(request, "_body_estimate", None)
    total = estimate if isinstance(estimate, int) else estimated_body_size(request)
    if total > _rules.MAX_BODY_BYTES:
        out.append(
            Problem(
                "body",
                f"the request would be about {megabytes(total)}; Vidu takes at most {megabytes(_rules.MAX_BODY_BYTES)}",
            )
        )


def json_text_size(text: str) -> int:
    """About how many bytes ``text`` takes as a JSON string in a body: UTF-8, quoted, with the
    escapes of quotes, backslashes and line breaks counted (other control characters, rare, are not)."""
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    for escaped in _ESCAPED:
        size += text.count(escaped)
    return size + 2


_ESCAPED: Final = ('"', "\\", "\n", "\r", "\t")
#: The request's plain text fields, counted in the body estimate.
_TEXT_FIELDS: Final = ("model", "prompt", *_STR_FIELDS)
_SUBJECT_TEXT_FIELDS: Final = ("name", "id", "voice_id", "server_id")
#: Every plain text field of any request type, for the body estimate.
_ALL_TEXT_FIELDS: Final = (*_TEXT_FIELDS, "style")
#: Every field of the kinds without subjects that validation reads by name.
_KIND_FIELDS: Final = ("prompt", "images", *_KIND_STR_FIELDS, *_KIND_BOOL_FIELDS, *_INT_FIELDS)


def estimated_body_size(request: Request) -> int:
    """The JSON body size of ``request``, counting bytes media as base64 and files as nothing.

    Every text field counts, as JSON text (:func:`json_text_size`), with room for its name;
    the body actually built is measured again before it is sent (``_http.encode_create_body``).
    """
    r: Any = request
    total = 512
    for name in _ALL_TEXT_FIELDS:
        value = getattr(r, name, None)
        if isinstance(value, str):
            total += json_text_size(value) + 16
    given: object = getattr(r, "subjects", ())
    subjects = given if isinstance(given, tuple) else ()
    for subject in subjects:
        for name in _SUBJECT_TEXT_FIELDS:
            value = getattr(subject, name, None)
            if isinstance(value, str):
                total += json_text_size(value) + 16
    given = getattr(r, "sounds", ())
    sounds = given if isinstance(given, tuple) else ()
    for item in (*request.media_values(), *sounds):
        if isinstance(item, str):
            total += len(item) + 4
        elif isinstance(item, bytes):
            total += (len(item) + 2) // 3 * 4 + 40
    return total


# --- the kinds described field by field (``_rules.KIND_RULES``) ----------------------------------


def check_spec_request(request: object, rule: _rules.KindRule) -> None:
    """Raise :class:`RequestValidationError` listing every problem with ``request``, a request of
    an endpoint described field by field (``rule``)."""
    problems = spec_request_problems(request, rule)
    if problems:
        raise RequestValidationError(problems, subject=request_label(request))


def spec_request_problems(request: object, rule: _rules.KindRule) -> list[Problem]:
    """Every problem with a request of ``rule``'s endpoint, in the docs' field order: each field's
    type, presence, choices, range, length and count; its media; the model's row; the groups of
    fields of which one is needed; and the body size."""
    out: list[Problem] = []
    for field in rule.fields:
        _check_field(field, getattr(request, field.attribute, None), field.name, out)
    for group in rule.one_of:
        if all(getattr(request, _attribute(rule, name), None) is None for name in group):
            out.append(Problem(group[0], f"{rule.endpoint} needs {' or '.join(group)}", _LACKING))
    if rule.models is not None:
        model = getattr(request, "model", None)
        row = rule.models.get(model) if isinstance(model, str) else None
        if row is not None:
            _check_model_row(request, row, out)
    if rule.endpoint == "timing2audio":
        _check_timing(request, out)
    _check_body_size(request, out)
    return out


def _attribute(rule: _rules.KindRule, name: str) -> str:
    field = rule.field(name)
    return field.attribute if field is not None else name


def _check_field(field: _rules.FieldRule, value: object, where: str, out: list[Problem]) -> None:
    if value is None:
        if field.required:
            out.append(Problem(where, "is required", _LACKING))
        return
    kind = field.type
    if kind == "str":
        _check_str(field, value, where, out)
    elif kind == "bool":
        if not isinstance(value, bool):
            out.append(Problem(where, f"expected true or false, got {_type_name(value)}"))
    elif kind in ("int", "number"):
        _check_number(field, value, where, out)
    elif kind in ("image", "video", "audio"):
        _check_media_item(field, kind, value, where, out)
    elif kind in ("images", "strs", "objects"):
        if not isinstance(value, tuple):
            out.append(Problem(where, f"expected a list, got {_type_name(value)}"))
            return
        _check_count(field, value, where, out)
        for i, item in enumerate(value):
            at = f"{where}[{i}]"
            if kind == "images":
                _check_media_item(field, "image", item, at, out)
            elif kind == "strs":
                _check_str(_item_rule(field), item, at, out)
            else:
                _check_object(field, item, at, out)


def _item_rule(field: _rules.FieldRule) -> _rules.FieldRule:
    """The rule of one item of a list of strings: its choices, none of the list's counts."""
    return _rules.FieldRule(name=field.name, type="str", choices=field.choices)


def _check_str(field: _rules.FieldRule, value: object, where: str, out: list[Problem]) -> None:
    if not isinstance(value, str):
        out.append(Problem(where, f"expected a string, got {_type_name(value)}"))
        return
    why = _unicode_problem(value)
    if why is not None:
        out.append(Problem(where, why))
        return
    if field.required and not value.strip():
        out.append(Problem(where, "is required and must not be empty", _LACKING))
        return
    if field.choices and value not in field.choices:
        out.append(Problem(where, f"expected one of {', '.join(field.choices)}, got {value!r}"))
    if field.url and not is_http_url(value):
        out.append(Problem(where, f"expected an http(s) URL, got {value!r}"))
    length = _weighted_length(value) if field.weighted else len(value)
    unit = " (CJK characters count two)" if field.weighted else ""
    if field.max_chars is not None and length > field.max_chars:
        out.append(Problem(where, f"is {length} characters{unit}; at most {field.max_chars} allowed"))
    if field.min_chars is not None and length < field.min_chars:
        out.append(Problem(where, f"is {length} characters{unit}; at least {field.min_chars} needed"))


def _weighted_length(text: str) -> int:
    """Length with CJK characters counted two (lip-sync: 4-2000 characters, 2-1000 CJK ones)."""
    return len(text) + sum(1 for c in text if _is_cjk(c))


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x2E80 <= code <= 0x9FFF
        or 0xAC00 <= code <= 0xD7AF
        or 0xF900 <= code <= 0xFAFF
        or 0xFF00 <= code <= 0xFFEF
    )


def _check_number(field: _rules.FieldRule, value: object, where: str, out: list[Problem]) -> None:
    integral = field.type == "int"
    if isinstance(value, bool) or not isinstance(value, int if integral else int | float):
        out.append(
            Problem(where, f"expected {'an integer' if integral else 'a number'}, got {_type_name(value)}")
        )
        return
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        out.append(Problem(where, f"expected a finite number, got {value!r}"))
        return
    low, high = field.lowest, field.highest
    if (low is not None and number < low) or (high is not None and number > high):
        if low is not None and high is not None:
            span = f"between {low:g} and {high:g}"
        else:
            span = f"at least {low:g}" if low is not None else f"at most {high:g}"
        out.append(Problem(where, f"must be {span}, got {value!r}"))


def _check_count(field: _rules.FieldRule, value: tuple[object, ...], where: str, out: list[Problem]) -> None:
    count = len(value)
    if field.required and count == 0:
        out.append(Problem(where, "is required and must not be empty", _LACKING))
    elif count < field.min_items or (field.max_items is not None and count > field.max_items):
        low, high = field.min_items, field.max_items
        if high is None:
            allowed = f"at least {low}"
        elif low == high:
            allowed = f"exactly {low}"
        else:
            allowed = f"at most {high}" if low == 0 else f"{low}-{high}"
        out.append(Problem(where, f"has {count} item{'' if count == 1 else 's'}; {allowed} allowed", _COUNT))


def _check_media_item(
    field: _rules.FieldRule, kind: str, item: object, where: str, out: list[Problem]
) -> None:
    if isinstance(item, str):
        out.extend(_media_string_problems(item, kind, where, "", field))
    elif isinstance(item, bytes):
        out.extend(media_bytes_problems(item, kind, where, rule=field))
    elif isinstance(item, Path):
        if "\0" in str(item):
            out.append(Problem(where, "a file name cannot contain a NUL character"))
    else:
        out.append(Problem(where, f"expected a URL, data URI, Path or bytes, got {_type_name(item)}"))


def _check_object(field: _rules.FieldRule, item: object, where: str, out: list[Problem]) -> None:
    if not all(hasattr(item, sub.attribute) for sub in field.fields):
        out.append(Problem(where, f"expected a {field.object_name or 'object'}, got {_type_name(item)}"))
        return
    for sub in field.fields:
        _check_field(sub, getattr(item, sub.attribute), f"{where}.{sub.name}", out)


def _check_model_row(request: object, row: _rules.ModelRule, out: list[Problem]) -> None:
    """The fields one model narrows: resolution, aspect ratio, how many images (a field whose
    endpoint-wide rule already failed is not named twice)."""
    named = {p.field for p in out}
    resolution = getattr(request, "resolution", None)
    if isinstance(resolution, str) and row.resolutions and resolution not in row.resolutions:
        out.append(
            Problem("resolution", f"{row.name} takes {', '.join(row.resolutions)}, got {resolution!r}")
        )
    aspect = getattr(request, "aspect_ratio", None)
    if isinstance(aspect, str) and row.aspect_ratios and aspect not in row.aspect_ratios:
        out.append(
            Problem("aspect_ratio", f"{row.name} takes {', '.join(row.aspect_ratios)}, got {aspect!r}")
        )
    images = getattr(request, "images", None)
    if (
        "images" not in named
        and isinstance(images, tuple)
        and not row.min_images <= len(images) <= row.max_images
    ):
        out.append(
            Problem(
                "images",
                f"{row.name} takes {row.min_images}-{row.max_images} images, got {len(images)}",
                _COUNT,
            )
        )


def _check_timing(request: object, out: list[Problem]) -> None:
    """Each sound event lies within the clip, and starts before it ends (§15.1)."""
    duration = getattr(request, "duration", None)
    length = _number(duration) or 10.0
    events = getattr(request, "timing_prompts", None)
    if not isinstance(events, tuple):
        return
    for i, event in enumerate(events):
        start, end = _number(getattr(event, "from_", None)), _number(getattr(event, "to", None))
        if start is None or end is None:
            continue
        if start >= end:
            out.append(
                Problem(f"timing_prompts[{i}]", f"starts at {start:g} s, not before its end at {end:g} s")
            )
        if end > length:
            out.append(Problem(f"timing_prompts[{i}].to", f"is {end:g} s, past the clip's {length:g} s"))


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def spec_body_size(request: object, rule: _rules.KindRule) -> int:
    """The JSON body size of a request of ``rule``'s endpoint, as :func:`estimated_body_size`."""
    return 512 + _fields_size(request, rule.fields)


def _fields_size(item: object, fields: tuple[_rules.FieldRule, ...]) -> int:
    total = 0
    for field in fields:
        value = getattr(item, field.attribute, None)
        values = value if isinstance(value, tuple) else (value,)
        for one in values:
            if field.type == "objects":
                total += _fields_size(one, field.fields) + 8
            elif isinstance(one, str):
                total += json_text_size(one) + len(field.name) + 4
            elif isinstance(one, bytes):
                total += (len(one) + 2) // 3 * 4 + 40
            elif one is not None:
                total += 24 + len(field.name)
    return total
