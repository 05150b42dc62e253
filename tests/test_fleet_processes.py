"""Many workers, one batch, for real: the emulator in its own process, CLI workers in theirs, a
PostgreSQL journal between them, and workers killed, frozen and resumed while they work.

The emulator's counters come from ``GET /_emulator/stats`` (``vidu-async emulator
--stats-endpoint``), the only window a test has on a server in another process. Workers are found
in the database by their process id (``vidu_workers.pid``), so a crash can be aimed at a moment
the database shows: right after an intent, right after a create's answer.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import aiohttp
import anyio
import asyncpg
import pytest
from conftest import small_request

import vidu_async as vidu
from vidu_async.emulator import Emulator, EmulatorConfig
from vidu_async.emulator._app import STATS_PATH

ROOT: Final = Path(__file__).resolve().parent.parent
EXAMPLES: Final = ROOT / "examples"
_LISTENING: Final = re.compile(r"listening on (http://\S+)")
#: The kinds whose create carries no ``payload``: an intent of theirs cut short can never be looked
#: up, so the engine reports it undecidable (its slot kept) rather than send it again. A test of
#: crashes at arbitrary moments leaves them out; the others are all here.
PAYLOADLESS: Final = frozenset({"lip-sync", "text2audio", "timing2audio"})
#: The organization's concurrency, and every worker's ``--max-in-flight``.
CAP: Final = 8
ITEMS: Final = 216
#: Worker leases, seconds (a send window of twice that: the CLI's ``--lease``).
LEASE: Final = 3.0
SEED: Final = 1414


async def fetch_stats(origin: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(origin + STATS_PATH) as response:
        return response.status, await response.json(content_type=None)


@contextlib.contextmanager
def emulator_process(*args: str) -> Iterator[str]:
    """``python -m vidu_async emulator --port 0 ARGS`` in its own process; yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "vidu_async", "emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        url = None
        for line in process.stdout:
            if found := _LISTENING.search(line):
                url = found.group(1)
                break
        assert url is not None, "the emulator did not start"
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def job_lines(count: int) -> list[str]:
    """``count`` distinct job lines, cycling through a line of every kind of ``examples/jobs.jsonl``
    that carries a ``payload``: each its own key, and its own prompt, seed or link."""
    bases = []
    for line in (EXAMPLES / "jobs.jsonl").read_text(encoding="utf-8").splitlines():
        body = json.loads(line)
        if body.get("endpoint", "reference2video") in PAYLOADLESS:
            continue
        body.pop("payload", None)  # the caller's own payload would be every copy's fingerprint
        bases.append(body)
    lines = []
    for i in range(count):
        body = json.loads(json.dumps(bases[i % len(bases)]))
        body["key"] = f"{body['key']}-{i:04}"
        if "prompt" in body:
            body["prompt"] += f" Take {i}."
        elif "seed" in body:
            body["seed"] = i + 1
        elif not _vary_first_link(body, f"?take={i}"):  # only local files: one becomes a link
            field = next(k for k, v in body.items() if isinstance(v, str) and v.startswith("media/"))
            body[field] = f"https://example.com/{body[field]}?take={i}"
        lines.append(json.dumps(body))
    return lines


def _vary_first_link(value: Any, suffix: str) -> bool:
    """Append ``suffix`` to the first ``https://`` string inside ``value``; whether one was found."""
    items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
    for where, item in items:
        if isinstance(item, str) and item.startswith("https://"):
            value[where] = item + suffix
            return True
        if isinstance(item, dict | list) and _vary_first_link(item, suffix):
            return True
    return False


def write_jobs(folder: Path, count: int) -> Path:
    """The job file (and the local media its lines name) in ``folder``."""
    shutil.copytree(EXAMPLES / "media", folder / "media")
    jobs = folder / "jobs.jsonl"
    jobs.write_text("".join(line + "\n" for line in job_lines(count)), encoding="utf-8")
    return jobs


