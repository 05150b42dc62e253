"""The batch journal: what it records, when it is durable, what it refuses, and how it survives a kill."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final, Literal

import anyio
import anyio.lowlevel
import attrs
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from hypothesis import given, settings
from hypothesis import strategies as st

import vidu_async as vidu
from vidu_async import _convert
from vidu_async.emulator import Emulator, EmulatorConfig
from vidu_async.exceptions import JournalError
from vidu_async.journal import STATE_INTENT, STATE_SUBMITTED, Journal, JournalEntry, SQLiteJournal, _sqlite
from vidu_async.journal._sqlite import SCHEMA_VERSION

REQUEST: dict[str, Any] = {
    "model": "viduq3",
    "subjects": [{"name": "Ming", "images": ["https://example.com/ming.png"]}],
    "prompt": "@Ming cooks hot pot and says he loves it. 明在吃火锅。",
    "duration": 5,
    "payload": "vidu-async:fp-1",
}
TASK: dict[str, Any] = {
    "id": "task-1",
    "state": "success",
    "credits": 20,
    "creations": [{"id": "c-1", "url": "https://cdn.example.com/1.mp4"}],
}


async def intent(journal: Journal, key: str, index: int = 0, **overrides: Any) -> None:
    """Record an intent with plausible defaults."""
    fields: dict[str, Any] = {
        "key": key,
        "index": index,
        "request": REQUEST,
        "request_hash": "hash-" + key,
        "fingerprint": "fp-" + key,
    }
    fields.update(overrides)
    await journal.record_intent(**fields)


@contextlib.contextmanager
def plain_sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    """A second, ordinary connection to the journal's file, as another process would open it."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        yield conn


@contextlib.asynccontextmanager
async def child(script: str, *args: str) -> AsyncIterator[tuple[Process, BufferedByteReceiveStream]]:
    """A Python child running ``script``, with a line reader on its stdout; killed if still running."""
    async with await anyio.open_process([sys.executable, "-c", script, *args]) as process:
        try:
            assert process.stdout is not None
            yield process, BufferedByteReceiveStream(process.stdout)
        finally:
            # Closing a Process waits for it to exit: a failed test must not wait forever.
            if process.returncode is None:
                process.kill()


async def read_line(stream: BufferedByteReceiveStream) -> str | None:
    """One line of a child's stdout, without its newline; ``None`` at the end of the stream."""
    try:
        return (await stream.receive_until(b"\n", 1 << 16)).decode()
    except (anyio.IncompleteRead, anyio.EndOfStream):
        return None


async def child_failed(process: Process, waiting_for: str) -> None:
    """Fail the test with the child's stderr."""
    assert process.stderr is not None
    errors = b"".join([chunk async for chunk in process.stderr]).decode()
    pytest.fail(f"the child ended before printing {waiting_for}: {errors}")


HOLDER = """
import sys, anyio
from vidu_async.journal import SQLiteJournal

async def main():
    async with SQLiteJournal(sys.argv[1]):
        print("locked", flush=True)
        await anyio.sleep_forever()

anyio.run(main)
"""

# Journals items from 20 concurrent workers and prints each key once record_intent returned,
# i.e. once the journal said the intent is durable. It never finishes: the test kills it.
WRITER = """
import sys, anyio
from vidu_async.journal import SQLiteJournal

async def main(path):
    async with SQLiteJournal(path) as journal:
        await journal.open_input("crash-test")

        async def worker(first):
            for i in range(first, 10_000_000, 20):
                key = f"k{i:07d}"
                await journal.record_intent(
                    key=key, index=i, request={"i": i, "prompt": "x" * 200},
                    request_hash=f"h{i}", fingerprint=f"fp{i}",
                )
                print(key, flush=True)
                journal.record_submitted(key, f"task{i}", 1)
                if i % 3 == 0:
                    journal.record_result(key, state="success", task={"id": f"task{i}"})

        async with anyio.create_task_group() as group:
            for first in range(20):
                group.start_soon(worker, first)

anyio.run(main, sys.argv[1])
"""


