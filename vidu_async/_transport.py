"""The only module that talks to aiohttp's client: one ``ClientSession``, and the one place where
aiohttp's exceptions become ours (:func:`map_errors`).
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Final, Protocol
from urllib.parse import urlsplit

import aiohttp

from ._http import ApiRequest, ApiResponse
from ._secret import Secret
from ._version import __version__
from .exceptions import ClientClosedError, ConnectError, RequestTimeoutError, TransportError

__all__ = ["USER_AGENT", "TimeoutLimits", "Transport", "map_errors"]

logger: Final = logging.getLogger("vidu_async")

#: An API call sending at most this many bytes is out in well under a second, and its answer is a
#: small JSON document, so its read limit bounds the whole call (:attr:`TimeoutLimits.read`), which
#: also spares aiohttp a timer per read. Larger creates (inline media) keep the two apart.
SMALL_BODY: Final = 256 * 1024

USER_AGENT: Final = (
    f"vidu-async/{__version__} aiohttp/{aiohttp.__version__} python/{platform.python_version()}"
)


class TimeoutLimits(Protocol):
    """The time limits the transport reads, in seconds (``None``: no limit); the client's
    ``Timeouts`` policy is one. Expected not to change in place (a new object for new limits):
    the aiohttp timeouts made from one are cached.
    """

    @property
    def connect(self) -> float | None:
        """Opening the connection."""
        ...

    @property
    def read(self) -> float | None:
        """The longest silence while reading a response."""
        ...

    @property
    def request(self) -> float | None:
        """A whole ordinary call."""
        ...

    @property
    def create(self) -> float | None:
        """A whole create call."""
        ...

    @property
    def download(self) -> float | None:
        """A whole download."""
        ...


def map_errors(method: str, path: str) -> _ErrorMap:
    """A context manager that translates aiohttp and socket errors into the SDK's transport errors.

    ``request_sent`` is False only where the request certainly never left: connection failures
    (DNS, refused, TLS) and connect timeouts. Everything else may have reached the server.
    """
    return _ErrorMap(method, path)


def _mapped(exc: BaseException, method: str, path: str) -> TransportError | None:
    """The SDK's error for an aiohttp or socket error, or ``None`` for anything else."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ConnectError(f"timed out connecting: {str(exc) or 'no detail'}", method=method, path=path)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectError(f"cannot connect: {exc.os_error}", method=method, path=path)
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        # ServerTimeoutError is also an asyncio.TimeoutError; both mean "sent, no answer in time".
        return RequestTimeoutError("timed out waiting for the answer", method=method, path=path)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return TransportError("the server closed the connection without answering", method=method, path=path)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return TransportError(f"the answer was cut short: {exc}", method=method, path=path)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return TransportError(f"{type(exc).__name__}: {exc}", method=method, path=path)
    return None


class _ErrorMap:
    """What :func:`map_errors` returns: a class rather than a generator-based context manager,
    since it wraps every call the SDK makes."""

    __slots__ = ("method", "path")

    def __init__(self, method: str, path: str) -> None:
        self.method = method
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and (mapped := _mapped(exc, self.method, self.path)) is not None:
            raise mapped from exc


