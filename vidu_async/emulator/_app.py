"""The emulator's HTTP edge: aiohttp handlers, auth, error bodies, faults, downloads and callbacks.

Everything that decides *what* happens lives in ``_state`` (pure); this module turns requests into
calls on it and its answers into Vidu's bodies. One background task per application sleeps until
the next due transition; handlers also advance the state first, so every read is current.

Routes: a create for every task kind (``KINDS``, counted as ``create``) and for the legacy
``template2video`` (served as ``template``); the three synchronous endpoints, each counted and
faulted under its own path; the task reads (get, cancel, list, credits); and ``/files/…``, the
signed links of every creation (MP4 + JPEG cover, PNG, MP3 or WAV) and of speech and voice demos.
With ``EmulatorConfig.stats_endpoint``, also ``GET /_emulator/stats`` (:data:`STATS_PATH`): the
live counters as JSON, for a test whose emulator runs in another process; it is neither counted
nor faulted, and it does not exist otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import math
import os
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib import resources
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
import attrs
from aiohttp import web

from .. import _rules, _signing
from .._convert import parse_timestamp, request_from_json, request_to_json, sync_request_from_json
from .._kinds import KINDS, LEGACY_ENDPOINTS, Output, TaskKind, kind_of
from .._models import CloneVoiceRequest, PromptRequest, Request, SpeechRequest, TaskState
from ..exceptions import Problem, RequestValidationError
from ._config import ENDPOINTS, FAULT_NAMES, SYNC_ENDPOINTS, EmulatorConfig
from ._files import CONTENT_TYPES, SAMPLE_MP3, SAMPLE_PNG, SAMPLE_WAV
from ._state import (
    EmulatorState,
    EmulatorStats,
    ListQuery,
    RequestRecord,
    StateError,
    SyncRecord,
    TaskRecord,
    Transition,
    parse_list_values,
    states_named,
)

__all__ = ["RUNTIME", "STATS_PATH", "Runtime", "make_app", "stats_body"]

#: Where ``EmulatorConfig.stats_endpoint`` serves the counters (at the origin, without a prefix).
STATS_PATH: Final = "/_emulator/stats"
_STATS_ROUTE: Final = "emulator-stats"

#: Vidu's message for each request-validation reason; ``{}`` is the comma-separated field list.
_MESSAGES: Final[Mapping[str, str]] = {
    "FieldUnwanted": "unwanted field: {}",
    "FieldLacking": "field is missing or empty: {}",
    "FieldItemCountOutOfRange": "field item count out of range: {}",
    # The documented messages of these two name no field; the field is appended to help the reader.
    "ImageFormatInvalid": "invalid image format: {}",
    "PageSizeOutOfRange": "page size out of range: {}",
    "FieldInvalid": "invalid field: {}",
}
#: Which reason a request with several kinds of problem is answered with.
_PRIORITY: Final = (
    "FieldUnwanted",
    "FieldLacking",
    "FieldItemCountOutOfRange",
    "ImageFormatInvalid",
    "PageSizeOutOfRange",
    "FieldInvalid",
)
#: Faults answered instead of handling the request.
_REFUSALS: Final[Mapping[str, tuple[int, str, str]]] = {
    "rate_limit": (429, "TooManyRequests", "too many requests"),
    "throttle": (429, "SystemThrottling", "system is throttling"),
    "quota_exceeded": (429, "QuotaExceeded", "quota exceeded"),
    "server_error": (500, "InternalServiceFailure", "internal service failure"),
    "operation_in_process": (400, "OperationInProcess", "operation in process, please retry later"),
}
#: Request faults drawn from rates, in the order their rates are stacked.
_RATED: Final = (
    "rate_limit",
    "throttle",
    "server_error",
    "server_error_after_commit",
    "slow",
    "drop",
    "commit_then_drop",
    "operation_in_process",
)
#: Faults that commit before they fail, and the endpoints they hit: those that store or bill something.
_CREATE_ONLY: Final = frozenset({"server_error_after_commit", "commit_then_drop"})
_COMMITTING: Final = frozenset({"create", "audio-tts", "audio-clone"})
_FPS: Final = 24
_HEIGHTS: Final[Mapping[str, int]] = {
    "360p": 360,
    "540p": 540,
    "720p": 720,
    "1080p": 1080,
    "2K": 1440,
    "4K": 2160,
    "8K": 4320,
}
_CALLBACK_STATES: Final = frozenset({TaskState.PROCESSING, TaskState.SUCCESS, TaskState.FAILED})


def _asset(name: str) -> bytes:
    return resources.files(__package__ or "vidu_async.emulator").joinpath("assets", name).read_bytes()


#: The files every creation serves: a real, playable H.264 MP4 and a JPEG cover.
SAMPLE_MP4: Final = _asset("sample.mp4")
#: Bytes per write of a throttled download (``EmulatorConfig.download_bytes_per_second``).
_SLOW_CHUNK: Final = 512
COVER_JPG: Final = _asset("cover.jpg")


class _Drop(Exception):
    """Close the connection without an answer."""


@attrs.frozen(kw_only=True)
class _Delivery:
    url: str
    key: str
    body: bytes
    state: TaskState
    attempt: int = 0
    #: Deliveries sent after this one by the same worker (``reorder``: held-back ``processing`` callbacks).
    then: tuple[_Delivery, ...] = ()


def _key_id(key: str) -> str:
    """A stable, non-secret name for an API key (the list's ``key_id``)."""
    return "k_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


class Runtime:
    """The live emulator behind one application: state, faults, clocks and background work.

    Args:
        config: The configuration.
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.state = EmulatorState(config)
        self.orgs = config.organizations()
        self.key_ids = {key: _key_id(key) for key in self.orgs}
        #: The emulator's own address, for links in callback bodies (set at start, refreshed per request).
        self.base_url = ""
        self.injected: dict[str, deque[str]] = {}
        self._secret = os.urandom(32)
        self._fault_rng = random.Random(f"requests:{config.faults.seed}")
        self._unknown_rng = random.Random(f"unknown-state:{config.faults.seed}")
        self._callback_rng = random.Random(f"callbacks:{config.callbacks.seed}")
        self._held: dict[str, list[_Delivery]] = {}
        self._wake: asyncio.Event | None = None
        self._changed: asyncio.Event | None = None
        self._deliveries: asyncio.Queue[_Delivery] | None = None
        self._background: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    @property
    def stats(self) -> EmulatorStats:
        """The live counters."""
        return self.state.stats

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the scheduler and the callback workers (inside the running loop)."""
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._deliveries = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self._background.append(loop.create_task(self._schedule(), name="vidu-emulator-scheduler"))
        for i in range(max(1, self.config.callbacks.max_concurrent)):
            self._background.append(
                loop.create_task(self._deliver_forever(), name=f"vidu-emulator-callback-{i}")
            )

    async def stop(self) -> None:
        """Stop background work; callbacks not yet delivered are abandoned."""
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- clock -----------------------------------------------------------------------------------

    def now(self) -> float:
        """The loop's monotonic clock: the state's time base."""
        return asyncio.get_running_loop().time()

    def tick(self) -> list[Transition]:
        """Apply every transition due by now and send their callbacks."""
        transitions = self.state.advance(self.now())
        if transitions:
            self.dispatch(transitions)
            self.notify()
        return transitions

    def notify(self) -> None:
        """Wake everyone waiting in :meth:`wait_changed` (a fresh event for the next waiters)."""
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    def wake(self) -> None:
        """Make the scheduler recompute its next due time (a task was added or removed)."""
        if self._wake is not None:
            self._wake.set()

    async def wait_changed(self) -> None:
        """Wait until the next batch of transitions."""
        if self._changed is None:
            raise RuntimeError("the emulator is not running")
        await self._changed.wait()

    async def _schedule(self) -> None:
        assert self._wake is not None
        while True:
            self.tick()
            due = self.state.next_due()
            self._wake.clear()
            timeout = None if due is None else max(0.0, due - self.now())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    # --- faults ----------------------------------------------------------------------------------

    def inject(self, endpoint: str, fault: str, count: int = 1) -> None:
        """Queue ``count`` one-shot ``fault``s for the next requests to ``endpoint``."""
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; known: {sorted(ENDPOINTS)}")
        if fault not in FAULT_NAMES:
            raise ValueError(f"unknown fault {fault!r}; known: {sorted(FAULT_NAMES)}")
        self.injected.setdefault(endpoint, deque()).extend([fault] * count)

    def pick_fault(self, endpoint: str) -> str | None:
        """The fault for this request: a queued one-shot first, else one drawn from the rates."""
        queued = self.injected.get(endpoint)
        if queued:
            return queued.popleft()
        faults = self.config.faults
        if endpoint not in faults.endpoints:
            return None
        rates = [
            (name, rate)
            for name in _RATED
            if (rate := float(getattr(faults, name))) > 0
            and (endpoint in _COMMITTING or name not in _CREATE_ONLY)
        ]
        if not rates:
            return None
        draw = self._fault_rng.random()
        for name, rate in rates:
            if draw < rate:
                return name
            draw -= rate
        return None

    def reported_state(self, task: TaskRecord, *, forced: bool = False) -> str:
        """The state string a read reports: the real one, or now and then one the SDK does not know."""
        if forced:
            return self.config.faults.unknown_state_value
        rate = self.config.faults.unknown_state
        if rate > 0 and self._unknown_rng.random() < rate:
            self.stats.faults["unknown_state"] += 1
            return self.config.faults.unknown_state_value
        return task.state.value

    # --- bodies ----------------------------------------------------------------------------------

    def media_suffix(self, output: Output) -> str:
        """The file suffix of a creation of ``output`` media ("" for images and audio served bare)."""
        if output == "video":
            return "mp4"
        if self.config.bare_media_urls:
            return ""
        return "png" if output == "image" else self.config.audio_format

    def media_url(self, base: str, owner: str, file_id: str, output: Output) -> str:
        """The signed link of one file: ``{base}/files/{owner}/{file_id}[.suffix]``."""
        suffix = self.media_suffix(output)
        return self.signed_url(base, f"{owner}/{file_id}.{suffix}" if suffix else f"{owner}/{file_id}")

    def creations(self, task: TaskRecord, base: str) -> list[dict[str, Any]]:
        """The ``creations`` of a task: one signed, expiring set of links once it succeeded.

        A video has ``url`` (``.mp4``), ``cover_url`` and ``video``; an image (reference2image)
        and an audio clip (text2audio, timing2audio) have ``url`` only (vidu-api-endpoints.md §1.11).
        """
        if task.state is not TaskState.SUCCESS:
            return []
        if task.output != "video":
            return [
                {"id": task.creation_id, "url": self.media_url(base, task.id, task.creation_id, task.output)}
            ]
        width, height = _video_size(task.settings["resolution"], task.settings["aspect_ratio"])
        stem = f"{task.id}/{task.creation_id}"
        creation: dict[str, Any] = {
            "id": task.creation_id,
            "url": self.signed_url(base, f"{stem}.mp4"),
            "cover_url": self.signed_url(base, f"{stem}.jpg"),
        }
        if task.settings["watermark"]:
            creation["watermarked_url"] = self.signed_url(base, f"{stem}_wm.mp4")
        creation["video"] = {
            "duration": float(task.seconds),
            "fps": _FPS,
            "resolution": {"width": width, "height": height},
        }
        return [creation]

    def task_body(
        self, task: TaskRecord, base: str, *, state: TaskState | None = None, reported: str | None = None
    ) -> dict[str, Any]:
        """The ``GET …/creations`` shape (also the callback body), as of ``state`` (default: now)."""
        state = task.state if state is None else state
        failed = state is TaskState.FAILED
        body: dict[str, Any] = {}
        if self.config.query_includes_id:
            body["id"] = task.id
        body.update(
            state=reported if reported is not None else state.value,
            err_code=task.err_code if failed else "",
            credits=0 if failed else task.settings["credits"],
            payload=task.payload,
            bgm=task.settings["bgm"],
            off_peak=task.settings["off_peak"],
            creations=self.creations(task, base) if state is TaskState.SUCCESS else [],
            created_at=task.created_at_text,
        )
        return body

    def sync_task_body(self, record: SyncRecord, base: str) -> dict[str, Any]:
        """The ``GET …/creations`` shape of a synchronous answer with an audio file: a finished task."""
        body: dict[str, Any] = {"id": record.id} if self.config.query_includes_id else {}
        body.update(
            state=TaskState.SUCCESS.value,
            err_code="",
            credits=record.credits,
            payload=record.payload,
            creations=[
                {"id": record.file_id, "url": self.media_url(base, record.id, record.file_id, "audio")}
            ],
            created_at=record.created_at_text,
        )
        return body

    def list_row(self, task: TaskRecord, base: str, *, unknown_state: bool = False) -> dict[str, Any]:
        """One row of ``GET /ent/v2/tasks``: the documented fields, plus state and credits unless omitted."""
        row: dict[str, Any] = {
            "id": task.id,
            "key_id": task.key_id,
            "model": task.settings["model"],
            "prompt": task.settings["prompt"],
            "images": task.settings["images"],
            "duration": task.settings["duration"],
            "resolution": task.settings["resolution"],
            "aspect_ratio": task.settings["aspect_ratio"],
            "creations": self.creations(task, base),
        }
        if not self.config.faults.list_omits_state:
            failed = task.state is TaskState.FAILED
            row.update(
                state=self.reported_state(task, forced=unknown_state),
                err_code=task.err_code,
                credits=0 if failed else task.settings["credits"],
                payload=task.payload,
                created_at=task.created_at_text,
            )
        return row

    # --- download links --------------------------------------------------------------------------

    def _signature(self, name: str, expires: int) -> str:
        return hmac.new(self._secret, f"{name}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def signed_url(self, base: str, name: str) -> str:
        """A link to ``{base}/files/{name}`` valid for ``url_ttl`` seconds from now."""
        expires = math.floor(time.time() + self.config.url_ttl)
        return f"{base}/files/{name}?Expires={expires}&Signature={self._signature(name, expires)}"

    def check_link(self, name: str, expires: str, signature: str) -> str | None:
        """Why a download link is refused ("" … ``None`` when it is good)."""
        try:
            when = int(expires)
        except ValueError:
            return "missing or malformed Expires"
        if not hmac.compare_digest(self._signature(name, when), signature):
            return "signature does not match"
        if time.time() >= when:
            return "request has expired"
        return None

    def file(self, owner: str, filename: str) -> tuple[bytes, str] | None:
        """The bytes and ``Content-Type`` behind ``/files/{owner}/{filename}``, or ``None`` when
        there is no such file (no such task, not succeeded, another creation, a wrong suffix)."""
        stem, dot, suffix = filename.rpartition(".")
        if not dot:
            stem, suffix = filename, ""
        task = self.state.tasks.get(owner)
        if task is not None:
            if task.state is not TaskState.SUCCESS:
                return None
            if task.output != "video":
                return self._media_file(task.output, stem, suffix, task.creation_id)
            watermarked = stem.endswith("_wm")
            if stem.removesuffix("_wm") != task.creation_id:
                return None
            if suffix == "mp4" and (not watermarked or task.settings["watermark"]):
                return SAMPLE_MP4, CONTENT_TYPES["mp4"]
            if suffix == "jpg" and not watermarked:
                return COVER_JPG, CONTENT_TYPES["jpg"]
            return None
        record = self.state.sync_records.get(owner)
        if record is not None and record.file_id:
            return self._media_file("audio", stem, suffix, record.file_id)
        return None

    def _media_file(self, output: Output, stem: str, suffix: str, file_id: str) -> tuple[bytes, str] | None:
        if stem != file_id or suffix != self.media_suffix(output):
            return None
        if output == "image":
            return SAMPLE_PNG, CONTENT_TYPES["png"]
        audio = self.config.audio_format
        return (SAMPLE_MP3 if audio == "mp3" else SAMPLE_WAV), CONTENT_TYPES[audio]

    # --- callbacks -------------------------------------------------------------------------------

    def dispatch(self, transitions: list[Transition]) -> None:
        """Queue the callbacks of ``transitions`` (never blocks)."""
        if not self.config.callbacks.enabled or self._deliveries is None:
            return
        for transition in transitions:
            if transition.state not in _CALLBACK_STATES:
                continue
            task = self.state.tasks[transition.task_id]
            if not task.callback_url:
                continue
            body = self.task_body(task, self.base_url, state=transition.state)
            delivery = _Delivery(
                url=task.callback_url,
                key=task.api_key,
                body=json.dumps(body).encode("utf-8"),
                state=transition.state,
            )
            if self.config.callbacks.reorder and transition.state is TaskState.PROCESSING:
                self._held.setdefault(task.id, []).append(delivery)
                continue
            if transition.state.is_terminal:
                delivery = attrs.evolve(delivery, then=tuple(self._held.pop(task.id, ())))
            self._deliveries.put_nowait(delivery)

    async def _deliver_forever(self) -> None:
        assert self._deliveries is not None
        while True:
            delivery = await self._deliveries.get()
            try:
                await self._deliver(delivery)
            except Exception:  # one broken delivery must never stop the worker
                self.stats.callbacks_failed += 1

    async def _deliver(self, delivery: _Delivery) -> None:
        config = self.config.callbacks
        if config.delay:
            await asyncio.sleep(config.delay)
        if delivery.attempt == 0 and config.drop and self._callback_rng.random() < config.drop:
            self.stats.callbacks_dropped += 1
            return
        copies = (
            2
            if delivery.attempt == 0 and config.duplicate and self._callback_rng.random() < config.duplicate
            else 1
        )
        for _ in range(copies):
            attempt = delivery
            while True:
                if await self._post(attempt):
                    break
                if not attempt.state.is_terminal or attempt.attempt >= config.retries:
                    break
                attempt = attrs.evolve(attempt, attempt=attempt.attempt + 1)
                await asyncio.sleep(config.retry_delay)
        for follower in delivery.then:
            await self._deliver(follower)

    async def _post(self, delivery: _Delivery) -> bool:
        config = self.config.callbacks
        key = delivery.key
        if config.forge and self._callback_rng.random() < config.forge:
            key = "forged-" + key
            self.stats.callbacks_forged += 1
        headers = _signing.signed_headers(
            key=key, url=delivery.url, nonce=str(uuid.uuid4()), date=_signing.http_date()
        )
        headers["Content-Type"] = "application/json"
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                delivery.url,
                data=delivery.body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=config.timeout),
            ) as response:
                await response.read()
                ok = 200 <= response.status < 300
        except (aiohttp.ClientError, TimeoutError, OSError):
            ok = False
        if ok:
            self.stats.callbacks_sent += 1
        else:
            self.stats.callbacks_failed += 1
        return ok


