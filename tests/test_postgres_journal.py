"""The PostgreSQL journal against a real server: loading once, leases, fencing, slots, claims,
the send guard, adoption, the Journal protocol, the schema, and a DSN that never shows its password.

Every test gets a fresh database on a throwaway socket-only cluster (``tests/pg_cluster.py``);
races are made with explicit expiry (a lease set in the past by SQL), never with sleeps.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

import vidu_async as vidu
from vidu_async.exceptions import ConfigurationError, JournalError
from vidu_async.journal import STATE_INTENT, STATE_SUBMITTED, Journal, PostgresJournal, _postgres
from vidu_async.journal._postgres import (
    SCHEMA_VERSION,
    STATE_PENDING,
    BatchItem,
    Claim,
    LeaseLostError,
    SendRefusedError,
    migrate,
    redact_dsn,
)

INPUT = hashlib.sha256(b"the jobs file").hexdigest()
REQUEST: dict[str, Any] = {
    "model": "viduq3",
    "subjects": [{"name": "Ming", "images": ["https://example.com/ming.png"]}],
    "prompt": "@Ming cooks hot pot and says he loves it. 明在吃火锅。",
    "duration": 5,
}
TASK: dict[str, Any] = {"id": "task-1", "state": "success", "credits": 20, "creations": [{"id": "c-1"}]}


def items(count: int, prefix: str = "k") -> list[BatchItem]:
    """``count`` items of a batch, in input order."""
    return [
        BatchItem(f"{prefix}{i:04d}", i, "reference2video", json.dumps({**REQUEST, "seed": i}), f"hash-{i}")
        for i in range(count)
    ]


def fingerprint(endpoint: str, request: dict[str, Any]) -> str:
    """A fingerprint per request, as the batch would stamp into ``payload``."""
    return f"vidu-async:fp-{request.get('seed', 0)}"


def journal(dsn: str, **options: Any) -> PostgresJournal:
    """A journal with short leases and no background heartbeat (tests renew and expire by hand)."""
    settings: dict[str, Any] = {
        "lease_seconds": 2.0,
        "auto_heartbeat": False,
        "send_window": 2.0,
        "send_margin": 0.2,
        "max_connections": 2,
    }
    settings.update(options)
    return PostgresJournal(dsn, **settings)


@contextlib.asynccontextmanager
async def worker(
    dsn: str, *, load: Sequence[BatchItem] = (), capacity: int | None = None, **options: Any
) -> AsyncIterator[PostgresJournal]:
    """An open, registered journal on the batch ``INPUT`` (loaded with ``load``)."""
    async with journal(dsn, **options) as j:
        await j.load(INPUT, load)  # registers the worker
        if capacity is not None:
            await j.set_capacity(capacity)
        yield j


@contextlib.asynccontextmanager
async def sql(dsn: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A plain connection, as an operator (or another process) would open it."""
    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def expire(dsn: str, worker_id: int | None) -> None:
    """Set a worker's lease in the past, as if it had stopped heart-beating long ago."""
    async with sql(dsn) as conn:
        await conn.execute(
            "UPDATE vidu_workers SET lease_until = clock_timestamp() - interval '1 minute' WHERE worker_id = $1",
            worker_id,
        )


async def overdue(dsn: str, key: str) -> None:
    """Set an intent's ``send_by`` in the past."""
    async with sql(dsn) as conn:
        await conn.execute(
            "UPDATE vidu_items SET send_by = clock_timestamp() - interval '1 second' WHERE key = $1", key
        )


async def held_slots(dsn: str) -> list[tuple[int, str]]:
    async with sql(dsn) as conn:
        rows = await conn.fetch("SELECT slot, key FROM vidu_slots WHERE input_id IS NOT NULL ORDER BY slot")
    return [(row["slot"], row["key"]) for row in rows]


async def row(dsn: str, key: str) -> asyncpg.Record:
    async with sql(dsn) as conn:
        found = await conn.fetchrow("SELECT * FROM vidu_items WHERE key = $1", key)
    assert found is not None
    return found


