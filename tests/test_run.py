"""``vidu-async run``: killed and resumed for real, stopped with Ctrl-C and resumed as printed, journals it
must refuse, and a job file full of bad lines.

The emulator runs in its own process where the run is killed or interrupted, so that the server (and
what it billed) outlives the client; the other tests run the command in this process with
``--emulator``.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import json
import os
import random
import re
import signal
import sqlite3
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any, Final

import aiohttp
import anyio
import attrs
import pytest
from anyio.abc import Process
from conftest import one_error_line

import vidu_async as vidu
from vidu_async._events import StateChangeEvent
from vidu_async._progress import PlainDisplay, RichDisplay, Tally
from vidu_async._runner import resume_command, resume_needs_key
from vidu_async.cli import main

#: The key of the emulator processes (never the default one, so the redaction test means something).
KEY: Final = "vda_run_secret_7e57c0de"
#: A valid job line; each job changes the prompt so that every request differs.
GOOD: Final[dict[str, Any]] = {
    "model": "viduq2",
    "images": ["https://example.com/cat.png"],
    "prompt": "A cat naps on a sunny windowsill.",
    "duration": 4,
}
FTYP: Final = b"ftyp"


def job(number: int, **changes: Any) -> dict[str, Any]:
    """The ``number``-th good job, keyed ``job-NNNN``."""
    return {"key": f"job-{number:04}", **GOOD, "prompt": f"A cat naps, take {number}.", **changes}


def write_jobs(path: Path, lines: Iterable[str | bytes]) -> Path:
    path.write_bytes(b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines))
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any VIDU_ setting, with the venv's scripts first on the PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDU_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra)
    return env


def command(*argv: str) -> list[str]:
    return [sys.executable, "-m", "vidu_async", *argv]


def run_here(*argv: str) -> tuple[int, str, str]:
    """The command in this process: exit status, standard output, standard error."""
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def results(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def journal_counts(path: Path) -> tuple[int, int]:
    """(items journaled, items finished), read the way any other process would; (0, 0) before it exists."""
    if not path.exists():
        return 0, 0
    try:
        with contextlib.closing(sqlite3.connect(path.as_uri() + "?mode=ro", uri=True)) as conn:
            rows, finished = conn.execute("SELECT count(*), coalesce(sum(finished), 0) FROM items").fetchone()
    except sqlite3.Error:  # created but not initialized yet
        return 0, 0
    return int(rows), int(finished)


def journal_rows(path: Path) -> dict[str, tuple[str, str | None]]:
    """key -> (fingerprint, task id) of every journaled item."""
    with contextlib.closing(sqlite3.connect(path.as_uri() + "?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT key, fingerprint, task_id FROM items").fetchall()
    return {key: (fingerprint, task_id) for key, fingerprint, task_id in rows}


def videos(out: Path) -> int:
    folder = out / "videos"
    return sum(1 for _ in folder.glob("*.mp4")) if folder.exists() else 0


async def until(condition: Callable[[], bool], within: float) -> None:
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - polling another process's files under a deadline
            await anyio.sleep(0.01)


@attrs.frozen
class Server:
    """An emulator running in its own process."""

    base_url: str

    @property
    def options(self) -> tuple[str, ...]:
        return ("--base-url", self.base_url, "--api-key", KEY)

    async def tasks(self) -> list[vidu.Task]:
        """Every task it holds, through the SDK's task list."""
        async with vidu.ViduClient(KEY, base_url=self.base_url) as client:
            return [task async for task in client.list_tasks(limit=100_000)]


def listening_on(log: Path) -> str | None:
    """The base URL an emulator's log announces, once it does."""
    found = re.search(r"listening on (http://\S+)", log.read_text(encoding="utf-8"))
    return found.group(1) if found else None


@contextlib.asynccontextmanager
async def emulator_process(
    log: Path, *, concurrency: int, processing_time: float, extra: Iterable[str] = ()
) -> AsyncIterator[Server]:
    """``vidu-async emulator --port 0`` (with ``extra`` options) in a process of its own, until the
    block ends (then Ctrl-C)."""
    argv = command(
        "emulator",
        "--port",
        "0",
        "--key",
        KEY,
        "--concurrency",
        str(concurrency),
        "--processing-time",
        str(processing_time),
        *extra,
    )
    with log.open("wb") as sink:
        process = await anyio.open_process(argv, stdout=sink, stderr=sink, env=clean_env())
    async with process:
        try:
            with anyio.fail_after(30):
                while (url := listening_on(log)) is None:
                    assert process.returncode is None, "the emulator did not start; see its log"
                    await anyio.sleep(0.02)
            yield Server(url)
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
                with anyio.move_on_after(10):
                    await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()


@attrs.define
class Runs:
    """``vidu-async run`` started again and again in its own process, output appended to one log."""

    argv: list[str]
    log: Path
    cwd: Path | None = None
    env: dict[str, str] = attrs.field(factory=clean_env)
    statuses: list[int] = attrs.field(factory=list)

    async def start(self) -> Process:
        with self.log.open("ab") as sink:
            return await anyio.open_process(self.argv, stdout=sink, stderr=sink, cwd=self.cwd, env=self.env)

    async def until(self, condition: Callable[[], bool], *, send: int, within: float = 60) -> bool:
        """Run, and send ``send`` as soon as ``condition()`` holds; whether it was sent before the end."""
        async with await self.start() as process:
            sent = False
            with anyio.fail_after(within):
                while process.returncode is None:
                    if condition():
                        process.send_signal(send)
                        sent = True
                        break
                    await anyio.sleep(0.01)
                status = await process.wait()
        self.statuses.append(status)
        return sent

    async def to_the_end(self, *, within: float = 60) -> int:
        async with await self.start() as process:
            with anyio.fail_after(within):
                status = await process.wait()
        self.statuses.append(status)
        return status

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


