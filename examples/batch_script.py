"""Batch-generate a JSONL file of requests and download every video: the asyncio script case.

Each line of the job file is a request body in Vidu's own JSON shape (as in the API docs), with an
optional ``"key"`` naming it and an optional ``"endpoint"`` naming its task kind (``text2audio``,
``template``...; ``reference2video`` without one); media strings that are not URLs or data URIs are
files relative to the job file (``examples/jobs.jsonl`` uses ``media/cat.png``). The file is read lazily,
a line at a time, and fed to ``client.generate_many``, which keeps as many tasks in flight as the
account allows and hands back each ``BatchResult`` as its task finishes (videos already saved).

**Re-running resumes.** Every item is journaled in ``OUT/journal.sqlite`` before its create is sent:
after a crash or Ctrl-C, run the same command again and finished items are reported from the
journal, running tasks are picked up where they are, and nothing is paid for twice. (The local
emulator's tasks end with the script, so on it a re-run keeps what finished and starts the rest
again.)

Run it (with ``VIDU_API_KEY`` set this calls Vidu and spends credits; without it, or with
``--emulator``, a local emulator of the service answers)::

    python examples/batch_script.py                          # examples/jobs.jsonl into ./batch-out
    python examples/batch_script.py my-jobs.jsonl --out runs/today --max-in-flight 8
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any, Final

import anyio

import vidu_async as vidu
from vidu_async.emulator import Emulator, EmulatorConfig

#: How the local emulator behaves when there is no API key: each task processes for half a second.
EMULATOR: Final = EmulatorConfig(processing_time=0.5)

JOBS: Final = Path(__file__).resolve().parent / "jobs.jsonl"

#: A batch item: a request, named by the line's ``"key"`` when it has one.
Job = vidu.Request | tuple[str, vidu.Request]


@asynccontextmanager
async def connect(*, emulator: bool = False) -> AsyncIterator[tuple[vidu.ViduClient, bool]]:
    """A client for Vidu when ``VIDU_API_KEY`` is set, else (or when asked) for a local emulator;
    and whether it is the emulator."""
    if os.environ.get("VIDU_API_KEY") and not emulator:
        async with vidu.ViduClient() as client:
            yield client, False
        return
    async with Emulator(EMULATOR) as emu, vidu.ViduClient(emu.api_key, base_url=emu.base_url) as client:
        print(f"(using the local emulator at {emu.base_url}; set VIDU_API_KEY to call Vidu)")
        yield client, True


async def restart_unfinished(journal: Path, input_id: str) -> None:
    """Before a run on the emulator: an earlier run's emulator ended with it, and so did its tasks,
    so the journal forgets the task ids of unfinished items and the batch submits them again.
    Never do this against Vidu, whose tasks outlive the script: they would be paid for twice."""
    if not await anyio.Path(journal).exists():
        return
    async with vidu.SQLiteJournal(journal) as store:
        await store.open_input(input_id)
        forgotten = await store.forget_unfinished_tasks()
    if forgotten:
        print(f"({len(forgotten)} unfinished item(s) of an earlier run on the emulator start again)")


def to_request(body: dict[str, Any], folder: Path) -> vidu.Request:
    """A request from a body in Vidu's JSON shape, of the kind its ``"endpoint"`` names
    (``reference2video`` without one); local media are files beside the job file (validated here)."""
    endpoint = body.pop("endpoint", "reference2video")
    if not isinstance(endpoint, str):
        raise ValueError(f"endpoint: expected a string, got {type(endpoint).__name__}")
    return vidu.request_from_json(body, endpoint=endpoint, media_root=folder)


async def read_jobs(path: Path, rejected: list[str]) -> AsyncGenerator[Job, None]:
    """The job file's requests, one line at a time; lines that are not valid requests go to ``rejected``."""
    # Bytes, decoded line by line: one line that is not UTF-8 is skipped like any other bad line.
    async with await anyio.open_file(path, "rb") as lines:
        number = 0
        async for raw in lines:
            number += 1
            if not raw.strip():
                continue
            try:
                body = json.loads(raw.decode("utf-8-sig"))  # a byte order mark is not part of it
                if not isinstance(body, dict):
                    raise ValueError(f"expected a JSON object, got {type(body).__name__}")
                key = body.pop("key", None)
                request = to_request(body, path.parent)
            # Not UTF-8, not JSON (or nested too deep for the parser), not an object, an unknown
            # field, a broken rule.
            except (ValueError, TypeError, RecursionError) as exc:
                rejected.append(f"{path.name}:{number}: {exc}")
                print(f"skipped  {path.name}:{number}: {exc}", file=sys.stderr)
                continue
            yield request if key is None else (str(key), request)


def show(count: int, result: vidu.BatchResult) -> None:
    """One line per finished item."""
    task = f"task {result.task.id}" if result.task else "no task"
    if result.ok:
        files = ", ".join(path.name for path in result.files)
        origin = "  (from the journal)" if result.resumed else ""
        credits = result.task.credits if result.task else None
        print(f"[{count:>3}] ok    {result.key:<16} {task}  {credits} credits -> {files}{origin}")
    else:
        print(f"[{count:>3}] FAIL  {result.key:<16} {task}  {result.error}")


async def main(argv: Sequence[str] | None = None) -> int:
    """Run the batch; the exit status is 0 when every line succeeded, else 1."""
    parser = argparse.ArgumentParser(description="Generate every request of a JSONL file with Vidu.")
    parser.add_argument(
        "jobs", nargs="?", type=Path, default=JOBS, help="the job file (default: examples/jobs.jsonl)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("batch-out"), help="journal and videos (default: batch-out)"
    )
    parser.add_argument(
        "--max-in-flight", type=int, default=None, help="tasks at once (default: from the account)"
    )
    parser.add_argument("--timeout", type=float, default=None, help="seconds each task may take")
    parser.add_argument("--emulator", action="store_true", help="use the local emulator even with a key")
    args = parser.parse_args(argv)

    rejected: list[str] = []
    results: list[vidu.BatchResult] = []
    journal = args.out / "journal.sqlite"
    async with connect(emulator=args.emulator) as (client, on_emulator):
        # The journal refuses to resume another file, and a run on Vidu refuses an emulator's journal.
        input_id = str(args.jobs.resolve()) + (" (emulator)" if on_emulator else "")
        if on_emulator:
            await restart_unfinished(journal, input_id)
        async with (
            aclosing(read_jobs(args.jobs, rejected)) as jobs,
            client.generate_many(
                jobs,
                max_in_flight=args.max_in_flight,
                timeout=args.timeout,
                journal=journal,
                input_id=input_id,
                download_to=args.out / "videos",
            ) as batch,
        ):
            async for result in batch:
                results.append(result)
                show(len(results), result)

    succeeded = sum(result.ok for result in results)
    resumed = sum(result.resumed for result in results)
    print(
        f"\n{succeeded} succeeded, {len(results) - succeeded} failed, {len(rejected)} lines skipped "
        f"({resumed} from an earlier run); {batch.credits} credits charged by this run's tasks"
    )
    print(f"videos in {args.out / 'videos'}; run the same command again to resume or retry")
    return 0 if succeeded == len(results) and not rejected else 1


if __name__ == "__main__":
    sys.exit(anyio.run(main))
