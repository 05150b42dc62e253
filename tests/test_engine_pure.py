"""The engine's pure decisions, with explicit time and no event loop: retry classification and
backoff, Retry-After parsing, the token bucket, and the poll planner."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime

import attrs
import pytest

import vidu_async as vidu
from vidu_async import _http, _retry
from vidu_async._limits import TokenBucket
from vidu_async._poll import PollPlanner, Update
from vidu_async._secret import Secret
from vidu_async._transport import Transport
from vidu_async.exceptions import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConnectError,
    InsufficientCreditsError,
    NotFoundError,
    QuotaExceededError,
    RateLimitError,
    RequestTimeoutError,
    RequestValidationError,
    ResponseValidationError,
    ServerError,
    TransportError,
    ViduError,
)

F = _retry.Failure


class TestClassify:
    """What each failure says about the request."""

    @pytest.mark.parametrize(
        ("exc", "failure"),
        [
            (ConnectError("refused"), F.NOT_SENT),
            (TransportError("reset before sending", request_sent=False), F.NOT_SENT),
            (RequestTimeoutError("read timeout"), F.UNKNOWN),
            (TransportError("reset", request_sent=True), F.UNKNOWN),
            (ServerError(500, "InternalServiceFailure", "boom"), F.UNKNOWN),
            (ServerError(503, "", "unavailable"), F.UNKNOWN),
            (APIError(408, "", "request timeout"), F.UNKNOWN),
            (RateLimitError(429, "TooManyRequests", "slow down"), F.THROTTLED),
            (RateLimitError(429, "SystemThrottling", "slow down"), F.THROTTLED),
            (QuotaExceededError(429, "QuotaExceeded", "full"), F.QUOTA),
            (BadRequestError(400, "OperationInProcess", "later"), F.LATER),
            (BadRequestError(400, "FieldInvalid", "bad"), F.FATAL),
            (AuthenticationError(401, "Unauthorized", "no"), F.FATAL),
            (InsufficientCreditsError(400, "CreditInsufficient", "poor"), F.FATAL),
            (NotFoundError(404, "TaskNotFound", "gone"), F.FATAL),
            (RequestValidationError([]), F.FATAL),
            (ValueError("not ours"), F.FATAL),
        ],
        ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
    )
    def test_classify(self, exc: BaseException, failure: _retry.Failure) -> None:
        """Each exception kind maps to its failure class."""
        assert _retry.classify(exc) is failure


class TestBackoff:
    """The jittered exponential backoff and ``next_delay``."""

    def test_grows_by_multiplier_and_caps(self) -> None:
        """Without jitter: initial × multiplier^(attempt-1), capped at maximum."""
        policy = attrs.evolve(vidu.DEFAULT_RETRY, initial=0.5, multiplier=2.0, maximum=5.0, jitter=0.0)
        rng = random.Random(1)
        delays = [_retry.backoff(policy, n, rng) for n in range(1, 8)]
        assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]

    def test_attempt_zero_is_initial(self) -> None:
        """Attempt numbers below 1 are treated as the first."""
        policy = attrs.evolve(vidu.DEFAULT_RETRY, jitter=0.0)
        assert _retry.backoff(policy, 0, random.Random(0)) == policy.initial

    @pytest.mark.parametrize("jitter", [0.0, 0.25, 0.5, 1.0])
    def test_jitter_within_bounds(self, jitter: float) -> None:
        """Every delay lies in [ceiling × (1 - jitter), ceiling]."""
        policy = attrs.evolve(vidu.DEFAULT_RETRY, initial=0.2, multiplier=3.0, maximum=10.0, jitter=jitter)
        rng = random.Random(42)
        for attempt in range(1, 10):
            ceiling = min(policy.maximum, policy.initial * policy.multiplier ** (attempt - 1))
            for _ in range(50):
                delay = _retry.backoff(policy, attempt, rng)
                assert ceiling * (1 - jitter) - 1e-12 <= delay <= ceiling + 1e-12

    def test_jitter_is_seeded(self) -> None:
        """The same seed gives the same delays."""
        policy = vidu.DEFAULT_RETRY
        one = [_retry.backoff(policy, n, random.Random(7)) for n in range(1, 5)]
        two = [_retry.backoff(policy, n, random.Random(7)) for n in range(1, 5)]
        assert one == two

    def test_next_delay_honours_retry_after(self) -> None:
        """A Retry-After is used as given."""
        assert _retry.next_delay(vidu.DEFAULT_RETRY, 1, random.Random(0), retry_after=2.5) == 2.5
        assert _retry.next_delay(vidu.DEFAULT_RETRY, 9, random.Random(0), retry_after=0.0) == 0.0

    def test_next_delay_caps_retry_after(self) -> None:
        """A Retry-After beyond ``max_retry_after`` is shortened to it."""
        policy = attrs.evolve(vidu.DEFAULT_RETRY, max_retry_after=10.0)
        assert _retry.next_delay(policy, 1, random.Random(0), retry_after=3600.0) == 10.0

    def test_next_delay_without_retry_after_is_backoff(self) -> None:
        """Without a Retry-After the jittered backoff decides."""
        policy = vidu.DEFAULT_RETRY
        assert _retry.next_delay(policy, 3, random.Random(5)) == _retry.backoff(policy, 3, random.Random(5))

    def test_retry_after_of(self) -> None:
        """Only rate-limit errors carry a Retry-After."""
        assert _retry.retry_after_of(RateLimitError(429, "TooManyRequests", "", retry_after=1.5)) == 1.5
        assert _retry.retry_after_of(QuotaExceededError(429, "QuotaExceeded", "", retry_after=2.0)) == 2.0
        assert _retry.retry_after_of(ServerError(500, "", "")) is None


class TestParseRetryAfter:
    """``Retry-After`` as delta-seconds or an HTTP-date."""

    NOW = datetime(2025, 5, 6, 12, 0, 0, tzinfo=UTC)

    @pytest.mark.parametrize(
        ("value", "seconds"),
        [
            ("5", 5.0),
            (" 120 ", 120.0),
            ("0.05", 0.05),
            ("1.5", 1.5),
            ("0", 0.0),
            ("-3", 0.0),
            ("Tue, 06 May 2025 12:00:30 GMT", 30.0),
            ("Tue, 06 May 2025 11:59:00 GMT", 0.0),
            ("Tue, 06 May 2025 13:00:00 GMT", 3600.0),
        ],
    )
    def test_readable(self, value: str, seconds: float) -> None:
        """Seconds, fractions, and dates relative to a fixed ``now`` (past dates: no wait)."""
        assert _http.parse_retry_after(value, now=self.NOW) == pytest.approx(seconds)

    @pytest.mark.parametrize("value", [None, "", "   ", "soon", "nan", "Tue, 99 Foo 2025", "12 parsecs"])
    def test_garbage(self, value: str | None) -> None:
        """Absent or unreadable values give ``None`` (then the backoff decides)."""
        assert _http.parse_retry_after(value, now=self.NOW) is None

    def test_infinite_is_not_a_wait_forever(self) -> None:
        """``inf`` is not a usable delay; next_delay caps it in any case."""
        parsed = _http.parse_retry_after("inf", now=self.NOW)
        assert (
            parsed is None
            or _retry.next_delay(vidu.DEFAULT_RETRY, 1, random.Random(0), retry_after=parsed)
            == vidu.DEFAULT_RETRY.max_retry_after
        )


class TestReadBodies:
    """Answers are decoded as JSON in any encoding JSON allows; what is not JSON says so."""

    CALL = _http.build_get_task("7")

    def answer(self, body: bytes, status: int = 200) -> _http.ApiResponse:
        return _http.ApiResponse(status=status, headers={}, body=body, elapsed=0.0)

    @pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32"])
    def test_encodings(self, encoding: str) -> None:
        body = '{"id": "7", "state": "success", "prompt": "é 雪"}'.encode(encoding)
        assert _http.read_json(self.CALL, self.answer(body)) == {
            "id": "7",
            "state": "success",
            "prompt": "é 雪",
        }

    def test_lone_surrogate(self) -> None:
        """A lone surrogate (not valid UTF-8) reads as json.loads reads it."""
        body = b'{"id": "\xed\xa0\x80"}'
        assert _http.read_json(self.CALL, self.answer(body)) == {"id": "\ud800"}

    @pytest.mark.parametrize("body", [b"<html>502</html>", b"\xff{", b'{"id": '])
    def test_not_json(self, body: bytes) -> None:
        with pytest.raises(ResponseValidationError, match="not JSON"):
            _http.read_json(self.CALL, self.answer(body))

    @pytest.mark.parametrize("body", [b"", b"  \n"])
    def test_empty_success_is_none(self, body: bytes) -> None:
        assert _http.read_json(self.CALL, self.answer(body)) is None


class TestTransportTimeouts:
    """The aiohttp timeout of each kind of call, from the client's Timeouts."""

    def transport(self, timeouts: vidu.Timeouts) -> Transport:
        return Transport(base_url="http://127.0.0.1:1", authorization=Secret("k"), timeouts=timeouts)

    def test_a_read_limit_that_cannot_fire_first_is_left_out(self) -> None:
        """Ordinary calls (60 s in all, 60 s of silence) need no read timer; large creates (300 s)
        keep it; a small create is bounded by the read limit as a whole."""
        transport = self.transport(vidu.Timeouts())
        request = transport._timeout("get", small=True)
        create, small_create = transport._timeout("create"), transport._timeout("create", small=True)
        assert (request.total, request.sock_read, request.sock_connect) == (60.0, None, 10.0)
        assert (create.total, create.sock_read, create.sock_connect) == (300.0, 60.0, 10.0)
        assert (small_create.total, small_create.sock_read) == (60.0, None)
        assert transport._timeout("create", budget=30.0).sock_read is None
        assert transport._timeout("create", budget=90.0).sock_read == 60.0
        assert transport._timeout("create", budget=30.0, small=True).total == 30.0
        download = transport._timeout("download")
        assert (download.total, download.sock_read) == (None, 60.0)

    def test_no_read_limit(self) -> None:
        """With read=None a small create keeps its whole-call limit and no read timer."""
        transport = self.transport(vidu.Timeouts(read=None))
        small_create = transport._timeout("create", small=True)
        assert (small_create.total, small_create.sock_read) == (300.0, None)

    def test_a_new_policy_is_used_at_once(self) -> None:
        transport = self.transport(vidu.Timeouts())
        assert transport._timeout("create").total == 300.0
        transport.timeouts = vidu.Timeouts(create=20.0, read=5.0)
        assert (transport._timeout("create").total, transport._timeout("create").sock_read) == (20.0, 5.0)


