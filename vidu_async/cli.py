"""The ``vidu-async`` command: submit, inspect and cancel tasks, list them, read credits, run the emulator,
run a job file (alone, or as one of many workers of a batch shared through PostgreSQL) and summarize
a shared batch from its database (``batch``).

Errors print as one line (``error: ...``) and set the exit status; ``--debug`` adds the traceback
and the SDK's debug log. Uses only the public API.

Exit status: 0 done; 1 the service refused or a task failed; 2 bad input (usage, a request that
breaks a rule, a missing key, a journal that cannot be used); 3 no answer from the service;
130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import random
import signal
import sys
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

import anyio

from . import Credits, Task, TaskState, ViduClient, __version__, request_from_json
from ._progress import printable
from .exceptions import (
    APIError,
    ConfigurationError,
    JournalError,
    MissingAPIKeyError,
    RequestValidationError,
    TaskFailedError,
    TransportError,
    ViduError,
    WaitTimeoutError,
)
from .journal import LeaseLostError

if TYPE_CHECKING:  # the emulator is imported only by the commands that start one
    from .emulator import EmulatorConfig
    from .journal import BatchSummary

__all__ = ["main"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_TRANSPORT: Final = 3
EXIT_INTERRUPTED: Final = 130


class CommandError(Exception):
    """A problem with the command's input, reported as one line with exit status 2."""


# --- output ----------------------------------------------------------------------------------------


def _task_json(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "state": task.raw_state or task.state.value,
        "err_code": task.err_code,
        "credits": task.credits,
        "payload": task.payload,
        "created_at": task.created_at.isoformat() if task.created_at else None,
        "creations": [
            {"id": c.id, "url": c.url, "cover_url": c.cover_url, "watermarked_url": c.watermarked_url}
            for c in task.creations
        ],
    }


def _print_task(task: Task, out: TextIO, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(_task_json(task)), file=out)
        return
    state = task.raw_state or task.state.value
    line = f"{task.id}  {state}"
    if task.err_code:
        line += f"  err_code={task.err_code}"
    if task.credits is not None:
        line += f"  credits={task.credits}"
    lines = [line]
    for creation in task.creations:
        lines.append(f"  video {creation.id}: {creation.url}")
        if creation.cover_url:
            lines.append(f"  cover {creation.id}: {creation.cover_url}")
    for text in lines:  # the server's text, each line escaped: it never forges one of ours
        print(printable(text), file=out)


def _print_credits(credits: Credits, out: TextIO, *, as_json: bool) -> None:
    rows = [
        {
            "type": r.type,
            "credit_remain": r.credit_remain,
            "concurrency_limit": r.concurrency_limit,
            "current_concurrency": r.current_concurrency,
            "queue_count": r.queue_count,
        }
        for r in credits.remains
    ]
    if as_json:
        print(json.dumps({"remains": rows}), file=out)
        return
    for row in rows:
        print(
            printable(
                f"{row['type'] or '-'}: {row['credit_remain']} credits, "
                f"concurrency {row['current_concurrency']}/{row['concurrency_limit']}, "
                f"{row['queue_count']} queued"
            ),
            file=out,
        )


# --- commands --------------------------------------------------------------------------------------


@asynccontextmanager
async def _client_for(args: argparse.Namespace, **options: Any) -> AsyncIterator[ViduClient]:
    """A client for the command: the real service, or an in-process emulator with ``--emulator``."""
    async with AsyncExitStack() as stack:
        if getattr(args, "emulator", False):
            from .emulator import Emulator, EmulatorConfig

            emu = await stack.enter_async_context(
                Emulator(EmulatorConfig(processing_time=args.emulator_processing_time))
            )
            client = ViduClient(emu.api_key, base_url=emu.base_url, **options)
        else:
            try:
                client = ViduClient(
                    args.api_key, base_url=args.base_url, auth_scheme=args.auth_scheme, **options
                )
            except MissingAPIKeyError:
                raise CommandError(
                    "no API key: set VIDU_API_KEY or pass --api-key (or add --emulator to try a local emulator)"
                ) from None
        yield await stack.enter_async_context(client)


