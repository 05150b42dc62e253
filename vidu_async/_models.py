"""The typed shapes of vidu-async: requests out, tasks in.

Frozen, keyword-only attrs classes that know nothing about JSON; ``_convert`` turns them into
Vidu's bodies and back. Requests check themselves when constructed (``_validate``) and report
every problem at once.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, TypeAlias

import attrs

from . import _rules, _validate

__all__ = [
    "REQUEST_TYPES",
    "CloneVoiceRequest",
    "ClonedVoice",
    "Creation",
    "CreditPackage",
    "CreditRemain",
    "Credits",
    "Extend",
    "Image2Dance",
    "Img2Video",
    "KeyFrame",
    "LipSync",
    "Media",
    "MultiFrame",
    "PromptRequest",
    "PromptSuggestion",
    "PromptSuggestions",
    "Reference2Image",
    "Reference2Video",
    "Request",
    "Speech",
    "SpeechRequest",
    "StartEnd2Video",
    "Subject",
    "Task",
    "TaskState",
    "Template",
    "TemplateStory",
    "Text2Audio",
    "Text2Video",
    "Timing2Audio",
    "TimingPrompt",
    "Upscale",
    "VideoInfo",
    "media_repr",
]

#: A media input: an ``http(s)`` URL or ``data:`` URI (``str``), a local file (``Path``), or raw ``bytes``.
Media: TypeAlias = str | Path | bytes


def _as_tuple(value: Any) -> Any:
    """Turn lists (and other iterables) into tuples; leave anything else for validation to name."""
    if isinstance(value, tuple):
        return value
    if isinstance(value, str | bytes | bytearray | Path | Mapping) or not isinstance(value, Iterable):
        return value
    return tuple(value)


def _audio_type(value: Any) -> Any:
    """Accept the spelling one doc page uses (``sound-effect_only``); store the documented name."""
    return _rules.AUDIO_TYPE_ALIASES.get(value, value) if isinstance(value, str) else value


def media_repr(item: object) -> str:
    """A short, safe rendering of one media item: never a whole data URI or a whole file."""
    if isinstance(item, bytes | bytearray):
        return f"<{len(item)} bytes>"
    if isinstance(item, Path):
        return f"Path({str(item)!r})"
    if isinstance(item, str) and item[:5].lower() == "data:":
        head, _, data = item.partition(",")
        return repr(f"{head},{data[:12]}…<{len(data)} chars>")
    return repr(item)


def _media_tuple_repr(items: object) -> str:
    if isinstance(items, tuple):
        inner = ", ".join(media_repr(i) for i in items)
        return f"({inner}{',' if len(items) == 1 else ''})"
    return media_repr(items)


@attrs.frozen(kw_only=True)
class Subject:
    """One subject of a subject call: who appears in the video, referenced as ``@name`` in the prompt.

    Attributes:
        name: The handle used in the prompt as ``@name`` (current docs). Unique in the request.
        id: The older handle (2025 docs, prompt ``@1``); sent as ``id`` when given.
        images: Up to 3 reference images (URLs, data URIs, paths or bytes).
        videos: Reference videos (``viduq2-pro`` only); they share the 3 slots with ``images``.
        voice_id: A voice for the subject (empty lets Vidu pick; ignored by q3 models).
        server_id: A saved subject from the subject library, instead of images.
    """

    name: str | None = None
    id: str | None = None
    images: tuple[Media, ...] = attrs.field(default=(), converter=_as_tuple, repr=_media_tuple_repr)
    videos: tuple[Media, ...] = attrs.field(default=(), converter=_as_tuple, repr=_media_tuple_repr)
    voice_id: str | None = None
    server_id: str | None = None

    @property
    def handle(self) -> str:
        """The name the prompt refers to: ``name``, else ``id``."""
        return self.name if self.name is not None else (self.id or "")


@attrs.frozen(kw_only=True)
class _Request:
    """What every request type shares: its media items (``media``, given by each type) and what
    submitting needs to know of them."""

    def media(self) -> list[tuple[str, Media]]:
        """Every media item with its JSON field path (``images[0]``...)."""
        raise NotImplementedError

    def media_values(self) -> Iterator[Media]:
        """Every media item, without its field path."""
        for _, item in self.media():
            yield item

    @property
    def is_off_peak(self) -> bool:
        """Whether the request asks for off-peak running (only the kinds that have ``off_peak``)."""
        return getattr(self, "off_peak", None) is True

    def media_rule(self, where: str) -> _rules.FieldRule:
        """The rule of the media slot at ``where``: its kind (image, video, audio) and limits."""
        if "videos[" in where:
            return _rules.FieldRule(name=where, type="video", max_bytes=_rules.MAX_MEDIA_BYTES)
        return _rules.FieldRule(name=where, type="image", max_bytes=_rules.MAX_MEDIA_BYTES)

    def local_media(self) -> list[tuple[str, Media]]:
        """Every media item that is not a plain string (paths and bytes), with its JSON field path."""
        return [(where, item) for where, item in self.media() if not isinstance(item, str)]

    @functools.cached_property
    def has_local_media(self) -> bool:
        """Whether any media item is a path or bytes (read and encoded when submitted)."""
        return any(not isinstance(item, str) for item in self.media_values())

    @functools.cached_property
    def _body_estimate(self) -> int:
        # Worked out once: validation needs it, and so does every submission of the request.
        me: Any = self  # each request type has the fields the estimate reads
        return _validate.estimated_body_size(me)


@attrs.frozen(kw_only=True)
class Reference2Video(_Request):
    """A ``POST /ent/v2/reference2video`` request, validated when constructed.

    Two call shapes exist: the *subject call* (``subjects``, prompt refers to ``@name``) and the
    *non-subject call* (``images``, plus ``videos`` for ``viduq2-pro``). Leave a field ``None`` to let
    Vidu apply its default; ``None`` fields are never sent.

    Raises:
        RequestValidationError: listing every broken rule at once, each as ``field: problem``.
    """

    model: str
    subjects: tuple[Subject, ...] = attrs.field(default=(), converter=_as_tuple)
    auto_subjects: bool | None = None
    images: tuple[Media, ...] = attrs.field(default=(), converter=_as_tuple, repr=_media_tuple_repr)
    videos: tuple[Media, ...] = attrs.field(default=(), converter=_as_tuple, repr=_media_tuple_repr)
    sounds: tuple[str, ...] = attrs.field(default=(), converter=_as_tuple, repr=_media_tuple_repr)
    prompt: str
    duration: int | None = None
    resolution: str | None = None
    aspect_ratio: str | None = None
    audio: bool | None = None
    audio_type: str | None = attrs.field(default=None, converter=_audio_type)
    voice_id: str | None = None
    bgm: bool | None = None
    seed: int | None = None
    movement_amplitude: str | None = None
    payload: str | None = None
    off_peak: bool | None = None
    watermark: bool | None = None
    wm_position: int | None = None
    wm_url: str | None = None
    meta_data: str | None = None
    callback_url: str | None = None

    def __attrs_post_init__(self) -> None:
        _validate.check_request(self, subject_type=Subject)

    @property
    def is_subject_call(self) -> bool:
        """Whether this is a subject call (``subjects`` given)."""
        return bool(self.subjects)

    def media_values(self) -> Iterator[Media]:
        """Every media item, without its field path (no paths built: submission asks often)."""
        for _, values in self._media_fields():
            yield from values

    def media(self) -> list[tuple[str, Media]]:
        """Every media item with its JSON field path (``subjects[0].images[1]``, ``images[0]``...)."""
        return [
            (f"{field}[{i}]", item) for field, values in self._media_fields() for i, item in enumerate(values)
        ]

    def with_media(self, encoded: Mapping[str, str]) -> Reference2Video:
        """This request with the media items at the field paths of ``encoded`` replaced by its values."""
        subjects = tuple(
            attrs.evolve(
                subject,
                images=_swap(subject.images, f"subjects[{s}].images", encoded),
                videos=_swap(subject.videos, f"subjects[{s}].videos", encoded),
            )
            for s, subject in enumerate(self.subjects)
        )
        return attrs.evolve(
            self,
            subjects=subjects,
            images=_swap(self.images, "images", encoded),
            videos=_swap(self.videos, "videos", encoded),
        )

    def _media_fields(self) -> Iterator[tuple[str, tuple[Media, ...]]]:
        """Each media list with its JSON field name (``subjects[0].images``, ``images``...)."""
        # Not a tuple means validation is about to name the type error; never crash on it here.
        given: object = self.subjects
        subjects: tuple[object, ...] = given if isinstance(given, tuple) else ()
        for s, subject in enumerate(subjects):
            if isinstance(subject, Subject):
                for field in ("images", "videos"):
                    values = getattr(subject, field)
                    if isinstance(values, tuple):
                        yield f"subjects[{s}].{field}", values
        for field in ("images", "videos"):
            values = getattr(self, field)
            if isinstance(values, tuple):
                yield field, values


def _swap(items: tuple[Media, ...], field: str, encoded: Mapping[str, str]) -> tuple[Media, ...]:
    return tuple(encoded.get(f"{field}[{i}]", item) for i, item in enumerate(items))


@attrs.frozen(kw_only=True)
class _KindRequest(_Request):
    """What the requests of the kinds without subjects share: their media are ``images`` only,
    and they validate against their endpoint's rules (``_rules.ENDPOINT_RULES``) when constructed."""

    #: The endpoint under ``/ent/v2/``: the row of ``_rules.ENDPOINT_RULES`` the request is checked by.
    ENDPOINT: ClassVar[str] = ""

    def __attrs_post_init__(self) -> None:
        me: Any = self  # the subclass has the fields validation reads
        _validate.check_kind_request(me, _rules.ENDPOINT_RULES[self.ENDPOINT])

    def media_values(self) -> Iterator[Media]:
        """Every media item, without its field path."""
        images: object = getattr(self, "images", ())
        if isinstance(images, tuple):
            yield from images

    def media(self) -> list[tuple[str, Media]]:
        """Every media item with its JSON field path (``images[0]``...)."""
        return [(f"images[{i}]", item) for i, item in enumerate(self.media_values())]

    def with_media(self, encoded: Mapping[str, str]) -> Any:
        """This request with the media items at the field paths of ``encoded`` replaced by its values."""
        images: object = getattr(self, "images", None)
        if not isinstance(images, tuple):
            return self
        me: Any = self
        return attrs.evolve(me, images=_swap(images, "images", encoded))


