"""B1: submit throughput: ``client.submit`` against a raw aiohttp loop posting the same JSON.

Both sides send the same create body (the SDK's own encoding of one subject-mode request, with a
fresh ``payload`` each time, as the SDK stamps one) from the same number of concurrent workers to
the same server, in one run, in alternating order (raw, SDK, SDK, raw, raw, SDK: drift hits both alike). The
servers run in child processes, so the figures are the client's own work:

* the emulator (``python -m vidu_async emulator``): validates each body, stores a task. The
  target (SDK at least 0.85 x raw creates/s) is judged here;
* a trivial aiohttp handler that answers every create with a canned task: the server costs as
  little as a server can, so the client's cost per create shows most clearly. Its ratio is
  printed, not judged.

Client CPU per create (``time.process_time``, the benchmark process only) is printed beside the
rate: it is steadier than wall time on a shared machine and says where SDK time goes. The verdict
uses the median of the rounds' own SDK/raw ratios: a burst of load elsewhere on the machine lands
in one round and moves the median least.

With ``--instructions`` (needs ``valgrind``), each side also runs alone in a child process
under callgrind against the trivial handler, at two sizes, and the difference in instructions
executed over the difference in creates is printed: the client's own cost per create, the same
from run to run, where wall time on a shared machine moves by a third. No verdict rests on it.

Run ``python benchmarks/b1_submit.py`` (2,000 creates per round; well under a minute) or
``--quick`` (a smoke run of a few seconds; the test suite runs it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Final

import aiohttp
import anyio
from _common import (
    API_KEY,
    REQUEST,
    benchmark_parser,
    callgrind_instructions,
    emulator_process,
    print_table,
    raw_body,
    trivial_server_process,
    verdict,
)

import vidu_async as vidu

#: SDK creates/s must be at least this fraction of the raw loop's.
TARGET_RATIO: Final = 0.85

Runner = Callable[[str, int, int], Awaitable[None]]


async def _raw(base_url: str, creates: int, workers: int) -> None:
    """``creates`` POSTs from ``workers`` workers with a bare ``aiohttp.ClientSession``."""
    url = base_url + "/ent/v2/reference2video"
    headers = {"Authorization": f"Token {API_KEY}", "Accept": "application/json"}
    remaining = iter(range(creates))
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for _ in remaining:
                async with session.post(url, json=raw_body(), headers=headers) as response:
                    task = await response.json()
                    if response.status != 200 or not task.get("task_id"):
                        raise RuntimeError(f"create failed: {response.status} {task}")

        async with anyio.create_task_group() as group:
            for _ in range(workers):
                group.start_soon(worker)


async def _sdk(base_url: str, creates: int, workers: int) -> None:
    """``creates`` calls of ``client.submit`` from ``workers`` workers."""
    remaining = iter(range(creates))
    async with vidu.ViduClient(API_KEY, base_url=base_url) as client:

        async def worker() -> None:
            for _ in remaining:
                await client.submit(REQUEST)

        async with anyio.create_task_group() as group:
            for _ in range(workers):
                group.start_soon(worker)


async def _timed(runner: Runner, base_url: str, creates: int, workers: int) -> tuple[float, float]:
    """Run once; returns (wall seconds, client CPU seconds)."""
    wall, cpu = time.perf_counter(), time.process_time()
    await runner(base_url, creates, workers)
    return time.perf_counter() - wall, time.process_time() - cpu


async def _compare(
    base_url: str, creates: int, workers: int, rounds: int
) -> tuple[list[list[object]], float, float]:
    """``rounds`` rounds against ``base_url``, each one run of each side back to back, in the
    order raw, SDK, SDK, raw, raw, SDK...; returns table rows, SDK/raw creates/s over all rounds,
    and the median of the rounds' own ratios (what a burst of load elsewhere moves least)."""
    await _raw(base_url, min(200, creates), workers)  # warm-up: imports, first connections
    await _sdk(base_url, min(200, creates), workers)
    labels = {"raw": "raw aiohttp loop", "sdk": "SDK client.submit"}
    runs: dict[str, list[tuple[float, float]]] = {"raw": [], "sdk": []}
    rows: list[list[object]] = []

    def row(label: str, n: int, wall: float, cpu: float) -> list[object]:
        return [label, f"{n:,}", f"{wall:.2f}", f"{n / wall:,.0f}", f"{cpu / n * 1e6:,.0f}"]

    for i in range(rounds):
        for name in ("raw", "sdk") if i % 2 == 0 else ("sdk", "raw"):
            wall, cpu = await _timed(_raw if name == "raw" else _sdk, base_url, creates, workers)
            runs[name].append((wall, cpu))
            rows.append(row(labels[name], creates, wall, cpu))
    totals = {name: (sum(w for w, _ in r), sum(c for _, c in r)) for name, r in runs.items()}
    for name in ("raw", "sdk"):
        rows.append(row(f"{labels[name]}, all rounds", rounds * creates, *totals[name]))
    overall = totals["raw"][0] / totals["sdk"][0]
    paired = sorted(raw[0] / sdk[0] for raw, sdk in zip(runs["raw"], runs["sdk"], strict=True))
    return rows, overall, statistics.median(paired)