class TestLoad:
    """A batch is loaded once, whoever loads it and however many load at once."""

    async def test_concurrent_loaders_insert_each_item_once(self, postgres_dsn: str) -> None:
        """Eight loaders at once: one inserts all 500 items, the others nothing."""
        batch = items(500)
        inserted: list[int] = []

        async def load() -> None:
            async with journal(postgres_dsn) as j:
                inserted.append(await j.load(INPUT, batch, chunk=64))

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(load)
        assert sorted(inserted) == [0] * 7 + [500]
        async with sql(postgres_dsn) as conn:
            assert await conn.fetchval("SELECT count(*) FROM vidu_items") == 500
            assert await conn.fetchval("SELECT count(DISTINCT key) FROM vidu_items") == 500
            assert await conn.fetchval("SELECT items FROM vidu_batches WHERE input_id = $1", INPUT) == 500

    async def test_a_later_loader_reads_nothing(self, postgres_dsn: str) -> None:
        """Once loaded, a loader inserts nothing and does not even read its items."""

        def never() -> Any:
            raise AssertionError("read")
            yield

        async with journal(postgres_dsn) as j:
            assert await j.load(INPUT, items(3)) == 3
        async with journal(postgres_dsn) as j:
            assert await j.load(INPUT, never()) == 0
            entries = await j.entries()
            assert entries == {}  # pending items are not entries
            pending = await j.get("k0001")
            assert pending is not None
            assert (pending.state, pending.index, pending.request_hash) == (STATE_PENDING, 1, "hash-1")

    async def test_a_failed_load_is_finished_by_the_next_loader(self, postgres_dsn: str) -> None:
        """A loader whose input fails mid-way keeps what it committed and gives the load up; the
        next loader reads the input from the start and adds only what is missing."""

        def broken() -> Any:
            yield from items(10)
            raise RuntimeError("the input file vanished")

        async with journal(postgres_dsn) as j:
            with pytest.raises(RuntimeError):
                await j.load(INPUT, broken(), chunk=4)
            assert not await j.loaded()
        async with sql(postgres_dsn) as conn:
            committed = await conn.fetchval("SELECT count(*) FROM vidu_items")
            assert committed == 8  # two chunks of 4; the last 2 items were read, never committed
            assert await conn.fetchval("SELECT loader FROM vidu_batches") is None  # given up
        async with journal(postgres_dsn) as j:
            assert await j.load(INPUT, items(12)) == 12 - committed
            assert await j.loaded()
        async with sql(postgres_dsn) as conn:
            assert await conn.fetchval("SELECT count(DISTINCT key) FROM vidu_items") == 12
            assert await conn.fetchval("SELECT items FROM vidu_batches WHERE input_id = $1", INPUT) == 12

    async def test_workers_claim_while_the_loader_reads_on(self, postgres_dsn: str) -> None:
        """The first chunk is committed before the loader has read the rest: another worker claims
        its first item meanwhile, and does not take the load while the loader is live."""
        first_chunk_read = anyio.Event()
        go_on = anyio.Event()

        async def slow_input() -> AsyncIterator[BatchItem]:
            batch = items(200)
            for item in batch[: _postgres._FIRST_CHUNK]:
                yield item
            first_chunk_read.set()
            await go_on.wait()  # the rest of the input is slow to read
            for item in batch[_postgres._FIRST_CHUNK :]:
                yield item

        async with (
            journal(postgres_dsn, lease_seconds=60) as loader,
            journal(postgres_dsn, lease_seconds=60) as other,
        ):
            async with anyio.create_task_group() as tg:
                tg.start_soon(loader.load, INPUT, slow_input())
                await first_chunk_read.wait()
                await other.open_input(INPUT)
                await other.set_capacity(2)
                claim = None
                with anyio.fail_after(10):
                    while claim is None:  # the chunk is committed just after its last item is read
                        claim = await other.claim(fingerprint=fingerprint)
                        if claim is None:
                            await other.wait_for_change(0.1)
                assert claim.key == "k0000"
                assert not await other.loaded()
                assert await other.load(INPUT, items(200)) == 0  # the loader is live: not taken
                go_on.set()
            assert await other.loaded()
            assert await other.unfinished() == 200

    async def test_a_lapsed_loader_is_taken_over_and_adds_nothing_after(self, postgres_dsn: str) -> None:
        """A loader frozen past its lease: another worker takes the load over and finishes it; the
        stale loader, when it wakes, commits nothing more and does not mark the batch loaded."""
        first_chunk_read = anyio.Event()
        go_on = anyio.Event()

        async def frozen_input() -> AsyncIterator[BatchItem]:
            batch = items(100)
            for item in batch[: _postgres._FIRST_CHUNK + 1]:
                yield item
            first_chunk_read.set()
            await go_on.wait()
            for item in batch[_postgres._FIRST_CHUNK + 1 :]:
                yield item

        async with journal(postgres_dsn) as stale, journal(postgres_dsn) as taker:
            inserted: list[int] = []

            async def load() -> None:
                inserted.append(await stale.load(INPUT, frozen_input()))

            async with anyio.create_task_group() as tg:
                tg.start_soon(load)
                await first_chunk_read.wait()
                await expire(postgres_dsn, stale.worker_id)
                assert await taker.load(INPUT, items(100)) == 100 - _postgres._FIRST_CHUNK
                assert await taker.loaded()
                go_on.set()
            assert inserted == [_postgres._FIRST_CHUNK]  # its first chunk only
        async with sql(postgres_dsn) as conn:
            assert await conn.fetchval("SELECT count(*) FROM vidu_items") == 100
            row_ = await conn.fetchrow("SELECT items, loader FROM vidu_batches WHERE input_id = $1", INPUT)
            assert (row_["items"], row_["loader"]) == (100, taker.worker_id)

    async def test_one_journal_one_batch(self, postgres_dsn: str) -> None:
        async with journal(postgres_dsn) as j:
            await j.load(INPUT, items(1))
            with pytest.raises(JournalError, match="one journal per batch"):
                await j.open_input("another")


class TestLeases:
    """Workers register, renew only live leases, and lose them for good."""

    async def test_ids_are_never_reused(self, postgres_dsn: str) -> None:
        ids = []
        for _ in range(3):
            async with worker(postgres_dsn) as j:
                ids.append(j.worker_id)
        assert ids == sorted(set(ids))
        assert len(ids) == 3

    async def test_heartbeat_renews_a_live_lease(self, postgres_dsn: str) -> None:
        async with worker(postgres_dsn) as j:
            before = j.lease_deadline
            assert await j.heartbeat() >= before
            assert not j.lease_lost

    async def test_heartbeat_after_expiry_fails(self, postgres_dsn: str) -> None:
        """A lapsed lease is not renewed: the worker is told to stop, and stays stopped."""
        async with worker(postgres_dsn) as j:
            await expire(postgres_dsn, j.worker_id)
            with pytest.raises(LeaseLostError) as caught:
                await j.heartbeat()
            assert caught.value.worker_id == j.worker_id
            assert j.lease_lost
            async with sql(postgres_dsn) as conn:
                assert await conn.fetchval(
                    "SELECT lease_until < clock_timestamp() FROM vidu_workers WHERE worker_id = $1",
                    j.worker_id,
                )
            with pytest.raises(LeaseLostError):
                await j.heartbeat()

    async def test_background_heartbeat(self, postgres_dsn: str) -> None:
        """With auto_heartbeat the lease outlives several lease periods, and a lapse stops it."""
        async with worker(postgres_dsn, auto_heartbeat=True, lease_seconds=0.6) as j:
            await anyio.sleep(1.5)
            await j.heartbeat()  # still live
            await expire(postgres_dsn, j.worker_id)
            for _ in range(100):  # the next beat, a third of a lease away, finds it lapsed
                if j.lease_lost:
                    break
                await anyio.sleep(0.05)
            assert j.lease_lost

    async def test_closing_ends_the_lease(self, postgres_dsn: str) -> None:
        """A worker that leaves cleanly makes its items adoptable at once."""
        async with worker(postgres_dsn, lease_seconds=60) as j:
            me = j.worker_id
        async with sql(postgres_dsn) as conn:
            assert await conn.fetchval(
                "SELECT lease_until <= clock_timestamp() AND stopped_at IS NOT NULL FROM vidu_workers"
                " WHERE worker_id = $1",
                me,
            )