@attrs.frozen(kw_only=True)
class Text2Video(_KindRequest):
    """A ``POST /ent/v2/text2video`` request (text → video), validated when constructed.

    Exactly the fields vidu-api-endpoints.md §2.1 documents. Leave a field ``None`` to let Vidu
    apply its default; ``None`` fields are never sent.

    Raises:
        RequestValidationError: listing every broken rule at once, each as ``field: problem``.
    """

    ENDPOINT: ClassVar[str] = "text2video"

    model: str
    style: str | None = None
    prompt: str
    duration: int | None = None
    seed: int | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None
    movement_amplitude: str | None = None
    bgm: bool | None = None
    audio: bool | None = None
    payload: str | None = None
    off_peak: bool | None = None
    watermark: bool | None = None
    wm_position: int | None = None
    wm_url: str | None = None
    meta_data: str | None = None
    callback_url: str | None = None


@attrs.frozen(kw_only=True)
class Img2Video(_KindRequest):
    """A ``POST /ent/v2/img2video`` request (one start-frame image → video), validated when constructed.

    Exactly the fields vidu-api-endpoints.md §3.1 documents (no ``aspect_ratio``: the video
    follows the image). ``images`` holds one image: a URL, a data URI, a ``Path`` or ``bytes``.

    Raises:
        RequestValidationError: listing every broken rule at once, each as ``field: problem``.
    """

    ENDPOINT: ClassVar[str] = "img2video"

    model: str
    images: tuple[Media, ...] = attrs.field(converter=_as_tuple, repr=_media_tuple_repr)
    prompt: str | None = None
    audio: bool | None = None
    audio_type: str | None = attrs.field(default=None, converter=_audio_type)
    voice_id: str | None = None
    is_rec: bool | None = None
    bgm: bool | None = None
    duration: int | None = None
    seed: int | None = None
    resolution: str | None = None
    movement_amplitude: str | None = None
    payload: str | None = None
    off_peak: bool | None = None
    watermark: bool | None = None
    wm_position: int | None = None
    wm_url: str | None = None
    meta_data: str | None = None
    callback_url: str | None = None


