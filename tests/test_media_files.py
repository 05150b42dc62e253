"""Local media files read at submit time: only regular files, checked before they are read, read with a bound,
and never holding up cancellation (Ctrl-C) while they are read."""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from conftest import small_request
from test_client import connected, running
from test_sniff import make_png

import vidu_async as vidu
from vidu_async import _http, _media, _rules
from vidu_async._convert import request_from_json
from vidu_async.exceptions import RequestValidationError

MIB = 1024 * 1024

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs, devices and symlinks as on POSIX")


def flat(*images: Any) -> vidu.Reference2Video:
    return vidu.Reference2Video(model="viduq2", images=list(images), prompt="A cook.", duration=5)


def refused(request: vidu.Reference2Video) -> str:
    """The one problem resolve_media reports for ``images[0]``."""
    with pytest.raises(RequestValidationError) as caught:
        _media.resolve_media(request)
    assert caught.value.fields == ("images[0]",), caught.value
    (problem,) = caught.value.problems
    return problem.message


@contextmanager
def safety_valve(after: float, action: Any) -> Iterator[threading.Event]:
    """Run ``action`` after ``after`` seconds unless the block ended first, so a regression fails the
    test instead of hanging the run; the event tells whether it had to run."""
    fired = threading.Event()

    def run() -> None:
        fired.set()
        action()

    timer = threading.Timer(after, run)
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()


def unblock(fifo: Path) -> None:
    """Open the write end of ``fifo`` for a moment: only a regression needs it, to end a blocked open()."""
    with suppress(OSError):  # nobody is reading: nothing to unblock
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


class TestSpecialFiles:
    """What is not a regular file is refused before anything is read, naming the field and the file."""

    @posix_only
    @pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
    def test_dev_zero(self) -> None:
        """``/dev/zero`` never ends: it is refused as a character device, not read until memory runs out."""
        message = refused(flat(Path("/dev/zero")))
        assert "not a regular file (a character device)" in message
        assert "/dev/zero" in message

    @posix_only
    def test_symlink_to_a_device(self, tmp_path: Path) -> None:
        """A link is followed: a link to ``/dev/zero`` is refused like ``/dev/zero`` itself."""
        if not Path("/dev/zero").exists():
            pytest.skip("no /dev/zero")
        link = tmp_path / "zero.png"
        link.symlink_to("/dev/zero")
        assert "not a regular file (a character device)" in refused(flat(link))

    @posix_only
    async def test_fifo_is_refused_promptly(self, tmp_path: Path) -> None:
        """A FIFO nobody writes to is refused at once: opening it does not wait for a writer."""
        fifo = tmp_path / "pipe.png"
        os.mkfifo(fifo)
        started = time.monotonic()
        with (
            safety_valve(10, lambda: unblock(fifo)) as fired,
            pytest.raises(RequestValidationError) as caught,
        ):
            await _media.prepare(flat(fifo), _http.build_create)
        assert not fired.is_set(), "opening the FIFO waited for a writer"
        assert time.monotonic() - started < 5
        assert caught.value.fields == ("images[0]",)
        assert "not a regular file (a FIFO)" in str(caught.value)
        assert "pipe.png" in str(caught.value)

    def test_directory(self, tmp_path: Path) -> None:
        """A directory is named as one."""
        folder = tmp_path / "ming.png"
        folder.mkdir()
        message = refused(flat(folder))
        assert "not a regular file (a directory)" in message
        assert "ming.png" in message

    @posix_only
    def test_symlink_to_a_regular_file_is_read(self, tmp_path: Path) -> None:
        """A link to a regular image is followed and the image sent."""
        png = make_png(256, 256)
        (tmp_path / "real.png").write_bytes(png)
        link = tmp_path / "link.png"
        link.symlink_to(tmp_path / "real.png")
        body = _http.encode_create_body(_media.resolve_media(flat(link)))
        assert base64.b64encode(png) in body

    def test_missing_file(self, tmp_path: Path) -> None:
        """A file that is not there is still named as unreadable."""
        message = refused(flat(tmp_path / "nowhere.png"))
        assert "cannot read the file" in message
        assert "nowhere.png" in message


