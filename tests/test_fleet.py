"""A batch shared by many workers through the PostgreSQL journal, in one process: separate clients
against one emulator and one real PostgreSQL database (``tests/pg_cluster.py``).

Several workers split a batch of every task kind, each item finished once and created once, the
organization's cap held at the emulator; a worker cancelled mid-flight whose lease then lapses
has its items adopted (tasks re-watched, bare intents looked up by fingerprint), nothing created
twice; a finished batch run again yields every stored result and creates nothing; a worker frozen
between the send guard and its POST sends nothing once its intent's ``send_by`` has passed (and,
with the guard turned off, would send a second create: strict xfail); a missing ``input_id``; the
DSN's password never shown.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import attrs
import pytest
from test_mixed_kinds import item, unsent

import vidu_async as vidu
from vidu_async import _fleet
from vidu_async._kinds import KINDS, kind_of
from vidu_async.emulator import Emulator, EmulatorConfig, FaultConfig
from vidu_async.exceptions import (
    AuthenticationError,
    JournalError,
    SubmitOutcomeUnknownError,
    TaskFailedError,
    WaitTimeoutError,
)
from vidu_async.journal import LeaseLostError, PostgresJournal, SendRefusedError

pytestmark = pytest.mark.anyio

INPUT = hashlib.sha256(b"tests/test_fleet.py batch").hexdigest()
CAP = 8
FAST_RETRY = attrs.evolve(vidu.DEFAULT_RETRY, initial=0.01, maximum=0.05, reconcile_settle=0.05)
FAST_POLL = attrs.evolve(
    vidu.DEFAULT_POLL,
    first_check=0.02,
    min_interval=0.02,
    max_interval=0.1,
    requests_per_second=200,
    intermediate_every=0.05,
)
PAYLOADLESS = frozenset(endpoint for endpoint, kind in KINDS.items() if not kind.payload)

Jobs = list[tuple[str, vidu.Request]]


def jobs(per_kind: int) -> Jobs:
    """``per_kind`` items of every task kind, interleaved, each with its own key."""
    return [(f"{endpoint}-{i}", item(endpoint, i)) for i in range(per_kind) for endpoint in KINDS]


def emulator(**config: Any) -> Emulator:
    settings: dict[str, Any] = {"concurrency": CAP, "created_time": 0.01, "processing_time": 0.1}
    settings.update(config)
    return Emulator(EmulatorConfig(**settings))


def client(emu: Emulator) -> vidu.ViduClient:
    return vidu.ViduClient(emu.api_key, base_url=emu.base_url, retry=FAST_RETRY, poll=FAST_POLL)


async def work(
    emu: Emulator, journal: str | PostgresJournal, requests: Jobs, **options: Any
) -> list[vidu.BatchResult]:
    """One worker: its own client, the shared batch, every result it yields."""
    async with client(emu) as c:
        batch = c.generate_many(requests, journal=journal, input_id=INPUT, max_in_flight=CAP, **options)
        assert isinstance(batch, _fleet.SharedBatch)
        async with batch:
            return [result async for result in batch]


async def fleet(
    emu: Emulator, dsn: str, requests: Sequence[Any], workers: int
) -> list[list[vidu.BatchResult]]:
    """``workers`` workers at once on one batch: what each yielded."""
    per_worker: list[list[vidu.BatchResult]] = [[] for _ in range(workers)]

    async def run(i: int) -> None:
        per_worker[i] = await work(emu, dsn, list(requests))

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            for i in range(workers):
                tg.start_soon(run, i)
    return per_worker


@contextlib.asynccontextmanager
async def sql(dsn: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def slots_held(dsn: str) -> int:
    async with sql(dsn) as conn:
        held: int = await conn.fetchval("SELECT count(*) FROM vidu_slots WHERE input_id IS NOT NULL")
    return held


def tasks_per_key(emu: Emulator, requests: Jobs) -> Counter[str]:
    """Server tasks made for each input (matched by the request as the emulator parsed it), so
    kinds without ``payload`` are counted too."""
    by_request = {unsent(request): key for key, request in requests}
    made: Counter[str] = Counter()
    for record in emu.tasks.values():
        made[by_request[unsent(record.request)]] += 1
    return made


def one_per_fingerprint(emu: Emulator) -> bool:
    """Every fingerprint the SDK stamped made one server task (kinds without payload have none)."""
    counts = {payload: n for payload, n in emu.stats.tasks_by_payload.items() if payload}
    return bool(counts) and max(counts.values()) == 1


def once_each(results: Sequence[vidu.BatchResult], requests: Jobs) -> None:
    """Every input yielded exactly once across the workers."""
    keys = Counter(r.key for r in results)
    assert sorted(keys) == sorted(key for key, _ in requests)
    assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1]


class TestSharing:
    """Workers split one batch: each item finished once, created once, within the cap."""

    async def test_three_workers_share_a_batch_of_every_kind(self, postgres_dsn: str) -> None:
        """3 workers, 112 items of the 14 kinds, cap 8: every item once, one server task each,
        the emulator's peak in-flight at most 8, every slot free at the end."""
        requests = jobs(8)
        assert len(requests) == 112
        async with emulator() as emu:
            started = anyio.current_time()
            per_worker = await fleet(emu, postgres_dsn, requests, 3)
            elapsed = anyio.current_time() - started
        results = [r for rs in per_worker for r in rs]
        once_each(results, requests)
        assert all(r.ok for r in results), [(r.key, r.error) for r in results if not r.ok]
        made = tasks_per_key(emu, requests)
        assert set(made) == {key for key, _ in requests}
        assert max(made.values()) == 1
        assert one_per_fingerprint(emu)
        assert emu.stats.max_in_flight <= CAP
        assert await slots_held(postgres_dsn) == 0
        counts = [len(rs) for rs in per_worker]
        print(f"3 workers, 112 items: {counts} items each, {elapsed:.2f} s")
        assert sum(counts) == 112

    async def test_three_workers_under_the_fault_mix(self, postgres_dsn: str) -> None:
        """429s, 5xx, creates committed then dropped, failed tasks: each input yielded once across
        the workers, none made more than one server task; only kinds without payload may end
        SubmitOutcomeUnknownError (undecidable: reported once, the slot kept, never sent again)."""
        faults = FaultConfig(
            rate_limit=0.03,
            server_error=0.03,
            commit_then_drop=0.04,
            task_failure=0.02,
            task_failure_code="CreationPolicyViolation",
            retry_after=0.05,
            seed=7,
        )
        requests = jobs(6)
        async with emulator(faults=faults) as emu:
            per_worker = await fleet(emu, postgres_dsn, requests, 3)
        results = [r for rs in per_worker for r in rs]
        once_each(results, requests)
        assert emu.stats.faults["commit_then_drop"] > 0
        made = tasks_per_key(emu, requests)
        assert max(made.values()) == 1
        assert one_per_fingerprint(emu)
        assert emu.stats.max_in_flight <= CAP
        undecidable = [r for r in results if isinstance(r.error, SubmitOutcomeUnknownError)]
        for r in results:
            if r.ok:
                assert made[r.key] == 1
            elif isinstance(r.error, TaskFailedError):
                assert r.error.err_code == "CreationPolicyViolation"
            else:
                assert r in undecidable, (r.key, r.error)
                assert not kind_of(r.request).payload, r.key
        assert await slots_held(postgres_dsn) == len(undecidable)

    async def test_a_repeated_key_and_an_unreadable_item_among_many(self, postgres_dsn: str) -> None:
        """Two workers share 150 items, with a key repeated at item 120 and an unreadable item at 90
        (long after the first chunk was committed and claimed): the repeat is reported once, by
        the loader, and never loaded; the unreadable item is finished once with its error; every
        other item once, one task each."""
        requests: list[Any] = [(f"k{i}", item("text2video", i)) for i in range(150)]
        requests[90] = ("k90", {"model": "viduq3", "prompt": ""})
        repeated = requests[120] = ("k7", item("text2video", 1007))
        async with emulator() as emu:
            per_worker = await fleet(emu, postgres_dsn, requests, 2)
        results = [r for rs in per_worker for r in rs]
        by_key: dict[str, list[vidu.BatchResult]] = {}
        for r in results:
            by_key.setdefault(r.key, []).append(r)
        assert sorted(by_key) == sorted(f"k{i}" for i in range(150) if i != 120)
        seven = sorted(by_key["k7"], key=lambda r: r.index)
        assert [r.index for r in seven] == [7, 120]  # the item, then the repeat's rejection
        assert seven[0].ok
        assert seven[1].request == repeated[1]
        assert "k7" in str(seven[1].error)
        (bad,) = by_key["k90"]
        assert isinstance(bad.error, vidu.ViduError)  # stored as text: whichever worker claims it reads why
        assert "prompt: is required" in str(bad.error)
        assert all(len(rs) == 1 and rs[0].ok for key, rs in by_key.items() if key not in ("k7", "k90"))
        assert len(emu.tasks) == 148
        assert one_per_fingerprint(emu)
        assert await slots_held(postgres_dsn) == 0

    async def test_a_finished_batch_run_again_yields_every_stored_result(
        self, postgres_dsn: str, tmp_path: Path
    ) -> None:
        """Run again after the batch finished (a fresh folder too): every item's stored result,
        its files fetched into the new folder, no task created."""
        requests = jobs(2)
        async with emulator() as emu:
            with anyio.fail_after(60):
                first = await work(emu, postgres_dsn, requests, download_to=tmp_path / "first")
                creates = emu.stats.requests["create"]
                tasks = len(emu.tasks)
                again = await work(emu, postgres_dsn, requests, download_to=tmp_path / "again")
            assert emu.stats.requests["create"] == creates
            assert len(emu.tasks) == tasks
        once_each(first, requests)
        once_each(again, requests)
        assert all(r.resumed and r.ok for r in again), [(r.key, r.error) for r in again if not r.ok]
        before = {r.key: r.task.id for r in first if r.task is not None}
        assert {r.key: r.task.id for r in again if r.task is not None} == before
        for r in again:
            assert r.request is not None
            assert kind_of(r.request) is kind_of(dict(requests)[r.key])
            assert r.files
            assert all(f.parent == tmp_path / "again" and f.stat().st_size > 0 for f in r.files)


