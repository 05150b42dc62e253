"""A batch's input items: what each one is, its key, and the hash of its request.

An item's key is its identity across runs: the journal finds an earlier run's work by it. A key the
caller gives is used as it is. An item without one is named by its content, the hash of its
request, with an occurrence number for the second and later copies of the same request
(``3f2a...``, ``3f2a...-2``), so inserting, deleting or reordering items of an input never
changes the key of an item that was already there, and never bills it again.

Journals written before content keys named a keyless item by its request *and its position*
(:func:`position_key`); the batch looks that name up too, so such journals keep resuming.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final, TypeAlias

import attrs

from . import _convert
from ._kinds import DEFAULT_ENDPOINT, kind_of
from ._models import REQUEST_TYPES, Request
from .exceptions import Problem, RequestValidationError

__all__ = [
    "DUPLICATE_KEY",
    "BatchInput",
    "BatchItem",
    "JobItem",
    "KeyMaker",
    "ReadItem",
    "canonical",
    "json_type",
    "key_problem",
    "position_key",
    "read_item",
    "request_hash",
]


@attrs.frozen
class JobItem:
    """An item of a job file: its request, its key (``None`` for a keyless line) and its line,
    which only an old journal's keys depend on (see :func:`position_key`)."""

    request: Request
    key: str | None = None
    line: int | None = None


#: One input item: a request of any kind, a body in Vidu's JSON shape (an optional ``"key"`` names
#: it, an optional ``"endpoint"`` its kind: ``reference2video`` without one), or ``(key, request)``.
BatchItem: TypeAlias = Request | Mapping[str, Any] | tuple[str, Request | Mapping[str, Any]] | JobItem
BatchInput: TypeAlias = Iterable[BatchItem] | AsyncIterable[BatchItem]

#: Hex digits of the request hash that name a keyless item.
_KEY_DIGITS: Final = 24


def canonical(value: Any) -> Any:
    """``value`` as plain JSON data, the same for equal requests (files by path, bytes by their hash)."""
    if isinstance(value, bytes):
        return "sha256:" + hashlib.sha256(value).hexdigest()
    if isinstance(value, Path):
        return "path:" + str(value)
    if attrs.has(type(value)):
        return {a.name: canonical(getattr(value, a.name)) for a in attrs.fields(type(value))}
    if isinstance(value, tuple | list):
        return [canonical(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in value.items()}
    return value


def _canonical_json(value: Any) -> str:
    return json.dumps(canonical(value), sort_keys=True, ensure_ascii=False, default=str)


def _digest(text: str) -> str:
    # surrogatepass: a hash must never be the reason an item fails (validation names bad text).
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def request_hash(request: Request) -> str:
    """A hash of the request's content (files by path, bytes by their own hash) and, for a kind
    other than ``reference2video`` (whose hashes predate kinds), of its endpoint: two kinds'
    requests with equal fields are different items."""
    endpoint = kind_of(request).endpoint
    text = _canonical_json(request)
    return _digest(text if endpoint == DEFAULT_ENDPOINT else f"{endpoint}:{text}")


def position_key(request: Request, position: int) -> str:
    """The key journals written before content keys gave a keyless item: a hash of its request
    and its position (the batch index, or the job file's line)."""
    return _digest(f"{position}:{_canonical_json(request)}")[:_KEY_DIGITS]


#: The ``reason`` of the problem that refuses an item whose key an earlier item has.
DUPLICATE_KEY: Final = "DuplicateKey"


class KeyMaker:
    """Names keyless items by content (the first copy of a request gets its hash, later copies
    the hash and their occurrence number), and keeps every key to one item (:meth:`claim`)."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}
        self._claimed: dict[str, int] = {}

    def claim(self, key: str, index: int) -> RequestValidationError | None:
        """Give ``key`` to item ``index``; the error refusing the item when an earlier item has it.

        With a journal a key names one item (its row): a later item with the same key would take
        over the earlier one's row, and a crash could lose that item's task.
        """
        first = self._claimed.setdefault(key, index)
        if first == index:
            return None
        problem = f"{key!r} is the key of item {first}: with a journal, every item needs its own"
        return RequestValidationError([Problem("key", problem, DUPLICATE_KEY)], subject=f"batch item {index}")

    def key(self, digest: str) -> str:
        """The key of the next item whose request hashes to ``digest``."""
        name = digest[:_KEY_DIGITS]
        count = self._seen.get(name, 0) + 1
        self._seen[name] = count
        return name if count == 1 else f"{name}-{count}"


def key_problem(key: object) -> str | None:
    """What is wrong with a caller's key, or ``None``: a key is a non-empty string of valid Unicode."""
    if not isinstance(key, str):
        return f"expected a string, got {json_type(key)}"
    if not key:
        return "must not be empty"
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text (it holds a lone surrogate)"
    return None


def json_type(value: object) -> str:
    """What JSON calls the type of a decoded value, with its article (``a boolean``, ``an array``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


@attrs.frozen
class ReadItem:
    """An input item as the batch takes it.

    Attributes:
        key: The item's key (the caller's, or made from the content); for an unreadable item
            ``item-<index>`` unless the caller's key was usable.
        request: The request, or ``None`` when the item is unreadable.
        request_hash: The request's hash, when the key was made from it (else computed on demand).
        position: For a keyless item, its position as old journals keyed it (see
            :func:`position_key`); ``None`` for a keyed one.
        invalid: Why the item cannot be submitted.
    """

    key: str
    request: Request | None
    request_hash: str | None = None
    position: int | None = None
    invalid: RequestValidationError | None = None


def read_item(index: int, raw: object, keys: KeyMaker) -> ReadItem:
    """One input item as a :class:`ReadItem`; anything unreadable (callers without a type checker
    pass anything) becomes an item that fails with a clear error."""
    subject = f"batch item {index}"
    fallback = f"item-{index}"
    key: object = None
    position = index
    body: object
    if isinstance(raw, JobItem):
        key, body = raw.key, raw.request
        position = raw.line if raw.line is not None else index
    elif isinstance(raw, tuple) and len(raw) == 2:
        key, body = raw
        if key is None:
            return ReadItem(fallback, None, invalid=_invalid("key", "expected a string, got null", subject))
    else:
        body = raw
    endpoint: object = DEFAULT_ENDPOINT
    if isinstance(body, Mapping) and ("key" in body or "endpoint" in body):
        key = body.get("key", key)
        endpoint = body.get("endpoint", DEFAULT_ENDPOINT)
        body = {k: v for k, v in body.items() if k not in ("key", "endpoint")}
    if key is not None and (problem := key_problem(key)) is not None:
        return ReadItem(fallback, None, invalid=_invalid("key", problem, subject))
    given: str | None = key if isinstance(key, str) else None
    if isinstance(body, Mapping):
        try:
            request = _convert.request_from_json(body, endpoint=str(endpoint), what=subject)
        except RequestValidationError as exc:
            return ReadItem(given or fallback, None, invalid=exc)
    elif isinstance(body, REQUEST_TYPES):
        request = body
    else:
        problem = f"expected a request (Reference2Video, Text2Video...), a JSON object or a (key, request) pair, got {type(raw).__name__}"
        return ReadItem(given or fallback, None, invalid=_invalid("item", problem, subject))
    if given is not None:
        return ReadItem(given, request)
    digest = request_hash(request)
    return ReadItem(keys.key(digest), request, request_hash=digest, position=position)


def _invalid(field: str, problem: str, subject: str) -> RequestValidationError:
    return RequestValidationError([Problem(field, problem, "BadRequest")], subject=subject)
