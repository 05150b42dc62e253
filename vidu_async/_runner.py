"""``vidu-async run``: a JSONL job file through ``generate_many`` with a journal, downloads and a
results file; re-running the same command resumes.

Each line is a request body in Vidu's JSON shape (as in the docs), with an optional ``"key"``;
image and video strings that are not URLs or data URIs are files relative to the job file. A bad
line (not UTF-8, invalid JSON, not an object, an invalid request, a key used twice) is reported
with its line number and recorded as failed; the rest runs. Results go to ``OUT/results.jsonl``
(one line per input, rewritten by every run that gets going; one refused at the start, by its
journal say, leaves the previous file alone), videos to ``OUT/videos/``, the journal to
``OUT/journal.sqlite``.

With ``--journal postgresql://...`` the batch is shared: any number of workers on any number of
machines run the same command on the same job file (the batch is the sha256 of its bytes) and split
its items through the database. Each writes the results and files of the items it finished, a row
as each finishes (``OUT/results.jsonl`` is then written in place, not replaced at the end, so a
worker killed mid-way leaves every row it finished); a run after the batch finished lists every
item's stored result and fetches missing files, creating nothing.
"""

from __future__ import annotations

import codecs
import contextlib
import glob
import hashlib
import itertools
import json
import os
import re
import shlex
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import IO, Any, Final

import anyio
import attrs

from . import BatchResult, ViduClient, request_from_json
from ._batch_input import DUPLICATE_KEY, JobItem, json_type, key_problem
from ._progress import Display, Tally
from .exceptions import RequestValidationError, TaskFailedError, TransportError
from .journal import PostgresJournal, SQLiteJournal

__all__ = [
    "RunOptions",
    "RunOutcome",
    "input_digest",
    "is_database_url",
    "resume_command",
    "resume_needs_key",
    "resume_needs_password",
    "run_jobs",
    "summary_rows",
]

#: Lines read from the job file per trip to the worker thread.
_READ_CHUNK: Final = 512
#: Results written per trip to the worker thread.
_WRITE_CHUNK: Final = 256


@attrs.frozen(kw_only=True)
class RunOptions:
    """What ``vidu-async run`` was asked to do."""

    jobs: Path
    out: Path
    journal: Path | None = None
    max_in_flight: int | None = None
    timeout: float | None = None
    download: bool = True
    max_credits: int | None = None
    #: The client talks to an emulator in this process (``--emulator``): its tasks end with it.
    embedded_emulator: bool = False
    #: A PostgreSQL journal's URL (``--journal postgresql://...``): the batch is shared. Never shown
    #: as it is (its password): :attr:`journal_shown`.
    database: str | None = attrs.field(default=None, repr=False)
    #: Seconds a shared batch's worker lease lasts without a heartbeat (``None``: the journal's default).
    lease: float | None = None
    #: How the worker appears in ``vidu-async batch`` (``None``: ``host:pid``).
    worker_name: str | None = None
    #: The organization whose slots a shared batch's workers share (one per Vidu account).
    org: str = "default"

    @property
    def shared(self) -> bool:
        """Whether the batch is shared through PostgreSQL."""
        return self.database is not None

    @property
    def input_id(self) -> str:
        """What the journal is tied to: the job file, and whether its tasks live in an embedded
        emulator (so that a journal of one kind of run is refused by the other)."""
        path = str(self.jobs.resolve())
        return f"{path} (embedded emulator)" if self.embedded_emulator else path

    @property
    def journal_shown(self) -> str:
        """The journal as the summary shows it: a path, or the database's URL without its password."""
        if self.database is not None:
            return redact_url(self.database)
        return str(self.journal_path)

    @property
    def journal_path(self) -> Path:
        """The journal: ``--journal``, else ``OUT/journal.sqlite``."""
        return self.journal or self.out / "journal.sqlite"

    @property
    def results_path(self) -> Path:
        """``OUT/results.jsonl``."""
        return self.out / "results.jsonl"

    @property
    def videos(self) -> Path:
        """``OUT/videos``."""
        return self.out / "videos"


