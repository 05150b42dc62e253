"""The emulator's pure core: tasks, per-organization scheduling, credits, listing and stats.

No event loop and no clock: every method takes ``now`` (monotonic seconds) explicitly, so a test
can walk the state machine ``created → queueing → processing → success | failed`` second by second.
``advance(now)`` applies every transition due by ``now`` *at the moment it was due*: a task that
finishes at ``t`` frees its slot at ``t`` and the next queued task starts at ``t``, whenever the
caller happens to look. Due times sit in one heap, so ten thousand tasks cost nothing while idle.
"""

from __future__ import annotations

import base64
import heapq
import math
import random
from collections import Counter, deque
from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

import attrs

from .. import _rules
from .._convert import request_to_json
from .._kinds import Output, kind_of
from .._models import (
    CloneVoiceRequest,
    Extend,
    Img2Video,
    MultiFrame,
    PromptRequest,
    Reference2Image,
    Reference2Video,
    Request,
    SpeechRequest,
    StartEnd2Video,
    TaskState,
    Template,
    TemplateStory,
    Text2Audio,
    Text2Video,
    Timing2Audio,
    Upscale,
)
from ._config import EmulatorConfig

__all__ = [
    "CANCELLED_CODE",
    "ECHO_FIELDS",
    "PRICE_PER_SECOND",
    "EmulatorState",
    "EmulatorStats",
    "ListQuery",
    "ListResult",
    "OrgCredits",
    "StateError",
    "SyncRecord",
    "TaskRecord",
    "Transition",
    "cost_of",
    "format_created_at",
    "kind_cost",
    "model_version",
    "parse_list_values",
    "states_named",
    "sync_cost",
]

#: Credits per second of video, by resolution (unknown resolutions are charged as the dearest).
PRICE_PER_SECOND: Final[Mapping[str, int]] = MappingProxyType({"360p": 2, "540p": 3, "720p": 5, "1080p": 8})
#: The ``err_code`` of a task cancelled by its owner (the error table's ``UserCancelled``).
CANCELLED_CODE: Final = "UserCancelled"
#: The defaults applied to models the table does not know.
_UNKNOWN_MODEL_DURATION: Final = 5
_UNKNOWN_MODEL_RESOLUTION: Final = "720p"
#: Task ids are snowflake-like: milliseconds since this epoch, shifted left 22 bits (18 digits in the 2020s).
_ID_EPOCH_MS: Final = 1_577_836_800_000  # 2020-01-01T00:00:00Z
_ID_SEQUENCE_BITS: Final = 22
#: The list endpoint's default window and page sizes (vidu-api.md §5).
LIST_WINDOW: Final = timedelta(days=7)
DEFAULT_PAGE_SIZE: Final = 10
MAX_PAGE_SIZE: Final = 100

