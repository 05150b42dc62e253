"""``ViduClient.download`` against the in-process emulator: whole files, covers and watermarked
copies, refreshed links, resumed partial files, dropped connections, hostile ids, and files kept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs
import pytest
from aiohttp import web

import vidu_async as vidu
from vidu_async import Creation, Task, TaskState
from vidu_async.emulator import Emulator, EmulatorConfig
from vidu_async.exceptions import TaskFailedError

SAMPLE = (Path(vidu.__file__).parent / "emulator" / "assets" / "sample.mp4").read_bytes()
COVER = (Path(vidu.__file__).parent / "emulator" / "assets" / "cover.jpg").read_bytes()
FAST_POLL = attrs.evolve(
    vidu.DEFAULT_POLL,
    first_check=0.02,
    min_interval=0.02,
    max_interval=0.1,
    requests_per_second=200,
    intermediate_every=0.05,
)
REQUEST: dict[str, Any] = {
    "model": "viduq2",
    "images": ["https://example.com/beach.png"],
    "prompt": "Waves roll onto a quiet beach at sunset.",
    "duration": 4,
}


@attrs.frozen
class Seen:
    """One download request the emulator answered."""

    path: str
    range: str | None
    status: int


@asynccontextmanager
async def running(**config: Any) -> AsyncIterator[tuple[Emulator, vidu.ViduClient, list[Seen]]]:
    """An emulator with quick tasks, a client on it, and a record of every download request."""
    settings: dict[str, Any] = {"created_time": 0.01, "processing_time": 0.05}
    settings.update(config)
    emu = Emulator(EmulatorConfig(**settings))
    seen: list[Seen] = []

    async def record(request: web.Request, response: web.StreamResponse) -> None:
        if request.path.startswith(f"{emu.config.path_prefix}/files/"):
            seen.append(Seen(request.path, request.headers.get("Range"), response.status))

    emu.app.on_response_prepare.append(record)  # before the app starts and freezes its signals
    async with emu, vidu.ViduClient(emu.api_key, base_url=emu.base_url, poll=FAST_POLL) as client:
        yield emu, client, seen


async def finished(client: vidu.ViduClient, **changes: Any) -> Task:
    """A task of ``REQUEST`` (with ``changes``) that has succeeded."""
    task = await client.generate({**REQUEST, **changes}, timeout=30)
    assert task.state is TaskState.SUCCESS
    assert len(task.creations) == 1
    return task


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def assert_whole_video(path: Path) -> None:
    data = path.read_bytes()
    assert len(data) == len(SAMPLE)
    assert data[4:8] == b"ftyp"
    assert data == SAMPLE


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def with_url(task: Task, url: str) -> Task:
    return attrs.evolve(task, creations=(attrs.evolve(task.creations[0], url=url),))


class TestWholeFiles:
    """A finished task's files land whole under names made of the task and creation ids."""

    async def test_video_is_named_by_ids_and_whole(self, tmp_path: Path) -> None:
        """`{task_id}-{creation_id}.mp4`, the sample's size, an MP4 `ftyp` box, nothing else left."""
        async with running() as (emu, client, _):
            task = await finished(client)
            paths = await client.download(task, tmp_path / "videos")
            assert emu.stats.downloads == 1
        expected = (tmp_path / "videos" / f"{task.id}-{task.creations[0].id}.mp4").resolve()
        assert paths == [expected]
        assert_whole_video(expected)
        assert files_under(tmp_path) == {expected}

    async def test_task_id_is_read_first(self, tmp_path: Path) -> None:
        """Given a task id, the task is read and its video saved."""
        async with running() as (_, client, _):
            task = await finished(client)
            paths = await client.download(task.id, tmp_path)
        assert [p.name for p in paths] == [f"{task.id}-{task.creations[0].id}.mp4"]
        assert_whole_video(paths[0])

    async def test_cover_and_watermarked(self, tmp_path: Path) -> None:
        """`cover=True` and `watermarked=True` add `-cover.jpg` and `-wm.mp4`, each whole."""
        async with running() as (_, client, _):
            task = await finished(client, watermark=True)
            paths = await client.download(task, tmp_path, cover=True, watermarked=True)
        stem = f"{task.id}-{task.creations[0].id}"
        assert sorted(p.name for p in paths) == sorted([f"{stem}.mp4", f"{stem}-cover.jpg", f"{stem}-wm.mp4"])
        assert_whole_video(tmp_path / f"{stem}.mp4")
        assert_whole_video(tmp_path / f"{stem}-wm.mp4")
        assert (tmp_path / f"{stem}-cover.jpg").read_bytes() == COVER
        assert files_under(tmp_path) == {p.resolve() for p in paths}

    async def test_watermarked_only_when_offered(self, tmp_path: Path) -> None:
        """A task without a watermarked copy saves just its video, even with `watermarked=True`."""
        async with running() as (_, client, _):
            task = await finished(client)
            paths = await client.download(task, tmp_path, watermarked=True)
        assert [p.name for p in paths] == [f"{task.id}-{task.creations[0].id}.mp4"]

    async def test_complete_file_is_not_fetched_again(self, tmp_path: Path) -> None:
        """A second download of the same task makes no request and leaves the file untouched."""
        async with running() as (emu, client, seen):
            task = await finished(client)
            first = await client.download(task, tmp_path)
            before = (emu.stats.downloads, len(seen), first[0].stat().st_mtime_ns)
            again = await client.download(task, tmp_path)
            assert (emu.stats.downloads, len(seen), again[0].stat().st_mtime_ns) == before
        assert again == first
        assert_whole_video(first[0])