@attrs.define
class RunOutcome:
    """How a run ended."""

    total: int = 0
    succeeded: int = 0
    failed: int = 0
    interrupted: bool = False
    unfinished: int = 0
    #: Failed items that were bad lines.
    invalid: int = 0
    #: Failed items that got no answer from the service (a refused connection, say).
    no_answer: int = 0
    #: A shared batch: this worker's results are the items it finished, not every input.
    shared: bool = False

    @property
    def all_succeeded(self) -> bool:
        """Whether every input succeeded (in a shared batch: every item this worker reported)."""
        if self.shared:
            return not self.interrupted and self.failed == 0
        return not self.interrupted and self.failed == 0 and self.succeeded == self.total

    @property
    def service_unreachable(self) -> bool:
        """Whether the service answered none of the items it was asked about."""
        return self.no_answer > 0 and self.succeeded == 0 and self.failed == self.no_answer + self.invalid


@attrs.frozen
class _BadLine:
    line: int
    key: str | None
    error: str


def is_database_url(journal: str | None) -> bool:
    """Whether ``--journal`` names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    scheme, sep, _ = (journal or "").partition("://")
    return bool(sep) and scheme.lower() in ("postgresql", "postgres")


def redact_url(url: str) -> str:
    """A database URL with its password (in the user part or a ``password=`` parameter) as ``***``."""
    return _without_password(url, "***")[0]


def _without_password(url: str, mask: str | None) -> tuple[str, bool]:
    """``url`` with any password replaced by ``mask`` (``None``: left out), and whether it had one."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unreadable URL>", True
    had = False
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        if colon:
            had = True
            netloc = f"{user}:{mask}@{host}" if mask is not None else f"{user}@{host}"
    pieces = parts.query.split("&") if parts.query else []
    query = []
    for piece in pieces:
        if piece.partition("=")[0].lower() == "password":
            had = True
            if mask is not None:
                query.append(f"password={mask}")
        else:
            query.append(piece)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query="&".join(query))), had


def input_digest(path: Path) -> str:
    """The sha256 of the job file's bytes: a shared batch's ``input_id``, the same on every machine."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _count_inputs(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for raw in handle if raw.strip())


def _parse_line(line: int, raw: bytes, media_root: Path, name: str) -> JobItem | _BadLine:
    """One job line as a batch item (a line without a key is named by its content), or what is
    wrong with it."""
    raw = raw.rstrip(b"\r\n")  # the line's end is not part of its JSON (nor of an error's column)
    # A byte order mark is not part of the line either: some Windows editors start a file with
    # one, and files joined with cat carry theirs along.
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        text = raw[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        return _BadLine(line, None, f"{name}:{line}: not UTF-8 text (byte {bom + exc.start + 1} of the line)")
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        return _BadLine(line, None, f"{name}:{line}: invalid JSON: {exc.msg} (column {exc.colno})")
    except RecursionError:  # json's parser is recursive: a hostile line must not end the run
        return _BadLine(line, None, f"{name}:{line}: invalid JSON: nested too deeply")
    if not isinstance(body, dict):
        return _BadLine(line, None, f"{name}:{line}: expected a JSON object, got {json_type(body)}")
    key = body.pop("key", None)
    if key is not None and (problem := key_problem(key)) is not None:
        return _BadLine(line, None, f"{name}:{line}: invalid key: {problem}")
    try:
        endpoint = body.pop("endpoint", "reference2video")
        request = request_from_json(body, endpoint=str(endpoint), what="request", media_root=media_root)
    except RequestValidationError as exc:
        problems = "; ".join(str(p) for p in exc.problems)
        return _BadLine(line, key, f"{name}:{line}: invalid request: {problems}")
    return JobItem(request, key, line)


def _first_key(item: JobItem, seen: set[str], name: str) -> JobItem | _BadLine:
    """``item``, or the bad line it is when an earlier line has its key."""
    if item.key is None:
        return item
    if item.key in seen:
        assert item.line is not None
        return _BadLine(
            item.line, item.key, f"{name}:{item.line}: key {item.key!r} is used by an earlier line"
        )
    seen.add(item.key)
    return item


def _item_lines(path: Path) -> list[int]:
    """The line of each batch item of the job file, by index: the lines that make an item (not
    blank, not bad), as :func:`run_jobs` reads them."""
    lines: list[int] = []
    seen: set[str] = set()
    with path.open("rb") as handle:
        for line, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            parsed = _parse_line(line, raw, path.parent, path.name)
            if not isinstance(parsed, _BadLine):
                parsed = _first_key(parsed, seen, path.name)
            if not isinstance(parsed, _BadLine):
                lines.append(line)
    return lines


def _one_line(text: str) -> str:
    """A multi-line message (an error listing its problems) as one line of output."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


