"""Pure HTTP: build each call as an :class:`ApiRequest`, read each :class:`ApiResponse` into a model or
a mapped :class:`~vidu_async.exceptions.APIError`.

No sockets here: ``_transport`` sends what this module builds. Every Vidu reason of vidu-api.md §8 maps
to one exception class; both observed error-body shapes (int or string ``code``) are read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final, TypeVar
from urllib.parse import quote

import attrs

from . import _convert, _rules, _validate
from ._models import Credits, Request, Task
from .exceptions import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InsufficientCreditsError,
    NotFoundError,
    PermissionDeniedError,
    Problem,
    QuotaExceededError,
    RateLimitError,
    RequestValidationError,
    ResponseValidationError,
    ServerError,
)

__all__ = [
    "CREATE_PATH",
    "ApiRequest",
    "ApiResponse",
    "build_cancel",
    "build_create",
    "build_credits",
    "build_get_task",
    "build_list",
    "encode_create_body",
    "error_for",
    "parse_retry_after",
    "read_credits",
    "read_json",
    "read_task",
    "read_task_list",
]

CREATE_PATH: Final = "/ent/v2/reference2video"
TASKS_PATH: Final = "/ent/v2/tasks"
CREDITS_PATH: Final = "/ent/v2/credits"
#: Largest page the list endpoint serves.
MAX_PAGE_SIZE: Final = 100


@attrs.frozen(kw_only=True)
class ApiRequest:
    """One call, before it is sent.

    Attributes:
        endpoint: A short name for logs, stats and hooks (``create``, ``get``, ``cancel``, ``list``, ``credits``).
        method: The HTTP method.
        path: The path under the base URL, already quoted.
        params: Query parameters, in order; a key may repeat (``task_ids``).
        body: The JSON body, already encoded, or ``None``.
        idempotent: Whether sending it twice is harmless (everything but create).
    """

    endpoint: str
    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    body: bytes | None = attrs.field(
        default=None, repr=lambda b: "None" if b is None else f"<{len(b)} bytes>"
    )
    idempotent: bool = True


@attrs.frozen(kw_only=True)
class ApiResponse:
    """One answer, fully read.

    Attributes:
        status: The HTTP status.
        headers: Response headers, looked up by lower-case name (the transport hands over a
            case-insensitive mapping).
        body: The raw body.
        elapsed: Seconds from send to the last byte.
    """

    status: int
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes = attrs.field(default=b"", repr=lambda b: f"<{len(b)} bytes>")
    elapsed: float = 0.0


def _task_path(task_id: str, suffix: str) -> str:
    given: object = task_id  # callers without a type checker pass ints and None
    if not isinstance(given, str) or not given.strip():
        raise ValueError(f"a task id must be a non-empty string, got {task_id!r}")
    return f"{TASKS_PATH}/{quote(task_id, safe='')}/{suffix}"


def build_create(
    request: Request, *, overrides: Mapping[str, str] | None = None, path: str = CREATE_PATH
) -> ApiRequest:
    """``POST path`` (the request's kind's: ``/ent/v2/reference2video``...) for ``request``, its
    body encoded (:func:`encode_create_body`).

    Raises:
        RequestValidationError: the body is over 20 MB. Nothing has been sent.
        TypeError: a media item is still a ``Path`` or ``bytes`` (``_media.prepare`` resolves them).
    """
    body = encode_create_body(request, overrides=overrides)
    return ApiRequest(endpoint="create", method="POST", path=path, body=body, idempotent=False)


def encode_create_body(request: Request, *, overrides: Mapping[str, str] | None = None) -> bytes:
    """The compact UTF-8 JSON body of ``request``, measured against Vidu's 20 MB limit.

    Pure, but not free for a request carrying megabytes of data URIs: ``_media.prepare`` runs it in a
    worker thread then.

    Args:
        request: The request, every media item a string (URL or data URI).
        overrides: Fields to send instead of the request's (the SDK's fingerprint in ``payload``,
            the client's ``callback_url``).

    Raises:
        RequestValidationError: the body is over 20 MB (naming ``body``). Nothing has been sent.
        TypeError: a media item is still a ``Path`` or ``bytes``.
    """
    data = _convert.request_to_json(request)
    if overrides:
        data.update(overrides)
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
            subject=_validate.request_label(request),
        )
    return body


#: The synchronous endpoints whose call is free to repeat: prompt ideas are read, not billed (their
#: answer carries no ``credits``, vidu-api-endpoints.md §18.2). Speech and voice clones bill
#: (§16.2, §17.1), so a call of theirs is never sent again after an unknown outcome.
_READ_ONLY_SYNC: Final = frozenset({"img2video-prompt-recommendation"})


T = TypeVar("T")


def build_sync(request: Request | Any, *, endpoint: str) -> ApiRequest:
    """``POST /ent/v2/{endpoint}`` for a synchronous endpoint's request (``audio-tts``...): a
    billing one is a create (not idempotent, create timeouts), prompt ideas a plain call.

    Raises:
        RequestValidationError: the body is over 20 MB. Nothing has been sent.
    """
    body = encode_create_body(request)
    read_only = endpoint in _READ_ONLY_SYNC
    return ApiRequest(
        endpoint="prompts" if read_only else "create",
        method="POST",
        path=f"/ent/v2/{endpoint}",
        body=body,
        idempotent=read_only,
    )


def sync_reader(cls: type[T]) -> Callable[[ApiRequest, ApiResponse], T]:
    """Reads a synchronous endpoint's answer as ``cls`` (``Speech``, ``ClonedVoice``...)."""

    def read(request: ApiRequest, response: ApiResponse) -> T:
        return _convert.structure_sync_result(read_json(request, response), cls)

    return read


