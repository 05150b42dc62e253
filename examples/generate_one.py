"""Generate one video and save it: the async web app case.

A request handler (FastAPI, aiohttp, Starlette...) builds a ``Reference2Video``, awaits
``client.generate(request, timeout=...)`` and turns each way it can go wrong into a clear answer:

* ``RequestValidationError``: the request breaks a documented rule; nothing was sent or charged
  (a web app answers 422 with the ``field: problem`` lines);
* ``TaskFailedError``: Vidu ran the task and it failed (``err_code`` says why; failed tasks are refunded);
* ``WaitTimeoutError``: not finished in time; with ``cancel_remote=True`` the client also asks Vidu
  to cancel it (Vidu only cancels tasks that have not started processing);
* ``APIError``: Vidu refused the call (bad key, no credits...), with its ``reason`` and ``trace_id``.

In a real app, open one ``ViduClient`` for the app's lifetime (its lifespan) and share it.

Run it (with ``VIDU_API_KEY`` set this calls Vidu and spends credits; without it, or with
``--emulator``, a local emulator of the service answers)::

    python examples/generate_one.py
    python examples/generate_one.py --out videos --timeout 900
    python examples/generate_one.py --prompt "@XiaoGang waves"   # a RequestValidationError
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import anyio

import vidu_async as vidu
from vidu_async.emulator import Emulator, EmulatorConfig
from vidu_async.exceptions import APIError, RequestValidationError, TaskFailedError, WaitTimeoutError

#: How the local emulator behaves when there is no API key: each task processes for half a second.
EMULATOR: Final = EmulatorConfig(processing_time=0.5)

HOT_POT: Final = "@XiaoMing and @XiaoHong are cooking together, and both say they love hot pot."


@asynccontextmanager
async def connect(*, emulator: bool = False) -> AsyncIterator[vidu.ViduClient]:
    """A client for Vidu when ``VIDU_API_KEY`` is set, else (or when asked) for a local emulator."""
    if os.environ.get("VIDU_API_KEY") and not emulator:
        async with vidu.ViduClient() as client:
            yield client
        return
    async with Emulator(EMULATOR) as emu, vidu.ViduClient(emu.api_key, base_url=emu.base_url) as client:
        print(f"(using the local emulator at {emu.base_url}; set VIDU_API_KEY to call Vidu)")
        yield client


def hot_pot(prompt: str = HOT_POT) -> vidu.Reference2Video:
    """The subject call of Vidu's docs: two named subjects, each referenced by ``@name`` in the prompt."""
    return vidu.Reference2Video(
        model="viduq3",
        subjects=[
            vidu.Subject(name="XiaoMing", images=["https://example.com/xiaoming.png"]),
            vidu.Subject(name="XiaoHong", images=["https://example.com/xiaohong.png"]),
        ],
        prompt=prompt,
        duration=5,
    )


async def generate_one(client: vidu.ViduClient, prompt: str, out: Path, timeout: float) -> list[Path]:
    """Validate, generate and download one video; returns the saved files."""
    request = hot_pot(prompt)  # validated here, before anything is sent
    task = await client.generate(request, timeout=timeout, cancel_remote=True)
    print(f"task {task.id}: {task.state.value}, {task.credits} credits")
    files = await client.download(task, out)
    for path in files:
        print(f"saved {path} ({path.stat().st_size} bytes)")
    return files


async def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, generate, and return the exit status (0 saved, 1 failed, 2 bad request)."""
    parser = argparse.ArgumentParser(description="Generate one video with Vidu's reference2video API.")
    parser.add_argument(
        "--prompt", default=HOT_POT, help="the prompt (may @-reference XiaoMing and XiaoHong)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("videos"), help="folder for the video (default: videos)"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait in all (default: 900)")
    parser.add_argument("--emulator", action="store_true", help="use the local emulator even with a key")
    args = parser.parse_args(argv)

    async with connect(emulator=args.emulator) as client:
        try:
            await generate_one(client, args.prompt, args.out, args.timeout)
        except RequestValidationError as exc:
            print(f"not sent, the request is invalid:\n{exc}", file=sys.stderr)
            return 2
        except TaskFailedError as exc:
            print(
                f"task {exc.task.id} failed ({exc.err_code or 'no reason given'}); its credits are refunded",
                file=sys.stderr,
            )
            return 1
        except WaitTimeoutError as exc:
            state = exc.last_task.state.value if exc.last_task else "unknown"
            print(
                f"task {exc.task_id} not finished after {args.timeout:g} s (last seen {state}); "
                "asked Vidu to cancel it if it had not started",
                file=sys.stderr,
            )
            return 1
        except APIError as exc:
            print(f"Vidu refused: {exc.reason} (HTTP {exc.status}, trace id {exc.trace_id})", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