@attrs.frozen(kw_only=True)
class StartEnd2Video(_KindRequest):
    """A ``POST /ent/v2/start-end2video`` request (first and last frame → video), validated when constructed.

    Exactly the fields vidu-api-endpoints.md §4.1 documents. ``images`` holds two images, the
    start frame then the end frame.

    Raises:
        RequestValidationError: listing every broken rule at once, each as ``field: problem``.
    """

    ENDPOINT: ClassVar[str] = "start-end2video"

    model: str
    images: tuple[Media, ...] = attrs.field(converter=_as_tuple, repr=_media_tuple_repr)
    prompt: str | None = None
    is_rec: bool | None = None
    duration: int | None = None
    seed: int | None = None
    resolution: str | None = None
    movement_amplitude: str | None = None
    audio: bool | None = None
    bgm: bool | None = None
    payload: str | None = None
    off_peak: bool | None = None
    watermark: bool | None = None
    wm_position: int | None = None
    wm_url: str | None = None
    meta_data: str | None = None
    callback_url: str | None = None


# --- the kinds described field by field (``_rules.KIND_RULES``) ------------------------------------


@attrs.frozen(kw_only=True)
class _SpecRequest(_Request):
    """What the requests of the kinds described field by field share (``_rules.KIND_RULES``):
    validation, media paths and media swapping all read the endpoint's field list, so a type
    is its fields and nothing more."""

    #: The endpoint under ``/ent/v2/``: its row of ``_rules.KIND_RULES`` (or ``SYNC_RULES``).
    ENDPOINT: ClassVar[str] = ""

    @classmethod
    def rule(cls) -> _rules.KindRule:
        """The endpoint's documented fields."""
        return _rules.KIND_RULES.get(cls.ENDPOINT) or _rules.SYNC_RULES[cls.ENDPOINT]

    def __attrs_post_init__(self) -> None:
        _validate.check_spec_request(self, self.rule())

    def media(self) -> list[tuple[str, Media]]:
        """Every media item with its JSON field path (``start_image``, ``image_settings[0].key_image``...)."""
        return [(where, item) for where, item, _ in _media_slots(self, self.rule().fields, "")]

    def media_rule(self, where: str) -> _rules.FieldRule:
        """The rule of the media slot at ``where`` (its kind and limits)."""
        for at, _, field in _media_slots(self, self.rule().fields, ""):
            if at == where:
                return field
        raise KeyError(where)

    def with_media(self, encoded: Mapping[str, str]) -> Any:
        """This request with the media items at the field paths of ``encoded`` replaced by its values."""
        return _swap_fields(self, self.rule().fields, "", encoded)

    @functools.cached_property
    def _body_estimate(self) -> int:
        return _validate.spec_body_size(self, self.rule())


