"""Streaming downloads of a task's videos: to a temporary file, checked, then renamed into place.

A file is streamed in chunks to ``<name>.part`` beside its destination (written from a worker
thread, so the event loop never waits on the disk), its size is checked against Content-Length, and
only then is it renamed (``os.replace``) to its final name: a finished name is always a whole file.
An interrupted download resumes from its ``.part`` with a Range request. A link that expired (or
answers 403/404/410) is replaced by a fresh one read from the task. File names come from the task
and creation ids, never from the URL, and never leave the destination folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, urlsplit

import anyio
import attrs

from ._config import DEFAULT_DOWNLOADS, DownloadPolicy
from ._models import Creation, Task
from ._transport import Transport
from .exceptions import DownloadError, TransportError, ViduError

__all__ = ["PART_SUFFIX", "Downloader", "creation_files", "safe_name"]

logger: Final = logging.getLogger("vidu_async")

PART_SUFFIX: Final = ".part"
#: Statuses that mean "this link no longer works; ask the task for a fresh one".
_STALE_LINK: Final = frozenset({401, 403, 404, 410})
_SAFE: Final = re.compile(r"[^A-Za-z0-9_-]")


def safe_name(text: str) -> str:
    """``text`` reduced to letters, digits, ``-`` and ``_`` (ids are numeric; anything else is hostile).

    An id that had to be changed gets a short digest of the original appended, so two ids that
    reduce alike (``a/b``, ``a?b``) still name two files, and the same id always names the same file.
    """
    cleaned = _SAFE.sub("_", text).strip("_")[:80]
    if cleaned and cleaned == text:
        return cleaned
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{cleaned or 'unnamed'}_{digest}"


@attrs.frozen
class _File:
    kind: str  # "video", "cover", "watermarked"
    creation_id: str
    name: str


def creation_files(task: Task, *, cover: bool = False, watermarked: bool = False) -> list[_File]:
    """The files to fetch for ``task``: ``{task_id}-{creation_id}.mp4`` for each creation (plus
    ``-cover.jpg`` and ``-wm.mp4`` when asked and offered)."""
    files: list[_File] = []
    base = safe_name(task.id)
    for index, creation in enumerate(task.creations):
        stem = f"{base}-{safe_name(creation.id or str(index))}"
        if creation.url:
            files.append(_File("video", creation.id, f"{stem}.mp4"))
        if cover and creation.cover_url:
            files.append(_File("cover", creation.id, f"{stem}-cover.jpg"))
        if watermarked and creation.watermarked_url:
            files.append(_File("watermarked", creation.id, f"{stem}-wm.mp4"))
    return files


def _url_of(task: Task, file: _File) -> str:
    for creation in task.creations:
        if creation.id == file.creation_id:
            return _pick(creation, file.kind)
    return ""


def _pick(creation: Creation, kind: str) -> str:
    return {"video": creation.url, "cover": creation.cover_url, "watermarked": creation.watermarked_url}[kind]


def _expired(url: str, now: float) -> bool:
    """Whether a pre-signed URL says it has expired (``Expires=<unix time>``, as the service signs them)."""
    values = parse_qs(urlsplit(url).query).get("Expires") or parse_qs(urlsplit(url).query).get("expires")
    if not values:
        return False
    try:
        return float(values[0]) <= now
    except ValueError:
        return False


class Downloader:
    """Downloads creations through a transport, a bounded number at a time.

    Args:
        transport: The client's transport (its session; no API key is sent to result URLs).
        refresh: Reads the task again, for fresh links.
        policy: Size bound, stall timeout, concurrency and attempts.
    """

    def __init__(
        self,
        transport: Transport,
        refresh: Callable[[str], Awaitable[Task]],
        *,
        policy: DownloadPolicy = DEFAULT_DOWNLOADS,
    ) -> None:
        self._transport = transport
        self._refresh = refresh
        self.policy = policy
        self._slots = anyio.CapacityLimiter(policy.concurrency)
        self._attempts = policy.attempts

    async def download(
        self, task: Task, dest: str | os.PathLike[str], *, cover: bool = False, watermarked: bool = False
    ) -> list[Path]:
        """Every file of ``task`` into ``dest``; returns their paths. Files already there are kept."""
        folder = Path(dest)
        await anyio.to_thread.run_sync(lambda: folder.mkdir(parents=True, exist_ok=True))
        root = await anyio.to_thread.run_sync(folder.resolve)
        files = creation_files(task, cover=cover, watermarked=watermarked)
        paths: list[Path] = [root / f.name for f in files]
        for path in paths:
            if root not in path.resolve().parents:  # cannot happen with safe names; checked anyway
                raise DownloadError(f"refusing to write outside {root}: {path.name}")
        current = task
        results: dict[int, BaseException] = {}

        async def one(i: int) -> None:
            nonlocal current
            try:
                current = await self._fetch(current, files[i], paths[i])
            except (ViduError, OSError) as exc:
                results[i] = exc

        async with anyio.create_task_group() as tg:
            for i in range(len(files)):
                tg.start_soon(one, i)
        if results:
            first = results[min(results)]
            if isinstance(first, ViduError):
                raise first
            raise DownloadError(f"cannot write {paths[min(results)].name}: {first}") from first
        return paths

    async def _fetch(self, task: Task, file: _File, path: Path) -> Task:
        """One file, resumed and refreshed as needed; returns the task as last read."""
        if await anyio.Path(path).exists():
            return task
        part = path.with_name(path.name + PART_SUFFIX)
        async with self._slots:
            refreshed = False
            for attempt in range(1, self._attempts + 1):
                url = _url_of(task, file)
                if not url or (_expired(url, time.time()) and not refreshed):
                    task, refreshed = await self._refresh(task.id), True
                    continue
                try:
                    await self._stream(url, part, path)
                    return task
                except _StaleLink as stale:
                    if refreshed and attempt > 2:
                        raise DownloadError(
                            f"{file.name}: the link answers {stale.status} even fresh"
                        ) from None
                    logger.info(
                        "link for %s answered %d; reading the task for a fresh one", file.name, stale.status
                    )
                    task, refreshed = await self._refresh(task.id), True
                except (TransportError, DownloadError) as exc:
                    if attempt == self._attempts:
                        raise
                    logger.info("download of %s interrupted (%s); resuming", file.name, exc)
                    await anyio.sleep(min(2.0, 0.2 * 2**attempt))
        raise DownloadError(f"{file.name}: gave up after {self._attempts} attempts")

    async def _stream(self, url: str, part: Path, path: Path) -> None:
        """Fetch ``url`` into ``part`` (resuming it), check its size, rename it to ``path``."""
        have = (await anyio.Path(part).stat()).st_size if await anyio.Path(part).exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        total: int | None
        async with self._transport.stream(url, headers=headers) as (status, response_headers, chunks):
            if status in _STALE_LINK:
                raise _StaleLink(status)
            if status == 416 and have and _total_of(response_headers) == have:
                total = written = have  # the partial file is already whole (a crash came before the rename)
            elif status == 416 and have:
                await anyio.Path(part).unlink()  # the partial file is not a prefix of this file
                raise DownloadError(f"{path.name}: the partial file did not match; starting again")
            elif status not in (200, 206):
                raise DownloadError(f"{path.name}: the download answered HTTP {status}")
            else:
                total = _expected_size(status, response_headers, have)
                written = have if status == 206 else 0
                async with await anyio.open_file(part, "ab" if status == 206 else "wb") as out:
                    async for chunk in chunks:
                        await out.write(chunk)
                        written += len(chunk)
        if total is not None and written != total:
            raise DownloadError(f"{path.name}: got {written} bytes of {total}; will resume")
        await anyio.to_thread.run_sync(os.replace, part, path)


class _StaleLink(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _total_of(headers: Mapping[str, str]) -> int | None:
    total = (headers.get("content-range") or "").rpartition("/")[2]
    return int(total) if total.isdigit() else None


def _expected_size(status: int, headers: Mapping[str, str], have: int) -> int | None:
    """The whole file's size from Content-Range (206) or Content-Length (200)."""
    length = headers.get("content-length")
    if status == 206:
        total = _total_of(headers)
        if total is not None:
            return total
        return have + int(length) if length and length.isdigit() else None
    return int(length) if length and length.isdigit() else None
