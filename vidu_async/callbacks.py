"""Vidu's signed callbacks: verify them, read them, and receive them with aiohttp.

When a task is created with a ``callback_url``, Vidu POSTs the task (the body of
``GET /tasks/{id}/creations``) to that URL on every state change, signed with HMAC-SHA256
under the API key that created the task (vidu-api.md §7).

What is verified
----------------
:func:`verify_signature` checks, in this order, and raises :class:`CallbackVerificationError`
whose ``check`` names the first one that failed:

=================  ===========================================================================
``check``          meaning
=================  ===========================================================================
``missing-header`` ``Date``, ``x-request-nonce`` or an ``X-HMAC-*`` header is absent or empty,
                   or a header named in ``X-HMAC-SIGNED-HEADERS`` is absent
``algorithm``      ``X-HMAC-ALGORITHM`` is not ``hmac-sha256`` (any case)
``access-key``     ``X-HMAC-ACCESS-KEY`` is not ``vidu``
``signed-headers`` the signed list leaves out ``Date`` or ``x-request-nonce``, names something
                   that is not a header name, or a signed value holds a line break
``date``           ``Date`` cannot be parsed, or is more than ``max_skew`` seconds from now
``signature``      the HMAC of the method, the registered URL's path and query, the ``Date`` and
                   the signed headers does not match (compared in constant time)
``nonce-replay``   this nonce was already accepted (only with a :class:`NonceCache`)
=================  ===========================================================================

The URL that is checked is the one **you registered** as ``callback_url``, not the one the
request arrived on: proxies and load balancers rewrite the Host, the scheme and sometimes the path.

What is not verified
--------------------
**The body is not signed.** Vidu signs the method, the URL, the date and the named headers only,
so anyone who captured one genuine callback could replay its headers with a different body within
the skew window (the nonce cache stops the exact replay, not a race with the genuine request).
Treat a callback as a *hint* that a task changed and confirm it with ``GET /tasks/{id}/creations``
(``client.get_task(task.id)``) before acting on its URLs, credits or state.

The ±``max_skew`` window on ``Date`` and the nonce cache are local policy (Vidu documents neither);
a nonce is remembered only after its signature verified, so a forged request cannot burn a
genuine nonce, and forgers cannot fill the cache.

With aiohttp::

    from aiohttp import web
    from vidu_async.callbacks import make_callback_app

    async def on_update(task):               # sync or async; never holds up the response
        await confirm_queue.put(task.id)     # confirm with a GET before trusting it

    app = make_callback_app(
        api_key=API_KEY,
        callback_url="https://hooks.example.com/vidu/callback",   # exactly as sent to Vidu
        on_update=on_update,
    )
    web.run_app(app, port=8080)

Anywhere else (any framework that gives the raw body and the headers)::

    from vidu_async.callbacks import NonceCache, verify_request
    from vidu_async.exceptions import CallbackVerificationError, ResponseValidationError

    nonces = NonceCache()

    def handle(method, headers, body):       # body: the raw bytes
        try:
            task = verify_request(method=method, url=CALLBACK_URL, headers=headers, body=body,
                                  api_key=API_KEY, nonces=nonces)
        except CallbackVerificationError as exc:
            return 401, {"error": "verification failed", "check": exc.check}
        except ResponseValidationError:
            return 400, {"error": "unreadable body"}
        schedule_confirmation(task.id)       # a GET, off the request path
        return 200, {}

``examples/fastapi_callbacks.py`` does the same in a FastAPI/Starlette route.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import inspect
import json
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Final, Generic, TypeAlias, TypeVar
from urllib.parse import urlsplit

import anyio
import attrs
from aiohttp import web
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from . import _signing
from ._convert import structure_task
from ._models import Task
from ._secret import Secret
from .exceptions import CallbackVerificationError, ResponseValidationError

__all__ = [
    "RECEIVER_KEY",
    "CallbackReceiver",
    "CallbackStats",
    "NonceCache",
    "OnUpdate",
    "UnmatchedCallback",
    "make_callback_app",
    "parse_callback",
    "serve",
    "verify_request",
    "verify_signature",
]

logger: Final = logging.getLogger("vidu_async.callbacks")

#: What a receiver calls with each verified, de-duplicated update: a plain function (run inline,
#: so keep it quick) or one returning an awaitable (run by the receiver's consumers, off the
#: request path).
OnUpdate: TypeAlias = Callable[[Task], Awaitable[None] | None]

_DATE: Final = "Date"
_NONCE: Final = "x-request-nonce"
_SIGNED_HEADERS: Final = "X-HMAC-SIGNED-HEADERS"
_ALGORITHM: Final = "X-HMAC-ALGORITHM"
_ACCESS_KEY: Final = "X-HMAC-ACCESS-KEY"
_SIGNATURE: Final = "X-HMAC-SIGNATURE"
_REQUIRED: Final = (_DATE, _NONCE, _SIGNED_HEADERS, _ALGORITHM, _ACCESS_KEY, _SIGNATURE)
# RFC 9110 token: a name that cannot hide a ':' or a line break in the signing string.
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_OWS: Final = " \t"

K = TypeVar("K", bound=Hashable)


# --- the key, held out of sight --------------------------------------------------------------------


# --- the replay cache ---------------------------------------------------------------------------


class _Recent(Generic[K]):
    """Keys seen recently: insertion-ordered, bounded, each forgotten ``ttl`` seconds after it was added.

    Every operation is amortized O(1): expired keys are dropped from the old end as time passes,
    and the oldest keys are evicted when the cache is full.
    """

    def __init__(self, max_size: int, ttl: float) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, not {max_size}")
        if not ttl > 0:
            raise ValueError(f"ttl must be positive, not {ttl}")
        self.max_size = max_size
        self.ttl = ttl
        self._expiry: collections.OrderedDict[K, float] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def seen(self, key: K, now: float) -> bool:
        self._expire(now)
        expires = self._expiry.get(key)
        return expires is not None and now <= expires

    def add(self, key: K, now: float) -> None:
        self._expiry[key] = now + self.ttl
        self._expiry.move_to_end(key)
        while len(self._expiry) > self.max_size:
            self._expiry.popitem(last=False)

    def _expire(self, now: float) -> None:
        # Keys are in insertion order, which is expiry order while the clock moves forward; a clock
        # that steps back only delays the purge (``seen`` still checks each key's own expiry).
        while self._expiry:
            key, expires = next(iter(self._expiry.items()))
            if now <= expires:
                return
            del self._expiry[key]


class NonceCache:
    """The nonces of accepted callbacks, remembered for ``ttl`` seconds so a replay is refused.

    Bounded: past ``max_size`` nonces the oldest are forgotten (a replay of a forgotten nonce is
    then refused by the ``Date`` window only once its Date has left it). Only nonces of requests
    whose signature verified are stored, so forgers cannot fill it. Not thread-safe; one event
    loop is the intended user.

    ``ttl`` must be at least twice the ``max_skew`` it is used with: a request dated ``max_skew``
    in the future stays acceptable for ``2 * max_skew`` seconds, and its nonce must be remembered
    that long.

    Args:
        max_size: The most nonces kept.
        ttl: Seconds a nonce is remembered after it was accepted.
    """

    def __init__(self, max_size: int = 100_000, ttl: float = 600.0) -> None:
        self._recent: _Recent[str] = _Recent(max_size, ttl)

    @property
    def max_size(self) -> int:
        """The most nonces kept."""
        return self._recent.max_size

    @property
    def ttl(self) -> float:
        """Seconds a nonce is remembered."""
        return self._recent.ttl

    def __len__(self) -> int:
        return len(self._recent)

    def __repr__(self) -> str:
        return f"NonceCache(max_size={self.max_size}, ttl={self.ttl}, size={len(self)})"

    def check_and_add(self, nonce: str, now: float | None = None) -> bool:
        """Remember ``nonce`` unless it is already remembered.

        Args:
            nonce: The ``x-request-nonce`` value.
            now: The current UNIX time (default: the wall clock).

        Returns:
            True when the nonce is new (and is now remembered), False when it is a replay.
        """
        moment = time.time() if now is None else now
        if self._recent.seen(nonce, moment):
            return False
        self._recent.add(nonce, moment)
        return True


# --- verification (pure) ------------------------------------------------------------------------


def _show(value: str, limit: int = 40) -> str:
    """A value from the request, quoted and cut short, for an error message."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def _fold(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers by lower-cased name; with repeats (a multidict), the first value wins."""
    folded: dict[str, str] = {}
    for name, value in headers.items():
        folded.setdefault(name.lower(), value)
    return folded


