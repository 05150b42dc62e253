"""Create a task, and the one reconcile: how a create whose answer was lost is settled.

:meth:`Submitter.submit` serves ``ViduClient.submit``, ``generate`` and every batch item;
:meth:`Submitter.reconcile` serves the creates whose outcome the retry layer could not tell and
the intents a journal holds without a task id. There is one rule for both:

- The SDK stamps a fingerprint into ``payload`` (when the caller left it empty and the endpoint
  has the field), so the task a lost create made can be found again.
- The task list is searched from ``RetryPolicy.reconcile_window`` seconds before the create was
  sent (clock skew between us and the service included), at most ``reconcile_pages`` pages.
- Found: the task is adopted. Absent in two looks ``reconcile_settle`` seconds apart (a create
  still in flight at the service shows in the second): sending again cannot duplicate it.
  Undecidable (rows without ``payload``, too many pages, the list unreadable, the deadline):
  ``SubmitOutcomeUnknownError``, never a blind resend.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import anyio

from . import _convert, _http, _media, _retry
from ._caller import Absent, Caller
from ._kinds import kind_of
from ._models import REQUEST_TYPES, Request, Task
from .exceptions import APIError, SubmitOutcomeUnknownError, TransportError, ViduError

__all__ = ["Submitter"]

T = TypeVar("T")

logger: Final = logging.getLogger("vidu_async")

_MENTION: Final = re.compile(r"\[?@[^\s\]]+\]?")


def _echoes(row: Mapping[str, Any], request: Request) -> bool:
    """Whether a task-list row could be ``request``: the fields it echoes agree with it.

    A fingerprint is unique, but a caller's own ``payload`` need not be (a job type, a user id), so
    a row is only taken for ours when what it echoes of the request matches too. The service echoes
    subject mentions renumbered (``@Ming`` comes back as ``@1``), so mentions are compared as such.
    """
    model, prompt = row.get("model"), row.get("prompt")
    if model is not None and model != getattr(request, "model", model):
        return False
    mine = getattr(request, "prompt", None)
    return (
        not isinstance(prompt, str)
        or not isinstance(mine, str)
        or _MENTION.sub("@", prompt) == _MENTION.sub("@", mine)
    )


class Submitter:
    """Creates tasks through a :class:`Caller`, reconciling creates whose answer was lost.

    Args:
        caller: The client's caller (its retry policy says how to reconcile).
        callback_url: Sent with every create whose request has none.
    """

    def __init__(self, caller: Caller, *, callback_url: str | None = None) -> None:
        self.caller = caller
        self.callback_url = callback_url

    async def submit(
        self,
        request: Request | Mapping[str, Any],
        *,
        deadline: float = math.inf,
        fingerprint: str | None = None,
        on_quota: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[Task, int]:
        """Create the task of ``request``; returns it and the create attempts it took.

        Args:
            request: The request, or a body in Vidu's JSON shape (validated the same way).
            deadline: When to give up (``anyio.current_time()`` scale).
            fingerprint: The fingerprint to stamp into an empty ``payload`` (a journal recorded
                it before the create); a fresh one when ``None``.
            on_quota: Waits out a 429 ``QuotaExceeded``.

        Raises:
            RequestValidationError: the request breaks a documented rule; nothing was sent.
            APIError: Vidu refused it.
            SubmitOutcomeUnknownError: the create may or may not have made a task.
            TransportError: the service could not be reached, and nothing was sent.
        """
        if not isinstance(request, REQUEST_TYPES):
            request = _convert.request_from_body(request)
        kind = kind_of(request)
        overrides: dict[str, str] = {}
        if kind.payload and not request.payload:
            overrides["payload"] = fingerprint or _retry.new_fingerprint()
        if request.callback_url is None and self.callback_url is not None:
            overrides["callback_url"] = self.callback_url
        payload = request.payload or overrides.get("payload", "")
        call = await _media.prepare(
            request, lambda resolved: _http.build_create(resolved, overrides=overrides, path=kind.path)
        )
        sent_at = time.time()
        attempts = 0

        def read(c: _http.ApiRequest, r: _http.ApiResponse) -> Task:
            nonlocal attempts
            attempts += 1
            return _http.read_task(c, r)

        async def unknown(exc: ViduError) -> Task | Absent:
            if not kind.payload:
                raise SubmitOutcomeUnknownError(
                    "", f"{kind.endpoint} has no payload to find the task by; not sent again"
                ) from exc
            if not self.caller.retry.reconcile:
                raise SubmitOutcomeUnknownError(payload, "reconciliation is off") from exc
            logger.warning(
                "create outcome unknown (%s); looking for payload %r in the task list", exc, payload
            )
            try:
                return await self.reconcile(payload, request, sent_at=sent_at, deadline=deadline)
            except SubmitOutcomeUnknownError as undecided:
                raise undecided from exc

        try:
            task = await self.caller.call(
                call, read, deadline=deadline, on_unknown=unknown, on_quota=on_quota
            )
        except (TransportError, APIError) as exc:
            attempts = max(attempts, exc.attempts)
            raise
        return task, max(attempts, 1)

    async def call_sync(self, request: Any, result_type: type[T], *, deadline: float = math.inf) -> T:
        """Call a synchronous endpoint (``request.ENDPOINT``: ``audio-tts``, ``audio-clone``,
        ``img2video-prompt-recommendation``) and read its answer as ``result_type``.

        A billing call whose answer was lost is never sent again: nothing in the task list finds
        it, so its outcome is ``SubmitOutcomeUnknownError``.

        Raises:
            RequestValidationError: a local file cannot be used; nothing was sent.
            APIError: Vidu refused it.
            SubmitOutcomeUnknownError: a billing call may or may not have been made.
            TransportError: the service could not be reached, and nothing was sent.
        """
        endpoint: str = request.ENDPOINT
        call = await _media.prepare(request, lambda resolved: _http.build_sync(resolved, endpoint=endpoint))

        async def unknown(exc: ViduError) -> T | Absent:
            payload = getattr(request, "payload", None) or ""
            raise SubmitOutcomeUnknownError(
                payload, f"{endpoint} bills and cannot be looked up; not sent again"
            ) from exc

        return await self.caller.call(
            call, _http.sync_reader(result_type), deadline=deadline, on_unknown=unknown
        )

    async def reconcile(
        self, payload: str, request: Request, *, sent_at: float, deadline: float = math.inf
    ) -> Task | Absent:
        """Settle a create that may have made a task: the task it made, or :class:`Absent`.

        Args:
            payload: The ``payload`` the create carried (the SDK's fingerprint, or the caller's own).
            request: The request (a caller's own ``payload`` is matched with what rows echo of it).
            sent_at: When the create was (or may have been) sent, Unix time.
            deadline: When to give up (``anyio.current_time()`` scale).

        Raises:
            SubmitOutcomeUnknownError: the task list cannot tell.
        """
        policy = self.caller.retry
        if not payload:
            raise SubmitOutcomeUnknownError("", "the create carried no payload to find its task by")
        since = datetime.fromtimestamp(sent_at, UTC) - timedelta(seconds=policy.reconcile_window)
        for look in range(2):
            if look:
                await anyio.sleep(min(policy.reconcile_settle, max(0.0, deadline - anyio.current_time())))
            if anyio.current_time() >= deadline:
                raise SubmitOutcomeUnknownError(
                    payload, "the deadline passed before the task list could tell"
                )
            try:
                found = await self._find(payload, request, since, deadline)
            except ViduError as exc:
                raise SubmitOutcomeUnknownError(payload, f"the task list could not be read: {exc}") from exc
            if isinstance(found, Task):
                logger.info("adopted task %s, made by a create whose answer was lost", found.id)
                return found
            if found is None:
                raise SubmitOutcomeUnknownError(
                    payload, "the task list cannot tell (rows without payload, or too many)"
                )
        logger.info("no task carries payload %r: the create made none", payload)
        return Absent()

    async def _find(
        self, payload: str, request: Request, since: datetime, deadline: float
    ) -> Task | Absent | None:
        """One look: the task whose ``payload`` is ``payload``; :class:`Absent` when the list
        shows none; ``None`` when it cannot tell (rows without payload, too many pages)."""
        ours = payload.startswith(_retry.FINGERPRINT_PREFIX)
        token = ""
        for _ in range(self.caller.retry.reconcile_pages):
            call = _http.build_list(created_from=since, page_token=token)
            body = await self.caller.call(call, _http.read_json, deadline=deadline)
            rows = body.get("tasks") if isinstance(body, Mapping) else None
            if not isinstance(rows, list):
                return None
            matches = [
                row
                for row in rows
                if isinstance(row, Mapping)
                and row.get("payload") == payload
                and (ours or _echoes(row, request))
            ]
            if matches:
                if len(matches) > 1 and not ours:
                    return None  # the caller's own payload, used by several like tasks: cannot tell which
                return _convert.structure_task(matches[0])
            if any(isinstance(row, Mapping) and "payload" not in row for row in rows):
                return None
            token = body.get("next_page_token") or ""
            if not token:
                return Absent()
        return None