async def _run(args: argparse.Namespace, emulator_url: str, trivial_url: str) -> None:
    headers = ["client", "creates", "seconds", "creates/s", "client CPU us/create"]
    print(
        f"B1 submit throughput: {args.creates:,} creates per run, {args.rounds} rounds of one run per side,"
        f" {args.workers} concurrent workers each side"
    )
    print(f"against the emulator in a child process ({emulator_url}):")
    rows, overall, emulator_ratio = await _compare(emulator_url, args.creates, args.workers, args.rounds)
    print_table(headers, rows)
    print(f"  SDK / raw: {overall:.2f}x creates/s over all rounds, {emulator_ratio:.2f}x the median round")
    print(f"against a trivial aiohttp handler in a child process ({trivial_url}):")
    rows, overall, trivial_ratio = await _compare(trivial_url, args.creates, args.workers, args.rounds)
    print_table(headers, rows)
    print(f"  SDK / raw: {overall:.2f}x creates/s over all rounds, {trivial_ratio:.2f}x the median round")
    print(
        f"target SDK >= {TARGET_RATIO} x raw against the emulator (median round): {emulator_ratio:.2f}x,"
        f" {verdict(emulator_ratio >= TARGET_RATIO)}"
    )
    # Not a target: the issue sets it against the emulator. This is the client's own cost, where
    # nothing on the server hides it (`--instructions` gives the steady figure).
    print(
        f"client-bound, against the trivial handler (median round): SDK / raw {trivial_ratio:.2f}x"
        f" ({'at or above' if trivial_ratio >= TARGET_RATIO else 'below'} {TARGET_RATIO})"
    )
    if args.quick:
        print("  (quick run: rounds too short for stable ratios; run without --quick)")


#: Creates of the two callgrind runs of each side; their difference cancels start-up and warm-up.
_INSTRUCTION_SIZES: Final = (100, 500)


def _instructions(side: str, base_url: str) -> float | None:
    """Client instructions per create of ``side`` ("raw" or "sdk"), from two callgrind runs;
    ``None`` without valgrind."""
    counts = []
    for creates in _INSTRUCTION_SIZES:
        threads = callgrind_instructions(
            [__file__, "--side", side, "--url", base_url, "--creates", str(creates)]
        )
        if threads is None:
            return None
        counts.append(sum(threads))
    return (counts[1] - counts[0]) / (_INSTRUCTION_SIZES[1] - _INSTRUCTION_SIZES[0])


def _print_instructions(trivial_url: str) -> None:
    raw, sdk = _instructions("raw", trivial_url), _instructions("sdk", trivial_url)
    if raw is None or sdk is None:
        print("instructions: valgrind is not installed; skipped")
        return
    print("client instructions per create, each side alone under callgrind, against the trivial handler:")
    print(
        f"  raw aiohttp loop {raw / 1e3:,.0f}k, SDK client.submit {sdk / 1e3:,.0f}k: raw / SDK {raw / sdk:.2f}x"
    )


def _one_side(args: argparse.Namespace) -> None:
    """The child of ``--instructions``: one warm-up, then ``--creates`` creates of one side."""
    runner = _raw if args.side == "raw" else _sdk
    anyio.run(runner, args.url, 50, 16, backend="asyncio")
    anyio.run(runner, args.url, args.creates, 16, backend="asyncio")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (``argv``: its arguments, default ``sys.argv[1:]``) and print its figures;
    returns the exit status (0, also when a target is missed: the output says so)."""
    parser = benchmark_parser(__doc__, "a smoke run of a few seconds")
    parser.add_argument("--creates", type=int, help="creates per round (default 2,000; 200 with --quick)")
    parser.add_argument(
        "--workers", type=int, default=32, help="concurrent workers on each side (default 32)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="timed rounds per server, one run of each side a round (default 5; 2 with --quick)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count each side's client instructions per create under callgrind (a few minutes)",
    )
    parser.add_argument("--side", choices=("raw", "sdk"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side is not None:
        _one_side(args)
        return 0
    args.creates = args.creates or (200 if args.quick else 2_000)
    args.rounds = args.rounds or (2 if args.quick else 5)
    # Processing time is irrelevant here: tasks are only created.
    with (
        emulator_process(concurrency=5, processing_time=3600.0) as emulator_url,
        trivial_server_process() as trivial_url,
    ):
        anyio.run(_run, args, emulator_url, trivial_url, backend="asyncio")
        if args.instructions:
            _print_instructions(trivial_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