class TestRoundTrip:
    """Every kind of record reads back as written, across a reopen."""

    async def test_intent(self, tmp_path: Path) -> None:
        """An intent stores key, index, request, hash and fingerprint, with one attempt."""
        async with SQLiteJournal(tmp_path / "j.sqlite") as journal:
            await intent(journal, "a", 7)
            entry = await journal.get("a")
        assert entry is not None
        assert (entry.key, entry.index, entry.request, entry.request_hash, entry.fingerprint) == (
            "a",
            7,
            REQUEST,
            "hash-a",
            "fp-a",
        )
        assert (entry.state, entry.task_id, entry.finished, entry.attempts) == (STATE_INTENT, None, False, 1)
        assert entry.task is None
        assert 0 < entry.created_at <= entry.updated_at

    async def test_submitted_and_result(self, tmp_path: Path) -> None:
        """Submitted and the result land on the same row."""
        async with SQLiteJournal(tmp_path / "j.sqlite") as journal:
            await intent(journal, "a")
            journal.record_submitted("a", "task-1", 20)
            await journal.flush()
            submitted = await journal.get("a")
            journal.record_result(
                "a",
                state="success",
                task=TASK,
                err_code="",
                error=None,
                attempts=3,
                files=[Path("videos/task-1-c-1.mp4")],
            )
            done = await journal.get("a")
        assert submitted is not None
        assert (submitted.state, submitted.task_id, submitted.credits) == (STATE_SUBMITTED, "task-1", 20)
        assert done is not None
        assert (done.state, done.finished, done.task_id, done.credits, done.attempts) == (
            "success",
            True,
            "task-1",
            20,
            3,
        )
        assert done.task == TASK
        assert done.files == (str(Path("videos/task-1-c-1.mp4")),)

    async def test_failed_result(self, tmp_path: Path) -> None:
        """A failed result keeps err_code and error text; attempts stay counted when not given."""
        async with SQLiteJournal(tmp_path / "j.sqlite") as journal:
            await intent(journal, "a")
            journal.record_submitted("a", "task-1")
            journal.record_result("a", state="failed", err_code="AuditFailed", error="TaskFailedError: audit")
            entry = await journal.get("a")
        assert entry is not None
        assert (entry.state, entry.finished, entry.err_code, entry.error, entry.attempts, entry.credits) == (
            "failed",
            True,
            "AuditFailed",
            "TaskFailedError: audit",
            1,
            None,
        )

    async def test_result_without_intent(self, tmp_path: Path) -> None:
        """A result for an item never submitted (an invalid request) creates its row."""
        async with SQLiteJournal(tmp_path / "j.sqlite") as journal:
            journal.record_result(
                "bad", state="invalid", error="duration: must be 5", index=4, request={"x": 1}
            )
            entry = await journal.get("bad")
            # A later intent for that key is accepted: the row never knew its request's hash.
            await intent(journal, "bad", 4)
            again = await journal.get("bad")
        assert entry is not None
        assert (entry.index, entry.state, entry.finished, entry.request, entry.request_hash) == (
            4,
            "invalid",
            True,
            {"x": 1},
            "",
        )
        assert again is not None
        assert (again.state, again.finished, again.request_hash) == (STATE_INTENT, False, "hash-bad")

    async def test_reintent_is_a_new_attempt(self, tmp_path: Path) -> None:
        """The same key and request again counts an attempt and clears the previous task."""
        async with SQLiteJournal(tmp_path / "j.sqlite") as journal:
            await intent(journal, "a")
            journal.record_submitted("a", "task-1", 20)
            journal.record_result("a", state="failed", err_code="SystemError")
            await intent(journal, "a", fingerprint="fp-2")
            entry = await journal.get("a")
        assert entry is not None
        assert (
            entry.attempts,
            entry.state,
            entry.task_id,
            entry.finished,
            entry.fingerprint,
            entry.err_code,
        ) == (
            2,
            STATE_INTENT,
            None,
            False,
            "fp-2",
            "",
        )

    async def test_finished_items_stay_finished(self, tmp_path: Path) -> None:
        """A late task id does not reopen a finished item."""
        async with SQLiteJournal(tmp_path / "j.sqlite") as journal:
            await intent(journal, "a")
            journal.record_submitted("a", "task-1")
            journal.record_result("a", state="success", task=TASK)
            journal.record_submitted("a", "task-1", 20)
            entry = await journal.get("a")
        assert entry is not None
        assert (entry.state, entry.finished, entry.credits) == ("success", True, 20)

    async def test_forget_unfinished_tasks(self, tmp_path: Path) -> None:
        """Unfinished items lose their task id (back to an intent); finished and intent-only ones stay."""
        async with SQLiteJournal(tmp_path / "j.sqlite") as journal:
            for key in ("done", "running", "submitted", "intent-only"):
                await intent(journal, key)
            journal.record_submitted("done", "task-done", 20)
            journal.record_result("done", state="success", task=TASK, files=["videos/task-done-c.mp4"])
            journal.record_submitted("running", "task-running", 20)
            journal.record_submitted("submitted", "task-submitted")
            forgotten = await journal.forget_unfinished_tasks()
            entries = await journal.entries()
            assert await journal.forget_unfinished_tasks() == []  # nothing left to forget
        assert sorted(forgotten) == ["task-running", "task-submitted"]
        for key in ("running", "submitted", "intent-only"):
            entry = entries[key]
            assert (entry.task_id, entry.state, entry.credits, entry.finished) == (
                None,
                "intent",
                None,
                False,
            )
            assert (entry.fingerprint, entry.attempts) == (
                "fp-" + key,
                1,
            )  # reconciled by it, then resubmitted
        done = entries["done"]
        assert (done.task_id, done.state, done.finished, done.files) == (
            "task-done",
            "success",
            True,
            ("videos/task-done-c.mp4",),
        )

    async def test_unknown_key(self, tmp_path: Path) -> None:
        """get() of a key never journaled is None; a task id for it is counted and ignored."""
        async with SQLiteJournal(tmp_path / "j.sqlite") as journal:
            journal.record_submitted("ghost", "task-9")
            assert await journal.get("ghost") is None
            assert journal.stats.unknown_keys == 1

    async def test_entries_after_reopen(self, tmp_path: Path) -> None:
        """A reopened journal gives every entry back, ordered by index, in the state it was left."""
        path = tmp_path / "j.sqlite"
        async with SQLiteJournal(path) as journal:
            await journal.open_input("jobs.jsonl:abc")
            for index in (3, 0, 2, 1):
                await intent(journal, f"k{index}", index)
            journal.record_submitted("k1", "task-1")
            journal.record_result("k2", state="success", task=TASK)
        async with SQLiteJournal(path) as journal:
            await journal.open_input("jobs.jsonl:abc")
            entries = await journal.entries()
        assert list(entries) == ["k0", "k1", "k2", "k3"]
        assert [(e.state, e.task_id, e.finished) for e in entries.values()] == [
            (STATE_INTENT, None, False),
            (STATE_SUBMITTED, "task-1", False),
            ("success", None, True),
            (STATE_INTENT, None, False),
        ]
        assert entries["k2"].task == TASK

    async def test_ops_of_one_key_out_of_usual_order_in_one_batch(self, tmp_path: Path) -> None:
        """A result followed by a re-intent of the same key in one batch applies in queue order."""
        async with SQLiteJournal(tmp_path / "j.sqlite") as journal:
            await intent(journal, "a")
            journal.record_result("a", state="failed")
            await intent(journal, "a")  # queued right behind the result: same batch
            entry = await journal.get("a")
        assert entry is not None
        assert (entry.state, entry.finished, entry.attempts) == (STATE_INTENT, False, 2)

    @settings(max_examples=25, deadline=None)
    @given(
        request=st.dictionaries(
            st.text(),
            st.recursive(
                st.none()
                | st.booleans()
                | st.integers()
                | st.floats(allow_nan=False, allow_infinity=False)
                | st.text(),
                lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                max_leaves=10,
            ),
            max_size=5,
        ),
        key=st.text(min_size=1),
    )
    async def test_any_json_round_trips(self, request: dict[str, Any], key: str) -> None:
        """Any JSON request and any key (unicode, quotes, NUL) read back equal."""
        with tempfile.TemporaryDirectory() as tmp:
            async with SQLiteJournal(Path(tmp) / "j.sqlite") as journal:
                await journal.record_intent(
                    key=key, index=0, request=request, request_hash="h", fingerprint="f"
                )
                journal.record_result(key, state="success", task=request)
                entries = await journal.entries()
        assert list(entries) == [key]
        assert entries[key].request == request
        assert entries[key].task == request

    async def test_unserializable_request_fails_its_own_call(self, tmp_path: Path) -> None:
        """A request that is not JSON raises in the caller; the journal keeps working."""
        async with SQLiteJournal(tmp_path / "j.sqlite") as journal:
            with pytest.raises(TypeError):
                await intent(journal, "a", request={"image": b"bytes"})
            with pytest.raises(ValueError, match="JSON"):
                journal.record_result("a", state="success", task={"progress": float("nan")})
            await intent(journal, "b")
            assert list(await journal.entries()) == ["b"]

    def test_entry_decodes_lazily(self) -> None:
        """An entry keeps JSON text and decodes it once, on first access."""
        entry = JournalEntry(key="a", index=0, request_json='{"x": [1]}', task_json=None)
        assert entry.request == {"x": [1]}
        assert entry.request is entry.request
        assert entry.task is None


