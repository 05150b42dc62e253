"""B4: scale: one client watching 10,000 tasks at once.

``generate_many`` runs with ``max_in_flight=10_000`` against the emulator in a child process
(``python -m vidu_async emulator``, concurrency 10,000, tasks that take minutes), so every task is
submitted and then watched, unfinished, by the client's one poll scheduler. "Watched" is literal:
the number of tasks in the scheduler (``len(client._poller.planner)``). Each item is a distinct
``Reference2Video`` (as read from a JSONL file), which the batch keeps for its ``BatchResult``.

While the batch fills, a sampler reads this process's RSS (``VmRSS``) and the asyncio tasks alive
every 20 ms; at 1k, 5k and 10k watched tasks it records both. Once all are watched, the status
requests (``get`` + ``list``, counted by a ``RequestEvent`` hook) are counted for a while and
compared with the poll budget, ``PollPolicy.requests_per_second``. Then the block is left early
(the tasks go on at the emulator, which is stopped).

RSS growth is measured from a baseline taken after a warm-up batch (imports, the HTTP session and
its connections, the scheduler's structures exist), to the peak, divided by the tasks watched.
The emulator's memory is not in it: it runs in its own process.

Run ``python benchmarks/b4_scale.py`` (10,000 tasks; well under a minute) or ``--quick``
(500 tasks; a few seconds; the test suite runs it).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Final

import anyio
import attrs
from _common import API_KEY, REQUEST, benchmark_parser, emulator_process, print_table, rss_bytes, verdict

import vidu_async as vidu

#: Peak RSS growth per watched task must stay at or below this many bytes.
TARGET_BYTES_PER_TASK: Final = 3 * 1024
#: The asyncio tasks alive may differ by this many between 1k and 10k watched tasks (sampling noise,
#: the batch's submitters finishing) and still count as flat.
TASKS_SLACK: Final = 20
#: The emulator's processing time: far longer than the run, so nothing finishes while measured.
PROCESSING_TIME: Final = 600.0


def _requests(count: int, start: int) -> Iterator[vidu.Reference2Video]:
    # A distinct request per item, as a batch read from a file has; the seed makes each one unique.
    for i in range(count):
        yield attrs.evolve(REQUEST, seed=start + i + 1)


@attrs.define
class Sampler:
    """Samples RSS and asyncio tasks alive; records both when the watched count passes a checkpoint."""

    client: vidu.ViduClient
    baseline: int
    checkpoints: list[int]
    peak: int = 0
    max_tasks: int = 0
    #: The asyncio tasks alive at the sample with the most, counted by task name.
    busiest: Counter[str] = attrs.field(factory=Counter)
    at: dict[int, tuple[int, int, int]] = attrs.field(factory=dict)
    #: The most asyncio tasks alive while the highest checkpoint passed was this one.
    band_max: dict[int, int] = attrs.field(factory=dict)

    @property
    def watched(self) -> int:
        """Tasks in the client's poll scheduler now."""
        return len(self.client._poller.planner)

    def sample(self) -> None:
        """Take one sample."""
        rss = rss_bytes()
        tasks = asyncio.all_tasks()
        alive = len(tasks)
        watched = self.watched
        self.peak = max(self.peak, rss)
        if alive > self.max_tasks:
            self.max_tasks = alive
            self.busiest = Counter(task.get_name() for task in tasks)
        for mark in self.checkpoints:
            if watched >= mark and mark not in self.at:
                self.at[mark] = (watched, rss - self.baseline, alive)
        passed = [mark for mark in self.checkpoints if watched >= mark]
        if passed:
            self.band_max[passed[-1]] = max(self.band_max.get(passed[-1], 0), alive)


async def _fill(
    client: vidu.ViduClient, count: int, start: int, sampler: Sampler | None, timeout: float
) -> vidu.Batch:
    """Enter a batch of ``count`` items and wait until all are watched; returns the open batch
    (the caller leaves it)."""
    batch = client.generate_many(_requests(count, start), max_in_flight=count)
    await batch.__aenter__()

    def watched() -> int:
        return sampler.watched if sampler is not None else len(client._poller.planner)

    with anyio.move_on_after(timeout):
        while watched() < count:
            if sampler is not None:
                sampler.sample()
            await anyio.sleep(0.02)
    return batch


