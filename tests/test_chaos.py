"""``vidu-async run`` under everything at once: a job file with bad lines, edited between runs, an
emulator in its own process with a fault mix, SIGKILL five times (once mid-download), the videos
folder deleted, and a second run started on the same folder. Nothing may be billed twice, lost,
or left half-written.
"""

from __future__ import annotations

import json
import shutil
import signal
from collections import Counter
from pathlib import Path
from typing import Any, Final

import anyio
import pytest
from test_run import (
    GOOD,
    Runs,
    check_videos,
    command,
    emulator_process,
    journal_counts,
    reported_sizes,
    results,
    write_jobs,
)

#: The emulator's fault mix: throttling with Retry-After, server errors, dropped connections and
#: creates that are made and then lose their answer (each must be reconciled, never resent).
FAULTS: Final = (
    "--fault", "seed=11", "--fault", "rate_limit=0.05", "--fault", "retry_after=0.2",
    "--fault", "server_error=0.03", "--fault", "drop=0.02", "--fault", "commit_then_drop=0.03",
)  # fmt: skip


def good(number: int, *, key: str | None = None) -> str:
    body: dict[str, Any] = {**GOOD, "prompt": f"A cat naps, take {number}."}
    if key is not None:
        body = {"key": key, **body}
    return json.dumps(body)


def bad_lines() -> list[str]:
    """Twenty lines that can never run, each for its own reason."""
    bodies: list[dict[str, Any]] = [
        {**GOOD, "duration": 99},
        {**GOOD, "colour": "red"},
        {**GOOD, "prompt": "x" * 5001},
        {**GOOD, "images": []},
        {**GOOD, "model": 7},
        {**GOOD, "key": True},
        {**GOOD, "key": 12},
        {**GOOD, "key": ""},
        {**GOOD, "prompt": "A cat \ud800 naps."},
        {**GOOD, "key": "k\udc00"},
        {**GOOD, "images": ["ftp://example.com/cat.png"]},
        {**GOOD, "images": ["data:image/png;base64,not*base64"]},
        {**GOOD, "key": "keyed-40", "prompt": "the key of an earlier line"},
        {**GOOD, "key": "keyed-41", "prompt": "the key of an earlier line, again"},
    ]
    raw = ['{"model": "viduq2", "prompt": "cut', "{'single': 'quotes'}", "[1, 2]", '"text"', "null", "17"]
    return [json.dumps(body) for body in bodies] + raw


def is_bad(line: str) -> bool:
    return line in BAD


BAD: Final = frozenset(bad_lines())


class TestChaos:
    """The run's promises hold whatever the input, the disk, the network or a second process does."""

    @pytest.mark.slow
    async def test_everything_at_once(self, tmp_path: Path) -> None:
        """200 lines (keyless, keyed, 20 bad), killed five times, edited, videos deleted, a second
        run refused: in the end one task per request, one result line per input, whole videos."""
        keyed = [good(1000 + n, key=f"keyed-{n}") for n in range(60)]
        keyless = [good(n) for n in range(120)]
        lines = keyless[:60] + keyed[:30] + bad_lines()[:10] + keyless[60:] + keyed[30:] + bad_lines()[10:]
        assert len(lines) == 200
        jobs = write_jobs(tmp_path / "jobs.jsonl", lines)
        out = tmp_path / "out"
        journal = out / "journal.sqlite"
        extra = (*FAULTS, "--download-bytes-per-second", "16000")
        async with emulator_process(
            tmp_path / "emulator.log", concurrency=16, processing_time=0.2, extra=extra
        ) as server:
            argv = command("run", str(jobs), "--out", str(out), "--plain", *server.options)
            runs = Runs(argv, tmp_path / "run.log")

            # 1. Killed while submitting.
            assert await runs.until(lambda: journal_counts(journal)[0] >= 25, send=signal.SIGKILL)

            # The file edited: an empty line, a new keyless and a new keyed line on top; a keyless
            # and a keyed line (both likely submitted already) deleted.
            lines = ["", good(500), good(501, key="new-keyed"), *lines]
            lines.remove(keyless[1])
            lines.remove(keyed[0])
            write_jobs(jobs, lines)

            # 2. Killed at a random moment of results.
            finished = journal_counts(journal)[1]
            assert await runs.until(lambda: journal_counts(journal)[1] >= finished + 30, send=signal.SIGKILL)

            # Edited again: a line inserted mid-file, another deleted, two swapped.
            lines.insert(100, good(502))
            lines.remove(keyless[100])
            a, b = lines.index(keyless[5]), lines.index(keyless[70])
            lines[a], lines[b] = lines[b], lines[a]
            write_jobs(jobs, lines)

            # 3. Killed mid-download: a partial file is on disk.
            videos = out / "videos"
            assert await runs.until(lambda: any(videos.glob("*.part")), send=signal.SIGKILL)

            # The videos deleted, every one.
            shutil.rmtree(videos)

            # 4. A second run on the same folder is refused while the first goes on; then the
            # first is killed.
            finished = journal_counts(journal)[1]
            first = await runs.start()
            async with first:
                with anyio.fail_after(60):
                    while journal_counts(journal)[1] < finished + 10:  # noqa: ASYNC110 - another process's file
                        await anyio.sleep(0.01)
                second = await anyio.run_process(argv, check=False, env=runs.env)
                assert second.returncode == 2, second.stdout + second.stderr
                assert b"in use by another run" in second.stderr
                assert first.returncode is None  # the first run was not disturbed
                first.send_signal(signal.SIGKILL)
                runs.statuses.append(await first.wait())

            # 5. Killed once more, at a random moment of results.
            finished = journal_counts(journal)[1]
            await runs.until(lambda: journal_counts(journal)[1] >= finished + 20, send=signal.SIGKILL)

            # The final run, to the end: exit 1 for the bad lines, nothing else wrong.
            status = await runs.to_the_end(within=180)
            output = runs.output()
            assert status == 1, output
            assert runs.statuses.count(-signal.SIGKILL) == 5, runs.statuses

            tasks = await server.tasks()
            sizes = await reported_sizes(task for task in tasks if task.creations)

        inputs = {number: line for number, line in enumerate(lines, 1) if line.strip()}
        rows = results(out)
        # One results line per input, for the lines of the final file.
        assert sorted(row["line"] for row in rows) == sorted(inputs)
        good_rows = [row for row in rows if not is_bad(inputs[row["line"]])]
        bad_rows = [row for row in rows if is_bad(inputs[row["line"]])]
        assert len(bad_rows) == 20
        # A clear error for each bad line, naming it.
        for row in bad_rows:
            assert not row["ok"]
            assert row["error"].startswith(f"jobs.jsonl:{row['line']}: "), row
        assert all(row["ok"] for row in good_rows), [row for row in good_rows if not row["ok"]][:3]

        # One server task per distinct request ever run (lines deleted since included), and each
        # line's result names its request's task.
        per_prompt = Counter(task.prompt for task in tasks)
        assert set(per_prompt.values()) == {1}, [p for p, n in per_prompt.items() if n > 1][:3]
        task_of_prompt = {task.prompt: task.id for task in tasks}
        for row in good_rows:
            assert row["task_id"] == task_of_prompt[json.loads(inputs[row["line"]])["prompt"]]

        # Every video whole, the size the server reports; nothing half-written left behind.
        check_videos(good_rows, sizes)
        assert list(out.rglob("*.part")) == []
        assert not (out / "results.jsonl.tmp").exists()