def _media_slots(
    item: object, fields: tuple[_rules.FieldRule, ...], prefix: str
) -> Iterator[tuple[str, Media, _rules.FieldRule]]:
    """Each media item under ``item`` with its path and its slot's rule (nothing of a wrong type:
    validation names that)."""
    for field in fields:
        value = getattr(item, field.attribute, None)
        where = f"{prefix}{field.name}"
        if field.type in ("image", "video", "audio") and isinstance(value, str | Path | bytes):
            yield where, value, field
        elif field.type == "images" and isinstance(value, tuple):
            image = attrs.evolve(field, type="image")
            for i, one in enumerate(value):
                if isinstance(one, str | Path | bytes):
                    yield f"{where}[{i}]", one, image
        elif field.type == "objects" and isinstance(value, tuple):
            for i, one in enumerate(value):
                if attrs.has(type(one)):
                    yield from _media_slots(one, field.fields, f"{where}[{i}].")


def _swap_fields(
    item: Any, fields: tuple[_rules.FieldRule, ...], prefix: str, encoded: Mapping[str, str]
) -> Any:
    changes: dict[str, Any] = {}
    for field in fields:
        value = getattr(item, field.attribute, None)
        where = f"{prefix}{field.name}"
        if field.type in ("image", "video", "audio") and where in encoded:
            changes[field.attribute] = encoded[where]
        elif field.type == "images" and isinstance(value, tuple):
            changes[field.attribute] = _swap(value, where, encoded)
        elif field.type == "objects" and isinstance(value, tuple):
            changes[field.attribute] = tuple(
                _swap_fields(one, field.fields, f"{where}[{i}].", encoded) if attrs.has(type(one)) else one
                for i, one in enumerate(value)
            )
    return attrs.evolve(item, **changes) if changes else item


@attrs.frozen(kw_only=True)
class KeyFrame:
    """One key frame of a :class:`MultiFrame` request: the image the segment ends on.

    Attributes:
        key_image: The image: a URL, a data URI, a ``Path`` or ``bytes``.
        prompt: The transition from the previous frame.
        duration: The segment's length, 2-7 s (Vidu's default 5).
    """

    key_image: Media = attrs.field(repr=media_repr)
    prompt: str | None = None
    duration: int | None = None


@attrs.frozen(kw_only=True)
class MultiFrame(_SpecRequest):
    """A ``POST /ent/v2/multiframe`` request: a start image and 2-9 key frames → one video
    (vidu-api-endpoints.md §5). ``wm_position`` is a word here (``bottom_left``...), not 1-4.

    Raises:
        RequestValidationError: listing every broken rule at once, each as ``field: problem``.
    """

    ENDPOINT: ClassVar[str] = "multiframe"

    model: str
    start_image: Media = attrs.field(repr=media_repr)
    image_settings: tuple[KeyFrame, ...] = attrs.field(converter=_as_tuple)
    resolution: str | None = None
    payload: str | None = None
    callback_url: str | None = None
    watermark: bool | None = None
    wm_url: str | None = None
    wm_position: str | None = None
    meta_data: str | None = None