class FixedWindowLimit:
    """A service with a real limit: every request past ``limit`` in one whole second gets a 429."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._second = -1
        self._accepted = 0

    def __call__(self, at: float) -> bool:
        second = math.floor(at)
        if second != self._second:
            self._second, self._accepted = second, 0
        if self._accepted >= self.limit:
            return True
        self._accepted += 1
        return False


@attrs.frozen(kw_only=True)
class Sent:
    """One simulated request: when it went, whether it got a 429, and the bucket's rate after the answer."""

    at: float
    refused: bool
    rate: float


def drive(
    bucket: TokenBucket, *, demand: float, start: float = 0.0, until: float, refuses: Callable[[float], bool]
) -> list[Sent]:
    """Send ``demand`` requests a second through ``bucket`` from ``start`` to ``until`` (fewer when
    it makes them wait), each answered at once: a 429 when ``refuses(sent_at)``, else a success."""
    sent: list[Sent] = []
    t = start
    while t < until:
        at = t + bucket.reserve(t)
        refused = refuses(at)
        if refused:
            bucket.throttled(at)
        else:
            bucket.succeeded(at)
        sent.append(Sent(at=at, refused=refused, rate=bucket.rate))
        t = max(at, t + 1.0 / demand)
    return sent


def never(at: float) -> bool:
    """A service that never says "too fast"."""
    return False


