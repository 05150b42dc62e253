"""``ViduClient``: wires configuration, media, the pure HTTP layer, the transport, the retry policy,
the two budgets and the poll scheduler together. Decisions live in the modules it calls."""

from __future__ import annotations

import logging
import math
import os
import random
import warnings
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, Self, TypeVar, overload
from urllib.parse import urlsplit

import anyio
import attrs

from . import _convert, _http, _validate, callbacks
from ._batch import Batch, BatchInput, JournalLike
from ._caller import Caller
from ._config import (
    DEFAULT_DOWNLOADS,
    DEFAULT_POLL,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUTS,
    GLOBAL_BASE_URL,
    DownloadPolicy,
    PollPolicy,
    RetryPolicy,
    Timeouts,
)
from ._download import Downloader
from ._events import Hook
from ._fleet import SharedBatch, is_postgres_dsn
from ._limits import RateLimiter, in_flight_limit
from ._models import (
    REQUEST_TYPES,
    ClonedVoice,
    CloneVoiceRequest,
    Credits,
    Media,
    PromptRequest,
    PromptSuggestions,
    Request,
    Speech,
    SpeechRequest,
    Task,
    TaskState,
)
from ._poll import Poller
from ._secret import Secret
from ._submit import Submitter
from ._transport import Transport
from .exceptions import (
    ClientClosedError,
    ClientNotOpenError,
    ConfigurationError,
    ConnectError,
    MissingAPIKeyError,
    TaskFailedError,
    ViduError,
)
from .journal import Journal, PostgresJournal

__all__ = ["ViduClient"]

logger: Final = logging.getLogger("vidu_async")

AuthScheme = Literal["Token", "Bearer"]
_AUTH_SCHEMES: Final = ("Token", "Bearer")
#: Organization concurrency assumed when ``GET /ent/v2/credits`` does not say (Vidu's default).
DEFAULT_CONCURRENCY: Final = 5
#: A remote cancel on the way out gets this long, seconds.
_CANCEL_TIME_BOX: Final = 10.0

if TYPE_CHECKING:
    import aiohttp


def _resolve_base_url(base_url: str | None) -> str:
    url = (base_url or os.environ.get("VIDU_BASE_URL") or GLOBAL_BASE_URL).strip().rstrip("/")
    if not _validate.is_http_url(url):
        raise ConfigurationError(f"base_url must be an http(s) URL such as {GLOBAL_BASE_URL!r}, got {url!r}")
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ConfigurationError(f"base_url must not carry a query or fragment, got {url!r}")
    return url


def _resolve_key(api_key: str | None) -> str:
    """The key passed, else ``$VIDU_API_KEY``, stripped and checked."""
    key = (api_key if api_key is not None else os.environ.get("VIDU_API_KEY", "")).strip()
    if not key:
        raise MissingAPIKeyError(
            "no API key: pass ViduClient(api_key=...) or set the VIDU_API_KEY environment variable"
        )
    if any(c.isspace() for c in key):
        raise ConfigurationError("the API key contains whitespace; paste the key alone, without 'Token '")
    return key


def _deadline(timeout: float | None) -> float:
    return math.inf if timeout is None else anyio.current_time() + timeout