async def reported_sizes(tasks: Iterable[vidu.Task]) -> dict[str, int]:
    """Task id -> the Content-Length the server reports for its video."""
    sizes: dict[str, int] = {}
    limiter = anyio.CapacityLimiter(16)
    async with aiohttp.ClientSession() as session:

        async def head(task: vidu.Task) -> None:
            async with limiter, session.head(task.creations[0].url) as response:
                assert response.status == 200, response.status
                sizes[task.id] = int(response.headers["Content-Length"])

        async with anyio.create_task_group() as tg:
            for task in tasks:
                tg.start_soon(head, task)
    return sizes


def check_videos(rows: Iterable[dict[str, Any]], sizes: dict[str, int]) -> None:
    """Each result's one video exists, has the size the server reports, and starts like an MP4."""
    for row in rows:
        (file,) = row["files"]
        data = Path(file).read_bytes()
        assert len(data) == sizes[row["task_id"]] > 8, file
        assert data[4:8] == FTYP, file


class TestKilledAndResumed:
    """SIGKILLed at random moments of submission and downloads, re-run until done: once billed, whole files."""

    @pytest.mark.slow
    async def test_three_kills_then_done(self, tmp_path: Path) -> None:
        """300 inputs, killed at least three times: one result each, one task each, every video whole."""
        rng = random.Random(20240607)
        count = 300
        jobs = write_jobs(tmp_path / "jobs.jsonl", [json.dumps(job(i)) for i in range(count)])
        out = tmp_path / "out"
        journal = out / "journal.sqlite"
        async with emulator_process(tmp_path / "emulator.log", concurrency=20, processing_time=0.1) as server:
            runs = Runs(
                command("run", str(jobs), "--out", str(out), "--plain", *server.options), tmp_path / "run.log"
            )
            phases: list[str] = []

            # During submission: some intents journaled, well before the 300th.
            journaled = rng.randint(5, 25)
            assert await runs.until(lambda: journal_counts(journal)[0] >= journaled, send=signal.SIGKILL)
            assert 0 < journal_counts(journal)[0] < count
            phases.append("submission")

            # During downloads, twice: once some more videos are on disk than before the run.
            for _ in range(2):
                before = videos(out)
                wanted = before + rng.randint(10, 70)
                assert await runs.until(lambda: videos(out) >= wanted, send=signal.SIGKILL)  # noqa: B023
                assert before < videos(out) < count
                phases.append("downloads")

            # A last random moment, by the journal's count of finished items, then to the end.
            finished_now = journal_counts(journal)[1]
            target = finished_now + rng.randint(5, 40)
            if await runs.until(lambda: journal_counts(journal)[1] >= target, send=signal.SIGKILL):
                phases.append("results")
            for _ in range(5):
                if runs.statuses[-1] == 0:
                    break
                await runs.to_the_end()
            assert runs.statuses[-1] == 0, runs.output()
            assert runs.statuses.count(-signal.SIGKILL) >= 3, runs.statuses
            assert {"submission", "downloads"} <= set(phases)

            tasks = await server.tasks()
            sizes = await reported_sizes(tasks)

        # Every input: exactly one line in results.jsonl, a success.
        rows_out = results(out)
        assert len(rows_out) == count
        assert sorted(row["key"] for row in rows_out) == [f"job-{i:04}" for i in range(count)]
        assert sorted(row["line"] for row in rows_out) == list(range(1, count + 1))
        assert all(row["ok"] for row in rows_out), [row for row in rows_out if not row["ok"]][:3]

        # The server: exactly one task per key, the one the journal and results name.
        assert len(tasks) == count
        by_payload = Counter(task.payload for task in tasks)
        assert set(by_payload.values()) == {1}
        task_of = {task.payload: task for task in tasks}
        journaled_rows = journal_rows(journal)
        assert set(journaled_rows) == {row["key"] for row in rows_out}
        for row in rows_out:
            fingerprint, task_id = journaled_rows[row["key"]]
            assert task_of[fingerprint].id == task_id == row["task_id"]

        # Every video: on disk, the size the server reports, an MP4; no temporary file left.
        check_videos(rows_out, sizes)
        assert videos(out) == count
        assert list(out.rglob("*.part")) == []
        assert not (out / "results.jsonl.tmp").exists()


