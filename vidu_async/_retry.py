"""Pure retry decisions: what a failure means, and how long to wait before the next try.

No clock and no sleeping here: the client asks :func:`classify` what a failure means and
:func:`next_delay` how long to wait, and does the waiting itself, bounded by the caller's deadline.
"""

from __future__ import annotations

import enum
import math
import os
import random
from typing import Final

from ._config import RetryPolicy
from .exceptions import (
    APIError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    TransportError,
)

__all__ = [
    "FINGERPRINT_PREFIX",
    "Failure",
    "RetryAfterHolds",
    "backoff",
    "classify",
    "new_fingerprint",
    "next_delay",
    "retry_after_of",
]

#: Fingerprints the SDK stamps in ``payload`` start with this, so they are easy to recognize.
FINGERPRINT_PREFIX: Final = "vidu-async:"

#: Reasons that mean "rejected before processing: ask again later".
_LATER_REASONS: Final = frozenset({"OperationInProcess"})
#: Statuses that say nothing about whether the request took effect.
_UNKNOWN_STATUSES: Final = frozenset({408, 499})


class Failure(enum.Enum):
    """What a failed attempt tells about the request."""

    #: The request never left: any call may be sent again.
    NOT_SENT = "not-sent"
    #: Rejected before processing because of request rate (429 TooManyRequests/SystemThrottling).
    THROTTLED = "throttled"
    #: Rejected before processing because the organization's slots are full (429 QuotaExceeded).
    QUOTA = "quota"
    #: Rejected before processing for another transient reason (``OperationInProcess``).
    LATER = "later"
    #: Sent, outcome unknown (timeout, dropped connection, 5xx): repeat only what is harmless to repeat.
    UNKNOWN = "unknown"
    #: Refused for a reason a retry cannot change (validation, auth, credits, not found...).
    FATAL = "fatal"


def classify(exc: BaseException) -> Failure:
    """What ``exc`` says about the request that raised it."""
    if isinstance(exc, TransportError):
        return Failure.UNKNOWN if exc.request_sent else Failure.NOT_SENT
    if isinstance(exc, QuotaExceededError):
        return Failure.QUOTA
    if isinstance(exc, RateLimitError):
        return Failure.THROTTLED
    if isinstance(exc, ServerError):
        return Failure.UNKNOWN
    if isinstance(exc, APIError):
        if exc.reason in _LATER_REASONS:
            return Failure.LATER
        if exc.status in _UNKNOWN_STATUSES:
            return Failure.UNKNOWN
    return Failure.FATAL


def backoff(policy: RetryPolicy, attempt: int, rng: random.Random) -> float:
    """The delay after failed attempt number ``attempt`` (1 = the first try), with jitter."""
    ceiling = min(policy.maximum, policy.initial * policy.multiplier ** max(0, attempt - 1))
    return ceiling * (1.0 - policy.jitter * rng.random())


def next_delay(
    policy: RetryPolicy, attempt: int, rng: random.Random, *, retry_after: float | None = None
) -> float:
    """How long to wait before the next try: the server's ``Retry-After`` when it gave one
    (at most ``policy.max_retry_after``), else the jittered backoff."""
    if retry_after is not None:
        return min(retry_after, policy.max_retry_after)
    return backoff(policy, attempt, rng)


def retry_after_of(exc: BaseException) -> float | None:
    """The ``Retry-After`` carried by ``exc``, if any."""
    return exc.retry_after if isinstance(exc, RateLimitError) else None


def new_fingerprint() -> str:
    """A fresh fingerprint for a create's ``payload``: how a create whose answer was lost is found
    again in the task list."""
    return FINGERPRINT_PREFIX + os.urandom(12).hex()  # what secrets.token_hex(12) does, in one call


class RetryAfterHolds:
    """The server's ``Retry-After`` as a promise the whole client keeps, not one call.

    A 429 ``TooManyRequests``/``SystemThrottling`` that says when to come back holds every API
    request until then (the poll scheduler's checks included); a 429 ``QuotaExceeded`` holds the
    creates. Each hold is capped by ``RetryPolicy.max_retry_after``, and a later, longer hold
    extends an earlier one, never shortens it. Pure: the caller passes the clock's reading.
    """

    __slots__ = ("_creates", "_every", "_policy")

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._every = -math.inf
        self._creates = -math.inf

    def record(self, exc: BaseException, now: float) -> float | None:
        """Keep the ``Retry-After`` of a refusal; returns when the hold it sets ends (``None``: none)."""
        retry_after = retry_after_of(exc)
        if retry_after is None:
            return None
        until = now + min(retry_after, self._policy.max_retry_after)
        if isinstance(exc, QuotaExceededError):
            self._creates = max(self._creates, until)
        else:
            self._every = max(self._every, until)
        return until

    def until(self, *, create: bool) -> float:
        """When a request may go out (a moment in the past when it may go now)."""
        return max(self._every, self._creates) if create else self._every