class _ResultsFile:
    """``results.jsonl`` written off the event loop, a chunk at a time, replaced whole at the end.

    With ``in_place=True`` (a shared batch) the file itself is written, a row as each result comes:
    a worker killed at any moment leaves the row of every item it finished.
    """

    def __init__(self, path: Path, *, in_place: bool = False) -> None:
        self.path = path
        self.in_place = in_place
        self._temp = path if in_place else path.with_name(path.name + ".tmp")
        self._pending: list[str] = []
        self._handle: IO[str] | None = None

    async def open(self) -> None:
        def open_sync() -> IO[str]:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # A lone surrogate (in a server's message, say) is written as its JSON escape,
            # which is what it is inside a JSON string: the row stays valid JSON.
            return self._temp.open("w", encoding="utf-8", errors="backslashreplace")

        self._handle = await anyio.to_thread.run_sync(open_sync)

    async def add(self, row: dict[str, Any]) -> None:
        self._pending.append(json.dumps(row, ensure_ascii=False) + "\n")
        if self.in_place or len(self._pending) >= _WRITE_CHUNK:
            await self.flush()

    async def flush(self) -> None:
        lines, self._pending = self._pending, []
        handle = self._handle
        if lines and handle is not None:
            await anyio.to_thread.run_sync(lambda: (handle.writelines(lines), handle.flush()))

    async def close(self, *, keep: bool = True) -> None:
        """Put the new file in place, or with ``keep=False`` (a run that failed) drop it and leave
        the previous run's file as it was."""
        with anyio.CancelScope(shield=True):
            if keep:
                await self.flush()
            handle, self._handle = self._handle, None
            if handle is not None:

                def close_sync() -> None:
                    handle.close()
                    if self.in_place:
                        return
                    if keep:
                        os.replace(self._temp, self.path)
                    else:
                        self._temp.unlink(missing_ok=True)

                await anyio.to_thread.run_sync(close_sync)


def _result_row(line: int | None, result: BatchResult) -> dict[str, Any]:
    task = result.task
    error = result.error
    return {
        "line": line,
        "key": result.key,
        "task_id": task.id if task is not None else None,
        "state": (task.raw_state or task.state.value) if task is not None else "not-submitted",
        "ok": result.ok,
        "err_code": error.err_code if isinstance(error, TaskFailedError) else (task.err_code if task else ""),
        "credits": task.credits if task is not None else None,
        "files": [str(f) for f in result.files],
        "error": str(error) if error is not None else None,
        "attempts": result.attempts,
    }


def _duplicate_key(result: BatchResult) -> bool:
    """Whether the batch refused the item because an earlier one has its key."""
    error = result.error
    return isinstance(error, RequestValidationError) and any(
        p.reason == DUPLICATE_KEY for p in error.problems
    )


