"""Running the emulator: ``Emulator``, an async context manager for tests, demos and the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Final, Self

from aiohttp import web

from ._app import RUNTIME, Runtime, make_app
from ._config import EmulatorConfig
from ._state import EmulatorStats, SyncRecord, TaskRecord

__all__ = ["DEFAULT_HOST", "Emulator"]

DEFAULT_HOST: Final = "127.0.0.1"


class Emulator:
    """A local Vidu server on a free port, for tests and demos.

    ``async with Emulator(EmulatorConfig(concurrency=2)) as emu:`` starts it (bound to ``host``,
    port ``port`` or a free one) and stops it on exit; point a client at ``emu.base_url`` with
    ``emu.api_key``.

    Args:
        config: The emulator's behaviour (defaults: :class:`EmulatorConfig`).
        host: The interface to bind.
        port: The port to bind; 0 picks a free one.
    """

    def __init__(
        self, config: EmulatorConfig | None = None, *, host: str = DEFAULT_HOST, port: int = 0
    ) -> None:
        self.config = config or EmulatorConfig()
        self.app = make_app(self.config)
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    def __repr__(self) -> str:
        where = self.base_url if self._runner is not None else "not running"
        return f"<Emulator {where}>"

    @property
    def runtime(self) -> Runtime:
        """The live runtime (state, faults, background work)."""
        return self.app[RUNTIME]

    @property
    def port(self) -> int:
        """The bound port (known once started; kept after stop for reports)."""
        if self._port == 0:
            raise RuntimeError("the emulator has not been started")
        return self._port

    @property
    def origin(self) -> str:
        """``http://host:port``, without the path prefix."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API's base URL: ``http://host:port`` plus the configured path prefix."""
        return self.origin + self.config.path_prefix

    @property
    def api_key(self) -> str:
        """The key of organization ``"default"``."""
        return self.config.api_key

    @property
    def stats(self) -> EmulatorStats:
        """Live counters: requests, responses, tasks, faults, callbacks, downloads."""
        return self.runtime.stats

    @property
    def tasks(self) -> Mapping[str, TaskRecord]:
        """Every task by id, live (state, timestamps, payload, credits...)."""
        return self.runtime.state.tasks

    @property
    def sync_records(self) -> Mapping[str, SyncRecord]:
        """Every answer of a synchronous endpoint (speech, cloned voice, prompt suggestions) by id, live."""
        return self.runtime.state.sync_records

    def inject(self, endpoint: str, fault: str, count: int = 1) -> None:
        """Make the next ``count`` requests to ``endpoint`` fail with ``fault`` (before any rate-based fault).

        Args:
            endpoint: ``create`` (every task kind), ``get``, ``cancel``, ``list``, ``credits``,
                ``download``, or a synchronous endpoint by its path: ``audio-tts``,
                ``audio-clone``, ``img2video-prompt-recommendation``.
            fault: ``rate_limit``, ``throttle``, ``quota_exceeded``, ``server_error``,
                ``server_error_after_commit``, ``slow``, ``drop``, ``commit_then_drop``,
                ``operation_in_process`` or ``unknown_state``.
            count: How many requests it hits.

        Raises:
            ValueError: an unknown endpoint or fault.
        """
        self.runtime.inject(endpoint, fault, count)

    async def wait_idle(self) -> None:
        """Wait until no task is unfinished (bound it with ``asyncio.timeout`` or ``anyio.fail_after``)."""
        runtime = self.runtime
        runtime.tick()
        while not runtime.state.idle:
            await runtime.wait_changed()
            runtime.tick()

    async def start(self) -> None:
        """Bind and serve (``async with`` does this)."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already running")
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = runner.addresses[0]
        self._port = int(bound[1])
        self.runtime.base_url = self.base_url

    async def aclose(self) -> None:
        """Stop serving (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