def _read_request_file(path: str) -> dict[str, Any]:
    source = Path(path)
    try:
        # utf-8-sig: a byte order mark, as some Windows editors save one, is not part of the JSON.
        text = sys.stdin.read() if path == "-" else source.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    if not isinstance(body, dict):
        raise CommandError(f"{path}: expected a JSON object (a request body)")
    return body


async def _cmd_submit(args: argparse.Namespace, out: TextIO) -> int:
    body = _read_request_file(args.file)
    named = body.pop("endpoint", None)
    if named is not None and not isinstance(named, str):
        raise CommandError(f'{args.file}: "endpoint" must be a string, like "img2video"')
    if named is not None and args.endpoint is not None and named != args.endpoint:
        raise CommandError(f"{args.file} names endpoint {named!r}, but --endpoint says {args.endpoint!r}")
    endpoint = args.endpoint or named or "reference2video"
    try:
        request = request_from_json(body, endpoint=endpoint, what=f"request in {args.file}")
    except RequestValidationError as exc:
        raise CommandError(str(exc)) from None
    async with _client_for(args) as client:
        task = await client.submit(request)
        _print_task(task, out, as_json=args.json)
        if args.wait:
            task = await _follow(client, task, args, out)
    return EXIT_FAILED if task.state is TaskState.FAILED else EXIT_OK


async def _follow(client: ViduClient, task: Task, args: argparse.Namespace, out: TextIO) -> Task:
    """Print every state change until the task finishes (or the timeout passes)."""
    last = task
    try:
        with anyio.fail_after(args.timeout) if args.timeout else contextlib.nullcontext():
            async for update in client.watch(task.id, known=task):
                if update is not task:
                    _print_task(update, out, as_json=args.json)
                last = update
    except TimeoutError:
        raise WaitTimeoutError(task.id, last) from None
    return last


async def _cmd_wait(args: argparse.Namespace, out: TextIO) -> int:
    async with _client_for(args) as client:
        task = await client.get_task(args.task_id)
        _print_task(task, out, as_json=args.json)
        if not task.is_terminal:
            task = await _follow(client, task, args, out)
    return EXIT_FAILED if task.state is TaskState.FAILED else EXIT_OK


async def _cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    async with _client_for(args) as client:
        task = await client.get_task(args.task_id)
    _print_task(task, out, as_json=args.json)
    return EXIT_FAILED if task.state is TaskState.FAILED else EXIT_OK


async def _cmd_cancel(args: argparse.Namespace, out: TextIO) -> int:
    async with _client_for(args) as client:
        await client.cancel(args.task_id)
    print(json.dumps({"cancelled": args.task_id}) if args.json else f"cancelled {args.task_id}", file=out)
    return EXIT_OK


async def _cmd_tasks(args: argparse.Namespace, out: TextIO) -> int:
    async with _client_for(args) as client:
        async for task in client.list_tasks(
            states=args.state or (), task_ids=args.task_id or (), limit=args.limit
        ):
            _print_task(task, out, as_json=args.json)
    return EXIT_OK


async def _cmd_credits(args: argparse.Namespace, out: TextIO) -> int:
    async with _client_for(args) as client:
        credits = await client.get_credits(show_detail=args.detail)
    _print_credits(credits, out, as_json=args.json)
    return EXIT_OK


def _emulator_config(args: argparse.Namespace) -> EmulatorConfig:
    """The ``emulator`` command's options as an :class:`EmulatorConfig`."""
    from .emulator import EmulatorConfig, FaultConfig

    try:
        faults = FaultConfig(**dict(args.fault))
    except (TypeError, ValueError) as exc:
        raise CommandError(f"--fault: {exc}") from None
    processing: float | Callable[[random.Random], float] = args.processing_time
    if args.processing_spread:
        low = args.processing_time * (1 - args.processing_spread)
        high = args.processing_time * (1 + args.processing_spread)
        processing = functools.partial(random.Random.uniform, a=low, b=high)
    return EmulatorConfig(
        api_key=args.key,
        concurrency=args.concurrency,
        processing_time=processing,
        path_prefix=args.prefix,
        extra_models=args.extra_model,
        download_bytes_per_second=args.download_bytes_per_second,
        stats_endpoint=args.stats_endpoint,
        faults=faults,
    )