def _reason(result: BatchResult) -> str:
    error = result.error
    if isinstance(error, TaskFailedError):
        return error.err_code or "failed"
    if error is not None:
        return getattr(error, "reason", "") or type(error).__name__
    return ""


async def run_jobs(client: ViduClient, options: RunOptions, display: Display, tally: Tally) -> RunOutcome:
    """Run the job file to the end (or until cancelled: then what ran is recorded and the
    journal lets the same command resume).

    Returns:
        The outcome; :attr:`RunOutcome.all_succeeded` decides the exit status.
    """
    if options.database is not None:
        return await _run_shared(client, options, display, tally, options.database)
    # The journal's lock first: until it is held, another run may own the output folder, and
    # nothing in it is touched. A journal of another input is refused here with nothing to undo.
    async with SQLiteJournal(options.journal_path) as journal:
        await journal.open_input(options.input_id)
        if options.embedded_emulator:
            restarted = await _forget_emulator_tasks(journal, options)
            if restarted:
                display.note(
                    f"{restarted} unfinished item(s) of an earlier --emulator run start again:"
                    " that run's emulator, and its tasks, ended with it"
                )
        return await _run_with_journal(client, options, display, tally, journal)


async def _run_shared(
    client: ViduClient, options: RunOptions, display: Display, tally: Tally, database: str
) -> RunOutcome:
    """The job file as a batch shared through PostgreSQL: named by the sha256 of its bytes, so
    the same file on any machine joins the same batch."""
    input_id = await anyio.to_thread.run_sync(input_digest, options.jobs)
    settings: dict[str, Any] = {}
    if options.lease is not None:
        # A short lease wants a short send window too (an adopter reconciles an intent only once
        # its send_by has passed) and a margin the guard keeps below the lease's end.
        settings.update(
            lease_seconds=options.lease,
            send_window=2 * options.lease,
            send_margin=min(5.0, options.lease / 3),
        )
    journal = PostgresJournal(database, worker_name=options.worker_name, org=options.org, **settings)
    async with journal:
        display.note(f"batch {input_id} in {journal.dsn}")
        return await _run_with_journal(client, options, display, tally, journal, input_id=input_id)