class TestSize:
    """The documented per-item limit (20 MiB decoded) is checked on the file's size before reading it."""

    def test_sparse_100_mb_file_is_refused_by_its_size_unread(self, tmp_path: Path) -> None:
        """A 100 MB file is refused from its size: its bytes are never read (nor sniffed, nor held in memory)."""
        big = tmp_path / "big.png"
        with big.open("wb") as handle:
            handle.truncate(100 * MIB)  # sparse: costs no disk, reads as zeros
        tracemalloc.start()
        try:
            message = refused(flat(big))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert "is 100.0 MB" in message
        assert "at most 20.0 MB" in message
        assert "big.png" in message
        assert peak < 4 * MIB, f"{peak / MIB:.1f} MiB allocated: the file was read"

    def test_one_byte_over_the_limit(self, tmp_path: Path) -> None:
        """The limit is exact: one byte over is refused, unread."""
        big = tmp_path / "big.png"
        with big.open("wb") as handle:
            handle.write(make_png(256, 256))
            handle.truncate(_rules.MAX_MEDIA_BYTES + 1)
        message = refused(flat(big))
        assert "at most 20.0 MB" in message
        assert "recognized format" not in message

    @pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="no procfs")
    def test_read_is_bounded_when_the_size_is_unknown(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A regular file whose size says 0 (procfs) is read only up to one byte past the limit."""
        monkeypatch.setattr(_rules, "MAX_MEDIA_BYTES", 64)
        reads: list[int] = []
        real_read = os.read

        def counting_read(fd: int, n: int) -> bytes:
            data = real_read(fd, n)
            reads.append(len(data))
            return data

        monkeypatch.setattr(os, "read", counting_read)
        message = refused(flat(Path("/proc/self/status")))
        assert "larger than" in message
        assert sum(reads) == 65


class TestBodySize:
    """The body actually built is measured before it is sent, whatever the estimate made of it."""

    async def test_body_the_estimate_underrates_is_refused_before_sending(self) -> None:
        """Control characters take six bytes each in JSON (the estimate counts one): the built body is checked."""
        request = vidu.Reference2Video(
            model="viduq2",
            images=["https://example.com/ming.png"],
            prompt="A cook.",
            meta_data="\x01" * (4 * MIB),
        )
        with pytest.raises(RequestValidationError) as caught:
            await _media.prepare(request, _http.build_create)
        assert caught.value.fields == ("body",)
        assert "at most 20 MB" in str(caught.value)


class TestWhereBuilt:
    """A small request of URLs is built on the event loop; local media and large bodies in a worker thread."""

    @staticmethod
    async def built_on_the_loop(request: vidu.Reference2Video) -> bool:
        threads: list[int] = []

        def build(resolved: vidu.Reference2Video) -> _http.ApiRequest:
            threads.append(threading.get_ident())
            return _http.build_create(resolved)

        call = await _media.prepare(request, build)
        assert call.body is not None
        assert all(isinstance(item, str) for item in json.loads(call.body)["images"])
        return threads == [threading.get_ident()]

    async def test_small_request_of_urls(self) -> None:
        assert await self.built_on_the_loop(flat("https://example.com/ming.png"))

    async def test_bytes(self) -> None:
        """Bytes become a data URI in the thread, where their body is built too."""
        assert not await self.built_on_the_loop(flat(make_png(256, 256)))

    async def test_file(self, tmp_path: Path) -> None:
        path = tmp_path / "ming.png"
        path.write_bytes(make_png(256, 256))
        assert not await self.built_on_the_loop(flat(path))

    async def test_large_body_of_data_uris(self) -> None:
        """Data URIs are strings, but a body of megabytes is encoded off the loop all the same."""
        png = make_png(256, 256) + bytes(MIB)
        uri = "data:image/png;base64," + base64.b64encode(png).decode()
        assert not await self.built_on_the_loop(flat(uri))


class TestCancellation:
    """The event loop never waits on a file: cancelling a submit (Ctrl-C) returns at once."""

    async def test_waiting_for_the_worker_thread_is_cancellable(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """While a worker thread is stuck reading, a cancelled caller returns at once (the thread is left)."""
        path = tmp_path / "ming.png"
        path.write_bytes(make_png(256, 256))
        release = threading.Event()
        entered = threading.Event()

        def stuck(request: vidu.Reference2Video) -> vidu.Reference2Video:
            entered.set()
            release.wait(30)
            return request

        monkeypatch.setattr(_media, "resolve_media", stuck)
        started = time.monotonic()
        try:
            with safety_valve(10, release.set) as fired, anyio.move_on_after(0.2):
                await _media.prepare(flat(path), _http.build_create)
            assert entered.is_set()
            assert not fired.is_set(), "the cancelled caller waited for the worker thread"
            assert time.monotonic() - started < 5
        finally:
            release.set()


class TestThroughTheClient:
    """End to end: a special file fails the submit, and nothing is sent."""

    @posix_only
    async def test_fifo_in_a_subject(self, tmp_path: Path) -> None:
        fifo = tmp_path / "ming.png"
        os.mkfifo(fifo)
        async with connected() as (emu, client):
            with (
                safety_valve(10, lambda: unblock(fifo)) as fired,
                pytest.raises(RequestValidationError) as caught,
            ):
                await client.submit(small_request(subjects=[vidu.Subject(name="Ming", images=[fifo])]))
            assert not fired.is_set()
            assert emu.stats.requests["create"] == 0
        assert caught.value.fields == ("subjects[0].images[0]",)
        text = str(caught.value)
        assert "not a regular file (a FIFO)" in text
        assert "Ming" in text
        assert "ming.png" in text


# --- media strings in a job file ------------------------------------------------------------------


class TestJobFileMedia:
    """In a job file (``request_from_json`` with a media root) a string is a URL, a data URI or a local file."""

    def test_other_url_schemes_are_refused_not_read_as_files(self, tmp_path: Path) -> None:
        """``ftp://`` and ``s3://`` are URLs Vidu cannot fetch: refused naming the field, never a local path."""
        body = {
            "model": "viduq3",
            "subjects": [{"name": "Ming", "images": ["ftp://example.com/ming.png"]}],
            "prompt": "@Ming cooks.",
        }
        with pytest.raises(RequestValidationError) as caught:
            request_from_json(body, what="line 3", media_root=tmp_path)
        assert caught.value.fields == ("subjects[0].images[0]",)
        assert "unsupported URL scheme 'ftp'" in str(caught.value)
        body = {
            "model": "viduq2",
            "images": ["https://example.com/a.png", "s3://b/c.png"],
            "prompt": "A cook.",
        }
        with pytest.raises(RequestValidationError) as caught:
            request_from_json(body, media_root=tmp_path)
        assert caught.value.fields == ("images[1]",)
        assert "unsupported URL scheme 's3'" in str(caught.value)

    @pytest.mark.parametrize(
        ("item", "expected"),
        [
            ("ming.png", "{root}/ming.png"),
            ("shots/ming.png", "{root}/shots/ming.png"),
            ("file://ming.png", "{root}/ming.png"),
            ("file:ming.png", "{root}/ming.png"),
            ("file:///srv/media/ming.png", "/srv/media/ming.png"),
            ("FILE://ming.png", "{root}/ming.png"),
        ],
    )
    def test_local_files(self, tmp_path: Path, item: str, expected: str) -> None:
        """A string without a scheme, or a file: URL, is a file under the media root (absolute stays absolute)."""
        body = {"model": "viduq2", "images": [item], "prompt": "A cook."}
        (image,) = request_from_json(body, media_root=tmp_path).images
        assert image == Path(expected.format(root=tmp_path))

    @pytest.mark.parametrize(
        "item", ["https://example.com/a.png", "HTTPS://EXAMPLE.COM/A.PNG", "Http://example.com/a.png"]
    )
    def test_urls_in_any_case_stay_urls(self, tmp_path: Path, item: str) -> None:
        """Schemes are case-insensitive: ``HTTPS://`` is a URL, not a file named that under the media root."""
        body = {"model": "viduq2", "images": [item], "prompt": "A cook."}
        assert request_from_json(body, media_root=tmp_path).images == (item,)

    def test_data_uri_in_any_case_stays_a_data_uri(self, tmp_path: Path) -> None:
        uri = "DATA:image/png;base64," + base64.b64encode(make_png(256, 256)).decode()
        body = {"model": "viduq2", "images": [uri], "prompt": "A cook."}
        assert request_from_json(body, media_root=tmp_path).images == (uri,)


# --- the emulator refuses what the SDK refuses -----------------------------------------------------


async def create_raw(body: bytes) -> tuple[int, Any]:
    """POST ``body`` as it is to an emulator's reference2video; the status and the decoded answer."""
    async with running() as emu, aiohttp.ClientSession() as session:
        async with session.post(
            f"{emu.base_url}/ent/v2/reference2video",
            data=body,
            headers={"Authorization": f"Token {emu.api_key}", "Content-Type": "application/json"},
        ) as response:
            answer = (response.status, await response.json())
        assert emu.stats.tasks_created == 0
        return answer


class TestEmulatorAgrees:
    """The emulator reads bodies with the SDK's validation, so it refuses the same things, as Vidu would."""

    async def test_invalid_base64(self) -> None:
        body = {"model": "viduq2", "images": ["data:image/png;base64,iVBOR!!!"], "prompt": "A cook."}
        status, answer = await create_raw(json.dumps(body).encode())
        assert (status, answer["reason"]) == (400, "FieldInvalid")
        assert "images[0]" in answer["message"]

    async def test_lone_surrogate(self) -> None:
        """The JSON escape of a lone surrogate decodes to text no UTF-8 holds: refused, as the SDK refuses it."""
        body = b'{"model": "viduq2", "images": ["https://example.com/a.png"], "prompt": "A \\ud800 cook."}'
        status, answer = await create_raw(body)
        assert (status, answer["reason"]) == (400, "FieldInvalid")
        assert "prompt" in answer["message"]

    async def test_unsupported_url_scheme(self) -> None:
        body = {"model": "viduq2", "images": ["ftp://example.com/a.png"], "prompt": "A cook."}
        status, answer = await create_raw(json.dumps(body).encode())
        assert (status, answer["reason"]) == (400, "FieldInvalid")
        assert "images[0]" in answer["message"]