async def answered_by(dsn: str, worker_id: int | None) -> int:
    """How many of the worker's unfinished items of kinds with ``payload`` have their task id now."""
    async with sql(dsn) as conn:
        held: int = await conn.fetchval(
            "SELECT count(*) FROM vidu_items WHERE worker_id = $1 AND state = 'submitted' AND NOT finished"
            " AND endpoint <> ALL($2::text[])",
            worker_id,
            sorted(PAYLOADLESS),
        )
    return held


class TestRerun:
    """A re-run of a shared batch does what a re-run of a SQLite batch does."""

    async def test_items_refused_before_a_task_existed_are_sent_again(self, postgres_dsn: str) -> None:
        """A first run with a key the service refuses ends every item with 401 and no task; a
        re-run with the right key sends each once and lists the rest; a third run creates nothing.
        Each refusal reads back with its reason, not as an anonymous stored error."""
        requests = jobs(1)
        async with emulator() as emu:
            async with vidu.ViduClient(
                "not-the-key", base_url=emu.base_url, retry=FAST_RETRY, poll=FAST_POLL
            ) as bad:
                batch = bad.generate_many(requests, journal=postgres_dsn, input_id=INPUT, max_in_flight=CAP)
                async with batch:
                    refused = [result async for result in batch]
            once_each(refused, requests)
            assert all(isinstance(r.error, AuthenticationError) for r in refused)
            assert not emu.tasks
            with anyio.fail_after(60):
                second = await work(emu, postgres_dsn, requests)
            once_each(second, requests)
            assert all(r.ok for r in second), [(r.key, r.error) for r in second if not r.ok]
            assert max(tasks_per_key(emu, requests).values()) == 1
            assert len(emu.tasks) == len(requests)
            with anyio.fail_after(60):
                third = await work(emu, postgres_dsn, requests)
            assert len(emu.tasks) == len(requests)
        once_each(third, requests)
        assert all(r.ok and r.resumed for r in third)
        assert await slots_held(postgres_dsn) == 0

    async def test_a_task_whose_wait_timed_out_is_watched_again(self, postgres_dsn: str) -> None:
        """A first run whose waits time out (the tasks take longer) ends each item with
        WaitTimeoutError and its task; a re-run watches those tasks again and collects them,
        creating nothing, as a re-run of a SQLite batch does."""
        requests: Jobs = [(f"k{i}", item("text2video", i)) for i in range(4)]
        async with emulator(processing_time=1.0) as emu:
            async with client(emu) as c:
                batch = c.generate_many(
                    requests, journal=postgres_dsn, input_id=INPUT, max_in_flight=CAP, timeout=0.2
                )
                async with batch:
                    first = [result async for result in batch]
            once_each(first, requests)
            assert all(isinstance(r.error, WaitTimeoutError) and r.task is not None for r in first)
            assert len(emu.tasks) == len(requests)
            assert await slots_held(postgres_dsn) == 0  # freed although the tasks still run
            with anyio.fail_after(60):
                second = await work(emu, postgres_dsn, requests)
            assert len(emu.tasks) == len(requests)
        once_each(second, requests)
        assert all(r.ok and r.resumed for r in second), [(r.key, r.error) for r in second if not r.ok]
        assert {r.key: r.task.id for r in second if r.task} == {r.key: r.task.id for r in first if r.task}
        assert await slots_held(postgres_dsn) == 0

    async def test_a_stored_refusal_keeps_its_reason(self, postgres_dsn: str) -> None:
        """An item whose create was refused (no task) is stored with the refusal's reason, which
        a listing of the batch's results shows (not a private class name)."""
        requests: Jobs = [("only", item("text2video", 0))]
        async with (
            emulator() as emu,
            vidu.ViduClient("not-the-key", base_url=emu.base_url, retry=FAST_RETRY, poll=FAST_POLL) as bad,
        ):
            batch = bad.generate_many(requests, journal=postgres_dsn, input_id=INPUT, max_in_flight=CAP)
            async with batch:
                (first,) = [result async for result in batch]
        async with PostgresJournal(postgres_dsn) as journal:
            await journal.open_input(INPUT)
            stored = await journal.get("only")
        assert stored is not None
        assert stored.err_code == "Unauthorized"
        assert first.error is not None
        assert getattr(first.error, "reason", "") == "Unauthorized"


