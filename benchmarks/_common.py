"""Shared helpers of the engine benchmarks (not a benchmark itself).

What lives here: the request every benchmark sends, small statistics and formatting helpers, the
process's resident memory, instruction counts under callgrind, a free local port, and servers run in a child process (the emulator through
``python -m vidu_async emulator``, and a trivial aiohttp handler, ``python benchmarks/_common.py
trivial-server``), so that a client can be measured without the server's work in its own process.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import vidu_async as vidu
from vidu_async import _convert

__all__ = [
    "API_KEY",
    "REQUEST",
    "benchmark_parser",
    "callgrind_instructions",
    "emulator_process",
    "free_port",
    "percentile",
    "print_table",
    "raw_body",
    "rss_bytes",
    "trivial_server_process",
    "verdict",
]

#: The key the emulator accepts by default (``EmulatorConfig.api_key``, ``vidu-async emulator --key``).
API_KEY: Final = "vda_emulator_key"

#: A typical subject-mode request: URLs, not data URIs, as a batch read from JSONL carries them.
REQUEST: Final = vidu.Reference2Video(
    model="viduq2-pro",
    subjects=[
        vidu.Subject(name="Ming", images=["https://example.com/media/ming.png"]),
        vidu.Subject(name="Hong", images=["https://example.com/media/hong.png"]),
    ],
    prompt="@Ming cooks hot pot for @Hong and says he loves it, steam rising, warm evening light.",
    duration=5,
    resolution="720p",
)

_LISTENING: Final = re.compile(r"listening on (http://\S+)")


#: The JSON the SDK sends for :data:`REQUEST` (its own encoding), without the ``payload``.
_BODY: Final = _convert.request_to_json(REQUEST)


def raw_body() -> dict[str, Any]:
    """The JSON the SDK sends for :data:`REQUEST`, with a fresh fingerprint-like ``payload``
    (the SDK stamps one into every create), for clients that build their own requests."""
    return {**_BODY, "payload": "vidu-async:" + secrets.token_hex(12)}


def benchmark_parser(doc: str | None, quick: str) -> argparse.ArgumentParser:
    """The command line every benchmark starts from: its docstring's first line and ``--quick``
    (``quick`` says what the quick run does)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--quick", action="store_true", help=quick)
    return parser


def verdict(ok: bool) -> str:
    """``met`` or ``MISSED``, for the line that compares a figure with its target."""
    return "met" if ok else "MISSED"


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, interpolated between the closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rss_bytes() -> int:
    """This process's resident set size now (``VmRSS``), or its peak where ``/proc`` is missing."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def callgrind_instructions(argv: Sequence[str]) -> list[int] | None:
    """Instructions each thread of ``python *argv`` ran under callgrind, the main thread first;
    ``None`` when valgrind is not installed.

    Instruction counts barely move between runs where timings on a shared machine move by a
    quarter, so they are the steady figure beside a timed one. ``PYTHONHASHSEED`` is fixed so
    that every run lays out its dicts alike.
    """
    if shutil.which("valgrind") is None:
        return None
    with tempfile.TemporaryDirectory(prefix="vidu-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            [
                "valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}",
                sys.executable, *argv,
            ],
            capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "0"},
        )  # fmt: skip
        counts: list[int] = []
        # One file per thread: callgrind.out-01 (the main thread), -02...
        for path in sorted(Path(tmp).glob("callgrind.out*")):
            with path.open() as lines:
                counts.extend(int(line.split()[1]) for line in lines if line.startswith("summary:"))
    if not counts:
        raise RuntimeError(f"callgrind wrote no totals for {' '.join(argv)}")
    return counts


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, indent: str = "  ") -> None:
    """Print ``rows`` under ``headers``, the first column left-aligned and the others right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        parts = [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))]
        print(indent + "  ".join(parts).rstrip())


# --- servers in a child process ------------------------------------------------------------------


@contextlib.contextmanager
def _child(argv: list[str], what: str) -> Iterator[str]:
    """Start ``argv``, wait for its ``listening on URL`` line, yield the URL, stop the child after.

    The child's standard error goes to a temporary file, shown only when it fails to start (its
    "interrupted" on the way out is noise).
    """
    with tempfile.TemporaryFile("w+") as errors:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, text=True, env=env)
        try:
            assert process.stdout is not None
            url = None
            for line in process.stdout:
                found = _LISTENING.search(line)
                if found:
                    url = found.group(1)
                    break
            if url is None:
                status = process.wait()
                errors.seek(0)
                raise RuntimeError(f"the {what} did not start (exit status {status}):\n{errors.read()}")
            yield url
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout is not None:
                process.stdout.close()


def emulator_process(
    *, concurrency: int, processing_time: float, options: Sequence[str] = ()
) -> contextlib.AbstractContextManager[str]:
    """The emulator in a child process (``python -m vidu_async emulator``, with ``options`` such as
    ``--stats-endpoint``); yields its base URL."""
    argv = [
        sys.executable, "-m", "vidu_async", "emulator", "--port", "0",
        "--concurrency", str(concurrency), "--processing-time", str(processing_time), *options,
    ]  # fmt: skip
    return _child(argv, "emulator")


def trivial_server_process() -> contextlib.AbstractContextManager[str]:
    """A trivial aiohttp handler in a child process that answers every create with a canned task
    (no validation, no state): the fastest server a create can hit; yields its base URL."""
    return _child([sys.executable, str(Path(__file__).resolve()), "trivial-server"], "trivial server")


def _serve_trivial(port: int) -> None:
    from aiohttp import web

    counter = itertools.count(1)
    template = {
        "state": "created",
        "model": REQUEST.model,
        "prompt": REQUEST.prompt,
        "duration": 5,
        "resolution": "720p",
        "credits": 25,
        "created_at": "2026-01-20T06:52:02.323137590Z",
    }

    async def create(request: web.Request) -> web.Response:
        body = await request.read()
        payload = json.loads(body).get("payload", "")
        return web.json_response({"task_id": str(next(counter)), **template, "payload": payload})

    async def started(app: web.Application) -> None:
        print(f"trivial server listening on http://127.0.0.1:{port}", flush=True)

    app = web.Application()
    app.router.add_post("/ent/v2/reference2video", create)
    app.on_startup.append(started)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a server whose URL must be known
    before it starts, such as a callback receiver), chosen below Linux's ephemeral range (32768
    and up), from which the benchmark's own outgoing connections take their local ports."""
    import random
    import socket

    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(20_000, 32_000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32000 after 100 tries")


def main(argv: list[str] | None = None) -> int:
    """``trivial-server [--port N]``: serve the trivial create handler until interrupted."""
    parser = argparse.ArgumentParser(description="Helpers of the vidu-async benchmarks.")
    parser.add_argument("command", choices=["trivial-server"])
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    args = parser.parse_args(argv)
    _serve_trivial(args.port or free_port())
    return 0


if __name__ == "__main__":
    sys.exit(main())
