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

    **When a 429 cuts the rate.** A busy service refuses a small share of requests whatever our
    rate (sporadic ``SystemThrottling``); a real limit ``L`` refuses the share sent above it,
    ``(r - L) / r``, which grows the further above it we go. Halving on every 429 took the first for
    the second: a steady 3% of 429s cut the rate about once a second while it recovered 10% a
    second, and sank it to 2-3 requests a second. So the answers keep a score, counted in 429s: a
    429 adds one, a success takes ``w`` away (about 1/8 with the defaults), and it stays between
    zero and ``evidence``; a 429 cuts the rate when the score is full. This is a one-sided CUSUM test
    of "the 429 share is ``noise``" against "it is ``too_fast``": the score climbs on average only
    while more than ``w / (1 + w)`` of the answers (about 11%) are 429s. So:

    - ``evidence`` 429s in a row (four) cut at once, and a share well above 11% cuts within a few
      dozen answers: a real limit is still found, and while the service keeps refusing the rate
      goes on falling once per cool-down;
    - a lone 429 among dozens of successes does not cut: a steady 3% share cuts about once in
      50,000 answers, a 5% share once in a few thousand;
    - until the successes since the last cut (or the start) outweigh one 429, about eight of them,
      a 429 is believed: a new client's first 429 cuts, and so does one after a cut with nothing
      but 429s since. The score restarts from zero at each cut, so a cut made on noise does not
      make the next one easier.

    The price: a 429 share up to about 11% passes for noise, so the rate settles a little above a
    real limit. At tens of requests a second a few percent of requests are refused; at a limit of a
    few a second, where evidence comes slowly beside the additive recovery, up to about a fifth.

    Args:
        ceiling: The configured rate, requests per second (``None``: no fixed limit).
        now: The current time, seconds.
        burst: How many requests may go at once after a quiet spell.
        floor: The lowest rate throttling may bring it to.
        decrease: The factor applied to the rate on throttling.
        recovery: Additive recovery, as a fraction of the throttled rate per second.
        noise: The share of 429s taken for a busy service's sporadic throttling.
        too_fast: The share of 429s taken for a real limit (above ``noise``).
        evidence: The score, in 429s, at which a 429 cuts the rate.
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
        noise: float = 0.05,
        too_fast: float = 0.2,
        evidence: float = 4.0,
    ) -> None:
        if not 0.0 < noise < too_fast < 1.0:
            raise ValueError(f"need 0 < noise < too_fast < 1, not noise={noise}, too_fast={too_fast}")
        self.ceiling = math.inf if ceiling is None else ceiling
        self.rate = self.ceiling
        self.floor = floor
        self.decrease = decrease
        self.recovery = recovery
        self.evidence = evidence
        self.burst = burst if burst is not None else max(1.0, min(self.ceiling, 10.0))
        self._tokens = self.burst
        self._updated = now
        self._cooldown_until = -math.inf
        self._throttled_rate = self.rate
        # The score of 429s against successes (log-likelihood ratios, in units of one 429).
        self._success_weight = math.log((1.0 - noise) / (1.0 - too_fast)) / math.log(too_fast / noise)
        self._score = 0.0
        self._heard = 0  # successes since the last cut
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
        """The service said "too fast": cut the rate if the recent answers bear it out (see the
        class), once per cool-down however many 429s arrive."""
        self._score = min(self.evidence, self._score + 1.0)
        believed = self._heard * self._success_weight < 1.0  # too few successes to outweigh it
        if now < self._cooldown_until or (self._score < self.evidence and not believed):
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
        self._score = 0.0
        self._heard = 0
        logger.warning("throttled by the service: request rate lowered to %.2f/s", self.rate)

    def succeeded(self, now: float) -> None:
        """A request went through: weigh it against the 429s, and recover the rate a little, up
        to the ceiling."""
        self._score = max(0.0, self._score - self._success_weight)
        self._heard += 1
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
        """Report a request that went through (limited or not: each success weighs against 429s)."""
        self.bucket.succeeded(time.monotonic())


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