#: What each kind's create response echoes (vidu-api-endpoints.md §2.3, §3.3, §4.3; start-end2video
#: adds ``audio`` for q3 models, as its q3 example does). reference2video echoes every setting.
ECHO_FIELDS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "text2video": (
            "task_id", "state", "model", "style", "prompt", "duration", "seed", "aspect_ratio",
            "resolution", "bgm", "movement_amplitude", "payload", "off_peak", "credits", "watermark",
            "created_at",
        ),
        "img2video": (
            "task_id", "state", "model", "prompt", "images", "duration", "audio", "audio_type", "seed",
            "resolution", "movement_amplitude", "payload", "off_peak", "credits", "watermark", "created_at",
        ),
        "start-end2video": (
            "task_id", "state", "model", "prompt", "images", "duration", "seed", "resolution", "bgm",
            "movement_amplitude", "payload", "off_peak", "credits", "watermark", "created_at",
        ),
        # §5.3 (``wm_position`` reads "unspecified" when not set, as the example shows).
        "multiframe": (
            "task_id", "state", "model", "start_image", "image_settings", "resolution", "watermark",
            "wm_url", "wm_position", "meta_data", "payload", "credits", "created_at",
        ),
        "template": (
            "task_id", "state", "template", "prompt", "images", "seed", "aspect_ratio", "bgm", "payload",
            "watermark", "credits", "created_at",
        ),
        "template-story": ("task_id", "state", "story", "images", "payload", "credits", "created_at"),
        "reference2image": (
            "task_id", "state", "model", "prompt", "images", "seed", "aspect_ratio", "resolution",
            "callback_url", "payload", "credits", "created_at",
        ),
        "extend": (
            "task_id", "state", "credits", "created_at", "model", "prompt", "duration", "resolution",
            "images", "payload", "video_creation_id", "video_url",
        ),
        # §14.2 and §15.2: no payload (the audio pages do not list it, §22.11).
        "text2audio": ("task_id", "state", "model", "prompt", "duration", "seed", "credits", "created_at"),
        "timing2audio": (
            "task_id", "state", "model", "duration", "timing_prompts", "seed", "credits", "created_at",
        ),
    }
)  # fmt: skip
#: The kinds whose echo the docs did not capture (upscale-new §10.2, lip-sync §11.2, image2dance
#: §12.2) echo the general envelope, the request's own fields as sent, ``payload`` where the kind
#: documents it, and these defaults the task runs with.
ENVELOPE: Final = ("task_id", "state", "credits", "created_at")
_ECHOED_DEFAULTS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {"upscale-new": ("upscale_resolution",)}
)
#: Credits of ``multiframe`` and ``extend`` by model and resolution: a base plus a price per second
#: (a reseller's grid, vidu-api-endpoints.md §9.3; read as base + seconds × price).
GRID_PRICES: Final[Mapping[tuple[str, str], tuple[int, int]]] = MappingProxyType(
    {
        ("viduq2-turbo", "540p"): (10, 2),
        ("viduq2-turbo", "720p"): (15, 5),
        ("viduq2-turbo", "1080p"): (40, 10),
        ("viduq2-pro", "540p"): (15, 5),
        ("viduq2-pro", "720p"): (30, 10),
        ("viduq2-pro", "1080p"): (60, 15),
    }
)
#: ``upscale-new`` credits per second of video, by target resolution (§10.2, PRICE-CN).
UPSCALE_PRICE_PER_SECOND: Final[Mapping[str, int]] = MappingProxyType(
    {"1080p": 1, "2K": 2, "4K": 4, "8K": 16}
)
#: One reference-to-image call (§8.3, PRICE-CN).
IMAGE_CREDITS: Final = 2
#: Characters of speech (or of a cloned voice's preview text) one credit pays for: the pages say
#: "charged by characters" without a price (§16, §17.1), so this is the emulator's own figure.
SPEECH_CHARS_PER_CREDIT: Final = 1000
#: What the docs leave open about a kind's output, and the emulator's stand-ins: how long a source
#: video it cannot see is (extend, upscale-new, lip-sync, image2dance), how long a template's and a
#: story's film are (a reseller's template echo shows 4 s, §6.1; stories are multi-shot films).
ASSUMED_SOURCE_SECONDS: Final = 5
TEMPLATE_SECONDS: Final = 4
STORY_SECONDS: Final = 10
#: Audio kinds' default length (§14.1, §15.1).
AUDIO_DEFAULT_SECONDS: Final = 10
#: Credits ``is_rec`` adds (the service writes the prompt: vidu-api-endpoints.md §1.7).
IS_REC_CREDITS: Final = 10

_QUEUE: Final = 0  # heap event: a created task joins its organization's queue
_FINISH: Final = 1  # heap event: a processing task ends


class StateError(Exception):
    """A request the state refuses, with the Vidu error it maps to.

    Attributes:
        status: The HTTP status.
        reason: Vidu's reason (``TaskNotFound``, ``CreditInsufficient``...).
        message: Vidu's message.
    """

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


@attrs.define(kw_only=True, eq=False)
class TaskRecord:
    """One task as the emulator keeps it. Mutable: the state machine moves it along.

    Times (``created_at`` … ``finished_at``) are the monotonic clock passed to the state;
    ``created_at_text`` is the wall-clock RFC 3339 string the API shows. ``settings`` holds every
    setting the task runs with (defaults applied); ``echo`` is the create response, the part of
    ``settings`` the task's kind echoes. ``output`` is the media its creation is (its kind's) and
    ``seconds`` the length of a video or audio creation.
    """

    id: str
    seq: int
    org: str
    api_key: str
    key_id: str
    request: Request
    echo: dict[str, Any]
    settings: dict[str, Any]
    creation_id: str
    credits: int
    processing_time: float
    failure_code: str
    created_at: float
    created_at_text: str
    created_wall: datetime
    output: Output = "video"
    seconds: float = 0.0
    state: TaskState = TaskState.CREATED
    err_code: str = ""
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def payload(self) -> str:
        """The request's ``payload`` ("" when none)."""
        return self.request.payload or ""

    @property
    def callback_url(self) -> str:
        """Where callbacks go ("" when none)."""
        return self.request.callback_url or ""

    @property
    def is_terminal(self) -> bool:
        """Whether the task has ended."""
        return self.state.is_terminal


@attrs.frozen(kw_only=True)
class Transition:
    """A task entered ``state`` at ``at`` (monotonic seconds)."""

    task_id: str
    state: TaskState
    at: float


