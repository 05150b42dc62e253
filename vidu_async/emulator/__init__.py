"""A faithful local Vidu ``ent/v2`` server with fault injection, for tests, demos and benchmarks.

| module | owns |
|---|---|
| ``_config`` | ``EmulatorConfig``, ``FaultConfig``, ``CallbackConfig`` |
| ``_state`` | the pure core: tasks of every kind (settings, echo, credits), scheduling per organization, |
| | the synchronous endpoints' answers, listing, stats |
| ``_app`` | the aiohttp application: every endpoint's handler, auth, errors, faults, downloads, callbacks |
| ``_files`` | the tiny real files of image and audio creations (PNG, MP3, WAV) |
| ``_server`` | ``Emulator`` (async context manager) |
"""

from ._app import RUNTIME, Runtime, make_app
from ._config import CallbackConfig, EmulatorConfig, FaultConfig
from ._server import Emulator
from ._state import EmulatorState, EmulatorStats, RequestRecord, SyncRecord, TaskRecord, Transition

__all__ = [
    "RUNTIME",
    "CallbackConfig",
    "Emulator",
    "EmulatorConfig",
    "EmulatorState",
    "EmulatorStats",
    "FaultConfig",
    "RequestRecord",
    "Runtime",
    "SyncRecord",
    "TaskRecord",
    "Transition",
    "make_app",
]
