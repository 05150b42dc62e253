"""``ViduClient``: wires configuration, media, the pure HTTP layer and the transport together."""

from __future__ import annotations

import os
import warnings
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Literal, Self
from urllib.parse import urlsplit

import aiohttp

from . import _convert, _http, _media
from ._config import DEFAULT_TIMEOUTS, GLOBAL_BASE_URL, Timeouts
from ._models import Credits, Reference2Video, Task, TaskState
from ._transport import Secret, Transport
from .exceptions import ConfigurationError

__all__ = ["ViduClient"]

AuthScheme = Literal["Token", "Bearer"]
_AUTH_SCHEMES: Final = ("Token", "Bearer")


def _resolve_base_url(base_url: str | None) -> str:
    url = (base_url or os.environ.get("VIDU_BASE_URL") or GLOBAL_BASE_URL).strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"base_url must be an http(s) URL such as {GLOBAL_BASE_URL!r}, got {url!r}")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"base_url must not carry a query or fragment, got {url!r}")
    return url


def _resolve_key(api_key: str | None) -> str:
    key = api_key if api_key is not None else os.environ.get("VIDU_API_KEY", "")
    key = key.strip()
    if not key:
        raise ConfigurationError(
            "no API key: pass ViduClient(api_key=...) or set the VIDU_API_KEY environment variable"
        )
    if any(c in key for c in "\r\n") or " " in key:
        raise ConfigurationError("the API key contains whitespace; paste the key alone, without 'Token '")
    return key


class ViduClient:
    """An asyncio client for Vidu's ``reference2video`` API.

    Use it as an async context manager (or call :meth:`aclose`)::

        async with ViduClient() as client:
            task = await client.submit(request)

    Args:
        api_key: The API key; defaults to ``VIDU_API_KEY``. Never shown in a repr, log or error.
        base_url: The service root; defaults to ``VIDU_BASE_URL``, else ``GLOBAL_BASE_URL``.
            Reseller gateways add a path prefix (``https://gateway.example/vidu``).
        auth_scheme: ``"Token"`` (Vidu's documented scheme) or ``"Bearer"`` (reseller gateways).
        timeouts: Connect, read and per-call limits.
        session: An ``aiohttp.ClientSession`` of yours to send through; the client does not close it.

    Raises:
        ConfigurationError: no API key, an unknown auth scheme or a malformed base URL.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        auth_scheme: AuthScheme = "Token",
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if auth_scheme not in _AUTH_SCHEMES:
            raise ConfigurationError(f"auth_scheme must be 'Token' or 'Bearer', got {auth_scheme!r}")
        self.base_url: Final = _resolve_base_url(base_url)
        self.auth_scheme: Final = auth_scheme
        self.timeouts: Final = timeouts
        self._key = Secret(_resolve_key(api_key))
        self._transport = Transport(
            base_url=self.base_url,
            authorization=Secret(f"{auth_scheme} {self._key.reveal()}"),
            timeouts=timeouts,
            session=session,
        )

    def __repr__(self) -> str:
        state = " closed" if self._transport.closed else ""
        return f"<ViduClient {self.base_url} auth={self.auth_scheme}{state}>"

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client and its own HTTP session. Idempotent; later calls raise ``ClientClosedError``."""
        await self._transport.aclose()

    @property
    def closed(self) -> bool:
        """Whether the client was closed."""
        return self._transport.closed

    def __del__(self) -> None:
        transport = getattr(self, "_transport", None)
        if transport is not None and transport.has_session and not transport.closed:
            warnings.warn(
                f"unclosed {self!r}: use 'async with ViduClient()' or await client.aclose()",
                ResourceWarning,
                stacklevel=2,
            )

    # --- calls -------------------------------------------------------------------------------

    async def submit(self, request: Reference2Video | Mapping[str, Any]) -> Task:
        """Create a task. Local files in the request are read, checked and encoded off the event loop.

        Args:
            request: A :class:`Reference2Video`, or a body in Vidu's own JSON shape (validated the same way).

        Returns:
            The created task (usually in state ``created``).

        Raises:
            RequestValidationError: the request breaks a documented rule; nothing was sent.
            APIError: Vidu refused it (a subclass per reason).
            TransportError: no answer came back; the task may or may not exist.
        """
        if not isinstance(request, Reference2Video):
            request = _convert.request_from_json(request)
        body = await _media.prepare_body(request)
        call = _http.build_create(body)
        response = await self._transport.send(call)
        return _http.read_task(call, response)

    async def get_task(self, task_id: str) -> Task:
        """Read a task (``GET /ent/v2/tasks/{id}/creations``)."""
        call = _http.build_get_task(task_id)
        response = await self._transport.send(call)
        return _http.read_task(call, response, task_id=task_id)

    async def cancel(self, task_id: str) -> None:
        """Cancel a task that has not started processing (Vidu refuses once it is scheduled).

        Raises:
            BadRequestError: the task can no longer be cancelled.
            NotFoundError: no such task.
        """
        call = _http.build_cancel(task_id)
        response = await self._transport.send(call)
        _http.read_json(call, response)

    async def list_tasks(
        self,
        *,
        states: Iterable[TaskState | str] = (),
        task_ids: Iterable[str] = (),
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        model_versions: Iterable[str] = (),
        resolutions: Iterable[str] = (),
        page_size: int = _http.MAX_PAGE_SIZE,
        limit: int | None = None,
    ) -> AsyncIterator[Task]:
        """Every task matching the filters, newest first, fetching pages as you iterate.

        Args:
            states: Only tasks in these states.
            task_ids: Only these tasks.
            created_from: Created at or after (timezone-aware). The service defaults to the last 7 days.
            created_to: Created at or before (timezone-aware).
            model_versions: Vidu's short model names (``q2``, ``q2-pro``...), as the endpoint takes them.
            resolutions: Only these resolutions.
            page_size: Tasks per request (1-100).
            limit: Stop after this many tasks.
        """
        state_names = [s.value if isinstance(s, TaskState) else str(s) for s in states]
        ids, versions, sizes = list(task_ids), list(model_versions), list(resolutions)
        token = ""
        seen = 0
        while True:
            call = _http.build_list(
                states=state_names,
                task_ids=ids,
                created_from=created_from,
                created_to=created_to,
                model_versions=versions,
                resolutions=sizes,
                page_size=page_size,
                page_token=token,
            )
            response = await self._transport.send(call)
            tasks, next_token = _http.read_task_list(call, response)
            for task in tasks:
                yield task
                seen += 1
                if limit is not None and seen >= limit:
                    return
            if not next_token or next_token == token or not tasks:
                return
            token = next_token

    async def get_credits(self, *, show_detail: bool = False) -> Credits:
        """The account's credits and concurrency (``GET /ent/v2/credits``)."""
        call = _http.build_credits(show_detail=show_detail)
        response = await self._transport.send(call)
        return _http.read_credits(call, response)