def rows(out: Path) -> list[dict[str, Any]]:
    path = out / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class Fleet:
    """CLI workers of one shared batch, each in its own process with its own ``--out``."""

    def __init__(self, folder: Path, jobs: Path, url: str, dsn: str, env: dict[str, str]) -> None:
        self.folder = folder
        self.jobs = jobs
        self.url = url
        self.dsn = dsn
        self.env = env
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.killed: set[str] = set()

    def out(self, name: str) -> Path:
        return self.folder / name

    def start(self, name: str) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [
                sys.executable, "-m", "vidu_async", "run", str(self.jobs), "--out", str(self.out(name)),
                "--journal", self.dsn, "--max-in-flight", str(CAP), "--lease", str(LEASE),
                "--worker-name", name, "--base-url", self.url, "--api-key", "vda_emulator_key", "--plain",
            ],
            stdout=log, stderr=subprocess.STDOUT, env=self.env,
        )  # fmt: skip
        log.close()
        self.processes[name] = process
        return process

    def signal(self, name: str, sig: signal.Signals) -> None:
        self.processes[name].send_signal(sig)
        if sig is signal.SIGKILL:
            self.processes[name].wait()
            self.killed.add(name)

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    async def wait_all(self, within: float) -> dict[str, int]:
        with anyio.fail_after(within):
            while any(p.poll() is None for p in self.processes.values()):  # noqa: ASYNC110 - other processes
                await anyio.sleep(0.2)
        return {name: p.returncode for name, p in self.processes.items()}

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait()


async def worker_id(
    conn: asyncpg.Connection[Any], process: subprocess.Popen[bytes], within: float = 20
) -> int:
    """The worker id a process registered with."""
    with anyio.fail_after(within):
        while True:
            try:
                found = await conn.fetchval(
                    "SELECT worker_id FROM vidu_workers WHERE pid = $1 ORDER BY worker_id DESC LIMIT 1",
                    process.pid,
                )
            except asyncpg.UndefinedTableError:  # the first worker has not created the schema yet
                found = None
            if found is not None:
                return int(found)
            await anyio.sleep(0.02)


async def first_row(conn: asyncpg.Connection[Any], query: str, *args: object, within: float = 15) -> Any:
    """Poll ``query`` until it returns a row (every few milliseconds, to catch a short window)."""
    with anyio.fail_after(within):
        while True:
            row = await conn.fetchrow(query, *args)
            if row is not None:
                return row
            await anyio.sleep(0.003)


#: An item of the worker holding a bare intent: claimed, its create not answered.
BARE_INTENT: Final = (
    "SELECT key FROM vidu_items WHERE worker_id = $1 AND state = 'intent' AND task_id IS NULL"
    " AND NOT finished AND updated_at < clock_timestamp() - make_interval(secs => $2) LIMIT 1"
)
#: An item of the worker whose create was answered a moment ago, its task not finished.
JUST_ANSWERED: Final = (
    "SELECT key FROM vidu_items WHERE worker_id = $1 AND state = 'submitted' AND task_id IS NOT NULL"
    " AND NOT finished AND updated_at > clock_timestamp() - interval '150 milliseconds' LIMIT 1"
)


