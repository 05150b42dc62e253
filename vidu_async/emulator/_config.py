"""The emulator's configuration: frozen, keyword-only attrs classes with ``Final`` defaults.

Every duration is float seconds; every rate is a fraction 0..1 of the requests (or tasks, or
deliveries) it applies to, decided with a seeded ``random.Random`` so a run can be replayed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from typing import Final

import attrs

from ._files import AUDIO_FORMATS, AudioFormat

__all__ = [
    "API_ENDPOINTS",
    "DEFAULT_API_KEY",
    "DEFAULT_CALLBACKS",
    "DEFAULT_FAULTS",
    "ENDPOINTS",
    "FAULT_NAMES",
    "SYNC_ENDPOINTS",
    "CallbackConfig",
    "EmulatorConfig",
    "FaultConfig",
    "ProcessingTime",
]

#: The key the emulator accepts when none is configured (organization ``"default"``).
DEFAULT_API_KEY: Final = "vda_emulator_key"
#: The synchronous endpoints (vidu-api-endpoints.md §16-§18), each counted and faulted under its
#: own path: they answer at once and hold no slot of the organization's concurrency.
SYNC_ENDPOINTS: Final = frozenset({"audio-tts", "audio-clone", "img2video-prompt-recommendation"})
#: The names requests are counted and faults are aimed by (every task kind's create is ``create``).
ENDPOINTS: Final = frozenset({"create", "get", "cancel", "list", "credits", "download", *SYNC_ENDPOINTS})
#: The endpoints rate-based faults hit by default: the API, not the file downloads.
API_ENDPOINTS: Final = frozenset({"create", "get", "cancel", "list", "credits", *SYNC_ENDPOINTS})
#: Every fault ``Emulator.inject`` knows.
FAULT_NAMES: Final = frozenset(
    {
        "rate_limit",
        "throttle",
        "quota_exceeded",
        "server_error",
        "server_error_after_commit",
        "slow",
        "drop",
        "commit_then_drop",
        "operation_in_process",
        "unknown_state",
    }
)

#: Processing time: fixed seconds, or drawn per task from the emulator's seeded generator.
ProcessingTime = float | Callable[[random.Random], float]


def _rate(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be a fraction between 0 and 1, got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value!r}")


def _names(value: Iterable[str]) -> frozenset[str]:
    """Any iterable of endpoint names, as a frozenset (a lone string is one name, not its letters)."""
    return frozenset((value,) if isinstance(value, str) else value)


def _endpoints(instance: object, attribute: attrs.Attribute[frozenset[str]], value: frozenset[str]) -> None:
    unknown = set(value) - ENDPOINTS
    if unknown:
        raise ValueError(f"unknown endpoint names {sorted(unknown)}; known: {sorted(ENDPOINTS)}")


@attrs.frozen(kw_only=True)
class FaultConfig:
    """What goes wrong, and how often.

    Request faults (``rate_limit`` … ``operation_in_process``) are drawn once per request to an
    endpoint named in ``endpoints``, with one uniform draw against their cumulative rates, so their
    sum should stay at or below 1. ``server_error_after_commit`` and ``commit_then_drop`` only hit
    the endpoints that commit something (``create``, ``audio-tts``, ``audio-clone``). One-shot faults queued with ``Emulator.inject`` take precedence over all of them.

    Attributes:
        seed: Seeds the generator that decides request and task faults.
        endpoints: Which endpoints rate-based request faults hit (``create``, ``get``, ``cancel``,
            ``list``, ``credits``, ``download`` and the synchronous ``audio-tts``, ``audio-clone``,
            ``img2video-prompt-recommendation``); downloads are left out by default.
        rate_limit: 429 ``TooManyRequests``; nothing done.
        throttle: 429 ``SystemThrottling``; nothing done.
        retry_after: The ``Retry-After`` sent with every 429, seconds; ``None`` sends none.
        retry_after_http_date: Send ``Retry-After`` as an HTTP-date instead of seconds.
        server_error: 500 ``InternalServiceFailure``; nothing done.
        server_error_after_commit: (create, ``audio-tts``, ``audio-clone``) the task IS created
            (the speech made, the voice cloned, the credits charged), then 500.
        slow: Answer normally after ``slow_delay`` seconds.
        slow_delay: How long a slow answer takes.
        drop: Close the connection without an answer; nothing done.
        commit_then_drop: (create, ``audio-tts``, ``audio-clone``) the task IS created, then the
            connection closes unanswered.
        operation_in_process: 400 ``OperationInProcess``; nothing done.
        task_failure: Fraction of tasks that end ``failed`` with ``task_failure_code`` (credits refunded).
        task_failure_code: The ``err_code`` of those tasks.
        unknown_state: Fraction of task reads (get, list) that report ``unknown_state_value`` as the
            state; the real state is unchanged.
        unknown_state_value: A state string the SDK does not know.
        list_disabled: ``GET /ent/v2/tasks`` answers 404 ``NotFound`` (a gateway without the list).
        list_omits_state: List rows carry no ``state``, ``err_code`` or ``credits`` (the documented
            example shows none).
    """

    seed: int = 0
    endpoints: frozenset[str] = attrs.field(default=API_ENDPOINTS, converter=_names, validator=_endpoints)
    rate_limit: float = attrs.field(default=0.0, validator=_rate)
    throttle: float = attrs.field(default=0.0, validator=_rate)
    retry_after: float | None = 1.0
    retry_after_http_date: bool = False
    server_error: float = attrs.field(default=0.0, validator=_rate)
    server_error_after_commit: float = attrs.field(default=0.0, validator=_rate)
    slow: float = attrs.field(default=0.0, validator=_rate)
    slow_delay: float = attrs.field(default=2.0, validator=_non_negative)
    drop: float = attrs.field(default=0.0, validator=_rate)
    commit_then_drop: float = attrs.field(default=0.0, validator=_rate)
    operation_in_process: float = attrs.field(default=0.0, validator=_rate)
    task_failure: float = attrs.field(default=0.0, validator=_rate)
    task_failure_code: str = "CreationPolicyViolation"
    unknown_state: float = attrs.field(default=0.0, validator=_rate)
    unknown_state_value: str = "paused"
    list_disabled: bool = False
    list_omits_state: bool = False


@attrs.frozen(kw_only=True)
class CallbackConfig:
    """How callbacks to a task's ``callback_url`` are delivered (vidu-api.md §7).

    Attributes:
        enabled: Send callbacks at all.
        timeout: Seconds one delivery may take.
        retries: Extra attempts for a ``success``/``failed`` delivery that failed (non-2xx, error or
            timeout); ``processing`` deliveries are never retried, as documented.
        retry_delay: Seconds between attempts.
        drop: Fraction of deliveries silently never sent.
        delay: Seconds every delivery waits before it is sent.
        duplicate: Fraction of deliveries sent twice.
        reorder: Send each task's ``processing`` callback after its terminal one.
        forge: Fraction of deliveries sent with a wrong signature.
        seed: Seeds the generator behind ``drop``, ``duplicate`` and ``forge``.
        max_concurrent: Deliveries in flight at once.
    """

    enabled: bool = True
    timeout: float = attrs.field(default=5.0, validator=_non_negative)
    retries: int = 3
    retry_delay: float = attrs.field(default=0.2, validator=_non_negative)
    drop: float = attrs.field(default=0.0, validator=_rate)
    delay: float = attrs.field(default=0.0, validator=_non_negative)
    duplicate: float = attrs.field(default=0.0, validator=_rate)
    reorder: bool = False
    forge: float = attrs.field(default=0.0, validator=_rate)
    seed: int = 0
    max_concurrent: int = 16


DEFAULT_FAULTS: Final = FaultConfig()
DEFAULT_CALLBACKS: Final = CallbackConfig()


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value!r}")


def _prefix(value: str) -> str:
    """``"vidu/"`` → ``"/vidu"``: one leading slash, no trailing one."""
    value = value.strip("/")
    return f"/{value}" if value else ""


@attrs.frozen(kw_only=True)
class EmulatorConfig:
    """A local Vidu server's behaviour.

    Attributes:
        api_key: The key of organization ``"default"``.
        extra_keys: More keys, each mapped to its organization's name (keys of one organization
            share its concurrency and credits, as on Vidu).
        concurrency: Tasks processed at once per organization; the rest wait in ``queueing``.
        max_queue: When set, a create beyond ``concurrency + max_queue`` unfinished tasks of the
            organization answers 429 ``QuotaExceeded`` instead of queueing.
        created_time: Seconds a task stays ``created`` before it is queued.
        processing_time: Seconds a task processes: fixed, or drawn per task from a seeded generator.
        seed: Seeds task ids, seeds and processing times.
        credits: Credits each organization starts with.
        url_ttl: Seconds a download link stays valid (24 h, as documented).
        path_prefix: A reseller-style prefix in front of every route (``"/vidu"``).
        auth_schemes: The ``Authorization`` schemes accepted (``Token`` officially, ``Bearer`` at resellers).
        query_includes_id: Whether ``GET …/creations`` carries ``id`` (the official example has none).
        credit_insufficient_status: 400 (the error table, int ``code``) or 402 (an observed body with
            string ``code``).
        download_bytes_per_second: Serve downloads at about this rate, in small chunks (a slow
            CDN: a client's partial files are then on disk for a while); ``None``: at once.
        extra_models: Model names accepted beyond the documented table, with the generic checks
            only (and charged as 5 s at 720p). Any other unknown name answers 400
            ``ModelUnavailable``, as Vidu does for a model it does not offer; the SDK itself lets
            unknown names through, so that a model added to the service works on day one.
        extra_known: Values taken beyond the documented ones in the fields whose lists are open
            (``template``'s names, ``template-story``'s stories: ``_rules.FieldRule.known``). Any
            other value there answers 400 ``FieldInvalid``; the SDK itself lets them through.
        audio_format: The file audio creations, speech and cloned-voice demos are served as:
            ``"mp3"`` (what clients assume, vidu-api-endpoints.md §1.12) or ``"wav"``.
        bare_media_urls: Serve image and audio files at URLs without a file suffix, so a client
            has to take the type from the ``Content-Type`` (the docs name no format: §1.11-§1.12).
            Videos and covers keep ``.mp4``/``.jpg``, as every documented example shows.
        pending_audio_answers: ``audio-tts`` and ``audio-clone`` answer ``state: "queueing"``
            without ``file_url``/``demo_audio`` (the clone page's own states, §17.2, §22.12); the
            audio is then read from ``GET …/creations`` of the answer's ``task_id``.
        stats_endpoint: Also serve ``GET /_emulator/stats`` (at the origin, outside any path
            prefix, without auth): :class:`EmulatorStats` as JSON, for tests that run the emulator
            in another process (``vidu-async emulator --stats-endpoint``). Off by default, so the
            emulator's surface is Vidu's alone.
        faults: Fault injection.
        callbacks: Callback delivery.
    """

    api_key: str = DEFAULT_API_KEY
    extra_keys: Mapping[str, str] = attrs.field(factory=dict)
    concurrency: int = attrs.field(default=5, validator=_positive)
    max_queue: int | None = None
    created_time: float = attrs.field(default=0.02, validator=_non_negative)
    processing_time: ProcessingTime = 0.5
    seed: int = 0
    credits: int = 1_000_000
    url_ttl: float = 86400.0
    path_prefix: str = attrs.field(default="", converter=_prefix)
    auth_schemes: tuple[str, ...] = ("Token", "Bearer")
    query_includes_id: bool = True
    credit_insufficient_status: int = attrs.field(default=400)
    extra_models: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    download_bytes_per_second: float | None = None
    extra_known: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    audio_format: AudioFormat = attrs.field(default="mp3")
    bare_media_urls: bool = False
    pending_audio_answers: bool = False
    stats_endpoint: bool = False
    faults: FaultConfig = DEFAULT_FAULTS
    callbacks: CallbackConfig = DEFAULT_CALLBACKS

    @credit_insufficient_status.validator
    def _check_credit_status(self, attribute: attrs.Attribute[int], value: int) -> None:
        if value not in (400, 402):
            raise ValueError(f"credit_insufficient_status must be 400 or 402, got {value!r}")

    @audio_format.validator
    def _check_audio_format(self, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in AUDIO_FORMATS:
            raise ValueError(f"audio_format must be one of {AUDIO_FORMATS}, got {value!r}")

    def organizations(self) -> dict[str, str]:
        """Every accepted key and its organization (``api_key`` belongs to ``"default"``)."""
        return {**dict(self.extra_keys), self.api_key: "default"}
