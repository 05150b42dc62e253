"""One attempt, and the one retry layer: every API request of a client goes through a :class:`Caller`.

Creates, task reads, lists, cancels, credits and the poll scheduler's checks all pass here, so
three promises are kept in one place:

- the request-rate budget (a token bucket that throttling lowers and success slowly recovers),
- the server's ``Retry-After``, kept by the whole client: until it has passed, no request it
  covers goes out (:class:`~vidu_async._retry.RetryAfterHolds`), whichever call got the 429,
- what a retry may cost (:func:`~vidu_async._retry.classify`): a call that never left is sent
  again, one rejected before processing after its wait, one whose outcome is unknown only when
  repeating it is harmless (a create is handed to its ``on_unknown`` to reconcile).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, TypeVar

import anyio
import attrs

from . import _http, _retry
from ._config import RetryPolicy
from ._events import Hook, RequestEvent, RetryEvent, ThrottleEvent, emit
from ._limits import RateLimiter
from ._transport import Transport
from .exceptions import APIError, RequestTimeoutError, TransportError, ViduError

__all__ = ["MIN_ATTEMPT_TIME", "Absent", "Caller"]

logger: Final = logging.getLogger("vidu_async")

T = TypeVar("T")

#: A retry is not started with less of the caller's deadline left than this, seconds: an attempt
#: cut short would only turn a clear error into an unknown outcome.
MIN_ATTEMPT_TIME: Final = 0.5


@attrs.frozen
class Absent:
    """Reconciliation proved that a create made no task: sending it again cannot duplicate one."""


class Caller:
    """Sends API requests for one client: the budgets, the holds, the retries.

    Args:
        transport: The client's transport.
        retry: When and how often a call is tried again.
        limiter: The client's request-rate budget.
        hooks: Receive a :class:`RequestEvent` per attempt, :class:`RetryEvent` per retry and
            :class:`ThrottleEvent` per 429.
        rng: Draws the backoff jitter.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        retry: RetryPolicy,
        limiter: RateLimiter,
        hooks: Sequence[Hook] = (),
        rng: random.Random | None = None,
    ) -> None:
        self.transport = transport
        self.retry = retry
        self.limiter = limiter
        self.hooks: tuple[Hook, ...] = tuple(hooks)
        self.rng = rng or random.Random()
        self.holds = _retry.RetryAfterHolds(retry)

    def held_until(self, call: _http.ApiRequest) -> float:
        """When ``call`` may go out under the holds (a moment in the past: now)."""
        return self.holds.until(create=call.endpoint == "create")

    async def attempt(self, call: _http.ApiRequest, *, deadline: float = math.inf) -> _http.ApiResponse:
        """Send ``call`` once: after any ``Retry-After`` hold that covers it, through the
        request-rate budget, with its timeout capped by what is left of ``deadline``.

        Raises:
            RequestTimeoutError: (not sent) the deadline passes before the call may go out.
            TransportError: no usable answer.
        """
        while (held := self.held_until(call) - anyio.current_time()) > 0:
            if anyio.current_time() + held >= deadline:
                raise RequestTimeoutError(
                    "the deadline passes before the service's Retry-After does",
                    method=call.method, path=call.path, request_sent=False,
                )  # fmt: skip
            await anyio.sleep(held)  # a 429 meanwhile may extend the hold: look again
        await self.limiter.acquire()
        started = time.monotonic()
        budget = None if math.isinf(deadline) else deadline - anyio.current_time()
        try:
            if budget is not None and budget <= 0:
                raise RequestTimeoutError(
                    "the deadline passed before the call was sent",
                    method=call.method, path=call.path, request_sent=False,
                )  # fmt: skip
            response = await self.transport.send(call, budget=budget)
        except TransportError as exc:
            emit(self.hooks, RequestEvent(
                endpoint=call.endpoint, method=call.method, path=call.path, status=None,
                elapsed=time.monotonic() - started, error=str(exc),
            ))  # fmt: skip
            raise
        if response.status == 429:
            self._throttled(_http.error_for(call, response))
        elif response.status < 500:
            self.limiter.succeeded()
        if self.hooks:  # the event is built only for someone to hear it: this is every call's path
            emit(self.hooks, RequestEvent(
                endpoint=call.endpoint, method=call.method, path=call.path, status=response.status,
                elapsed=response.elapsed,
            ))  # fmt: skip
        return response

    def _throttled(self, error: APIError) -> None:
        """A 429: keep its Retry-After for every request it covers, and slow the request rate."""
        retry_after = _retry.retry_after_of(error)
        self.holds.record(error, anyio.current_time())
        if error.reason == "QuotaExceeded":
            emit(self.hooks, ThrottleEvent(kind="quota", retry_after=retry_after))
        else:
            self.limiter.throttled()
            emit(
                self.hooks, ThrottleEvent(kind="rate", rate=self.limiter.bucket.rate, retry_after=retry_after)
            )

    async def call(
        self,
        call: _http.ApiRequest,
        read: Callable[[_http.ApiRequest, _http.ApiResponse], T],
        *,
        deadline: float = math.inf,
        on_unknown: Callable[[ViduError], Awaitable[T | Absent]] | None = None,
        on_quota: Callable[[], Awaitable[None]] | None = None,
    ) -> T:
        """Send ``call`` until it succeeds, as the retry policy allows, within ``deadline``.

        Args:
            call: The request.
            read: Turns the answer into the result (or raises the mapped error).
            deadline: When to give up (``anyio.current_time()`` scale).
            on_unknown: For calls that must not be repeated blindly (create): decides what an
                unknown outcome means: a result to adopt, or :class:`Absent` to send again.
            on_quota: Waits out a 429 ``QuotaExceeded`` (a batch waits for one of its tasks to end).

        Raises:
            TransportError, APIError: the last failure, once retrying is not allowed or not worth it.
        """
        policy = self.retry
        attempt = throttled = 0
        while True:
            attempt += 1
            try:
                return read(call, await self.attempt(call, deadline=deadline))
            except (TransportError, APIError) as exc:
                exc.attempts = attempt
                failure = _retry.classify(exc)
                if failure is _retry.Failure.UNKNOWN and not call.idempotent:
                    if on_unknown is None:
                        raise
                    adopted = await on_unknown(exc)
                    if not isinstance(adopted, Absent):
                        return adopted
                    failure = _retry.Failure.NOT_SENT  # proven absent: sending again cannot duplicate
                if failure is _retry.Failure.FATAL:
                    raise
                if failure is _retry.Failure.THROTTLED:
                    throttled += 1
                    attempt -= 1
                    if throttled >= policy.throttle_attempts:
                        raise
                elif failure is _retry.Failure.QUOTA:
                    attempt -= 1
                elif attempt >= policy.attempts:
                    raise
                delay = _retry.next_delay(
                    policy, attempt + throttled, self.rng, retry_after=_retry.retry_after_of(exc)
                )
                waits_for_slot = failure is _retry.Failure.QUOTA and on_quota is not None
                if not waits_for_slot and anyio.current_time() + delay + MIN_ATTEMPT_TIME >= deadline:
                    raise
                logger.info(
                    "%s %s failed (%s, attempt %d); retrying %s: %s",
                    call.method, call.path, failure.value, attempt,
                    "when a slot frees" if waits_for_slot else f"in {delay:.2f}s", exc,
                )  # fmt: skip
                emit(self.hooks, RetryEvent(
                    endpoint=call.endpoint, attempt=attempt, delay=0.0 if waits_for_slot else delay,
                    failure=failure.value, error=str(exc),
                ))  # fmt: skip
                if waits_for_slot:
                    assert on_quota is not None
                    with anyio.move_on_after(deadline - anyio.current_time()) as scope:
                        await on_quota()
                    if scope.cancelled_caught:
                        raise
                else:
                    await anyio.sleep(delay)
