"""The command line on a PostgreSQL journal: ``run --journal postgresql://...`` shared by several
workers (results written as items finish, a re-run of a finished batch anywhere lists every result
and creates nothing) and ``batch``, the summary of a shared batch read from the database.

Every test gets a fresh database on the throwaway cluster of ``tests/pg_cluster.py``; the emulator
runs in this process and the command in a worker thread (it runs its own event loop).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import signal
import subprocess
import sys
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.to_thread
import asyncpg
import pytest
from conftest import one_error_line

from vidu_async.cli import main
from vidu_async.emulator import Emulator, EmulatorConfig
from vidu_async.journal import PostgresJournal
from vidu_async.journal._postgres import BatchItem

KEY: Final = "vda_cli_pg_secret_0b5e55ed"
#: A password the throwaway cluster ignores (it trusts local sockets): it must still never be shown.
PASSWORD: Final = "pg-s3cret-never-shown"
GOOD: Final[dict[str, Any]] = {
    "model": "viduq2",
    "images": ["https://example.com/cat.png"],
    "prompt": "A cat naps on a sunny windowsill.",
    "duration": 4,
}


def with_password(dsn: str) -> str:
    """``dsn`` with :data:`PASSWORD` in its user part."""
    parts = urllib.parse.urlsplit(dsn)
    user, _, host = parts.netloc.rpartition("@")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:{PASSWORD}@{host}"))


def write_jobs(path: Path, count: int, *, start: int = 0) -> Path:
    """``count`` good jobs keyed ``job-NNNN``, each with its own prompt."""
    lines = [
        json.dumps({"key": f"job-{i:04}", **GOOD, "prompt": f"A cat naps, take {i}."})
        for i in range(start, start + count)
    ]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


async def run_in_thread(*argv: str) -> tuple[int, str, str]:
    return await anyio.to_thread.run_sync(functools.partial(run, *argv))


def against(emu: Emulator) -> tuple[str, ...]:
    return ("--base-url", emu.base_url, "--api-key", emu.api_key)


def results(out: Path) -> list[dict[str, Any]]:
    path = out / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@contextlib.asynccontextmanager
async def emulator(**config: Any) -> AsyncIterator[Emulator]:
    settings: dict[str, Any] = {"api_key": KEY, "created_time": 0.01, "processing_time": 0.1}
    settings.update(config)
    async with Emulator(EmulatorConfig(**settings)) as emu:
        yield emu


@contextlib.asynccontextmanager
async def sql(dsn: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


class TestBatchCommand:
    """``vidu-async batch URL`` reads a shared batch from the database and changes nothing."""

    INPUT: Final = hashlib.sha256(b"a job file").hexdigest()

    async def stage(self, dsn: str) -> tuple[int, int]:
        """A batch of 5: one finished, one submitted, one intent of a worker whose lease lapsed, two
        pending; capacity 4. Returns the two workers' ids (live, lapsed)."""
        batch = [BatchItem(f"k{i}", i, "reference2video", json.dumps(GOOD), f"h{i}") for i in range(5)]
        live = PostgresJournal(dsn, worker_name="pod-a", auto_heartbeat=False, lease_seconds=60)
        gone = PostgresJournal(dsn, worker_name="pod-b", auto_heartbeat=False, lease_seconds=60)
        async with live, gone:
            await live.load(self.INPUT, batch)  # registers each worker
            await gone.load(self.INPUT, batch)
            await live.set_capacity(4)
            numbers = iter(range(10))

            def fingerprint(endpoint: str, request: dict[str, Any]) -> str:
                return f"fp-{next(numbers)}"

            first = await live.claim(fingerprint=fingerprint)
            second = await live.claim(fingerprint=fingerprint)
            third = await gone.claim(fingerprint=fingerprint)
            assert first is not None
            assert second is not None
            assert third is not None
            assert await live.submitted(first.key, "task-1", 20)
            assert await live.submitted(second.key, "task-2", 20)
            assert await live.finish(
                first.key, task={"id": "task-1", "state": "success"}, state="success", credits=20
            )
            assert live.worker_id is not None
            assert gone.worker_id is not None
            ids = (live.worker_id, gone.worker_id)
        # After the journals closed (which ends their leases): one live, one lapsed long ago.
        async with sql(dsn) as conn:
            await conn.execute(
                "UPDATE vidu_workers SET lease_until = clock_timestamp() + interval '1 hour' WHERE worker_id = $1",
                ids[0],
            )
            await conn.execute(
                "UPDATE vidu_workers SET lease_until = clock_timestamp() - interval '1 minute' WHERE worker_id = $1",
                ids[1],
            )
        return ids

    async def test_text(self, postgres_dsn: str) -> None:
        """States, workers with what they own, slots and the stuck item; the password never shown."""
        await self.stage(postgres_dsn)
        dsn = with_password(postgres_dsn)

        status, out, err = await run_in_thread("batch", dsn, "--input-id", self.INPUT)

        assert status == 0, err
        assert PASSWORD not in out + err
        lines = out.splitlines()
        assert lines[0].split() == ["batch", self.INPUT]
        assert "***" in lines[1]
        fields = {line.split()[0]: line.split()[1:] for line in lines if line and not line.startswith(" ")}
        assert fields["items"] == ["5"]
        assert fields["unfinished"] == ["4"]
        assert fields["slots"][:4] == ["held", "2", "of", "4"]
        counts = {
            line.split()[0]: int(line.split()[1])
            for line in lines
            if line.startswith("  ") and len(line.split()) == 2
        }
        assert counts == {"intent": 1, "pending": 2, "submitted": 1, "success": 1}
        assert any("pod-a" in line and "live" in line and "submitted 1" in line for line in lines), out
        assert any("pod-b" in line and "lease lapsed" in line and "intent 1" in line for line in lines), out
        finishers = lines[lines.index("finished by") + 1 : lines.index("stuck")]
        assert [line.split()[1:] for line in finishers] == [["pod-a", "1"]]
        stuck = lines[lines.index("stuck") + 1 :]
        assert len(stuck) == 1
        assert "owner's lease lapsed" in stuck[0]

    async def test_json_by_job_file(self, postgres_dsn: str, tmp_path: Path) -> None:
        """The job file names the batch by the sha256 of its bytes; ``--json`` is one object."""
        jobs = tmp_path / "jobs.jsonl"
        jobs.write_bytes(b"a job file")
        live, gone = await self.stage(postgres_dsn)

        status, out, err = await run_in_thread("batch", with_password(postgres_dsn), str(jobs), "--json")

        assert status == 0, err
        assert PASSWORD not in out + err
        summary = json.loads(out)
        assert summary["input_id"] == self.INPUT
        assert summary["states"] == {"intent": 1, "pending": 2, "submitted": 1, "success": 1}
        assert (summary["capacity"], summary["slots_held"], summary["unfinished"]) == (4, 2, 4)
        assert {w["worker_id"]: w["live"] for w in summary["workers"]} == {live: True, gone: False}
        assert [s["worker_id"] for s in summary["stuck"]] == [gone]
        assert summary["finished_by"] == [{"worker_id": live, "name": "pod-a", "finished": 1}]

    async def test_reads_only(self, postgres_dsn: str) -> None:
        """Nothing in the database changes: no worker registered, no batch created."""
        await self.stage(postgres_dsn)
        async with sql(postgres_dsn) as conn:
            before = await conn.fetch("SELECT * FROM vidu_workers ORDER BY worker_id")
            items_before = await conn.fetch("SELECT * FROM vidu_items ORDER BY key")

        assert (await run_in_thread("batch", postgres_dsn, "--input-id", self.INPUT))[0] == 0
        status, _, err = await run_in_thread("batch", postgres_dsn, "--input-id", "not-a-batch")

        assert status == 2
        assert "no batch not-a-batch" in one_error_line(err)
        async with sql(postgres_dsn) as conn:
            assert await conn.fetch("SELECT * FROM vidu_workers ORDER BY worker_id") == before
            assert await conn.fetch("SELECT * FROM vidu_items ORDER BY key") == items_before
            assert await conn.fetchval("SELECT count(*) FROM vidu_batches") == 1

    async def test_a_batch_being_loaded(self, postgres_dsn: str) -> None:
        """While its loader reads on, the batch shows the items committed so far."""
        await self.stage(postgres_dsn)
        async with sql(postgres_dsn) as conn:
            await conn.execute("UPDATE vidu_batches SET items = NULL, loaded_at = NULL")
        status, out, _ = await run_in_thread("batch", postgres_dsn, "--input-id", self.INPUT)
        assert status == 0
        assert ["items", "5", "so", "far,", "still", "loading"] in [line.split() for line in out.splitlines()]

    def test_bad_arguments(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Not a database URL, a missing job file, or no batch named: one error line, status 2."""
        status, _, err = run("batch", "sqlite:///x:pw@y", "--input-id", "x")
        assert status == 2
        assert "expected a PostgreSQL URL" in one_error_line(err)
        status, _, err = run("batch", "postgresql://u@h/db", str(tmp_path / "missing.jsonl"))
        assert status == 2
        assert "no such job file" in one_error_line(err)
        with pytest.raises(SystemExit) as exited:
            main(["batch", "postgresql://u@h/db"])
        assert exited.value.code == 2
        assert "JOBS.jsonl" in capsys.readouterr().err

    def test_unreachable_database(self) -> None:
        """A database that does not answer: one error line without the password, status 2."""
        status, out, err = run(
            "batch", f"postgresql://u:{PASSWORD}@127.0.0.1:1/db?connect_timeout=2", "--input-id", "x"
        )
        assert status == 2
        assert PASSWORD not in out + err
        assert "the journal's database" in one_error_line(err)


class TestRunOptions:
    """What ``run`` refuses with a PostgreSQL journal, and how it tells how to resume."""

    def test_emulator_refused(self, tmp_path: Path) -> None:
        """``--emulator`` lives in one process: workers sharing a batch could not see its tasks."""
        jobs = write_jobs(tmp_path / "jobs.jsonl", 1)
        status, _, err = run(
            "run", str(jobs), "--out", str(tmp_path / "out"), "--emulator", "--journal", "postgresql://u@h/db"
        )
        assert status == 2
        assert "vidu-async emulator" in one_error_line(err)
        assert not (tmp_path / "out").exists()

    def test_no_credit_budget(self, tmp_path: Path) -> None:
        """A budget would need every worker's spending: refused before anything starts."""
        jobs = write_jobs(tmp_path / "jobs.jsonl", 1)
        status, _, err = run(
            "run",
            str(jobs),
            "--out",
            str(tmp_path / "out"),
            "--max-credits",
            "10",
            "--journal",
            "postgresql://u@h/db",
        )
        assert status == 2
        assert "--max-credits" in one_error_line(err)
        assert not (tmp_path / "out").exists()

    def test_lease_needs_a_database(self, tmp_path: Path) -> None:
        jobs = write_jobs(tmp_path / "jobs.jsonl", 1)
        status, _, err = run("run", str(jobs), "--out", str(tmp_path / "out"), "--emulator", "--lease", "3")
        assert status == 2
        assert "--lease" in one_error_line(err)

    @pytest.mark.parametrize(
        ("argv", "expected"),
        [
            (
                ["run", "j.jsonl", "--journal", f"postgresql://vidu:{PASSWORD}@db:5432/vidu?sslmode=require"],
                "vidu-async run j.jsonl --journal 'postgresql://vidu@db:5432/vidu?sslmode=require'",
            ),
            (
                ["run", "j.jsonl", f"--journal=postgres://vidu@db/vidu?password={PASSWORD}&x=1"],
                "vidu-async run j.jsonl '--journal=postgres://vidu@db/vidu?x=1'",
            ),
            (
                ["run", "j.jsonl", "--jour", f"postgresql://vidu:{PASSWORD}@db/vidu"],
                "vidu-async run j.jsonl --jour postgresql://vidu@db/vidu",
            ),
        ],
    )
    def test_resume_command_leaves_the_password_out(self, argv: list[str], expected: str) -> None:
        """The line to resume with names the database without its password (``$PGPASSWORD`` has it)."""
        from vidu_async._runner import resume_command, resume_needs_password

        assert resume_command(argv) == expected
        assert resume_needs_password(argv)
        assert not resume_needs_password(["run", "j.jsonl", "--journal", "postgresql://vidu@db/vidu"])
        assert not resume_needs_password(["run", "j.jsonl", "--journal", "out/journal.sqlite"])


async def worker(jobs: Path, out: Path, emu: Emulator, dsn: str, *extra: str) -> tuple[int, str]:
    """``python -m vidu_async run`` on a shared batch, in its own process: its status and output."""
    done = await anyio.run_process(
        [
            sys.executable, "-m", "vidu_async", "run", str(jobs), "--out", str(out), "--journal", dsn,
            "--plain", "--base-url", emu.base_url, "--api-key", emu.api_key, *extra,
        ],
        check=False, stderr=subprocess.STDOUT,
    )  # fmt: skip
    return done.returncode, done.stdout.decode()


def is_file(path: str) -> bool:
    return Path(path).is_file()


def remove(path: str) -> None:
    Path(path).unlink()


async def until(condition: Any, within: float = 30.0) -> None:
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - another process's progress
            await anyio.sleep(0.02)


class TestSharedRun:
    """``vidu-async run --journal postgresql://...`` by several workers on one job file."""

    async def test_workers_split_the_batch_and_a_rerun_creates_nothing(
        self, postgres_dsn: str, tmp_path: Path
    ) -> None:
        """Two workers split 40 items (each writes the rows and files of the items it finished);
        a run after the batch finished, with a fresh --out, lists all 40 and fetches their files
        without creating a task; a deleted file is fetched again."""
        jobs = write_jobs(tmp_path / "jobs.jsonl", 40)
        async with emulator(concurrency=4) as emu:
            outcomes: dict[str, tuple[int, str]] = {}

            async def one(name: str) -> None:
                outcomes[name] = await worker(
                    jobs, tmp_path / name, emu, postgres_dsn, "--max-in-flight", "4"
                )

            async with anyio.create_task_group() as tg:
                for name in ("a", "b"):
                    tg.start_soon(one, name)
            assert [status for status, _ in outcomes.values()] == [0, 0], outcomes
            assert emu.stats.tasks_created == 40
            keys = [row["key"] for name in ("a", "b") for row in results(tmp_path / name)]
            assert sorted(keys) == [f"job-{i:04}" for i in range(40)]
            for name in ("a", "b"):
                mine = results(tmp_path / name)
                assert all(row["ok"] and row["line"] == int(row["key"][4:]) + 1 for row in mine)
                assert all(Path(row["files"][0]).parent == tmp_path / name / "videos" for row in mine)
                assert f"finished here         {len(mine)}" in outcomes[name][1]

            status, output = await worker(jobs, tmp_path / "fresh", emu, postgres_dsn)
            assert status == 0, output
            final = results(tmp_path / "fresh")
            assert sorted(row["key"] for row in final) == sorted(keys)
            assert all(row["ok"] and is_file(row["files"][0]) for row in final)
            first = final[0]["files"][0]
            remove(first)
            status, output = await worker(jobs, tmp_path / "fresh", emu, postgres_dsn)
            assert status == 0, output
            assert is_file(first)
            assert emu.stats.tasks_created == 40

    async def test_rows_are_written_as_items_finish(self, postgres_dsn: str, tmp_path: Path) -> None:
        """results.jsonl holds a row for each finished item while the worker is still running."""
        jobs = write_jobs(tmp_path / "jobs.jsonl", 12)
        out = tmp_path / "out"
        async with emulator(concurrency=2, processing_time=0.4) as emu, await anyio.open_process(
            [
                sys.executable, "-m", "vidu_async", "run", str(jobs), "--out", str(out), "--journal",
                postgres_dsn, "--plain", "--no-download", "--max-in-flight", "2",
                "--base-url", emu.base_url, "--api-key", emu.api_key,
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ) as process:  # fmt: skip
            await until(lambda: len(results(out)) >= 2)
            assert process.returncode is None
            assert len(results(out)) < 12
            assert await process.wait() == 0
        assert len(results(out)) == 12

    async def test_the_password_is_never_shown(self, postgres_dsn: str, tmp_path: Path) -> None:
        """Not in the output, the summary, the results, nor the line to resume an interrupted
        worker with (PostgreSQL's clients read it from $PGPASSWORD)."""
        jobs = write_jobs(tmp_path / "jobs.jsonl", 20)
        out = tmp_path / "out"
        dsn = with_password(postgres_dsn)
        async with emulator(concurrency=2, processing_time=0.5) as emu:
            status, output = await worker(write_jobs(tmp_path / "few.jsonl", 2), tmp_path / "few", emu, dsn)
            assert status == 0, output
            assert PASSWORD not in output
            assert "***@" in output
            assert PASSWORD not in (tmp_path / "few" / "results.jsonl").read_text()

            async with await anyio.open_process(
                [
                    sys.executable, "-m", "vidu_async", "run", str(jobs), "--out", str(out), "--journal", dsn,
                    "--plain", "--base-url", emu.base_url, "--api-key", emu.api_key,
                ],
                stderr=subprocess.STDOUT,
            ) as process:  # fmt: skip
                await until(lambda: len(results(out)) >= 1)
                process.send_signal(signal.SIGINT)
                assert process.stdout is not None
                chunks = [chunk async for chunk in process.stdout]
                assert await process.wait() == 130
        printed = b"".join(chunks).decode()
        assert PASSWORD not in printed
        assert "Join the batch again with:" in printed
        assert f"--journal '{postgres_dsn}'" in printed or f"--journal {postgres_dsn}" in printed
        assert "PGPASSWORD" in printed


class TestUsage:
    @pytest.mark.parametrize("command", ["batch", "run"])
    def test_help_documents_every_option(self, command: str, capsys: pytest.CaptureFixture[str]) -> None:
        """Every option of ``batch`` and ``run`` (``--journal``, ``--lease``, ``--worker-name``, ``--org``) says what it does."""
        from test_cli import undocumented_options

        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert undocumented_options(text) == []
        if command == "run":
            assert "postgresql://" in text
            assert "--lease" in text
            assert "--worker-name" in text


class TestOrganizations:
    async def test_each_org_has_its_own_slots(self, postgres_dsn: str, tmp_path: Path) -> None:
        """``--org`` names whose slots the workers share: one database can serve several accounts."""
        jobs = write_jobs(tmp_path / "jobs.jsonl", 3)
        async with emulator() as emu:
            status, output = await worker(
                jobs, tmp_path / "out", emu, postgres_dsn, "--org", "acme", "--max-in-flight", "3"
            )
        assert status == 0, output

        status, out, err = await run_in_thread("batch", postgres_dsn, str(jobs), "--org", "acme", "--json")
        assert status == 0, err
        acme = json.loads(out)
        assert (acme["org"], acme["capacity"], acme["slots_held"], acme["states"]) == (
            "acme",
            3,
            0,
            {"success": 3},
        )
        status, out, err = await run_in_thread("batch", postgres_dsn, str(jobs), "--json")
        assert status == 0, err
        assert (json.loads(out)["capacity"], json.loads(out)["org"]) == (0, "default")
