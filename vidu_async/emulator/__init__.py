"""A faithful local Vidu ``ent/v2`` server with fault injection, for tests, demos and benchmarks.

| module | owns |
|---|---|
| ``_config`` | ``EmulatorConfig``, ``FaultConfig``, ``CallbackConfig`` |
| ``_state`` | the pure core: tasks, per-organization scheduling, credits, listing, stats |
| ``_app`` | the aiohttp application: handlers, auth, errors, faults, downloads, callbacks |
| ``_server`` | ``Emulator`` (async context manager) |
"""

from ._app import RUNTIME, Runtime, make_app
from ._config import CallbackConfig, EmulatorConfig, FaultConfig
from ._server import Emulator
from ._state import EmulatorState, EmulatorStats, RequestRecord, TaskRecord, Transition

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
    "TaskRecord",
    "Transition",
    "make_app",
]