class TestRefusals:
    """Nothing is fetched for a task that has nothing to give."""

    async def test_unfinished_task(self, tmp_path: Path) -> None:
        """A task still processing is a ValueError naming it; nothing is written."""
        async with running() as (emu, client, _):
            task = Task(id="913000000000000001", state=TaskState.PROCESSING, raw_state="processing")
            with pytest.raises(ValueError, match="913000000000000001"):
                await client.download(task, tmp_path / "videos")
            assert emu.stats.downloads == 0
        assert not (tmp_path / "videos").exists()

    async def test_failed_task(self, tmp_path: Path) -> None:
        """A failed task raises TaskFailedError with its err_code; nothing is written."""
        async with running() as (emu, client, _):
            task = Task(
                id="913000000000000002",
                state=TaskState.FAILED,
                raw_state="failed",
                err_code="CreationPolicyViolation",
            )
            with pytest.raises(TaskFailedError) as caught:
                await client.download(task, tmp_path / "videos")
            assert emu.stats.downloads == 0
        assert caught.value.err_code == "CreationPolicyViolation"
        assert not (tmp_path / "videos").exists()


class TestStaleLinks:
    """A link that expired, or that the server refuses, is replaced by a fresh one read from the task."""

    async def test_expired_link_is_refreshed_before_use(self, tmp_path: Path) -> None:
        """`Expires` in the past: the task is read again (one GET) and the fresh link downloads."""
        async with running() as (emu, client, seen):
            task = await finished(client)
            stale = with_url(task, with_query(task.creations[0].url, Expires="1000000000"))
            gets = emu.stats.requests["get"]
            paths = await client.download(stale, tmp_path)
            assert emu.stats.requests["get"] == gets + 1
        assert_whole_video(paths[0])
        assert [s.status for s in seen] == [200]  # the dead link was never even tried

    async def test_refused_link_is_refreshed(self, tmp_path: Path) -> None:
        """A link whose `Expires` looks fine but answers 403 (bad signature) is refreshed once."""
        async with running() as (emu, client, seen):
            task = await finished(client)
            forged = with_url(task, with_query(task.creations[0].url, Signature="0" * 64))
            gets = emu.stats.requests["get"]
            paths = await client.download(forged, tmp_path)
            assert emu.stats.requests["get"] == gets + 1
        assert_whole_video(paths[0])
        assert [s.status for s in seen] == [403, 200]