class TestClaims:
    """Claims take an item and a slot together, never beyond the organization's capacity."""

    @pytest.mark.parametrize("limit", [1, 5])
    async def test_32_concurrent_claimers_never_exceed_the_cap(self, postgres_dsn: str, limit: int) -> None:
        """32 workers on their own connections claim 120 items under a cap of 8, ``limit`` at a time:
        never more than 8 slots held, every item claimed and finished exactly once, no slot held at
        the end."""
        cap, count = 8, 120
        async with worker(postgres_dsn, load=items(count), capacity=cap, lease_seconds=60):
            pass
        claimed: list[str] = []
        in_flight = 0
        peak = 0
        peak_in_db = 0
        done = anyio.Event()
        full = anyio.Event()  # the first 8 claims hold their slots until all 8 are held

        async def claimer(number: int) -> None:
            nonlocal in_flight, peak
            async with worker(postgres_dsn, lease_seconds=60, max_connections=1, min_connections=1) as j:
                while True:
                    batch = await j.claim_many(fingerprint=fingerprint, limit=limit)
                    if not batch.claims:
                        if not batch.pending and await j.unfinished() == 0:
                            return
                        await j.wait_for_change(0.2)
                        continue
                    in_flight += len(batch.claims)
                    peak = max(peak, in_flight)
                    if in_flight == cap:
                        full.set()
                    claimed.extend(claim.key for claim in batch.claims)
                    assert all(claim.attempts == 1 for claim in batch.claims)
                    await full.wait()  # so the cap is surely reached once, whatever the machine's load
                    await anyio.sleep(0.01 + 0.002 * (number % 5))  # the tasks run a while
                    for claim in batch.claims:
                        in_flight -= 1
                        assert await j.finish(claim.key, state="success", task={"id": claim.key}, credits=1)

        async def sampler() -> None:
            nonlocal peak_in_db
            async with sql(postgres_dsn) as conn:
                while not done.is_set():
                    held = await conn.fetchval("SELECT count(*) FROM vidu_slots WHERE input_id IS NOT NULL")
                    peak_in_db = max(peak_in_db, held)
                    await anyio.sleep(0.002)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(sampler)
                async with anyio.create_task_group() as claimers:
                    for number in range(32):
                        claimers.start_soon(claimer, number)
                done.set()
        assert sorted(claimed) == [item.key for item in items(count)]
        # Never above the cap, and the cap was reached (the first claims wait for it): 32 claimers
        # contended for 8 slots.
        assert peak == cap
        assert 0 < peak_in_db <= cap
        assert await held_slots(postgres_dsn) == []
        async with sql(postgres_dsn) as conn:
            assert await conn.fetchval("SELECT count(*) FROM vidu_items WHERE state = 'success'") == count
            assert await conn.fetchval("SELECT max(attempts) FROM vidu_items") == 1
            assert await conn.fetchval("SELECT count(DISTINCT worker_id) FROM vidu_items") > 8 // limit

    async def test_claim_writes_the_intent(self, postgres_dsn: str) -> None:
        """The claim's row is this worker's intent with its fingerprint and a send_by ahead."""
        async with worker(postgres_dsn, load=items(2), capacity=1) as j:
            claim = await j.claim(fingerprint=fingerprint)
            assert claim is not None
            assert (claim.key, claim.index, claim.fingerprint, claim.attempts, claim.slot) == (
                "k0000",
                0,
                "vidu-async:fp-0",
                1,
                0,
            )
            assert claim.request == {**REQUEST, "seed": 0}
            stored = await row(postgres_dsn, "k0000")
            assert (stored["state"], stored["worker_id"], stored["fingerprint"]) == (
                STATE_INTENT,
                j.worker_id,
                "vidu-async:fp-0",
            )
            async with sql(postgres_dsn) as conn:
                ahead = await conn.fetchval(
                    "SELECT extract(epoch FROM send_by - clock_timestamp()) FROM vidu_items WHERE key = 'k0000'"
                )
            assert 0 < ahead <= 2.0
            assert claim.send_deadline <= anyio.current_time() + 2.0
            # The only slot is held: nothing more is claimed until it is freed.
            assert await j.claim(fingerprint=fingerprint) is None
            assert await j.finish("k0000", state="success")
            again = await j.claim(fingerprint=fingerprint)
            assert again is not None
            assert again.key == "k0001"
            assert await j.finish("k0001", state="failed", err_code="AuditFailed")
            assert await j.claim(fingerprint=fingerprint) is None  # nothing pending

    async def test_claim_many_takes_what_the_free_slots_allow(self, postgres_dsn: str) -> None:
        """One transaction claims several items in input order, never more than the free slots,
        each with its own slot and intent; ``pending`` says whether anything is left to claim."""
        async with worker(postgres_dsn, load=items(7), capacity=5) as j:
            first = await j.claim_many(fingerprint=fingerprint, limit=3)
            assert [c.key for c in first.claims] == ["k0000", "k0001", "k0002"]
            assert first.pending
            assert len({c.slot for c in first.claims}) == 3
            assert [c.fingerprint for c in first.claims] == [f"vidu-async:fp-{n}" for n in range(3)]
            second = await j.claim_many(fingerprint=fingerprint, limit=10)  # two slots left
            assert [c.key for c in second.claims] == ["k0003", "k0004"]
            assert sorted(slot for slot, _ in await held_slots(postgres_dsn)) == [0, 1, 2, 3, 4]
            full = await j.claim_many(fingerprint=fingerprint, limit=10)
            assert (full.claims, full.pending) == ((), True)  # items wait for a slot
            for claim in (*first.claims, *second.claims):
                stored = await row(postgres_dsn, claim.key)
                assert (stored["state"], stored["worker_id"], stored["attempts"]) == (
                    STATE_INTENT,
                    j.worker_id,
                    1,
                )
                assert await j.finish(claim.key, state="success")
            last = await j.claim_many(fingerprint=fingerprint, limit=10)
            assert [c.key for c in last.claims] == ["k0005", "k0006"]
            empty = await j.claim_many(fingerprint=fingerprint, limit=10)
            assert (empty.claims, empty.pending) == ((), False)  # nothing left to claim
            with pytest.raises(ValueError, match="limit"):
                await j.claim_many(fingerprint=fingerprint, limit=0)

    async def test_no_capacity_no_claim(self, postgres_dsn: str) -> None:
        async with worker(postgres_dsn, load=items(1)) as j:
            assert await j.claim(fingerprint=fingerprint) is None
            await j.set_capacity(0)
            assert await j.claim(fingerprint=fingerprint) is None

    async def test_an_expired_worker_claims_nothing(self, postgres_dsn: str) -> None:
        async with worker(postgres_dsn, load=items(1), capacity=1) as j:
            await expire(postgres_dsn, j.worker_id)
            with pytest.raises(LeaseLostError):
                await j.claim(fingerprint=fingerprint)
            assert (await row(postgres_dsn, "k0000"))["state"] == STATE_PENDING
            assert await held_slots(postgres_dsn) == []

    async def test_shrinking_never_steals_and_never_exceeds(self, postgres_dsn: str) -> None:
        """A shrink keeps held slots with their tasks and claims nothing until they fit."""
        async with worker(postgres_dsn, load=items(6), capacity=3) as j:
            claims = [await j.claim(fingerprint=fingerprint) for _ in range(3)]
            assert all(claims)
            await j.set_capacity(1)
            assert len(await held_slots(postgres_dsn)) == 3
            assert await j.capacity() == (1, 3)
            assert await j.claim(fingerprint=fingerprint) is None
            assert await j.finish("k0000", state="success")  # slot 0: below the new capacity
            assert await j.claim(fingerprint=fingerprint) is None  # slots 1 and 2 are still held
            assert await j.finish("k0001", state="success")
            assert await j.finish("k0002", state="success")
            claim = await j.claim(fingerprint=fingerprint)
            assert claim is not None
            assert claim.slot == 0
            assert await j.claim(fingerprint=fingerprint) is None
            await j.set_capacity(2)
            assert await j.claim(fingerprint=fingerprint) is not None

    async def test_release_gives_the_item_and_the_slot_back(self, postgres_dsn: str) -> None:
        async with worker(postgres_dsn, load=items(1), capacity=1) as j:
            claim = await j.claim(fingerprint=fingerprint)
            assert claim is not None
            assert await j.release(claim.key)
            assert (await row(postgres_dsn, claim.key))["state"] == STATE_PENDING
            assert await held_slots(postgres_dsn) == []
            again = await j.claim(fingerprint=fingerprint)
            assert again is not None
            assert again.attempts == 2

    async def test_notify_wakes_a_waiting_worker(self, postgres_dsn: str) -> None:
        """Finishing an item wakes another worker waiting for a slot; without a change it times out."""
        async with (
            worker(postgres_dsn, load=items(2), capacity=1, lease_seconds=30) as a,
            worker(postgres_dsn, lease_seconds=30) as b,
        ):
            claim = await a.claim(fingerprint=fingerprint)
            assert claim is not None
            assert await b.claim(fingerprint=fingerprint) is None
            assert not await b.wait_for_change(0.05)
            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:

                    async def finish_soon() -> None:
                        await anyio.sleep(0.1)
                        assert await a.finish(claim.key, state="success")

                    tg.start_soon(finish_soon)
                    assert await b.wait_for_change(4)
            assert await b.claim(fingerprint=fingerprint) is not None
            # A lost listening connection is replaced by the next wait.
            assert b._listener is not None
            await b._listener.close()
            assert not await b.wait_for_change(0.05)
            assert await a.finish(claim.key, state="success")  # rewritten: notifies again
            assert await b.wait_for_change(4)