class TestInterrupted:
    """Ctrl-C stops cleanly (130), keeps the journal, and prints a command that finishes the job."""

    @pytest.mark.slow
    async def test_sigint_then_resume_as_printed(self, tmp_path: Path) -> None:
        """SIGINT mid-run: exit 130, journal intact, no key printed; the printed command completes the job."""
        count = 24
        write_jobs(tmp_path / "jobs.jsonl", [json.dumps(job(i)) for i in range(count)])
        journal = tmp_path / "out" / "journal.sqlite"
        async with emulator_process(tmp_path / "emulator.log", concurrency=4, processing_time=0.2) as server:
            argv = command("run", "jobs.jsonl", "--out", "out", "--plain", *server.options)
            runs = Runs(argv, tmp_path / "run.log", cwd=tmp_path)
            assert await runs.until(lambda: journal_counts(journal)[1] >= 2, send=signal.SIGINT)
            assert runs.statuses == [130], runs.output()
            output = runs.output()
            assert "Traceback" not in output
            assert KEY not in output  # the resume command reads the key from the environment

            async with vidu.SQLiteJournal(journal) as opened:
                entries = await opened.entries()
            finished = {key for key, entry in entries.items() if entry.finished}
            assert 2 <= len(finished) < count
            assert all(entry.task_id for entry in entries.values() if entry.state != "intent")
            # Results already handed over are written out; the journal may hold a few more.
            recorded = {row["key"] for row in results(tmp_path / "out") if row["ok"]}
            assert recorded <= finished

            lines = output.splitlines()
            (at,) = [i for i, line in enumerate(lines) if line.endswith("Resume with:")]
            resume = lines[at + 1].strip()
            assert resume.startswith("vidu-async run jobs.jsonl --out out")
            again = await anyio.run_process(
                ["sh", "-c", resume], cwd=tmp_path, env=clean_env(VIDU_API_KEY=KEY), check=False
            )
            assert again.returncode == 0, again.stdout.decode() + again.stderr.decode()
            assert re.search(rf"^from an earlier run\s+{len(finished)}$", again.stdout.decode(), re.MULTILINE)
            tasks = await server.tasks()

        rows = results(tmp_path / "out")
        assert len(rows) == count
        assert all(row["ok"] for row in rows)
        assert len(tasks) == count
        assert len({task.payload for task in tasks}) == count


class TestEmulatorRerun:
    """With --emulator the tasks end with the process: a re-run keeps what finished, redoes the rest."""

    def test_unfinished_items_start_again(self, tmp_path: Path) -> None:
        """Items left unfinished get new tasks in the new emulator (not TaskNotFound); stale files go."""
        jobs = write_jobs(tmp_path / "jobs.jsonl", [json.dumps(job(i)) for i in range(3)])
        out = tmp_path / "out"
        journal = out / "journal.sqlite"
        status, _, err = run_here(
            "run", str(jobs), "--out", str(out), "--emulator", "--emulator-processing-time", "60",
            "--timeout", "0.5", "--plain",
        )  # fmt: skip
        assert status == 1, err  # every task outlived its deadline and was left running
        old_ids = {task_id for _, task_id in journal_rows(journal).values()}
        assert len(old_ids) == 3
        assert None not in old_ids
        stale = out / "videos" / f"{sorted(old_ids, key=str)[0]}-1.mp4.part"  # as a killed download leaves it
        stale.parent.mkdir(parents=True, exist_ok=True)
        stale.write_bytes(b"\0" * 100)

        status, printed, err = run_here(
            "run", str(jobs), "--out", str(out), "--emulator", "--emulator-processing-time", "0.05", "--plain"
        )

        assert status == 0, printed + err
        assert "note: 3 unfinished item(s) of an earlier --emulator run start again" in printed
        rows = results(out)
        assert [row["ok"] for row in rows] == [True] * 3
        assert not {row["task_id"] for row in rows} & old_ids
        assert not stale.exists()
        assert sorted(path.suffix for path in (out / "videos").iterdir()) == [".mp4"] * 3

    def test_refused_for_the_service(self, tmp_path: Path) -> None:
        """A journal of --emulator runs is refused for a run against a server, naming the difference."""
        jobs = write_jobs(tmp_path / "jobs.jsonl", [json.dumps(job(1))])
        out = tmp_path / "out"
        status, _, err = run_here("run", str(jobs), "--out", str(out), "--emulator", "--plain")
        assert status == 0, err
        status, printed, err = run_here(
            "run", str(jobs), "--out", str(out), "--base-url", "http://127.0.0.1:9", "--api-key", KEY
        )
        assert status == 2
        assert "(embedded emulator)" in one_error_line(err)
        assert printed == ""


