"""The one cattrs converter: requests out (Vidu's exact field names, no ``None``), responses in.

Responses are read leniently: unknown fields are kept in ``extra``, ``credits`` may be a numeric
string, ``created_at`` may carry nanoseconds, the create response says ``task_id`` where the query
says ``id``, and an unknown state becomes ``TaskState.UNKNOWN``. Leniency is per field: a known
field whose value cannot be read takes its default and its value is kept in ``extra``, and a list
drops the elements it cannot read; only a task's ``id`` (and a query answer's ``state``) can make a
body unreadable. Requests written in Vidu's own JSON (a JSONL line, a docs example) are read
strictly, the way the service reads them: an unknown field is a ``FieldUnwanted`` problem, and the
model's own validation does the rest.
"""

from __future__ import annotations

import json
import logging
import math
import re
import types
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar, Union, cast, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn

from . import _rules, _validate
from ._kinds import DEFAULT_ENDPOINT, KINDS, kind_named
from ._models import (
    SYNC_REQUEST_TYPES,
    ClonedVoice,
    Creation,
    CreditPackage,
    CreditRemain,
    Credits,
    PromptSuggestion,
    PromptSuggestions,
    Request,
    Speech,
    Subject,
    Task,
    TaskState,
    VideoInfo,
)
from .exceptions import Problem, RequestValidationError, ResponseValidationError

__all__ = [
    "converter",
    "dumps",
    "parse_timestamp",
    "request_from_body",
    "request_from_json",
    "request_to_json",
    "structure_credits",
    "structure_sync_result",
    "structure_task",
    "structure_task_list",
    "sync_request_from_json",
    "task_to_json",
]

T = TypeVar("T")

logger: Final = logging.getLogger("vidu_async")

converter: Final = cattrs.Converter(forbid_extra_keys=False)

#: What reading a value of the wrong shape raises (``float`` of a 400-digit integer overflows).
_READ_ERRORS: Final = (
    cattrs.BaseValidationError,
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    ArithmeticError,
)


# --- JSON text -----------------------------------------------------------------------------------

# Compact and faithful: non-ASCII prompts stay readable, and NaN (which is not JSON) is refused
# where it is written rather than sent or stored and unreadable later. Built once, with the
# standard library's public API only. Circular references are not tracked: what is encoded here
# is JSON-shaped data built by the SDK, which has none, and tracking costs work per list and object.
_ENCODER: Final = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False
)

#: ``value`` as compact JSON text (``ensure_ascii=False``, no NaN): request bodies and the journal.
dumps: Final[Callable[[Any], str]] = _ENCODER.encode


# --- scalars (lenient: responses are the only thing structured with these) ----------------------


def _structure_str(value: object, _: object) -> str:
    if type(value) is str:
        return value
    if isinstance(value, str):
        return str(value)  # a str subclass, as a plain str
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)  # numeric ids
    raise ValueError(f"expected a string, got {type(value).__name__}")


def _structure_int(value: object, _: object) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer, got bool")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            number = float(text)  # "15.0"; raises ValueError for anything else
            if number.is_integer():
                return int(number)
    raise ValueError(f"expected an integer, got {value!r}"[:120])


def _structure_float(value: object, _: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        number = float(value.strip())
    else:
        raise ValueError(f"expected a number, got {type(value).__name__}")
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


_TRUE = {"true": True, "false": False}


def _structure_bool(value: object, _: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE:
        return _TRUE[value.strip().lower()]
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"expected true or false, got {type(value).__name__}")


_TIMESTAMP = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d+))?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE | re.ASCII,
)


