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
    "Creation",
    "CreditPackage",
    "CreditRemain",
    "Credits",
    "Img2Video",
    "Media",
    "Reference2Video",
    "Request",
    "StartEnd2Video",
    "Subject",
    "Task",
    "TaskState",
    "Text2Video",
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


#: A request of any task kind.
Request: TypeAlias = Reference2Video | Text2Video | Img2Video | StartEnd2Video
#: The request types, for ``isinstance``.
REQUEST_TYPES: tuple[type[Request], ...] = (Reference2Video, Text2Video, Img2Video, StartEnd2Video)


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