class TestJournalRefused:
    """A journal the run cannot use is refused with one line, exit status 2, and left as it was."""

    def test_other_input(self, tmp_path: Path) -> None:
        """A journal written for one job file refuses another, naming both; the earlier results stay."""
        out = tmp_path / "out"
        first = write_jobs(tmp_path / "first.jsonl", [json.dumps(job(1)), json.dumps(job(2))])
        second = write_jobs(tmp_path / "second.jsonl", [json.dumps(job(1)), json.dumps(job(2))])
        fast = ("--emulator", "--emulator-processing-time", "0.05", "--plain")
        status, _, _ = run_here("run", str(first), "--out", str(out), *fast)
        assert status == 0
        before = (out / "results.jsonl").read_bytes()

        status, printed, err = run_here("run", str(second), "--out", str(out), *fast)
        assert status == 2
        line = one_error_line(err)
        assert "belongs to input" in line
        assert str(first.resolve()) in line
        assert str(second.resolve()) in line
        assert printed == ""
        assert (out / "results.jsonl").read_bytes() == before

    def test_edited_line(self, tmp_path: Path) -> None:
        """A line changed under its key since the journal recorded it: one error line naming the
        item and what to do (no warning about unfinished items beside it), exit status 2."""
        jobs = write_jobs(tmp_path / "jobs.jsonl", [json.dumps(job(1)), json.dumps(job(2))])
        out = tmp_path / "out"
        fast = ("--emulator", "--emulator-processing-time", "0.05", "--plain")
        assert run_here("run", str(jobs), "--out", str(out), *fast)[0] == 0
        write_jobs(jobs, [json.dumps(job(1)), json.dumps(job(2, prompt="@Ming waves."))])
        status, _, err = run_here("run", str(jobs), "--out", str(out), *fast)
        assert status == 2
        assert one_error_line(err) == (
            f"error: item 1 (key {job(2)['key']!r}) is not the request this journal recorded under that key:"
            " a journal resumes the input it was written for; use a new journal for a changed input"
        )

    def test_corrupt(self, tmp_path: Path) -> None:
        """A journal of random bytes: 'damaged or not a journal', and the file is not touched."""
        jobs = write_jobs(tmp_path / "jobs.jsonl", [json.dumps(job(1))])
        journal = tmp_path / "journal.sqlite"
        garbage = random.Random(7).randbytes(8192)
        journal.write_bytes(garbage)
        status, printed, err = run_here(
            "run", str(jobs), "--out", str(tmp_path / "out"), "--journal", str(journal), "--emulator"
        )
        assert status == 2
        line = one_error_line(err)
        assert "damaged or not a journal" in line
        assert str(journal) in line
        assert printed == ""
        assert journal.read_bytes() == garbage
        assert not (tmp_path / "out" / "results.jsonl").exists()

    async def test_locked(self, tmp_path: Path) -> None:
        """A journal another run holds: 'in use by another run (process N)', nothing else happens."""
        jobs = write_jobs(tmp_path / "jobs.jsonl", [json.dumps(job(1))])
        out = tmp_path / "out"
        async with vidu.SQLiteJournal(out / "journal.sqlite"):
            done = await anyio.run_process(
                command("run", str(jobs), "--out", str(out), "--emulator"), env=clean_env(), check=False
            )
        assert done.returncode == 2
        line = one_error_line(done.stderr.decode())
        assert f"in use by another run (process {os.getpid()})" in line
        assert done.stdout == b""
        assert not (out / "results.jsonl").exists()

    async def test_refused_run_leaves_the_output_folder_alone(self, tmp_path: Path) -> None:
        """A second run refused by the journal's lock touches nothing of the first run's: its
        results in the making (``results.jsonl.tmp``) and its last results stay as they are."""
        jobs = write_jobs(tmp_path / "jobs.jsonl", [json.dumps(job(1))])
        out = tmp_path / "out"
        out.mkdir()
        in_the_making = out / "results.jsonl.tmp"
        in_the_making.write_text('{"line": 1}\n', encoding="utf-8")
        (out / "results.jsonl").write_text('{"line": 0}\n', encoding="utf-8")
        # Not --emulator (whose re-run checks the journal first): a run against a service.
        argv = command(
            "run", str(jobs), "--out", str(out), "--base-url", "http://127.0.0.1:9", "--api-key", KEY
        )
        async with vidu.SQLiteJournal(out / "journal.sqlite"):  # the first run, still going
            done = await anyio.run_process(argv, env=clean_env(), check=False)
        assert done.returncode == 2
        assert "in use by another run" in one_error_line(done.stderr.decode())
        assert in_the_making.read_text(encoding="utf-8") == '{"line": 1}\n'
        assert (out / "results.jsonl").read_text(encoding="utf-8") == '{"line": 0}\n'


def seen(task_id: str, state: vidu.TaskState) -> StateChangeEvent:
    return StateChangeEvent(task_id=task_id, old=None, new=state, raw_state=state.value)