async def chaos(folder: Path, dsn: str, *, guard: bool) -> dict[str, Any]:
    """The scenario: 4 workers on one batch, crashes and a freeze, then a final re-run; returns
    what the checks need."""
    rng = random.Random(SEED)
    jobs = write_jobs(folder, ITEMS)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("VIDU_ASYNC_UNSAFE_NO_SEND_GUARD", None)
    if not guard:
        env["VIDU_ASYNC_UNSAFE_NO_SEND_GUARD"] = "1"
    faults = ["--fault", "endpoints=create", "--fault", "operation_in_process=0.2"]
    emulator = ["--stats-endpoint", "--concurrency", str(CAP), "--processing-time", "0.3", *faults]
    with emulator_process(*emulator) as url:
        fleet = Fleet(folder, jobs, url, dsn, env)
        conn = await asyncpg.connect(dsn)
        try:
            started = anyio.current_time()
            for i in range(4):
                fleet.start(f"w{i}")
            ids = {name: await worker_id(conn, p) for name, p in fleet.processes.items()}
            with anyio.fail_after(60):
                while (await conn.fetchval("SELECT count(*) FROM vidu_items WHERE finished") or 0) < 12:  # noqa: ASYNC110 - another process's progress
                    await anyio.sleep(0.05)

            # A crash right after an intent was journaled (its create held, or about to go out).
            await first_row(conn, BARE_INTENT, ids["w0"], 0.0)
            fleet.signal("w0", signal.SIGKILL)
            fleet.start("w4")
            # A crash right after a create's answer was recorded.
            await first_row(conn, JUST_ANSWERED, ids["w1"])
            fleet.signal("w1", signal.SIGKILL)
            fleet.start("w5")
            ids["w4"] = await worker_id(conn, fleet.processes["w4"])
            # Freeze a worker while it holds an intent whose create waits (an OperationInProcess
            # backoff): checked once it is frozen, against the emulator's tasks (a create already
            # on its way lands within the pause); thawed and tried again when it held none.
            held = tries = 0
            waiting: list[str] = []
            for tries in range(1, 11):  # noqa: B007 - reported below
                with contextlib.suppress(TimeoutError):
                    await first_row(conn, BARE_INTENT, ids["w3"], 0.2, within=3)
                fleet.signal("w3", signal.SIGSTOP)
                await anyio.sleep(0.5)
                bare = await conn.fetch(
                    "SELECT key, fingerprint FROM vidu_items WHERE worker_id = $1 AND state = 'intent'"
                    " AND task_id IS NULL AND NOT finished",
                    ids["w3"],
                )
                _, now = await fetch_stats(url)
                waiting = [row["key"] for row in bare if row["fingerprint"] not in now["tasks_by_payload"]]
                held = len(waiting)
                if held:
                    break
                fleet.signal("w3", signal.SIGCONT)
            frozen = anyio.current_time()
            phases = {"started": started, "frozen": frozen}
            # Two crashes at seeded moments while it is frozen.
            await anyio.sleep(rng.uniform(0.3, 1.5))
            fleet.signal("w2", signal.SIGKILL)
            fleet.start("w6")
            await anyio.sleep(rng.uniform(0.3, 1.5))
            fleet.signal("w4", signal.SIGKILL)
            fleet.start("w7")
            # Resume it past its lease, once the creates it held have been sent by the workers that
            # adopted them (proven absent by fingerprint, then sent again under a fenced intent).
            with anyio.fail_after(60):
                while await conn.fetchval(  # noqa: ASYNC110 - other processes' progress
                    "SELECT count(*) FROM vidu_items WHERE key = ANY($1::text[])"
                    " AND (worker_id = $2 OR task_id IS NULL) AND NOT finished",
                    waiting,
                    ids["w3"],
                ):
                    await anyio.sleep(0.1)
            await anyio.sleep(max(0.0, frozen + 2 * LEASE - anyio.current_time()))
            fleet.signal("w3", signal.SIGCONT)
            progress = []  # (seconds, items finished) until every worker is done, to read a slow run

            async def sample() -> None:
                while True:
                    count = await conn.fetchval("SELECT count(*) FROM vidu_items WHERE finished")
                    progress.append((round(anyio.current_time() - started, 1), count))
                    await anyio.sleep(2)

            async with anyio.create_task_group() as tg:
                tg.start_soon(sample)
                statuses = await fleet.wait_all(within=90)
                tg.cancel_scope.cancel()
            phases["done"] = anyio.current_time()

            final = fleet.start("final")  # a fresh --out, after the batch finished
            final_status = await anyio.to_thread.run_sync(final.wait)
            items = {
                row["key"]: dict(row)
                for row in await conn.fetch("SELECT key, state, finished, task_id, worker_id FROM vidu_items")
            }
        finally:
            await conn.close()
            fleet.stop_all()
        _, stats = await fetch_stats(url)
    summary = await anyio.run_process([sys.executable, "-m", "vidu_async", "batch", dsn, str(jobs), "--json"])
    return {
        "fleet": fleet,
        "ids": ids,
        "held": held,
        "tries": tries,
        "timeline": {name: round(at - started, 1) for name, at in phases.items()},
        "progress": progress,
        "statuses": statuses,
        "final_status": final_status,
        "items": items,
        "stats": stats,
        "summary": json.loads(summary.stdout),
    }