@attrs.frozen(kw_only=True)
class SyncRecord:
    """One answer of a synchronous endpoint (``audio-tts``, ``audio-clone``,
    ``img2video-prompt-recommendation``): not a task, it holds no slot and is never listed.

    Attributes:
        id: Its ``task_id`` (``id`` for prompt recommendations).
        endpoint: The endpoint that answered.
        org: Whose it is.
        credits: What it cost.
        created_at_text: Its RFC 3339 ``created_at``.
        file_id: The name of its audio file (speech, a cloned voice's demo), "" when it has none.
        voice_id: The voice a clone created.
        payload: The request's ``payload`` ("" when none).
    """

    id: str
    endpoint: str
    org: str
    credits: int
    created_at_text: str
    file_id: str = ""
    voice_id: str = ""
    payload: str = ""


@attrs.frozen
class RequestRecord:
    """One request as the emulator saw it (``EmulatorStats.log``).

    Attributes:
        arrived: When it arrived (``time.monotonic()``, the event loop's clock).
        answered: When its answer was sent, or the connection dropped.
        endpoint: Its endpoint name (``create``, ``get``, ``list``...).
        status: The answer's status; ``None`` for a dropped connection.
        hold_until: For a 429 with ``Retry-After``: the moment (same clock) before which it asks
            the client not to come back.
    """

    arrived: float
    answered: float
    endpoint: str
    status: int | None
    hold_until: float | None = None


#: Requests kept in ``EmulatorStats.log`` (the oldest are dropped beyond it).
REQUEST_LOG_SIZE: Final = 100_000


@attrs.define(kw_only=True)
class EmulatorStats:
    """Live counters of what the emulator saw and did.

    Attributes:
        requests: Requests by endpoint name (``create``, ``get``, ``cancel``, ``list``, ``credits``,
            ``download``, ``other``), faulted ones included.
        responses: Responses by HTTP status (dropped connections are not responses).
        tasks_created: Tasks stored.
        tasks_by_payload: Tasks per ``payload`` (the SDK stamps a fingerprint there, so a count
            above 1 means a duplicate submission).
        max_in_flight: The most unfinished tasks one organization had at once.
        max_in_flight_by_org: The same, per organization.
        max_processing: The most tasks one organization had processing at once.
        faults: Faults injected, by name.
        callbacks_sent: Callback attempts that got a 2xx.
        callbacks_failed: Callback attempts that failed (non-2xx, error or timeout).
        callbacks_dropped: Callbacks deliberately never sent.
        callbacks_forged: Callbacks sent with a wrong signature.
        downloads: File downloads served (200 or 206).
        log: The last requests, in the order they were answered (at most ``REQUEST_LOG_SIZE``).
    """

    requests: Counter[str] = attrs.field(factory=Counter)
    responses: Counter[int] = attrs.field(factory=Counter)
    tasks_created: int = 0
    tasks_by_payload: Counter[str] = attrs.field(factory=Counter)
    max_in_flight: int = 0
    max_in_flight_by_org: Counter[str] = attrs.field(factory=Counter)
    max_processing: int = 0
    faults: Counter[str] = attrs.field(factory=Counter)
    callbacks_sent: int = 0
    callbacks_failed: int = 0
    callbacks_dropped: int = 0
    callbacks_forged: int = 0
    downloads: int = 0
    log: deque[RequestRecord] = attrs.field(factory=lambda: deque(maxlen=REQUEST_LOG_SIZE))


@attrs.frozen(kw_only=True)
class OrgCredits:
    """One organization's balance and load, as ``GET /ent/v2/credits`` reports it."""

    credit_remain: int
    concurrency_limit: int
    current_concurrency: int
    queue_count: int


@attrs.frozen(kw_only=True)
class ListQuery:
    """The filters and paging of ``GET /ent/v2/tasks``, already parsed.

    Attributes:
        task_ids: Only these ids (empty: any).
        states: Only these states (empty: any).
        created_from: Earliest ``created_at`` (default: seven days before now).
        created_to: Latest ``created_at`` (default: now, i.e. no upper bound).
        model_versions: Model ids or short versions (``q2-pro``, ``2.0``) (empty: any).
        resolutions: Only these resolutions (empty: any).
        page_size: Rows per page.
        page: Page number from 0, used when no ``page_token`` is given.
        page_token: The opaque token of a previous page.
    """

    task_ids: frozenset[str] = frozenset()
    states: frozenset[str] = frozenset()
    created_from: datetime | None = None
    created_to: datetime | None = None
    model_versions: frozenset[str] = frozenset()
    resolutions: frozenset[str] = frozenset()
    page_size: int = DEFAULT_PAGE_SIZE
    page: int = 0
    page_token: str = ""