class TestProgress:
    """The tally counts what the displays show; both displays render it."""

    def test_tally(self) -> None:
        """Active tasks by state, pending inputs, credits so far, and a rate and ETA once results come."""
        tally = Tally(total=5, started=100.0)
        tally.on_event(seen("t1", vidu.TaskState.QUEUEING))
        tally.on_event(seen("t2", vidu.TaskState.PROCESSING))
        tally.on_event(seen("t2", vidu.TaskState.SUCCESS))
        assert tally.by_state() == Counter({vidu.TaskState.QUEUEING: 1, vidu.TaskState.PROCESSING: 1})
        assert tally.pending == 3
        assert tally.eta(now=110.0) is None
        tally.on_result(ok=True, task_id="t2", credits=20, reason="", resumed=False)
        tally.on_result(ok=False, task_id=None, credits=None, reason="invalid line", resumed=False)
        tally.on_result(ok=True, task_id="t9", credits=8, reason="", resumed=True)
        assert (tally.succeeded, tally.failed, tally.resumed, tally.done) == (2, 1, 1, 3)
        assert tally.failures == Counter({"invalid line": 1})
        assert tally.pending == 1  # t1 is still active
        assert tally.credits == tally.credits_now == 28
        tally.charged = lambda: 30  # this run's creates, in-flight ones included
        assert tally.credits_now == 38
        assert tally.succeeded_credits == 28
        assert tally.rate(now=110.0) == pytest.approx(0.2)  # two fresh results in ten seconds
        assert tally.eta(now=110.0) == pytest.approx(10.0)

    def test_summary_credits_agree_with_the_live_display(self, tmp_path: Path) -> None:
        """After Ctrl-C the summary's credits are the charged credits the live display showed
        (tasks still running included), with the succeeded items' share on a row of its own
        (it showed only the succeeded items' 625 where the display had shown 875 charged)."""
        from vidu_async._runner import RunOptions, RunOutcome, summary_rows

        tally = Tally(total=40)
        for _ in range(25):
            tally.on_result(ok=True, task_id=None, credits=25, reason="", resumed=False)
        tally.charged = lambda: 875
        options = RunOptions(jobs=tmp_path / "jobs.jsonl", out=tmp_path / "out")
        outcome = RunOutcome(total=40, succeeded=25, interrupted=True, unfinished=10)
        rows = dict(summary_rows(options, tally, outcome, 1.0))
        assert rows["credits charged"] == "875"
        assert rows["  of succeeded items"] == "625"

    def test_plain(self) -> None:
        """One line per event, numbered by results so far, then an aligned summary."""
        tally = Tally(total=2)
        out = io.StringIO()
        display = PlainDisplay(tally, out, io.StringIO())
        display.start()
        tally.on_result(ok=False, task_id=None, credits=None, reason="invalid line", resumed=False)
        display.problem("jobs.jsonl:1: invalid JSON")
        tally.on_result(ok=True, task_id="t", credits=20, reason="", resumed=False)
        display.result("line 2 key=k task=t success", ok=True)
        display.summary([("inputs", "2"), ("succeeded", "1")])
        display.stop()
        assert out.getvalue().splitlines() == [
            "run: 2 inputs",
            "[1/2] FAIL jobs.jsonl:1: invalid JSON",
            "[2/2] ok   line 2 key=k task=t success",
            "inputs     2",
            "succeeded  1",
        ]

    def test_rich(self) -> None:
        """The live panel shows the counts by state and the totals; failures scroll above it."""
        tally = Tally(total=3)
        tally.on_event(seen("t1", vidu.TaskState.PROCESSING))
        tally.on_result(ok=False, task_id=None, credits=None, reason="invalid line", resumed=False)
        out = io.StringIO()
        display = RichDisplay(tally, out)
        display.start()
        display.problem("jobs.jsonl:2: invalid JSON")
        display.result("line 3 key=k task=t success", ok=True)
        display.stop()
        display.summary([("inputs", "3")])
        text = out.getvalue()
        assert "vidu-async run" in text
        assert "FAIL jobs.jsonl:2: invalid JSON" in text
        assert "line 3 key=k" not in text  # successes only move the counts
        assert "1/3 done" in text
        assert "summary" in text


class TestResumeCommand:
    """The printed resume command repeats the arguments, quoted for a shell, but never an API key."""

    @pytest.mark.parametrize(
        ("argv", "expected"),
        [
            (["run", "my jobs.jsonl", "--out", "o"], "vidu-async run 'my jobs.jsonl' --out o"),
            (["run", "j", "--api-key", "sk-1"], 'vidu-async run j --api-key "$VIDU_API_KEY"'),
            (["run", "j", "--api-key=sk-1"], 'vidu-async run j --api-key="$VIDU_API_KEY"'),
            (
                ["run", "j", "--api-k", "sk-1", "--out", "o"],
                'vidu-async run j --api-k "$VIDU_API_KEY" --out o',
            ),
            (["run", "j", "--auth-scheme", "Bearer"], "vidu-async run j --auth-scheme Bearer"),
        ],
    )
    def test_command(self, argv: list[str], expected: str) -> None:
        """Each argument as given, except the key, which the shell reads from $VIDU_API_KEY."""
        assert resume_command(argv) == expected
        assert "sk-1" not in resume_command(argv)
        assert resume_needs_key(argv) == ("sk-1" in " ".join(argv))


def bad_lines(rng: random.Random) -> list[tuple[bytes, str]]:
    """One of each kind of bad line, with what its error must say."""
    n = rng.randint(0, 10**6)
    bodies: list[tuple[dict[str, Any], str]] = [
        ({**GOOD, "colour": f"red-{n}"}, "colour: unwanted field"),
        ({**GOOD, "model": n}, "model: expected a model name"),
        ({**GOOD, "model": ""}, "model: expected a model name"),
        ({**GOOD, "duration": 99 + n % 50}, "duration: viduq2 takes 1-10 s"),
        ({**GOOD, "duration": "five"}, "duration: expected an integer"),
        ({**GOOD, "resolution": "4k"}, "resolution: viduq2 takes"),
        ({k: v for k, v in GOOD.items() if k != "prompt"}, "prompt: is required"),
        ({**GOOD, "prompt": "x" * 5001}, "prompt: is 5001 characters"),
        ({**GOOD, "images": []}, "images: give subjects"),
        ({**GOOD, "images": [f"cat\u0000{n}.png"]}, "images[0]: a file name cannot contain a NUL"),
        ({**GOOD, "key": "job-0000"}, "key 'job-0000' is used by an earlier line"),
    ]
    raw: list[tuple[bytes, str]] = [
        (f'{{"model": "viduq2", "prompt": "cut {n}'.encode(), "invalid JSON: Unterminated string"),
        (b"{'single': 'quotes'}", "invalid JSON: Expecting property name"),
        (b"[" * 5000 + b"]" * 5000, "invalid JSON: nested too deeply"),
        (f"[{n}, 2]".encode(), "expected a JSON object, got an array"),
        (f'"{n}"'.encode(), "expected a JSON object, got a string"),
        (str(n).encode(), "expected a JSON object, got a number"),
        (b"null", "expected a JSON object, got null"),
        (b'{"prompt": "\xff\xfe broken"}', "not UTF-8 text"),
    ]
    return raw + [(json.dumps(body).encode(), reason) for body, reason in bodies]