def check(outcome: dict[str, Any]) -> None:
    """One server task per item, the cap held, every item finished once in some worker's results
    and in the final re-run's, no slot held."""
    fleet: Fleet = outcome["fleet"]
    items: dict[str, dict[str, Any]] = outcome["items"]
    stats = outcome["stats"]
    assert len(items) == ITEMS
    assert all(item["finished"] and item["state"] == "success" for item in items.values()), Counter(
        item["state"] for item in items.values()
    )

    # One server task per item: every fingerprint once, no task beyond one per item.
    assert stats["tasks_created"] == ITEMS, stats["tasks_created"]
    assert sorted(set(stats["tasks_by_payload"].values())) == [1]
    assert len(stats["tasks_by_payload"]) == ITEMS
    assert max(stats["tasks_by_request"].values()) == 1
    # The organization's cap, as the service saw it.
    assert stats["max_in_flight_by_org"]["default"] <= CAP, stats["max_in_flight_by_org"]

    # Every item finished once in some worker's results: never in two, and missing only where
    # its finisher was killed between the database's finish and the row (the row follows it).
    seen: Counter[str] = Counter()
    for name in fleet.processes:
        if name == "final":
            continue
        for row in rows(fleet.out(name)):
            assert row["ok"], row
            assert row["task_id"] == items[row["key"]]["task_id"]
            seen[row["key"]] += 1
    assert max(seen.values()) == 1, [key for key, n in seen.items() if n > 1]
    killed = {outcome["ids"][name] for name in fleet.killed if name in outcome["ids"]}
    missing = set(items) - set(seen)
    print(
        f"timeline {outcome['timeline']}, finished {outcome['progress']}; held at the freeze: {outcome['held']} ({outcome['tries']} tries);"
        f" rows left to the re-run by a kill: {sorted(missing)}"
    )
    assert all(items[key]["worker_id"] in killed for key in missing), missing

    # The final re-run lists every item's stored result, with its file, and created nothing.
    assert outcome["final_status"] == 0, fleet.log("final")[-3000:]
    final = rows(fleet.out("final"))
    assert sorted(row["key"] for row in final) == sorted(items)
    assert all(row["ok"] and row["files"] and Path(row["files"][0]).is_file() for row in final)
    assert {row["key"]: row["task_id"] for row in final} == {k: v["task_id"] for k, v in items.items()}

    # Nothing left in the database: no slot held, nothing unfinished or stuck.
    summary = outcome["summary"]
    assert (summary["slots_held"], summary["unfinished"], summary["stuck"]) == (0, 0, [])
    assert sum(worker["finished"] for worker in summary["finished_by"]) == ITEMS
    # The frozen worker found its lease gone and stopped (exit 1); the others ended well.
    statuses = outcome["statuses"]
    assert statuses["w3"] == 1, fleet.log("w3")[-3000:]
    for name in ("w5", "w6", "w7"):
        assert statuses[name] == 0, fleet.log(name)[-3000:]