@attrs.frozen(kw_only=True)
class Template(_SpecRequest):
    """A ``POST /ent/v2/template`` request: a scene-effect template applied to images
    (vidu-api-endpoints.md §6). No model: ``template`` names the effect. Job files may name the
    endpoint by its legacy path ``template2video``; the SDK calls ``/ent/v2/template``.

    Raises:
        RequestValidationError: listing every broken rule at once, each as ``field: problem``.
    """

    ENDPOINT: ClassVar[str] = "template"

    template: str
    images: tuple[Media, ...] = attrs.field(converter=_as_tuple, repr=_media_tuple_repr)
    prompt: str | None = None
    seed: int | None = None
    aspect_ratio: str | None = None
    area: str | None = None
    beast: str | None = None
    bgm: bool | None = None
    payload: str | None = None
    callback_url: str | None = None
    watermark: bool | None = None
    wm_position: int | None = None
    wm_url: str | None = None
    meta_data: str | None = None


@attrs.frozen(kw_only=True)
class TemplateStory(_SpecRequest):
    """A ``POST /ent/v2/template-story`` request: a multi-shot story film from images
    (vidu-api-endpoints.md §7). No model and no prompt: ``story`` names the film.

    Raises:
        RequestValidationError: listing every broken rule at once, each as ``field: problem``.
    """

    ENDPOINT: ClassVar[str] = "template-story"

    story: str
    images: tuple[Media, ...] = attrs.field(converter=_as_tuple, repr=_media_tuple_repr)
    payload: str | None = None
    callback_url: str | None = None


@attrs.frozen(kw_only=True)
class Reference2Image(_SpecRequest):
    """A ``POST /ent/v2/reference2image`` request: text and up to 7 reference images → image(s)
    (vidu-api-endpoints.md §8). With ``viduq2`` and no images it is plain text-to-image.

    Raises:
        RequestValidationError: listing every broken rule at once, each as ``field: problem``.
    """

    ENDPOINT: ClassVar[str] = "reference2image"

    model: str
    images: tuple[Media, ...] = attrs.field(default=(), converter=_as_tuple, repr=_media_tuple_repr)
    prompt: str
    seed: int | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None
    payload: str | None = None
    callback_url: str | None = None


@attrs.frozen(kw_only=True)
class Extend(_SpecRequest):
    """A ``POST /ent/v2/extend`` request: a video made longer by 1-7 s (vidu-api-endpoints.md §9).
    The source is a Vidu creation (``video_creation_id``) or a video URL (``video_url``).

    Raises:
        RequestValidationError: listing every broken rule at once, each as ``field: problem``.
    """

    ENDPOINT: ClassVar[str] = "extend"

    model: str
    video_creation_id: str | None = None
    video_url: Media | None = attrs.field(default=None, repr=media_repr)
    images: tuple[Media, ...] = attrs.field(default=(), converter=_as_tuple, repr=_media_tuple_repr)
    prompt: str | None = None
    duration: int | None = None
    resolution: str | None = None
    payload: str | None = None
    callback_url: str | None = None


@attrs.frozen(kw_only=True)
class Upscale(_SpecRequest):
    """A ``POST /ent/v2/upscale-new`` request ("Upscale Pro"): a video at a higher resolution
    (vidu-api-endpoints.md §10). No model. ``video_creation_id`` wins when both sources are given;
    a target no higher than the source makes the task fail.

    Raises:
        RequestValidationError: listing every broken rule at once, each as ``field: problem``.
    """

    ENDPOINT: ClassVar[str] = "upscale-new"

    video_url: Media | None = attrs.field(default=None, repr=media_repr)
    video_creation_id: str | None = None
    upscale_resolution: str | None = None
    payload: str | None = None
    callback_url: str | None = None


@attrs.frozen(kw_only=True)
class LipSync(_SpecRequest):
    """A ``POST /ent/v2/lip-sync`` request: a talking video re-voiced from audio (``audio_url``,
    which wins) or from text read by a voice (``text`` + ``voice_id``, ``speed``, ``volume``)
    (vidu-api-endpoints.md §11). No model. ``payload`` is sent only when given (§22.10), so a lost
    create answer cannot be reconciled: it is ``SubmitOutcomeUnknownError``.

    Raises:
        RequestValidationError: listing every broken rule at once, each as ``field: problem``.
    """

    ENDPOINT: ClassVar[str] = "lip-sync"

    video_url: Media = attrs.field(repr=media_repr)
    audio_url: Media | None = attrs.field(default=None, repr=media_repr)
    text: str | None = None
    speed: float | None = None
    voice_id: str | None = None
    volume: int | None = None
    ref_photo_url: Media | None = attrs.field(default=None, repr=media_repr)
    callback_url: str | None = None
    payload: str | None = None