async def _cmd_emulator(args: argparse.Namespace, out: TextIO) -> int:
    from .emulator import Emulator

    async with Emulator(_emulator_config(args), host=args.host, port=args.port) as emu:
        print(f"Vidu emulator listening on {emu.base_url}", file=out)
        print(f"  export VIDU_BASE_URL={emu.base_url} VIDU_API_KEY={emu.api_key}", file=out)
        if emu.config.stats_endpoint:
            print(f"  counters: {emu.origin}/_emulator/stats", file=out)
        print("  (Ctrl-C stops it)", file=out, flush=True)
        await anyio.sleep_forever()
    return EXIT_OK  # pragma: no cover - only reached through cancellation


async def _cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    from ._progress import Tally, make_display
    from ._runner import (
        RunOptions,
        is_database_url,
        resume_command,
        resume_needs_key,
        resume_needs_password,
        run_jobs,
        summary_rows,
    )

    database = args.journal if is_database_url(args.journal) else None
    if database is not None and args.emulator:
        raise CommandError(
            "--emulator runs its own emulator in each process, so workers sharing a batch cannot see"
            " each other's tasks: start one with `vidu-async emulator` and point --base-url at it"
        )
    if database is not None and args.max_credits is not None:
        raise CommandError(
            "--max-credits is not available with a PostgreSQL journal: a budget would need every worker's"
            " spending, which a shared batch does not count"
        )
    if database is None and (args.lease is not None or args.worker_name is not None or args.org is not None):
        raise CommandError(
            "--lease, --worker-name and --org need a PostgreSQL journal (--journal postgresql://...)"
        )
    jobs = Path(args.jobs)
    if not await anyio.Path(jobs).is_file():
        raise CommandError(f"no such job file: {args.jobs}")
    out_dir = anyio.Path(args.out)
    if await out_dir.exists() and not await out_dir.is_dir():
        raise CommandError(f"--out {args.out} is a file; give a directory (it is created when missing)")
    options = RunOptions(
        jobs=jobs,
        out=Path(args.out),
        journal=Path(args.journal) if args.journal and database is None else None,
        database=database,
        lease=args.lease,
        worker_name=args.worker_name,
        org=args.org or "default",
        max_in_flight=args.max_in_flight,
        timeout=args.timeout,
        download=not args.no_download,
        max_credits=args.max_credits,
        embedded_emulator=args.emulator,
    )
    tally = Tally()
    display = make_display(tally, out, sys.stderr, plain=args.plain or args.json)
    started = anyio.current_time()
    outcome = None
    interrupted = False
    async with _client_for(args, hooks=[tally.on_event]) as client, anyio.create_task_group() as tg:

        async def stop_on_signal() -> None:
            nonlocal interrupted
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    interrupted = True
                    tg.cancel_scope.cancel()
                    return

        async def work() -> None:
            nonlocal outcome
            outcome = await run_jobs(client, options, display, tally)
            tg.cancel_scope.cancel()

        tg.start_soon(stop_on_signal)
        tg.start_soon(work)
    elapsed = anyio.current_time() - started
    if outcome is None:  # interrupted before the end
        from ._runner import RunOutcome

        outcome = RunOutcome(
            total=tally.total or 0, succeeded=tally.succeeded, failed=tally.failed, interrupted=True
        )
    display.summary(summary_rows(options, tally, outcome, elapsed))
    if interrupted or outcome.interrupted:
        if options.shared:
            print(
                "interrupted: this worker's items stay in the database, and another worker adopts them"
                " once its lease lapses. Join the batch again with:",
                file=out,
            )
        elif options.embedded_emulator:
            # Its tasks end with this process: a re-run keeps what finished and starts the rest again.
            print(
                "interrupted: the journal keeps every finished item; the rest start again. Resume with:",
                file=out,
            )
        else:
            print(
                "interrupted: nothing in flight is lost; the journal has every task. Resume with:", file=out
            )
        print(f"  {resume_command(args.argv)}", file=out, flush=True)
        if resume_needs_key(args.argv):
            print("  (with VIDU_API_KEY set to the key this run was given)", file=out, flush=True)
        if resume_needs_password(args.argv):
            print("  (with PGPASSWORD set to the database's password)", file=out, flush=True)
        return EXIT_INTERRUPTED
    if outcome.all_succeeded:
        return EXIT_OK
    return EXIT_TRANSPORT if outcome.service_unreachable else EXIT_FAILED