class TestFrozenInATransaction:
    """A worker frozen (SIGSTOP, a stalled host) inside one of its transactions must not hold the
    batch's locks for ever: newcomers still start and the frozen one's items can be adopted."""

    async def test_a_frozen_claim_does_not_block_a_newcomer(self, postgres_dsn: str) -> None:
        """A claim's transaction left open (the org row taken FOR SHARE, as a worker frozen in its
        claim leaves it) is ended by the server after a lease's length (at least 10 s), so a newcomer's
        set_capacity (which updates that row) goes through instead of waiting for ever; the frozen
        worker finds its session gone when it wakes."""
        async with worker(postgres_dsn, load=items(4), capacity=2, lease_seconds=1.0) as frozen:
            held, thawed = anyio.Event(), anyio.Event()
            woke_to: list[str] = []

            async def freeze_in_a_claim() -> None:
                try:
                    async with frozen._connection() as conn, conn.transaction():
                        await conn.execute("SELECT 1 FROM vidu_orgs WHERE org = $1 FOR SHARE", frozen.org)
                        held.set()
                        await thawed.wait()  # frozen: the server sees the session idle in its transaction
                except JournalError as exc:
                    woke_to.append(str(exc))

            async with anyio.create_task_group() as tg:
                tg.start_soon(freeze_in_a_claim)
                await held.wait()
                with anyio.fail_after(40):  # the server's idle timeout is at least 10 s
                    async with worker(postgres_dsn, capacity=3) as newcomer:
                        assert await newcomer.capacity() == (3, 0)
                thawed.set()
        assert len(woke_to) == 1
        assert "connection is closed" in woke_to[0]