@attrs.frozen(kw_only=True)
class Image2Dance(_SpecRequest):
    """A ``POST /ent/v2/image2dance`` request ("motion sync"): the movement of a reference video
    carried onto the person in an image (vidu-api-endpoints.md §12). No model.

    Raises:
        RequestValidationError: listing every broken rule at once, each as ``field: problem``.
    """

    ENDPOINT: ClassVar[str] = "image2dance"

    image_url: Media = attrs.field(repr=media_repr)
    video_url: Media = attrs.field(repr=media_repr)
    payload: str | None = None
    callback_url: str | None = None


@attrs.frozen(kw_only=True)
class Text2Audio(_SpecRequest):
    """A ``POST /ent/v2/text2audio`` request: text → a sound-effect or music clip of 2-10 s
    (vidu-api-endpoints.md §14). ``payload`` is sent only when given (§22.11).

    Raises:
        RequestValidationError: listing every broken rule at once, each as ``field: problem``.
    """

    ENDPOINT: ClassVar[str] = "text2audio"

    model: str
    prompt: str
    duration: float | None = None
    seed: int | None = None
    callback_url: str | None = None
    payload: str | None = None


@attrs.frozen(kw_only=True)
class TimingPrompt:
    """One sound event of a :class:`Timing2Audio` request (events may overlap).

    Attributes:
        from_: Its start, in seconds (sent as ``from``).
        to: Its end, in seconds, after the start and within the clip.
        prompt: What is heard, at most 1500 characters.
    """

    from_: float
    to: float
    prompt: str


@attrs.frozen(kw_only=True)
class Timing2Audio(_SpecRequest):
    """A ``POST /ent/v2/timing2audio`` request: sound effects placed on a timeline
    (vidu-api-endpoints.md §15). ``payload`` is sent only when given (§22.11).

    Raises:
        RequestValidationError: listing every broken rule at once, each as ``field: problem``.
    """

    ENDPOINT: ClassVar[str] = "timing2audio"

    model: str
    duration: float | None = None
    timing_prompts: tuple[TimingPrompt, ...] = attrs.field(converter=_as_tuple)
    seed: int | None = None
    callback_url: str | None = None
    payload: str | None = None


# --- the synchronous endpoints (``_rules.SYNC_RULES``): requests -----------------------------------


@attrs.frozen(kw_only=True)
class SpeechRequest(_SpecRequest):
    """A ``POST /ent/v2/audio-tts`` body (vidu-api-endpoints.md §16): text read by a voice.
    Built by ``ViduClient.text_to_speech``; the flat ``voice_setting_*`` names are Vidu's."""

    ENDPOINT: ClassVar[str] = "audio-tts"

    text: str
    voice_setting_voice_id: str
    voice_setting_speed: float | None = None
    voice_setting_volume: int | None = None
    voice_setting_pitch: int | None = None
    voice_setting_emotion: str | None = None
    pronunciation_dict_tone: tuple[str, ...] | None = attrs.field(default=None, converter=_as_tuple)
    payload: str | None = None


@attrs.frozen(kw_only=True)
class CloneVoiceRequest(_SpecRequest):
    """A ``POST /ent/v2/audio-clone`` body (vidu-api-endpoints.md §17): a voice cloned from a
    sample, named by the caller, and a preview read with it. Built by ``ViduClient.clone_voice``."""

    ENDPOINT: ClassVar[str] = "audio-clone"

    audio_url: Media = attrs.field(repr=media_repr)
    voice_id: str
    prompt_audio_url: Media | None = attrs.field(default=None, repr=media_repr)
    prompt_text: str | None = None
    text: str
    payload: str | None = None


@attrs.frozen(kw_only=True)
class PromptRequest(_SpecRequest):
    """A ``POST /ent/v2/img2video-prompt-recommendation`` body (vidu-api-endpoints.md §18):
    prompt ideas for one image. Built by ``ViduClient.recommend_prompts``."""

    ENDPOINT: ClassVar[str] = "img2video-prompt-recommendation"

    images: tuple[Media, ...] = attrs.field(converter=_as_tuple, repr=_media_tuple_repr)
    type: tuple[str, ...] = attrs.field(converter=_as_tuple)
    resolution: str | None = None
    count: int | None = None