async def _run_with_journal(
    client: ViduClient,
    options: RunOptions,
    display: Display,
    tally: Tally,
    journal: SQLiteJournal | PostgresJournal,
    *,
    input_id: str | None = None,
) -> RunOutcome:
    tally.total = await anyio.to_thread.run_sync(_count_inputs, options.jobs)
    outcome = RunOutcome(total=tally.total, shared=options.shared)
    results = _ResultsFile(options.results_path, in_place=options.shared)
    await results.open()
    lines_of: dict[int, int] = {}  # batch index -> line number, for the items in flight
    # A shared batch's items come from the database (the loader alone reads the file), so any
    # index may come back: the lines of every index, read from the file when first needed.
    shared_lines: list[int] | None = None
    shared_keys: set[str] = set()

    async def line_of(index: int) -> int | None:
        nonlocal shared_lines
        if not options.shared:
            return lines_of.pop(index, None)
        if index in lines_of:
            return lines_of[index]
        if shared_lines is None:
            shared_lines = await anyio.to_thread.run_sync(_item_lines, options.jobs)
        return shared_lines[index] if 0 <= index < len(shared_lines) else None

    async def record_bad(bad: _BadLine) -> None:
        tally.on_result(ok=False, task_id=None, credits=None, reason="invalid line", resumed=False)
        outcome.failed += 1
        outcome.invalid += 1
        display.problem(bad.error)
        await results.add(
            {"line": bad.line, "key": bad.key, "task_id": None, "state": "invalid", "ok": False,
             "err_code": "", "credits": None, "files": [], "error": bad.error, "attempts": 0}
        )  # fmt: skip

    async def requests() -> AsyncIterator[JobItem]:
        index = 0
        name = options.jobs.name
        # Bytes, split on b"\n" only: a line that is not UTF-8 is one bad line (not the end of the
        # run), and line numbers match _count_inputs and any editor's.
        handle = await anyio.to_thread.run_sync(options.jobs.open, "rb")
        try:
            line = 0
            while True:
                chunk = await anyio.to_thread.run_sync(lambda: list(itertools.islice(handle, _READ_CHUNK)))
                if not chunk:
                    return
                for raw in chunk:
                    line += 1
                    if not raw.strip():
                        continue
                    parsed = _parse_line(line, raw, options.jobs.parent, name)
                    if options.shared and not isinstance(parsed, _BadLine):
                        # A shared batch stores one row per key: a repeated key is a bad line here.
                        parsed = _first_key(parsed, shared_keys, name)
                    if isinstance(parsed, _BadLine):
                        await record_bad(parsed)
                        continue
                    lines_of[index] = line
                    index += 1
                    yield parsed
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(handle.close)

    batch = client.generate_many(
        requests(),
        max_in_flight=options.max_in_flight,
        timeout=options.timeout,
        max_credits=options.max_credits,
        journal=journal,
        input_id=input_id,
        download_to=options.videos if options.download else None,
    )
    tally.charged = lambda: batch.credits
    keep_results = False
    try:
        async with batch:
            display.start()
            async for result in batch:
                line = await line_of(result.index)
                if _duplicate_key(result) and line is not None:  # the batch's one key check
                    message = f"{options.jobs.name}:{line}: key {result.key!r} is used by an earlier line"
                    await record_bad(_BadLine(line, result.key, message))
                    continue
                tally.on_result(
                    ok=result.ok,
                    task_id=result.task.id if result.task else None,
                    credits=result.task.credits if result.task else None,
                    reason=_reason(result),
                    resumed=result.resumed,
                )
                if result.ok:
                    outcome.succeeded += 1
                else:
                    outcome.failed += 1
                    outcome.no_answer += isinstance(result.error, TransportError)
                where = f"line {line}" if line is not None else f"item {result.index}"
                summary = f"{where} key={result.key}"
                if result.task is not None:
                    summary += f" task={result.task.id} {result.task.raw_state or result.task.state.value}"
                if result.error is not None:
                    summary += f": {_one_line(str(result.error))}"
                elif result.files:
                    summary += f" -> {', '.join(f.name for f in result.files)}"
                # The row first: in a shared batch it is this worker's only record of the item.
                await results.add(_result_row(line, result))
                display.result(summary, ok=result.ok)
        keep_results = True
    except anyio.get_cancelled_exc_class():
        # What finished is worth writing down; the journal has the rest for the next run.
        outcome.interrupted = keep_results = True
        raise
    finally:
        outcome.unfinished = len(batch.unfinished)
        display.stop()
        await results.close(keep=keep_results)
    return outcome


#: What the resume command says in place of an API key given on the command line.
KEY_FROM_ENVIRONMENT: Final = '"$VIDU_API_KEY"'


def _names_api_key(option: str) -> bool:
    # argparse accepts any unambiguous prefix of an option ("--api-k").
    return len(option) > len("--a") and "--api-key".startswith(option)


async def _forget_emulator_tasks(journal: SQLiteJournal, options: RunOptions) -> int:
    """Before an ``--emulator`` re-run: clear the journal's task ids of unfinished items, which
    named tasks of an emulator that ended with the earlier run, and delete any of their files a
    download left (the items get new tasks, and new files). Returns how many were cleared."""
    forgotten = await journal.forget_unfinished_tasks()
    if forgotten:
        await anyio.to_thread.run_sync(_remove_task_files, options.videos, forgotten)
    return len(forgotten)


#: A task id that names its files as it is (the downloader renames any other, with a digest).
_PLAIN_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,80}")