class TestAdoption:
    """A worker that stops mid-flight has its items adopted, never created twice."""

    async def test_a_cancelled_workers_items_are_adopted(self, postgres_dsn: str) -> None:
        """Worker A is cancelled after 10 results or more, holding answered creates, its lease then expired by
        SQL, two of its answered creates made bare intents again (a crash right after the answer):
        B and C re-watch its tasks and find those two by fingerprint; each item is finished once,
        created once."""
        requests = jobs(8)
        a_results: list[vidu.BatchResult] = []
        others: list[list[vidu.BatchResult]] = [[], []]
        left: list[tuple[int, str, str | None]] = []
        reset: list[str] = []
        async with emulator(processing_time=0.3) as emu:

            async def worker_a() -> None:
                journal = PostgresJournal(postgres_dsn, lease_seconds=6.0, send_window=2.0, send_margin=0.5)
                async with journal, client(emu) as c:
                    with anyio.CancelScope() as scope:
                        batch = c.generate_many(requests, journal=journal, input_id=INPUT, max_in_flight=CAP)
                        async with batch:
                            async for result in batch:
                                a_results.append(result)
                                # Then cancelled mid-flight: at the first result from the tenth on at
                                # which A holds two answered creates to reset (on a loaded machine its
                                # claims may lag behind its results).
                                if (
                                    len(a_results) >= 10
                                    and await answered_by(postgres_dsn, journal.worker_id) >= 2
                                ):
                                    scope.cancel()
                    left.extend(batch.unfinished)
                    a_results.extend(batch.unread)  # finished while it was being cancelled
                    # The crash: no heartbeat any more, and two answers never recorded.
                    async with sql(postgres_dsn) as conn:
                        rows = await conn.fetch(
                            "SELECT key FROM vidu_items WHERE worker_id = $1 AND state = 'submitted'"
                            " AND endpoint <> ALL($2::text[]) ORDER BY idx LIMIT 2",
                            journal.worker_id,
                            sorted(PAYLOADLESS),
                        )
                        reset.extend(row["key"] for row in rows)
                        await conn.execute(
                            "UPDATE vidu_items SET state = 'intent', task_id = NULL,"
                            " send_by = clock_timestamp() - interval '1 second' WHERE key = ANY($1::text[])",
                            reset,
                        )
                        await conn.execute(
                            "UPDATE vidu_items SET send_by = clock_timestamp() - interval '1 second'"
                            " WHERE worker_id = $1 AND state = 'intent'",
                            journal.worker_id,
                        )
                        await conn.execute(
                            "UPDATE vidu_workers SET lease_until = clock_timestamp() - interval '1 minute'"
                            " WHERE worker_id = $1",
                            journal.worker_id,
                        )

            async def other(i: int) -> None:
                others[i] = await work(emu, postgres_dsn, requests)

            with anyio.fail_after(120):
                await worker_a()  # alone, so that it holds every slot when it is cancelled
                async with anyio.create_task_group() as tg:
                    for i in range(2):
                        tg.start_soon(other, i)
        assert len(a_results) >= 10
        assert left, "worker A held nothing when it was cancelled"
        assert len(reset) == 2, (reset, left)
        adopted = [r for rs in others for r in rs if r.resumed]
        assert {key for _, key, _ in left} <= {r.key for r in adopted}, (left, [r.key for r in adopted])
        results = a_results + [r for rs in others for r in rs]
        once_each(results, requests)
        assert all(r.ok for r in results), [(r.key, r.error) for r in results if not r.ok]
        made = tasks_per_key(emu, requests)
        assert max(made.values()) == 1
        assert one_per_fingerprint(emu)
        assert emu.stats.max_in_flight <= CAP
        assert await slots_held(postgres_dsn) == 0

    async def test_bare_intents_of_a_lapsed_worker_are_reconciled(self, postgres_dsn: str) -> None:
        """A lapsed worker left two intents it never sent. The adopter finds no task carrying the
        text2video one's fingerprint and sends it once, under a new intent with that fingerprint;
        the text2audio one cannot be looked up (no payload): reported as SubmitOutcomeUnknownError,
        its slot kept, never sent."""
        requests: Jobs = [("sound", item("text2audio", 0)), ("video", item("text2video", 0))]
        async with emulator() as emu:
            async with client(emu) as c:
                batch = c.generate_many(requests, journal=postgres_dsn, input_id=INPUT, max_in_flight=CAP)
            async with PostgresJournal(postgres_dsn, send_window=1.0, send_margin=0.2) as dead:
                # The dead worker loaded the batch as a worker does (its items as the batch stores them).
                assert await dead.load(INPUT, batch._load_items()) == 2
                assert batch.read == 2
                await dead.set_capacity(CAP)
                sound = await dead.claim(fingerprint=_fleet._fingerprint)
                video = await dead.claim(fingerprint=_fleet._fingerprint)
                assert sound is not None
                assert video is not None
                assert (sound.key, sound.fingerprint) == ("sound", "")
                assert video.key == "video"
                assert video.fingerprint
                async with sql(postgres_dsn) as conn:
                    await conn.execute(
                        "UPDATE vidu_workers SET lease_until = clock_timestamp() - interval '1 minute'"
                        " WHERE worker_id = $1",
                        dead.worker_id,
                    )
                    await conn.execute(
                        "UPDATE vidu_items SET send_by = clock_timestamp() - interval '1 second'"
                    )
                with anyio.fail_after(30):
                    results = await work(emu, postgres_dsn, requests)
            by_key = {r.key: r for r in results}
            assert by_key["video"].ok
            assert by_key["video"].resumed
            assert by_key["video"].attempts == 2  # the lapsed worker's intent, then the adopter's
            assert emu.stats.tasks_by_payload == {video.fingerprint: 1}
            assert isinstance(by_key["sound"].error, SubmitOutcomeUnknownError)
            assert "no payload" in str(by_key["sound"].error)
            assert not any(isinstance(t.request, vidu.Text2Audio) for t in emu.tasks.values())
        assert await slots_held(postgres_dsn) == 1  # kept by the undecidable item


