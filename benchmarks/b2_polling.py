"""B2: polling cost and detection lag: the SDK's poll scheduler against naive per-task polling.

Every client runs the same batch (1,000 tasks with lognormal processing times, median 1 s, sigma
0.5, from a fixed seed) against its own fresh in-process emulator with organization concurrency 50:

* the SDK: ``client.generate_many`` with default settings;
* naive 0.5 s: creates every task at once, then polls each task in its own loop every 0.5 s with
  ``GET /ent/v2/tasks/{id}/creations`` (a bare aiohttp session);
* naive 5 s: the same, every 5 s.

The quick run shortens the processing times (median 0.3 s) and the slow client's interval (1.5 s).

Status requests per task are the ``get`` + ``list`` requests the emulator counted, divided by the
tasks. Detection lag is the moment the client saw a task's terminal state (``anyio.current_time()``)
minus the moment the emulator finished it (``TaskRecord.finished_at``); both are the event loop's
monotonic clock in this one process, so they compare directly. The emulator runs in this process,
so its work shares the CPU with the client: a client that sends many requests also slows itself.

Run ``python benchmarks/b2_polling.py`` (about a minute and a half) or ``--quick`` (a smoke run of
a few seconds; the test suite runs it).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import aiohttp
import anyio
import attrs
from _common import API_KEY, REQUEST, benchmark_parser, percentile, print_table, raw_body, verdict

import vidu_async as vidu
from vidu_async.emulator import Emulator, EmulatorConfig

#: The SDK must send at most this many status requests per task...
TARGET_REQUESTS_PER_TASK: Final = 1.5
#: ... and notice 95% of finishes within this many seconds.
TARGET_P95_LAG: Final = 0.25
_TERMINAL: Final = frozenset({"success", "failed"})


def _processing_time(median: float) -> Callable[[random.Random], float]:
    """Lognormal processing times, sigma 0.5: with median 1 s most tasks take 0.5-2 s, a few longer."""
    mu = math.log(median)

    def draw(rng: random.Random) -> float:
        return rng.lognormvariate(mu, 0.5)

    return draw


@attrs.frozen(kw_only=True)
class Outcome:
    """What one client run measured."""

    label: str
    tasks: int
    gets: int
    lists: int
    lags: list[float]
    seconds: float

    @property
    def requests_per_task(self) -> float:
        """Status requests (get + list) per task."""
        return (self.gets + self.lists) / self.tasks

    @property
    def p50(self) -> float:
        """Median detection lag, seconds."""
        return percentile(self.lags, 50)

    @property
    def p95(self) -> float:
        """95th percentile detection lag, seconds."""
        return percentile(self.lags, 95)


Client = Callable[[Emulator, int, dict[str, float]], Awaitable[None]]


async def sdk_client(emu: Emulator, tasks: int, noticed: dict[str, float]) -> None:
    """``generate_many`` with default settings; a task is noticed when its result arrives."""
    async with (
        vidu.ViduClient(emu.api_key, base_url=emu.base_url) as client,
        client.generate_many(REQUEST for _ in range(tasks)) as results,
    ):
        async for result in results:
            if result.task is None or not result.task.is_terminal:
                raise RuntimeError(f"item {result.index} did not finish: {result.error!r}")
            noticed[result.task.id] = anyio.current_time()


def _naive(interval: float) -> Client:
    """A client that creates every task at once and polls each in its own loop every ``interval`` s."""

    async def run(emu: Emulator, tasks: int, noticed: dict[str, float]) -> None:
        headers = {"Authorization": f"Token {API_KEY}", "Accept": "application/json"}
        create_url = emu.base_url + "/ent/v2/reference2video"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:

            async def one() -> None:
                async with session.post(create_url, json=raw_body(), headers=headers) as response:
                    task_id = (await response.json())["task_id"]
                url = f"{emu.base_url}/ent/v2/tasks/{task_id}/creations"
                while True:
                    await anyio.sleep(interval)
                    async with session.get(url, headers=headers) as response:
                        state = (await response.json())["state"]
                    if state in _TERMINAL:
                        noticed[task_id] = anyio.current_time()
                        return

            async with anyio.create_task_group() as group:
                for _ in range(tasks):
                    group.start_soon(one)

    return run


async def measure(label: str, client: Client, tasks: int, args: argparse.Namespace) -> Outcome:
    config = EmulatorConfig(concurrency=50, processing_time=_processing_time(args.median), seed=args.seed)
    noticed: dict[str, float] = {}
    async with Emulator(config) as emu:
        started = time.perf_counter()
        await client(emu, tasks, noticed)
        seconds = time.perf_counter() - started
        finished = {task_id: record.finished_at for task_id, record in emu.tasks.items()}
        lags = []
        for task_id, seen in noticed.items():
            at = finished.get(task_id)
            if at is None:
                raise RuntimeError(f"the client saw task {task_id} finish before the emulator did")
            lags.append(seen - at)
        return Outcome(
            label=label,
            tasks=len(noticed),
            gets=emu.stats.requests["get"],
            lists=emu.stats.requests["list"],
            lags=lags,
            seconds=seconds,
        )


def print_outcomes(outcomes: Sequence[Outcome]) -> None:
    """The table of clients' requests and detection lags."""
    print_table(
        ["client", "get", "list", "requests/task", "p50 lag s", "p95 lag s", "max lag s", "seconds"],
        [
            [
                o.label,
                f"{o.gets:,}",
                f"{o.lists:,}",
                f"{o.requests_per_task:.2f}",
                f"{o.p50:.3f}",
                f"{o.p95:.3f}",
                f"{max(o.lags):.3f}",
                f"{o.seconds:.1f}",
            ]
            for o in outcomes
        ],
    )