class TestDurability:
    """An acknowledged intent is on disk; batches share commits; closing flushes the queue."""

    async def test_intent_is_committed_when_record_intent_returns(self, tmp_path: Path) -> None:
        """Another connection sees the intent as soon as record_intent returned."""
        path = tmp_path / "j.sqlite"
        async with SQLiteJournal(path) as journal:
            await intent(journal, "a", 3)
            with plain_sqlite(path) as conn:
                rows = conn.execute("SELECT key, idx, state, fingerprint, request FROM items").fetchall()
        assert len(rows) == 1
        assert rows[0][:4] == ("a", 3, "intent", "fp-a")
        assert json.loads(rows[0][4]) == REQUEST

    async def test_journal_with_the_earlier_task_id_index(self, tmp_path: Path) -> None:
        """Journals written before the unused task-id index was dropped resume and grow alike."""
        path = tmp_path / "j.sqlite"
        async with SQLiteJournal(path) as journal:
            await intent(journal, "a")
        with plain_sqlite(path) as conn:
            conn.execute("CREATE INDEX items_task_id ON items (task_id) WHERE task_id IS NOT NULL")
            conn.commit()
        async with SQLiteJournal(path) as journal:
            journal.record_submitted("a", "task-a", 5)
            await intent(journal, "b", 1)
            journal.record_result("a", state="success", credits=5)
            entries = await journal.entries()
        assert (entries["a"].task_id, entries["a"].finished, entries["b"].state) == (
            "task-a",
            True,
            STATE_INTENT,
        )

    async def test_concurrent_intents_share_commits(self, tmp_path: Path) -> None:
        """1,000 concurrent record_intent calls take far fewer than 1,000 commits."""
        async with SQLiteJournal(tmp_path / "j.sqlite") as journal:
            before = journal.stats.commits
            async with anyio.create_task_group() as group:
                for index in range(1000):
                    group.start_soon(intent, journal, f"k{index:04d}", index)
            commits = journal.stats.commits - before
            assert len(await journal.entries()) == 1000
        assert 1 <= commits <= 50, commits

    async def test_one_commit_per_operation_when_asked(self, tmp_path: Path) -> None:
        """max_batch=1 commits each operation alone (the benchmark's baseline)."""
        async with SQLiteJournal(tmp_path / "j.sqlite", max_batch=1) as journal:
            async with anyio.create_task_group() as group:
                for index in range(20):
                    group.start_soon(intent, journal, f"k{index}", index)
            assert journal.stats.commits == 20
            assert journal.stats.largest_batch == 1

    async def test_close_flushes_queued_records(self, tmp_path: Path) -> None:
        """Results queued just before the block ends are committed by closing."""
        path = tmp_path / "j.sqlite"
        async with SQLiteJournal(path) as journal:
            for index in range(50):
                await intent(journal, f"k{index}", index)
            for index in range(50):
                journal.record_submitted(f"k{index}", f"task-{index}")
                journal.record_result(f"k{index}", state="success", task={"id": f"task-{index}"})
        with plain_sqlite(path) as conn:
            (finished,) = conn.execute(
                "SELECT count(*) FROM items WHERE finished AND task_id IS NOT NULL"
            ).fetchone()
        assert finished == 50

    async def test_close_flushes_when_the_batch_is_cancelled(self, tmp_path: Path) -> None:
        """Cancelling the scope around the journal still commits what was queued."""
        path = tmp_path / "j.sqlite"
        with anyio.CancelScope() as scope:
            async with SQLiteJournal(path) as journal:
                await intent(journal, "a")
                journal.record_result("a", state="success", task=TASK)
                scope.cancel()
                await anyio.lowlevel.checkpoint()
        assert scope.cancelled_caught
        async with SQLiteJournal(path) as journal:
            entry = await journal.get("a")
        assert entry is not None
        assert entry.finished

    @pytest.mark.parametrize(("synchronous", "level"), [("NORMAL", 1), ("FULL", 2)])
    async def test_settings(self, tmp_path: Path, synchronous: Literal["NORMAL", "FULL"], level: int) -> None:
        """The file is a WAL database with our schema version and application id, synced as asked."""
        path = tmp_path / "j.sqlite"
        async with SQLiteJournal(path, synchronous=synchronous) as journal:
            # A per-connection setting, so it is read on the journal's own (idle) connection.
            assert journal._conn is not None
            assert journal._conn.execute("PRAGMA synchronous").fetchone() == (level,)
        with plain_sqlite(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
            assert conn.execute("PRAGMA application_id").fetchone() == (0x56494455,)


class TestRefusals:
    """Each way a journal cannot be used raises JournalError, naming the file and changing nothing."""

    async def test_key_reused_with_another_request(self, tmp_path: Path) -> None:
        """The same key with a different request hash is refused, across runs too."""
        path = tmp_path / "j.sqlite"
        async with SQLiteJournal(path) as journal:
            await intent(journal, "a", request_hash="h1")
            with pytest.raises(JournalError, match=r"'a'.*different request") as caught:
                await intent(journal, "a", request_hash="h2")
            assert caught.value.path == str(path)
        async with SQLiteJournal(path) as journal:
            with pytest.raises(JournalError, match="different request"):
                await intent(journal, "a", request_hash="h3")
            entry = await journal.get("a")
        assert entry is not None
        assert (entry.request_hash, entry.attempts) == ("h1", 1)

    async def test_key_conflict_inside_a_batch(self, tmp_path: Path) -> None:
        """Among concurrent intents, only the one reusing a key with another request fails."""
        outcomes: dict[str, str] = {}

        async def attempt(name: str, key: str, request_hash: str) -> None:
            try:
                await intent(journal, key, request_hash=request_hash)
            except JournalError:
                outcomes[name] = "refused"
            else:
                outcomes[name] = "ok"

        async with SQLiteJournal(tmp_path / "j.sqlite") as journal:
            async with anyio.create_task_group() as group:
                for index in range(10):
                    group.start_soon(attempt, f"n{index}", f"k{index}", "h")
                group.start_soon(attempt, "dup", "k3", "other")
            entries = await journal.entries()
        assert outcomes.pop("dup") == "refused"
        assert set(outcomes.values()) == {"ok"}
        assert len(entries) == 10
        assert entries["k3"].request_hash == "h"

    async def test_different_input(self, tmp_path: Path) -> None:
        """A journal written for one input refuses another, naming both; the same input is fine."""
        path = tmp_path / "j.sqlite"
        async with SQLiteJournal(path) as journal:
            await journal.open_input("jobs-a.jsonl:1111")
            await journal.open_input("jobs-a.jsonl:1111")
        async with SQLiteJournal(path) as journal:
            await journal.open_input("jobs-a.jsonl:1111")
            with pytest.raises(JournalError, match=r"'jobs-a\.jsonl:1111'.*'jobs-b\.jsonl:2222'"):
                await journal.open_input("jobs-b.jsonl:2222")

    async def test_newer_schema(self, tmp_path: Path) -> None:
        """A journal from a newer schema is refused untouched."""
        path = tmp_path / "j.sqlite"
        async with SQLiteJournal(path) as journal:
            await intent(journal, "a")
        with plain_sqlite(path) as conn:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
            conn.execute("UPDATE meta SET value = 'vidu-async 9.0' WHERE name = 'written_by'")
            conn.commit()
        with pytest.raises(JournalError, match=r"newer vidu-async.*9\.0") as caught:
            async with SQLiteJournal(path):
                pass
        assert caught.value.path == str(path)
        with plain_sqlite(path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION + 1,)

    async def test_garbage_file(self, tmp_path: Path) -> None:
        """A file that is not a database is refused with its path, and left as it was."""
        path = tmp_path / "journal.sqlite"
        garbage = b"this is not a database, just some bytes\n" * 200
        path.write_bytes(garbage)
        with pytest.raises(JournalError, match="not a journal") as caught:
            async with SQLiteJournal(path):
                pass
        assert caught.value.path == str(path)
        assert str(path) in str(caught.value)
        assert path.read_bytes() == garbage

    async def test_someone_elses_database(self, tmp_path: Path) -> None:
        """An SQLite database of another application is refused."""
        path = tmp_path / "other.db"
        with plain_sqlite(path) as conn:
            conn.execute("CREATE TABLE photos (id INTEGER)")
            conn.commit()
        with pytest.raises(JournalError, match="not a vidu-async journal"):
            async with SQLiteJournal(path):
                pass

    async def test_use_outside_the_block(self, tmp_path: Path) -> None:
        """Recording before opening or after closing raises JournalError."""
        journal = SQLiteJournal(tmp_path / "j.sqlite")
        with pytest.raises(JournalError, match="not open"):
            journal.record_submitted("a", "task-1")
        async with journal:
            await intent(journal, "a")
        with pytest.raises(JournalError, match="closed"):
            journal.record_submitted("a", "task-1")
        with pytest.raises(JournalError, match="closed"):
            await intent(journal, "b")
        with pytest.raises(JournalError, match="closed"):
            await journal.forget_unfinished_tasks()
        with pytest.raises(RuntimeError, match="only once"):
            async with journal:
                pass

    async def test_write_failure_surfaces(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """If a commit fails, its waiters, later calls and closing all raise JournalError."""
        journal = SQLiteJournal(tmp_path / "j.sqlite")

        def fail(batch: object) -> object:
            raise sqlite3.OperationalError("disk I/O error")

        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(journal)
            monkeypatch.setattr(journal, "_apply_sync", fail)
            with pytest.raises(JournalError, match="disk I/O error"):
                await intent(journal, "a")
            with pytest.raises(JournalError, match="disk I/O error"):
                journal.record_submitted("a", "task-1")
            with pytest.raises(JournalError, match="disk I/O error"):
                await stack.aclose()

    def test_bad_arguments(self, tmp_path: Path) -> None:
        """max_batch below 1 and unknown synchronous modes are refused at construction."""
        with pytest.raises(ValueError, match="max_batch"):
            SQLiteJournal(tmp_path / "j.sqlite", max_batch=0)
        with pytest.raises(ValueError, match="synchronous"):
            SQLiteJournal(tmp_path / "j.sqlite", synchronous="OFF")  # type: ignore[arg-type]


class TestLocking:
    """One run at a time; a killed run's lock does not outlive it."""

    async def test_second_journal_in_the_same_process(self, tmp_path: Path) -> None:
        """A second open of a journal in use is refused until the first closes."""
        path = tmp_path / "j.sqlite"
        async with SQLiteJournal(path) as journal:
            await intent(journal, "a")
            with pytest.raises(JournalError, match="in use by another run") as caught:
                async with SQLiteJournal(path):
                    pass
            assert caught.value.path == str(path)
            await intent(journal, "b")  # the refused opener disturbed nothing
        async with SQLiteJournal(path) as journal:
            assert list(await journal.entries()) == ["a", "b"]

    async def test_other_process_then_killed(self, tmp_path: Path) -> None:
        """A journal held by another process is refused; after kill -9 it opens at once."""
        path = tmp_path / "j.sqlite"
        async with child(HOLDER, str(path)) as (process, stream):
            with anyio.fail_after(30):
                line = await read_line(stream)
            if line != "locked":
                await child_failed(process, "'locked'")
            with pytest.raises(JournalError, match=f"in use by another run \\(process {process.pid}\\)"):
                async with SQLiteJournal(path):
                    pass
            process.kill()
            await process.wait()
        async with SQLiteJournal(path) as journal:
            await intent(journal, "a")


class TestCrashSafety:
    """A process killed mid-stream leaves a journal that opens cleanly with every acknowledged intent."""

    async def test_sigkill_while_writing(self, tmp_path: Path) -> None:
        """Every key the child saw acknowledged is in the journal after SIGKILL."""
        path = tmp_path / "j.sqlite"
        acknowledged: list[str] = []
        async with child(WRITER, str(path)) as (process, stream):
            with anyio.fail_after(60):
                while len(acknowledged) < 3000:
                    line = await read_line(stream)
                    if line is None:
                        await child_failed(process, "3000 keys")
                    else:
                        acknowledged.append(line)
            process.kill()
            await process.wait()
            # What the child printed before it died counts too: it was acknowledged.
            while (line := await read_line(stream)) is not None:
                acknowledged.append(line)
        assert process.returncode != 0

        with plain_sqlite(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        async with SQLiteJournal(path) as journal:
            await journal.open_input("crash-test")
            entries = await journal.entries()
            await intent(journal, "after-the-crash")  # and it is writable again
        missing = [key for key in acknowledged if key not in entries]
        assert not missing, f"{len(missing)} acknowledged intents lost, e.g. {missing[:5]}"
        for key, entry in entries.items():
            i = int(key[1:])
            assert entry.request == {"i": i, "prompt": "x" * 200}
            assert entry.task_id in (None, f"task{i}")
            if entry.finished:
                assert (entry.task_id, entry.task) == (f"task{i}", {"id": f"task{i}"})


class TestCancellation:
    """A cancelled record_intent leaves the writer and the journal working."""

    async def test_cancelled_before_waiting(self, tmp_path: Path) -> None:
        """A record_intent cancelled at once still reaches the queue; later calls work."""
        async with SQLiteJournal(tmp_path / "j.sqlite") as journal:
            with anyio.CancelScope() as scope:
                scope.cancel()
                await intent(journal, "a")
            assert scope.cancelled_caught
            await intent(journal, "b")
            entries = await journal.entries()
        # "a" was handed to the writer before the wait was cancelled, so it was committed: a
        # re-run reconciles such an intent by fingerprint like any intent without a task id.
        assert list(entries) == ["a", "b"]

    async def test_cancelled_while_the_commit_is_held_up(self, tmp_path: Path) -> None:
        """Cancelling callers whose batch is waiting for sqlite leaves the batch to commit."""
        async with SQLiteJournal(tmp_path / "j.sqlite") as journal:
            # Holding the journal's sqlite limiter keeps the writer from committing.
            async with anyio.create_task_group() as group, journal._limiter:
                for index in range(5):
                    group.start_soon(intent, journal, f"k{index}", index)
                await anyio.wait_all_tasks_blocked()
                group.cancel_scope.cancel()
            await intent(journal, "after", 5)
            journal.record_result("after", state="success")
            await journal.flush()
            entries = await journal.entries()
        assert list(entries) == ["k0", "k1", "k2", "k3", "k4", "after"]
        assert entries["after"].finished


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


class TestEncoding:
    """The compact JSON encoder (request bodies, journal rows) and the journal's path lists write
    exactly what the standard library's encoder would."""

    STANDARD = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode

    @settings(max_examples=200, deadline=None)
    @given(value=JSON_VALUES)
    def test_dumps_matches_the_standard_encoder(self, value: Any) -> None:
        assert _convert.dumps(value) == self.STANDARD(value)

    @settings(max_examples=200, deadline=None)
    @given(paths=st.lists(st.text(), min_size=1, max_size=4))
    def test_path_lists_match_the_standard_encoder(self, paths: list[str]) -> None:
        assert _sqlite._dumps_strings(paths) == self.STANDARD(paths)

    def test_refusals_match_the_standard_encoder(self) -> None:
        """NaN, foreign objects and non-string keys fail the same way as json.dumps would."""
        with pytest.raises(ValueError, match="JSON compliant"):
            _convert.dumps({"x": [float("inf")]})
        with pytest.raises(TypeError, match="bytes is not JSON serializable"):
            _convert.dumps({"x": b"raw"})
        assert _convert.dumps({1: "a", None: "b"}) == self.STANDARD({1: "a", None: "b"})


class TestRenameAndOddText:
    """Renaming a key, and text that is not valid UTF-8."""

    async def test_rename_key(self, tmp_path: Path) -> None:
        """A row takes its new key with everything it held; a rename onto a key that has a row,
        or of a key that has none, changes nothing."""
        async with SQLiteJournal(tmp_path / "j.sqlite") as journal:
            await intent(journal, "old")
            journal.record_submitted("old", "task-1", 20)
            await intent(journal, "taken", index=1)
            journal.rename_key("old", "new")
            journal.record_result("new", state="success", task=TASK, credits=20)
            journal.rename_key("taken", "new")
            journal.rename_key("missing", "other")
            entries = await journal.entries()
        assert sorted(entries) == ["new", "taken"]
        new = entries["new"]
        assert (new.task_id, new.finished, new.fingerprint, new.request_hash) == (
            "task-1",
            True,
            "fp-old",
            "hash-old",
        )

    async def test_lone_surrogates_are_stored_escaped(self, tmp_path: Path) -> None:
        """A task or an error holding a lone surrogate (a server's text can) is stored as its JSON
        escape instead of failing the writer and with it the whole run (it failed before)."""
        odd = "bad \ud800 text"
        async with SQLiteJournal(tmp_path / "j.sqlite") as journal:
            await intent(journal, "a")
            journal.record_result(
                "a", state="failed", task={**TASK, "state": "failed", "err_msg": odd}, error=odd, err_code=odd
            )
            await intent(journal, "b", index=1)
            journal.record_submitted("b", "task-2")
            entries = await journal.entries()
        a = entries["a"]
        assert a.finished
        assert a.task is not None
        assert a.task["err_msg"] == odd  # the JSON escape reads back as the same text
        assert a.error == a.err_code == "bad \\ud800 text"
        assert entries["b"].task_id == "task-2"


class MemoryJournal:
    """A store with exactly the protocol's methods and nothing more, kept in a dict."""

    def __init__(self) -> None:
        self.rows: dict[str, JournalEntry] = {}
        self.input_id: str | None = None

    async def __aenter__(self) -> MemoryJournal:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def open_input(self, input_id: str) -> None:
        if self.input_id not in (None, input_id):
            raise JournalError(f"the journal belongs to {self.input_id!r}")
        self.input_id = input_id

    async def entries(self) -> dict[str, JournalEntry]:
        return {entry.key: entry for entry in sorted(self.rows.values(), key=lambda e: e.index)}

    async def record_intent(
        self,
        *,
        key: str,
        index: int,
        request: Mapping[str, Any],
        request_hash: str,
        fingerprint: str,
        endpoint: str = "reference2video",
    ) -> None:
        old = self.rows.get(key)
        self.rows[key] = JournalEntry(
            key=key,
            index=index,
            endpoint=endpoint,
            request_json=json.dumps(request),
            request_hash=request_hash,
            fingerprint=fingerprint,
            attempts=old.attempts + 1 if old else 1,
        )

    def record_submitted(self, key: str, task_id: str, credits: int | None = None) -> None:
        old = self.rows[key]
        self.rows[key] = attrs.evolve(old, task_id=task_id, credits=credits, state=STATE_SUBMITTED)

    def rename_key(self, old_key: str, new_key: str) -> None:
        if old_key in self.rows and new_key not in self.rows:
            self.rows[new_key] = attrs.evolve(self.rows.pop(old_key), key=new_key)

    def record_result(
        self,
        key: str,
        *,
        state: str,
        task: Mapping[str, Any] | None = None,
        err_code: str = "",
        credits: int | None = None,
        error: str | None = None,
        attempts: int | None = None,
        files: Iterable[str | os.PathLike[str]] = (),
        index: int | None = None,
        request: Mapping[str, Any] | None = None,
        endpoint: str | None = None,
    ) -> None:
        old = self.rows.get(key) or JournalEntry(
            key=key,
            index=-1 if index is None else index,
            endpoint=endpoint or "reference2video",
            request_json=json.dumps(request or {}),
        )
        self.rows[key] = attrs.evolve(
            old,
            state=state,
            finished=True,
            task_json=None if task is None else json.dumps(task),
            err_code=err_code,
            credits=old.credits if credits is None else credits,
            error=error,
            attempts=old.attempts if attempts is None else attempts,
            files=tuple(os.fspath(f) for f in files),
        )

    async def flush(self) -> None:
        return None


class TestProtocol:
    """The protocol is what the engine uses: a store with only its methods runs and resumes a batch."""

    async def test_a_store_with_only_the_protocol(self) -> None:
        """A batch journaled in a store without ``get`` or ``record_state`` finishes, and the same
        batch again is taken whole from the store, creating no task."""
        journal: Journal = MemoryJournal()
        requests = [
            vidu.Reference2Video(
                model="viduq3",
                subjects=[vidu.Subject(name="Ming", images=["https://example.com/ming.png"])],
                prompt=f"@Ming cooks hot pot number {i}.",
            )
            for i in range(3)
        ]
        poll = attrs.evolve(vidu.DEFAULT_POLL, first_check=0.02, min_interval=0.02, max_interval=0.1)
        created = []
        for _ in range(2):
            config = EmulatorConfig(created_time=0.01, processing_time=0.05)
            async with (
                Emulator(config) as emu,
                vidu.ViduClient(emu.api_key, base_url=emu.base_url, poll=poll) as client,
                journal,
            ):
                with anyio.fail_after(20):
                    async with client.generate_many(requests, journal=journal) as batch:
                        results = [result async for result in batch]
                created.append(emu.stats.tasks_created)
            assert sorted(r.index for r in results if r.ok) == [0, 1, 2]
        assert created == [3, 0]
        assert all(r.resumed for r in results)
        entries = await journal.entries()
        assert [(e.state, e.finished) for e in entries.values()] == [("success", True)] * 3


class TestSchema:
    """Schema 2 records each item's endpoint; a journal of 0.1.0 (schema 1) is upgraded in place."""

    RELEASE_010: Final = Path(__file__).parent / "fixtures" / "journal-0.1.0" / "journal.sqlite"

    def release_010(self, tmp_path: Path) -> Path:
        """A copy of the journal 0.1.0 wrote (the fixture itself is never opened)."""
        path = tmp_path / "journal.sqlite"
        path.write_bytes(self.RELEASE_010.read_bytes())
        return path

    @staticmethod
    def layout(path: Path) -> tuple[int, int, list[tuple[Any, ...]], str]:
        """user_version, schema cookie, the items table's columns and the written_by marker."""
        with plain_sqlite(path) as conn:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            (cookie,) = conn.execute("PRAGMA schema_version").fetchone()
            columns = conn.execute("PRAGMA table_info(items)").fetchall()
            (written_by,) = conn.execute("SELECT value FROM meta WHERE name = 'written_by'").fetchone()
        return version, cookie, columns, written_by

    async def test_journal_of_release_010_is_upgraded(self, tmp_path: Path) -> None:
        """The journal opens, every entry reads back with the default endpoint, and the file is
        schema 2, the column added last; its marker names the release that upgraded it."""
        path = self.release_010(tmp_path)
        with plain_sqlite(path) as conn:
            assert conn.execute("PRAGMA user_version").fetchone() == (1,)
        async with SQLiteJournal(path) as journal:
            entries = await journal.entries()
        keys = list(entries)
        assert "named" in keys
        hex_keys = [key for key in keys if key != "named"]
        assert len(hex_keys) == 4
        assert all(re.fullmatch("[0-9a-f]{24}", key) for key in hex_keys), hex_keys
        assert [e.index for e in entries.values()] == [0, 1, 2, 3, 4]
        for entry in entries.values():
            assert (entry.finished, entry.state, entry.endpoint) == (True, "success", "reference2video")
            assert entry.task_id
            assert entry.task is not None
            assert entry.task["id"] == entry.task_id
        version, _, columns, written_by = self.layout(path)
        assert version == SCHEMA_VERSION == 2
        assert columns[-1][1:] == ("endpoint", "TEXT", 1, "'reference2video'", 0)
        assert written_by == f"vidu-async {vidu.__version__}"
        with plain_sqlite(path) as conn:
            assert conn.execute("PRAGMA application_id").fetchone() == (0x56494455,)
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    async def test_second_open_is_a_no_op(self, tmp_path: Path) -> None:
        """An upgraded journal opened again is not changed (its schema cookie stays), reads the
        same, and resumes like any other: a new item with its own endpoint joins the old ones."""
        path = self.release_010(tmp_path)
        async with SQLiteJournal(path) as journal:
            first = await journal.entries()
        upgraded = self.layout(path)
        async with SQLiteJournal(path) as journal:
            again = await journal.entries()
        assert self.layout(path) == upgraded
        assert again == first
        async with SQLiteJournal(path) as journal:
            await intent(journal, "new", 5, endpoint="text2video")
            entries = await journal.entries()
        assert entries["new"].endpoint == "text2video"
        assert [e.endpoint for e in entries.values()] == ["reference2video"] * 5 + ["text2video"]

    async def test_failed_upgrade_leaves_schema_1(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The column and the version change in one transaction: if the upgrade fails the journal
        is refused and left at schema 1, without the column, for a later release to upgrade."""
        path = self.release_010(tmp_path)
        before = self.layout(path)
        monkeypatch.setattr(_sqlite, "_UPGRADE_TO_2", "ALTER TABLE items ADD COLUMN endpoint TEXT NOT NULL")
        with pytest.raises(JournalError, match="cannot open the journal") as caught:
            async with SQLiteJournal(path):
                pass
        assert caught.value.path == str(path)
        assert self.layout(path) == before
        assert before[0] == 1

    async def test_fresh_journal_is_schema_2(self, tmp_path: Path) -> None:
        """A new journal is created at schema 2, with the endpoint column and its default."""
        path = tmp_path / "j.sqlite"
        async with SQLiteJournal(path) as journal:
            await intent(journal, "a")
        version, _, columns, _ = self.layout(path)
        assert version == 2
        assert ("endpoint", "TEXT", 1, "'reference2video'", 0) in [c[1:] for c in columns]

    async def test_endpoint_round_trips(self, tmp_path: Path) -> None:
        """record_intent stores its endpoint (reference2video by default); record_result's is used
        only when the result creates the row."""
        path = tmp_path / "j.sqlite"
        async with SQLiteJournal(path) as journal:
            await intent(journal, "t2v", 0, endpoint="text2video")
            await intent(journal, "r2v", 1)
            journal.record_result("t2v", state="success", task=TASK, endpoint="img2video")
            journal.record_result("bad", state="invalid", index=2, request={"x": 1}, endpoint="img2video")
            journal.record_result("bad-default", state="invalid", index=3, request={"x": 2})
        async with SQLiteJournal(path) as journal:
            entries = await journal.entries()
        assert {key: e.endpoint for key, e in entries.items()} == {
            "t2v": "text2video",
            "r2v": "reference2video",
            "bad": "img2video",
            "bad-default": "reference2video",
        }
        assert entries["t2v"].finished
        assert JournalEntry(key="k", index=0).endpoint == "reference2video"