class TestSendGuard:
    """A create is never sent after its intent's send_by, even by a worker frozen right before it."""

    @pytest.mark.parametrize(
        "guarded",
        [
            True,
            pytest.param(
                False,
                marks=pytest.mark.xfail(
                    strict=True, reason="without the send guard, the frozen worker sends a second create"
                ),
            ),
        ],
        ids=["guarded", "unguarded"],
    )
    async def test_a_worker_frozen_before_its_post_sends_nothing_late(
        self, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch, guarded: bool
    ) -> None:
        """A claims the only item, passes the guard and freezes before the POST; its lease lapses
        and the intent's send_by passes; B adopts it, finds no task and creates it. A wakes: its
        create's deadline has passed, so nothing is sent, and A ends with LeaseLostError."""
        if not guarded:
            monkeypatch.setenv(_fleet.ENV_NO_SEND_GUARD, "1")
        requests: Jobs = [("only", item("reference2video", 0))]
        frozen = anyio.Event()
        a_error: list[BaseException] = []
        async with emulator() as emu:
            a_client = client(emu)
            real_submit = a_client._submitter.submit

            thawed = anyio.Event()

            def frozen_until_thawed(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
                async def frozen_method(*args: Any, **kwargs: Any) -> Any:
                    if frozen.is_set():
                        await thawed.wait()
                    return await method(*args, **kwargs)

                return frozen_method

            async def frozen_submit(*args: Any, **kwargs: Any) -> Any:
                frozen.set()
                await anyio.sleep(3.5)  # a SIGSTOP between the guard and the POST
                try:
                    return await real_submit(*args, **kwargs)
                finally:
                    thawed.set()

            monkeypatch.setattr(a_client._submitter, "submit", frozen_submit)

            async def worker_a(journal: PostgresJournal) -> None:
                async with a_client:
                    batch = a_client.generate_many(
                        requests, journal=journal, input_id=INPUT, max_in_flight=CAP
                    )
                    try:
                        async with batch:
                            async for _ in batch:
                                pass
                    except LeaseLostError as exc:
                        a_error.append(exc)

            # No heartbeat during the freeze (a frozen process renews nothing): a long lease,
            # renewed by hand, expired below by SQL.
            a_journal = PostgresJournal(
                postgres_dsn, lease_seconds=20.0, auto_heartbeat=False, send_window=1.0, send_margin=0.2
            )
            # The rest of A is frozen too: its claim loop, waiting for a change, wakes after the
            # POST went (or did not): the order a resumed process runs its ready tasks in is
            # anyone's, and only the guard and the deadline must keep the create single.
            for name in ("claim", "adopt_expired", "unfinished", "wait_for_change"):
                monkeypatch.setattr(a_journal, name, frozen_until_thawed(getattr(a_journal, name)))
            with anyio.fail_after(60):
                async with a_journal, anyio.create_task_group() as tg:
                    tg.start_soon(worker_a, a_journal)
                    await frozen.wait()
                    await anyio.sleep(0.3)  # what A had already sent its database completes
                    async with sql(postgres_dsn) as conn:
                        await conn.execute(
                            "UPDATE vidu_workers SET lease_until = clock_timestamp() - interval '1 minute'"
                            " WHERE worker_id = $1",
                            a_journal.worker_id,
                        )
                    b_results = await work(emu, postgres_dsn, requests)
            assert len(emu.tasks) == 1
            assert one_per_fingerprint(emu)
            assert [r.key for r in b_results] == ["only"]
            assert b_results[0].ok
            assert len(a_error) == 1

    async def test_the_guard_refuses_after_send_by(self, postgres_dsn: str) -> None:
        """A claim whose send_by passed is refused by the guard: the worker gives it back."""
        async with PostgresJournal(postgres_dsn, send_window=1.0, send_margin=0.2) as journal:
            await journal.load(INPUT, [("k", 0, "reference2video", "{}", "h")])  # registers the worker
            await journal.set_capacity(1)
            claim = await journal.claim(fingerprint=lambda endpoint, body: "vidu-async:fp")
            assert claim is not None
            async with sql(postgres_dsn) as conn:
                await conn.execute("UPDATE vidu_items SET send_by = clock_timestamp() - interval '1 second'")
            with pytest.raises(SendRefusedError, match="send_by"):
                await journal.guard_send("k")
            assert await journal.release("k")
        assert await slots_held(postgres_dsn) == 0


class TestChoosing:
    """generate_many picks the shared batch for a PostgreSQL journal, and says what it needs."""

    async def test_input_id_is_required(self, postgres_dsn: str) -> None:
        async with emulator() as emu, client(emu) as c:
            with pytest.raises(ValueError, match="input_id"):
                c.generate_many([], journal=postgres_dsn)
            with pytest.raises(ValueError, match="input_id"):
                c.generate_many([], journal=postgres_dsn.replace("postgresql://", "postgres://", 1))
            async with PostgresJournal(postgres_dsn) as journal:
                with pytest.raises(ValueError, match="input_id"):
                    c.generate_many([], journal=journal)
            with pytest.raises(ValueError, match="max_credits"):
                c.generate_many([], journal=postgres_dsn, input_id=INPUT, max_credits=10)
            assert isinstance(c.generate_many([], journal="batch.sqlite", input_id=INPUT), vidu.Batch)

    async def test_unreadable_items_end_with_their_error(self, postgres_dsn: str) -> None:
        """An item that is not a valid request is loaded with why and finished with that error by
        whoever claims it; a second item with an earlier key is reported by the loader; no create."""
        requests: list[Any] = [
            ("good", item("text2video", 0)),
            ("bad", {"model": "viduq3", "prompt": "no subjects"}),
            ("good", item("text2video", 1)),
        ]
        async with emulator() as emu:
            with anyio.fail_after(30):
                results = await work(emu, postgres_dsn, requests)
            assert len(emu.tasks) == 1
        by_index = {r.index: r for r in results}
        assert sorted(by_index) == [0, 1, 2]
        assert by_index[0].ok
        assert by_index[1].key == "bad"
        assert "subjects" in str(by_index[1].error)
        assert "key of item 0" in str(by_index[2].error)
        assert await slots_held(postgres_dsn) == 0

    async def test_the_password_is_never_shown(
        self, postgres_dsn: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
    ) -> None:
        """A DSN's password appears in no log line, result, repr or error."""
        secret = "s3cret-Pw-7x"
        dsn = postgres_dsn.replace("postgresql://postgres@", f"postgresql://postgres:{secret}@", 1)
        assert secret in dsn
        requests = jobs(1)
        caplog.set_level(logging.DEBUG)
        async with emulator() as emu:
            with anyio.fail_after(60):
                results = await work(emu, dsn, requests)
            async with client(emu) as c:
                unreachable = f"postgresql://postgres:{secret}@/nowhere?host={tmp_path}"
                batch = c.generate_many(requests, journal=unreachable, input_id=INPUT)
                with pytest.raises(JournalError) as caught:
                    async with batch:
                        pass
        once_each(results, requests)
        assert secret not in str(caught.value)
        assert secret not in repr(batch.journal)
        assert secret not in caplog.text
        assert all(secret not in repr(r) for r in results)