def always(at: float) -> bool:
    """A service that says "too fast" to everything."""
    return True


class TestTokenBucket:
    """The AIMD request-rate budget, with explicit time."""

    def test_unlimited_until_throttled(self) -> None:
        """Without a ceiling every reservation is free."""
        bucket = TokenBucket(None, now=0.0)
        assert not bucket.limited
        assert all(bucket.reserve(i * 0.001) == 0.0 for i in range(1000))

    def test_throttle_halves_observed_rate(self) -> None:
        """The first 429 of an unlimited bucket sets the rate to half of what was observed."""
        bucket = TokenBucket(None, now=0.0)
        for i in range(40):  # 20 requests a second for two seconds
            bucket.reserve(i * 0.05)
        bucket.throttled(2.0)
        assert bucket.limited
        assert bucket.rate == pytest.approx(10.0, rel=0.1)

    def test_throttle_halves_configured_rate(self) -> None:
        """A limited bucket is halved, not below its floor."""
        bucket = TokenBucket(8.0, now=0.0, floor=0.5)
        bucket.throttled(0.0)
        assert bucket.rate == 4.0
        for t in (10.0, 20.0, 30.0, 40.0, 50.0, 60.0):
            bucket.throttled(t)
        assert bucket.rate == 0.5

    def test_one_cut_per_cooldown(self) -> None:
        """Many 429s inside one cool-down cut the rate once."""
        bucket = TokenBucket(10.0, now=0.0)
        bucket.throttled(0.0)
        for t in (0.1, 0.2, 0.5, 0.9):
            bucket.throttled(t)
        assert bucket.rate == 5.0
        bucket.throttled(1.5)
        assert bucket.rate == 2.5

    def test_additive_recovery_up_to_ceiling(self) -> None:
        """After the cool-down, successes raise the rate additively, never above the ceiling."""
        bucket = TokenBucket(10.0, now=0.0, recovery=0.1)
        bucket.throttled(0.0)
        assert bucket.rate == 5.0
        bucket.succeeded(0.5)  # inside the cool-down: no change
        assert bucket.rate == 5.0
        bucket.succeeded(2.0)
        after_cooldown = bucket.rate
        assert after_cooldown > 5.0
        bucket.succeeded(3.0)  # one second later: +0.1 × 5
        assert bucket.rate == pytest.approx(after_cooldown + 0.5)
        rates = []
        for t in range(4, 60):
            bucket.succeeded(float(t))
            rates.append(bucket.rate)
        assert rates == sorted(rates)
        assert bucket.rate == 10.0

    def test_recovery_counts_from_the_throttle(self) -> None:
        """The first success after a long unthrottled spell and a cool-down recovers by the time
        since the throttle, not since the bucket was made."""
        bucket = TokenBucket(None, now=0.0, recovery=0.1)
        for i in range(100):
            bucket.reserve(1000.0 + i * 0.01)  # 100/s, after a long quiet start
        bucket.throttled(1001.0)
        throttled_rate = bucket.rate
        bucket.succeeded(1003.0)  # first success, just after the cool-down
        assert bucket.rate == pytest.approx(throttled_rate * (1 + 0.1 * 2.0))

    def test_recovers_to_unlimited(self) -> None:
        """An unlimited bucket that was throttled becomes unlimited again once well past that rate."""
        bucket = TokenBucket(None, now=0.0)
        for i in range(20):
            bucket.reserve(i * 0.1)
        bucket.throttled(2.0)
        assert bucket.limited
        t = 2.0
        while bucket.limited and t < 10_000:
            t += 1.0
            bucket.succeeded(t)
        assert not bucket.limited
        assert bucket.reserve(t) == 0.0

    def test_reservations_queue_in_order(self) -> None:
        """Once the burst is spent, each reservation waits one interval longer than the previous."""
        bucket = TokenBucket(4.0, now=0.0, burst=1.0)
        waits = [bucket.reserve(0.0) for _ in range(5)]
        assert waits == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])

    def test_refund_returns_a_token(self) -> None:
        """A caller that gave up waiting gives its token back to the next one."""
        bucket = TokenBucket(4.0, now=0.0, burst=1.0)
        bucket.reserve(0.0)
        assert bucket.reserve(0.0) == 0.25
        bucket.refund(0.0)
        assert bucket.reserve(0.0) == 0.25

    def test_burst_after_quiet(self) -> None:
        """After a quiet spell up to ``burst`` requests go at once, then the rate applies."""
        bucket = TokenBucket(10.0, now=0.0, burst=3.0)
        for _ in range(3):
            bucket.reserve(0.0)
        waits = [bucket.reserve(100.0) for _ in range(4)]
        assert waits == pytest.approx([0.0, 0.0, 0.0, 0.1])

    @pytest.mark.parametrize("ceiling", [None, 200.0])
    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_sporadic_429s_do_not_sink_the_rate(self, ceiling: float | None, seed: int) -> None:
        """A rate-independent 3% of 429s (a busy service's sporadic throttling) at a demand of
        100 requests a second: over a minute the rate stays above half the demand."""
        rng = random.Random(seed)
        bucket = TokenBucket(ceiling, now=0.0)
        sent = drive(bucket, demand=100.0, until=60.0, refuses=lambda at: rng.random() < 0.03)
        assert min(s.rate for s in sent) >= 50.0
        assert len(sent) >= 0.9 * 100.0 * 60.0
        assert 0.02 < sum(s.refused for s in sent) / len(sent) < 0.04  # the noise really hit

    @pytest.mark.parametrize("limit", [2, 20, 100])
    def test_a_real_limit_is_found_and_respected(self, limit: int) -> None:
        """Demand at four times a real limit: the rate settles near the limit and 429s stay a
        small share (up to about a fifth at a few requests a second, where evidence comes slowly)."""
        bucket = TokenBucket(None, now=0.0)
        sent = drive(bucket, demand=4.0 * limit, until=150.0, refuses=FixedWindowLimit(limit))
        settled = [s for s in sent if s.at >= 30.0]
        seconds = 120.0
        assert 0.75 * limit <= sum(not s.refused for s in settled) / seconds <= limit
        assert len(settled) / seconds <= 1.2 * limit
        assert sum(s.refused for s in settled) / len(settled) < 0.2
        assert bucket.limited

    def test_a_burst_of_429s_cuts_at_once(self) -> None:
        """After a long clean run, a handful of 429s in a row halve the rate at once."""
        bucket = TokenBucket(100.0, now=0.0)
        drive(bucket, demand=100.0, until=10.0, refuses=never)
        assert bucket.rate == 100.0
        for i in range(4):
            bucket.throttled(10.0 + i * 0.01)
        assert bucket.rate == 50.0

    def test_a_lone_429_among_successes_is_noise(self) -> None:
        """A 429 among dozens of successes leaves the rate alone, limited or not."""
        for ceiling in (None, 100.0):
            bucket = TokenBucket(ceiling, now=0.0)
            drive(bucket, demand=100.0, until=10.0, refuses=never)
            bucket.throttled(10.0)
            assert bucket.rate == (math.inf if ceiling is None else 100.0)

    def test_successes_after_a_cut_make_a_lone_429_noise_again(self) -> None:
        """A 429 just after a cut is believed, but not once a dozen successes have come since."""
        bucket = TokenBucket(100.0, now=0.0)
        bucket.throttled(0.0)  # a new bucket's first 429 is believed
        assert bucket.rate == 50.0
        drive(bucket, demand=100.0, start=0.0, until=2.0, refuses=never)
        rate = bucket.rate
        bucket.throttled(2.0)
        assert bucket.rate == rate

    def test_endless_429s_cut_once_per_cooldown(self) -> None:
        """When the service keeps saying "too fast" the rate falls once a cool-down, as fast as ever."""
        bucket = TokenBucket(100.0, now=0.0)
        drive(bucket, demand=100.0, until=10.0, refuses=never)
        sent = drive(bucket, demand=100.0, start=10.0, until=15.0, refuses=always)
        cuts = sorted({s.rate for s in sent} - {100.0}, reverse=True)
        assert cuts == [100.0 / 2**n for n in range(1, len(cuts) + 1)]
        assert len(cuts) >= 4


