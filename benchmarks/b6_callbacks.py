"""B6: hybrid completion: callbacks confirmed with one GET, polling only as a safety net.

The B2 workload (1,000 tasks with lognormal processing times, median 1 s, sigma 0.5, from a fixed
seed, organization concurrency 50, a fresh in-process emulator per client), run twice side by side:

* polling only: B2's SDK client, ``client.generate_many`` with default settings;
* callbacks: the same, with ``ViduClient(callback_url=...)`` pointing at ``client.serve_callbacks``
  on a free local port; the emulator POSTs each task's signed ``processing`` and ``success``
  callbacks there, and the poll scheduler checks callback tasks only every
  ``PollPolicy.callback_interval`` (60 s by default) in case a callback is lost.

Status requests per task and detection lag are measured exactly as in B2 (its ``measure``): the
``get`` + ``list`` requests the emulator counted, divided by the tasks, and the moment a result
arrived minus the emulator's ``TaskRecord.finished_at``, both on this process's event-loop clock.

Run ``python benchmarks/b6_callbacks.py`` (about a minute) or ``--quick`` (100 tasks of median
0.3 s; a smoke run of a few seconds; the test suite runs it).
"""

from __future__ import annotations

import argparse
import sys
from typing import Final

import anyio
import b2_polling
from _common import REQUEST, benchmark_parser, free_port, verdict

import vidu_async as vidu
from vidu_async.callbacks import CallbackStats
from vidu_async.emulator import Emulator

#: With callbacks, a task should cost its one confirming GET and little else...
TARGET_REQUESTS_PER_TASK: Final = 1.2
#: ... and be noticed within a callback and a GET (p95, seconds), not a poll interval.
TARGET_P95_LAG: Final = 0.1


def _with_callbacks(seen: dict[str, object]) -> b2_polling.Client:
    """B2's SDK client with a callback URL and the client's own receiver; ``seen`` gets the receiver's
    and the emulator's callback counts."""

    async def run(emu: Emulator, tasks: int, noticed: dict[str, float]) -> None:
        port = free_port()
        url = f"http://127.0.0.1:{port}/vidu/callback"
        async with (
            vidu.ViduClient(emu.api_key, base_url=emu.base_url, callback_url=url) as client,
            client.serve_callbacks("127.0.0.1", port) as receiver,
            client.generate_many(REQUEST for _ in range(tasks)) as results,
        ):
            async for result in results:
                if result.task is None or not result.task.is_terminal:
                    raise RuntimeError(f"item {result.index} did not finish: {result.error!r}")
                noticed[result.task.id] = anyio.current_time()
            seen["receiver"] = receiver.stats
            seen["sent"] = emu.stats.callbacks_sent
            seen["failed"] = emu.stats.callbacks_failed

    return run


async def _run(args: argparse.Namespace) -> None:
    print(
        f"B6 callbacks: {args.tasks:,} tasks, lognormal processing (median {args.median:g} s, sigma 0.5,"
        f" seed {args.seed}), organization concurrency 50, emulator and receiver in this process"
    )
    seen: dict[str, object] = {}
    polling = await b2_polling.measure(
        f"polling only (defaults), {args.tasks:,} tasks", b2_polling.sdk_client, args.tasks, args
    )
    hybrid = await b2_polling.measure(
        f"callbacks + safety net, {args.tasks:,} tasks", _with_callbacks(seen), args.tasks, args
    )
    b2_polling.print_outcomes([polling, hybrid])
    stats = seen["receiver"]
    assert isinstance(stats, CallbackStats)
    print(
        f"  callbacks: {seen['sent']:,} delivered ({seen['failed']:,} failed); receiver accepted"
        f" {stats.accepted:,}, rejected {stats.total_rejected:,}"
    )
    print(
        f"  polling only / callbacks: {polling.requests_per_task / hybrid.requests_per_task:.2f}x the requests"
        f" per task, callbacks p95 lag {hybrid.p95 / polling.p95:.2f}x polling's"
    )
    requests_ok = hybrid.requests_per_task <= TARGET_REQUESTS_PER_TASK
    print(
        f"target callbacks <= {TARGET_REQUESTS_PER_TASK} requests per task: {hybrid.requests_per_task:.2f},"
        f" {verdict(requests_ok)}"
    )
    lag_ok = hybrid.p95 <= min(TARGET_P95_LAG, polling.p95)
    print(
        f"target callbacks p95 lag <= {TARGET_P95_LAG} s and <= polling only's: {hybrid.p95:.3f} s"
        f" vs {polling.p95:.3f} s, {verdict(lag_ok)}"
    )
    if args.quick:
        print("  (quick run: tasks too few and too short for the figures to mean much; run without --quick)")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (``argv``: its arguments, default ``sys.argv[1:]``) and print its figures;
    returns the exit status (0, also when a target is missed: the output says so)."""
    parser = benchmark_parser(__doc__, "a smoke run of a few seconds")
    parser.add_argument("--tasks", type=int, help="tasks per client (default 1,000; 100 with --quick)")
    parser.add_argument(
        "--median", type=float, help="median processing time, seconds (default 1; 0.3 with --quick)"
    )
    parser.add_argument("--seed", type=int, default=7, help="the emulator's seed (default 7, as B2)")
    args = parser.parse_args(argv)
    args.tasks = args.tasks or (100 if args.quick else 1_000)
    args.median = args.median or (0.3 if args.quick else 1.0)
    anyio.run(_run, args, backend="asyncio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