class TestResume:
    """A partial file is resumed with a Range request; one that cannot be a prefix starts over."""

    @pytest.mark.parametrize("have", [1, 100, len(SAMPLE) // 2, len(SAMPLE) - 1])
    async def test_partial_file_is_resumed_with_range(self, tmp_path: Path, have: int) -> None:
        """`<name>.part` holding the first N bytes: one `Range: bytes=N-` request (206) finishes it."""
        async with running() as (_, client, seen):
            task = await finished(client)
            name = f"{task.id}-{task.creations[0].id}.mp4"
            (tmp_path / f"{name}.part").write_bytes(SAMPLE[:have])
            paths = await client.download(task, tmp_path)
        assert [(s.range, s.status) for s in seen] == [(f"bytes={have}-", 206)]
        assert_whole_video(paths[0])
        assert files_under(tmp_path) == {(tmp_path / name).resolve()}

    async def test_whole_part_file_is_just_renamed(self, tmp_path: Path) -> None:
        """A `.part` already whole (a crash before the rename): the 416 says so and it is renamed."""
        async with running() as (emu, client, seen):
            task = await finished(client)
            name = f"{task.id}-{task.creations[0].id}.mp4"
            (tmp_path / f"{name}.part").write_bytes(SAMPLE)
            paths = await client.download(task, tmp_path)
            assert emu.stats.downloads == 0
        assert [(s.range, s.status) for s in seen] == [(f"bytes={len(SAMPLE)}-", 416)]
        assert_whole_video(paths[0])
        assert files_under(tmp_path) == {(tmp_path / name).resolve()}

    async def test_part_file_longer_than_the_video_starts_over(self, tmp_path: Path) -> None:
        """A `.part` longer than the file (416, another size): discarded, downloaded afresh, whole."""
        async with running() as (_, client, seen):
            task = await finished(client)
            name = f"{task.id}-{task.creations[0].id}.mp4"
            (tmp_path / f"{name}.part").write_bytes(b"\xff" * (len(SAMPLE) + 100))
            paths = await client.download(task, tmp_path)
        assert [(s.range, s.status) for s in seen] == [(f"bytes={len(SAMPLE) + 100}-", 416), (None, 200)]
        assert_whole_video(paths[0])
        assert files_under(tmp_path) == {(tmp_path / name).resolve()}

    async def test_dropped_connection_is_retried(self, tmp_path: Path) -> None:
        """The connection closes without an answer: the download is tried again and completes."""
        async with running() as (emu, client, _):
            task = await finished(client)
            emu.inject("download", "drop")
            paths = await client.download(task, tmp_path)
            assert emu.stats.faults["drop"] == 1
            assert emu.stats.requests["download"] == 2
        assert_whole_video(paths[0])
        assert files_under(tmp_path) == {paths[0]}


HOSTILE_IDS = [
    ("../../etc", "../x/../../y"),
    ("..", ".."),
    ("/etc/passwd", "/tmp/evil"),
    ("..\\..\\windows", "C:\\boot.ini"),
    ("a\x00b", "c\nd"),
    ("", ""),
    ("~root", "$HOME"),
    ("x" * 500, "../" * 200),
]


class TestHostileIds:
    """Ids and URLs from the service never steer a file outside the destination."""

    @pytest.mark.parametrize(("task_id", "creation_id"), HOSTILE_IDS)
    async def test_files_stay_in_the_destination(
        self, tmp_path: Path, task_id: str, creation_id: str
    ) -> None:
        """A hand-built task with hostile ids: every file written is directly inside `dest`."""
        dest = tmp_path / "sandbox" / "dest"
        async with running() as (_, client, _):
            real = await finished(client)
            creation = real.creations[0]
            hostile = Task(
                id=task_id,
                state=TaskState.SUCCESS,
                raw_state="success",
                creations=(Creation(id=creation_id, url=creation.url, cover_url=creation.cover_url),),
            )
            paths = await client.download(hostile, dest, cover=True)
        written = files_under(tmp_path)
        assert written == {p.resolve() for p in paths}
        assert len(paths) == 2
        for path in written:
            assert path.parent == dest.resolve()
            assert all(c.isalnum() or c in "-_." for c in path.name), path.name
        # Names come from the (sanitized) ids, never from the URL.
        url_name = urlsplit(creation.url).path.rsplit("/", 1)[-1]
        assert url_name not in {p.name for p in written}
        video = next(p for p in paths if p.suffix == ".mp4")
        assert_whole_video(video)

    async def test_ids_that_sanitize_alike_do_not_clobber_each_other(self, tmp_path: Path) -> None:
        """Two creations whose ids reduce to the same safe name still give two whole files."""
        async with running() as (_, client, _):
            real = await finished(client)
            url = real.creations[0].url
            task = attrs.evolve(real, creations=(Creation(id="a/b", url=url), Creation(id="a?b", url=url)))
            paths = await client.download(task, tmp_path)
        assert len(paths) == 2
        assert len(set(paths)) == 2, paths
        for path in paths:
            assert_whole_video(path)