class TestJobFileShapes:
    """Job files as editors and shells make them."""

    def test_byte_order_mark_and_crlf(self, tmp_path: Path) -> None:
        """A UTF-8 byte order mark (Windows editors, files joined with cat) and CRLF line ends are read."""
        first, second = json.dumps(job(1)).encode(), json.dumps(job(2)).encode()
        jobs = tmp_path / "jobs.jsonl"
        jobs.write_bytes(codecs.BOM_UTF8 + first + b"\r\n" + codecs.BOM_UTF8 + second + b"\r\n")
        out = tmp_path / "out"
        status, _, err = run_here(
            "run", str(jobs), "--out", str(out), "--emulator", "--emulator-processing-time", "0.05", "--plain"
        )
        assert status == 0, err
        assert sorted((row["line"], row["ok"]) for row in results(out)) == [(1, True), (2, True)]

    def test_bad_byte_after_a_byte_order_mark(self, tmp_path: Path) -> None:
        """The byte a decoding error names counts the mark: it is the line's own byte number."""
        jobs = write_jobs(tmp_path / "jobs.jsonl", [codecs.BOM_UTF8 + b'{"a": "\xff"}'])
        status, printed, _ = run_here(
            "run", str(jobs), "--out", str(tmp_path / "out"), "--emulator", "--plain"
        )
        assert status == 1
        assert "jobs.jsonl:1: not UTF-8 text (byte 11 of the line)" in printed

    def test_out_is_a_file(self, tmp_path: Path) -> None:
        """--out naming a file, or a folder under one, is refused in one line with exit status 2."""
        jobs = write_jobs(tmp_path / "jobs.jsonl", [json.dumps(job(1))])
        afile = tmp_path / "afile"
        afile.write_text("keep me")
        status, printed, err = run_here("run", str(jobs), "--out", str(afile), "--emulator")
        assert (status, printed) == (2, "")
        assert (
            one_error_line(err)
            == f"error: --out {afile} is a file; give a directory (it is created when missing)"
        )
        status, printed, err = run_here(
            "run",
            str(jobs),
            "--out",
            str(afile / "sub"),
            "--journal",
            str(tmp_path / "j.sqlite"),
            "--emulator",
        )
        assert (status, printed) == (2, "")
        assert one_error_line(err).startswith(f"error: cannot use {afile / 'sub'}: ")
        assert afile.read_text() == "keep me"


class TestBadLines:
    """Every bad line fails on its own, with its line number and reason; the good ones still run."""

    @pytest.mark.slow
    def test_thousand_bad_among_hundred_good(self, tmp_path: Path) -> None:
        """1,000 bad lines among 100 good: 100 successes, 1,000 errors by line (results and output), exit 1."""
        rng = random.Random(1100)
        good = [json.dumps(job(i)).encode() for i in range(100)]
        bad: list[tuple[bytes, str]] = []
        while len(bad) < 1000:
            bad.extend(bad_lines(rng))
        bad = bad[:1000]
        rng.shuffle(bad)
        # job-0000 first, so that a bad line reusing its key always comes later.
        lines: list[tuple[bytes, str | None]] = [(good[0], None)]
        mixed: list[tuple[bytes, str | None]] = [(g, None) for g in good[1:]] + [(b, r) for b, r in bad]
        rng.shuffle(mixed)
        lines += mixed
        jobs = write_jobs(tmp_path / "jobs.jsonl", [raw for raw, _ in lines])
        out = tmp_path / "out"

        status, printed, err = run_here(
            "run", str(jobs), "--out", str(out), "--emulator", "--emulator-processing-time", "0.02", "--plain"
        )

        assert status == 1, err
        assert "Traceback" not in err
        rows = {row["line"]: row for row in results(out)}
        assert len(rows) == 1100
        output = printed.splitlines()
        for number, (_, reason) in enumerate(lines, start=1):
            row = rows[number]
            if reason is None:
                assert row["ok"], row
                assert row["state"] == "success"
                assert Path(row["files"][0]).read_bytes()[4:8] == FTYP
                continue
            assert not row["ok"]
            assert row["state"] == "invalid"
            assert row["task_id"] is None
            assert row["error"].startswith(f"jobs.jsonl:{number}: "), row
            assert reason in row["error"], (reason, row["error"])
        failures: dict[int, str] = {}
        for line in output:
            if found := re.match(r"^\[\d+/1100\] FAIL jobs\.jsonl:(\d+): ", line):
                assert int(found.group(1)) not in failures
                failures[int(found.group(1))] = line
        assert sorted(failures) == [n for n, (_, reason) in enumerate(lines, start=1) if reason is not None]
        for number, line in failures.items():
            reason = lines[number - 1][1]
            assert reason is not None
            assert reason in line
        assert re.search(r"^succeeded\s+100$", printed, re.MULTILINE)
        assert re.search(r"^failed\s+1000$", printed, re.MULTILINE)
        assert re.search(r"^  failed: invalid line\s+1000$", printed, re.MULTILINE)
        assert videos(out) == 100


