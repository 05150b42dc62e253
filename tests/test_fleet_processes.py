"""Many workers, one batch, for real: the emulator in its own process, CLI workers in theirs, a
PostgreSQL journal between them, and workers killed, frozen and resumed while they work.

The emulator's counters come from ``GET /_emulator/stats`` (``vidu-async emulator
--stats-endpoint``), the only window a test has on a server in another process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any, Final

import aiohttp
from conftest import small_request

import vidu_async as vidu
from vidu_async.emulator import Emulator, EmulatorConfig
from vidu_async.emulator._app import STATS_PATH

_LISTENING: Final = re.compile(r"listening on (http://\S+)")


async def fetch_stats(origin: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(origin + STATS_PATH) as response:
        return response.status, await response.json(content_type=None)


@contextlib.contextmanager
def emulator_process(*args: str) -> Iterator[str]:
    """``python -m vidu_async emulator --port 0 ARGS`` in its own process; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "vidu_async", "emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        url = None
        for line in process.stdout:
            if found := _LISTENING.search(line):
                url = found.group(1)
                break
        assert url is not None, "the emulator did not start"
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


class TestStatsEndpoint:
    """``GET /_emulator/stats``: opt-in, read-only, and not counted as a request."""

    async def test_absent_by_default(self) -> None:
        """The faithful surface has no such route: 404, as for any unknown path."""
        async with Emulator() as emu:
            status, body = await fetch_stats(emu.origin)
        assert status == 404
        assert body["reason"] == "NotFound"

    async def test_counters(self) -> None:
        """Tasks per payload and per request, peak in flight per organization, requests per
        endpoint; reading them counts as no request."""
        config = EmulatorConfig(stats_endpoint=True, processing_time=0.05, path_prefix="/vidu")
        async with Emulator(config) as emu, vidu.ViduClient(emu.api_key, base_url=emu.base_url) as client:
            first = await client.generate(small_request(prompt="@Ming cooks hot pot, take 1."))
            await client.generate(small_request(prompt="@Ming cooks hot pot, take 2."))
            status, body = await fetch_stats(emu.origin)
            again = (await fetch_stats(emu.origin))[1]

        assert status == 200
        assert body["tasks_created"] == 2
        assert first.payload in body["tasks_by_payload"]
        assert sorted(body["tasks_by_payload"].values()) == [1, 1]
        assert sorted(body["tasks_by_request"].values()) == [1, 1]
        assert body["max_in_flight"] == 1
        assert body["max_in_flight_by_org"] == {"default": 1}
        assert body["in_flight"] == {"default": 0}
        assert body["unfinished"] == 0
        assert body["requests"]["create"] == 2
        assert "other" not in body["requests"]
        assert again["requests"] == body["requests"]

    def test_command_line(self) -> None:
        """``vidu-async emulator --stats-endpoint`` serves it from its own process."""
        import anyio

        with emulator_process("--stats-endpoint", "--concurrency", "3") as url:
            status, body = anyio.run(fetch_stats, url)
        assert status == 200
        assert body["tasks_created"] == 0
        assert body["requests"] == {}
        json.dumps(body)