# --- the poll planner ---------------------------------------------------------------------------

POLICY = attrs.evolve(
    vidu.DEFAULT_POLL,
    first_check=0.25,
    min_interval=0.2,
    max_interval=15.0,
    age_fraction=0.1,
    jitter=0.0,
    off_peak_min_interval=30.0,
    off_peak_max_interval=600.0,
)


def task(task_id: str = "t1", state: str = "created", **changes: object) -> vidu.Task:
    """A task as read, in ``state`` (an unknown string is kept raw)."""
    try:
        parsed = vidu.TaskState(state)
    except ValueError:
        parsed = vidu.TaskState.UNKNOWN
    return vidu.Task(id=task_id, state=parsed, raw_state=state, **changes)  # type: ignore[arg-type]


class Heard:
    """A listener that records what it hears."""

    def __init__(self) -> None:
        self.updates: list[Update] = []

    def __call__(self, update: Update) -> None:
        self.updates.append(update)


def planner(policy: vidu.PollPolicy = POLICY) -> PollPlanner:
    return PollPlanner(policy, random.Random(0))


class TestPollPlannerSchedule:
    """When tasks are checked."""

    def test_known_task_first_checked_at_first_check(self) -> None:
        """A task known from its create is first checked ``first_check`` later; it is told at once."""
        p = planner()
        heard = Heard()
        notes = p.add("t1", heard, 100.0, known=task())
        assert [u for _, u in notes] == [task()]
        assert p.next_wake() == pytest.approx(100.25)
        assert p.take_due(100.2) == []
        assert [e.task_id for e in p.take_due(100.25)] == ["t1"]

    def test_unknown_task_checked_at_once(self) -> None:
        """A task added without a known state is due immediately; nothing is told yet."""
        p = planner()
        assert p.add("t1", Heard(), 100.0) == []
        assert p.next_wake() == 100.0
        assert [e.task_id for e in p.take_due(100.0)] == ["t1"]

    def test_intervals_grow_with_age_within_bounds(self) -> None:
        """The interval is a fraction of the age, clamped to [min_interval, max_interval]."""
        p = planner()
        p.add("t1", Heard(), 0.0, known=task())
        entry = p.entry("t1")
        assert entry is not None
        intervals = [p.interval(entry, now) for now in (0.0, 1.0, 5.0, 10.0, 50.0, 100.0, 1000.0)]
        assert intervals == pytest.approx([0.2, 0.2, 0.5, 1.0, 5.0, 10.0, 15.0])
        assert intervals == sorted(intervals)

    def test_observation_schedules_by_age(self) -> None:
        """An unchanged check at age 50 s schedules the next one 5 s later (no jitter)."""
        p = planner()
        p.add("t1", Heard(), 0.0, known=task())
        p.take_due(0.25)
        p.unchanged("t1", 50.0)
        assert p.next_wake() == pytest.approx(55.0)

    def test_off_peak_bounds(self) -> None:
        """Off-peak tasks are first checked after, and spaced by, the off-peak bounds."""
        p = planner()
        p.add("t1", Heard(), 0.0, known=task(off_peak=True), off_peak=True)
        assert p.next_wake() == pytest.approx(30.0)
        entry = p.entry("t1")
        assert entry is not None
        assert p.interval(entry, 10.0) == 30.0
        assert p.interval(entry, 1000.0) == 100.0
        assert p.interval(entry, 100_000.0) == 600.0

    def test_jitter_spreads_within_bounds(self) -> None:
        """With jitter the first check lies within first_check × (1 ± jitter/2)."""
        p = planner(attrs.evolve(POLICY, jitter=0.2))
        for i in range(50):
            p.add(f"t{i}", Heard(), 0.0, known=task(f"t{i}"))
            entry = p.entry(f"t{i}")
            assert entry is not None
            assert 0.25 * 0.9 <= entry.next_check <= 0.25 * 1.1

    def test_take_due_fills_a_page_with_soonest(self) -> None:
        """Due tasks first, then the soonest-due others, up to a page of ``fill_to``."""
        p = planner()
        for i in range(150):
            p.add(f"t{i:03}", Heard(), float(i), known=task(f"t{i:03}"))
        due = p.take_due(3.0, fill_to=100)  # t000..t002 are due (at i + 0.25)
        ids = [e.task_id for e in due]
        assert len(ids) == 100
        assert ids == [f"t{i:03}" for i in range(100)]
        rest = p.take_due(1000.0, fill_to=100)
        assert [e.task_id for e in rest] == [f"t{i:03}" for i in range(100, 150)]

    def test_take_due_nothing_due_fills_nothing(self) -> None:
        """With nothing due, no page is filled."""
        p = planner()
        p.add("t1", Heard(), 0.0, known=task())
        assert p.take_due(0.1, fill_to=100) == []

    def test_failed_backs_off(self) -> None:
        """Each failed check doubles the interval, up to the maximum; a success resets it."""
        p = planner()
        p.add("t1", Heard(), 0.0, known=task())
        entry = p.entry("t1")
        assert entry is not None
        gaps = []
        for _ in range(8):
            p.take_due(math.inf)
            p.failed("t1", 10.0)
            gaps.append(entry.next_check - 10.0)
        assert gaps == pytest.approx([2.0, 4.0, 8.0, 15.0, 15.0, 15.0, 15.0, 15.0])
        p.take_due(math.inf)
        p.unchanged("t1", 10.0)
        assert entry.next_check - 10.0 == pytest.approx(1.0)

    def test_stale_heap_entries_skipped(self) -> None:
        """A rescheduled task is taken once, at its new time; a removed one never."""
        p = planner()
        p.add("t1", Heard(), 0.0, known=task("t1"))
        p.add("t2", Heard(), 0.0, known=task("t2"))
        p.unchanged("t1", 10.0)  # t1 moves from 0.25 to 11.0; its old slot is stale
        p.remove("t2")
        assert p.take_due(5.0) == []
        assert p.next_wake() == pytest.approx(11.0)
        assert [e.task_id for e in p.take_due(11.0)] == ["t1"]
        assert p.take_due(1000.0) == []
        assert p.next_wake() is None