def keyless(number: int) -> str:
    """A good job line without a key."""
    return json.dumps({**GOOD, "prompt": f"A cat naps, take {number}."})


def run_fast(jobs: Path, out: Path, *more: str) -> tuple[int, str, str]:
    return run_here(
        "run",
        str(jobs),
        "--out",
        str(out),
        "--emulator",
        "--emulator-processing-time",
        "0.05",
        "--plain",
        *more,
    )


def task_of_line(out: Path) -> dict[int, str]:
    """line -> task id, from the last run's results."""
    return {row["line"]: row["task_id"] for row in results(out) if row["task_id"]}


class TestContentKeys:
    """A keyless line is named by its content: editing the lines around it never bills it again."""

    def test_lines_inserted_deleted_and_reordered(self, tmp_path: Path) -> None:
        """An empty and a bad line on top, a line deleted, two swapped and one added: the re-run
        submits only the added line; every other line keeps its task (it failed before: every
        keyless line was submitted again)."""
        jobs = write_jobs(tmp_path / "jobs.jsonl", [keyless(n) for n in range(5)])
        out = tmp_path / "out"
        assert run_fast(jobs, out)[0] == 0
        first = task_of_line(out)  # lines 1..5

        write_jobs(jobs, ["", "{not json", keyless(1), keyless(0), keyless(3), keyless(4), keyless(9)])
        status, printed, _ = run_fast(jobs, out)
        assert status == 1  # the bad line
        second = task_of_line(out)
        assert [second[line] for line in (3, 4, 5, 6)] == [first[2], first[1], first[4], first[5]]
        assert second[7] not in first.values()
        assert re.search(r"from an earlier run +4\n", printed)
        assert len(journal_rows(out / "journal.sqlite")) == 6  # the deleted line's row stays

    def test_identical_lines(self, tmp_path: Path) -> None:
        """Identical keyless lines are items of their own (one task each); one more copy on top
        adds one task, not three."""
        jobs = write_jobs(tmp_path / "jobs.jsonl", [keyless(1), keyless(1)])
        out = tmp_path / "out"
        assert run_fast(jobs, out)[0] == 0
        first = set(task_of_line(out).values())
        assert len(first) == 2

        write_jobs(jobs, [keyless(1), keyless(1), keyless(1)])
        assert run_fast(jobs, out)[0] == 0
        second = set(task_of_line(out).values())
        assert len(second) == 3
        assert first < second
        keys = sorted(row["key"] for row in results(out))
        assert keys[1:] == [keys[0] + "-2", keys[0] + "-3"]

    def test_key_is_not_a_string(self, tmp_path: Path) -> None:
        """A key that is not a non-empty string is one bad line (it used to become text: true ->
        "True"); the other lines run."""
        bad = [{**GOOD, "key": True}, {**GOOD, "key": 7}, {**GOOD, "key": ""}, {**GOOD, "key": ["a"]}]
        jobs = write_jobs(tmp_path / "jobs.jsonl", [*map(json.dumps, bad), keyless(1)])
        out = tmp_path / "out"
        status, _, _ = run_fast(jobs, out)
        assert status == 1
        rows = sorted(results(out), key=lambda row: row["line"])
        assert [row["ok"] for row in rows] == [False] * 4 + [True]
        assert [row["error"].partition(": ")[2] for row in rows[:4]] == [
            "invalid key: expected a string, got a boolean",
            "invalid key: expected a string, got a number",
            "invalid key: must not be empty",
            "invalid key: expected a string, got an array",
        ]
        assert [row["key"] for row in rows[:4]] == [None] * 4


class TestJournalOfRelease010:
    """A journal written by vidu-async 0.1.0, whose keyless lines were keyed by line number, resumes."""

    FIXTURE: Final = Path(__file__).parent / "fixtures" / "journal-0.1.0"

    def copy(self, tmp_path: Path) -> tuple[Path, Path]:
        """The fixture's job file and journal, moved to ``tmp_path`` (the journal names its job
        file by path, so the move is recorded the way the user would have run it there)."""
        jobs = tmp_path / "jobs.jsonl"
        jobs.write_bytes((self.FIXTURE / "jobs.jsonl").read_bytes())
        out = tmp_path / "out"
        out.mkdir()
        journal = out / "journal.sqlite"
        journal.write_bytes((self.FIXTURE / "journal.sqlite").read_bytes())
        with contextlib.closing(sqlite3.connect(journal)) as conn, conn:
            conn.execute(
                "UPDATE meta SET value = ? WHERE name = 'input_id'",
                (f"{jobs.resolve()} (embedded emulator)",),
            )
        return jobs, out

    def test_resumes_then_survives_a_line_shift(self, tmp_path: Path) -> None:
        """Every item of the old journal is taken from it (no task made), its keyless rows are
        renamed to content keys, and after lines move the next run still takes them all."""
        jobs, out = self.copy(tmp_path)
        journal = out / "journal.sqlite"
        old = journal_rows(journal)
        old_tasks = {task_id for _, task_id in old.values()}

        status, printed, err = run_fast(jobs, out, "--no-download")
        assert status == 0, printed + err
        assert re.search(r"from an earlier run +5\n", printed)
        assert set(task_of_line(out).values()) == old_tasks
        renamed = journal_rows(journal)
        assert {task_id for _, task_id in renamed.values()} == old_tasks
        assert "named" in renamed
        assert not (set(renamed) - {"named"}) & set(old)  # every keyless row has its content key now

        lines = (jobs.read_text(encoding="utf-8")).splitlines()
        write_jobs(jobs, ["", *reversed(lines)])
        status, printed, err = run_fast(jobs, out, "--no-download")
        assert status == 0, printed + err
        assert re.search(r"from an earlier run +5\n", printed)
        assert set(task_of_line(out).values()) == old_tasks
        assert journal_rows(journal) == renamed


