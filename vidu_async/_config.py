"""Client configuration that is not a request: base URLs and timeouts.

Policies are frozen attrs classes with module defaults; change one with ``attrs.evolve``.
Durations are float seconds.
"""

from __future__ import annotations

from typing import Any, Final

import attrs

__all__ = [
    "CHINA_BASE_URL",
    "DEFAULT_DOWNLOADS",
    "DEFAULT_POLL",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUTS",
    "GLOBAL_BASE_URL",
    "DownloadPolicy",
    "PollPolicy",
    "RetryPolicy",
    "Timeouts",
]

#: The global service (console: platform.vidu.com).
GLOBAL_BASE_URL: Final = "https://api.vidu.com"
#: The China service (console: platform.vidu.cn); same paths.
CHINA_BASE_URL: Final = "https://api.vidu.cn"


def _positive_or_none(instance: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(
            f"Timeouts.{attribute.name} must be a positive number of seconds or None, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class Timeouts:
    """How long each part of a call may take, in seconds (``None``: no limit).

    Attributes:
        connect: Opening the connection (TCP and TLS). A call that times out here was never sent,
            so it is safe to retry, create included.
        read: The longest silence while reading a response. An API call that sends little (every
            call but a create with inline media) gets a small JSON answer, so for it this also
            bounds the whole call.
        request: A whole ordinary call (query, list, cancel, credits).
        create: A whole create call. Generous by default: bodies carry up to 20 MB of base64 media
            (a create of URLs only is bounded by ``read`` as well).
        download: A whole download (``None``: bounded only by ``read``).
    """

    connect: float | None = attrs.field(default=10.0, validator=_positive_or_none)
    read: float | None = attrs.field(default=60.0, validator=_positive_or_none)
    request: float | None = attrs.field(default=60.0, validator=_positive_or_none)
    create: float | None = attrs.field(default=300.0, validator=_positive_or_none)
    download: float | None = attrs.field(default=None, validator=_positive_or_none)


#: The timeouts a client uses unless told otherwise.
DEFAULT_TIMEOUTS: Final = Timeouts()


def _at_least_one(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 1:
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be at least 1, got {value!r}")


def _fraction(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be between 0 and 1, got {value!r}")


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be positive, got {value!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """When and how often a call is tried again. One retry layer serves every call.

    What a retry may cost decides what is retried: a call that never left (connect failure) is
    retried whatever it is; a call the service rejected before processing (429, ``OperationInProcess``)
    is retried after ``Retry-After`` or a backoff; a call whose outcome is unknown (timeout, dropped
    connection, 5xx) is retried only if it is harmless to repeat, and a create is first reconciled
    through the task list; anything else raises at once.

    Attributes:
        attempts: Tries of one call, the first included (for failures that count, see below).
        throttle_attempts: Tries while the service answers 429 ``TooManyRequests``/``SystemThrottling``.
            ``QuotaExceeded`` (the organization's slots are full) never runs out while the caller's
            deadline allows: it means "later", not "no".
        initial: The first backoff, seconds.
        maximum: The longest backoff, seconds.
        multiplier: Growth of the backoff per attempt.
        jitter: The fraction of each backoff drawn at random (0 = none, 1 = anywhere from 0 to the full delay).
        max_retry_after: A ``Retry-After`` longer than this is shortened to it, seconds.
        reconcile: Whether a create with an unknown outcome is looked up in the task list (by the
            fingerprint stamped in its ``payload``) before anything else; without it such a create
            raises ``SubmitOutcomeUnknownError`` at once.
        reconcile_window: How far back the task list is searched, seconds.
        reconcile_settle: The pause before the second look that proves a create absent, seconds.
        reconcile_pages: The most list pages read per look (100 tasks each).
    """

    attempts: int = attrs.field(default=6, validator=_at_least_one)
    throttle_attempts: int = attrs.field(default=30, validator=_at_least_one)
    initial: float = attrs.field(default=0.5, validator=_positive)
    maximum: float = attrs.field(default=30.0, validator=_positive)
    multiplier: float = attrs.field(default=2.0, validator=_positive)
    jitter: float = attrs.field(default=0.5, validator=_fraction)
    max_retry_after: float = attrs.field(default=300.0, validator=_positive)
    reconcile: bool = True
    reconcile_window: float = attrs.field(default=900.0, validator=_positive)
    reconcile_settle: float = attrs.field(default=1.0, validator=_positive)
    reconcile_pages: int = attrs.field(default=20, validator=_at_least_one)


#: The retry policy a client uses unless told otherwise.
DEFAULT_RETRY: Final = RetryPolicy()


@attrs.frozen(kw_only=True)
class PollPolicy:
    """How the client's one poll scheduler checks on tasks.

    A task is checked soon after it is submitted, then less often as it ages (about ``age_fraction``
    of its age, between ``min_interval`` and ``max_interval``), with jitter. Where the task list can
    answer for many tasks at once, one request covers up to 100 of them and only the tasks that
    changed are read one by one.

    Attributes:
        first_check: Delay of the first check after a task is submitted or first watched, seconds.
        min_interval: The shortest interval between two checks of one task, seconds.
        max_interval: The longest interval between two checks of one task, seconds.
        age_fraction: The interval as a fraction of the task's age.
        jitter: The fraction of each interval drawn at random, so tasks spread out.
        requests_per_second: The poll budget: status checks per second, whatever the number of tasks
            (a bulk check covers up to 100 tasks). Each finished task costs one more GET on top, to
            read it whole; every request also passes the client's request-rate budget.
        bulk: Whether to ask the task list about many tasks at once where the service supports it.
        bulk_retry_after: After the list endpoint failed, how long to poll one task at a time before
            trying it again, seconds.
        intermediate_every: In bulk mode, how often to look for ``queueing``/``processing`` changes
            (finishes are looked for at every check), seconds.
        timeout: The default deadline of ``wait``/``generate``, seconds (``None``: no deadline).
        off_peak_timeout: The default deadline of off-peak tasks (Vidu runs them within 48 h).
        off_peak_min_interval: The shortest interval for off-peak tasks, seconds.
        off_peak_max_interval: The longest interval for off-peak tasks, seconds.
        callback_interval: The safety-net interval for tasks whose updates come by callback: they
            are polled only this often, in case a callback is lost, seconds.
        unreadable_attempts: Reads of one task in a row whose answer cannot be read as a task (no
            ``id`` or ``state``, not JSON) before its watchers get a ``ResponseValidationError``
            instead of more checks.
    """

    first_check: float = attrs.field(default=0.25, validator=_positive)
    min_interval: float = attrs.field(default=0.2, validator=_positive)
    max_interval: float = attrs.field(default=15.0, validator=_positive)
    age_fraction: float = attrs.field(default=0.1, validator=_positive)
    jitter: float = attrs.field(default=0.1, validator=_fraction)
    requests_per_second: float = attrs.field(default=20.0, validator=_positive)
    bulk: bool = True
    bulk_retry_after: float = attrs.field(default=300.0, validator=_positive)
    intermediate_every: float = attrs.field(default=1.0, validator=_positive)
    timeout: float | None = attrs.field(default=3600.0, validator=_positive_or_none)
    off_peak_timeout: float = attrs.field(default=48 * 3600.0, validator=_positive)
    off_peak_min_interval: float = attrs.field(default=30.0, validator=_positive)
    off_peak_max_interval: float = attrs.field(default=600.0, validator=_positive)
    callback_interval: float = attrs.field(default=60.0, validator=_positive)
    unreadable_attempts: int = attrs.field(default=5, validator=_at_least_one)

    def timeout_for(self, timeout: float | None, off_peak: bool | None) -> float | None:
        """The deadline of a wait: ``timeout`` when given, else this policy's for the task's kind
        of run (off-peak tasks run within 48 h)."""
        if timeout is not None:
            return timeout
        return self.off_peak_timeout if off_peak else self.timeout


#: The poll policy a client uses unless told otherwise.
DEFAULT_POLL: Final = PollPolicy()


@attrs.frozen(kw_only=True)
class DownloadPolicy:
    """How generated files are downloaded.

    Attributes:
        max_bytes: The largest file accepted, bytes. A download that announces more, or sends
            more, stops with ``DownloadError`` and leaves nothing behind (a clip of a few seconds is
            a few MB; the default leaves room for long, high-resolution videos).
        stall_timeout: A download that receives fewer than ``stall_bytes`` in any window of this
            many seconds is stalled: it stops and is resumed (a body trickling in a byte at a
            time never ends otherwise), seconds.
        stall_bytes: See ``stall_timeout``.
        concurrency: Files downloaded at once, per client.
        attempts: Tries per file (each resumes where the last stopped).
    """

    max_bytes: int = attrs.field(default=4 * 1024**3, validator=_at_least_one)
    stall_timeout: float = attrs.field(default=60.0, validator=_positive)
    stall_bytes: int = attrs.field(default=64 * 1024, validator=_at_least_one)
    concurrency: int = attrs.field(default=4, validator=_at_least_one)
    attempts: int = attrs.field(default=4, validator=_at_least_one)


#: The download policy a client uses unless told otherwise.
DEFAULT_DOWNLOADS: Final = DownloadPolicy()