def _timestamp(now: datetime | float | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        return (now if now.tzinfo is not None else now.replace(tzinfo=UTC)).timestamp()
    return float(now)


def _parse_date(value: str) -> float:
    try:
        moment = parsedate_to_datetime(value)
    except (ValueError, TypeError, IndexError, OverflowError) as exc:
        raise CallbackVerificationError("date", f"Date {_show(value)} is not an HTTP date") from exc
    if moment.tzinfo is None:  # RFC 1123 dates are GMT; ``-0000`` and no zone parse as naive
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def verify_signature(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    api_key: str,
    now: datetime | float | None = None,
    max_skew: float = 300.0,
    nonces: NonceCache | None = None,
) -> None:
    """Check that a callback was signed by Vidu with ``api_key``, recently, and only once.

    The body is not signed: confirm what it says with a GET (see the module docstring).

    Args:
        method: The request's HTTP method (Vidu sends ``POST``).
        url: The callback URL **as registered** with the task: its path (``/`` when empty) and raw
            query are what Vidu signed. Not the URL the request arrived on.
        headers: The request headers, any mapping (a ``dict``, aiohttp's ``request.headers``,
            Starlette's ``Headers``); names are matched case-insensitively.
        api_key: The API key that created the task.
        now: The moment to check ``Date`` against: a ``datetime`` (naive means UTC) or a UNIX time;
            default the wall clock. Tests and replays of stored requests pass a fixed moment.
        max_skew: How many seconds ``Date`` may be from ``now``, either way.
        nonces: A replay cache; without one, replays inside the window are not detected.

    Raises:
        CallbackVerificationError: a check failed; ``check`` says which (table in the module docstring).
        ValueError: ``max_skew`` is negative, or ``nonces`` forgets nonces sooner than ``2 * max_skew``.
    """
    if not max_skew >= 0:
        raise ValueError(f"max_skew must be a non-negative number of seconds, not {max_skew}")
    if nonces is not None and nonces.ttl < 2 * max_skew:
        raise ValueError(
            f"the nonce cache's ttl ({nonces.ttl} s) must be at least 2 * max_skew ({2 * max_skew} s), "
            "or a replay could outlive the nonce it reuses"
        )
    found = _fold(headers)
    for name in _REQUIRED:
        if not found.get(name.lower(), "").strip(_OWS):
            raise CallbackVerificationError("missing-header", f"the {name} header is missing")

    algorithm = found[_ALGORITHM.lower()].strip(_OWS)
    if algorithm.lower() != _signing.ALGORITHM:
        raise CallbackVerificationError(
            "algorithm", f"{_ALGORITHM} is {_show(algorithm)}, expected {_signing.ALGORITHM!r}"
        )
    access_key = found[_ACCESS_KEY.lower()].strip(_OWS)
    if access_key != _signing.ACCESS_KEY:
        raise CallbackVerificationError(
            "access-key", f"{_ACCESS_KEY} is {_show(access_key)}, expected {_signing.ACCESS_KEY!r}"
        )

    names = [name.strip(_OWS) for name in found[_SIGNED_HEADERS.lower()].split(";")]
    for name in names:
        if not _TOKEN.fullmatch(name):
            raise CallbackVerificationError(
                "signed-headers", f"{_SIGNED_HEADERS} names {_show(name)}, which is not a header name"
            )
    listed = {name.lower() for name in names}
    for name in (_DATE, _NONCE):
        if name.lower() not in listed:
            raise CallbackVerificationError("signed-headers", f"{_SIGNED_HEADERS} does not include {name}")
    signed: list[tuple[str, str]] = []
    for name in names:
        value = found.get(name.lower())
        if value is None:
            raise CallbackVerificationError("missing-header", f"the signed header {name} is missing")
        if "\r" in value or "\n" in value:
            # A line break would let one set of headers pose as another in the signing string.
            raise CallbackVerificationError("signed-headers", f"the signed header {name} holds a line break")
        signed.append((name, value))

    date = found[_DATE.lower()]
    moment = _timestamp(now)
    skew = _parse_date(date) - moment
    if not abs(skew) <= max_skew:  # fails closed on NaN too
        when = "in the future" if skew > 0 else "old"
        raise CallbackVerificationError(
            "date", f"Date is {abs(skew):.0f} s {when}, more than the {max_skew:g} s allowed"
        )

    text = _signing.signing_string(method, url, date, signed)
    try:
        expected = _signing.sign(api_key, text).encode("ascii")
    except UnicodeEncodeError as exc:  # a lone surrogate: not what any genuine request carries
        raise CallbackVerificationError("signature", "a signed value is not encodable text") from exc
    given = found[_SIGNATURE.lower()].strip(_OWS).encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(expected, given):
        raise CallbackVerificationError("signature", f"{_SIGNATURE} does not match")

    # Only now, with the signature verified, is the nonce remembered.
    if nonces is not None and not nonces.check_and_add(found[_NONCE.lower()], moment):
        raise CallbackVerificationError(
            "nonce-replay", f"the nonce {_show(found[_NONCE.lower()])} was already used"
        )


class UnmatchedCallback(Exception):
    """Raised by an ``on_update`` to say that a verified update names no task it watches (a body
    without an id whose ``payload`` matches none): the receiver answers 404 instead of 200."""


def parse_callback(body: bytes | str | Mapping[str, Any]) -> Task:
    """Read a callback body (the ``GET /tasks/{id}/creations`` shape) as a :class:`Task`.

    The body is not signed: treat the task as a hint and confirm it with a GET. The documented
    shape is the query's, whose official example has no ``id``: such a body is read with
    ``id == ""`` when it carries a ``payload``, by which its task is found
    (``ViduClient.notify`` matches the SDK's fingerprint there).

    Args:
        body: The raw body (bytes or text, JSON) or the already decoded object.

    Raises:
        ResponseValidationError: the body is not JSON, not an object, or has neither a task id
            nor a ``payload`` (a field of the wrong shape is read leniently: see
            :class:`~vidu_async.Task`).
    """
    data: object = body
    if isinstance(body, bytes | str):
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise ResponseValidationError(f"callback body is not JSON: {exc}") from exc
    if (
        isinstance(data, Mapping)
        and data.get("id") in (None, "")
        and data.get("task_id") in (None, "")
        and isinstance(data.get("payload"), str)
        and data["payload"]
    ):
        task = structure_task({**data, "id": _NO_ID})
        return attrs.evolve(task, id="")
    return structure_task(data)


#: Stands in for the id while an id-less body is read (an id is required of every other body).
_NO_ID: Final = "-"


def verify_request(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | str | Mapping[str, Any],
    api_key: str,
    now: datetime | float | None = None,
    max_skew: float = 300.0,
    nonces: NonceCache | None = None,
) -> Task:
    """Verify a callback (:func:`verify_signature`), then read its body (:func:`parse_callback`).

    For any web framework: pass the method, the registered callback URL, the headers and the raw
    body. The body is read only once the signature holds.

    Raises:
        CallbackVerificationError: the request is not a genuine, fresh callback (answer 401).
        ResponseValidationError: the body cannot be read as a task (answer 400).
    """
    verify_signature(
        method=method, url=url, headers=headers, api_key=api_key, now=now, max_skew=max_skew, nonces=nonces
    )
    return parse_callback(body)


# --- the aiohttp receiver -----------------------------------------------------------------------


@attrs.define(kw_only=True)
class CallbackStats:
    """What a :class:`CallbackReceiver` did with the requests it got.

    Attributes:
        accepted: Verified updates handed to ``on_update``.
        duplicates: Verified updates already handed over (same task id and state), answered 200.
        rejected: Requests that failed verification (401), by ``check``.
        bad_body: Verified requests whose body was not a task (400).
        unmatched: Verified updates without a task id whose ``payload`` named no task that
            ``on_update`` watches (404).
        unsupported_media_type: Requests whose body was not ``application/json`` (415; neither
            verified nor read).
        unavailable: Verified updates refused with 503 because the consumers were busy (buffer full)
            or not running; Vidu retries terminal states.
        errors: ``on_update`` calls that raised (logged; the callback was still acknowledged).
    """

    accepted: int = 0
    duplicates: int = 0
    rejected: collections.Counter[str] = attrs.field(factory=collections.Counter)
    bad_body: int = 0
    unmatched: int = 0
    unsupported_media_type: int = 0
    unavailable: int = 0
    errors: int = 0

    @property
    def total_rejected(self) -> int:
        """Every request answered 401."""
        return sum(self.rejected.values())


def _discard(awaitable: Awaitable[object]) -> None:
    """Drop an awaitable that will never be awaited, without a "never awaited" warning."""
    if inspect.iscoroutine(awaitable):
        awaitable.close()
    elif isinstance(awaitable, asyncio.Future):
        awaitable.cancel()


class CallbackReceiver:
    """Receives Vidu's callbacks in an aiohttp app: verifies, de-duplicates, hands over, answers fast.

    A request whose body is not ``application/json`` (parameters such as ``charset`` allowed) is
    answered 415 before anything else. Each request is verified against the **registered**
    ``callback_url`` (not the Host it arrived on), with a ``Date`` window and a nonce cache;
    failures are answered 401 with the check's name and counted in :attr:`stats`. A verified body that is not a task is answered 400. A verified
    update whose (task id, state) was already handed over is answered 200 and dropped, so Vidu's
    retries and duplicates reach ``on_update`` once (unless ``dedupe_size`` is 0). Anything else is
    handed to ``on_update`` and answered 200 ``{}``.

    A plain ``on_update`` runs inline (keep it quick). When it returns an awaitable, the awaitable
    goes to a bounded buffer drained by up to ``max_concurrency`` consumers, so a slow consumer
    never holds up Vidu's request; with the buffer full the update is answered 503, and Vidu
    retries terminal states. Exceptions from ``on_update`` are logged and counted, never answered
    as errors: a callback is a hint, and polling remains the safety net.

    The consumers run while the receiver is entered (``async with receiver:``); :meth:`setup` ties
    that to an aiohttp app's lifecycle, and :func:`make_callback_app` does it all.

    Args:
        api_key: The API key the tasks were created with.
        callback_url: The ``callback_url`` exactly as sent to Vidu.
        on_update: Called with each verified, new update.
        max_skew: Seconds ``Date`` may be from now, either way.
        nonces: The replay cache (default: a new :class:`NonceCache`).
        dedupe_size: How many (task id, state) pairs are remembered for de-duplication; 0 turns
            it off, for an ``on_update`` that de-duplicates by itself (``ViduClient.notify``: there a
            hint a GET refuted must be able to come again, so a signed lie cannot mute the real update).
        max_pending: Awaitables buffered for the consumers before updates are answered 503.
        max_concurrency: Awaitables run at once.
        shutdown_timeout: Seconds the consumers get at shutdown to finish what is buffered
            before they are cancelled.
        clock: The UNIX-time clock (tests pass a fixed one).
    """

    def __init__(
        self,
        *,
        api_key: str,
        callback_url: str,
        on_update: OnUpdate,
        max_skew: float = 300.0,
        nonces: NonceCache | None = None,
        dedupe_size: int = 10_000,
        max_pending: int = 1_000,
        max_concurrency: int = 16,
        shutdown_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is empty")
        parts = urlsplit(callback_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"callback_url must be an absolute http(s) URL, not {callback_url!r}")
        if max_pending < 1 or max_concurrency < 1:
            raise ValueError("max_pending and max_concurrency must be at least 1")
        if dedupe_size < 0:
            raise ValueError(f"dedupe_size must not be negative, not {dedupe_size}")
        self._nonces = NonceCache() if nonces is None else nonces
        if not max_skew >= 0 or self._nonces.ttl < 2 * max_skew:
            raise ValueError(
                f"max_skew must be between 0 and half the nonce cache's ttl ({self._nonces.ttl} s)"
            )
        self._key = Secret(api_key)
        self._callback_url = callback_url
        self._path = parts.path or "/"
        self._on_update = on_update
        self._max_skew = max_skew
        # No time limit: a duplicate is the same update whenever it comes; only the size is bounded.
        self._seen: _Recent[tuple[str, str]] | None = _Recent(dedupe_size, math.inf) if dedupe_size else None
        self._max_pending = max_pending
        self._max_concurrency = max_concurrency
        self._shutdown_timeout = shutdown_timeout
        self._clock = clock
        self._send: MemoryObjectSendStream[Awaitable[object]] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        #: What the receiver did so far.
        self.stats = CallbackStats()

    def __repr__(self) -> str:  # never the key
        return f"CallbackReceiver(callback_url={self._callback_url!r}, running={self.running})"

    @property
    def callback_url(self) -> str:
        """The registered callback URL requests are verified against."""
        return self._callback_url

    @property
    def path(self) -> str:
        """The registered URL's path, where :meth:`setup` routes by default."""
        return self._path

    @property
    def nonces(self) -> NonceCache:
        """The replay cache."""
        return self._nonces

    @property
    def running(self) -> bool:
        """Whether the consumers are running (between enter and exit)."""
        return self._send is not None

    # Structured concurrency. The consumers live in an anyio task group, but that group cannot be
    # held open across aiohttp's ``cleanup_ctx`` yield: a cancel scope must be entered and left in
    # the same task without yielding in between, and aiohttp may run startup and cleanup from
    # different tasks. So one supervisor task owns the whole group inside its own frame; the app's
    # lifecycle owns the supervisor (started at startup; at cleanup its buffer is closed, what is
    # buffered gets ``shutdown_timeout`` to finish, then it is cancelled and awaited). Nothing is
    # fire-and-forget, nothing outlives the app, and a request only ever does a non-blocking
    # ``send_nowait`` into a bounded buffer, so responses never wait on consumers.

    async def __aenter__(self) -> CallbackReceiver:
        if self._supervisor is not None:
            raise RuntimeError("the callback receiver is already running")
        send, receive = anyio.create_memory_object_stream[Awaitable[object]](self._max_pending)
        self._send = send
        self._supervisor = asyncio.get_running_loop().create_task(
            self._supervise(receive), name="vidu-callback-consumers"
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        send, supervisor = self._send, self._supervisor
        self._send = self._supervisor = None
        if send is None or supervisor is None:
            return
        send.close()  # the consumers drain the buffer, then end
        try:
            with anyio.move_on_after(self._shutdown_timeout):
                await asyncio.wait({supervisor})
        finally:
            if not supervisor.done():
                supervisor.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait({supervisor})
        if not supervisor.cancelled() and (error := supervisor.exception()) is not None:
            logger.error("callback consumers ended with an error", exc_info=error)

    async def cleanup_ctx(self, app: web.Application) -> AsyncIterator[None]:
        """Run the consumers for the app's lifetime: ``app.cleanup_ctx.append(receiver.cleanup_ctx)``."""
        async with self:
            yield

    def setup(self, app: web.Application, *, path: str | None = None) -> None:
        """Route ``POST path`` (default: the registered URL's path) to :meth:`handle`, tie the
        consumers to the app's lifecycle, and store the receiver as ``app[RECEIVER_KEY]``.

        Args:
            app: The application (not yet started).
            path: Where the callbacks arrive, when a proxy rewrites the registered path.
        """
        app.router.add_post(path or self._path, self.handle)
        app.cleanup_ctx.append(self.cleanup_ctx)
        app[RECEIVER_KEY] = self

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp handler: check the body is JSON, verify, read, de-duplicate, hand over, answer."""
        # Vidu posts JSON with ``Content-Type: application/json`` (vidu-api.md §7). Anything else
        # (a text/plain or form post, as a browser sends across origins) is refused first: its body
        # is never read, and no nonce is spent on it. aiohttp lower-cases the type and drops its
        # parameters (``; charset=utf-8``); a request without the header reads as octet-stream.
        if request.content_type != "application/json":
            self.stats.unsupported_media_type += 1
            logger.warning(
                "callback from %s refused: Content-Type %r is not application/json",
                request.remote,
                request.headers.get("Content-Type", ""),
            )
            return web.json_response({"error": "expected Content-Type: application/json"}, status=415)
        try:
            verify_signature(
                method=request.method,
                url=self._callback_url,
                headers=request.headers,
                api_key=self._key.reveal(),
                now=self._clock(),
                max_skew=self._max_skew,
                nonces=self._nonces,
            )
        except CallbackVerificationError as exc:
            self.stats.rejected[exc.check] += 1
            logger.warning("callback from %s rejected: %s", request.remote, exc)
            return web.json_response({"error": "verification failed", "check": exc.check}, status=401)
        try:
            task = parse_callback(await request.read())
        except ResponseValidationError as exc:
            self.stats.bad_body += 1
            logger.warning("verified callback with an unreadable body: %s", exc)
            return web.json_response({"error": "unreadable body"}, status=400)

        # From here to the end there is no ``await``: the duplicate check and the hand-over are one
        # step, so two copies of an update arriving together are handed over once.
        key = (task.id or task.payload, task.raw_state)
        if self._seen is not None and self._seen.seen(key, 0.0):
            self.stats.duplicates += 1
            return web.json_response({})
        try:
            result = self._on_update(task)
        except UnmatchedCallback:
            self.stats.unmatched += 1
            logger.warning(
                "verified callback without a task id matches no watched task (payload %r)", task.payload
            )
            return web.json_response({"error": "no watched task has this payload"}, status=404)
        except Exception:
            self.stats.errors += 1
            logger.exception("on_update raised for task %s (%s)", task.id, task.raw_state)
        else:
            if result is not None and not self._hand_over(result):
                self.stats.unavailable += 1
                return web.json_response({"error": "busy, retry later"}, status=503)
        if self._seen is not None:
            self._seen.add(key, 0.0)
        self.stats.accepted += 1
        return web.json_response({})

    def _hand_over(self, awaitable: Awaitable[object]) -> bool:
        if self._send is None:
            logger.error(
                "on_update returned an awaitable but the callback receiver is not running; "
                "enter it (`async with receiver:`) or use setup()/make_callback_app()"
            )
            _discard(awaitable)
            return False
        try:
            self._send.send_nowait(awaitable)
        except anyio.WouldBlock:
            logger.warning("callback consumers are behind (%d pending); answering 503", self._max_pending)
            _discard(awaitable)
            return False
        return True

    async def _supervise(self, receive: MemoryObjectReceiveStream[Awaitable[object]]) -> None:
        async with anyio.create_task_group() as group:
            with receive:
                for _ in range(self._max_concurrency):
                    group.start_soon(self._consume, receive.clone())

    async def _consume(self, receive: MemoryObjectReceiveStream[Awaitable[object]]) -> None:
        with receive:
            async for awaitable in receive:
                try:
                    await awaitable
                except Exception:  # one consumer's failure must not stop the others
                    self.stats.errors += 1
                    logger.exception("on_update failed")


#: Where :meth:`CallbackReceiver.setup` stores the receiver in its app (for its ``stats``).
RECEIVER_KEY: Final = web.AppKey("vidu_callback_receiver", CallbackReceiver)


def make_callback_app(
    *,
    api_key: str,
    callback_url: str,
    on_update: OnUpdate,
    path: str | None = None,
    max_skew: float = 300.0,
    nonces: NonceCache | None = None,
    dedupe_size: int = 10_000,
) -> web.Application:
    """An aiohttp application that receives Vidu's callbacks (see :class:`CallbackReceiver`).

    Args:
        api_key: The API key the tasks were created with.
        callback_url: The ``callback_url`` exactly as sent to Vidu; requests are verified against it.
        on_update: Called with each verified, new update (sync, or returning an awaitable).
        path: Where the callbacks arrive (default: the registered URL's path).
        max_skew: Seconds ``Date`` may be from now, either way.
        nonces: The replay cache (default: a new :class:`NonceCache`).
        dedupe_size: (task id, state) pairs remembered to drop repeats; 0 turns that off, as
            ``on_update=client.notify`` wants (the client de-duplicates, and a finish a GET refuted
            must be able to come again).

    Returns:
        The application; ``app[RECEIVER_KEY]`` is its receiver (``.stats``).
    """
    receiver = CallbackReceiver(
        api_key=api_key,
        callback_url=callback_url,
        on_update=on_update,
        max_skew=max_skew,
        nonces=nonces,
        dedupe_size=dedupe_size,
    )
    app = web.Application()
    receiver.setup(app, path=path)
    return app


@contextlib.asynccontextmanager
async def serve(
    receiver: CallbackReceiver, *, host: str = "0.0.0.0", port: int = 8080, path: str | None = None
) -> AsyncIterator[CallbackReceiver]:
    """Serve ``receiver`` on ``host:port`` while the block runs (an aiohttp server of its own).

    Args:
        receiver: The receiver (not yet running).
        host: The interface to listen on.
        port: The port (the one your public ``callback_url`` reaches).
        path: The route; defaults to the path of the receiver's ``callback_url``.

    Yields:
        The receiver, running.
    """
    app = web.Application()
    receiver.setup(app, path=path)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        logger.info("receiving callbacks on %s:%d", host, port)
        yield receiver
    finally:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()
