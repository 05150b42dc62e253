"""The request-rate budget: a token bucket that backs off on throttling and recovers slowly (AIMD).

:class:`TokenBucket` is pure (time is passed in); :class:`RateLimiter` puts it on the monotonic clock.
The in-flight budget is a plain ``anyio.CapacityLimiter`` owned by the batch.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Final

import anyio

__all__ = [
    "RateLimiter",
    "TokenBucket",
    "in_flight_limit",
]

logger: Final = logging.getLogger("vidu_async")


class TokenBucket:
    """A token bucket whose rate can fall and recover.

    Each :meth:`reserve` takes the next token and says how long to wait for it; reservations are
    served in order, so waiting callers are never starved. With ``ceiling=None`` the bucket starts
    unlimited and only takes a rate when the service first says it is too fast.

    Args:
        ceiling: The configured rate, requests per second (``None``: no fixed limit).
        now: The current time, seconds.
        burst: How many requests may go at once after a quiet spell.
        floor: The lowest rate throttling may bring it to.
        decrease: The factor applied to the rate on throttling.
        recovery: Additive recovery, as a fraction of the throttled rate per second.
    """

    def __init__(
        self,
        ceiling: float | None,
        *,
        now: float,
        burst: float | None = None,
        floor: float = 0.5,
        decrease: float = 0.5,
        recovery: float = 0.1,
    ) -> None:
        self.ceiling = math.inf if ceiling is None else ceiling
        self.rate = self.ceiling
        self.floor = floor
        self.decrease = decrease
        self.recovery = recovery
        self.burst = burst if burst is not None else max(1.0, min(self.ceiling, 10.0))
        self._tokens = self.burst
        self._updated = now
        self._cooldown_until = -math.inf
        self._throttled_rate = self.rate
        # Recent throughput, so the first throttle of an unlimited bucket has a rate to halve.
        self._window_start = now
        self._window_count = 0
        self._observed = 0.0
        self._success_at = now

    @property
    def limited(self) -> bool:
        """Whether a rate applies now."""
        return math.isfinite(self.rate)

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        if self.limited:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)

    def _count(self, now: float) -> None:
        span = now - self._window_start
        if span >= 1.0:
            self._observed = self._window_count / span
            self._window_start = now
            self._window_count = 0
        self._window_count += 1

    def reserve(self, now: float) -> float:
        """Take a token; returns the seconds to wait before using it (0 when one is free)."""
        self._count(now)
        if not self.limited:
            return 0.0
        self._refill(now)
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def refund(self, now: float) -> None:
        """Give back a token reserved by a caller that gave up waiting."""
        if self.limited:
            self._refill(now)
            self._tokens = min(self.burst, self._tokens + 1.0)

    def throttled(self, now: float) -> None:
        """The service said "too fast": cut the rate (once per cool-down, however many 429s arrive)."""
        if now < self._cooldown_until:
            return
        base = (
            self.rate
            if self.limited
            else max(self._observed, self._window_count / max(now - self._window_start, 1e-3))
        )
        self._refill(now)
        self.rate = max(self.floor, base * self.decrease)
        self._throttled_rate = self.rate
        self.burst = max(1.0, min(self.burst, self.rate))
        self._tokens = min(self._tokens, 0.0)
        self._cooldown_until = now + max(1.0, 1.0 / self.rate)
        self._success_at = now  # recovery counts from here
        logger.warning("throttled by the service: request rate lowered to %.2f/s", self.rate)

    def succeeded(self, now: float) -> None:
        """A request went through: recover the rate a little, up to the ceiling."""
        if not self.limited or now < self._cooldown_until:
            self._success_at = now
            return
        self._refill(now)
        step = self.recovery * self._throttled_rate * max(0.0, now - self._success_at)
        self._success_at = now
        self.rate = min(self.ceiling, self.rate + step)
        if not math.isfinite(self.ceiling) and self.rate >= 4 * self._throttled_rate:
            self.rate = math.inf  # well past the rate that was throttled: back to unlimited
            logger.info("request rate recovered: no limit")


class RateLimiter:
    """A :class:`TokenBucket` on the monotonic clock (asyncio's loop clock, read without a
    backend lookup on every call), shared by every call of one client."""

    def __init__(self, requests_per_second: float | None) -> None:
        self._bucket: TokenBucket | None = None
        self._ceiling = requests_per_second

    @property
    def bucket(self) -> TokenBucket:
        """The bucket, made on first use."""
        if self._bucket is None:
            self._bucket = TokenBucket(self._ceiling, now=time.monotonic())
        return self._bucket

    async def acquire(self) -> None:
        """Wait for the next request slot."""
        bucket = self.bucket
        delay = bucket.reserve(time.monotonic())
        if delay <= 0:
            return
        try:
            await anyio.sleep(delay)
        except BaseException:
            bucket.refund(time.monotonic())
            raise

    def throttled(self) -> None:
        """Report a 429 ``TooManyRequests``/``SystemThrottling``."""
        self.bucket.throttled(time.monotonic())

    def succeeded(self) -> None:
        """Report a request that went through."""
        bucket = self.bucket
        if bucket.limited:  # unlimited, a success changes nothing (recovery counts from the throttle)
            bucket.succeeded(time.monotonic())


def in_flight_limit(concurrency: int, queue_allowance: int | None) -> int:
    """A batch's in-flight limit: the organization's concurrency plus tasks kept waiting in Vidu's
    queue (``queue_allowance``).

    ``None`` sizes the queue to cover the finishes of one poll interval, so that the service never
    idles between one of our tasks ending and the poll that notices: the concurrency, at least 2 and
    at most 10, or a tenth of it when that is more. A task is checked about every tenth of its age,
    so while one interval passes about a tenth of the organization's tasks end, whatever their
    length (B7: at concurrency 200 a queue of 10 left the service idle about 5% of the time).
    """
    if queue_allowance is None:
        queue_allowance = max(2, min(concurrency, 10), math.ceil(concurrency / 10))
    return concurrency + queue_allowance