def parse_timestamp(value: object) -> datetime:
    """An RFC 3339 timestamp (nanoseconds allowed, truncated) or epoch seconds, as an aware UTC datetime."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError) as exc:  # the platform's time_t says how far it goes
            raise ValueError(f"epoch seconds out of range: {value!r}"[:120]) from exc
    if not isinstance(value, str):
        raise ValueError(f"expected a timestamp, got {type(value).__name__}")
    match = _TIMESTAMP.match(value.strip())
    if match is None:
        raise ValueError(f"expected an RFC 3339 timestamp, got {value[:40]!r}")
    date, time, frac, tz = match.group("date", "time", "frac", "tz")
    micros = frac[:6].ljust(6, "0") if frac else "000000"
    # fromisoformat refuses a month 13 or an hour 24; the offset is applied below.
    stamp = datetime.fromisoformat(f"{date}T{time}.{micros}+00:00")
    if tz is None or tz in "Zz":
        return stamp
    sign = 1 if tz[0] == "+" else -1
    digits = tz[1:].replace(":", "")
    return stamp - sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))


def _structure_str_tuple(value: object, _: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(_structure_str(v, str) for v in value)
    raise ValueError(f"expected a list of strings, got {type(value).__name__}")


def _is_optional(type_: Any) -> bool:
    args = get_args(type_)
    return get_origin(type_) in (Union, types.UnionType) and len(args) == 2 and type(None) in args


#: Types whose plain JSON values need no conversion: such a value is taken as it is.
_TAKEN_AS_IS: Final = frozenset({str, int, bool})


def _optional_hook(type_: Any) -> Callable[[Any, Any], Any]:
    """``X | None`` with the hook for ``X`` looked up once, not on every value (a task has a dozen
    optional fields, and every create and poll reads one), and a value already of type ``X``
    (a JSON string for ``str | None``) taken without a call."""
    (inner_type,) = (a for a in get_args(type_) if a is not type(None))
    inner = converter.get_structure_hook(inner_type)
    if inner_type in _TAKEN_AS_IS:

        def plain(value: Any, _: Any) -> Any:
            if value is None or type(value) is inner_type:
                return value
            return inner(value, inner_type)

        return plain

    def hook(value: Any, _: Any) -> Any:
        return None if value is None else inner(value, inner_type)

    return hook


_STATES: Final = {state.value: state for state in TaskState}


def _structure_state(value: object, _: object) -> TaskState:
    if type(value) is str:
        return _STATES.get(value) or TaskState.parse(value)
    return TaskState.parse(value) if isinstance(value, str) else TaskState.UNKNOWN


def _structure_extra(value: object, _: object) -> Mapping[str, Any]:
    # Only the lenient hooks fill `extra`, always with a fresh dict of their own.
    return value if type(value) is dict else dict(cast(Mapping[str, Any], value))


converter.register_structure_hook(str, _structure_str)
converter.register_structure_hook(int, _structure_int)
converter.register_structure_hook(float, _structure_float)
converter.register_structure_hook(bool, _structure_bool)
converter.register_structure_hook(datetime, lambda v, _: parse_timestamp(v))
converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _structure_str_tuple)
converter.register_structure_hook(TaskState, _structure_state)
converter.register_structure_hook_func(lambda t: t == Mapping[str, Any], _structure_extra)
converter.register_structure_hook_factory(_is_optional, _optional_hook)


# --- response classes: known fields structured, unknown fields kept in `extra` -------------------


class _ReadInPart(ValueError):
    """A value read only in part (a ``video`` with one garbled number): ``value`` is what was read."""

    def __init__(self, value: object, why: str) -> None:
        super().__init__(why)
        self.value = value


def _lenient(
    cls: type[T], prepare: Callable[[dict[str, Any]], None] | None = None
) -> Callable[[Any, Any], T]:
    """A hook that structures the fields ``cls`` knows and keeps the rest in its ``extra``.

    A known field whose value cannot be read takes its default, and the value is kept in ``extra``
    under its own name (a value read in part is kept too); only a field without a default (a task's
    ``id``) makes the object unreadable.
    """
    fields_ = attrs.fields(attrs.resolve_types(cast(Any, cls)))
    readers = {a.name: (converter.get_structure_hook(a.type), a.type) for a in fields_ if a.name != "extra"}
    required = frozenset(a.name for a in fields_ if a.default is attrs.NOTHING)
    known = readers.keys()
    base = make_dict_structure_fn(cls, converter, _cattrs_forbid_extra_keys=False)

    def field_by_field(fields: dict[str, Any]) -> T:
        # The slow path, only for an object with a value of the wrong shape somewhere.
        extra = fields.pop("extra")
        values: dict[str, Any] = {}
        for name, raw in fields.items():
            read, type_ = readers[name]
            try:
                values[name] = read(raw, type_)
            except _READ_ERRORS as exc:
                if name in required:
                    raise ValueError(f"{name}: {exc}") from exc
                if isinstance(exc, _ReadInPart):
                    values[name] = exc.value
                extra[name] = raw
                logger.debug("%s.%s cannot be read (%s); its value is kept in extra", cls.__name__, name, exc)
        return cast(Callable[..., T], cls)(**values, extra=extra)

    def hook(value: Any, _: Any) -> T:
        if type(value) is not dict and not isinstance(value, Mapping):
            raise ValueError(f"expected an object, got {type(value).__name__}")
        data = dict(value)  # JSON keys are strings; any other key is made one below
        if prepare is not None:
            prepare(data)
        # One pass: every create, poll and list row goes through here.
        fields: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for k, v in data.items():
            if type(k) is not str:
                k = str(k)
            if k not in known:
                extra[k] = v
            elif v is not None:
                fields[k] = v
        fields["extra"] = extra
        try:  # all at once, as fast as cattrs reads; one field at a time only if that fails
            return base(fields, cls)
        except _READ_ERRORS:
            return field_by_field(fields)

    return hook


def _lenient_rows(type_: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
    """``tuple[X, ...]`` of a response class: what cannot be read as an ``X``, or reads as an
    empty one (``{}``), is dropped."""
    cls = get_args(type_)[0]
    read = converter.get_structure_hook(cls)
    empty = cls()

    def rows(value: Any, _: Any) -> tuple[Any, ...]:
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list, got {type(value).__name__}")
        out = []
        for i, item in enumerate(value):
            try:
                row = read(item, cls)
            except _READ_ERRORS as exc:
                logger.debug("%s #%d cannot be read (%s); dropped", cls.__name__, i, exc)
                continue
            if row == empty:
                logger.debug("%s #%d holds nothing; dropped", cls.__name__, i)
                continue
            out.append(row)
        return tuple(out)

    return rows


def _prepare_task(data: dict[str, Any]) -> None:
    if "task_id" in data and data.get("id") in (None, ""):
        data["id"] = data.pop("task_id")
    state = data.get("state")
    if isinstance(state, str):
        data["raw_state"] = state
    elif state is not None:
        data["raw_state"] = data["state"] = str(state)  # not a string: reads as UNKNOWN, kept as text


_VIDEO_PARTS: Final = (
    ("duration", False, _structure_float),
    ("fps", False, _structure_float),
    ("width", True, _structure_int),
    ("height", True, _structure_int),
)


def _structure_video(value: Any, _: Any) -> VideoInfo:
    """``video``, its size nested in ``resolution`` or flat. A part that cannot be read is ``None``,
    and the creation keeps the object as sent in its ``extra`` (through :class:`_ReadInPart`)."""
    if not isinstance(value, Mapping):
        raise ValueError(f"expected an object, got {type(value).__name__}")
    size = value.get("resolution")
    size = size if isinstance(size, Mapping) else value
    parts: dict[str, Any] = {}
    unreadable: list[str] = []
    for name, in_size, read in _VIDEO_PARTS:
        raw = (size if in_size else value).get(name)
        if raw is None:
            continue
        try:
            parts[name] = read(raw, None)
        except _READ_ERRORS as exc:
            unreadable.append(f"{name}: {exc}")
    video = VideoInfo(**parts)
    if unreadable:
        raise _ReadInPart(video, "; ".join(unreadable))
    return video


def _prepare_credits(data: dict[str, Any]) -> None:
    # The field table names the array `remaining_credits`; the example uses `remains`.
    if "remains" not in data and "remaining_credits" in data:
        data["remains"] = data.pop("remaining_credits")


def _prepare_sync(data: dict[str, Any]) -> None:
    # audio-tts and audio-clone answer ``task_id``; a body saying ``id`` is read the same.
    if data.get("task_id") in (None, "") and data.get("id") not in (None, ""):
        data["task_id"] = data.pop("id")
    if data.get("task_id") in (None, ""):
        raise ValueError("no task_id")


def _prepare_suggestions(data: dict[str, Any]) -> None:
    # The field table says ``task_id``, the example ``id`` (vidu-api-endpoints.md §22.13).
    if data.get("id") in (None, "") and data.get("task_id") not in (None, ""):
        data["id"] = data.pop("task_id")


_ROWS: Final = frozenset(
    {tuple[Creation, ...], tuple[CreditRemain, ...], tuple[CreditPackage, ...], tuple[PromptSuggestion, ...]}
)

converter.register_structure_hook(VideoInfo, _structure_video)
converter.register_structure_hook_factory(lambda t: t in _ROWS, _lenient_rows)
converter.register_structure_hook(Creation, _lenient(Creation))
converter.register_structure_hook(Task, _lenient(Task, _prepare_task))
converter.register_structure_hook(CreditRemain, _lenient(CreditRemain))
converter.register_structure_hook(CreditPackage, _lenient(CreditPackage))
converter.register_structure_hook(Credits, _lenient(Credits, _prepare_credits))
converter.register_structure_hook(Speech, _lenient(Speech, _prepare_sync))
converter.register_structure_hook(ClonedVoice, _lenient(ClonedVoice, _prepare_sync))
converter.register_structure_hook(PromptSuggestion, _lenient(PromptSuggestion))
converter.register_structure_hook(PromptSuggestions, _lenient(PromptSuggestions, _prepare_suggestions))


# Looked up once: a task is read on every create and poll, and cattrs' dispatch by class
# costs about as much as reading a small field.
_STRUCTURE_TASK: Final = converter.get_structure_hook(Task)


def _structure(value: object, cls: type[T], what: str, hook: Callable[[Any, type[T]], T] | None = None) -> T:
    try:
        return hook(value, cls) if hook is not None else converter.structure(value, cls)
    except cattrs.BaseValidationError as exc:
        raise ResponseValidationError(
            f"unreadable {what}", errors=tuple(cattrs.transform_error(exc, path="$")), body=value
        ) from exc
    except _READ_ERRORS as exc:
        raise ResponseValidationError(f"unreadable {what}: {exc}", body=value) from exc


def structure_task(body: object, *, task_id: str | None = None, require_state: bool = False) -> Task:
    """Read a task from a create, query, list-row or callback body.

    Leniency is per field (see :class:`~vidu_async.Task`): a known field whose value cannot be read
    takes its default, its value kept in ``extra``; unreadable creations are dropped.

    Args:
        body: The decoded JSON.
        task_id: The id from the request path, used when the body has none (the official query
            example has no ``id``).
        require_state: Whether a body without a state is unreadable: a query answer must say it,
            where a list row may leave it out.

    Raises:
        ResponseValidationError: the body is not an object, has no id or one that is neither a
            string nor a number, or has no state where one is required.
    """
    if type(body) is dict or isinstance(body, Mapping):
        if body.get("id") in (None, ""):
            if task_id is not None and not body.get("task_id"):
                body = {**body, "id": task_id}
            if body.get("id") in (None, "") and body.get("task_id") in (None, ""):
                raise ResponseValidationError("task body has no id or task_id", body=body)
        if require_state and body.get("state") in (None, ""):
            raise ResponseValidationError("task body has no state", body=body)
    return _structure(body, Task, "task", _STRUCTURE_TASK)


def structure_sync_result(body: object, cls: type[T]) -> T:
    """Read what a synchronous endpoint answers (:class:`Speech`, :class:`ClonedVoice`,
    :class:`PromptSuggestions`), leniently per field.

    Raises:
        ResponseValidationError: the body is not an object, or (speech, voice) has no id.
    """
    return _structure(body, cls, f"{cls.__name__} answer")


def structure_credits(body: object) -> Credits:
    """Read a ``GET /ent/v2/credits`` body."""
    return _structure(body, Credits, "credits response")


def structure_task_list(body: object) -> tuple[list[Task], str]:
    """Read a ``GET /ent/v2/tasks`` body: the tasks of the page and the next page token ("" at the end).

    A row that cannot be read as a task (no id: nothing could match it anyway) is skipped, with a
    debug log, rather than make the whole page unreadable.
    """
    if not isinstance(body, Mapping):
        raise ResponseValidationError("unreadable task list: expected an object", body=body)
    rows = body.get("tasks") or []
    if not isinstance(rows, list):
        raise ResponseValidationError("unreadable task list: `tasks` is not a list", body=body)
    token = body.get("next_page_token") or ""
    if not isinstance(token, str):
        token = _structure(token, str, "next_page_token")
    tasks = []
    for i, row in enumerate(rows):
        try:
            tasks.append(structure_task(row))
        except ResponseValidationError as exc:
            logger.debug("task list row %d skipped: %s", i, exc)
    return tasks, token


# --- requests out --------------------------------------------------------------------------------


def _unstructure_media(item: object) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, Path):
        raise TypeError(
            f"local file {item.name!r} must be resolved first (_media.resolve_media makes it a data URI)"
        )
    if isinstance(item, bytes):
        raise TypeError(
            f"{len(item)} bytes of media must be resolved first (_media.resolve_media makes them a data URI)"
        )
    raise TypeError(f"not a media item: {type(item).__name__}")


# What a request field holds, for the hook below.
_PLAIN: Final = "plain"
_MEDIA: Final = "media"
_SUBJECTS: Final = "subjects"


def _unstructure_dropping_empty(
    cls: type[Any], media_fields: frozenset[str]
) -> Callable[[Any], dict[str, Any]]:
    # Each field's kind is decided once: this runs for every create.
    kinds = [
        (a.name, _MEDIA if a.name in media_fields else _SUBJECTS if a.name == "subjects" else _PLAIN)
        for a in attrs.fields(cls)
    ]
    plain, media = _PLAIN, _MEDIA

    def hook(instance: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, kind in kinds:
            value = getattr(instance, name)
            if value is None or value == ():
                continue
            if kind is plain:
                out[name] = list(value) if type(value) is tuple else value
            elif kind is media:
                out[name] = [v if type(v) is str else _unstructure_media(v) for v in value]
            else:
                out[name] = [_unstructure_subject(s) for s in value]
        return out

    return hook


_unstructure_subject: Final = _unstructure_dropping_empty(Subject, frozenset({"images", "videos"}))
converter.register_unstructure_hook(Subject, _unstructure_subject)


def _spec_to_json(item: Any, fields: tuple[_rules.FieldRule, ...]) -> dict[str, Any]:
    """A request of a kind described field by field (or one of its objects) as JSON: the
    documented names (``from_`` is ``from``), no ``None``, no empty lists."""
    out: dict[str, Any] = {}
    for field in fields:
        value = getattr(item, field.attribute)
        if value is None or value == ():
            continue
        kind = field.type
        if kind in ("image", "video", "audio"):
            out[field.name] = _unstructure_media(value)
        elif kind == "images":
            out[field.name] = [_unstructure_media(v) for v in value]
        elif kind == "objects":
            out[field.name] = [_spec_to_json(v, field.fields) for v in value]
        else:
            out[field.name] = list(value) if type(value) is tuple else value
    return out


def _spec_hook(fields: tuple[_rules.FieldRule, ...]) -> Callable[[Any], dict[str, Any]]:
    return lambda instance: _spec_to_json(instance, fields)


for _endpoint, _type in SYNC_REQUEST_TYPES.items():
    converter.register_unstructure_hook(_type, _spec_hook(_rules.SYNC_RULES[_endpoint].fields))
for _kind in KINDS.values():  # every request type
    _spec = _rules.KIND_RULES.get(_kind.endpoint)
    if _spec is not None:
        converter.register_unstructure_hook(_kind.request_type, _spec_hook(_spec.fields))
    else:  # its media lists are images and videos, where it has them
        converter.register_unstructure_hook(
            _kind.request_type,
            _unstructure_dropping_empty(_kind.request_type, frozenset({"images", "videos"})),
        )


def request_to_json(request: Request) -> dict[str, Any]:
    """The JSON body for ``request``: Vidu's field names, no ``None``, no empty lists.

    Every media item must be a string (a URL or a data URI): ``Path`` and ``bytes`` items are
    resolved into data URIs first (``_media.resolve_media``), off the event loop, since reading a
    file or encoding megabytes does not belong here.

    Raises:
        TypeError: a media item is a ``Path`` or ``bytes``.
    """
    body: dict[str, Any] = converter.unstructure(request, type(request))
    return body


# --- requests in (strict, as the service reads them) ---------------------------------------------

#: Each endpoint's request fields (exactly the documented ones) and its required ones.
_REQUEST_FIELDS: Final = {
    name: frozenset(a.name for a in attrs.fields(kind.request_type)) for name, kind in KINDS.items()
}
_REQUIRED_FIELDS: Final = {
    name: tuple(a.name for a in attrs.fields(kind.request_type) if a.default is attrs.NOTHING)
    for name, kind in KINDS.items()
}
#: What a missing required field is constructed with, so that every other problem is found too.
_PLACEHOLDERS: Final[Mapping[str, Any]] = {"model": "?", "prompt": "", "images": ()}
_SUBJECT_FIELDS: Final = frozenset(a.name for a in attrs.fields(Subject))
_LIST_FIELDS: Final = frozenset({"subjects", "images", "videos", "sounds"})


def _media_item(item: str, media_root: Path | None) -> str | Path:
    """A media string, or with ``media_root`` a local file: a string with no URL scheme, or a
    ``file:`` URL (``file://ming.png`` under the root, ``file:///srv/ming.png`` absolute).

    Any other URL stays a string, for validation to take (``http(s)``, ``data:``) or to refuse
    naming its scheme (``ftp://``, ``s3://``): it is never read as a local path.
    """
    if media_root is None:
        return item
    scheme = _validate.url_scheme(item)
    if scheme is None:
        return media_root / item
    if scheme == "file":
        return media_root / _file_url_path(item)
    return item


def _file_url_path(item: str) -> str:
    """The path of a ``file:`` URL, as written (``file:x``, ``file://x``, ``file:///abs/x``)."""
    rest = item[len("file:") :]
    return rest[2:] if rest.startswith("//") else rest


def request_from_json(
    body: object, *, endpoint: str = DEFAULT_ENDPOINT, what: str = "request", media_root: Path | None = None
) -> Request:
    """Read a request written in Vidu's JSON shape, as strictly as the service does.

    Args:
        body: The decoded JSON.
        endpoint: The endpoint the body is for (``reference2video``, ``img2video``...; the path
            under ``/ent/v2/``): the body is read as that endpoint's request type.
        what: How error messages name the request (``line 7 of jobs.jsonl``).
        media_root: When given, an image or video string that is not an ``http(s)`` URL or a data
            URI is a local file, relative to this folder (how JSONL job files name local media).

    Raises:
        RequestValidationError: every problem at once: unknown fields (``FieldUnwanted``),
            wrong JSON types, and every rule the model checks.
    """
    try:
        kind = kind_named(endpoint)
    except ValueError as exc:
        raise RequestValidationError([Problem("endpoint", str(exc), "BadRequest")], subject=what) from None
    if not isinstance(body, Mapping):
        raise RequestValidationError(
            [Problem("body", f"expected a JSON object, got {type(body).__name__}", "BadRequest")],
            subject=what,
        )
    spec = _rules.KIND_RULES.get(kind.endpoint)
    if spec is not None:
        return _spec_from_json(body, kind.request_type, spec, what, media_root)
    known = _REQUEST_FIELDS[kind.endpoint]
    problems: list[Problem] = [
        Problem(str(key), f"unwanted field (not part of {kind.endpoint})", "FieldUnwanted")
        for key in body
        if key not in known
    ]
    kwargs: dict[str, Any] = {k: v for k, v in body.items() if k in known and v is not None}
    for name in _LIST_FIELDS & kwargs.keys():
        if not isinstance(kwargs[name], list):
            problems.append(Problem(name, f"expected a JSON array, got {_json_type(kwargs[name])}"))
            del kwargs[name]
    for name in ("images", "videos", "sounds"):
        if name in kwargs:
            for i, item in enumerate(kwargs[name]):
                if not isinstance(item, str):
                    problems.append(Problem(f"{name}[{i}]", f"expected a string, got {_json_type(item)}"))
            kwargs[name] = [
                _media_item(item, media_root) if name != "sounds" else item
                for item in kwargs[name]
                if isinstance(item, str)
            ]
    subjects: list[Subject] = []
    for s, raw in enumerate(kwargs.get("subjects", ())):
        subject = _subject_from_json(raw, f"subjects[{s}]", problems, media_root)
        if subject is not None:
            subjects.append(subject)
    if "subjects" in kwargs:
        kwargs["subjects"] = subjects
    missing: set[str] = set()
    for name in _REQUIRED_FIELDS[kind.endpoint]:
        if name not in kwargs:
            if body.get(name) is None:  # else its wrong type is already a problem
                problems.append(Problem(name, "is required", "FieldLacking"))
            missing.add(name)
            kwargs[name] = _PLACEHOLDERS[name]
    try:
        request: Request = kind.request_type(**kwargs)
    except RequestValidationError as exc:
        problems.extend(p for p in exc.problems if p.field not in missing)
        raise RequestValidationError(problems, subject=what) from None
    if problems:
        raise RequestValidationError(problems, subject=what)
    return request


def request_from_body(body: object, *, what: str = "request", endpoint: str | None = None) -> Request:
    """A request from a body in Vidu's JSON shape that may name its endpoint (``"endpoint":
    "img2video"``, as a job file's line may); without one it is ``endpoint``, else a
    ``reference2video`` body.

    Raises:
        RequestValidationError: as :func:`request_from_json`; also an ``endpoint`` that is not a
            string, or that contradicts ``endpoint``.
    """
    if isinstance(body, Mapping) and "endpoint" in body:
        named = body["endpoint"]
        if not isinstance(named, str) or (
            endpoint is not None and kind_named(endpoint) != _kind_or_none(named)
        ):
            shown = f"{named!r} (expected {endpoint!r})" if isinstance(named, str) else _json_type(named)
            raise RequestValidationError(
                [Problem("endpoint", f"unexpected endpoint {shown}", "BadRequest")], subject=what
            )
        return request_from_json(
            {k: v for k, v in body.items() if k != "endpoint"}, endpoint=named, what=what
        )
    return request_from_json(body, endpoint=endpoint or DEFAULT_ENDPOINT, what=what)


def _kind_or_none(name: str) -> object:
    try:
        return kind_named(name)
    except ValueError:
        return None


def sync_request_from_json(body: object, *, endpoint: str, what: str = "request") -> Any:
    """Read the body of a synchronous endpoint (``audio-tts``, ``audio-clone``,
    ``img2video-prompt-recommendation``) as strictly as :func:`request_from_json` reads a task's.

    Raises:
        RequestValidationError: every problem at once (``FieldUnwanted`` for undocumented fields).
    """
    cls = SYNC_REQUEST_TYPES.get(endpoint)
    if cls is None:
        known = ", ".join(SYNC_REQUEST_TYPES)
        raise RequestValidationError(
            [Problem("endpoint", f"unknown endpoint {endpoint!r}; expected one of: {known}", "BadRequest")],
            subject=what,
        )
    if not isinstance(body, Mapping):
        raise RequestValidationError(
            [Problem("body", f"expected a JSON object, got {type(body).__name__}", "BadRequest")],
            subject=what,
        )
    return _spec_from_json(body, cls, _rules.SYNC_RULES[endpoint], what, None)


def _spec_from_json(
    body: Mapping[str, Any], cls: type[Any], spec: _rules.KindRule, what: str, media_root: Path | None
) -> Request:
    """A request of a kind described field by field, read as strictly as the service does: a
    field it does not document is ``FieldUnwanted`` (in its objects too); everything else is the
    request type's own validation, so a missing field is ``FieldLacking`` there."""
    problems: list[Problem] = []
    kwargs = _spec_fields_from_json(
        body, spec.fields, _object_types(cls), "", spec.endpoint, problems, media_root
    )
    try:
        request: Request = cls(**kwargs)
    except RequestValidationError as exc:
        problems.extend(exc.problems)
    if problems:
        raise RequestValidationError(problems, subject=what)
    return request


def _spec_fields_from_json(
    body: Mapping[str, Any],
    fields: tuple[_rules.FieldRule, ...],
    object_types: Mapping[str, type[Any]],
    prefix: str,
    owner: str,
    problems: list[Problem],
    media_root: Path | None,
) -> dict[str, Any]:
    by_name = {field.name: field for field in fields}
    problems.extend(
        Problem(
            f"{prefix}{key}",
            f"unwanted field (not part of {owner})",
            "FieldUnwanted",
        )
        for key in body
        if key not in by_name
    )
    kwargs: dict[str, Any] = {field.attribute: None for field in fields}
    for name, value in body.items():
        field = by_name.get(name)
        if field is None or value is None:
            continue
        where = f"{prefix}{name}"
        kind = field.type
        if kind in ("images", "strs", "objects"):
            if not isinstance(value, list):
                problems.append(Problem(where, f"expected a JSON array, got {_json_type(value)}"))
                continue
            if kind == "images":
                value = [_media_item(v, media_root) if isinstance(v, str) else v for v in value]
            elif kind == "objects":
                value = [
                    _spec_object_from_json(
                        v, field, object_types[name], f"{where}[{i}]", problems, media_root
                    )
                    for i, v in enumerate(value)
                ]
        elif kind in ("image", "video", "audio") and isinstance(value, str):
            value = _media_item(value, media_root)
        kwargs[field.attribute] = value
    # A field the type gives a default keeps it when the body leaves it out.
    return {k: v for k, v in kwargs.items() if v is not None or k in _required_attributes(fields)}


def _required_attributes(fields: tuple[_rules.FieldRule, ...]) -> frozenset[str]:
    return frozenset(field.attribute for field in fields if field.required)


def _spec_object_from_json(
    raw: object,
    field: _rules.FieldRule,
    cls: type[Any],
    where: str,
    problems: list[Problem],
    media_root: Path | None,
) -> object:
    if not isinstance(raw, Mapping):
        return raw  # validation names it: "expected a KeyFrame"
    kwargs = _spec_fields_from_json(
        raw, field.fields, {}, f"{where}.", f"a {field.object_name}", problems, media_root
    )
    return cls(**kwargs)


def _object_types(cls: type[Any]) -> dict[str, type[Any]]:
    """The class of each list-of-objects field of a request type (``image_settings`` → ``KeyFrame``)."""
    attrs.resolve_types(cls)
    out: dict[str, type[Any]] = {}
    for field in attrs.fields(cls):
        args = get_args(field.type)
        if get_origin(field.type) is tuple and args and attrs.has(args[0]):
            out[field.name] = args[0]
    return out


def _subject_from_json(
    raw: object, where: str, problems: list[Problem], media_root: Path | None = None
) -> Subject | None:
    if not isinstance(raw, Mapping):
        problems.append(Problem(where, f"expected a JSON object, got {_json_type(raw)}"))
        return None
    problems.extend(
        Problem(f"{where}.{key}", "unwanted field", "FieldUnwanted")
        for key in raw
        if key not in _SUBJECT_FIELDS
    )
    kwargs = {k: v for k, v in raw.items() if k in _SUBJECT_FIELDS and v is not None}
    for name in ("images", "videos"):
        if name in kwargs:
            if not isinstance(kwargs[name], list):
                problems.append(
                    Problem(f"{where}.{name}", f"expected a JSON array, got {_json_type(kwargs[name])}")
                )
                del kwargs[name]
                continue
            for i, item in enumerate(kwargs[name]):
                if not isinstance(item, str):
                    problems.append(
                        Problem(f"{where}.{name}[{i}]", f"expected a string, got {_json_type(item)}")
                    )
            kwargs[name] = [_media_item(item, media_root) for item in kwargs[name] if isinstance(item, str)]
    return Subject(**kwargs)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


# --- tasks out (for journals and results files) --------------------------------------------------

_TASK_SKIP: Final = frozenset({"state", "raw_state", "extra", "creations", "created_at"})


def _creation_to_json(creation: Creation) -> dict[str, Any]:
    out: dict[str, Any] = {
        k: v for k, v in (("id", creation.id), ("url", creation.url), ("cover_url", creation.cover_url)) if v
    }
    if creation.watermarked_url:
        out["watermarked_url"] = creation.watermarked_url
    if creation.moderation_url:
        out["moderation_url"] = list(creation.moderation_url)
    if creation.video is not None:
        video = creation.video
        out["video"] = {
            "duration": video.duration,
            "fps": video.fps,
            "resolution": {"width": video.width, "height": video.height},
        }
    out.update(creation.extra)
    return out


def task_to_json(task: Task) -> dict[str, Any]:
    """``task`` in Vidu's own shape (as a query answers it), so :func:`structure_task` reads it back
    equal: for journals and results files."""
    out: dict[str, Any] = {"id": task.id}
    if task.raw_state:
        out["state"] = task.raw_state
    for field in attrs.fields(Task):
        if field.name in _TASK_SKIP or field.name == "id":
            continue
        value = getattr(task, field.name)
        if value is None or value == () or (value == "" and field.name != "err_code"):
            continue
        out[field.name] = list(value) if isinstance(value, tuple) else value
    if task.created_at is not None:
        out["created_at"] = task.created_at.isoformat().replace("+00:00", "Z")
    out["creations"] = [_creation_to_json(c) for c in task.creations]
    for key, value in task.extra.items():
        out.setdefault(key, value)
    return out