class TestPollPlannerObservations:
    """What an observation means for listeners."""

    def test_change_notifies_every_listener_once(self) -> None:
        """A new state is told to each listener once; the same state again tells nobody."""
        p = planner()
        a, b = Heard(), Heard()
        p.add("t1", a, 0.0, known=task())
        p.add("t1", b, 0.0)
        processing = task(state="processing")
        notes = p.observe(processing, 1.0)
        assert sorted(id(listener) for listener, _ in notes) == sorted([id(a), id(b)])
        assert all(u == processing for _, u in notes)
        assert p.observe(task(state="processing"), 2.0) == []

    def test_unknown_state_change_is_a_change(self) -> None:
        """An unknown raw state is reported (as UNKNOWN); the same unknown string again is not."""
        p = planner()
        heard = Heard()
        p.add("t1", heard, 0.0, known=task())
        (note,) = p.observe(task(state="paused"), 1.0)
        assert isinstance(note[1], vidu.Task)
        assert note[1].state is vidu.TaskState.UNKNOWN
        assert note[1].raw_state == "paused"
        assert p.observe(task(state="paused"), 2.0) == []
        assert "t1" in p

    def test_terminal_drops_the_task(self) -> None:
        """A terminal observation notifies and stops the watch."""
        p = planner()
        p.add("t1", Heard(), 0.0, known=task())
        notes = p.observe(task(state="success"), 1.0)
        assert len(notes) == 1
        assert "t1" not in p
        assert len(p) == 0
        assert p.next_wake() is None

    def test_terminal_known_is_told_and_dropped(self) -> None:
        """Adding a task already known terminal tells the listener and watches nothing."""
        p = planner()
        notes = p.add("t1", Heard(), 0.0, known=task(state="failed", err_code="AuditFailed"))
        assert len(notes) == 1
        assert "t1" not in p

    def test_observe_unwatched_is_ignored(self) -> None:
        """An observation of a task nobody watches tells nobody."""
        assert planner().observe(task(), 0.0) == []

    def test_listeners_share_one_entry(self) -> None:
        """A second listener joins the first's entry and keeps its schedule; it hears the last state."""
        p = planner()
        a, b = Heard(), Heard()
        p.add("t1", a, 0.0, known=task())
        p.observe(task(state="queueing"), 1.0)
        wake = p.next_wake()
        notes = p.add("t1", b, 2.0)
        assert len(p) == 1
        assert p.next_wake() == wake
        assert [(listener is b, u.state) for listener, u in notes if isinstance(u, vidu.Task)] == [
            (True, vidu.TaskState.QUEUEING)
        ]

    def test_remove_last_listener_drops_task(self) -> None:
        """Removing one of two listeners keeps the watch; removing the last drops it."""
        p = planner()
        a, b = Heard(), Heard()
        p.add("t1", a, 0.0, known=task())
        p.add("t1", b, 0.0)
        p.remove_listener("t1", a)
        assert "t1" in p
        notes = p.observe(task(state="processing"), 1.0)
        assert [listener for listener, _ in notes] == [b]
        p.remove_listener("t1", b)
        assert "t1" not in p
        assert p.next_wake() is None
        p.remove_listener("t1", b)  # idempotent

    def test_error_tells_everyone_and_drops(self) -> None:
        """A watch that cannot go on (not found) tells every listener the error and drops the task."""
        p = planner()
        a, b = Heard(), Heard()
        p.add("t1", a, 0.0, known=task())
        p.add("t1", b, 0.0)
        error: ViduError = NotFoundError(404, "TaskNotFound", "gone")
        notes = p.error("t1", error)
        assert [u for _, u in notes] == [error, error]
        assert "t1" not in p
