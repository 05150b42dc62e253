"""vidu-async: an asyncio-native SDK for every Vidu task kind (video, image and audio generation
under ``/ent/v2``) and its synchronous audio and prompt endpoints.

This module only re-exports. Where things live:

=====================  ====================================================================
module                 owns
=====================  ====================================================================
``_models``            frozen request and response types, ``TaskState``
``_kinds``             the ``TaskKind`` seam: each endpoint's path, request type, payload, output
``_rules``             the documented limits and the per-model table
``_validate``          request validation (every problem at once)
``_sniff``             media type and image size from bytes and data URIs
``_convert``           the one cattrs converter (requests out, responses in), compact JSON
``_media``             local files read, checked and encoded off the event loop
``_http``              pure: build calls, read answers, map Vidu's error reasons
``_transport``         the aiohttp session; the one place aiohttp errors are mapped
``_signing``           the callback signature (shared by callbacks and the emulator)
``_secret``            ``Secret``: the API key as a value that never shows itself
``callbacks``          verify Vidu's signed callbacks; the aiohttp receiver (public)
``_config``            base URLs and the policies: ``Timeouts``, ``RetryPolicy``, ``PollPolicy``
``_retry``             pure retry decisions: what a failure means, how long to wait, holds
``_limits``            the request-rate budget (token bucket with AIMD)
``_caller``            one attempt and the one retry layer: every API request goes through it
``_submit``            create plus the one reconcile of a create whose answer was lost
``_poll``              the poll scheduler: one background task per client
``_batch``             ``generate_many``: fan-out under the in-flight limit, resume, ``BatchResult``
``_budget``            a batch's credit budget (``max_credits``)
``_batch_input``       a batch's input items, their keys (by content) and request hashes
``_fleet``             a batch shared by many workers through ``PostgresJournal`` (``SharedBatch``)
``journal``            the ``Journal`` protocol, its SQLite store and ``PostgresJournal`` (public)
``_download``          streaming downloads: ``.part`` files, Range resume, fresh links
``_events``            typed events for metrics hooks
``_client``            ``ViduClient``: lifecycle, configuration, thin methods wiring the pieces
``exceptions``         the error tree (public)
``emulator``           a faithful local Vidu server with fault injection (public)
``cli``                the ``vidu-async`` command (arguments, one-shot commands)
``_runner``            ``vidu-async run``: JSONL jobs, results file, resume
``_progress``          the run's live or plain progress display
=====================  ====================================================================
"""

from __future__ import annotations

from ._batch import Batch, BatchResult
from ._client import ViduClient
from ._config import (
    CHINA_BASE_URL,
    DEFAULT_DOWNLOADS,
    DEFAULT_POLL,
    DEFAULT_RETRY,
    DEFAULT_TIMEOUTS,
    GLOBAL_BASE_URL,
    DownloadPolicy,
    PollPolicy,
    RetryPolicy,
    Timeouts,
)
from ._convert import request_from_json
from ._events import Event, Hook, RequestEvent, RetryEvent, StateChangeEvent, ThrottleEvent
from ._fleet import SharedBatch
from ._models import (
    ClonedVoice,
    Creation,
    CreditPackage,
    CreditRemain,
    Credits,
    Extend,
    Image2Dance,
    Img2Video,
    KeyFrame,
    LipSync,
    Media,
    MultiFrame,
    PromptSuggestion,
    PromptSuggestions,
    Reference2Image,
    Reference2Video,
    Request,
    Speech,
    StartEnd2Video,
    Subject,
    Task,
    TaskState,
    Template,
    TemplateStory,
    Text2Audio,
    Text2Video,
    Timing2Audio,
    TimingPrompt,
    Upscale,
    VideoInfo,
)
from ._version import __version__
from .exceptions import (
    APIError,
    RequestValidationError,
    TaskFailedError,
    ViduError,
)
from .journal import Journal, JournalEntry, PostgresJournal, SQLiteJournal

__all__ = [
    "CHINA_BASE_URL",
    "DEFAULT_DOWNLOADS",
    "DEFAULT_POLL",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUTS",
    "GLOBAL_BASE_URL",
    "APIError",
    "Batch",
    "BatchResult",
    "ClonedVoice",
    "Creation",
    "CreditPackage",
    "CreditRemain",
    "Credits",
    "DownloadPolicy",
    "Event",
    "Extend",
    "Hook",
    "Image2Dance",
    "Img2Video",
    "Journal",
    "JournalEntry",
    "KeyFrame",
    "LipSync",
    "Media",
    "MultiFrame",
    "PollPolicy",
    "PostgresJournal",
    "PromptSuggestion",
    "PromptSuggestions",
    "Reference2Image",
    "Reference2Video",
    "Request",
    "RequestEvent",
    "RequestValidationError",
    "RetryEvent",
    "RetryPolicy",
    "SQLiteJournal",
    "SharedBatch",
    "Speech",
    "StartEnd2Video",
    "StateChangeEvent",
    "Subject",
    "Task",
    "TaskFailedError",
    "TaskState",
    "Template",
    "TemplateStory",
    "Text2Audio",
    "Text2Video",
    "ThrottleEvent",
    "Timeouts",
    "Timing2Audio",
    "TimingPrompt",
    "Upscale",
    "VideoInfo",
    "ViduClient",
    "ViduError",
    "__version__",
    "request_from_json",
]
