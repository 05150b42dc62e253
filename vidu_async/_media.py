"""Local media at submit time: read files, check them, encode them, and build the final body.

Everything here runs in a worker thread (``anyio.to_thread``) when there is anything to read or
encode, so the event loop never waits on a disk or on base64 of a 20 MB file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

import anyio.to_thread
import attrs

from . import _convert, _rules, _validate
from ._models import Media, Reference2Video
from .exceptions import Problem, RequestValidationError

__all__ = ["encode_body", "prepare_body"]

#: Bodies estimated below this are serialized on the loop: a thread hop would cost more.
_INLINE_LIMIT: Final = 256 * 1024


async def prepare_body(request: Reference2Video, *, overrides: Mapping[str, str] | None = None) -> bytes:
    """The encoded JSON body for ``request``, with local files read and encoded off the event loop.

    Args:
        request: The request.
        overrides: Fields to send instead of the request's (the SDK's fingerprint in ``payload``,
            the client's ``callback_url``).

    Raises:
        RequestValidationError: a file cannot be read, is not a usable image or video, is too large,
            or the whole body is over 20 MB. Nothing has been sent.
    """
    if not request.has_local_media and request._body_estimate < _INLINE_LIMIT:
        return encode_body(request, overrides=overrides)
    return await anyio.to_thread.run_sync(lambda: encode_body(request, overrides=overrides))


def encode_body(request: Reference2Video, *, overrides: Mapping[str, str] | None = None) -> bytes:
    """Blocking: read and check every local file, encode the body, check its size."""
    resolved = _resolve(request)
    data = _convert.request_to_json(resolved)
    data.update(overrides or {})
    body = _convert.dumps(data).encode()
    if len(body) > _rules.MAX_BODY_BYTES:
        size = len(body) / (1024 * 1024)
        limit = _rules.MAX_BODY_BYTES / (1024 * 1024)
        raise RequestValidationError(
            [
                Problem(
                    "body",
                    f"the request is {size:.1f} MB; Vidu takes at most {limit:.0f} MB (use URLs for large media)",
                )
            ],
            subject=f"Reference2Video (model {request.model!r})",
        )
    return body


def _resolve(request: Reference2Video) -> Reference2Video:
    """``request`` with every Path and bytes item replaced by a checked data URI."""
    if not request.has_local_media:
        return request
    local = request.local_media()
    problems: list[Problem] = []
    encoded: dict[str, str] = {}
    for where, item in local:
        uri = _encode_one(request, where, item, problems)
        if uri is not None:
            encoded[where] = uri
    if problems:
        raise RequestValidationError(problems, subject=f"Reference2Video (model {request.model!r})")
    subjects = tuple(
        attrs.evolve(
            subject,
            images=_swap(subject.images, f"subjects[{s}].images", encoded),
            videos=_swap(subject.videos, f"subjects[{s}].videos", encoded),
        )
        for s, subject in enumerate(request.subjects)
    )
    return attrs.evolve(
        request,
        subjects=subjects,
        images=_swap(request.images, "images", encoded),
        videos=_swap(request.videos, "videos", encoded),
    )


def _swap(items: tuple[Media, ...], field: str, encoded: dict[str, str]) -> tuple[Media, ...]:
    return tuple(encoded.get(f"{field}[{i}]", item) for i, item in enumerate(items))


def _encode_one(request: Reference2Video, where: str, item: Media, problems: list[Problem]) -> str | None:
    kind = "video" if "videos[" in where else "image"
    label = _label(request, where, item)
    if isinstance(item, Path):
        try:
            data = item.read_bytes()
        except OSError as exc:
            problems.append(Problem(where, f"cannot read the file{label}: {exc.strerror or exc}"))
            return None
        found = _validate.media_bytes_problems(data, kind, where, label)
        if found:
            problems.extend(found)
            return None
    elif isinstance(item, bytes):
        data = item  # checked when the request was constructed
    else:
        return None
    return _convert.media_to_data_uri(data)


def _label(request: Reference2Video, where: str, item: Media) -> str:
    label = _validate.where_label(request, where)
    if not isinstance(item, Path):
        return label
    file = f"file {str(item)!r}"
    return f"{label[:-1]}, {file})" if label else f" ({file})"
