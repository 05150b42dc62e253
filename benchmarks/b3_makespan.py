"""B3: makespan: does ``generate_many`` keep the organization's slots busy?

200 tasks of 0.2 s each under organization concurrency 5 cannot finish in less than
200 x 0.2 / 5 = 8 s. The batch runs twice, side by side, each against a fresh in-process emulator:

* ``generate_many`` with the default in-flight sizing (it reads ``concurrency_limit`` from
  ``GET /ent/v2/credits`` and adds a queue allowance, so the service always has our next task
  waiting);
* ``max_in_flight=5``: exactly the concurrency, no allowance: every slot idles from a task's
  finish until the client notices it and its next create has been queued.

The makespan runs from entering ``generate_many`` to the last result; the table also shows the
server's span (first create to last finish, the emulator's clock) and the slots' utilisation
(processing seconds / (concurrency x client makespan)).

Run ``python benchmarks/b3_makespan.py`` (about half a minute) or ``--quick`` (40 tasks; a few
seconds; the test suite runs it).
"""

from __future__ import annotations

import argparse
import sys
from typing import Final

import anyio
import attrs
from _common import REQUEST, benchmark_parser, print_table, verdict

import vidu_async as vidu
from vidu_async.emulator import Emulator, EmulatorConfig

#: The default sizing's makespan may be at most this multiple of the ideal.
TARGET_RATIO: Final = 1.05
CONCURRENCY: Final = 5
PROCESSING_TIME: Final = 0.2


@attrs.frozen(kw_only=True)
class Outcome:
    """What one batch run measured."""

    label: str
    limit: int
    makespan: float
    server_span: float
    processing: float
    max_in_flight: int
    status_requests: int
    failures: int


async def _measure(label: str, tasks: int, max_in_flight: int | None) -> Outcome:
    config = EmulatorConfig(concurrency=CONCURRENCY, processing_time=PROCESSING_TIME)
    async with Emulator(config) as emu, vidu.ViduClient(emu.api_key, base_url=emu.base_url) as client:
        failures = 0
        started = anyio.current_time()
        async with client.generate_many(
            (REQUEST for _ in range(tasks)), max_in_flight=max_in_flight
        ) as results:
            async for result in results:
                failures += not result.ok
            limit = results.limit
        makespan = anyio.current_time() - started
        records = list(emu.tasks.values())
        first = min(r.created_at for r in records)
        last = max(r.finished_at or first for r in records)
        return Outcome(
            label=label,
            limit=limit,
            makespan=makespan,
            server_span=last - first,
            processing=sum(r.processing_time for r in records),
            max_in_flight=emu.stats.max_in_flight,
            status_requests=emu.stats.requests["get"] + emu.stats.requests["list"],
            failures=failures,
        )


async def _run(args: argparse.Namespace) -> None:
    ideal = args.tasks * PROCESSING_TIME / CONCURRENCY
    print(
        f"B3 makespan: {args.tasks} tasks of {PROCESSING_TIME} s, organization concurrency {CONCURRENCY},"
        f" ideal {args.tasks} x {PROCESSING_TIME} / {CONCURRENCY} = {ideal:.1f} s"
    )
    default = await _measure("generate_many, default in-flight sizing", args.tasks, None)
    exact = await _measure("generate_many, max_in_flight=5 (no allowance)", args.tasks, CONCURRENCY)
    outcomes = [default, exact]
    print_table(
        [
            "run",
            "in-flight limit",
            "makespan s",
            "/ ideal",
            "server span s",
            "slot use",
            "server max in flight",
            "status requests",
        ],
        [
            [
                o.label,
                o.limit,
                f"{o.makespan:.2f}",
                f"{o.makespan / ideal:.3f}",
                f"{o.server_span:.2f}",
                f"{o.processing / (CONCURRENCY * o.makespan):.0%}",
                o.max_in_flight,
                o.status_requests,
            ]
            for o in outcomes
        ],
    )
    for o in outcomes:
        if o.failures:
            print(f"  {o.label}: {o.failures} items did not succeed")
    print(f"  max_in_flight=5 / default: {exact.makespan / default.makespan:.2f}x the makespan")
    ratio = default.makespan / ideal
    print(
        f"target default makespan <= {TARGET_RATIO} x ideal: {ratio:.3f}x, {verdict(ratio <= TARGET_RATIO)}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (``argv``: its arguments, default ``sys.argv[1:]``) and print its figures;
    returns the exit status (0, also when a target is missed: the output says so)."""
    parser = benchmark_parser(__doc__, "40 tasks, a smoke run of a few seconds")
    parser.add_argument("--tasks", type=int, help="tasks per run (default 200; 40 with --quick)")
    args = parser.parse_args(argv)
    args.tasks = args.tasks or (40 if args.quick else 200)
    anyio.run(_run, args, backend="asyncio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