#: The request type of each synchronous endpoint.
SYNC_REQUEST_TYPES: dict[str, type[_SpecRequest]] = {
    cls.ENDPOINT: cls for cls in (SpeechRequest, CloneVoiceRequest, PromptRequest)
}


#: A request of any task kind.
Request: TypeAlias = (
    Reference2Video
    | Text2Video
    | Img2Video
    | StartEnd2Video
    | MultiFrame
    | Template
    | TemplateStory
    | Extend
    | Upscale
    | LipSync
    | Image2Dance
    | Reference2Image
    | Text2Audio
    | Timing2Audio
)
#: The request types, for ``isinstance``.
REQUEST_TYPES: tuple[type[Request], ...] = (
    Reference2Video,
    Text2Video,
    Img2Video,
    StartEnd2Video,
    MultiFrame,
    Template,
    TemplateStory,
    Extend,
    Upscale,
    LipSync,
    Image2Dance,
    Reference2Image,
    Text2Audio,
    Timing2Audio,
)


class TaskState(enum.StrEnum):
    """The state of a task. ``UNKNOWN`` stands for any state string Vidu may add later."""

    CREATED = "created"
    QUEUEING = "queueing"
    PROCESSING = "processing"
    SUCCESS = "success"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        """Whether the task is finished (``success`` or ``failed``)."""
        return self in (TaskState.SUCCESS, TaskState.FAILED)

    @classmethod
    def parse(cls, raw: str) -> TaskState:
        """The state for a raw string; ``queuing`` (an old spelling) is ``QUEUEING``; anything else unknown."""
        text = raw.strip().lower()
        if text == "queuing":
            return cls.QUEUEING
        try:
            state = cls(text)
        except ValueError:
            return cls.UNKNOWN
        return state


@attrs.frozen(kw_only=True)
class VideoInfo:
    """Technical details of a generated video, where the service gives them."""

    duration: float | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None


@attrs.frozen(kw_only=True)
class Creation:
    """One generated video of a finished task.

    Attributes:
        id: The creation id.
        url: A pre-signed download URL, valid for a limited time (24 h per the docs).
        cover_url: A cover image URL.
        watermarked_url: The watermarked video, when ``watermark`` was requested.
        moderation_url: Moderation links (seen in one schema only).
        video: Duration, fps and size, where given.
        extra: Fields the SDK does not know, and known fields whose value could not be read, kept
            as sent.
    """

    id: str = ""
    url: str = ""
    cover_url: str = ""
    watermarked_url: str = ""
    moderation_url: tuple[str, ...] = ()
    video: VideoInfo | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=False)


@attrs.frozen(kw_only=True)
class Task:
    """A task as Vidu reports it, from a create, a query, a list row or a callback.

    Parsing is lenient: fields the SDK does not know are kept in ``extra``; ``credits`` may have
    come as a numeric string; an unrecognized state is ``TaskState.UNKNOWN`` with the raw string in
    ``raw_state``. Leniency is per field: a known field whose value cannot be read (``credits: ""``,
    a garbled ``created_at``, ``payload: {}``) takes its default (``None``, ``""`` or ``()``) and
    the value is kept in ``extra`` under its own name, as sent; so is a creation's (a ``video``
    with one garbled number keeps the others, and the creation keeps the object in its ``extra``).
    Creations that are not objects, or hold nothing (``{}``), are dropped. Only a missing or
    unreadable ``id`` (and, in a query answer, a missing ``state``) makes a body unreadable.
    Echoed request fields are whatever the service echoed (not guaranteed to equal the request).

    Attributes:
        id: The task id (``task_id`` in a create response, ``id`` elsewhere).
        state: The parsed state.
        raw_state: The state string exactly as sent ("" when the body had none).
        err_code: Why the task failed, or "".
        credits: Credits charged or reserved, when given.
        payload: The request's ``payload``, echoed.
        creations: The generated videos (empty until ``success``).
        created_at: When the task was created (UTC; nanoseconds truncated to microseconds).
        extra: Fields the SDK does not know, and known fields whose value could not be read, kept
            as sent.
    """

    id: str
    state: TaskState = TaskState.UNKNOWN
    raw_state: str = ""
    err_code: str = ""
    err_msg: str = ""
    credits: int | None = None
    payload: str = ""
    creations: tuple[Creation, ...] = ()
    created_at: datetime | None = None
    progress: float | None = None
    type: str | None = None
    model: str | None = None
    prompt: str | None = None
    images: tuple[str, ...] = attrs.field(default=(), repr=_media_tuple_repr)
    duration: int | None = None
    seed: int | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None
    movement_amplitude: str | None = None
    bgm: bool | None = None
    audio: bool | None = None
    audio_type: str | None = None
    off_peak: bool | None = None
    watermark: bool | None = None
    key_id: str | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @property
    def is_terminal(self) -> bool:
        """Whether the task is finished."""
        return self.state.is_terminal