def build_get_task(task_id: str) -> ApiRequest:
    """``GET /ent/v2/tasks/{id}/creations``."""
    return ApiRequest(endpoint="get", method="GET", path=_task_path(task_id, "creations"))


def build_cancel(task_id: str) -> ApiRequest:
    """``POST /ent/v2/tasks/{id}/cancel``; the body repeats the id as the official example does."""
    body = json.dumps({"id": task_id}).encode()
    return ApiRequest(endpoint="cancel", method="POST", path=_task_path(task_id, "cancel"), body=body)


def build_credits(*, show_detail: bool = False) -> ApiRequest:
    """``GET /ent/v2/credits``."""
    return ApiRequest(
        endpoint="credits",
        method="GET",
        path=CREDITS_PATH,
        params=(("show_detail", "true" if show_detail else "false"),),
    )


def _timestamp(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("created_from/created_to must be timezone-aware datetimes")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def build_list(
    *,
    states: Iterable[str] = (),
    task_ids: Iterable[str] = (),
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    model_versions: Iterable[str] = (),
    resolutions: Iterable[str] = (),
    page_size: int = MAX_PAGE_SIZE,
    page_token: str = "",
) -> ApiRequest:
    """``GET /ent/v2/tasks`` with its filters; arrays repeat their key.

    The parameter names are the documented ones, typos included: the docs spell the page size
    ``paper.pagesz`` and the token ``pager.page_token``.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    params: list[tuple[str, str]] = []
    if created_from is not None:
        params.append(("created_at.from", _timestamp(created_from)))
    if created_to is not None:
        params.append(("created_at.to", _timestamp(created_to)))
    params += [("task_ids", t) for t in task_ids]
    params += [("states", s) for s in states]
    params += [("model_versions", m) for m in model_versions]
    params += [("resolutions", r) for r in resolutions]
    params.append(("paper.pagesz", str(page_size)))
    if page_token:
        params.append(("pager.page_token", page_token))
    return ApiRequest(endpoint="list", method="GET", path=TASKS_PATH, params=tuple(params))


# --- reading answers -----------------------------------------------------------------------------


def read_json(request: ApiRequest, response: ApiResponse) -> Any:
    """The decoded body of a successful answer, or the mapped error of a failed one.

    Raises:
        APIError: (a subclass) for any non-2xx answer, and for a 2xx answer that is an error body.
        ResponseValidationError: a 2xx answer that is not JSON.
    """
    decoded = _decode(response.body)
    if not 200 <= response.status < 300 or _is_error_body(decoded):
        raise error_for(request, response, decoded)
    if decoded is _NOT_JSON:
        snippet = response.body[:80].decode("utf-8", "replace")
        raise ResponseValidationError(
            f"{request.method} {request.path} answered {response.status} with a body that is not JSON: {snippet!r}"
        )
    return decoded


def read_task(request: ApiRequest, response: ApiResponse, *, task_id: str | None = None) -> Task:
    """A create or query answer as a :class:`Task` (the id comes from the path when the body has none).

    A query answer without a state is unreadable: reading the task's state is what a query is for.
    """
    body = read_json(request, response)
    return _convert.structure_task(body, task_id=task_id, require_state=request.endpoint == "get")


def read_task_list(request: ApiRequest, response: ApiResponse) -> tuple[list[Task], str]:
    """A list page: its tasks and the next page token ("" on the last page)."""
    return _convert.structure_task_list(read_json(request, response))


def read_credits(request: ApiRequest, response: ApiResponse) -> Credits:
    """A credits answer."""
    return _convert.structure_credits(read_json(request, response))


_NOT_JSON: Final = object()


def _decode(body: bytes) -> Any:
    try:
        # Answers are UTF-8 JSON: decoding first spares json its encoding detection.
        return json.loads(body.decode())
    except ValueError:  # not UTF-8 (UnicodeDecodeError) or not JSON: the general path says which
        pass
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError:
        return _NOT_JSON


def _is_error_body(decoded: object) -> bool:
    """A 2xx answer whose body is an error body (a client of the official service treats these as errors)."""
    if (type(decoded) is not dict and not isinstance(decoded, Mapping)) or "reason" not in decoded:
        return False
    code = decoded.get("code")
    return code not in (None, 0, 200, "", "0", "200") and not ({"task_id", "id", "state"} & decoded.keys())


_BY_REASON: Final[Mapping[str, type[APIError]]] = {
    "CreditInsufficient": InsufficientCreditsError,
    "QuotaExceeded": QuotaExceededError,
    "TooManyRequests": RateLimitError,
    "SystemThrottling": RateLimitError,
    "Unauthorized": AuthenticationError,
    "Forbidden": PermissionDeniedError,
    "TaskNotFound": NotFoundError,
    "CreationNotFound": NotFoundError,
    "NotFound": NotFoundError,
    "Conflict": ConflictError,
    "InternalServiceFailure": ServerError,
}

_BY_STATUS: Final[Mapping[int, type[APIError]]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}


def error_for(request: ApiRequest, response: ApiResponse, decoded: object = _NOT_JSON) -> APIError:
    """The exception for an error answer: by Vidu's ``reason`` first, then by HTTP status."""
    if decoded is _NOT_JSON:
        decoded = _decode(response.body)
    body = decoded if isinstance(decoded, Mapping) else {}
    status = response.status
    if 200 <= status < 300:  # an error body behind a 2xx: trust the body's own code
        code = body.get("code")
        status = code if isinstance(code, int) and 400 <= code < 600 else 400
    reason = _text(body.get("reason"))
    message = _text(body.get("message"))
    if not body and response.body.strip():
        message = response.body[:200].decode("utf-8", "replace").strip()
    metadata = body.get("metadata")
    trace_id = _text(metadata.get("trace_id")) if isinstance(metadata, Mapping) else ""
    cls = _BY_REASON.get(reason) or _BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)
    common: dict[str, Any] = {"method": request.method, "path": request.path, "body": decoded}
    if issubclass(cls, RateLimitError):
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return cls(status, reason, message, trace_id, retry_after=retry_after, **common)
    return cls(status, reason, message, trace_id, **common)


def _text(value: object) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date; ``None`` if absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)