class ViduClient:
    """An asyncio client for Vidu's ``reference2video`` API.

    Use it as an async context manager; waiting for tasks (``watch``, ``wait``, ``generate``,
    ``generate_many``) needs it, since the client's one poll scheduler runs inside::

        async with ViduClient() as client:
            task = await client.generate(request)

    Args:
        api_key: The API key; defaults to ``VIDU_API_KEY``. Never shown in a repr, log or error.
        base_url: The service root; defaults to ``VIDU_BASE_URL``, else ``GLOBAL_BASE_URL``.
            Reseller gateways add a path prefix (``https://gateway.example/vidu``).
        auth_scheme: ``"Token"`` (Vidu's documented scheme) or ``"Bearer"`` (reseller gateways).
        max_in_flight: Batch tasks submitted and not finished at once. ``None`` sizes it from
            ``GET /ent/v2/credits`` (the organization's concurrency plus ``queue_allowance``, so the
            service always has our next task waiting), falling back to 5 plus the allowance.
        queue_allowance: Tasks kept waiting in Vidu's queue beyond the concurrency (``None``: the
            concurrency, at least 2 and at most 10, or a tenth of it when that is more: the tasks
            that end during one poll interval).
        requests_per_second: A fixed request-rate ceiling for every call (``None``: none until the
            service throttles, then adaptive).
        timeouts: Connect, read and per-call limits.
        retry: When and how failed calls are tried again.
        poll: How the poll scheduler checks on tasks.
        downloads: Size bound, stall timeout and concurrency of downloads.
        session: An ``aiohttp.ClientSession`` of yours to send through; the client does not close it.
        hooks: Callables receiving typed events (requests, retries, throttling, state changes).
        callback_url: Your public URL for Vidu's callbacks, sent with every create that has none.
            Tasks then complete by callback (verified, confirmed with one GET) and are polled only
            at ``PollPolicy.callback_interval`` as a safety net. Receive them with
            :meth:`serve_callbacks`, or verify them in your own server and pass them to :meth:`notify`.
        journal: The default journal of :meth:`generate_many` (a :class:`Journal` or a SQLite path).

    Raises:
        ConfigurationError: no API key, an unknown auth scheme or a malformed base URL.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        auth_scheme: AuthScheme = "Token",
        max_in_flight: int | None = None,
        queue_allowance: int | None = None,
        requests_per_second: float | None = None,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        retry: RetryPolicy = DEFAULT_RETRY,
        poll: PollPolicy = DEFAULT_POLL,
        downloads: DownloadPolicy = DEFAULT_DOWNLOADS,
        session: aiohttp.ClientSession | None = None,
        hooks: Sequence[Hook] = (),
        callback_url: str | None = None,
        journal: JournalLike | None = None,
    ) -> None:
        if auth_scheme not in _AUTH_SCHEMES:
            raise ConfigurationError(f"auth_scheme must be 'Token' or 'Bearer', got {auth_scheme!r}")
        if max_in_flight is not None and max_in_flight < 1:
            raise ConfigurationError(f"max_in_flight must be at least 1, got {max_in_flight}")
        if queue_allowance is not None and queue_allowance < 0:
            raise ConfigurationError(f"queue_allowance must not be negative, got {queue_allowance}")
        self.base_url: Final = _resolve_base_url(base_url)
        self.auth_scheme: Final = auth_scheme
        self.timeouts: Final = timeouts
        self.retry: Final = retry
        self.poll: Final = poll
        self.downloads: Final = downloads
        self.max_in_flight: Final = max_in_flight
        self.queue_allowance: Final = queue_allowance
        if callback_url is not None and not _validate.is_http_url(callback_url):
            raise ConfigurationError(f"callback_url must be an http(s) URL, got {callback_url!r}")
        self.callback_url: Final = callback_url
        self.journal: Final = journal
        self._key = Secret(_resolve_key(api_key))
        self._transport = Transport(
            base_url=self.base_url,
            authorization=Secret(f"{auth_scheme} {self._key.reveal()}"),
            timeouts=timeouts,
            session=session,
        )
        rng = random.Random()
        self._caller = Caller(
            self._transport, retry=retry, limiter=RateLimiter(requests_per_second), hooks=hooks, rng=rng
        )
        self._poller = Poller(self._caller, poll, rng=rng)
        self._submitter = Submitter(self._caller, callback_url=callback_url)
        self._downloader = Downloader(self._transport, self.get_task, policy=downloads)
        self._task_group: anyio.abc.TaskGroup | None = None
        self._concurrency: int | None = None

    def __repr__(self) -> str:
        state = " closed" if self._transport.closed else ""
        return f"<ViduClient {self.base_url} auth={self.auth_scheme}{state}>"

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._transport.closed:
            raise ClientClosedError("the client is closed; make a new ViduClient")
        if self._task_group is not None:
            raise RuntimeError("this ViduClient is already open")
        group = anyio.create_task_group()
        await group.__aenter__()
        self._task_group = group
        group.start_soon(self._poller.run, name="vidu_async poll scheduler")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the poll scheduler and close the client's own HTTP session. Idempotent; later
        calls raise ``ClientClosedError``."""
        group, self._task_group = self._task_group, None
        try:
            if group is not None:
                group.cancel_scope.cancel()
                await group.__aexit__(None, None, None)
        finally:
            with anyio.CancelScope(shield=True):
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

    def _require_open(self) -> Poller:
        if self._transport.closed:
            raise ClientClosedError("the client is closed")
        if self._task_group is None:
            raise ClientNotOpenError(
                "waiting for tasks needs the client's poll scheduler: use 'async with ViduClient() as client:'"
            )
        return self._poller

    # --- calls -------------------------------------------------------------------------------

    async def submit(self, request: Request | Mapping[str, Any], *, timeout: float | None = None) -> Task:
        """Create a task. Local files in the request are read, checked and encoded off the event loop.

        Failures are retried as :class:`RetryPolicy` says. When a create's outcome is unknown (no
        answer, 5xx), the task list is searched for the fingerprint stamped in ``payload`` (when the
        request had none): a task found is adopted, a task proven absent is submitted again, and
        otherwise :class:`SubmitOutcomeUnknownError` is raised rather than risk paying twice.

        Args:
            request: A request of any kind (:class:`Reference2Video`, :class:`Text2Video`,
                :class:`Template`, :class:`Text2Audio`...), or a body in Vidu's own JSON shape
                (validated the same way): a ``reference2video`` body, or any kind's body naming
                its endpoint in ``"endpoint"``.
            timeout: Seconds for the whole submission, retries included (``None``: attempts bound it).

        Returns:
            The created task (usually in state ``created``).

        Raises:
            RequestValidationError: the request breaks a documented rule; nothing was sent.
            APIError: Vidu refused it (a subclass per reason).
            SubmitOutcomeUnknownError: the create may or may not have made a task.
            TransportError: the service could not be reached, and nothing was sent.
        """
        task, _ = await self._submitter.submit(request, deadline=_deadline(timeout))
        return task

    async def get_task(self, task_id: str) -> Task:
        """Read a task (``GET /ent/v2/tasks/{id}/creations``)."""
        call = _http.build_get_task(task_id)
        return await self._caller.call(call, lambda c, r: _http.read_task(c, r, task_id=task_id))

    async def cancel(self, task_id: str) -> None:
        """Cancel a task that has not started processing (Vidu refuses once it is scheduled).

        Raises:
            BadRequestError: the task can no longer be cancelled.
            NotFoundError: no such task.
        """
        await self._caller.call(_http.build_cancel(task_id), _http.read_json)

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
        if limit is not None:
            if limit <= 0:
                return
            page_size = min(page_size, limit)  # no need to fetch rows we will not yield
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
            tasks, next_token = await self._caller.call(call, _http.read_task_list)
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
        return await self._caller.call(_http.build_credits(show_detail=show_detail), _http.read_credits)

    # --- waiting -----------------------------------------------------------------------------

    async def watch(self, task_id: str, *, known: Task | None = None) -> AsyncIterator[Task]:
        """Every state of the task as the scheduler sees it change, in order, ending after a terminal one.

        The first item is the task as it is now. States are de-duplicated; a state the SDK does not
        know (``TaskState.UNKNOWN``) is reported and watched on, never an error.

        Args:
            task_id: The task.
            known: The task as you last read it (saves the first request).

        Raises:
            NotFoundError: no such task.
            ClientNotOpenError: outside ``async with ViduClient()``.
        """
        poller = self._require_open()
        subscription = poller.subscribe(
            task_id,
            known=known,
            off_peak=bool(known and known.off_peak),
            callback=self.callback_url is not None,
        )
        try:
            async for update in subscription.updates:
                if isinstance(update, ViduError):
                    raise update
                yield update
                if update.is_terminal:
                    return
        finally:
            subscription.close()

    async def wait(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        cancel_remote: bool = False,
        known: Task | None = None,
    ) -> Task:
        """Wait until the task finishes.

        Args:
            task_id: The task.
            timeout: Seconds to wait; ``None`` takes ``PollPolicy.timeout`` (48 h for off-peak tasks);
                ``math.inf`` waits for ever.
            cancel_remote: On timeout or cancellation, also ask Vidu to cancel the task (shielded,
                time-boxed; Vidu only cancels tasks that have not started).
            known: The task as you last read it (saves the first request; tells if it is off-peak).

        Returns:
            The task in state ``success``.

        Raises:
            TaskFailedError: the task ended ``failed`` (``err_code`` says why).
            WaitTimeoutError: not finished by the deadline (``last_task`` has what was last seen).
            ResponseValidationError: the task's answers stayed unreadable
                (``PollPolicy.unreadable_attempts`` reads in a row).
        """
        limit = self.poll.timeout_for(timeout, known.off_peak if known is not None else None)
        deadline = _deadline(limit)
        return await self._wait(task_id, deadline=deadline, cancel_remote=cancel_remote, known=known)

    async def _wait(
        self,
        task_id: str,
        *,
        deadline: float,
        cancel_remote: bool,
        known: Task | None,
        callback: bool | None = None,
    ) -> Task:
        self._require_open()
        return await self._poller.wait(
            task_id,
            deadline=deadline,
            known=known,
            callback=self.callback_url is not None if callback is None else callback,
            on_give_up=(lambda: self._cancel_quietly(task_id)) if cancel_remote else None,
        )

    async def _cancel_quietly(self, task_id: str) -> None:
        """Ask Vidu to cancel, shielded from the caller's cancellation and time-boxed."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CANCEL_TIME_BOX):
            try:
                await self.cancel(task_id)
                logger.info("cancelled task %s on the way out", task_id)
            except ViduError as exc:
                logger.info("could not cancel task %s on the way out: %s", task_id, exc)

    async def generate(
        self,
        request: Request | Mapping[str, Any],
        *,
        timeout: float | None = None,
        cancel_remote: bool = False,
    ) -> Task:
        """Submit a task and wait for it: the one call for "give me this video".

        Args:
            request: The request (of any kind, or a body in Vidu's JSON shape, as for :meth:`submit`).
            timeout: Seconds for the whole thing, computed once (``None``: ``PollPolicy.timeout``,
                48 h for off-peak requests).
            cancel_remote: On timeout or cancellation, ask Vidu to cancel the task.

        Raises:
            RequestValidationError, APIError, SubmitOutcomeUnknownError: from the submission.
            TaskFailedError, WaitTimeoutError, ResponseValidationError: from the wait.
        """
        self._require_open()
        if not isinstance(request, REQUEST_TYPES):
            request = _convert.request_from_body(request)
        deadline = _deadline(self.poll.timeout_for(timeout, request.is_off_peak))
        task, _ = await self._submitter.submit(request, deadline=deadline)
        callback = request.callback_url is not None or self.callback_url is not None
        return await self._wait(
            task.id, deadline=deadline, cancel_remote=cancel_remote, known=task, callback=callback
        )

    # --- the synchronous endpoints ----------------------------------------------------------

    async def text_to_speech(
        self,
        text: str,
        *,
        voice_id: str,
        speed: float | None = None,
        volume: int | None = None,
        pitch: int | None = None,
        emotion: str | None = None,
        pronunciations: Sequence[str] | None = None,
        payload: str | None = None,
        timeout: float | None = None,
    ) -> Speech:
        """Read ``text`` aloud (``POST /ent/v2/audio-tts``): the audio's URL, usually at once.

        Args:
            text: Under 10,000 characters; a new line is a paragraph, ``<#0.5#>`` a pause.
            voice_id: A voice of Vidu's list, or one made by :meth:`clone_voice`.
            speed: 0.5-2 (1 is normal).
            volume: 0-10 (0 is normal).
            pitch: -12 to 12 semitones (0 is the voice's own).
            emotion: ``happy``, ``sad``, ``angry``, ``fearful``, ``disgusted``, ``surprised`` or
                ``calm`` (chosen from the text when left out).
            pronunciations: Overrides such as ``"omg/oh my god"`` (``pronunciation_dict_tone``).
            payload: Your own text, echoed back.
            timeout: Seconds for the whole call (``None``: ``PollPolicy.timeout``).

        Returns:
            The speech; ``file_url`` is the audio (its link expires like creations' links). Should Vidu answer before
            the audio is ready, the task is waited for and its creation's URL taken.

        Raises:
            RequestValidationError: a documented rule is broken; nothing was sent.
            APIError: Vidu refused it.
            SubmitOutcomeUnknownError: the call bills, and its answer was lost: it is not sent
                again (it may have been charged).
        """
        request = SpeechRequest(
            text=text,
            voice_setting_voice_id=voice_id,
            voice_setting_speed=speed,
            voice_setting_volume=volume,
            voice_setting_pitch=pitch,
            voice_setting_emotion=emotion,
            pronunciation_dict_tone=None if pronunciations is None else tuple(pronunciations),
            payload=payload,
        )
        return await self._audio_call(request, Speech, "file_url", timeout)

    async def clone_voice(
        self,
        audio: Media,
        *,
        voice_id: str,
        text: str,
        prompt_audio: Media | None = None,
        prompt_text: str | None = None,
        payload: str | None = None,
        timeout: float | None = None,
    ) -> ClonedVoice:
        """Clone a voice from a sample (``POST /ent/v2/audio-clone``) and read ``text`` with it.

        Args:
            audio: The sample (``audio_url``): 10 s to 5 min of MP3, M4A or WAV, a URL, a
                ``Path`` or ``bytes``.
            voice_id: The new voice's name, your choice: a letter first, then letters, digits,
                ``-`` and ``_``; unique in your organization.
            text: A preview of at most 1000 characters, read with the new voice.
            prompt_audio: A short clip (under 8 s) that improves the likeness.
            prompt_text: What ``prompt_audio`` says, ending with punctuation.
            payload: Your own text, echoed back.
            timeout: Seconds for the whole call (``None``: ``PollPolicy.timeout``).

        Returns:
            The voice (``voice_id`` for :meth:`text_to_speech` and :class:`LipSync`) and the
            preview's URL (``demo_audio``); a clone still queueing is waited for.

        Raises:
            RequestValidationError, APIError, SubmitOutcomeUnknownError: as :meth:`text_to_speech`.
        """
        request = CloneVoiceRequest(
            audio_url=audio,
            voice_id=voice_id,
            prompt_audio_url=prompt_audio,
            prompt_text=prompt_text,
            text=text,
            payload=payload,
        )
        return await self._audio_call(request, ClonedVoice, "demo_audio", timeout)

    async def _audio_call(
        self,
        request: SpeechRequest | CloneVoiceRequest,
        cls: type[_Audio],
        url_field: str,
        timeout: float | None,
    ) -> _Audio:
        """A speech or a voice clone: the answer, or, when it came before its audio was ready (no
        URL in ``url_field``), the answer completed from the task once it finishes (§16.2, §17.2)."""
        deadline = _deadline(self.poll.timeout_for(timeout, None))
        self._require_open()
        answer = await self._submitter.call_sync(request, cls, deadline=deadline)
        if getattr(answer, url_field) or answer.state is TaskState.SUCCESS:
            return answer
        task = await self._wait(answer.task_id, deadline=deadline, cancel_remote=False, known=None)
        changes: dict[str, Any] = {"state": task.state, url_field: _first_url(task)}
        done: _Audio = attrs.evolve(answer, **changes)
        return done

    async def recommend_prompts(
        self,
        image: Media,
        *,
        types: Sequence[Literal["template", "img2video"]] = ("img2video", "template"),
        count: int | None = None,
        resolution: str | None = None,
        timeout: float | None = None,
    ) -> PromptSuggestions:
        """Ideas for animating ``image`` (``POST /ent/v2/img2video-prompt-recommendation``):
        prompts for :class:`Img2Video`, and templates with a ready prompt for :class:`Template`.

        Args:
            image: The image: a URL, a data URI, a ``Path`` or ``bytes``.
            types: Which ideas: ``img2video`` prompts, ``template`` suggestions, or both.
            count: Ideas per type, 1-10 (Vidu's default 5).
            resolution: ``360p`` or ``720p``, where templates differ by resolution.
            timeout: Seconds for the call, retries included.

        Raises:
            RequestValidationError: a documented rule is broken; nothing was sent.
            APIError: Vidu refused it.
        """
        request = PromptRequest(images=(image,), type=tuple(types), count=count, resolution=resolution)
        self._require_open()
        return await self._submitter.call_sync(request, PromptSuggestions, deadline=_deadline(timeout))

    # --- callbacks ---------------------------------------------------------------------------

    def notify(self, task: Task) -> bool:
        """Tell the client that a verified callback reported ``task``.

        The body is a hint (Vidu does not sign it): a finished task is read with one GET before any
        watcher hears of it; unfinished states are ignored. Use it from your own web server after
        :func:`vidu_async.callbacks.verify_request`; :meth:`serve_callbacks` does it for you.
        Repeats cost nothing (a finish already being read or read is ignored), so a receiver in
        front of it need not de-duplicate; one that does may drop a genuine finish after a lie.
        A body without an id (``task.id == ""``) is matched to its task by its ``payload``.

        Returns:
            Whether the update names a task this client watches.
        """
        return self._poller.hint(task)

    def _on_callback(self, task: Task) -> None:
        """The receiver's hand-over: an id-less body that matches no watched task is refused."""
        if not self.notify(task) and not task.id:
            raise callbacks.UnmatchedCallback(task.payload)

    @asynccontextmanager
    async def serve_callbacks(
        self, host: str = "0.0.0.0", port: int = 8080, path: str | None = None
    ) -> AsyncIterator[callbacks.CallbackReceiver]:
        """Receive Vidu's callbacks for this client on ``host:port`` while the block runs.

        Each callback is verified against the client's key and ``callback_url`` (the registered URL,
        not the Host it arrived with), answered at once, and handed to :meth:`notify`, which
        de-duplicates by itself: a finish that a GET refuted (a signed lie) may come again, genuine.

        Args:
            host: The interface to listen on.
            port: The port (the one your public ``callback_url`` reaches).
            path: The route; defaults to the path of ``callback_url``.

        Yields:
            The receiver (its ``stats`` count accepted and rejected callbacks).

        Raises:
            ConfigurationError: the client has no ``callback_url``.
        """
        if self.callback_url is None:
            raise ConfigurationError("serve_callbacks needs ViduClient(callback_url=...): the URL Vidu calls")
        receiver = callbacks.CallbackReceiver(
            api_key=self._key.reveal(),
            callback_url=self.callback_url,
            on_update=self._on_callback,
            dedupe_size=0,
        )
        async with callbacks.serve(receiver, host=host, port=port, path=path):
            yield receiver

    # --- downloads ---------------------------------------------------------------------------

    async def download(
        self,
        task: Task | str,
        dest: str | os.PathLike[str],
        *,
        cover: bool = False,
        watermarked: bool = False,
        output: Literal["video", "image", "audio"] | None = None,
    ) -> list[Path]:
        """Save every creation (video, image or audio) of a finished task into the folder ``dest``.

        Files are named ``{task_id}-{creation_id}`` and the media's suffix: ``.mp4`` for a video
        (``-cover.jpg``, ``-wm.mp4`` when asked); for an image or audio the link's own suffix, else
        its ``Content-Type``, else what the bytes are (``.png``, ``.jpg``, ``.mp3``, ``.wav``...).
        Each is streamed to a ``.part`` file within :class:`DownloadPolicy`'s size bound and stall timeout,
        checked (its length, its media type, a whole file by its own structure) and renamed into
        place. A whole file already there is kept without a request; a missing or damaged one is
        fetched again, a ``.part`` is resumed, and an expired link is replaced by a fresh one from
        the task.

        Args:
            task: The task (or its id: it is read first).
            dest: The folder (created if needed).
            cover: Also save each cover image.
            watermarked: Also save each watermarked video, when the task has one.
            output: The media the task's kind makes, when known (``kind_of``: a stricter check);
                ``None`` tells it from what is served.

        Returns:
            The paths, in creation order.

        Raises:
            TaskFailedError: the task failed (there is nothing to save).
            ValueError: the task has not finished.
            DownloadError: a file could not be saved whole.
        """
        if isinstance(task, str):
            task = await self.get_task(task)
        if task.state is TaskState.FAILED:
            raise TaskFailedError(task)
        if task.state is not TaskState.SUCCESS:
            raise ValueError(
                f"task {task.id} is {task.raw_state or task.state.value}: nothing to download yet"
            )
        return await self._downloader.download(
            task, dest, cover=cover, watermarked=watermarked, output=output
        )

    # --- batches -----------------------------------------------------------------------------

    async def in_flight_limit(self) -> int:
        """The batch in-flight limit: ``max_in_flight``, or the organization's concurrency (read once
        from ``GET /ent/v2/credits``, else 5) plus the queue allowance."""
        if self.max_in_flight is not None:
            return self.max_in_flight
        if self._concurrency is None:
            try:
                credits = await self.get_credits()
                self._concurrency = credits.concurrency_limit or DEFAULT_CONCURRENCY
            except ConnectError:
                raise  # the service cannot be reached at all: no create could be sent either
            except ViduError as exc:
                logger.info(
                    "could not read the concurrency limit (%s); assuming %d", exc, DEFAULT_CONCURRENCY
                )
                self._concurrency = DEFAULT_CONCURRENCY
        return in_flight_limit(self._concurrency, self.queue_allowance)

    @overload
    def generate_many(  # type: ignore[overload-overlap]  # a PostgresJournal (also a Journal) picks this one
        self,
        requests: BatchInput,
        *,
        max_in_flight: int | None = None,
        fail_fast: bool = False,
        timeout: float | None = None,
        max_credits: int | None = None,
        journal: PostgresJournal,
        input_id: str | None = None,
        download_to: str | os.PathLike[str] | None = None,
    ) -> SharedBatch: ...

    @overload
    def generate_many(
        self,
        requests: BatchInput,
        *,
        max_in_flight: int | None = None,
        fail_fast: bool = False,
        timeout: float | None = None,
        max_credits: int | None = None,
        journal: str,
        input_id: str | None = None,
        download_to: str | os.PathLike[str] | None = None,
    ) -> Batch | SharedBatch: ...

    @overload
    def generate_many(
        self,
        requests: BatchInput,
        *,
        max_in_flight: int | None = None,
        fail_fast: bool = False,
        timeout: float | None = None,
        max_credits: int | None = None,
        journal: Journal | os.PathLike[str] | None = None,
        input_id: str | None = None,
        download_to: str | os.PathLike[str] | None = None,
    ) -> Batch: ...

    def generate_many(
        self,
        requests: BatchInput,
        *,
        max_in_flight: int | None = None,
        fail_fast: bool = False,
        timeout: float | None = None,
        max_credits: int | None = None,
        journal: JournalLike | None = None,
        input_id: str | None = None,
        download_to: str | os.PathLike[str] | None = None,
    ) -> Batch | SharedBatch:
        """Generate many videos: submit under the in-flight limit, yield results as tasks finish.

        Use it as ``async with client.generate_many(requests) as results: async for result in results:``.
        Input is consumed lazily (a sync or async iterable of requests of any kinds, mixed,
        Vidu-shaped mappings (``"endpoint"`` names a mapping's kind), or ``(key, request)`` pairs), so a million-line file streams in flat memory.
        One item's failure is its own :class:`BatchResult` unless ``fail_fast``.

        With a PostgreSQL journal (a :class:`PostgresJournal` you opened, or a DSN starting with
        ``postgresql://`` or ``postgres://``) the batch is shared: any number of processes on any
        number of machines run the same call with the same ``input_id`` and split the work. The
        first loads the input (the others do not read theirs), the organization's in-flight limit
        is kept as slots in the database, each item is claimed by one worker and created once, a
        worker that dies has its items adopted by the others (its tasks watched again, its bare
        intents looked up by fingerprint, never sent blindly), and each worker yields the items it
        finished, staying until every item is finished. Run again after the batch finished, it
        yields every item's stored result (fetching files again with ``download_to``) and
        creates nothing. A lost lease stops the worker's sends and raises ``LeaseLostError``.

        Args:
            requests: The requests.
            max_in_flight: Tasks submitted and not finished at once (default: :meth:`in_flight_limit`);
                with a shared batch, the organization's slots (give every worker the same).
            fail_fast: Stop everything at the first failure (with a shared batch: this worker).
            timeout: Seconds each item may take from submission to finish (default: ``PollPolicy.timeout``,
                48 h for off-peak requests).
            max_credits: A credit budget: a create is sent only while the credits charged so far,
                those of creates in flight and the price of the dearest task the batch has paid for
                stay within it (the first create finds the price on its own). The batch then
                overspends by at most what one task costs beyond the dearest before it. The items
                not submitted are reported with :class:`BudgetExceededError`. Not available with
                a shared batch.
            journal: A :class:`Journal`, the path of a SQLite journal, or a PostgreSQL journal
                (a :class:`PostgresJournal` or a ``postgresql://`` DSN: a shared batch) (default:
                the client's ``journal``). A re-run of the same input with the same journal skips
                finished items, re-attaches to running ones and bills nothing twice.
            input_id: A name for the input (e.g. the JSONL file's path): a journal written for
                another input is refused. Required with a PostgreSQL journal, where it names the
                batch the workers share (the same on every machine: the job file's sha256, say).
            download_to: A folder to save each successful item's videos into before its result
                is yielded (``BatchResult.files``).

        Raises:
            ValueError: A PostgreSQL journal without ``input_id``, or with ``max_credits``.
        """
        self._require_open()
        chosen = journal if journal is not None else self.journal
        if isinstance(chosen, PostgresJournal) or is_postgres_dsn(chosen):
            if not input_id:
                raise ValueError(
                    "generate_many with a PostgreSQL journal needs input_id=: the name of the batch"
                    " every worker shares (the same on every machine, e.g. the job file's sha256)"
                )
            if max_credits is not None:
                raise ValueError("max_credits is not available with a PostgreSQL journal (a shared batch)")
            assert isinstance(chosen, PostgresJournal | str)
            return SharedBatch(
                requests,
                submitter=self._submitter,
                poller=self._poller,
                downloader=self._downloader,
                size=self.in_flight_limit,
                poll=self.poll,
                callbacks=self.callback_url is not None,
                max_in_flight=max_in_flight,
                fail_fast=fail_fast,
                timeout=timeout,
                journal=chosen,
                input_id=input_id,
                download_to=download_to,
            )
        return Batch(
            requests,
            submitter=self._submitter,
            poller=self._poller,
            downloader=self._downloader,
            size=self.in_flight_limit,
            poll=self.poll,
            callbacks=self.callback_url is not None,
            max_in_flight=max_in_flight,
            fail_fast=fail_fast,
            timeout=timeout,
            max_credits=max_credits,
            journal=chosen,
            input_id=input_id,
            download_to=download_to,
        )


#: The result of a call that makes audio.
_Audio = TypeVar("_Audio", Speech, ClonedVoice)


def _first_url(task: Task) -> str:
    """The URL of a task's first creation ("" when it has none)."""
    return next((c.url for c in task.creations if c.url), "")