@attrs.frozen(kw_only=True)
class ListResult:
    """One page of tasks, newest first, and the token of the next page ("" when none)."""

    tasks: tuple[TaskRecord, ...]
    next_page_token: str


@attrs.define
class _Org:
    credits: int
    queue: deque[str] = attrs.field(factory=deque)
    running: set[str] = attrs.field(factory=set)
    in_flight: int = 0
    tasks: list[TaskRecord] = attrs.field(factory=list)
    voices: set[str] = attrs.field(factory=set)


def cost_of(request: Request, *, duration: int, resolution: str) -> int:
    """Credits a task costs: seconds × the resolution's price, halved (rounded up) off-peak, plus
    :data:`IS_REC_CREDITS` for a recommended prompt (``is_rec``)."""
    cost = duration * PRICE_PER_SECOND.get(resolution, max(PRICE_PER_SECOND.values()))
    cost = (cost + 1) // 2 if request.is_off_peak else cost
    return cost + IS_REC_CREDITS if getattr(request, "is_rec", None) else cost


def kind_cost(endpoint: str, settings: Mapping[str, Any], seconds: float) -> int:
    """Credits a task of a kind described field by field costs (``_rules.KIND_RULES``), from the
    settings it runs with; where the docs give no price, a video is charged like the others at
    720p (:data:`PRICE_PER_SECOND`)."""
    resolution = settings.get("resolution", "")
    if endpoint in ("multiframe", "extend"):
        # extend is charged for the seconds it adds (its ``duration``), multiframe for the film.
        billed = settings["duration"] if endpoint == "extend" else seconds
        base, per_second = GRID_PRICES.get((settings["model"], resolution), (0, PRICE_PER_SECOND["720p"]))
        return base + per_second * math.ceil(billed)
    if endpoint == "upscale-new":
        return math.ceil(seconds) * UPSCALE_PRICE_PER_SECOND.get(
            resolution, max(UPSCALE_PRICE_PER_SECOND.values())
        )
    if endpoint == "reference2image":
        return IMAGE_CREDITS
    if endpoint in ("text2audio", "timing2audio"):
        return 1 if seconds < 5 else 2  # < 5 s: 1 credit, up to 10 s: 2 (§14.2, PRICE-CN)
    return math.ceil(seconds) * PRICE_PER_SECOND["720p"]


def sync_cost(request: SpeechRequest | CloneVoiceRequest | PromptRequest) -> int:
    """Credits a synchronous call costs: speech and a cloned voice's preview by their characters
    (:data:`SPEECH_CHARS_PER_CREDIT`, at least 1); prompt suggestions nothing (no price documented)."""
    if isinstance(request, PromptRequest):
        return 0
    return max(1, math.ceil(len(request.text) / SPEECH_CHARS_PER_CREDIT))


def model_version(model: str) -> str:
    """The list filter's short name of a model id (``viduq2-pro`` → ``q2-pro``, ``vidu2.0`` → ``2.0``)."""
    return model.removeprefix("vidu")


def format_created_at(wall_ns: int) -> str:
    """RFC 3339 UTC with nanoseconds, as Vidu writes it (``2026-01-20T06:52:02.323137590Z``)."""
    seconds, nanos = divmod(wall_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos:09d}Z"


def _encode_token(seq: int) -> str:
    return base64.urlsafe_b64encode(f"after:{seq}".encode()).decode("ascii").rstrip("=")