#: Where an application keeps its :class:`Runtime`.
RUNTIME: Final = web.AppKey("vidu_emulator_runtime", Runtime)
_ORG: Final = web.RequestKey("vidu_emulator_org", str)
_KEY: Final = web.RequestKey("vidu_emulator_key", str)
#: Set when a one-shot ``unknown_state`` fault hits this read.
_UNKNOWN: Final = web.RequestKey("vidu_emulator_unknown_state", bool)


# --- responses -------------------------------------------------------------------------------------


def error_body(status: int, reason: str, message: str, *, string_code: bool = False) -> dict[str, Any]:
    """Vidu's error shape: ``{code, reason, message, metadata: {trace_id}}``."""
    return {
        "code": reason if string_code else status,
        "reason": reason,
        "message": message,
        "metadata": {"trace_id": uuid.uuid4().hex},
    }


def _error(
    status: int,
    reason: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    string_code: bool = False,
) -> web.Response:
    return web.json_response(
        error_body(status, reason, message, string_code=string_code), status=status, headers=headers
    )


def _state_error(exc: StateError) -> web.Response:
    # The observed 402 body carries the reason as a string `code` (vidu-api.md §8).
    return _error(exc.status, exc.reason, exc.message, string_code=exc.status == 402)


def _retry_after(runtime: Runtime) -> dict[str, str]:
    faults = runtime.config.faults
    if faults.retry_after is None:
        return {}
    if faults.retry_after_http_date:
        moment = datetime.fromtimestamp(math.ceil(time.time() + faults.retry_after), UTC)
        return {"Retry-After": _signing.http_date(moment)}
    seconds = faults.retry_after
    # delay-seconds is an integer in RFC 9110; fractions are kept so tests can retry fast.
    return {"Retry-After": str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"}


def validation_error(problems: list[Problem]) -> web.Response:
    """The 400 Vidu answers for a request with ``problems``: the highest-priority reason, its fields."""
    reasons = {p.reason for p in problems}
    if "BadRequest" in reasons:
        return _error(400, "BadRequest", "bad request")
    reason = next((r for r in _PRIORITY if r in reasons), "FieldInvalid")
    fields = list(dict.fromkeys(p.field for p in problems if p.reason == reason or reason not in reasons))
    return _error(400, reason, _MESSAGES[reason].format(", ".join(fields)))


def _video_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """Pixel size for a resolution (the short side) and an aspect ratio (``auto`` reads as 16:9)."""
    short = _HEIGHTS.get(resolution, 720)
    try:
        w, h = (int(n) for n in aspect_ratio.split(":"))
    except ValueError:
        w, h = 16, 9
    if w <= 0 or h <= 0:
        w, h = 16, 9

    def even(x: float) -> int:
        return max(2, round(x / 2) * 2)

    return (even(short * w / h), short) if w >= h else (short, even(short * h / w))


def _base(request: web.Request, runtime: Runtime) -> str:
    base = f"{request.scheme}://{request.host}{runtime.config.path_prefix}"
    runtime.base_url = base
    return base


def _unreachable_image(request: Request | SpeechRequest | CloneVoiceRequest | PromptRequest) -> str | None:
    """The first image URL whose host ends in ``.invalid``: it can never be fetched (RFC 2606)."""
    for where, item in request.media():
        if isinstance(item, str) and item[:4].lower() == "http":
            host = urlsplit(item).hostname or ""
            if host == "invalid" or host.endswith(".invalid"):
                return where
    return None


def _unknown_values(
    item: object, fields: tuple[_rules.FieldRule, ...], extra: tuple[str, ...], prefix: str = ""
) -> list[str]:
    """The paths of the values outside their field's open list (``FieldRule.known``: template names,
    stories), which the SDK lets through and the service refuses; objects are looked into."""
    out: list[str] = []
    for field in fields:
        value = getattr(item, field.attribute, None)
        where = f"{prefix}{field.name}"
        values = value if isinstance(value, tuple) else (value,)
        if field.known and any(
            isinstance(v, str) and v not in field.known and v not in extra for v in values
        ):
            out.append(where)
        if field.type == "objects" and isinstance(value, tuple):
            for i, one in enumerate(value):
                out.extend(_unknown_values(one, field.fields, extra, f"{where}[{i}]."))
    return out


# --- middleware: endpoint names, auth, faults, response counting -----------------------------------


@web.middleware
async def _edge(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    route = request.match_info.route
    if route.name == _STATS_ROUTE:  # the test's window on the counters: not a request it counts
        return await handler(request)
    name = (route.name or "").partition(":")[0]  # "create:<kind>" counts as "create"
    endpoint = name if name in ENDPOINTS else "other"
    runtime.stats.requests[endpoint] += 1
    arrived = time.monotonic()
    runtime.tick()
    try:
        response = await _handle(request, handler, runtime, endpoint)
    except _Drop:
        # Really close the socket: the client must see a disconnect, not an answer.
        request.protocol.force_close()
        runtime.stats.log.append(RequestRecord(arrived, time.monotonic(), endpoint, None))
        return web.Response(status=499)
    runtime.stats.responses[response.status] += 1
    answered = time.monotonic()
    hold = _hold_until(response.headers.get("Retry-After"), answered) if response.status == 429 else None
    runtime.stats.log.append(RequestRecord(arrived, answered, endpoint, response.status, hold))
    return response


def _hold_until(retry_after: str | None, now: float) -> float | None:
    """The moment (monotonic) a ``Retry-After`` header sent at ``now`` asks the client to wait for."""
    if retry_after is None:
        return None
    try:
        return now + float(retry_after)
    except ValueError:
        moment = parsedate_to_datetime(retry_after)
        return now + (moment.timestamp() - time.time())


async def _handle(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    runtime: Runtime,
    endpoint: str,
) -> web.StreamResponse:
    if endpoint == "other":
        if request.match_info.http_exception is not None:
            return _error(404, "NotFound", "not found")
        return await handler(request)
    if endpoint != "download":
        refused = _authenticate(request, runtime)
        if refused is not None:
            return refused
    fault = runtime.pick_fault(endpoint)
    if fault is not None:
        runtime.stats.faults[fault] += 1
    if fault is not None and fault in _REFUSALS:
        status, reason, message = _REFUSALS[fault]
        return _error(status, reason, message, headers=_retry_after(runtime) if status == 429 else None)
    if fault == "drop":
        raise _Drop
    request[_UNKNOWN] = fault == "unknown_state"
    if fault == "slow":
        await asyncio.sleep(runtime.config.faults.slow_delay)
    response = await handler(request)
    if fault == "commit_then_drop":
        raise _Drop
    if fault == "server_error_after_commit" and response.status < 300:
        return _error(500, "InternalServiceFailure", "internal service failure")
    return response


def _authenticate(request: web.Request, runtime: Runtime) -> web.Response | None:
    scheme, _, key = request.headers.get("Authorization", "").strip().partition(" ")
    key = key.strip()
    schemes = {s.lower() for s in runtime.config.auth_schemes}
    org = runtime.orgs.get(key)
    if scheme.lower() not in schemes or org is None:
        return _error(401, "Unauthorized", "unauthorized")
    request[_ORG] = org
    request[_KEY] = key
    return None


# --- handlers --------------------------------------------------------------------------------------


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The body, or ``None`` when it is over ``limit`` bytes.

    An oversized body is still read to its end (and thrown away): answering while the client is
    still sending would leave aiohttp lingering on the unread rest, and some clients would see a
    broken pipe instead of the 400.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(256 * 1024):
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        else:
            chunks.clear()
    return None if size > limit else b"".join(chunks)


def _create_for(kind: TaskKind) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The create handler of one task kind's endpoint."""

    async def create(request: web.Request) -> web.StreamResponse:
        return await _create(request, kind)

    return create


async def _json_body(request: web.Request) -> object:
    """A create's (or a sync call's) JSON body, or the 400 answering a body too large or not JSON."""
    raw = await _read_limited(request, _rules.MAX_BODY_BYTES)
    if raw is None:
        return _error(400, "BadRequest", "request body too large")
    try:
        body: object = json.loads(raw)
    except ValueError:
        return _error(400, "BadRequest", "bad request")
    return body


async def _create(request: web.Request, kind: TaskKind) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    try:
        parsed = request_from_json(body, endpoint=kind.endpoint)
    except RequestValidationError as exc:
        return validation_error(list(exc.problems))
    # After the body's own checks: an unknown name gets the SDK's generic ones first, like a known one.
    # Only kinds with a model table have a model (vidu-api-endpoints.md §1.13).
    models = _rules.ENDPOINT_MODELS.get(kind.endpoint)
    model = getattr(parsed, "model", None)
    if models is not None and model not in models and model not in runtime.config.extra_models:
        return _error(400, "ModelUnavailable", "model unavailable")
    spec = _rules.KIND_RULES.get(kind.endpoint)
    unknown = _unknown_values(parsed, spec.fields, runtime.config.extra_known) if spec is not None else []
    if unknown:
        return _error(400, "FieldInvalid", _MESSAGES["FieldInvalid"].format(", ".join(unknown)))
    if _unreachable_image(parsed) is not None:
        return _error(400, "ImageDownloadFailure", "image download failure")
    key = request[_KEY]
    try:
        task = runtime.state.submit(
            parsed,
            now=runtime.now(),
            wall_ns=time.time_ns(),
            org=request[_ORG],
            api_key=key,
            key_id=runtime.key_ids[key],
        )
    except StateError as exc:
        return _state_error(exc)
    runtime.wake()
    return web.json_response(task.echo)


def _sync_for(endpoint: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The handler of one synchronous endpoint."""

    async def answer(request: web.Request) -> web.StreamResponse:
        return await _sync(request, endpoint)

    return answer


#: What the emulator suggests for ``img2video-prompt-recommendation`` (§18.2), in turn.
_IDEAS: Final = (
    ("The people in the picture turn to each other and smile.", "They turn to each other and smile warmly."),
    ("The camera slowly pushes in while the light grows warmer.", "Slow push-in, the light warms up."),
    ("A gentle breeze moves hair and clothes; the scene comes alive.", "A breeze moves hair and clothes."),
    ("The subject looks up and waves at the camera.", "The subject looks up and waves."),
    ("Petals drift through the frame as the camera orbits.", "Petals drift by; the camera orbits."),
)


async def _sync(request: web.Request, endpoint: str) -> web.StreamResponse:
    """``audio-tts``, ``audio-clone`` and ``img2video-prompt-recommendation`` (§16-§18): read as
    strictly as a create, answered at once with ``state: "success"``; nothing occupies a slot."""
    runtime = request.app[RUNTIME]
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    try:
        parsed: SpeechRequest | CloneVoiceRequest | PromptRequest = sync_request_from_json(
            body, endpoint=endpoint
        )
    except RequestValidationError as exc:
        return validation_error(list(exc.problems))
    unknown = _unknown_values(parsed, _rules.SYNC_RULES[endpoint].fields, runtime.config.extra_known)
    if unknown:
        return _error(400, "FieldInvalid", _MESSAGES["FieldInvalid"].format(", ".join(unknown)))
    if _unreachable_image(parsed) is not None:
        return _error(400, "ImageDownloadFailure", "image download failure")
    try:
        record = runtime.state.call_sync(parsed, endpoint=endpoint, wall_ns=time.time_ns(), org=request[_ORG])
    except StateError as exc:
        return _state_error(exc)
    base = _base(request, runtime)
    return web.json_response(_sync_body(runtime, parsed, record, base))


def _sync_body(
    runtime: Runtime, parsed: SpeechRequest | CloneVoiceRequest | PromptRequest, record: SyncRecord, base: str
) -> dict[str, Any]:
    if isinstance(parsed, PromptRequest):
        # §18.2: the example's ``id`` (its table says task_id, §22.13); ``count`` prompts per type.
        count = parsed.count or 5
        resolution = parsed.resolution or "360p"
        prompts: list[dict[str, Any]] = []
        for kind in parsed.type:
            for i in range(count):
                content, prompt = _IDEAS[i % len(_IDEAS)]
                row: dict[str, Any] = {"type": kind, "content": content}
                if kind == "template":  # only template suggestions carry a ready request (§18.2)
                    template = _rules.TEMPLATE_NAMES[i % len(_rules.TEMPLATE_NAMES)]
                    row.update(prompt=prompt, template=template, resolution=resolution)
                prompts.append(row)
        images = [i for i in parsed.images if isinstance(i, str)]
        return {
            "id": record.id,
            "images": images,
            "count": count,
            "prompts": prompts,
            "created_at": record.created_at_text,
        }
    pending = runtime.config.pending_audio_answers
    audio = runtime.media_url(base, record.id, record.file_id, "audio")
    state = TaskState.QUEUEING if pending else TaskState.SUCCESS
    out: dict[str, Any] = {"task_id": record.id, "state": state.value}
    if isinstance(parsed, SpeechRequest):
        out.update({} if pending else {"file_url": audio}, credits=record.credits)
    else:
        out.update({"voice_id": record.voice_id}, **({} if pending else {"demo_audio": audio}))
    out.update(payload=parsed.payload or "", created_at=record.created_at_text)
    return out


async def _get(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    task_id = request.match_info["task_id"]
    record = runtime.state.sync_records.get(task_id)
    if record is not None and record.file_id and record.org == request[_ORG]:
        # Speech and a cloned voice's demo can be read back as a finished task, as clients that
        # poll a TTS answer without file_url expect (vidu-api-endpoints.md §16.2, an inference).
        return web.json_response(runtime.sync_task_body(record, _base(request, runtime)))
    try:
        task = runtime.state.get(task_id, org=request[_ORG])
    except StateError as exc:
        return _state_error(exc)
    base = _base(request, runtime)
    return web.json_response(
        runtime.task_body(task, base, reported=runtime.reported_state(task, forced=request[_UNKNOWN]))
    )


async def _cancel(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    raw = await request.read()
    if raw.strip():
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "BadRequest", "bad request")
        if not isinstance(body, dict):
            return _error(400, "BadRequest", "bad request")
    try:
        transition = runtime.state.cancel(request.match_info["task_id"], now=runtime.now(), org=request[_ORG])
    except StateError as exc:
        return _state_error(exc)
    runtime.dispatch([transition])
    runtime.notify()
    runtime.wake()
    return web.json_response({})


def _first(query: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        if name in query:
            return query[name]
    return None


async def _list(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    if runtime.config.faults.list_disabled:
        runtime.stats.faults["list_disabled"] += 1
        return _error(404, "NotFound", "not found")
    query = request.query
    try:
        created_from, created_to = (
            parse_timestamp(value) if (value := query.get(name)) else None
            for name in ("created_at.from", "created_at.to")
        )
    except ValueError:
        return _error(400, "FieldInvalid", "invalid field: created_at")
    numbers: dict[str, int] = {}
    for field, names, default in (
        ("pagesz", ("pager.pagesz", "paper.pagesz"), 10),
        ("page", ("pager.page", "paper.page"), 0),
    ):
        text = _first(query, *names)
        try:
            numbers[field] = default if text in (None, "") else int(text)
        except ValueError:
            return _error(400, "FieldInvalid", f"invalid field: {names[1]}")
    if numbers["page"] < 0:
        return _error(400, "FieldInvalid", "invalid field: paper.page")
    parsed = ListQuery(
        task_ids=parse_list_values(query.getall("task_ids", [])),
        states=states_named(parse_list_values(query.getall("states", []))),
        created_from=created_from,
        created_to=created_to,
        model_versions=parse_list_values(query.getall("model_versions", [])),
        resolutions=parse_list_values(query.getall("resolutions", [])),
        page_size=numbers["pagesz"],
        page=numbers["page"],
        page_token=_first(query, "pager.page_token", "paper.page_token") or "",
    )
    try:
        result = runtime.state.list_tasks(request[_ORG], parsed, wall=datetime.now(UTC))
    except StateError as exc:
        return _state_error(exc)
    base = _base(request, runtime)
    return web.json_response(
        {
            "next_page_token": result.next_page_token,
            "tasks": [runtime.list_row(t, base, unknown_state=request[_UNKNOWN]) for t in result.tasks],
        }
    )


async def _credits(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    credits = runtime.state.credits(request[_ORG])
    body: dict[str, Any] = {
        "remains": [
            {
                "type": "metered",
                "credit_remain": credits.credit_remain,
                "concurrency_limit": credits.concurrency_limit,
                "current_concurrency": credits.current_concurrency,
                "queue_count": credits.queue_count,
            }
        ]
    }
    if request.query.get("show_detail", "").lower() == "true":
        body["packages"] = [
            {
                "id": "pkg_emulator",
                "name": "Emulator metered credits",
                "type": "metered",
                "concurrency": credits.concurrency_limit,
                "credit_amount": runtime.config.credits,
                "credit_remain": credits.credit_remain,
                "created_at": "2025-01-01T00:00:00Z",
                "purchase_at": "2025-01-01T00:00:00Z",
                "valid_from": "2025-01-01T00:00:00Z",
                "valid_to": "2099-12-31T23:59:59Z",
            }
        ]
    return web.json_response(body)


async def _download(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    task_id = request.match_info["task_id"]
    filename = request.match_info["filename"]
    found = runtime.file(task_id, filename)
    if found is None:
        return _error(404, "CreationNotFound", "creation not found")
    refused = runtime.check_link(
        f"{task_id}/{filename}", request.query.get("Expires", ""), request.query.get("Signature", "")
    )
    if refused is not None:
        return _error(403, "Forbidden", f"forbidden: {refused}")
    data, content_type = found
    headers = {"Accept-Ranges": "bytes", "Content-Type": content_type}
    status = 200
    if "Range" in request.headers:
        size = len(data)
        try:
            wanted = request.http_range
        except ValueError:
            wanted = None
        start, stop, _ = wanted.indices(size) if wanted is not None else (size, size, 1)
        if wanted is None or start >= size or start >= stop:
            headers["Content-Range"] = f"bytes */{size}"
            return web.Response(status=416, headers=headers)
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        data = data[start:stop]
        status = 206
    runtime.stats.downloads += 1
    rate = runtime.config.download_bytes_per_second
    if rate is None or request.method != "GET":  # a HEAD has no body to throttle
        return web.Response(body=data, status=status, headers=headers)
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = len(data)
    await response.prepare(request)
    for start in range(0, len(data), _SLOW_CHUNK):
        chunk = data[start : start + _SLOW_CHUNK]
        await response.write(chunk)
        await asyncio.sleep(len(chunk) / rate)
    await response.write_eof()
    return response


# --- the counters, for another process --------------------------------------------------------------


def _request_digest(task: TaskRecord) -> str:
    """A task's request without its ``payload``, hashed: equal for two creates of one item (the
    fingerprint aside), so kinds that carry no ``payload`` can be counted per item too."""
    body = {k: v for k, v in request_to_json(task.request).items() if k != "payload"}
    text = json.dumps(
        {"endpoint": kind_of(task.request).endpoint, "body": body}, sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def stats_body(runtime: Runtime) -> dict[str, Any]:
    """The live counters as JSON data (what ``GET /_emulator/stats`` answers).

    Keys: ``tasks_created``; ``tasks_by_payload`` (tasks per ``payload``, the SDK's fingerprint;
    ``""`` for tasks without one); ``tasks_by_request`` (tasks per request body without its
    ``payload``, hashed); ``max_in_flight`` and ``max_in_flight_by_org`` (the most unfinished
    tasks an organization had at once); ``in_flight`` (unfinished tasks per organization now);
    ``max_processing``; ``unfinished``; ``requests`` (by endpoint name); ``responses`` (by HTTP
    status); ``faults``; ``downloads``; ``callbacks_sent``; ``task_span`` (seconds from the first
    create to the last finish, ``null`` before a task finished); ``first_created_at`` and
    ``last_finished_at`` (the same two moments on the machine's monotonic clock, ``time.monotonic()``
    in any process of it; ``null`` before there is one).
    """
    runtime.tick()
    stats = runtime.stats
    in_flight = runtime.state.in_flight()
    tasks = runtime.state.tasks.values()
    by_request = Counter(_request_digest(task) for task in tasks)
    finished = [task.finished_at for task in tasks if task.finished_at is not None]
    first = min((task.created_at for task in tasks), default=None)
    last = max(finished, default=None)
    span = last - first if last is not None and first is not None else None
    return {
        "tasks_created": stats.tasks_created,
        "tasks_by_payload": dict(stats.tasks_by_payload),
        "tasks_by_request": dict(by_request),
        "max_in_flight": stats.max_in_flight,
        "max_in_flight_by_org": dict(stats.max_in_flight_by_org),
        "in_flight": in_flight,
        "max_processing": stats.max_processing,
        "unfinished": sum(in_flight.values()),
        "requests": dict(stats.requests),
        "responses": {str(status): count for status, count in stats.responses.items()},
        "faults": dict(stats.faults),
        "downloads": stats.downloads,
        "callbacks_sent": stats.callbacks_sent,
        "task_span": span,
        "first_created_at": first,
        "last_finished_at": last,
    }


async def _stats(request: web.Request) -> web.StreamResponse:
    return web.json_response(stats_body(request.app[RUNTIME]))


# --- the application -------------------------------------------------------------------------------


async def _background(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    await runtime.start()
    yield
    await runtime.stop()


def make_app(config: EmulatorConfig | None = None) -> web.Application:
    """A Vidu ``ent/v2`` server as an aiohttp application (run it with any aiohttp runner).

    The application's :class:`Runtime` (state, stats, fault queue) is ``app[RUNTIME]``.
    """
    config = config or EmulatorConfig()
    # The create handler reads and limits its own body; this only bounds `request.read()` elsewhere.
    app = web.Application(middlewares=[_edge], client_max_size=_rules.MAX_BODY_BYTES + 1024)
    app[RUNTIME] = Runtime(config)
    prefix = config.path_prefix
    for kind in KINDS.values():  # every task kind's create, through the seam
        app.router.add_post(f"{prefix}{kind.path}", _create_for(kind), name=f"create:{kind.endpoint}")
    # The older names still answer, as the current ones (template2video: the official MCP server's
    # path, §6, §22.8); their requests count as creates.
    for legacy, current in LEGACY_ENDPOINTS.items():
        app.router.add_post(f"{prefix}/ent/v2/{legacy}", _create_for(KINDS[current]), name=f"create:{legacy}")
    for endpoint in sorted(SYNC_ENDPOINTS):
        app.router.add_post(f"{prefix}/ent/v2/{endpoint}", _sync_for(endpoint), name=endpoint)
    app.router.add_get(f"{prefix}/ent/v2/tasks/{{task_id}}/creations", _get, name="get")
    app.router.add_post(f"{prefix}/ent/v2/tasks/{{task_id}}/cancel", _cancel, name="cancel")
    app.router.add_get(f"{prefix}/ent/v2/tasks", _list, name="list")
    app.router.add_get(f"{prefix}/ent/v2/credits", _credits, name="credits")
    app.router.add_get(f"{prefix}/files/{{task_id}}/{{filename}}", _download, name="download")
    if config.stats_endpoint:
        app.router.add_get(STATS_PATH, _stats, name=_STATS_ROUTE)
    app.cleanup_ctx.append(_background)
    return app