class TestHostileText:
    """What a key, a prompt or a server writes is printed escaped: it never forges a line."""

    FORGED: Final = "k\x1b[2K\r[99/99] ok   line 9 key=forged\n[99/99] ok\u202e"

    def test_plain_output(self, tmp_path: Path) -> None:
        """A key holding escape sequences, a carriage return and a line break prints as one line
        with them escaped (it printed a fake '[99/99] ok' line before)."""
        jobs = write_jobs(tmp_path / "jobs.jsonl", [json.dumps(job(1, key=self.FORGED))])
        status, printed, err = run_fast(jobs, tmp_path / "out")
        assert status == 0, err
        assert "\x1b" not in printed
        assert "\r" not in printed
        assert "\u202e" not in printed
        assert not any(line.startswith("[99/99]") for line in printed.splitlines())
        assert "key=k\\u001b[2K\\u000d[99/99] ok   line 9 key=forged\\u000a[99/99] ok\\u202e" in printed
        assert results(tmp_path / "out")[0]["key"] == self.FORGED  # the file keeps it as it is

    def test_rich_output(self) -> None:
        """On a terminal, rich markup in a line is shown as text, and controls escaped."""
        buffer = io.StringIO()
        display = RichDisplay(Tally(total=1), buffer)
        display.problem("line 1 key=[bold red]x[/] \x1b[31m")
        shown = buffer.getvalue()
        assert "[bold red]x[/]" in shown
        assert "\\u001b[31m" in shown
        assert "\x1b[31m" not in shown.replace("\x1b[31mFAIL", "")

    def test_task_status_from_a_hostile_server(self) -> None:
        """``status`` prints a task's fields escaped, whatever the server put in them."""
        from vidu_async.cli import _print_task

        task = vidu.Task(
            id="1\x1b[2J",
            state=vidu.TaskState.SUCCESS,
            raw_state="success\n[1/1] ok",
            creations=(vidu.Creation(id="c", url="https://x.example/\r\x1b]8;;evil\x07"),),
        )
        out = io.StringIO()
        _print_task(task, out, as_json=False)
        lines = out.getvalue().splitlines()
        assert lines == [
            "1\\u001b[2J  success\\u000a[1/1] ok",
            "  video c: https://x.example/\\u000d\\u001b]8;;evil\\u0007",
        ]


class TestFullDisk:
    """A full disk is one line of output, as every other error (it printed a 20-line traceback)."""

    def test_journal_cannot_write(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        jobs = write_jobs(tmp_path / "jobs.jsonl", [json.dumps(job(n)) for n in range(6)])
        apply = vidu.SQLiteJournal._apply_sync
        commits = 0

        def full_after_two(self: vidu.SQLiteJournal, batch: Any) -> Any:
            nonlocal commits
            commits += 1
            if commits > 2:
                raise sqlite3.OperationalError("database or disk is full")
            return apply(self, batch)

        monkeypatch.setattr(vidu.SQLiteJournal, "_apply_sync", full_after_two)
        status, _, err = run_fast(jobs, tmp_path / "out")
        assert status == 2
        assert "Traceback" not in err
        lines = err.splitlines()
        assert lines[-1].startswith("error: writing to the journal failed earlier: database or disk is full")
        assert all(line.startswith(("warning: ", "error: ")) for line in lines), err
        assert "warning: journal " in err
        assert "writing failed, nothing more is journaled: database or disk is full" in err


class TestBadText:
    """A line whose text is not valid Unicode is one bad line; the run goes on."""

    def test_lone_surrogates(self, tmp_path: Path) -> None:
        """A lone surrogate in a prompt or a key (JSON's \\ud800) fails its line alone; the other
        lines run and results.jsonl is written (the run stopped with exit 2 and no results before)."""
        lines = [
            keyless(1),
            json.dumps({**GOOD, "prompt": "A cat \ud800 naps."}),
            json.dumps({**GOOD, "key": "k\udc00"}),
            keyless(2),
        ]
        jobs = write_jobs(tmp_path / "jobs.jsonl", lines)
        out = tmp_path / "out"
        status, printed, err = run_fast(jobs, out)
        assert status == 1, printed + err
        assert err == ""
        rows = sorted(results(out), key=lambda row: row["line"])
        assert [(row["line"], row["ok"]) for row in rows] == [(1, True), (2, False), (3, False), (4, True)]
        assert "prompt" in rows[1]["error"]
        assert "surrogate" in rows[1]["error"]
        assert rows[2]["error"].endswith("invalid key: is not valid Unicode text (it holds a lone surrogate)")