def _decode_token(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
        prefix, _, number = text.partition(":")
        if prefix != "after":
            raise ValueError(token)
        return int(number)
    except ValueError as exc:  # binascii.Error and UnicodeDecodeError are ValueErrors too
        raise StateError(400, "BadRequest", "invalid page token") from exc


class EmulatorState:
    """Every task of every organization, and the clockwork that moves them.

    Args:
        config: The emulator configuration (concurrency, queue cap, timings, credits, seeds).
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.stats = EmulatorStats()
        self._tasks: dict[str, TaskRecord] = {}
        self._creations: dict[str, TaskRecord] = {}
        self._sync: dict[str, SyncRecord] = {}
        self._orgs: dict[str, _Org] = {}
        self._heap: list[tuple[float, int, int, str]] = []
        self._order = 0
        self._seq = 0
        self._last_id = 0
        self._unfinished = 0
        self._rng = random.Random(f"emulator:{config.seed}")
        self._failure_rng = random.Random(f"task-failure:{config.faults.seed}")
        self._id_salt = self._rng.randrange(1 << 16)

    # --- reading ---------------------------------------------------------------------------------

    @property
    def tasks(self) -> Mapping[str, TaskRecord]:
        """Every task by id (read-only view, live)."""
        return MappingProxyType(self._tasks)

    @property
    def idle(self) -> bool:
        """Whether no task is unfinished."""
        return self._unfinished == 0

    def in_flight(self) -> dict[str, int]:
        """Unfinished tasks per organization now."""
        return {name: org.in_flight for name, org in self._orgs.items()}

    def next_due(self) -> float | None:
        """When the next transition is due (monotonic seconds), or ``None`` when nothing is pending."""
        while self._heap and not self._event_live(self._heap[0]):
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def get(self, task_id: str, *, org: str | None = None) -> TaskRecord:
        """The task ``task_id`` (of ``org`` when given).

        Raises:
            StateError: 404 ``TaskNotFound``.
        """
        task = self._tasks.get(task_id)
        if task is None or (org is not None and task.org != org):
            raise StateError(404, "TaskNotFound", "task not found")
        return task

    def credits(self, org: str) -> OrgCredits:
        """``org``'s balance, concurrency limit, tasks processing and tasks waiting."""
        state = self._org(org)
        return OrgCredits(
            credit_remain=state.credits,
            concurrency_limit=self.config.concurrency,
            current_concurrency=len(state.running),
            queue_count=state.in_flight - len(state.running),
        )

    # --- writing ---------------------------------------------------------------------------------

    def submit(
        self, request: Request, *, now: float, wall_ns: int, org: str, api_key: str, key_id: str = ""
    ) -> TaskRecord:
        """Store a new task in ``created`` and charge its credits.

        Raises:
            StateError: 429 ``QuotaExceeded`` beyond ``concurrency + max_queue`` unfinished tasks;
                ``CreditInsufficient`` when the balance is below the cost.
        """
        state = self._org(org)
        limit = self.config.max_queue
        if limit is not None and state.in_flight >= self.config.concurrency + limit:
            raise StateError(429, "QuotaExceeded", "quota exceeded")
        kind = kind_of(request)
        if isinstance(request, Reference2Video | Text2Video | Img2Video | StartEnd2Video):
            settings = self._video_settings(request)
            seconds = float(settings["duration"])
            cost = cost_of(request, duration=settings["duration"], resolution=settings["resolution"])
        else:
            settings, seconds = self._spec_settings(request, org)
            cost = kind_cost(kind.endpoint, settings, seconds)
        if state.credits < cost:
            raise StateError(
                self.config.credit_insufficient_status, "CreditInsufficient", "insufficient credits"
            )
        state.credits -= cost

        self._seq += 1
        task_id = self._next_id(wall_ns)
        created_at_text = format_created_at(wall_ns)
        settings.update(
            task_id=task_id, state=TaskState.CREATED.value, credits=cost, created_at=created_at_text
        )
        fields = ECHO_FIELDS.get(kind.endpoint)
        if kind.endpoint == "start-end2video" and settings["model"].startswith("viduq3"):
            fields = (*(fields or ()), "audio")
        echo: dict[str, Any]
        if isinstance(request, Reference2Video):
            echo = settings
        elif fields is not None:
            echo = {name: settings[name] for name in fields}
        else:  # the docs did not capture this kind's echo: the envelope and the request's own fields
            echo = {name: settings[name] for name in ENVELOPE[:2]}
            echo.update(request_to_json(request))
            echo.update((name, settings[name]) for name in _ECHOED_DEFAULTS.get(kind.endpoint, ()))
            if kind.payload:
                echo["payload"] = settings["payload"]
            echo.update((name, settings[name]) for name in ENVELOPE[2:])
        processing = self.config.processing_time
        drawn = processing(self._rng) if callable(processing) else processing
        faults = self.config.faults
        failing = faults.task_failure > 0 and self._failure_rng.random() < faults.task_failure
        task = TaskRecord(
            id=task_id,
            seq=self._seq,
            org=org,
            api_key=api_key,
            key_id=key_id,
            request=request,
            echo=echo,
            settings=settings,
            creation_id=self._next_id(wall_ns),
            credits=cost,
            processing_time=max(0.0, float(drawn)),
            failure_code=faults.task_failure_code if failing else "",
            created_at=now,
            created_at_text=created_at_text,
            created_wall=datetime.fromtimestamp(wall_ns // 1000 / 1e6, UTC),
            output=kind.output,
            seconds=seconds,
        )
        self._tasks[task_id] = task
        self._creations[task.creation_id] = task
        state.tasks.append(task)
        state.in_flight += 1
        self._unfinished += 1
        self.stats.tasks_created += 1
        self.stats.tasks_by_payload[task.payload] += 1
        self.stats.max_in_flight = max(self.stats.max_in_flight, state.in_flight)
        by_org = self.stats.max_in_flight_by_org
        if state.in_flight > by_org[org]:
            by_org[org] = state.in_flight
        self._push(now + self.config.created_time, _QUEUE, task_id)
        return task

    def _seed(self, seed: int | None) -> int:
        """The seed a task runs with: the request's, or a random one for 0 or none (the docs' rule)."""
        return seed or self._rng.randrange(1, _rules.MAX_SEED)

    def _video_settings(
        self, request: Reference2Video | Text2Video | Img2Video | StartEnd2Video
    ) -> dict[str, Any]:
        """Every setting of a task of the first four kinds, defaults applied (the model table's)."""
        endpoint = kind_of(request).endpoint
        rule = _rules.ENDPOINT_MODELS[endpoint].get(request.model)
        duration = request.duration
        if duration is None:
            duration = rule.default_duration if rule is not None else _UNKNOWN_MODEL_DURATION
        resolution = request.resolution or (
            rule.default_resolution if rule is not None else _UNKNOWN_MODEL_RESOLUTION
        )
        audio = (
            request.audio
            if request.audio is not None
            else (rule.audio_default if rule is not None else False)
        )
        return {
            "task_id": "",
            "state": TaskState.CREATED.value,
            "model": request.model,
            "style": getattr(request, "style", None) or "general",
            "prompt": request.prompt or "",
            "images": [i for i in getattr(request, "images", ()) if isinstance(i, str)],
            "duration": duration,
            "seed": self._seed(request.seed),
            "aspect_ratio": getattr(request, "aspect_ratio", None) or "16:9",
            "resolution": resolution,
            "movement_amplitude": request.movement_amplitude or "auto",
            "bgm": bool(request.bgm),
            "audio": audio,
            "audio_type": getattr(request, "audio_type", None) or "all",
            "payload": request.payload or "",
            "off_peak": bool(request.off_peak),
            "credits": 0,
            "watermark": bool(request.watermark),
            "created_at": "",
        }

    def _source(self, org: str, creation_id: str | None) -> TaskRecord | None:
        """The organization's own video creation ``creation_id`` (what extend and upscale start from)."""
        task = self._creations.get(creation_id or "")
        return task if task is not None and task.org == org and task.output == "video" else None

    def _spec_settings(self, request: Request, org: str) -> tuple[dict[str, Any], float]:
        """Every setting of a task of a kind described field by field (vidu-api-endpoints.md §5-§15),
        defaults applied, and the length of what it makes (seconds; 0 for an image)."""
        model: str = getattr(request, "model", "")
        models = _rules.ENDPOINT_MODELS.get(kind_of(request).endpoint, {})
        rule = models.get(model)
        images = [i for i in getattr(request, "images", ()) if isinstance(i, str)]
        settings: dict[str, Any] = {
            "model": model,
            "prompt": getattr(request, "prompt", None) or "",
            "images": images,
            "duration": 0,
            "resolution": (getattr(request, "resolution", None) or "")
            or (rule.default_resolution if rule is not None else _UNKNOWN_MODEL_RESOLUTION),
            "aspect_ratio": getattr(request, "aspect_ratio", None) or "16:9",
            "bgm": bool(getattr(request, "bgm", None)),
            "off_peak": False,
            "watermark": bool(getattr(request, "watermark", None)),
            "payload": request.payload or "",
            "callback_url": request.callback_url or "",
        }
        seconds: float = ASSUMED_SOURCE_SECONDS
        if isinstance(request, MultiFrame):
            frames: list[dict[str, Any]] = [
                {"key_image": f.key_image, "prompt": f.prompt or "", "duration": f.duration or 5}
                for f in request.image_settings
            ]
            seconds = sum(f["duration"] for f in frames)  # the segments end to end (§5)
            settings.update(
                start_image=request.start_image,
                image_settings=frames,
                duration=seconds,
                wm_url=request.wm_url or "",
                wm_position=request.wm_position or "unspecified",
                meta_data=request.meta_data or "",
            )
        elif isinstance(request, Template):
            seconds = TEMPLATE_SECONDS
            settings.update(template=request.template, seed=self._seed(request.seed), duration=seconds)
        elif isinstance(request, TemplateStory):
            seconds = STORY_SECONDS
            settings.update(story=request.story, duration=seconds, aspect_ratio="9:16")
        elif isinstance(request, Reference2Image):
            seconds = 0
            settings.update(seed=self._seed(request.seed))
        elif isinstance(request, Extend):
            added = request.duration or 5
            source = self._source(org, request.video_creation_id)
            seconds = (source.seconds if source is not None else ASSUMED_SOURCE_SECONDS) + added
            settings.update(
                duration=added,
                video_creation_id=request.video_creation_id or "",
                video_url=request.video_url if isinstance(request.video_url, str) else "",
                aspect_ratio=source.settings["aspect_ratio"] if source is not None else "16:9",
            )
        elif isinstance(request, Upscale):
            source = self._source(org, request.video_creation_id)
            seconds = source.seconds if source is not None else ASSUMED_SOURCE_SECONDS
            target = request.upscale_resolution or "1080p"
            settings.update(
                upscale_resolution=target,
                resolution=target,
                duration=seconds,
                aspect_ratio=source.settings["aspect_ratio"] if source is not None else "16:9",
            )
        elif isinstance(request, Text2Audio | Timing2Audio):
            length = request.duration if request.duration is not None else AUDIO_DEFAULT_SECONDS
            seconds = float(length)
            settings.update(
                duration=int(length) if float(length).is_integer() else length,
                seed=self._seed(request.seed),
                resolution="",
                aspect_ratio="",
            )
            if isinstance(request, Timing2Audio):
                settings["timing_prompts"] = request_to_json(request)["timing_prompts"]
        else:  # lip-sync, image2dance: as long as the source video, which the emulator cannot see
            settings.update(duration=seconds)
        return settings, float(seconds)

    # --- the synchronous endpoints ---------------------------------------------------------------

    def call_sync(
        self,
        request: SpeechRequest | CloneVoiceRequest | PromptRequest,
        *,
        endpoint: str,
        wall_ns: int,
        org: str,
    ) -> SyncRecord:
        """Answer a synchronous endpoint: charge it, remember a cloned voice, name its audio file.

        Raises:
            StateError: 400 ``FieldInvalid`` for a ``voice_id`` the organization already cloned;
                ``CreditInsufficient`` when the balance is below the cost.
        """
        state = self._org(org)
        voice_id = request.voice_id if isinstance(request, CloneVoiceRequest) else ""
        if voice_id and voice_id in state.voices:
            # The docs: a voice_id must be unique; a test saw the message "voice_id duplicated" (§17.1).
            raise StateError(400, "FieldInvalid", "voice_id duplicated")
        cost = sync_cost(request)
        if state.credits < cost:
            raise StateError(
                self.config.credit_insufficient_status, "CreditInsufficient", "insufficient credits"
            )
        state.credits -= cost
        if voice_id:
            state.voices.add(voice_id)
        self._seq += 1
        record = SyncRecord(
            id=self._next_id(wall_ns),
            endpoint=endpoint,
            org=org,
            credits=cost,
            created_at_text=format_created_at(wall_ns),
            file_id="" if isinstance(request, PromptRequest) else self._next_id(wall_ns),
            voice_id=voice_id,
            payload=getattr(request, "payload", None) or "",
        )
        self._sync[record.id] = record
        return record

    @property
    def sync_records(self) -> Mapping[str, SyncRecord]:
        """Every answer of a synchronous endpoint by id (read-only view, live)."""
        return MappingProxyType(self._sync)

    def cancel(self, task_id: str, *, now: float, org: str | None = None) -> Transition:
        """Cancel a task still ``created`` or ``queueing``: it fails with ``UserCancelled``, refunded.

        Call :meth:`advance` first so the decision is made on the current state.

        Raises:
            StateError: 404 ``TaskNotFound``; 400 ``BadRequest`` once the task is scheduled.
        """
        task = self.get(task_id, org=org)
        if task.state not in (TaskState.CREATED, TaskState.QUEUEING):
            raise StateError(400, "BadRequest", "task state is scheduled, can not cancel")
        # The queue entry and heap event are left behind and skipped when reached: O(1) cancel.
        return self._finish(task, now, CANCELLED_CODE)

    def advance(self, now: float) -> list[Transition]:
        """Apply every transition due by ``now``, each at its own due time, in time order."""
        out: list[Transition] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, _, kind, task_id = heapq.heappop(heap)
            task = self._tasks[task_id]
            if kind == _QUEUE and task.state is TaskState.CREATED:
                task.state = TaskState.QUEUEING
                task.queued_at = due
                out.append(Transition(task_id=task_id, state=TaskState.QUEUEING, at=due))
                org = self._orgs[task.org]
                org.queue.append(task_id)
                self._fill(org, due, out)
            elif kind == _FINISH and task.state is TaskState.PROCESSING:
                out.append(self._finish(task, due, task.failure_code))
                self._fill(self._orgs[task.org], due, out)
        return out

    # --- listing ---------------------------------------------------------------------------------

    def list_tasks(self, org: str, query: ListQuery, *, wall: datetime) -> ListResult:
        """One page of ``org``'s tasks matching ``query``, newest first.

        Args:
            org: Whose tasks.
            query: Filters and paging.
            wall: The wall-clock now, for the default seven-day window.

        Raises:
            StateError: 400 ``PageSizeOutOfRange`` or ``BadRequest`` (bad token).
        """
        if not 1 <= query.page_size <= MAX_PAGE_SIZE:
            raise StateError(400, "PageSizeOutOfRange", "page size out of range")
        after = _decode_token(query.page_token) if query.page_token else None
        created_from = query.created_from or wall - LIST_WINDOW
        rows = self._matching(self._org(org).tasks, query, created_from, after)
        skip = 0 if after is not None else query.page * query.page_size
        page: list[TaskRecord] = []
        more = False
        for task in rows:
            if skip:
                skip -= 1
                continue
            if len(page) == query.page_size:
                more = True
                break
            page.append(task)
        token = _encode_token(page[-1].seq) if more and page else ""
        return ListResult(tasks=tuple(page), next_page_token=token)

    def _matching(
        self, tasks: list[TaskRecord], query: ListQuery, created_from: datetime, after: int | None
    ) -> Iterator[TaskRecord]:
        for task in reversed(tasks):
            if after is not None and task.seq >= after:
                continue
            if task.created_wall < created_from:
                continue
            if query.created_to is not None and task.created_wall > query.created_to:
                continue
            if query.task_ids and task.id not in query.task_ids:
                continue
            if query.states and task.state.value not in query.states:
                continue
            model = task.settings["model"]
            if query.model_versions and not {model, model_version(model)} & query.model_versions:
                continue
            if query.resolutions and task.settings["resolution"] not in query.resolutions:
                continue
            yield task

    # --- internals -------------------------------------------------------------------------------

    def _org(self, org: str) -> _Org:
        state = self._orgs.get(org)
        if state is None:
            state = self._orgs[org] = _Org(credits=self.config.credits)
        return state

    def _next_id(self, wall_ns: int) -> str:
        millis = max(0, wall_ns // 1_000_000 - _ID_EPOCH_MS)
        candidate = (millis << _ID_SEQUENCE_BITS) | (
            (self._id_salt + self._seq) & ((1 << _ID_SEQUENCE_BITS) - 1)
        )
        self._last_id = max(candidate, self._last_id + 1)
        return str(self._last_id)

    def _push(self, due: float, kind: int, task_id: str) -> None:
        self._order += 1
        heapq.heappush(self._heap, (due, self._order, kind, task_id))

    def _event_live(self, event: tuple[float, int, int, str]) -> bool:
        state = self._tasks[event[3]].state
        return state is (TaskState.CREATED if event[2] == _QUEUE else TaskState.PROCESSING)

    def _fill(self, org: _Org, now: float, out: list[Transition]) -> None:
        while len(org.running) < self.config.concurrency and org.queue:
            task = self._tasks[org.queue.popleft()]
            if task.state is not TaskState.QUEUEING:
                continue  # cancelled while waiting
            task.state = TaskState.PROCESSING
            task.started_at = now
            org.running.add(task.id)
            self.stats.max_processing = max(self.stats.max_processing, len(org.running))
            self._push(now + task.processing_time, _FINISH, task.id)
            out.append(Transition(task_id=task.id, state=TaskState.PROCESSING, at=now))

    def _finish(self, task: TaskRecord, now: float, err_code: str) -> Transition:
        org = self._orgs[task.org]
        org.running.discard(task.id)
        org.in_flight -= 1
        self._unfinished -= 1
        task.finished_at = now
        if err_code:
            task.state = TaskState.FAILED
            task.err_code = err_code
            org.credits += task.credits  # refunded: a failed task costs nothing
            task.credits = 0
        else:
            task.state = TaskState.SUCCESS
        return Transition(task_id=task.id, state=task.state, at=now)


def parse_list_values(values: Iterable[str]) -> frozenset[str]:
    """Repeated query values, each possibly comma-separated, as one set (empty strings dropped)."""
    return frozenset(part.strip() for value in values for part in value.split(",") if part.strip())


def states_named(values: Collection[str]) -> frozenset[str]:
    """The state filter, lower-cased (``queuing`` read as ``queueing``)."""
    return frozenset("queueing" if v.lower() == "queuing" else v.lower() for v in values)