async def _run(args: argparse.Namespace, base_url: str) -> None:
    requests: Counter[str] = Counter()

    def count(event: vidu.Event) -> None:
        if isinstance(event, vidu.RequestEvent):
            requests[event.endpoint] += 1

    n = args.tasks
    checkpoints = sorted({max(1, n // 10), max(1, n // 2), n})
    async with vidu.ViduClient(API_KEY, base_url=base_url, hooks=[count]) as client:
        budget = client.poll.requests_per_second
        warm = await _fill(client, args.warmup, 0, None, args.timeout)
        await anyio.sleep(0.5)
        await warm.__aexit__(None, None, None)
        gc.collect()
        await anyio.sleep(0.2)
        baseline = rss_bytes()
        tasks_before = len(asyncio.all_tasks())
        sampler = Sampler(client=client, baseline=baseline, checkpoints=checkpoints)
        started = anyio.current_time()
        batch = await _fill(client, n, args.warmup, sampler, args.timeout)
        try:
            filled = anyio.current_time() - started
            watched = sampler.watched
            before, window_start = requests.copy(), anyio.current_time()
            while anyio.current_time() - window_start < args.observe:
                sampler.sample()
                await anyio.sleep(0.02)
            window = anyio.current_time() - window_start
            lists = (requests["list"] - before["list"]) / window
            gets = (requests["get"] - before["get"]) / window
            observed = lists + gets
            sampler.sample()
        finally:
            await batch.__aexit__(None, None, None)

    print(
        f"B4 scale: generate_many(max_in_flight={n:,}) against the emulator in a child process"
        f" (concurrency {n:,}, tasks of {PROCESSING_TIME:.0f} s: none finishes while measured)"
    )
    print(
        f"  {watched:,} tasks watched after {filled:.1f} s; baseline RSS {baseline / 2**20:.1f} MiB"
        f" after a {args.warmup}-task warm-up; {tasks_before} asyncio tasks alive before the batch"
    )
    print_table(
        ["watched tasks", "RSS growth MiB", "bytes/task", "asyncio tasks alive", "most alive from here on"],
        [
            [f"{w:,}", f"{grown / 2**20:.1f}", f"{grown / w:,.0f}", alive, sampler.band_max.get(m, "")]
            for m, (w, grown, alive) in ((m, sampler.at[m]) for m in checkpoints if m in sampler.at)
        ],
    )
    print("  (most alive from here on: the most seen until the next checkpoint; for the last, to the end)")
    per_task = (sampler.peak - baseline) / max(watched, 1)
    print(
        f"  peak RSS growth {(sampler.peak - baseline) / 2**20:.1f} MiB = {per_task:,.0f} bytes per watched task;"
        f" most asyncio tasks alive at any sample: {sampler.max_tasks}"
    )
    names = ", ".join(f"{count} x {name}" for name, count in sampler.busiest.most_common(3))
    print(f"  the busiest sample's asyncio tasks: {names}")
    print(
        f"  status requests while {watched:,} were watched: {observed:.1f}/s over {window:.1f} s"
        f" (budget PollPolicy.requests_per_second = {budget:g}/s: {observed / budget:.2f}x);"
        f" {lists:.1f} list/s + {gets:.1f} get/s, so each task is looked at about every"
        f" {watched / (lists * 100) if lists else float('inf'):.1f} s"
    )
    if watched < n:
        print(f"  only {watched:,} of {n:,} tasks were watched within {args.timeout:.0f} s: MISSED")
    counts = [sampler.band_max[m] for m in checkpoints if m in sampler.band_max]
    flat = len(counts) == len(checkpoints) and max(counts) - min(counts) <= TASKS_SLACK
    print(
        f"target <= {TARGET_BYTES_PER_TASK:,} bytes per watched task: {per_task:,.0f}, {verdict(per_task <= TARGET_BYTES_PER_TASK)}"
    )
    marks = ", ".join(f"{m:,}" for m in checkpoints)
    print(
        f"target asyncio tasks alive flat in N (the most alive from {marks} watched on,"
        f" within {TASKS_SLACK}): {counts}, {verdict(flat)}"
    )
    print(
        f"target status requests/s <= budget {budget:g}: {observed:.1f}, {verdict(observed <= budget * 1.05)}"
    )
    if args.quick:
        print("  (quick run: too small for the per-task figure to mean much; run without --quick)")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (``argv``: its arguments, default ``sys.argv[1:]``) and print its figures;
    returns the exit status (0, also when a target is missed: the output says so)."""
    parser = benchmark_parser(__doc__, "500 tasks, a smoke run of a few seconds")
    parser.add_argument("--tasks", type=int, help="tasks watched at once (default 10,000; 500 with --quick)")
    parser.add_argument("--warmup", type=int, default=100, help="tasks in the warm-up batch (default 100)")
    parser.add_argument(
        "--observe",
        type=float,
        help="seconds to count status requests once all are watched (default 10; 2 with --quick)",
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="give up filling after this long (default 120 s)"
    )
    args = parser.parse_args(argv)
    args.tasks = args.tasks or (500 if args.quick else 10_000)
    args.observe = args.observe or (2.0 if args.quick else 10.0)
    with emulator_process(concurrency=args.tasks + args.warmup, processing_time=PROCESSING_TIME) as base_url:
        anyio.run(_run, args, base_url, backend="asyncio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
