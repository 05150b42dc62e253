"""``ViduClient.download`` against the in-process emulator: whole files, covers and watermarked
copies, refreshed links, resumed partial files, dropped connections, hostile ids, and files kept;
and against small hostile servers: size bounds, stalls, encoded bodies, the wrong media, untrusted
206 answers, creations sharing an id, files already there that are not whole, and images and audio
named by their link, their Content-Type or their bytes, checked as what they are."""

from __future__ import annotations

import contextlib
import gzip
import shutil
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
import attrs
import pytest
from aiohttp import web
from anyio.abc import SocketAttribute, SocketStream

import vidu_async as vidu
from vidu_async import Creation, Task, TaskState
from vidu_async._download import Downloader, _settle, creation_files
from vidu_async.emulator import Emulator, EmulatorConfig
from vidu_async.exceptions import DownloadError, TaskFailedError

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


# --- hostile servers -------------------------------------------------------------------------------
#
# The emulator serves honest files; these tests need bodies no honest server sends, so each one runs
# a small aiohttp server of its own. `anyio.fail_after(GUARD)` only turns a download that would never
# end (the defect) into a failure instead of a hung run; no test asserts how long anything took.

GUARD = 30.0
TASK_ID = "913000000000000077"
OTHER = SAMPLE + b"\x00\x00\x00\x10free" + b"\x00" * 8  # a second whole MP4, another size
HTML_PAGE = b"<!DOCTYPE html>\n<html><head><title>Access denied</title></head><body>403</body></html>\n"

Handler = Callable[["Hostile", web.Request], Awaitable[web.StreamResponse]]


class Hostile:
    """A server answering every GET with ``handler``; records each request's path, Range and
    Accept-Encoding, and releases handlers that hang (``released``) before it stops."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[tuple[str, str | None]] = []
        self.encodings: list[str | None] = []
        self.released = anyio.Event()
        self.base = ""

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, request.headers.get("Range")))
        self.encodings.append(request.headers.get("Accept-Encoding"))
        return await self.handler(self, request)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Hostile]:
        app = web.Application()
        app.router.add_get("/{name}", self._answer)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
            yield self
        finally:
            self.released.set()
            await runner.cleanup()


async def honest(request: web.Request, data: bytes, content_type: str = "video/mp4") -> web.Response:
    """``data`` as an honest server sends it: whole (200) or the range asked for (206)."""
    headers = {"Accept-Ranges": "bytes", "Content-Type": content_type}
    if "Range" not in request.headers:
        return web.Response(body=data, headers=headers)
    start = int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))
    if start >= len(data):
        headers["Content-Range"] = f"bytes */{len(data)}"
        return web.Response(status=416, headers=headers)
    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
    return web.Response(status=206, body=data[start:], headers=headers)


def hostile_task(server: Hostile, *names: str, creation_id: str = "c1", cover: str | None = None) -> Task:
    """A finished task whose creations' videos are ``names`` on ``server`` (all with one id)."""
    creations = tuple(
        Creation(id=creation_id, url=server.url(name), cover_url=server.url(cover) if cover else "")
        for name in names
    )
    return Task(id=TASK_ID, state=TaskState.SUCCESS, raw_state="success", creations=creations)


@asynccontextmanager
async def hostile(handler: Handler, **policy: Any) -> AsyncIterator[tuple[Hostile, vidu.ViduClient]]:
    """A hostile server and a client whose download policy has ``policy``."""
    downloads = attrs.evolve(vidu.DEFAULT_DOWNLOADS, **policy)
    async with (
        Hostile(handler).running() as server,
        vidu.ViduClient("test-key", base_url=server.base, downloads=downloads) as client,
    ):
        with anyio.fail_after(GUARD):
            yield server, client


def video_name(index: int | None = None) -> str:
    return f"{TASK_ID}-c1.mp4" if index is None else f"{TASK_ID}-c1.{index}.mp4"


