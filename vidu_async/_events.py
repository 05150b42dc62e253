"""Typed events for users who want metrics: requests, retries, throttling, state changes.

Pass callables as ``ViduClient(hooks=[...])``; each is called synchronously with every event, so keep
it quick (count, log, or hand it to a queue). A hook that raises is logged and otherwise ignored: the
engine never fails because of a metrics bug.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Final, TypeAlias

import attrs

from ._models import TaskState

__all__ = ["Event", "Hook", "RequestEvent", "RetryEvent", "StateChangeEvent", "ThrottleEvent", "emit"]

logger: Final = logging.getLogger("vidu_async")


@attrs.frozen(kw_only=True)
class RequestEvent:
    """One HTTP attempt finished (answered or not).

    Attributes:
        endpoint: ``create``, ``get``, ``cancel``, ``list`` or ``credits``.
        method: The HTTP method.
        path: The request path.
        status: The HTTP status, or ``None`` when no answer came back.
        elapsed: Seconds the attempt took.
        error: The error's one-line description, when it failed.
    """

    endpoint: str
    method: str
    path: str
    status: int | None
    elapsed: float
    error: str | None = None


@attrs.frozen(kw_only=True)
class RetryEvent:
    """An attempt failed and the call will be tried again after ``delay`` seconds."""

    endpoint: str
    attempt: int
    delay: float
    failure: str
    error: str


@attrs.frozen(kw_only=True)
class ThrottleEvent:
    """The service pushed back: ``kind`` is ``rate`` (429 TooManyRequests/SystemThrottling, the
    request rate was lowered to ``rate`` per second) or ``quota`` (429 QuotaExceeded, submission paused)."""

    kind: str
    rate: float | None = None
    retry_after: float | None = None


@attrs.frozen(kw_only=True)
class StateChangeEvent:
    """A watched task was seen in a new state."""

    task_id: str
    old: TaskState | None
    new: TaskState
    raw_state: str


Event: TypeAlias = RequestEvent | RetryEvent | ThrottleEvent | StateChangeEvent
Hook: TypeAlias = Callable[[Event], object]


def emit(hooks: Sequence[Hook], event: Event) -> None:
    """Call every hook with ``event``; a hook's failure is logged, never raised."""
    for hook in hooks:
        try:
            hook(event)
        except Exception:
            logger.exception("a vidu_async hook raised on %s; ignored", type(event).__name__)