def _loaded_text(summary: BatchSummary) -> str:
    """How much of the batch is in the database: its item count, or how far its loader got."""
    if summary.loaded is not None:
        return str(summary.loaded)
    so_far = sum(summary.states.values())
    return f"{so_far} so far, still loading" if so_far else "not loaded yet"


def _print_batch(
    summary: BatchSummary,
    finished: dict[int, tuple[str, int]],
    where: str,
    org: str,
    out: TextIO,
    *,
    as_json: bool,
) -> None:
    if as_json:
        import attrs

        finishers = [{"worker_id": w, "name": name, "finished": n} for w, (name, n) in finished.items()]
        data = {"database": where, "org": org, **attrs.asdict(summary), "finished_by": finishers}
        print(json.dumps(data), file=out)
        return
    rows: list[tuple[str, str]] = [
        ("batch", summary.input_id),
        ("database", where),
        ("items", _loaded_text(summary)),
        ("unfinished", str(summary.unfinished)),
    ]
    rows += [(f"  {state}", str(count)) for state, count in summary.states.items()]
    rows.append(("slots held", f"{summary.slots_held} of {summary.capacity} (organization {org})"))
    if summary.orphan_answers:
        rows.append(
            (
                "orphan answers",
                f"{summary.orphan_answers} (creates answered to a worker that had lost the item)",
            )
        )
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(printable(f"{label:<{width}}  {value}"), file=out)
    print(f"workers{'' if summary.workers else '  none live, none owning an unfinished item'}", file=out)
    for worker in summary.workers:
        items = (
            ", ".join(f"{state} {count}" for state, count in worker.items.items()) or "no unfinished items"
        )
        lease = "live" if worker.live else "lease lapsed"
        print(printable(f"  #{worker.worker_id}  {worker.name}  {lease}  {items}"), file=out)
    print(f"finished by{'' if finished else '  nobody yet'}", file=out)
    for worker_id, (name, count) in finished.items():
        print(printable(f"  #{worker_id}  {name}  {count}"), file=out)
    print(f"stuck{'' if summary.stuck else '  none'}", file=out)
    for item in summary.stuck:
        owner = f"worker #{item.worker_id}" if item.worker_id is not None else "no owner"
        print(printable(f"  {item.key}  {item.state}  {owner}  {item.reason}"), file=out)


async def _cmd_batch(args: argparse.Namespace, out: TextIO) -> int:
    from ._runner import input_digest, is_database_url, redact_url
    from .journal import PostgresJournal

    if not is_database_url(args.database):
        raise CommandError(
            f"expected a PostgreSQL URL (postgresql://user@host/db), got {redact_url(args.database)!r}"
        )
    input_id = args.input_id
    if input_id is None:
        jobs = Path(args.jobs)
        if not await anyio.Path(jobs).is_file():
            raise CommandError(f"no such job file: {args.jobs}")
        input_id = await anyio.to_thread.run_sync(input_digest, jobs)
    async with PostgresJournal(args.database, org=args.org, min_connections=0, max_connections=1) as journal:
        summary = await journal.summary(input_id)
        finished = await journal.finished_by_worker(input_id)
        where = journal.dsn
    if summary.loaded is None and not summary.states:
        raise CommandError(f"no batch {input_id} in {where}")
    _print_batch(summary, finished, where, args.org, out, as_json=args.json)
    return EXIT_OK


_COMMANDS: Final[dict[str, Callable[[argparse.Namespace, TextIO], Awaitable[int]]]] = {
    "submit": _cmd_submit,
    "status": _cmd_status,
    "wait": _cmd_wait,
    "cancel": _cmd_cancel,
    "tasks": _cmd_tasks,
    "credits": _cmd_credits,
    "emulator": _cmd_emulator,
    "run": _cmd_run,
    "batch": _cmd_batch,
}