async def _run(args: argparse.Namespace) -> None:
    print(
        f"B2 polling: lognormal processing (median {args.median:g} s, sigma 0.5, seed {args.seed}),"
        f" organization concurrency 50, emulator in this process"
    )
    runs = [
        (f"SDK generate_many (defaults), {args.tasks:,} tasks", sdk_client, args.tasks),
        (f"naive GET every 0.5 s, {args.tasks:,} tasks", _naive(0.5), args.tasks),
        (
            f"naive GET every {args.slow_interval:g} s, {args.slow_tasks:,} tasks",
            _naive(args.slow_interval),
            args.slow_tasks,
        ),
    ]
    outcomes = []
    for label, client, tasks in runs:
        outcomes.append(await measure(label, client, tasks, args))
    sdk, half, five = outcomes
    print_outcomes(outcomes)
    if args.slow_tasks != args.tasks:
        print(f"  (the slow client ran {args.slow_tasks:,} tasks instead of {args.tasks:,}, to save time)")
    print(
        f"  naive 0.5 s / SDK: {half.requests_per_task / sdk.requests_per_task:.1f}x the requests per task,"
        f" SDK p95 lag {sdk.p95 / half.p95:.2f}x the naive 0.5 s client's"
    )
    print(
        f"  naive {args.slow_interval:g} s / SDK:   {five.requests_per_task / sdk.requests_per_task:.1f}x the requests per task,"
        f" SDK p95 lag {sdk.p95 / five.p95:.2f}x the naive {args.slow_interval:g} s client's"
    )
    requests_ok = sdk.requests_per_task <= TARGET_REQUESTS_PER_TASK
    lag_ok = sdk.p95 <= TARGET_P95_LAG
    print(
        f"target SDK <= {TARGET_REQUESTS_PER_TASK} requests per task: {sdk.requests_per_task:.2f},"
        f" {verdict(requests_ok)}"
    )
    print(f"target SDK p95 lag <= {TARGET_P95_LAG} s: {sdk.p95:.3f} s, {verdict(lag_ok)}")
    ratio = half.requests_per_task / sdk.requests_per_task
    print(
        f"target >= 10x fewer requests than naive 0.5 s at no worse p95 lag: {ratio:.1f}x,"
        f" p95 {sdk.p95:.3f} s vs {half.p95:.3f} s, {verdict(ratio >= 10 and sdk.p95 <= half.p95)}"
    )
    if args.quick:
        print(
            "  (quick run: tasks too few and too short for the request ratio to mean much; run without --quick)"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (``argv``: its arguments, default ``sys.argv[1:]``) and print its figures;
    returns the exit status (0, also when a target is missed: the output says so)."""
    parser = benchmark_parser(__doc__, "a smoke run of a few seconds")
    parser.add_argument("--tasks", type=int, help="tasks per client (default 1,000; 100 with --quick)")
    parser.add_argument("--slow-tasks", type=int, help="tasks of the 5 s client (default: --tasks)")
    parser.add_argument(
        "--slow-interval",
        type=float,
        help="poll interval of the slow naive client (default 5; 1.5 with --quick)",
    )
    parser.add_argument(
        "--median", type=float, help="median processing time, seconds (default 1; 0.3 with --quick)"
    )
    parser.add_argument("--seed", type=int, default=7, help="the emulator's seed (default 7)")
    args = parser.parse_args(argv)
    args.tasks = args.tasks or (100 if args.quick else 1_000)
    args.slow_tasks = args.slow_tasks or args.tasks
    args.slow_interval = args.slow_interval or (1.5 if args.quick else 5.0)
    args.median = args.median or (0.3 if args.quick else 1.0)
    anyio.run(_run, args, backend="asyncio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