class TestSizeBound:
    """An announced or actual size over `DownloadPolicy.max_bytes` stops the download and leaves nothing."""

    async def test_announced_terabyte_is_refused_at_once(self, tmp_path: Path) -> None:
        """`Content-Length: 1 TB` (over the default bound): refused from the headers, one request, no `.part`."""

        async def terabyte(server: Hostile, request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
            response.content_length = 10**12
            await response.prepare(request)
            await response.write(SAMPLE[:100])
            await server.released.wait()
            return response

        async with hostile(terabyte) as (server, client):
            with pytest.raises(DownloadError, match="max_bytes") as caught:
                await client.download(hostile_task(server, "video.mp4"), tmp_path)
        assert video_name() in str(caught.value)
        assert len(server.requests) == 1
        assert files_under(tmp_path) == set()

    async def test_content_range_total_over_the_bound_is_refused(self, tmp_path: Path) -> None:
        """A resume answered with a Content-Range total of 1 TB: refused, and the `.part` removed."""

        async def terabyte(server: Hostile, request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(
                status=206,
                headers={"Content-Type": "video/mp4", "Content-Range": f"bytes 100-{10**12 - 1}/{10**12}"},
            )
            response.content_length = 10**12 - 100
            await response.prepare(request)
            await response.write(SAMPLE[100:200])
            await server.released.wait()
            return response

        (tmp_path / f"{video_name()}.part").write_bytes(SAMPLE[:100])
        async with hostile(terabyte) as (server, client):
            with pytest.raises(DownloadError, match="max_bytes"):
                await client.download(hostile_task(server, "video.mp4"), tmp_path)
        assert server.requests == [("/video.mp4", "bytes=100-")]
        assert files_under(tmp_path) == set()

    async def test_endless_body_stops_at_the_bound(self, tmp_path: Path) -> None:
        """A body without a length that goes on (8 MB, then silence): stopped at `max_bytes`, nothing left."""

        async def endless(server: Hostile, request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(SAMPLE)
            for _ in range(8 * 64):
                await response.write(b"\x00" * 16 * 1024)
            await server.released.wait()
            return response

        async with hostile(endless, max_bytes=64 * 1024) as (server, client):
            with pytest.raises(DownloadError, match="max_bytes"):
                await client.download(hostile_task(server, "video.mp4"), tmp_path)
        assert len(server.requests) == 1
        assert files_under(tmp_path) == set()

    async def test_body_past_its_announced_total_is_stopped(self, tmp_path: Path) -> None:
        """A 206 sending more than its Content-Range total: stopped, the `.part` removed, not retried."""

        async def overlong(server: Hostile, request: web.Request) -> web.StreamResponse:
            headers = {
                "Content-Type": "video/mp4",
                "Content-Range": f"bytes 100-{len(SAMPLE) + 99}/{len(SAMPLE)}",
            }
            return web.Response(status=206, body=SAMPLE, headers=headers)

        (tmp_path / f"{video_name()}.part").write_bytes(SAMPLE[:100])
        async with hostile(overlong) as (server, client):
            with pytest.raises(DownloadError, match="announced"):
                await client.download(hostile_task(server, "video.mp4"), tmp_path)
        assert len(server.requests) == 1
        assert files_under(tmp_path) == set()


class TestStall:
    """A body that stops coming, or comes too slowly, is an interruption: resumed, then given up."""

    async def test_stalled_body_is_resumed_with_range(self, tmp_path: Path) -> None:
        """1000 bytes, then silence: after `stall_timeout` the download resumes from byte 1000."""

        async def stalls_once(server: Hostile, request: web.Request) -> web.StreamResponse:
            if len(server.requests) > 1:
                return await honest(request, SAMPLE)
            response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
            response.content_length = len(SAMPLE)
            await response.prepare(request)
            await response.write(SAMPLE[:1000])
            await server.released.wait()
            return response

        async with hostile(stalls_once, stall_timeout=0.5, stall_bytes=1) as (server, client):
            paths = await client.download(hostile_task(server, "video.mp4"), tmp_path)
        assert server.requests == [("/video.mp4", None), ("/video.mp4", "bytes=1000-")]
        assert_whole_video(paths[0])
        assert files_under(tmp_path) == {paths[0]}

    async def test_trickle_fails_once_the_attempts_run_out(self, tmp_path: Path) -> None:
        """A byte every 20 ms (fewer than `stall_bytes` per `stall_timeout`): each attempt stops, then
        the download fails with DownloadError; the `.part` is kept for a later run."""

        async def trickle(server: Hostile, request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
            response.content_length = 10**6
            await response.prepare(request)
            with contextlib.suppress(ConnectionError):
                while not server.released.is_set():
                    await response.write(b"\x00")
                    await anyio.sleep(0.02)
            return response

        async with hostile(trickle, stall_timeout=0.2, stall_bytes=1000, attempts=2) as (server, client):
            with pytest.raises(DownloadError, match="stall"):
                await client.download(hostile_task(server, "video.mp4"), tmp_path)
        assert len(server.requests) == 2
        assert not (tmp_path / video_name()).exists()


class TestBodyWithoutLength:
    """A body sent without a length ends when the connection closes, so a cut looks like an end."""

    async def test_cut_short_is_resumed(self, tmp_path: Path) -> None:
        """1000 bytes without Content-Length, then the connection closes: the MP4 is not whole, so the
        `.part` is kept and resumed with Range (not refused, not renamed)."""
        ranges: list[str | None] = []

        async def serve(stream: SocketStream) -> None:
            async with stream:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += await stream.receive()
                lines = head.decode("latin-1").split("\r\n")
                asked = next(
                    (line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("range:")),
                    None,
                )
                ranges.append(asked)
                if asked is None:
                    answer = b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nConnection: close\r\n\r\n"
                    await stream.send(answer + SAMPLE[:1000])
                    return
                start = int(asked.removeprefix("bytes=").rstrip("-"))
                answer = (
                    "HTTP/1.1 206 Partial Content\r\nContent-Type: video/mp4\r\n"
                    f"Content-Range: bytes {start}-{len(SAMPLE) - 1}/{len(SAMPLE)}\r\n"
                    f"Content-Length: {len(SAMPLE) - start}\r\nConnection: close\r\n\r\n"
                ).encode()
                await stream.send(answer + SAMPLE[start:])

        async with (
            await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(listener.serve, serve)
            base = f"http://127.0.0.1:{listener.extra(SocketAttribute.local_port)}"
            task = Task(
                id=TASK_ID,
                state=TaskState.SUCCESS,
                raw_state="success",
                creations=(Creation(id="c1", url=f"{base}/video.mp4"),),
            )
            async with vidu.ViduClient("test-key", base_url=base) as client:
                with anyio.fail_after(GUARD):
                    paths = await client.download(task, tmp_path)
            tg.cancel_scope.cancel()
        assert ranges == [None, "bytes=1000-"]
        assert_whole_video(paths[0])
        assert files_under(tmp_path) == {paths[0]}


class TestNoDecompression:
    """Downloads ask for the bytes as they are, and never inflate what comes back."""

    async def test_identity_is_asked(self, tmp_path: Path) -> None:
        """Every download request says `Accept-Encoding: identity`."""

        async def plain(server: Hostile, request: web.Request) -> web.StreamResponse:
            return await honest(request, SAMPLE)

        async with hostile(plain) as (server, client):
            paths = await client.download(hostile_task(server, "video.mp4"), tmp_path)
        assert server.encodings == ["identity"]
        assert_whole_video(paths[0])

    async def test_gzip_body_is_not_inflated(self, tmp_path: Path) -> None:
        """A 20 KB gzip body (20 MB inflated) sent anyway: refused for its encoding, nothing written."""
        bomb = gzip.compress(b"\x00" * 20 * 1024 * 1024)

        async def gzipped(server: Hostile, request: web.Request) -> web.StreamResponse:
            return web.Response(body=bomb, headers={"Content-Type": "video/mp4", "Content-Encoding": "gzip"})

        async with hostile(gzipped) as (server, client):
            with pytest.raises(DownloadError, match="gzip"):
                await client.download(hostile_task(server, "video.mp4"), tmp_path)
        assert len(server.requests) == 1
        assert files_under(tmp_path) == set()


class TestMediaCheck:
    """What is renamed into place is the kind of file its name says, and whole."""

    @pytest.mark.parametrize(
        ("video", "cover", "bad", "got"),
        [
            pytest.param(HTML_PAGE, COVER, "video.mp4", "HTML", id="html-as-video"),
            pytest.param(COVER, COVER, "video.mp4", "JPEG", id="jpeg-as-video"),
            pytest.param(SAMPLE, HTML_PAGE, "cover.jpg", "HTML", id="html-as-cover"),
        ],
    )
    async def test_wrong_kind_is_not_saved(
        self, tmp_path: Path, video: bytes, cover: bytes, bad: str, got: str
    ) -> None:
        """A 200 carrying something else: DownloadError naming the file and what came; it is not saved
        (nor asked for again: the same link would send the same)."""
        name = video_name() if bad == "video.mp4" else f"{TASK_ID}-c1-cover.jpg"

        async def serve(server: Hostile, request: web.Request) -> web.StreamResponse:
            return await honest(request, video if request.path == "/video.mp4" else cover, "text/html")

        async with hostile(serve) as (server, client):
            with pytest.raises(DownloadError, match=got) as caught:
                await client.download(
                    hostile_task(server, "video.mp4", cover="cover.jpg"), tmp_path, cover=True
                )
        assert name in str(caught.value)
        assert not (tmp_path / name).exists()
        assert not (tmp_path / f"{name}.part").exists()
        assert [path for path, _ in server.requests].count(f"/{bad}") == 1

    async def test_206_to_a_plain_get_is_not_trusted(self, tmp_path: Path) -> None:
        """A 206 (from byte 100) answering a request without Range: discarded; a plain GET starts over."""

        async def bogus_first(server: Hostile, request: web.Request) -> web.StreamResponse:
            if len(server.requests) == 1:
                headers = {
                    "Content-Type": "video/mp4",
                    "Content-Range": f"bytes 100-{len(SAMPLE) - 1}/{len(SAMPLE)}",
                }
                return web.Response(status=206, body=SAMPLE[100:], headers=headers)
            return await honest(request, SAMPLE)

        async with hostile(bogus_first) as (server, client):
            paths = await client.download(hostile_task(server, "video.mp4"), tmp_path)
        assert server.requests == [("/video.mp4", None), ("/video.mp4", None)]
        assert_whole_video(paths[0])
        assert files_under(tmp_path) == {paths[0]}

    async def test_206_from_another_byte_is_not_trusted(self, tmp_path: Path) -> None:
        """Asked from byte 1000, a 206 from byte 0: the `.part` is discarded and a plain GET starts over."""

        async def from_zero(server: Hostile, request: web.Request) -> web.StreamResponse:
            if "Range" in request.headers:
                headers = {
                    "Content-Type": "video/mp4",
                    "Content-Range": f"bytes 0-{len(SAMPLE) - 1}/{len(SAMPLE)}",
                }
                return web.Response(status=206, body=SAMPLE, headers=headers)
            return await honest(request, SAMPLE)

        (tmp_path / f"{video_name()}.part").write_bytes(SAMPLE[:1000])
        async with hostile(from_zero) as (server, client):
            paths = await client.download(hostile_task(server, "video.mp4"), tmp_path)
        assert server.requests == [("/video.mp4", "bytes=1000-"), ("/video.mp4", None)]
        assert_whole_video(paths[0])
        assert files_under(tmp_path) == {paths[0]}

    @pytest.mark.parametrize(
        ("part", "answer"),
        [
            pytest.param(b"\x00" * 1000, 206, id="resumed-prefix-of-another-file"),
            pytest.param(b"\x00" * len(SAMPLE), 416, id="whole-size-of-another-file"),
        ],
    )
    async def test_part_of_another_file_is_not_renamed(
        self, tmp_path: Path, part: bytes, answer: int
    ) -> None:
        """A `.part` whose bytes are not this video's: after the resume (206) or the 416 saying it is
        whole, the check fails, so it is deleted and the video downloaded afresh."""
        async with running() as (_, client, seen):
            task = await finished(client)
            name = f"{task.id}-{task.creations[0].id}.mp4"
            (tmp_path / f"{name}.part").write_bytes(part)
            paths = await client.download(task, tmp_path)
        assert [(s.range, s.status) for s in seen] == [(f"bytes={len(part)}-", answer), (None, 200)]
        assert_whole_video(paths[0])
        assert files_under(tmp_path) == {(tmp_path / name).resolve()}


class TestSameCreationIds:
    """Creations that share an id still get a file (and a `.part`) each."""

    async def test_two_creations_with_one_id(self, tmp_path: Path) -> None:
        """Two creations `c1` with different videos: `-c1.0.mp4` and `-c1.1.mp4`, each its own video."""

        async def two(server: Hostile, request: web.Request) -> web.StreamResponse:
            return await honest(request, SAMPLE if request.path == "/one.mp4" else OTHER)

        async with hostile(two) as (server, client):
            paths = await client.download(hostile_task(server, "one.mp4", "two.mp4"), tmp_path)
        assert [p.name for p in paths] == [video_name(0), video_name(1)]
        assert paths[0].read_bytes() == SAMPLE
        assert paths[1].read_bytes() == OTHER
        assert files_under(tmp_path) == set(paths)

    def test_unique_ids_keep_their_names(self) -> None:
        """With distinct ids the names are `{task_id}-{creation_id}` as before (journals list them);
        only the ids that repeat get their position."""
        url = "https://example.com/v.mp4"
        task = Task(
            id="t1",
            state=TaskState.SUCCESS,
            raw_state="success",
            creations=(
                Creation(id="a", url=url, cover_url=url),
                Creation(id="b", url=url),
                Creation(id="a", url=url),
            ),
        )
        assert [f.name for f in creation_files(task, cover=True)] == [
            "t1-a.0.mp4",
            "t1-a.0-cover.jpg",
            "t1-b.mp4",
            "t1-a.2.mp4",
        ]
        unique = attrs.evolve(task, creations=task.creations[:2])
        assert [f.name for f in creation_files(unique, cover=True)] == [
            "t1-a.mp4",
            "t1-a-cover.jpg",
            "t1-b.mp4",
        ]


class TestFilesAlreadyThere:
    """A file already in place is kept only when whole; otherwise it is downloaded again."""

    @pytest.mark.parametrize(
        "damage",
        [
            pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
            pytest.param(lambda data: data[:-1], id="one-byte-short"),
            pytest.param(lambda data: b"", id="empty"),
            pytest.param(lambda data: HTML_PAGE, id="html-page"),
            pytest.param(lambda data: data + b"\x00" * 10, id="trailing-bytes"),
        ],
    )
    async def test_damaged_video_is_downloaded_again(
        self, tmp_path: Path, damage: Callable[[bytes], bytes]
    ) -> None:
        """The video in place is not whole: one request replaces it with the whole video."""
        async with running() as (emu, client, seen):
            task = await finished(client)
            first = await client.download(task, tmp_path)
            first[0].write_bytes(damage(first[0].read_bytes()))
            again = await client.download(task, tmp_path)
            assert emu.stats.downloads == 2
        assert [(s.range, s.status) for s in seen] == [(None, 200), (None, 200)]
        assert again == first
        assert_whole_video(again[0])
        assert files_under(tmp_path) == {again[0]}

    async def test_deleted_video_is_downloaded_again(self, tmp_path: Path) -> None:
        """After the folder is removed, the next download fetches the video again."""
        async with running() as (emu, client, _):
            task = await finished(client)
            first = await client.download(task, tmp_path / "videos")
            shutil.rmtree(tmp_path / "videos")
            again = await client.download(task, tmp_path / "videos")
            assert emu.stats.downloads == 2
        assert again == first
        assert_whole_video(again[0])

    async def test_truncated_cover_is_downloaded_again(self, tmp_path: Path) -> None:
        """A cover without its JPEG end marker is fetched again; the whole video beside it is kept."""
        async with running() as (_, client, seen):
            task = await finished(client)
            paths = await client.download(task, tmp_path, cover=True)
            cover = next(p for p in paths if p.name.endswith("-cover.jpg"))
            cover.write_bytes(COVER[:-2])
            seen.clear()
            await client.download(task, tmp_path, cover=True)
        assert [s.path.rsplit(".", 1)[-1] for s in seen] == ["jpg"]
        assert cover.read_bytes() == COVER

    async def test_whole_video_put_there_is_kept_without_a_request(self, tmp_path: Path) -> None:
        """A whole video already at the name (however it got there) is kept: no request at all."""
        async with running() as (emu, client, seen):
            task = await finished(client)
            path = tmp_path / f"{task.id}-{task.creations[0].id}.mp4"
            path.write_bytes(SAMPLE)
            before = path.stat().st_mtime_ns
            paths = await client.download(task, tmp_path)
            assert emu.stats.downloads == 0
        assert seen == []
        assert paths == [path.resolve()]
        assert path.stat().st_mtime_ns == before


# --- images and audio --------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _box(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", 8 + len(data)) + kind + data


def _riff(form: bytes, chunk: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + form + chunk


#: A whole 1x1 PNG.
PNG = (
    b"\x89PNG\r\n\x1a\n"
    + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    + _png_chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
    + _png_chunk(b"IEND", b"")
)
#: A WebP (lossless, 1x1) whose RIFF size is its size.
WEBP = _riff(b"WEBP", b"VP8L" + struct.pack("<I", 5) + b"\x2f\x00\x00\x00\x00" + b"\x00")
#: A 2x2 BMP.
BMP = (
    b"BM"
    + struct.pack("<IHHI", 70, 0, 0, 54)
    + struct.pack("<IiiHHIIiiII", 40, 2, 2, 1, 24, 0, 16, 0, 0, 0, 0)
)
BMP += b"\x00" * (70 - len(BMP))
#: An MP3: an ID3 tag, then frames.
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + (b"\xff\xfb\x90\x00" + b"\x00" * 413) * 4
#: A WAV of 100 silent samples whose RIFF size is its size.
WAV = _riff(
    b"WAVE",
    b"fmt "
    + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
    + b"data"
    + struct.pack("<I", 200)
    + b"\x00" * 200,
)
#: An M4A: ISO BMFF with an audio brand, a moov and an mdat.
M4A = (
    _box(b"ftyp", b"M4A \x00\x00\x00\x00M4A isom") + _box(b"moov", b"\x00" * 8) + _box(b"mdat", b"\x00" * 32)
)
OCTETS = "application/octet-stream"
STEM = f"{TASK_ID}-c1"


def media_server(data: bytes, content_type: str = OCTETS) -> Handler:
    """A handler serving ``data`` honestly (Range too) under ``content_type``, whatever is asked."""

    async def serve(server: Hostile, request: web.Request) -> web.StreamResponse:
        return await honest(request, data, content_type)

    return serve


def downloader_of(client: vidu.ViduClient) -> Downloader:
    """The client's downloader, for a task of a known kind (``output=``), as a batch calls it."""
    downloader: Downloader = client._downloader
    return downloader


class TestMediaNames:
    """An image or audio file takes its suffix from its link's path, else the Content-Type served,
    else its bytes, else its media's usual one; a video is always `.mp4`."""

    @pytest.mark.parametrize(
        ("output", "link", "data", "content_type", "name"),
        [
            pytest.param("image", "picture.jpg", COVER, "image/png", f"{STEM}.jpg", id="jpg-link-png-type"),
            pytest.param("image", "picture.JPEG", COVER, OCTETS, f"{STEM}.jpeg", id="jpeg-link-upper-case"),
            pytest.param("image", "picture.webp", WEBP, OCTETS, f"{STEM}.webp", id="webp-link"),
            pytest.param("audio", "sound.wav", WAV, "audio/mpeg", f"{STEM}.wav", id="wav-link-mpeg-type"),
            pytest.param("audio", "sound.m4a", M4A, OCTETS, f"{STEM}.m4a", id="m4a-link"),
            pytest.param("video", "clip.mp4", SAMPLE, OCTETS, f"{STEM}.mp4", id="mp4-link"),
        ],
    )
    async def test_suffix_of_the_link(
        self, tmp_path: Path, output: str, link: str, data: bytes, content_type: str, name: str
    ) -> None:
        """A link whose path ends in one of the media's suffixes names the file so, whatever the
        Content-Type says; the file is whole and nothing else is left."""
        async with hostile(media_server(data, content_type)) as (server, client):
            paths = await downloader_of(client).download(hostile_task(server, link), tmp_path, output=output)
        assert [p.name for p in paths] == [name]
        assert paths[0].read_bytes() == data
        assert files_under(tmp_path) == set(paths)

    @pytest.mark.parametrize(
        ("output", "data", "content_type", "suffix"),
        [
            pytest.param("image", PNG, "image/png", ".png", id="image/png"),
            pytest.param("image", COVER, "image/jpeg", ".jpg", id="image/jpeg"),
            pytest.param("image", WEBP, "image/webp", ".webp", id="image/webp"),
            pytest.param("image", BMP, "image/bmp", ".bmp", id="image/bmp"),
            pytest.param("image", COVER, "IMAGE/JPEG; charset=binary", ".jpg", id="type-with-parameters"),
            pytest.param("audio", MP3, "audio/mpeg", ".mp3", id="audio/mpeg"),
            pytest.param("audio", WAV, "audio/wav", ".wav", id="audio/wav"),
            pytest.param("audio", WAV, "audio/x-wav", ".wav", id="audio/x-wav"),
            pytest.param("audio", M4A, "audio/mp4", ".m4a", id="audio/mp4"),
            pytest.param("video", SAMPLE, "video/mp4", ".mp4", id="video/mp4"),
        ],
    )
    async def test_suffix_of_the_content_type(
        self, tmp_path: Path, output: str, data: bytes, content_type: str, suffix: str
    ) -> None:
        """A link without a suffix (`/file`, or one the media has not: `.bin`): the Content-Type names it."""
        async with hostile(media_server(data, content_type)) as (server, client):
            task = hostile_task(server, "file", "file.bin")
            paths = await downloader_of(client).download(task, tmp_path, output=output)
        assert [p.name for p in paths] == [f"{STEM}.0{suffix}", f"{STEM}.1{suffix}"]
        assert all(p.read_bytes() == data for p in paths)
        assert files_under(tmp_path) == set(paths)

    @pytest.mark.parametrize(
        ("output", "data", "suffix"),
        [
            pytest.param("image", PNG, ".png", id="png"),
            pytest.param("image", COVER, ".jpg", id="jpeg-not-misnamed-png"),
            pytest.param("audio", MP3, ".mp3", id="mp3"),
            pytest.param("audio", WAV, ".wav", id="wav-not-misnamed-mp3"),
            pytest.param("video", SAMPLE, ".mp4", id="mp4"),
        ],
    )
    async def test_without_suffix_or_type(
        self, tmp_path: Path, output: str, data: bytes, suffix: str
    ) -> None:
        """No suffix in the link and `application/octet-stream`: named by the bytes (the media's
        usual suffix for a PNG, an MP3 or a video; `.jpg` for a JPEG, not `.png`)."""
        async with hostile(media_server(data)) as (server, client):
            paths = await downloader_of(client).download(
                hostile_task(server, "file"), tmp_path, output=output
            )
        assert [p.name for p in paths] == [f"{STEM}{suffix}"]
        assert paths[0].read_bytes() == data
        assert files_under(tmp_path) == set(paths)

    @pytest.mark.parametrize(
        ("output", "url", "content_type", "sniffed", "expected"),
        [
            pytest.param("image", "https://x/a", None, None, ("image", ".png"), id="image-fallback"),
            pytest.param("audio", "https://x/a", "", None, ("audio", ".mp3"), id="audio-fallback"),
            pytest.param("video", "https://x/a.mov", None, None, ("video", ".mp4"), id="video-fallback"),
            pytest.param(
                "image", "https://x/a.mp3", "audio/mpeg", None, ("image", ".png"), id="other-media-hints"
            ),
            pytest.param(
                "image", "https://x/a", "image/jpeg", "image/png", ("image", ".jpg"), id="type-before-bytes"
            ),
            pytest.param(
                "audio", "https://x/a.ogg?x=.wav", "audio/flac", None, ("audio", ".ogg"), id="path-not-query"
            ),
            pytest.param(None, "https://x/a.wav", "image/png", None, ("audio", ".wav"), id="auto-by-link"),
            pytest.param(
                None, "https://x/a", "image/gif", None, ("image", ".png"), id="auto-by-unknown-type"
            ),
            pytest.param(
                None, "https://x/a", "text/html", "image/jpeg", ("image", ".jpg"), id="auto-by-bytes"
            ),
            pytest.param(None, "https://x/a", "text/html", None, (None, ""), id="auto-untold"),
        ],
    )
    def test_settled_name(
        self,
        output: str | None,
        url: str,
        content_type: str | None,
        sniffed: str | None,
        expected: tuple[str | None, str],
    ) -> None:
        """The order: the link's path, the Content-Type, the sniffed type, then the media's usual
        suffix; hints of another media are ignored, and with no media given they tell it."""
        assert _settle(output, url, content_type, sniffed) == expected

    def test_names_before_serving(self) -> None:
        """Before a file is served, its name has the link's suffix, else its media's usual one, else
        (media unknown) none."""
        task = Task(
            id="t1",
            state=TaskState.SUCCESS,
            raw_state="success",
            creations=(Creation(id="a", url="https://x/a.jpg"), Creation(id="b", url="https://x/b")),
        )
        assert [f.name for f in creation_files(task, output="image")] == ["t1-a.jpg", "t1-b.png"]
        assert [f.name for f in creation_files(task, output="audio")] == ["t1-a.mp3", "t1-b.mp3"]
        assert [f.name for f in creation_files(task)] == ["t1-a.jpg", "t1-b"]

    async def test_unknown_output_is_refused(self, tmp_path: Path) -> None:
        """An `output` that is no media is a ValueError, before anything is fetched."""
        async with hostile(media_server(PNG)) as (server, client):
            with pytest.raises(ValueError, match="gif"):
                await downloader_of(client).download(hostile_task(server, "file"), tmp_path, output="gif")
        assert server.requests == []


class TestMediaKinds:
    """Audio must sniff as audio and images as images, and be whole, before they take their name."""

    @pytest.mark.parametrize(
        ("data", "content_type", "got"),
        [
            pytest.param(HTML_PAGE, "audio/mpeg", "an HTML page, not audio", id="html-as-audio"),
            pytest.param(PNG, "audio/mpeg", "a PNG image, not audio", id="png-as-audio"),
            pytest.param(SAMPLE, "audio/mpeg", "an MP4 video, not audio", id="mp4-as-audio"),
            pytest.param(b"", "audio/mpeg", "nothing", id="empty-as-audio"),
            pytest.param(WAV[:-50], "audio/wav", "not whole", id="wav-cut-short"),
        ],
    )
    async def test_audio_that_is_not_whole_audio_is_refused(
        self, tmp_path: Path, data: bytes, content_type: str, got: str
    ) -> None:
        """An audio task's link serving something else, or a cut WAV (its length announced):
        DownloadError naming the file and what came; no file, no `.part`, not asked again."""
        async with hostile(media_server(data, content_type)) as (server, client):
            with pytest.raises(DownloadError, match=got) as caught:
                await downloader_of(client).download(hostile_task(server, "sound"), tmp_path, output="audio")
        assert STEM in str(caught.value)
        assert "not saved" in str(caught.value)
        assert files_under(tmp_path) == set()
        assert len(server.requests) == 1

    @pytest.mark.parametrize(
        ("data", "content_type", "got"),
        [
            pytest.param(HTML_PAGE, "image/png", "an HTML page, not an image", id="html-as-image"),
            pytest.param(MP3, "image/png", "an MP3 audio file, not an image", id="mp3-as-image"),
            pytest.param(PNG[:-12], "image/png", "not whole", id="png-without-iend"),
        ],
    )
    async def test_image_that_is_not_a_whole_image_is_refused(
        self, tmp_path: Path, data: bytes, content_type: str, got: str
    ) -> None:
        """An image task's link serving something else, or a PNG cut before its end: refused, nothing left."""
        async with hostile(media_server(data, content_type)) as (server, client):
            with pytest.raises(DownloadError, match=got):
                await downloader_of(client).download(
                    hostile_task(server, "picture"), tmp_path, output="image"
                )
        assert files_under(tmp_path) == set()

    async def test_resumed_image_takes_its_served_name(self, tmp_path: Path) -> None:
        """An image's `.part` (named `.png.part` before its type is known) is resumed with Range; the
        JPEG it turns out to be is renamed to `.jpg`, and no `.part` is left."""
        (tmp_path / f"{STEM}.png.part").write_bytes(COVER[:100])
        async with hostile(media_server(COVER, "image/jpeg")) as (server, client):
            paths = await downloader_of(client).download(
                hostile_task(server, "picture"), tmp_path, output="image"
            )
        assert server.requests == [("/picture", "bytes=100-")]
        assert [p.name for p in paths] == [f"{STEM}.jpg"]
        assert paths[0].read_bytes() == COVER
        assert files_under(tmp_path) == set(paths)


class TestAutoMedia:
    """`client.download` does not know the task's kind: each creation's media is told by its link,
    the Content-Type served or its bytes, and checked as that media."""

    @pytest.mark.parametrize(
        ("link", "data", "content_type", "suffix"),
        [
            pytest.param("file", PNG, "image/png", ".png", id="png-by-type"),
            pytest.param("file", COVER, "image/jpeg", ".jpg", id="jpeg-by-type"),
            pytest.param("file", COVER, OCTETS, ".jpg", id="jpeg-by-bytes"),
            pytest.param("picture.webp", WEBP, OCTETS, ".webp", id="webp-by-link"),
            pytest.param("file", MP3, "audio/mpeg", ".mp3", id="mp3-by-type"),
            pytest.param("file", WAV, OCTETS, ".wav", id="wav-by-bytes"),
            pytest.param("file", SAMPLE, "video/mp4", ".mp4", id="video-by-type"),
            pytest.param("file", SAMPLE, OCTETS, ".mp4", id="video-by-bytes"),
            pytest.param("file", M4A, OCTETS, ".m4a", id="m4a-by-bytes-not-video"),
        ],
    )
    async def test_media_told_by_what_is_served(
        self, tmp_path: Path, link: str, data: bytes, content_type: str, suffix: str
    ) -> None:
        """An image served for an unknown kind becomes `.png`/`.jpg`, audio `.mp3`/`.wav`, a video `.mp4`."""
        async with hostile(media_server(data, content_type)) as (server, client):
            paths = await client.download(hostile_task(server, link), tmp_path)
        assert [p.name for p in paths] == [f"{STEM}{suffix}"]
        assert paths[0].read_bytes() == data
        assert files_under(tmp_path) == set(paths)

    async def test_video_task_stays_mp4(self, tmp_path: Path) -> None:
        """A video from the emulator, downloaded with no kind given, is `.mp4` (and its cover `.jpg`)."""
        async with running() as (_, client, _):
            task = await finished(client)
            paths = await client.download(task, tmp_path, cover=True)
        stem = f"{task.id}-{task.creations[0].id}"
        assert [p.name for p in paths] == [f"{stem}.mp4", f"{stem}-cover.jpg"]
        assert_whole_video(paths[0])

    @pytest.mark.parametrize(
        ("link", "data", "content_type", "got"),
        [
            pytest.param("file", HTML_PAGE, "image/png", "an HTML page, not an image", id="html-typed-image"),
            pytest.param("file", PNG, "audio/mpeg", "a PNG image, not audio", id="png-typed-audio"),
            pytest.param("sound.mp3", SAMPLE, OCTETS, "an MP4 video, not audio", id="mp4-at-mp3-link"),
            pytest.param(
                "file", HTML_PAGE, "text/html", "an HTML page, not a video, an image or audio", id="html"
            ),
            pytest.param("file", b"\x00" * 64, OCTETS, "unrecognized bytes", id="unknown-bytes"),
        ],
    )
    async def test_what_is_not_its_media_is_refused(
        self, tmp_path: Path, link: str, data: bytes, content_type: str, got: str
    ) -> None:
        """Bytes that are not the media their link or type says, or no media at all: DownloadError
        naming the file, nothing left, not asked again."""
        async with hostile(media_server(data, content_type)) as (server, client):
            with pytest.raises(DownloadError, match=got) as caught:
                await client.download(hostile_task(server, link), tmp_path)
        assert STEM in str(caught.value)
        assert files_under(tmp_path) == set()
        assert len(server.requests) == 1


class TestFinishedMediaFoundAgain:
    """A finished image or audio file is found on a re-run under the name it was given, though the
    link does not say it: no request, the same path."""

    @pytest.mark.parametrize(
        ("output", "data", "content_type", "suffix"),
        [
            pytest.param("image", PNG, "image/png", ".png", id="image-png"),
            pytest.param("image", COVER, "image/jpeg", ".jpg", id="image-jpeg"),
            pytest.param("audio", WAV, "audio/x-wav", ".wav", id="audio-wav"),
            pytest.param(None, COVER, "image/jpeg", ".jpg", id="auto-jpeg"),
            pytest.param(None, MP3, "audio/mpeg", ".mp3", id="auto-mp3"),
        ],
    )
    async def test_rerun_makes_no_request(
        self, tmp_path: Path, output: str | None, data: bytes, content_type: str, suffix: str
    ) -> None:
        """Downloaded once from a link without a suffix: a second download finds `{stem}{suffix}`
        whole and leaves it untouched."""
        async with hostile(media_server(data, content_type)) as (server, client):
            task = hostile_task(server, "file")
            first = await downloader_of(client).download(task, tmp_path, output=output)
            before = first[0].stat().st_mtime_ns
            again = await downloader_of(client).download(task, tmp_path, output=output)
        assert [p.name for p in first] == [f"{STEM}{suffix}"]
        assert again == first
        assert len(server.requests) == 1
        assert first[0].stat().st_mtime_ns == before

    async def test_rerun_of_the_client_finds_the_image(self, tmp_path: Path) -> None:
        """Through `client.download` (no kind given) twice: one request, the same `.png`."""
        async with hostile(media_server(PNG, "image/png")) as (server, client):
            task = hostile_task(server, "file")
            first = await client.download(task, tmp_path)
            again = await client.download(task, tmp_path)
        assert [p.name for p in again] == [f"{STEM}.png"]
        assert again == first
        assert len(server.requests) == 1

    async def test_damaged_image_is_fetched_again(self, tmp_path: Path) -> None:
        """The finished `.png` cut short since: deleted, fetched again, whole."""
        async with hostile(media_server(PNG, "image/png")) as (server, client):
            task = hostile_task(server, "file")
            first = await downloader_of(client).download(task, tmp_path, output="image")
            first[0].write_bytes(PNG[:-1])
            again = await downloader_of(client).download(task, tmp_path, output="image")
        assert again == first
        assert again[0].read_bytes() == PNG
        assert len(server.requests) == 2
        assert files_under(tmp_path) == set(again)

    async def test_file_of_another_media_is_not_taken(self, tmp_path: Path) -> None:
        """A whole MP3 at the stem does not stand for an image task's file: the image is fetched."""
        (tmp_path / f"{STEM}.mp3").write_bytes(MP3)
        async with hostile(media_server(PNG, "image/png")) as (server, client):
            paths = await downloader_of(client).download(
                hostile_task(server, "file"), tmp_path, output="image"
            )
        assert [p.name for p in paths] == [f"{STEM}.png"]
        assert len(server.requests) == 1