class TestFencing:
    """A write by a worker that does not own the item, or whose lease lapsed, changes nothing."""

    async def test_stale_worker_changes_nothing(
        self, postgres_dsn: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """After its lease lapsed and another worker adopted its item, the old worker's writes
        (task id, result, reissue, undecidable, release) are refused and reported."""
        async with (
            worker(postgres_dsn, load=items(1), capacity=1) as old,
            worker(postgres_dsn) as new,
        ):
            claim = await old.claim(fingerprint=fingerprint)
            assert claim is not None
            assert await old.submitted(claim.key, "task-1", 20)
            await expire(postgres_dsn, old.worker_id)
            before = await row(postgres_dsn, claim.key)
            # Even before anyone adopted the item, a lapsed lease writes nothing.
            caplog.set_level(logging.WARNING, logger="vidu_async")
            assert not await old.finish(claim.key, state="success")
            assert (await new.adopt_expired())[0].key == claim.key
            assert not await old.finish(claim.key, state="failed")
            assert not await old.mark_undecidable(claim.key, "why not")
            assert not await old.release(claim.key)
            with pytest.raises(LeaseLostError):
                await old.reissue_intent(claim.key)
            after = await row(postgres_dsn, claim.key)
            assert {
                k: v for k, v in after.items() if k not in ("worker_id", "adopted_from", "updated_at")
            } == {k: v for k, v in before.items() if k not in ("worker_id", "adopted_from", "updated_at")}
            assert (after["worker_id"], after["adopted_from"]) == (new.worker_id, old.worker_id)
            assert old.stats.refused_writes >= 4
            assert "was not written" in caplog.text
            assert await held_slots(postgres_dsn) == [(0, claim.key)]

    async def test_a_live_worker_cannot_write_anothers_item(self, postgres_dsn: str) -> None:
        async with (
            worker(postgres_dsn, load=items(1), capacity=1) as owner,
            worker(postgres_dsn) as other,
        ):
            claim = await owner.claim(fingerprint=fingerprint)
            assert claim is not None
            assert not await other.finish(claim.key, state="success")
            assert not await other.release(claim.key)
            with pytest.raises(JournalError, match="owned by worker"):
                await other.reissue_intent(claim.key)
            with pytest.raises(SendRefusedError, match="not worker"):
                await other.guard_send(claim.key)
            assert (await row(postgres_dsn, claim.key))["state"] == STATE_INTENT

    async def test_a_non_owners_answer_is_recorded(self, postgres_dsn: str) -> None:
        """A create answered to a worker that no longer owns the item goes to the orphan answers,
        and the adopter learns of it."""
        async with (
            worker(postgres_dsn, load=items(1), capacity=1) as old,
            worker(postgres_dsn) as new,
        ):
            claim = await old.claim(fingerprint=fingerprint)
            assert claim is not None
            await expire(postgres_dsn, old.worker_id)
            await overdue(postgres_dsn, claim.key)
            assert not await old.submitted(claim.key, "task-late", 20)
            old.record_submitted(claim.key, "task-later")  # the queued form, too
            await old.flush()
            assert old.stats.orphan_answers == 2
            async with sql(postgres_dsn) as conn:
                orphans = await conn.fetch(
                    "SELECT task_id, worker_id, owner_id FROM vidu_orphan_answers ORDER BY answer_id"
                )
            assert [tuple(o) for o in orphans] == [
                ("task-late", old.worker_id, old.worker_id),
                ("task-later", old.worker_id, old.worker_id),
            ]
            assert (await row(postgres_dsn, claim.key))["task_id"] is None
            (adopted,) = await new.adopt_expired()
            assert (adopted.action, adopted.answered_task_id) == ("reconcile", "task-later")
            assert (await new.summary()).orphan_answers == 2


class TestSendGuard:
    """The guard right before the POST."""

    async def test_a_fresh_claim_may_be_sent(self, postgres_dsn: str) -> None:
        async with worker(postgres_dsn, load=items(1), capacity=1) as j:
            claim = await j.claim(fingerprint=fingerprint)
            assert claim is not None
            await j.guard_send(claim.key)
            assert await j.may_send(claim.key)

    async def test_a_create_after_send_by_is_refused(self, postgres_dsn: str) -> None:
        """Past send_by on the database's clock: refused, even though the local clock says yes."""
        async with worker(postgres_dsn, load=items(1), capacity=1, send_window=30, lease_seconds=30) as j:
            claim = await j.claim(fingerprint=fingerprint)
            assert claim is not None
            await overdue(postgres_dsn, claim.key)
            with pytest.raises(SendRefusedError, match="send_by") as caught:
                await j.guard_send(claim.key)
            assert caught.value.key == claim.key
            assert not await j.may_send(claim.key)

    async def test_the_local_deadline_refuses_without_the_database(self, postgres_dsn: str) -> None:
        """Past the claim's monotonic send deadline (here: a short window that ran out) it is refused."""
        async with worker(
            postgres_dsn, load=items(1), capacity=1, send_window=0.3, send_margin=0.1, lease_seconds=30
        ) as j:
            claim = await j.claim(fingerprint=fingerprint)
            assert claim is not None
            await anyio.sleep(max(0.0, claim.send_deadline - anyio.current_time()))
            with pytest.raises(SendRefusedError, match="send_by"):
                await j.guard_send(claim.key)

    async def test_a_lapsed_lease_is_refused(self, postgres_dsn: str) -> None:
        async with worker(postgres_dsn, load=items(1), capacity=1, send_window=30, lease_seconds=30) as j:
            claim = await j.claim(fingerprint=fingerprint)
            assert claim is not None
            await expire(postgres_dsn, j.worker_id)
            with pytest.raises(SendRefusedError, match="lease"):
                await j.guard_send(claim.key)
            assert j.lease_lost

    async def test_the_local_lease_deadline_refuses(self, postgres_dsn: str) -> None:
        """A worker frozen past its own lease refuses by its monotonic clock alone."""
        async with worker(
            postgres_dsn, load=items(1), capacity=1, send_window=30, lease_seconds=0.5, send_margin=0.1
        ) as j:
            claim = await j.claim(fingerprint=fingerprint)
            assert claim is not None
            await anyio.sleep(max(0.0, j.lease_deadline - anyio.current_time()))
            with pytest.raises(SendRefusedError, match="lease deadline"):
                await j.guard_send(claim.key)


class TestAdoption:
    """A dead worker's items are taken over with their slots, never re-sent blindly."""

    async def test_adoption_keeps_the_slot_and_finishing_frees_it_once(self, postgres_dsn: str) -> None:
        async with (
            worker(postgres_dsn, load=items(3), capacity=2) as dead,
            worker(postgres_dsn) as adopter,
            worker(postgres_dsn) as rival,
        ):
            running = await dead.claim(fingerprint=fingerprint)
            sending = await dead.claim(fingerprint=fingerprint)
            assert running is not None
            assert sending is not None
            assert await dead.submitted(running.key, "task-0", 25)
            await expire(postgres_dsn, dead.worker_id)
            slots_before = await held_slots(postgres_dsn)
            assert len(slots_before) == 2

            # The intent's send_by is still ahead: only the task is adopted, and only once.
            adopted = await adopter.adopt_expired()
            assert [(a.key, a.action, a.task_id, a.previous_worker) for a in adopted] == [
                (running.key, "rewatch", "task-0", dead.worker_id)
            ]
            assert adopted[0].slot == running.slot
            assert await rival.adopt_expired() == []
            assert await held_slots(postgres_dsn) == slots_before
            assert await adopter.claim(fingerprint=fingerprint) is None  # both slots stay held

            await overdue(postgres_dsn, sending.key)
            (reconcile,) = await adopter.adopt_expired()
            assert (reconcile.key, reconcile.action, reconcile.fingerprint, reconcile.slot) == (
                sending.key,
                "reconcile",
                sending.fingerprint,
                sending.slot,
            )
            assert await held_slots(postgres_dsn) == slots_before

            assert await adopter.finish(running.key, state="success", task=TASK)
            remaining = [(sending.slot, sending.key)]
            assert await held_slots(postgres_dsn) == remaining
            # Finishing again (the result rewritten) frees nothing more; a non-owner writes nothing.
            assert await adopter.finish(running.key, state="success", task=TASK)
            assert not await rival.finish(running.key, state="failed")
            assert await held_slots(postgres_dsn) == remaining
            assert (await row(postgres_dsn, running.key))["state"] == "success"
            async with sql(postgres_dsn) as conn:
                assert await conn.fetchval("SELECT count(*) FROM vidu_slots") == 2

    async def test_concurrent_adopters_take_each_item_once(self, postgres_dsn: str) -> None:
        """Eight adopters at once share a dead worker's 40 tasks: each adopted by exactly one."""
        async with worker(postgres_dsn, load=items(40), capacity=40) as dead:
            for _ in range(40):
                claim = await dead.claim(fingerprint=fingerprint)
                assert claim is not None
                assert await dead.submitted(claim.key, "task-" + claim.key)
            await expire(postgres_dsn, dead.worker_id)
        taken: list[str] = []

        async def adopt(j: PostgresJournal) -> None:
            for item in await j.adopt_expired(limit=7):
                assert item.action == "rewatch"
                taken.append(item.key)

        # All open until every one adopted: a worker that leaves hands its items on at once.
        async with contextlib.AsyncExitStack() as stack:
            adopters = [
                await stack.enter_async_context(worker(postgres_dsn, lease_seconds=30)) for _ in range(8)
            ]
            async with anyio.create_task_group() as tg:
                for j in adopters:
                    tg.start_soon(adopt, j)
        assert sorted(taken) == sorted(set(taken))
        assert len(taken) == 40
        assert len(await held_slots(postgres_dsn)) == 40

    async def test_reconcile_found(self, postgres_dsn: str) -> None:
        async with worker(postgres_dsn, load=items(1), capacity=1) as dead, worker(postgres_dsn) as adopter:
            claim = await dead.claim(fingerprint=fingerprint)
            assert claim is not None
            await expire(postgres_dsn, dead.worker_id)
            await overdue(postgres_dsn, claim.key)
            (item,) = await adopter.adopt_expired()
            assert await adopter.record_reconciled(item.key, "task-found", 25)
            stored = await row(postgres_dsn, item.key)
            assert (stored["state"], stored["task_id"], stored["worker_id"]) == (
                STATE_SUBMITTED,
                "task-found",
                adopter.worker_id,
            )

    async def test_reconcile_absent_reissues_with_the_same_fingerprint(self, postgres_dsn: str) -> None:
        async with (
            worker(postgres_dsn, load=items(1), capacity=1) as dead,
            worker(postgres_dsn, send_window=30, lease_seconds=30) as adopter,
        ):
            claim = await dead.claim(fingerprint=fingerprint)
            assert claim is not None
            await expire(postgres_dsn, dead.worker_id)
            await overdue(postgres_dsn, claim.key)
            (item,) = await adopter.adopt_expired()
            again = await adopter.reissue_intent(item.key)
            assert isinstance(again, Claim)
            assert (again.fingerprint, again.attempts, again.slot) == (claim.fingerprint, 2, claim.slot)
            await adopter.guard_send(item.key)  # a new send_by: it may be sent
            assert await held_slots(postgres_dsn) == [(0, claim.key)]

    async def test_undecidable_keeps_the_slot_and_is_reported(self, postgres_dsn: str) -> None:
        async with worker(postgres_dsn, load=items(1), capacity=1) as dead, worker(postgres_dsn) as adopter:
            claim = await dead.claim(fingerprint=fingerprint)
            assert claim is not None
            await expire(postgres_dsn, dead.worker_id)
            await overdue(postgres_dsn, claim.key)
            summary = await adopter.summary()
            assert [(s.key, s.reason) for s in summary.stuck] == [
                (claim.key, "owner's lease lapsed, intent past send_by")
            ]
            (item,) = await adopter.adopt_expired()
            assert await adopter.mark_undecidable(item.key, "the task list did not answer")
            summary = await adopter.summary()
            assert [(s.key, s.reason) for s in summary.stuck] == [
                (claim.key, "undecidable: the task list did not answer")
            ]
            assert (summary.slots_held, summary.capacity) == (1, 1)

    async def test_an_expired_adopter_adopts_nothing(self, postgres_dsn: str) -> None:
        async with worker(postgres_dsn, load=items(1), capacity=1) as dead, worker(postgres_dsn) as late:
            claim = await dead.claim(fingerprint=fingerprint)
            assert claim is not None
            assert await dead.submitted(claim.key, "task-0")
            await expire(postgres_dsn, dead.worker_id)
            await expire(postgres_dsn, late.worker_id)
            with pytest.raises(LeaseLostError):
                await late.adopt_expired()
            assert (await row(postgres_dsn, claim.key))["worker_id"] == dead.worker_id


class TestReopen:
    """A re-run tries again what ended without a task, and nothing else."""

    async def test_only_refusals_without_a_task_are_reopened(self, postgres_dsn: str) -> None:
        async with worker(postgres_dsn, load=items(4), capacity=4) as j:
            claims = [await j.claim(fingerprint=fingerprint) for _ in range(4)]
            assert all(c is not None for c in claims)
            assert await j.finish(
                "k0000", state="error", error="HTTP 401 Unauthorized", err_code="Unauthorized"
            )
            assert await j.submitted("k0001", "task-1")
            assert await j.finish("k0001", state="error", error="timed out", err_code="WaitTimeoutError")
            assert await j.finish("k0002", state="success", task=TASK)
            assert await j.reopen_refused() == 1
            assert await j.reopen_refused() == 0
            reopened = await row(postgres_dsn, "k0000")
            assert (reopened["state"], reopened["finished"], reopened["worker_id"], reopened["error"]) == (
                STATE_PENDING,
                False,
                None,
                None,
            )
            assert reopened["attempts"] == 1  # the count goes on
            assert (await row(postgres_dsn, "k0001"))["state"] == "error"  # it has a task: kept
            assert (await row(postgres_dsn, "k0002"))["state"] == "success"
            again = await j.claim(fingerprint=fingerprint)
            assert again is not None
            assert (again.key, again.attempts) == ("k0000", 2)
            await expire(postgres_dsn, j.worker_id)
            with pytest.raises(LeaseLostError):
                await j.reopen_refused()


class TestRewatch:
    """A re-run takes back, with a slot each, the items whose task outlived their wait."""

    async def test_ended_tasks_are_taken_back_as_slots_allow(self, postgres_dsn: str) -> None:
        async with worker(postgres_dsn, load=items(5), capacity=5, lease_seconds=60) as j:
            for _ in range(5):
                assert await j.claim(fingerprint=fingerprint) is not None
            for n in range(3):
                assert await j.submitted(f"k000{n}", f"task-{n}")
                assert await j.finish(
                    f"k000{n}", state="error", error="timed out", err_code="WaitTimeoutError"
                )
            assert await j.finish(
                "k0003", state="error", error="HTTP 401", err_code="Unauthorized"
            )  # no task
            assert await j.submitted("k0004", "task-4")
            assert await j.finish("k0004", state="success", task=TASK)
            await j.set_capacity(2)
            taken = await j.rewatch_ended_tasks(limit=10)  # two free slots
            assert [(t.key, t.action, t.task_id) for t in taken] == [
                ("k0000", "rewatch", "task-0"),
                ("k0001", "rewatch", "task-1"),
            ]
            assert sorted(slot for slot, _ in await held_slots(postgres_dsn)) == sorted(t.slot for t in taken)
            for key in ("k0000", "k0001"):
                stored = await row(postgres_dsn, key)
                assert (stored["state"], stored["finished"], stored["worker_id"], stored["error"]) == (
                    STATE_SUBMITTED,
                    False,
                    j.worker_id,
                    None,
                )
            assert await j.rewatch_ended_tasks(limit=10) == []  # no slot left: k0002 waits
            assert (await row(postgres_dsn, "k0002"))["finished"]
            assert await j.finish("k0000", state="success", task=TASK)
            (last,) = await j.rewatch_ended_tasks(limit=10)
            assert last.key == "k0002"
            assert (await row(postgres_dsn, "k0003"))["state"] == "error"  # no task: reopen_refused's
            with pytest.raises(ValueError, match="limit"):
                await j.rewatch_ended_tasks(limit=0)


class TestSummary:
    async def test_counts(self, postgres_dsn: str) -> None:
        """Per-state counts, this batch's workers with their items, slots; nothing stuck."""
        async with (
            journal(postgres_dsn, worker_name="elsewhere") as other,
            worker(postgres_dsn, load=items(5), capacity=3, worker_name="pod-a") as j,
        ):
            await other.load("another batch", items(1))
            first = await j.claim(fingerprint=fingerprint)
            second = await j.claim(fingerprint=fingerprint)
            assert first is not None
            assert second is not None
            assert await j.submitted(second.key, "task-1")
            await j.claim(fingerprint=fingerprint)
            assert await j.finish(first.key, state="success")
            summary = await j.summary()
        assert summary.input_id == INPUT
        assert summary.loaded == 5
        assert dict(summary.states) == {"intent": 1, "pending": 2, "submitted": 1, "success": 1}
        assert summary.unfinished == 4
        assert (summary.capacity, summary.slots_held) == (3, 2)
        (me,) = summary.workers  # not the worker of the other batch
        assert (me.name, me.live, dict(me.items)) == ("pod-a", True, {"intent": 1, "submitted": 1})
        assert summary.stuck == ()


class TestProtocol:
    """The Journal protocol: a single process uses it as it uses SQLite."""

    async def test_is_a_journal(self, postgres_dsn: str) -> None:
        j: Journal = journal(postgres_dsn)
        assert isinstance(j, PostgresJournal)

    async def test_round_trip(self, postgres_dsn: str) -> None:
        """Intent, submitted and result read back in entries(), ordered by index, across a reopen."""
        async with journal(postgres_dsn) as j:
            await j.open_input(INPUT)
            for index, key in [(2, "c"), (0, "a"), (1, "b")]:
                await j.record_intent(
                    key=key, index=index, request=REQUEST, request_hash="hash-" + key, fingerprint="fp-" + key
                )
            j.record_submitted("a", "task-1", 20)
            j.record_result(
                "a", state="success", task=TASK, attempts=3, files=[Path("videos/task-1-c-1.mp4")]
            )
            j.record_submitted("b", "task-2")
            j.record_result("bad", state="invalid", error="duration: must be 5", index=3, request={"x": 1})
            j.rename_key("c", "c2")
            entries = await j.entries()
        assert list(entries) == ["a", "b", "c2", "bad"]
        a, b, c, bad = entries.values()
        assert (a.state, a.finished, a.task_id, a.credits, a.attempts, a.task, a.files) == (
            "success",
            True,
            "task-1",
            20,
            3,
            TASK,
            (str(Path("videos/task-1-c-1.mp4")),),
        )
        assert (b.state, b.task_id, b.finished, b.fingerprint, b.request) == (
            STATE_SUBMITTED,
            "task-2",
            False,
            "fp-b",
            REQUEST,
        )
        assert (c.key, c.index, c.state, c.attempts, c.endpoint) == (
            "c2",
            2,
            STATE_INTENT,
            1,
            "reference2video",
        )
        assert (bad.index, bad.state, bad.finished, bad.request, bad.request_hash) == (
            3,
            "invalid",
            True,
            {"x": 1},
            "",
        )
        assert 0 < a.created_at <= a.updated_at
        async with journal(postgres_dsn) as again:
            await again.open_input(INPUT)
            assert await again.entries() == entries

    async def test_reintent_is_a_new_attempt(self, postgres_dsn: str) -> None:
        async with journal(postgres_dsn) as j:
            await j.open_input(INPUT)
            await j.record_intent(key="a", index=0, request=REQUEST, request_hash="h", fingerprint="fp-1")
            j.record_submitted("a", "task-1", 20)
            j.record_result("a", state="failed", err_code="SystemError")
            await j.record_intent(key="a", index=0, request=REQUEST, request_hash="h", fingerprint="fp-2")
            entry = (await j.entries())["a"]
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

    async def test_finished_items_stay_finished(self, postgres_dsn: str) -> None:
        async with journal(postgres_dsn) as j:
            await j.open_input(INPUT)
            await j.record_intent(key="a", index=0, request=REQUEST, request_hash="h", fingerprint="fp")
            j.record_submitted("a", "task-1")
            j.record_result("a", state="success", task=TASK)
            j.record_submitted("a", "task-1", 20)
            entry = (await j.entries())["a"]
        assert (entry.state, entry.finished, entry.credits) == ("success", True, 20)

    async def test_key_reused_with_another_request(self, postgres_dsn: str) -> None:
        async with journal(postgres_dsn) as j:
            await j.open_input(INPUT)
            await j.record_intent(key="a", index=0, request=REQUEST, request_hash="h1", fingerprint="fp")
            with pytest.raises(JournalError, match="different request"):
                await j.record_intent(key="a", index=5, request=REQUEST, request_hash="h2", fingerprint="fp")

    async def test_an_item_of_a_live_worker_is_refused(self, postgres_dsn: str) -> None:
        """Two processes on one batch through the protocol: the second may not take the first's item
        while its lease is live, nor before its send_by once it lapsed; then it may."""
        async with journal(postgres_dsn) as first, journal(postgres_dsn) as second:
            await first.open_input(INPUT)
            await second.open_input(INPUT)
            await first.record_intent(key="a", index=0, request=REQUEST, request_hash="h", fingerprint="fp")
            with pytest.raises(JournalError, match="whose lease is live"):
                await second.record_intent(
                    key="a", index=0, request=REQUEST, request_hash="h", fingerprint="fp"
                )
            await expire(postgres_dsn, first.worker_id)
            # Lapsed, but the intent may still be sent until its send_by.
            with pytest.raises(JournalError, match="until its send_by"):
                await second.record_intent(
                    key="a", index=0, request=REQUEST, request_hash="h", fingerprint="fp"
                )
            await overdue(postgres_dsn, "a")
            await second.record_intent(key="a", index=0, request=REQUEST, request_hash="h", fingerprint="fp")
            assert (await row(postgres_dsn, "a"))["worker_id"] == second.worker_id
            with pytest.raises(LeaseLostError):
                await first.record_intent(
                    key="b", index=1, request=REQUEST, request_hash="h", fingerprint="fp"
                )

    async def test_odd_text_is_stored_escaped(self, postgres_dsn: str) -> None:
        """A lone surrogate or a NUL (a server's message, say) is stored as its JSON escape rather
        than failing the batch's transaction."""
        async with journal(postgres_dsn) as j:
            await j.open_input(INPUT)
            odd = {**REQUEST, "prompt": "bad \udc80 and nul \x00"}
            await j.record_intent(key="k\udc80", index=0, request=odd, request_hash="h", fingerprint="fp")
            j.record_result("k\udc80", state="failed", error="reason: \ud800 \x00", task={"id": "t\udfff"})
            entries = await j.entries()
        (entry,) = entries.values()
        assert entry.key == "k\\udc80"
        assert entry.error == "reason: \\ud800 \\u0000"
        assert entry.request["prompt"] == "bad \udc80 and nul \x00"  # JSON escapes mean the same
        assert entry.task == {"id": "t\udfff"}

    async def test_unknown_key(self, postgres_dsn: str) -> None:
        async with journal(postgres_dsn) as j:
            await j.open_input(INPUT)
            j.record_submitted("ghost", "task-9")
            await j.flush()
            assert await j.get("ghost") is None
            assert j.stats.unknown_keys == 1

    async def test_use_outside_the_block(self, postgres_dsn: str) -> None:
        j = journal(postgres_dsn)
        with pytest.raises(JournalError, match="new"):
            await j.entries()
        async with j:
            await j.open_input(INPUT)
        with pytest.raises(JournalError, match="closed"):
            j.record_submitted("a", "t")


class TestSchema:
    """The schema is versioned, migrated step by step, and a newer one is refused."""

    async def test_fresh_database_gets_the_current_schema(self, postgres_dsn: str) -> None:
        async with journal(postgres_dsn) as j:
            assert await j.schema_version() == SCHEMA_VERSION
        async with journal(postgres_dsn) as j:  # a second open changes nothing
            assert await j.schema_version() == SCHEMA_VERSION

    async def test_newer_schema_is_refused(self, postgres_dsn: str) -> None:
        async with journal(postgres_dsn):
            pass
        async with sql(postgres_dsn) as conn:
            await conn.execute("UPDATE vidu_schema_version SET version = 99, written_by = 'vidu-async 9.0'")
        with pytest.raises(
            JournalError,
            match=rf"newer vidu-async \(vidu-async 9.0\), schema 99.*reads schema {SCHEMA_VERSION}",
        ):
            async with journal(postgres_dsn):
                pass
        async with sql(postgres_dsn) as conn:
            assert await conn.fetchval("SELECT version FROM vidu_schema_version") == 99

    async def test_migration_to_the_next_version(self, postgres_dsn: str) -> None:
        """A step from N to N+1 runs once (four workers at once), keeps the data, and records N+1."""
        async with worker(postgres_dsn, load=items(2), capacity=1) as j:
            assert await j.claim(fingerprint=fingerprint) is not None
        steps = (*_postgres._MIGRATIONS, ("ALTER TABLE vidu_items ADD COLUMN note text NOT NULL DEFAULT ''",))
        connections = [await asyncpg.connect(postgres_dsn) for _ in range(4)]
        try:
            found = await _gather([lambda c=c: migrate(c, migrations=steps) for c in connections])
        finally:
            for conn in connections:
                await conn.close()
        now = SCHEMA_VERSION
        assert sorted(found) == [now, now + 1, now + 1, now + 1]
        async with sql(postgres_dsn) as conn:
            assert await conn.fetchval("SELECT version FROM vidu_schema_version") == now + 1
            assert await conn.fetchval("SELECT count(*) FROM vidu_items WHERE note = ''") == 2
            assert await conn.fetchval("SELECT state FROM vidu_items WHERE key = 'k0000'") == STATE_INTENT

    async def test_a_schema_1_database_is_migrated_and_its_batch_goes_on(self, postgres_dsn: str) -> None:
        """A database written by schema 1 (a batch loaded whole, an item claimed) is brought to the
        current schema when a journal opens it; the batch stays loaded and its work goes on."""
        async with sql(postgres_dsn) as conn:
            assert await migrate(conn, migrations=_postgres._MIGRATIONS[:1]) == 0
            await conn.execute(
                "INSERT INTO vidu_batches (input_id, items, loaded_at) VALUES ($1, 2, now())", INPUT
            )
            await conn.execute(
                "INSERT INTO vidu_items (input_id, key, idx, request, request_hash, state)"
                " VALUES ($1, 'k0000', 0, '{}', 'h0', 'pending'), ($1, 'k0001', 1, '{}', 'h1', 'pending')",
                INPUT,
            )
        async with worker(postgres_dsn, capacity=1) as j:
            assert await j.schema_version() == SCHEMA_VERSION
            assert await j.loaded()
            assert await j.load(INPUT, items(5)) == 0  # loaded under schema 1: nothing added
            claim = await j.claim(fingerprint=fingerprint)
            assert claim is not None
            assert claim.key == "k0000"
            assert await j.unfinished() == 2

    async def test_a_failed_step_changes_nothing(self, postgres_dsn: str) -> None:
        async with journal(postgres_dsn):
            pass
        steps = (
            *_postgres._MIGRATIONS,
            ("ALTER TABLE vidu_items ADD COLUMN note text", "SELECT no_such_function()"),
        )
        async with sql(postgres_dsn) as conn:
            with pytest.raises(asyncpg.UndefinedFunctionError):
                await migrate(conn, migrations=steps)
            assert await conn.fetchval("SELECT version FROM vidu_schema_version") == SCHEMA_VERSION
            assert not await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'vidu_items' AND column_name = 'note')"
            )