@attrs.frozen(kw_only=True)
class CreditRemain:
    """One row of ``remains``: the balance and concurrency of one kind of credit."""

    type: str = ""
    credit_remain: int | None = None
    concurrency_limit: int | None = None
    current_concurrency: int | None = None
    queue_count: int | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=False)


@attrs.frozen(kw_only=True)
class CreditPackage:
    """One purchased package (``show_detail=true``). Dates are kept as sent."""

    id: str = ""
    name: str = ""
    type: str = ""
    concurrency: int | None = None
    credit_amount: int | None = None
    credit_remain: int | None = None
    created_at: str | None = None
    purchase_at: str | None = None
    valid_from: str | None = None
    valid_to: str | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=False)


@attrs.frozen(kw_only=True)
class Credits:
    """The account's credits and concurrency (``GET /ent/v2/credits``)."""

    remains: tuple[CreditRemain, ...] = ()
    packages: tuple[CreditPackage, ...] = ()
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @property
    def credit_remain(self) -> int:
        """Credits left, over every row."""
        return sum(r.credit_remain or 0 for r in self.remains)

    @property
    def concurrency_limit(self) -> int | None:
        """The organization's concurrency limit: the largest any row reports, or ``None``."""
        limits = [r.concurrency_limit for r in self.remains if r.concurrency_limit]
        return max(limits) if limits else None

    @property
    def current_concurrency(self) -> int:
        """Tasks running now, over every row."""
        return sum(r.current_concurrency or 0 for r in self.remains)

    @property
    def queue_count(self) -> int:
        """Tasks waiting for a slot, over every row."""
        return sum(r.queue_count or 0 for r in self.remains)


# --- the synchronous endpoints: results ---------------------------------------------------------


@attrs.frozen(kw_only=True)
class Speech:
    """What ``audio-tts`` answers (vidu-api-endpoints.md §16.2): the spoken audio's URL.

    Attributes:
        task_id: The id Vidu gave the call.
        state: ``SUCCESS`` when the audio is ready (the normal answer).
        file_url: The audio's URL (expires like creations' URLs); "" when not ready.
        credits: Credits charged.
        payload: The request's ``payload``, echoed.
        created_at: When the call was made.
        extra: Fields the SDK does not know, as sent.
    """

    task_id: str
    state: TaskState = TaskState.UNKNOWN
    file_url: str = ""
    credits: int | None = None
    payload: str = ""
    created_at: datetime | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=False)


@attrs.frozen(kw_only=True)
class ClonedVoice:
    """What ``audio-clone`` answers (vidu-api-endpoints.md §17.2): the new voice and a preview.

    Attributes:
        task_id: The id Vidu gave the call.
        state: ``SUCCESS``, or ``QUEUEING`` while the clone is being made.
        voice_id: The voice, for ``text_to_speech`` and ``LipSync`` (the id the caller chose).
        demo_audio: The preview's URL ("" until ready).
        credits: Credits charged, when given.
        payload: The request's ``payload``, echoed.
        created_at: When the call was made.
        extra: Fields the SDK does not know, as sent.
    """

    task_id: str
    state: TaskState = TaskState.UNKNOWN
    voice_id: str = ""
    demo_audio: str = ""
    credits: int | None = None
    payload: str = ""
    created_at: datetime | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=False)


@attrs.frozen(kw_only=True)
class PromptSuggestion:
    """One idea of ``img2video-prompt-recommendation``.

    Attributes:
        type: ``template`` or ``img2video``.
        content: The idea, in words.
        prompt: A ready prompt (``template`` ideas).
        template: The template to use with it (``template`` ideas: ``Template(template=...)``).
        resolution: The resolution it was chosen for (``template`` ideas).
    """

    type: str = ""
    content: str = ""
    prompt: str = ""
    template: str = ""
    resolution: str = ""


@attrs.frozen(kw_only=True)
class PromptSuggestions:
    """What ``img2video-prompt-recommendation`` answers (vidu-api-endpoints.md §18.2).

    Attributes:
        id: The id Vidu gave the call (``task_id`` in the field table, ``id`` in the example).
        prompts: The ideas.
        count: Ideas asked per type.
        created_at: When the call was made.
        extra: Fields the SDK does not know, as sent.
    """

    id: str = ""
    prompts: tuple[PromptSuggestion, ...] = ()
    count: int | None = None
    created_at: datetime | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