# --- parsing ---------------------------------------------------------------------------------------


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 up to (not including) 1, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (public for documentation tools and tests)."""
    common = argparse.ArgumentParser(add_help=False)
    conn = common.add_argument_group("connection")
    conn.add_argument("--api-key", help="API key (default: $VIDU_API_KEY)")
    conn.add_argument("--base-url", help="service root (default: $VIDU_BASE_URL or https://api.vidu.com)")
    conn.add_argument(
        "--auth-scheme",
        choices=("Token", "Bearer"),
        default="Token",
        help="Authorization scheme (default: Token)",
    )
    conn.add_argument(
        "--emulator",
        action="store_true",
        help="start a local emulator in this process and use it instead of the service (no key needed)",
    )
    conn.add_argument(
        "--emulator-processing-time",
        type=_positive_float,
        default=1.0,
        metavar="SECONDS",
        help="with --emulator: how long each task takes (default: 1.0)",
    )
    common.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    common.add_argument("--debug", action="store_true", help="show tracebacks and the SDK's debug log")

    parser = argparse.ArgumentParser(
        prog="vidu-async",
        description="Generate videos with Vidu's reference2video API, or run a local emulator of it.",
        epilog="Exit status: 0 done, 1 refused or failed, 2 bad input (or an unusable journal), "
        "3 no answer from the service, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "submit",
        parents=[common],
        help="create a task from a JSON request file",
        description="Create a task from a request body in Vidu's JSON shape (as in the API docs): "
        'a reference2video body, or another kind\'s with --endpoint (or an "endpoint" key in the '
        "body). The request is validated first; nothing is sent if it breaks a rule.",
    )
    p.add_argument("file", help="the request body (JSON); '-' reads standard input")
    p.add_argument(
        "--endpoint",
        metavar="NAME",
        help="the task kind: the path after /ent/v2/ (text2video, img2video, template, "
        "reference2image, text2audio...; default reference2video)",
    )
    p.add_argument("--wait", action="store_true", help="then follow the task until it finishes")
    p.add_argument(
        "--timeout", type=_positive_float, metavar="SECONDS", help="with --wait: give up after this long"
    )

    p = sub.add_parser(
        "run",
        parents=[common],
        help="run a JSONL job file: submit, wait, download; re-run to resume",
        description="Generate every request of a JSONL job file (one request body in Vidu's JSON shape per "
        'line, with an optional "key"), download the videos and write OUT/results.jsonl. A journal '
        "(OUT/journal.sqlite) records every task: running the same command again after a crash or Ctrl-C "
        "resumes without paying twice. Image and video paths that are not URLs are files relative to the job file.",
    )
    p.add_argument("jobs", metavar="JOBS.jsonl", help="the job file")
    p.add_argument("--out", required=True, metavar="DIR", help="where results, videos and the journal go")
    p.add_argument(
        "--journal",
        metavar="FILE|URL",
        help="the journal (default: DIR/journal.sqlite); a postgresql://user@host/db URL shares the batch"
        " with every worker that runs the same job file against the same database",
    )
    p.add_argument(
        "--lease",
        type=_positive_float,
        metavar="SECONDS",
        help="with a PostgreSQL journal: how long this worker's lease lasts without a heartbeat; another"
        " worker adopts its items once it lapses (default: 30)",
    )
    p.add_argument(
        "--worker-name",
        metavar="NAME",
        help="with a PostgreSQL journal: how this worker appears in `vidu-async batch` (default: host:pid)",
    )
    p.add_argument(
        "--org",
        metavar="NAME",
        help="with a PostgreSQL journal: the organization whose slots the workers share; give each Vidu"
        " account its own name when one database serves several (default: default)",
    )
    p.add_argument(
        "--max-in-flight", type=_positive_int, metavar="N", help="tasks at once (default: from your account)"
    )
    p.add_argument(
        "--timeout", type=_positive_float, metavar="SECONDS", help="give up on a task after this long"
    )
    p.add_argument("--no-download", action="store_true", help="do not download the videos")
    p.add_argument(
        "--max-credits",
        type=_positive_int,
        metavar="N",
        help="a credit budget: submit only what N credits can still pay for",
    )
    p.add_argument("--plain", action="store_true", help="a line per event even on a terminal")

    p = sub.add_parser(
        "batch",
        help="summarize a shared batch from its PostgreSQL journal",
        description="Read a batch shared through a PostgreSQL journal (run --journal postgresql://...):"
        " items per state, the workers and what they own, the organization's slots held, and stuck items"
        " (an owner whose lease lapsed, or an item an adopter could not decide). Reads only.",
    )
    p.add_argument("database", metavar="URL", help="the journal's database: postgresql://user@host/db")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "jobs", metavar="JOBS.jsonl", nargs="?", help="the batch's job file (its sha256 names it)"
    )
    which.add_argument("--input-id", metavar="ID", help="the batch's id (the sha256 run prints)")
    p.add_argument(
        "--org", default="default", help="the organization whose slots to count (default: default)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--debug", action="store_true", help="show tracebacks")

    p = sub.add_parser(
        "status", parents=[common], help="show a task", description="Show a task's state and videos."
    )
    p.add_argument("task_id", help="the task id")

    p = sub.add_parser(
        "wait",
        parents=[common],
        help="follow a task until it finishes",
        description="Print a task's state changes until it finishes; exit 1 if it failed.",
    )
    p.add_argument("task_id", help="the task id")
    p.add_argument("--timeout", type=_positive_float, metavar="SECONDS", help="give up after this long")

    p = sub.add_parser(
        "cancel",
        parents=[common],
        help="cancel a task that has not started",
        description="Cancel a task that is still created or queueing.",
    )
    p.add_argument("task_id", help="the task id")

    p = sub.add_parser(
        "tasks",
        parents=[common],
        help="list recent tasks",
        description="List tasks, newest first (the service's default window is the last 7 days).",
    )
    p.add_argument(
        "--state",
        action="append",
        choices=[s.value for s in TaskState if s is not TaskState.UNKNOWN],
        metavar="STATE",
        help="only tasks in this state (repeatable): %(choices)s",
    )
    p.add_argument("--task-id", action="append", help="only this task (repeatable)")
    p.add_argument("--limit", type=_positive_int, default=50, help="at most this many tasks (default: 50)")

    p = sub.add_parser(
        "credits",
        parents=[common],
        help="show credits and concurrency",
        description="Show the account's credits.",
    )
    p.add_argument("--detail", action="store_true", help="include purchased packages")

    p = sub.add_parser(
        "emulator",
        help="run the local Vidu emulator",
        description="Serve a faithful local emulator of Vidu's ent/v2 API until Ctrl-C.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to bind; 0 picks a free one (default: 8000)")
    p.add_argument(
        "--key", default="vda_emulator_key", help="the API key it accepts (default: vda_emulator_key)"
    )
    p.add_argument(
        "--concurrency", type=_positive_int, default=5, help="tasks processed at once (default: 5)"
    )
    p.add_argument(
        "--processing-time", type=_positive_float, default=5.0, help="seconds per task (default: 5.0)"
    )
    p.add_argument(
        "--processing-spread",
        type=_fraction,
        default=0.0,
        metavar="FRACTION",
        help="draw each task's time uniformly within this fraction of --processing-time, seeded"
        " (0.5: from half to one and a half times it; default 0: every task takes exactly it)",
    )
    p.add_argument("--prefix", default="", help="path prefix, e.g. /vidu, as reseller gateways use")
    p.add_argument(
        "--extra-model",
        action="append",
        default=[],
        metavar="NAME",
        help="also accept this model name, with generic checks (repeatable; others outside the table are refused)",
    )
    p.add_argument(
        "--download-bytes-per-second",
        type=_positive_float,
        default=None,
        metavar="N",
        help="serve downloads at about N bytes a second, as a slow CDN would (default: at once)",
    )
    p.add_argument(
        "--stats-endpoint",
        action="store_true",
        help="also serve GET /_emulator/stats: its counters as JSON (tasks per payload, peak in flight"
        " per organization, requests per endpoint), for tests that run it in another process",
    )
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        type=_fault,
        metavar="NAME=VALUE",
        help="inject faults, as FaultConfig's fields: --fault rate_limit=0.08 --fault drop=0.02"
        " --fault endpoints=create,get (repeatable)",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def _fault(text: str) -> tuple[str, object]:
    """One ``--fault NAME=VALUE``, its value read as the field's type."""
    import attrs

    from .emulator import FaultConfig

    name, equals, raw = text.partition("=")
    fields = {field.name: field for field in attrs.fields(FaultConfig)}
    field = fields.get(name.strip())
    if not equals or field is None:
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE with NAME one of {', '.join(fields)}; got {text!r}"
        )
    raw = raw.strip()
    default = field.default
    try:
        if name == "endpoints":
            return name, frozenset(part.strip() for part in raw.split(",") if part.strip())
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false"):
                raise ValueError("expected true or false")
            return name, raw.lower() == "true"
        if isinstance(default, int):
            return name, int(raw)
        if isinstance(default, float) or default is None:
            return name, None if raw.lower() == "none" else float(raw)
        return name, raw
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--fault {name}: {exc}") from None