class TestSecrets:
    """The DSN's password never shows."""

    @pytest.mark.parametrize(
        ("dsn", "shown"),
        [
            ("postgresql://vidu:s3cr%40t@db.example:5432/vidu", "postgresql://vidu:***@db.example:5432/vidu"),
            ("postgres://vidu@db/vidu", "postgres://vidu@db/vidu"),
            ("postgresql:///vidu?host=/tmp&password=s3cr3t", "postgresql:///vidu?host=/tmp&password=***"),
            ("host=db user=vidu password=s3cr3t dbname=vidu", "host=db user=vidu password=*** dbname=vidu"),
            ("host=db password='s3 cr3t' dbname=vidu", "host=db password=*** dbname=vidu"),
        ],
    )
    def test_redact(self, dsn: str, shown: str) -> None:
        assert redact_dsn(dsn) == shown

    async def test_password_never_appears(self, postgres_dsn: str, caplog: pytest.LogCaptureFixture) -> None:
        """Not in the repr, the log, nor an error (a database that does not exist, a socket that
        does not exist)."""
        caplog.set_level(logging.DEBUG)
        secret = "pa55-word-xyzzy"
        with_password = postgres_dsn.replace("postgresql://postgres@", f"postgresql://postgres:{secret}@")
        j = journal(with_password)
        assert secret not in repr(j)
        assert secret not in j.dsn
        async with j:
            await j.open_input(INPUT)
            assert secret not in repr(j)
        missing_db = with_password.replace("/vidu_test_", "/nothing_here_", 1)
        missing_socket = with_password.split("?")[0] + f"?host=/nonexistent-dir&password={secret}"
        for dsn in (missing_db, missing_socket):
            with pytest.raises(JournalError) as caught:
                async with journal(dsn, connect_timeout=3):
                    pass
            assert secret not in str(caught.value)
            assert secret not in repr(caught.value)
            assert secret not in caught.value.path
            assert caught.value.__cause__ is None
        assert secret not in caplog.text


class TestWithoutAsyncpg:
    def test_importing_vidu_async_needs_no_asyncpg_and_using_the_class_names_the_extra(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(__import__("sys").modules, "asyncpg", None)
        assert vidu.PostgresJournal is PostgresJournal
        with pytest.raises(ConfigurationError, match=r"vidu-async\[postgres\]"):
            PostgresJournal("postgresql:///x")

    def test_no_asyncpg_at_import_time(self) -> None:
        """A fresh interpreter imports vidu_async without loading asyncpg."""
        import subprocess
        import sys

        code = "import sys, vidu_async; assert 'asyncpg' not in sys.modules, 'asyncpg imported'"
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def _gather(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` concurrently; their results in order."""
    results: list[Any] = [None] * len(calls)

    async def run(position: int) -> None:
        results[position] = await calls[position]()

    async with anyio.create_task_group() as tg:
        for position in range(len(calls)):
            tg.start_soon(run, position)
    return results
