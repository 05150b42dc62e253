"""vidu-async: an asyncio-native SDK for Vidu's ``reference2video`` API.

This module only re-exports. Where things live:

=====================  ====================================================================
module                 owns
=====================  ====================================================================
``_models``            frozen request and response types, ``TaskState``
``_rules``             the documented limits and the per-model table
``_validate``          request validation (every problem at once)
``_sniff``             media type and image size from bytes and data URIs
``_convert``           the one cattrs converter: requests out, responses in
``_media``             local files read, checked and encoded off the event loop
``_http``              pure: build calls, read answers, map Vidu's error reasons
``_transport``         the aiohttp session; the one place aiohttp errors are mapped
``_signing``           the callback signature (shared by callbacks and the emulator)
``_config``            base URLs and ``Timeouts``
``_client``            ``ViduClient``, wiring the pieces
``exceptions``         the error tree (public)
``emulator``           a faithful local Vidu server with fault injection (public)
``cli``                the ``vidu-async`` command
=====================  ====================================================================
"""

from __future__ import annotations

from ._client import ViduClient
from ._config import CHINA_BASE_URL, DEFAULT_TIMEOUTS, GLOBAL_BASE_URL, Timeouts
from ._models import (
    Creation,
    CreditPackage,
    CreditRemain,
    Credits,
    Media,
    Reference2Video,
    Subject,
    Task,
    TaskState,
    VideoInfo,
)
from ._version import __version__
from .exceptions import (
    APIError,
    RequestValidationError,
    TaskFailedError,
    ViduError,
)

__all__ = [
    "CHINA_BASE_URL",
    "DEFAULT_TIMEOUTS",
    "GLOBAL_BASE_URL",
    "APIError",
    "Creation",
    "CreditPackage",
    "CreditRemain",
    "Credits",
    "Media",
    "Reference2Video",
    "RequestValidationError",
    "Subject",
    "Task",
    "TaskFailedError",
    "TaskState",
    "Timeouts",
    "VideoInfo",
    "ViduClient",
    "ViduError",
    "__version__",
]