@pytest.mark.slow
class TestFleetOfProcesses:
    """4 CLI workers, org cap 8, 216 items of 11 kinds, against the emulator in its own process:
    crashes right after an intent and right after a create's answer, two more at seeded moments,
    one worker frozen past its lease and resumed."""

    async def test_never_billed_twice(self, postgres_dsn: str, tmp_path: Path) -> None:
        """One server task per item, the cap held, every result once, no slot held at the end."""
        check(await chaos(tmp_path, postgres_dsn, guard=True))

    @pytest.mark.xfail(strict=True, reason="without the send guard a frozen worker's create goes out late")
    async def test_without_the_send_guard_it_bills_twice(self, postgres_dsn: str, tmp_path: Path) -> None:
        """The same run with the guard off (VIDU_ASYNC_UNSAFE_NO_SEND_GUARD=1) must break: the
        guard is what keeps every create single."""
        check(await chaos(tmp_path, postgres_dsn, guard=False))


class TestStatsEndpoint:
    """``GET /_emulator/stats``: opt-in, read-only, and not counted as a request."""

    async def test_absent_by_default(self) -> None:
        """The faithful surface has no such route: 404, as for any unknown path."""
        async with Emulator() as emu:
            status, body = await fetch_stats(emu.origin)
        assert status == 404
        assert body["reason"] == "NotFound"

    async def test_counters(self) -> None:
        """Tasks per payload and per request, peak in flight per organization, requests per
        endpoint; reading them counts as no request."""
        config = EmulatorConfig(stats_endpoint=True, processing_time=0.05, path_prefix="/vidu")
        async with Emulator(config) as emu, vidu.ViduClient(emu.api_key, base_url=emu.base_url) as client:
            first = await client.generate(small_request(prompt="@Ming cooks hot pot, take 1."))
            await client.generate(small_request(prompt="@Ming cooks hot pot, take 2."))
            status, body = await fetch_stats(emu.origin)
            again = (await fetch_stats(emu.origin))[1]

        assert status == 200
        assert body["tasks_created"] == 2
        assert first.payload in body["tasks_by_payload"]
        assert sorted(body["tasks_by_payload"].values()) == [1, 1]
        assert sorted(body["tasks_by_request"].values()) == [1, 1]
        assert body["max_in_flight"] == 1
        assert body["max_in_flight_by_org"] == {"default": 1}
        assert body["in_flight"] == {"default": 0}
        assert body["unfinished"] == 0
        assert body["requests"]["create"] == 2
        assert "other" not in body["requests"]
        assert again["requests"] == body["requests"]

    def test_command_line(self) -> None:
        """``vidu-async emulator --stats-endpoint`` serves it from its own process."""
        import anyio

        with emulator_process("--stats-endpoint", "--concurrency", "3") as url:
            status, body = anyio.run(fetch_stats, url)
        assert status == 200
        assert body["tasks_created"] == 0
        assert body["requests"] == {}
        json.dumps(body)


class TestEmulatorCommand:
    """The ``emulator`` command's options for tests and benchmarks in other processes."""

    def test_stats_endpoint_and_spread(self) -> None:
        """``--stats-endpoint`` turns the route on; ``--processing-spread`` draws each task's time
        around ``--processing-time`` from the emulator's seeded generator."""
        from vidu_async import cli

        argv = ["emulator", "--stats-endpoint", "--processing-time", "2", "--processing-spread", "0.5"]
        config = cli._emulator_config(cli.build_parser().parse_args(argv))
        assert config.stats_endpoint
        assert callable(config.processing_time)
        draws = [config.processing_time(random.Random(seed)) for seed in range(200)]
        assert all(1.0 <= d <= 3.0 for d in draws)
        assert min(draws) < 1.2
        assert max(draws) > 2.8
        plain = cli._emulator_config(cli.build_parser().parse_args(["emulator"]))
        assert (plain.stats_endpoint, plain.processing_time) == (False, 5.0)

    @pytest.mark.parametrize("spread", ["1", "-0.1", "half"])
    def test_bad_spread(self, spread: str, capsys: pytest.CaptureFixture[str]) -> None:
        from vidu_async import cli

        with pytest.raises(SystemExit) as exited:
            cli.build_parser().parse_args(["emulator", "--processing-spread", spread])
        assert exited.value.code == 2
        assert "--processing-spread" in capsys.readouterr().err
