"""B7: many workers, one batch: does sharing a batch through PostgreSQL keep one organization busy?

One job file of N tasks of T seconds each on average (drawn from 0.5 T to 1.5 T), against one
emulator in a child process (organization concurrency C), run to the end by the command line as a
user would run it:

* one process with the SQLite journal (``vidu-async run JOBS --journal FILE``), the baseline;
* 1, 2, 4 and 8 processes sharing the batch (``vidu-async run JOBS --journal postgresql://...``),
  all started at once.

Every run sizes its in-flight limit as the command does by default: the organization's
concurrency read from ``GET /ent/v2/credits`` plus a small queue allowance (here 200 + 10), so
that the service always has our next task waiting; for the shared runs that is the number of the
organization's slots in the database, shared by all the workers. ``--max-in-flight N`` sets it
instead (``N = C``: every slot idles from a task's finish until its next create arrives).

Every run gets a fresh emulator (same settings) and a fresh database; ``--no-download`` keeps the
figure about orchestration. The makespan runs from starting the processes to the last one's exit
(Python's start-up included); the ideal is N x T / C. The table also shows items per second, the
makespan's three parts (from the start to the emulator's first create, the emulator's span from
there to the last finish, and from that to the last process's exit), the emulator's peak of tasks
in flight, and what the database
did per item: transactions (``pg_stat_database.xact_commit``), rows written, and the time its
backends spent executing statements (``active_time``).

The database: ``--dsn URL`` (a server where the benchmark may create databases), else
``$VIDU_BENCH_POSTGRES_DSN``, else a throwaway cluster started with ``tests/pg_cluster.py``.

Every run has parts that do not grow with the batch: Python's start-up, the first creates, and the
tail, where the last tasks (up to 1.5 T) run on while the organization empties: with T = 2 s about
3 s in all, 15% of a 20 s ideal, 5% of a 60 s one. So the default batch is 6,000 tasks (ideal 60 s),
long enough for the figure to be about sharing the batch, not about the fixed parts; the table
shows them apart ("first create", "exit"; the tail is inside the server's span).

Run ``python benchmarks/b7_fleet.py`` (6,000 tasks of 2 s, concurrency 200; about seven minutes) or
``--quick`` (a smoke run of a few seconds: 1 and 2 workers; the test suite runs it).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import anyio
import attrs
from _common import API_KEY, benchmark_parser, emulator_process, print_table, verdict

#: The 4-worker makespan may be at most this multiple of the ideal N x T / C.
TARGET_RATIO: Final = 1.10
TARGET_WORKERS: Final = 4
ENV_DSN: Final = "VIDU_BENCH_POSTGRES_DSN"
#: Each task's time is drawn uniformly within this fraction of T (seeded), as real tasks vary: with
#: one fixed time, every slot's task ends in the same instant, once per T, and each of those waves
#: leaves the organization idle while the next creates arrive, whatever the journal.
SPREAD: Final = 0.5
ROOT: Final = Path(__file__).resolve().parent.parent


@attrs.frozen(kw_only=True)
class Outcome:
    """What one run measured."""

    label: str
    workers: int
    makespan: float
    span: float | None
    tasks: int
    peak: int
    failures: int
    start_lag: float | None
    end_lag: float | None
    transactions: float | None = None
    rows_written: float | None = None
    db_ms: float | None = None


def _pg_cluster() -> ModuleType:
    """``tests/pg_cluster.py`` (the tests' throwaway server), loaded by path."""
    spec = importlib.util.spec_from_file_location("pg_cluster", ROOT / "tests" / "pg_cluster.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _server(dsn: str | None) -> Iterator[str]:
    """The DSN of a server's maintenance database: given, from the environment, or a throwaway."""
    dsn = dsn or os.environ.get(ENV_DSN)
    if dsn:
        yield dsn
        return
    cluster = _pg_cluster()
    reason = cluster.unavailable_reason()
    if reason is not None:
        raise SystemExit(f"B7 needs PostgreSQL: {reason} (or pass --dsn / set {ENV_DSN})")
    with cluster.cluster() as running:
        yield running.dsn


def _database(dsn: str, name: str) -> str:
    parts = urllib.parse.urlsplit(dsn)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


async def _admin(dsn: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _db_cost(dsn: str, name: str) -> tuple[float, float, float]:
    """Transactions committed, rows written and milliseconds executing statements in ``name``."""
    import asyncpg

    await anyio.sleep(1.0)  # the workers' backends report their statistics as they end
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted AS written, active_time"
            " FROM pg_stat_database WHERE datname = $1",
            name,
        )
    finally:
        await conn.close()
    assert row is not None
    return float(row["xact_commit"]), float(row["written"]), float(row["active_time"] or 0.0)


def _write_jobs(path: Path, tasks: int, tag: str) -> None:
    lines = []
    for i in range(tasks):
        body = {
            "key": f"{tag}-{i:06d}",
            "model": "viduq3",
            "subjects": [{"name": "Ming", "images": [f"https://example.com/media/ming-{i % 97}.png"]}],
            "prompt": f"@Ming cooks hot pot and says he loves it, take {tag}-{i}.",
            "duration": 5,
        }
        lines.append(json.dumps(body))
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/_emulator/stats", timeout=30) as answer:
        data: dict[str, Any] = json.loads(answer.read())
    return data


def _run_workers(argvs: list[list[str]]) -> tuple[float, float, list[int]]:
    """Start every command at once, wait for all; when they started and ended (``time.monotonic()``,
    the emulator's clock too) and their exit statuses."""
    started = time.monotonic()
    processes = [
        subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for argv in argvs
    ]
    statuses = []
    for process in processes:
        _, errors = process.communicate()
        if process.returncode != 0:
            print(f"  a worker exited {process.returncode}: {errors.strip()[-500:]}")
        statuses.append(process.returncode)
    return started, time.monotonic(), statuses


def _measure(
    args: argparse.Namespace, server: str, folder: Path, label: str, workers: int | None, run: int
) -> Outcome:
    """One run: ``workers`` processes on a PostgreSQL journal, or ``None``: one on SQLite."""
    tag = f"r{run}"
    jobs = folder / f"{tag}.jsonl"
    _write_jobs(jobs, args.tasks, tag)
    # The counters are read over HTTP: the emulator runs in its own process.
    with emulator_process(
        concurrency=args.concurrency,
        processing_time=args.processing_time,
        options=["--stats-endpoint", "--processing-spread", str(SPREAD)],
    ) as url:
        common = ["--no-download", "--plain", "--base-url", url, "--api-key", API_KEY]
        if args.max_in_flight is not None:
            common += ["--max-in-flight", str(args.max_in_flight)]
        command = [sys.executable, "-m", "vidu_async", "run", str(jobs)]
        name = f"vidu_b7_{os.getpid()}_{tag}"
        if workers is None:
            argvs = [
                [*command, "--out", str(folder / tag), "--journal", str(folder / f"{tag}.sqlite"), *common]
            ]
        else:
            anyio.run(_admin, server, f'CREATE DATABASE "{name}"')
            dsn = _database(server, name)
            argvs = [
                [*command, "--out", str(folder / f"{tag}-{n}"), "--journal", dsn, *common]
                for n in range(workers)
            ]
        started, ended, statuses = _run_workers(argvs)
        stats = _stats(url)
    first, last = stats["first_created_at"], stats["last_finished_at"]
    cost = None
    if workers is not None:
        cost = anyio.run(_db_cost, server, name)
        anyio.run(_admin, server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    per_item = [c / args.tasks for c in cost] if cost is not None else [None, None, None]
    return Outcome(
        label=label,
        workers=workers or 1,
        makespan=ended - started,
        span=stats["task_span"],
        start_lag=None if first is None else first - started,
        end_lag=None if last is None else ended - last,
        tasks=stats["tasks_created"],
        peak=stats["max_in_flight"],
        failures=sum(1 for s in statuses if s != 0),
        transactions=per_item[0],
        rows_written=per_item[1],
        db_ms=per_item[2],
    )


def _run(args: argparse.Namespace) -> None:
    ideal = args.tasks * args.processing_time / args.concurrency
    print(
        f"B7 fleet: {args.tasks} tasks of {args.processing_time} s, organization concurrency"
        f" {args.concurrency}, ideal {args.tasks} x {args.processing_time} / {args.concurrency} = {ideal:.1f} s"
    )
    outcomes: list[Outcome] = []
    with _server(args.dsn) as server, tempfile.TemporaryDirectory(prefix="vidu-b7-") as tmp:
        folder = Path(tmp)
        outcomes.append(_measure(args, server, folder, "1 process, SQLite journal", None, 0))
        for run, workers in enumerate(args.workers, start=1):
            label = f"{workers} worker{'s' if workers > 1 else ''}, PostgreSQL journal"
            outcomes.append(_measure(args, server, folder, label, workers, run))

    def figure(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    print_table(
        [
            "run", "makespan s", "/ ideal", "items/s", "first create s", "server span s", "exit s", "tasks",
            "peak in flight",
            "xact/item", "rows/item", "db ms/item",
        ],
        [
            [
                o.label, f"{o.makespan:.2f}", f"{o.makespan / ideal:.3f}", f"{args.tasks / o.makespan:.1f}",
                figure(o.start_lag, ".2f"), figure(o.span, ".2f"), figure(o.end_lag, ".2f"), o.tasks, o.peak, figure(o.transactions, ".1f"),
                figure(o.rows_written, ".1f"), figure(o.db_ms, ".3f"),
            ]
            for o in outcomes
        ],
    )  # fmt: skip
    for o in outcomes:
        if o.failures or o.tasks != args.tasks:
            print(f"  {o.label}: {o.failures} workers failed, {o.tasks} tasks created for {args.tasks} items")
    baseline = outcomes[0]
    for o in outcomes[1:]:
        print(f"  {o.label} / SQLite makespan: {o.makespan / baseline.makespan:.3f}x")
    target = next((o for o in outcomes[1:] if o.workers == TARGET_WORKERS), None)
    if target is not None:
        ratio = target.makespan / ideal
        print(
            f"target {TARGET_WORKERS}-worker makespan <= {TARGET_RATIO} x ideal: {ratio:.3f}x,"
            f" {verdict(ratio <= TARGET_RATIO)}"
        )
    single = outcomes[1]
    ok = all(o.tasks == args.tasks and not o.failures for o in outcomes)
    print(f"target one task per item, every worker done: {verdict(ok)}")
    if target is None:
        print(
            f"  ({single.label}: {single.makespan / ideal:.3f}x the ideal; the quick run has no 4-worker run)"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (``argv``: its arguments, default ``sys.argv[1:]``) and print its figures;
    returns the exit status (0, also when a target is missed: the output says so)."""
    parser = benchmark_parser(__doc__, "60 tasks of 0.5 s, 1 and 2 workers: a smoke run of a few seconds")
    parser.add_argument("--tasks", type=int, help="tasks per run (default 6000; 60 with --quick)")
    parser.add_argument(
        "--max-in-flight",
        type=int,
        help="every run's --max-in-flight (default: the account's sizing, concurrency plus a queue allowance)",
    )
    parser.add_argument(
        "--dsn", help=f"a PostgreSQL server to create databases on (default ${ENV_DSN}, or a throwaway)"
    )
    parser.add_argument(
        "--processing-time", type=float, help="seconds per task on average (default 2.0; 0.5 with --quick)"
    )
    parser.add_argument(
        "--workers", type=int, nargs="+", help="the fleets' sizes (default 1 2 4 8; 1 2 with --quick)"
    )
    args = parser.parse_args(argv)
    args.tasks = args.tasks or (60 if args.quick else 6000)
    args.concurrency = 200
    args.processing_time = args.processing_time or (0.5 if args.quick else 2.0)
    args.workers = args.workers or ([1, 2] if args.quick else [1, 2, 4, 8])
    _run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
