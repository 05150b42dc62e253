"""B5: the batch journal: group commit against one commit per operation, and resume start-up.

Each item does what the batch engine does: ``await record_intent`` (durable before the POST),
then ``record_submitted`` and ``record_result`` (queued), from many concurrent workers. The same
work runs with batched commits (the default) and with ``max_batch=1`` (one commit per
operation), side by side, and the ratio is printed. The batched figure is the median of three
rounds, each with a fresh journal. Then the last batched journal is reopened and read whole, as
a resume does.

Last, the cost of the journal to a whole batch: ``generate_many`` over 2,000 tasks against the
emulator (in a child process, organization concurrency 100, 0.2 s per task), with a journal and
without one, in alternating order (without, with, with, without), each run a fresh journal file.
The journaled wall time over the unjournaled one is the figure.

With ``--instructions`` (needs ``valgrind``), the batched run also goes alone into a child
process under callgrind, at two sizes, and the difference gives the instructions per item of the
event loop and of the SQLite thread: a figure that stays put where timings move with the load.

Run ``python benchmarks/b5_journal.py`` (100,000 items; about a minute and a half) or ``--quick``
(a few seconds; the test suite smoke-runs it).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final, Literal

import anyio
from _common import API_KEY, REQUEST, benchmark_parser, callgrind_instructions, emulator_process, verdict

import vidu_async as vidu
from vidu_async.journal import SQLiteJournal

# Targets from the design: the journal must never be what limits a batch, and a re-run of a
# 100k-item batch must start within a few seconds.
TARGET_ITEMS_PER_SECOND = 20_000
TARGET_RESUME_SECONDS = 3.0
#: A journaled batch may take at most this multiple of the same batch's wall time without one.
TARGET_BATCH_RATIO = 1.10
BATCH_CONCURRENCY = 100
BATCH_PROCESSING_TIME = 0.2


def _request(i: int) -> dict[str, Any]:
    # The size and shape of a typical subject-mode request line (URLs, not data URIs).
    return {
        "model": "viduq3",
        "subjects": [
            {"name": "Ming", "images": [f"https://example.com/media/ming-{i % 97}.png"]},
            {"name": "Hong", "images": [f"https://example.com/media/hong-{i % 89}.png"]},
        ],
        "prompt": "@Ming cooks hot pot for @Hong and says he loves it, steam rising, warm evening light.",
        "duration": 5,
        "resolution": "720p",
        "payload": f"vidu-async:fp-{i:08d}",
    }


def _task(i: int) -> dict[str, Any]:
    return {
        "id": f"task-{i:012d}",
        "state": "success",
        "err_code": "",
        "credits": 20,
        "payload": f"vidu-async:fp-{i:08d}",
        "creations": [
            {
                "id": f"creation-{i:012d}",
                "url": f"https://cdn.example.com/v/{i:012d}.mp4?sig=abcdef0123456789",
                "cover_url": f"https://cdn.example.com/c/{i:012d}.jpg?sig=abcdef0123456789",
            }
        ],
    }


class _Inputs:
    """What a caller has at hand for ``count`` items, built before any clock starts so that the
    figures are the journal's work and not this benchmark's string formatting."""

    def __init__(self, count: int) -> None:
        self.requests = [_request(i) for i in range(count)]
        self.tasks = [_task(i) for i in range(count)]
        self.keys = [f"item-{i:08d}" for i in range(count)]
        self.hashes = [f"{i:064x}" for i in range(count)]
        self.fingerprints = [f"fp-{i:08d}" for i in range(count)]
        self.files = [(f"videos/{key}.mp4",) for key in self.keys]


async def _write(
    path: Path,
    inputs: _Inputs,
    items: int,
    workers: int,
    *,
    max_batch: int,
    synchronous: Literal["NORMAL", "FULL"],
) -> tuple[float, int]:
    """Journal the first ``items`` of ``inputs`` from ``workers`` concurrent workers; returns
    (seconds, commits)."""
    requests, tasks, keys, files = inputs.requests, inputs.tasks, inputs.keys, inputs.files
    hashes, fingerprints = inputs.hashes, inputs.fingerprints
    next_item = iter(range(items))
    started = time.perf_counter()
    async with SQLiteJournal(path, max_batch=max_batch, synchronous=synchronous) as journal:
        await journal.open_input("benchmark")

        async def worker() -> None:
            for i in next_item:
                key = keys[i]
                await journal.record_intent(
                    key=key, index=i, request=requests[i], request_hash=hashes[i], fingerprint=fingerprints[i]
                )
                journal.record_submitted(key, tasks[i]["id"], 20)
                journal.record_result(key, state="success", task=tasks[i], credits=20, files=files[i])

        async with anyio.create_task_group() as group:
            for _ in range(workers):
                group.start_soon(worker)
    # Timed through the close: the final flush is part of the work.
    return time.perf_counter() - started, journal.stats.commits


async def _resume(path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    async with SQLiteJournal(path) as journal:
        entries = await journal.entries()
        elapsed = time.perf_counter() - started
    return elapsed, len(entries)


async def _batch(base_url: str, tasks: int, journal: Path | None) -> float:
    """Wall time of one ``generate_many`` over ``tasks`` tasks, every result received."""
    async with vidu.ViduClient(API_KEY, base_url=base_url) as client:
        started = time.perf_counter()
        failures = 0
        async with client.generate_many((REQUEST for _ in range(tasks)), journal=journal) as results:
            async for result in results:
                failures += not result.ok
        elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{failures} of {tasks} tasks failed; the timing would mean nothing")
    return elapsed


async def _batches(args: argparse.Namespace, directory: Path) -> None:
    print(
        f"batch: generate_many over {args.batch_tasks:,} emulator tasks (concurrency {BATCH_CONCURRENCY},"
        f" {BATCH_PROCESSING_TIME} s each), with and without a journal, alternating"
    )
    plain: list[float] = []
    journaled: list[float] = []
    with emulator_process(concurrency=BATCH_CONCURRENCY, processing_time=BATCH_PROCESSING_TIME) as url:
        for round_, with_journal in enumerate((False, True, True, False)):
            journal = directory / f"batch-{round_}.sqlite" if with_journal else None
            elapsed = await _batch(url, args.batch_tasks, journal)
            (journaled if with_journal else plain).append(elapsed)
    plain_s, journaled_s = sum(plain) / len(plain), sum(journaled) / len(journaled)
    print(f"  {'run':<12} {'seconds (each)':>22} {'mean':>8}")
    for label, runs, mean in (("no journal", plain, plain_s), ("journal", journaled, journaled_s)):
        print(f"  {label:<12} {', '.join(f'{t:.2f}' for t in runs):>22} {mean:>8.2f}")
    ratio = journaled_s / plain_s
    print(
        f"target journaled / unjournaled wall time <= {TARGET_BATCH_RATIO:.2f}: {ratio:.3f}"
        f" {verdict(ratio <= TARGET_BATCH_RATIO)}"
    )


async def _run(args: argparse.Namespace, directory: Path) -> None:
    print(
        f"B5 journal (SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}):"
        f" intent + submitted + result per item, {args.workers} concurrent workers"
    )
    # The batched figure is the median of a few rounds (each a fresh journal), so that a burst of
    # load elsewhere on the machine during one round does not decide it; every round is printed.
    inputs = _Inputs(max(args.items, args.unbatched_items))
    batched_runs: list[tuple[float, int]] = []
    for round_ in range(args.rounds):
        batched_path = directory / f"batched-{round_}.sqlite"
        batched_runs.append(
            await _write(batched_path, inputs, args.items, args.workers, max_batch=4096, synchronous="NORMAL")
        )
    batched_s, batched_commits = sorted(batched_runs)[len(batched_runs) // 2]
    single_s, single_commits = await _write(
        directory / "single.sqlite",
        inputs,
        args.unbatched_items,
        args.workers,
        max_batch=1,
        synchronous="NORMAL",
    )
    full_s, full_commits = await _write(
        directory / "full.sqlite", inputs, args.items, args.workers, max_batch=4096, synchronous="FULL"
    )
    batched_rate = args.items / batched_s
    single_rate = args.unbatched_items / single_s
    full_rate = args.items / full_s
    print(f"  {'mode':<40} {'items':>9} {'seconds':>8} {'items/s':>10} {'commits':>8} {'ops/commit':>10}")
    rows = [
        ("batched (group commit, synchronous=NORMAL)", args.items, batched_s, batched_rate, batched_commits),
        ("one commit per operation", args.unbatched_items, single_s, single_rate, single_commits),
        ("batched, synchronous=FULL (fsync/commit)", args.items, full_s, full_rate, full_commits),
    ]
    for label, items, seconds, rate, commits in rows:
        print(
            f"  {label:<40} {items:>9,} {seconds:>8.2f} {rate:>10,.0f} {commits:>8,} {3 * items / commits:>10.1f}"
        )
    rounds = ", ".join(f"{args.items / seconds:,.0f}" for seconds, _ in batched_runs)
    print(f"  batched rounds (items/s): {rounds}; the median round is in the table")
    print(f"  batched / one-commit-per-operation: {batched_rate / single_rate:.1f}x items/s")
    print(f"  batched FULL / batched NORMAL:      {full_rate / batched_rate:.2f}x items/s")
    print(
        f"target >= {TARGET_ITEMS_PER_SECOND:,} items/s batched:"
        f" {batched_rate / TARGET_ITEMS_PER_SECOND:.1f}x the target {verdict(batched_rate >= TARGET_ITEMS_PER_SECOND)}"
    )

    resume_s, count = await _resume(batched_path)
    print(f"resume: open + entries() of a {count:,}-item journal: {resume_s:.3f} s")
    print(f"  {count / resume_s:,.0f} entries/s")
    print(
        f"target resume <= {TARGET_RESUME_SECONDS:.0f} s: {TARGET_RESUME_SECONDS / resume_s:.1f}x headroom"
        f" {verdict(resume_s <= TARGET_RESUME_SECONDS)}"
    )
    await _batches(args, directory)


#: Items of the two callgrind runs; their difference cancels start-up, inputs and the first commits.
_INSTRUCTION_SIZES: Final = (2_000, 10_000)


def _print_instructions(workers: int) -> None:
    """Instructions per batched item, for the event loop and for the SQLite thread, under callgrind."""
    runs = []
    for items in _INSTRUCTION_SIZES:
        threads = callgrind_instructions([__file__, "--journal-only", str(items), "--workers", str(workers)])
        if threads is None:
            print("instructions: valgrind is not installed; skipped")
            return
        runs.append((threads[0], sum(threads[1:])))
    span = _INSTRUCTION_SIZES[1] - _INSTRUCTION_SIZES[0]
    loop, sqlite = ((late - early) / span for early, late in zip(*runs, strict=True))
    print("instructions per batched item under callgrind (steady where timings are not):")
    print(
        f"  {(loop + sqlite) / 1e3:,.0f}k: event loop {loop / 1e3:,.0f}k,"
        f" SQLite thread {sqlite / 1e3:,.0f}k (the two take turns under the GIL)"
    )


async def _journal_only(items: int, workers: int) -> None:
    """The child of ``--instructions``: the batched run alone, inputs built for the larger size."""
    inputs = _Inputs(max(_INSTRUCTION_SIZES))
    with tempfile.TemporaryDirectory(prefix="vidu-b5-") as tmp:
        await _write(
            Path(tmp) / "journal.sqlite", inputs, items, workers, max_batch=4096, synchronous="NORMAL"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (``argv``: its arguments, default ``sys.argv[1:]``) and print its figures;
    returns the exit status (0)."""
    parser = benchmark_parser(__doc__, "small sizes, a smoke run of a few seconds")
    parser.add_argument(
        "--items", type=int, help="items in the batched runs and the resume (default 100,000)"
    )
    parser.add_argument("--unbatched-items", type=int, help="items in the one-commit-per-operation run")
    parser.add_argument("--workers", type=int, default=200, help="concurrent items in flight (default 200)")
    parser.add_argument(
        "--rounds", type=int, help="batched runs; the median round is the figure (default 3, 1 with --quick)"
    )
    parser.add_argument(
        "--batch-tasks", type=int, help="emulator tasks in each whole-batch run (default 2,000)"
    )
    parser.add_argument(
        "--dir", type=Path, help="where to write the journals (default: a temporary directory)"
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count instructions per batched item under callgrind (a couple of minutes)",
    )
    parser.add_argument("--journal-only", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.journal_only is not None:
        anyio.run(_journal_only, args.journal_only, args.workers, backend="asyncio")
        return 0
    # The unbatched run is the slow baseline; a smaller count gives the same items/s figure.
    args.items = args.items or (2_000 if args.quick else 100_000)
    args.unbatched_items = args.unbatched_items or (300 if args.quick else 10_000)
    args.batch_tasks = args.batch_tasks or (100 if args.quick else 2_000)
    args.rounds = max(1, args.rounds or (1 if args.quick else 3))
    if args.quick:
        args.workers = min(args.workers, 50)
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        anyio.run(_run, args, args.dir, backend="asyncio")
    else:
        with tempfile.TemporaryDirectory(prefix="vidu-b5-") as tmp:
            anyio.run(_run, args, Path(tmp), backend="asyncio")
    if args.instructions:
        _print_instructions(args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