class Transport:
    """Sends :class:`ApiRequest` objects over one aiohttp session.

    The session is made inside the running loop on first use, unless the caller passed one in;
    a caller's session is never closed here.
    """

    def __init__(
        self,
        *,
        base_url: str,
        authorization: Secret,
        timeouts: TimeoutLimits,
        session: aiohttp.ClientSession | None = None,
        connection_limit: int = 100,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._authorization = authorization
        self.timeouts = timeouts
        self._session = session
        self._owns_session = session is None
        self._connection_limit = connection_limit
        self._closed = False
        # aiohttp timeouts by endpoint, for the limits object they were made from (the
        # client's policy may be replaced, never changed in place: Timeouts is frozen).
        self._timeout_cache: tuple[TimeoutLimits, dict[tuple[str, bool], aiohttp.ClientTimeout]]
        self._timeout_cache = (timeouts, {})

    def __repr__(self) -> str:
        return f"<Transport {self.base_url}>"

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    @property
    def has_session(self) -> bool:
        """Whether a session exists (made lazily, or the caller's)."""
        return self._session is not None

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ClientClosedError("the client is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._connection_limit, limit_per_host=self._connection_limit
            )
            self._session = aiohttp.ClientSession(connector=connector)
        elif self._session.closed:
            raise ClientClosedError("the aiohttp session passed to the client is closed")
        return self._session

    def _headers(self) -> dict[str, str]:
        # Built per call rather than kept: the key stays inside its Secret between calls.
        # The docs list Content-Type even for GET; sent on every call for gateways that insist.
        return {
            "Authorization": self._authorization.reveal(),
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json",
        }

    def _timeout(
        self, endpoint: str, budget: float | None = None, *, small: bool = False
    ) -> aiohttp.ClientTimeout:
        """The aiohttp timeout of one call.

        Args:
            endpoint: The call's endpoint name (``create``, ``download``...).
            budget: Seconds left of the caller's deadline, which caps the total.
            small: The call sends at most :data:`SMALL_BODY` bytes and gets a JSON answer back:
                once sent, its whole remaining time is silence or a short answer, so the read
                limit bounds the whole call.
        """
        t = self.timeouts
        cache_for, cache = self._timeout_cache
        if cache_for is not t:
            cache = {}
            self._timeout_cache = (t, cache)
        key = (endpoint, small)
        if budget is None and (cached := cache.get(key)) is not None:
            return cached
        total = t.create if endpoint == "create" else t.download if endpoint == "download" else t.request
        if small and t.read is not None:
            total = t.read if total is None else min(total, t.read)
        if budget is not None:
            total = budget if total is None else min(total, budget)
        # A read limit no shorter than the whole call's could never fire first; leaving it out
        # spares aiohttp a timer per read.
        read = None if t.read is not None and total is not None and t.read >= total else t.read
        timeout = aiohttp.ClientTimeout(total=total, sock_connect=t.connect, sock_read=read)
        if budget is None:
            cache[key] = timeout  # one per endpoint in use
        return timeout

    async def send(self, request: ApiRequest, *, budget: float | None = None) -> ApiResponse:
        """Send one call and read its whole answer.

        Args:
            request: The call.
            budget: Seconds left of the caller's deadline: the call's total timeout is capped by it,
                so one slow answer cannot outlast the caller's ``timeout=``.

        Raises:
            TransportError: (or a subclass) when no answer came back.
            ClientClosedError: after :meth:`aclose`.
        """
        session = self._ensure_session()
        url = self.base_url + request.path
        started = time.monotonic()
        with map_errors(request.method, request.path):
            async with session.request(
                request.method,
                url,
                params=list(request.params) if request.params else None,
                data=request.body,
                headers=self._headers(),
                timeout=self._timeout(
                    request.endpoint, budget, small=request.body is None or len(request.body) <= SMALL_BODY
                ),
                allow_redirects=False,
            ) as raw:
                body = await raw.read()
                headers = raw.headers  # case-insensitive, immutable, and kept without a copy
                status = raw.status
        elapsed = time.monotonic() - started
        logger.debug("%s %s -> %d in %.3fs", request.method, request.path, status, elapsed)
        return ApiResponse(status=status, headers=headers, body=body, elapsed=elapsed)

    @asynccontextmanager
    async def stream(
        self, url: str, *, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[tuple[int, Mapping[str, str], AsyncIterator[bytes]]]:
        """Open a download (no API key is sent: result URLs are pre-signed).

        The body comes as it was sent: ``Accept-Encoding: identity`` is asked and nothing is
        decompressed, so its length is the length the headers announce, and a server that encodes
        it anyway says so in ``content-encoding``, for the caller to refuse. Errors of the request
        and of reading the body are mapped (:func:`map_errors`); errors of the caller's own work
        inside the block (writing a file) pass through as they are.

        Yields:
            The status, the lower-cased headers, and an iterator over the raw body's chunks.
        """
        session = self._ensure_session()
        path = _path_of(url)
        sent = {"Accept-Encoding": "identity", **(headers or {})}
        async with AsyncExitStack() as stack:
            with map_errors("GET", path):
                raw = await stack.enter_async_context(
                    session.get(
                        url,
                        headers=sent,
                        timeout=self._timeout("download"),
                        allow_redirects=True,
                        auto_decompress=False,
                    )
                )
            lowered = {k.lower(): v for k, v in raw.headers.items()}

            async def chunks() -> AsyncGenerator[bytes, None]:
                with map_errors("GET", path):
                    async for chunk in raw.content.iter_chunked(256 * 1024):
                        yield chunk

            body = chunks()
            stack.push_async_callback(body.aclose)  # closed here, not whenever it is collected
            yield raw.status, lowered, body

    async def aclose(self) -> None:
        """Close the session if this transport made it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()


def _path_of(url: str) -> str:
    """The path of a URL without its query (pre-signed URLs carry signatures there)."""
    return urlsplit(url).path