def _remove_task_files(videos: Path, task_ids: list[str]) -> None:
    """Delete the files named for each task id (videos, covers, partial downloads) in ``videos``.
    Only plain ids are looked for (the service's are numeric): an id the downloader had to rename
    leaves its files, which nothing reads again."""
    if not videos.is_dir():
        return
    for task_id in task_ids:
        if not _PLAIN_ID.fullmatch(task_id):
            continue
        for path in videos.glob(glob.escape(task_id) + "-*"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _names_journal(option: str) -> bool:
    # "--jo" could be --json as well: argparse takes only an unambiguous prefix.
    return len(option) > len("--jo") and "--journal".startswith(option)


def resume_command(argv: Sequence[str]) -> str:
    """The exact command that resumes this run (the same arguments), as a POSIX shell line.

    An API key given with ``--api-key`` is not repeated: the line reads it from ``$VIDU_API_KEY``
    instead, so that the key never lands in a terminal's scrollback or a CI log. Likewise a
    database URL's password is left out of ``--journal`` (PostgreSQL's clients read it from
    ``$PGPASSWORD``).
    """
    words = ["vidu-async"]
    key_follows = journal_follows = False
    for word in argv:
        option, equals, value = word.partition("=")
        if key_follows:
            words.append(KEY_FROM_ENVIRONMENT)
        elif journal_follows:
            words.append(shlex.quote(_without_password(word, None)[0] if is_database_url(word) else word))
        elif equals and _names_api_key(option):
            words.append(shlex.quote(option + "=") + KEY_FROM_ENVIRONMENT)
        elif equals and _names_journal(option) and is_database_url(value):
            words.append(shlex.quote(f"{option}={_without_password(value, None)[0]}"))
        else:
            words.append(shlex.quote(word))
        key_follows = not key_follows and _names_api_key(word)
        journal_follows = not journal_follows and _names_journal(word)
    return " ".join(words)


def resume_needs_key(argv: Sequence[str]) -> bool:
    """Whether :func:`resume_command` left out an API key given on the command line."""
    return any(_names_api_key(word.partition("=")[0]) for word in argv)


def resume_needs_password(argv: Sequence[str]) -> bool:
    """Whether :func:`resume_command` left a password out of a ``--journal`` database URL."""
    follows = False
    for word in argv:
        option, equals, value = word.partition("=")
        candidate = word if follows else value if equals and _names_journal(option) else None
        if candidate is not None and is_database_url(candidate) and _without_password(candidate, None)[1]:
            return True
        follows = not follows and _names_journal(word)
    return False


def summary_rows(
    options: RunOptions, tally: Tally, outcome: RunOutcome, elapsed: float
) -> list[tuple[str, str]]:
    """The rows of the end-of-run summary."""
    rows = [("inputs", str(outcome.total))]
    if outcome.shared:
        rows.append(("finished here", str(outcome.succeeded + outcome.failed)))
    rows += [
        ("succeeded", str(outcome.succeeded)),
        ("failed", str(outcome.failed)),
    ]
    if tally.resumed:
        rows.append(("from an earlier run", str(tally.resumed)))
    if outcome.interrupted and not outcome.shared:
        rows.append(
            (
                "unfinished",
                str(
                    outcome.unfinished
                    + max(0, outcome.total - outcome.succeeded - outcome.failed - outcome.unfinished)
                ),
            )
        )
    for reason, count in tally.failures.most_common(5):
        rows.append((f"  failed: {reason}", str(count)))
    # Charged is what the live display showed last (tasks still running included); the
    # succeeded items' share is what the results file adds up to for its successes.
    rows += [
        ("credits charged", str(tally.credits_now)),
        ("  of succeeded items", str(tally.succeeded_credits)),
        ("elapsed", f"{elapsed:.1f} s"),
        ("results", str(options.results_path)),
    ]
    if options.download:
        rows.append(("videos", str(options.videos)))
    rows.append(("journal", options.journal_shown))
    return rows