def _first_error(exc: BaseException) -> tuple[BaseException, int]:
    """The error a task group wrapped (``run`` works in one), and how many others came with it."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc, 0
    leaves: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if isinstance(current, BaseExceptionGroup):
            pending[:0] = current.exceptions
        else:
            leaves.append(current)
    return (leaves[0], len(leaves) - 1) if leaves else (exc, 0)


def _error_line(exc: BaseException) -> tuple[str, int]:
    exc, others = _first_error(exc)
    message, status = _error_status(exc)
    # Only the validation error's own lines (a problem per line) break; anything else, a
    # server's message above all, is one line with its control characters escaped.
    message = printable(message, newlines=isinstance(exc, RequestValidationError | CommandError))
    if others:
        message += f" (and {others} more error{'s' if others > 1 else ''}; --debug shows them)"
    return message, status


def _error_status(exc: BaseException) -> tuple[str, int]:
    if isinstance(exc, LeaseLostError):  # not bad input: this worker was too slow, the others go on
        return str(exc), EXIT_FAILED
    if isinstance(exc, CommandError | RequestValidationError | ConfigurationError | JournalError):
        return str(exc), EXIT_USAGE
    if isinstance(exc, TaskFailedError | APIError):
        return str(exc), EXIT_FAILED
    if isinstance(exc, TransportError):
        return str(exc), EXIT_TRANSPORT
    if isinstance(exc, ViduError):
        return str(exc), EXIT_FAILED
    if isinstance(exc, ValueError):  # the SDK's answer to an argument it cannot use (a blank task id...)
        return str(exc), EXIT_USAGE
    if isinstance(exc, OSError) and exc.filename is not None:  # a path given, or one under it
        return f"cannot use {exc.filename}: {exc.strerror or exc}", EXIT_USAGE
    return f"{type(exc).__name__}: {exc}", EXIT_FAILED


class _WarningLines(logging.Handler):
    """The SDK's warnings as ``warning: ...`` lines on the command's error stream. Standard error
    is looked up at each line, as logging's own last resort does, so that while a live display
    holds the terminal the line goes through it."""

    def __init__(self, err: TextIO) -> None:
        super().__init__(logging.WARNING)
        self._err = None if err is sys.stderr else err
        # The batch's warnings are of items left unfinished, which run reports in its own summary.
        self.addFilter(lambda record: record.module != "_batch" or record.levelno >= logging.ERROR)

    def format(self, record: logging.LogRecord) -> str:
        """One line: the message and, for a logged exception, what it said (the traceback is
        for ``--debug``)."""
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            message += f": {str(exc) or type(exc).__name__}"
        return "warning: " + printable(message)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = self._err or sys.stderr
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def _sdk_warnings(err: TextIO) -> Iterator[None]:
    """Without ``--debug``, for the command's run: the SDK's warnings as ``warning: ...`` lines."""
    handler = _WarningLines(err)
    sdk = logging.getLogger("vidu_async")
    sdk.addHandler(handler)
    try:
        yield
    finally:
        sdk.removeHandler(handler)


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.debug:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    command = _COMMANDS[args.command]
    try:
        with contextlib.nullcontext() if args.debug else _sdk_warnings(err):
            return anyio.run(command, args, out, backend="asyncio")
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            traceback.print_exc(file=err)
        message, status = _error_line(exc)
        print(f"error: {message}", file=err)
        return status
