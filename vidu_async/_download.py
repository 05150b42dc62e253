"""Streaming downloads of a task's creations: to a temporary file, checked, then renamed into place.

A file is streamed in chunks to ``<name>.part`` beside its destination (written from a worker
thread, so the event loop never waits on the disk) as the server sent it: ``Accept-Encoding:
identity`` is asked and nothing is decompressed, so its size compares with the announced length.
Only when it has that length, is the kind of media its name says (an ``.mp4`` an ISO BMFF video, a
``.png``/``.jpg`` or ``-cover.jpg`` an image, an ``.mp3``/``.wav``... audio) and is whole by its
own structure (:func:`_sniff.why_incomplete`) is it renamed (``os.replace``) to its final name: a
finished name is always a whole file.

Names: ``{task_id}-{creation_id}`` and a suffix. A video is ``.mp4``. The service documents no
format for images and audio, so their suffix is settled once the file is served: the link path's
own when it is one of the media's, else the ``Content-Type``'s, else the one its bytes sniff as,
else ``.png``/``.mp3``. When the media itself is not known (``output=None``) it is told the same
way (the link's suffix, the ``Content-Type``, the bytes). A finished file is found again under any
of its media's suffixes, so a re-run does not fetch it again.

Bounds (:class:`DownloadPolicy`): an announced or actual size over ``max_bytes`` is refused and its
``.part`` removed; a body slower than ``stall_bytes`` per ``stall_timeout`` is stopped and resumed.
An interrupted download resumes from its ``.part`` with a Range request, and a 206 answer that does
not start at the byte asked for is not trusted (the ``.part`` is discarded). A link that expired (or
answers 401/403/404/410) is replaced by a fresh one read from the task. A file already in place is
kept only if it is whole; otherwise it is deleted and downloaded again. File names come from the
task and creation ids, never from the URL, and never leave the destination folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Final
from urllib.parse import parse_qs, urlsplit

import anyio
import attrs

from ._config import DEFAULT_DOWNLOADS, DownloadPolicy
from ._models import Creation, Task
from ._sniff import describe, sniff, why_incomplete
from ._transport import Transport
from .exceptions import DownloadError, TransportError, ViduError

__all__ = ["PART_SUFFIX", "Downloader", "creation_files", "safe_name"]

logger: Final = logging.getLogger("vidu_async")

PART_SUFFIX: Final = ".part"
#: Statuses that mean "this link no longer works; ask the task for a fresh one".
_STALE_LINK: Final = frozenset({401, 403, 404, 410})
_SAFE: Final = re.compile(r"[^A-Za-z0-9_-]")
_CONTENT_RANGE: Final = re.compile(r"bytes\s+(?P<start>\d+)-(?P<end>\d+)/(?P<total>\d+|\*)", re.IGNORECASE)
#: What each kind of file must sniff as before it is renamed into place, and its name in messages.
_IMAGES: Final = frozenset({"image/jpeg", "image/png", "image/webp", "image/bmp"})
_VIDEOS: Final = frozenset({"video/mp4", "video/quicktime"})
_ACCEPTED: Final = {
    "video": _VIDEOS,
    "watermarked": _VIDEOS,
    "cover": _IMAGES,
    "image": _IMAGES,
    "audio": frozenset(
        {"audio/mpeg", "audio/wav", "audio/mp4", "audio/aac", "audio/ogg", "audio/flac", "audio/x-ms-wma"}
    ),
}
_WANTED: Final = {
    "video": "an MP4 video",
    "watermarked": "an MP4 video",
    "cover": "an image",
    "image": "an image",
    "audio": "audio",
    None: "a video, an image or audio",
}
#: A task's main file by the media its kind produces: the suffixes taken as they are from its
#: link's path or its type (the service documents none for images and audio), most usual first,
#: and the one used when nothing tells. A video is always ``.mp4`` (the only video accepted).
_SUFFIXES: Final[dict[str, tuple[tuple[str, ...], str]]] = {
    "video": ((".mp4",), ".mp4"),
    "image": ((".png", ".jpg", ".jpeg", ".webp", ".bmp"), ".png"),
    "audio": ((".mp3", ".wav", ".m4a", ".aac", ".ogg", ".flac", ".wma"), ".mp3"),
}
#: The main file's media and suffix by a MIME type, as served in ``Content-Type`` or sniffed
#: (with the aliases servers use).
_TYPES: Final[dict[str, tuple[str, str]]] = {
    "video/mp4": ("video", ".mp4"),
    "video/quicktime": ("video", ".mp4"),
    "image/png": ("image", ".png"),
    "image/jpeg": ("image", ".jpg"),
    "image/jpg": ("image", ".jpg"),
    "image/pjpeg": ("image", ".jpg"),
    "image/webp": ("image", ".webp"),
    "image/bmp": ("image", ".bmp"),
    "image/x-ms-bmp": ("image", ".bmp"),
    "audio/mpeg": ("audio", ".mp3"),
    "audio/mp3": ("audio", ".mp3"),
    "audio/wav": ("audio", ".wav"),
    "audio/x-wav": ("audio", ".wav"),
    "audio/wave": ("audio", ".wav"),
    "audio/vnd.wave": ("audio", ".wav"),
    "audio/mp4": ("audio", ".m4a"),
    "audio/x-m4a": ("audio", ".m4a"),
    "audio/aac": ("audio", ".aac"),
    "audio/x-aac": ("audio", ".aac"),
    "audio/ogg": ("audio", ".ogg"),
    "audio/flac": ("audio", ".flac"),
    "audio/x-flac": ("audio", ".flac"),
    "audio/x-ms-wma": ("audio", ".wma"),
}
#: Bytes read from the start of a file to tell its kind.
_HEAD: Final = 64


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
    """One file of a task to fetch.

    ``kind`` is ``"cover"`` or ``"watermarked"`` for those, else the main file's media (``"video"``,
    ``"image"``, ``"audio"``), or ``None`` when it is told by what is served. The main file's suffix
    is only settled once it is served (:func:`_settle`); ``suffix`` is the one its link's path gives,
    else its media's usual one, else ``""`` (and its ``.part`` is named by that).
    """

    kind: str | None
    creation_id: str
    index: int  # the creation's position in the task
    stem: str
    suffix: str

    @property
    def name(self) -> str:
        """The name as far as it is known before the file is served."""
        return f"{self.stem}{self.suffix}"

    @property
    def fixed(self) -> bool:
        """Whether the name is fixed (a cover or watermarked copy), not settled by what is served."""
        return self.kind in ("cover", "watermarked")

    def candidates(self) -> list[tuple[str, str]]:
        """Where a finished copy may already be: ``(name, kind to check it as)``, the likeliest first."""
        if self.fixed:
            assert self.kind is not None
            return [(self.name, self.kind)]
        media = (self.kind,) if self.kind is not None else tuple(_SUFFIXES)
        found = [(suffix, m) for m in media for suffix in _SUFFIXES[m][0]]
        found.sort(key=lambda pair: pair[0] != self.suffix)  # stable: the link's own suffix first
        return [(f"{self.stem}{suffix}", m) for suffix, m in found]


def _path_suffix(url: str) -> str:
    return PurePosixPath(urlsplit(url).path).suffix.lower()


def _hinted(output: str | None, url: str) -> tuple[str, str] | None:
    """The media and suffix the link's path gives (``.png`` for an image), if it is one of the
    media's (any media's when ``output`` is ``None``)."""
    suffix = _path_suffix(url)
    for media, (known, _) in _SUFFIXES.items():
        if suffix in known and output in (None, media):
            return media, suffix
    return None


def _typed(output: str | None, mime: str | None) -> tuple[str, str] | None:
    """The media and suffix a MIME type gives (``image/jpeg``: an image, ``.jpg``), if it is of
    ``output`` (any media when ``None``). A served type of no known suffix still tells its media
    (``image/gif``), with that media's usual suffix, when ``output`` is ``None``."""
    if not mime:
        return None
    mime = mime.partition(";")[0].strip().lower()
    found = _TYPES.get(mime)
    if found is None and output is None and mime.partition("/")[0] in _SUFFIXES:
        media = mime.partition("/")[0]
        found = media, _SUFFIXES[media][1]
    if found is None or output not in (None, found[0]):
        return None
    return found


def _settle(
    output: str | None, url: str, content_type: str | None, sniffed: str | None
) -> tuple[str | None, str]:
    """The main file's media and suffix once served: told by its link's path (when one of the
    media's suffixes), else by the ``Content-Type`` served, else by the type its bytes sniff as,
    else the media's usual suffix (``.mp4``, ``.png``, ``.mp3``).

    With ``output`` ``None`` the media is unknown and told the same way; when nothing tells, it
    stays ``None`` (and the file is refused).
    """
    for found in (_hinted(output, url), _typed(output, content_type), _typed(output, sniffed)):
        if found is not None:
            return found
    if output is None:
        return None, ""
    return output, _SUFFIXES[output][1]


def creation_files(
    task: Task, *, cover: bool = False, watermarked: bool = False, output: str | None = None
) -> list[_File]:
    """The files to fetch for ``task``: ``{task_id}-{creation_id}.mp4`` for each video creation
    (plus ``-cover.jpg`` and ``-wm.mp4`` when asked and offered); a creation of an image or audio
    kind (``output``) is named by that media (``.png``, ``.jpg``, ``.mp3``...). With ``output``
    ``None`` the media is told by what is served, and the suffix is the link's own until then.

    Creations whose (sanitized) ids repeat within the task also carry their position,
    ``{task_id}-{creation_id}.{index}.mp4``, so that each has a file and a ``.part`` of its own;
    unique ids keep the plain names (journals and results files list them).
    """
    files: list[_File] = []
    base = safe_name(task.id)
    stems = [
        f"{base}-{safe_name(creation.id or str(index))}" for index, creation in enumerate(task.creations)
    ]
    repeated = {stem for stem, count in Counter(stems).items() if count > 1}
    for index, (creation, stem) in enumerate(zip(task.creations, stems, strict=True)):
        if stem in repeated:
            stem = f"{stem}.{index}"  # safe names have no dot: this cannot meet another id's name
        if creation.url:
            hint = _hinted(output, creation.url)
            suffix = hint[1] if hint else _SUFFIXES[output][1] if output is not None else ""
            files.append(_File(output, creation.id, index, stem, suffix))
        if cover and creation.cover_url:
            files.append(_File("cover", creation.id, index, f"{stem}-cover", ".jpg"))
        if watermarked and creation.watermarked_url:
            files.append(_File("watermarked", creation.id, index, f"{stem}-wm", ".mp4"))
    return files


def _url_of(task: Task, file: _File) -> str:
    """The file's link in ``task`` (the creation at its position, else the first with its id)."""
    creations = task.creations
    if file.index < len(creations) and creations[file.index].id == file.creation_id:
        return _pick(creations[file.index], file.kind)
    for creation in creations:
        if creation.id == file.creation_id:
            return _pick(creation, file.kind)
    return ""


def _pick(creation: Creation, kind: str | None) -> str:
    if kind == "cover":
        return creation.cover_url
    return creation.watermarked_url if kind == "watermarked" else creation.url


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
        self,
        task: Task,
        dest: str | os.PathLike[str],
        *,
        cover: bool = False,
        watermarked: bool = False,
        output: str | None = None,
    ) -> list[Path]:
        """Every file of ``task`` into ``dest``; returns their paths. Files already there are kept
        when whole; any other is downloaded again.

        Args:
            task: A finished task.
            dest: The folder (created if needed).
            cover: Also save each cover image.
            watermarked: Also save each watermarked video, when the task has one.
            output: The media of the task's kind (``"video"``, ``"image"``, ``"audio"``: its
                ``TaskKind.output``); ``None`` when unknown: each creation's media is then told by
                its link's suffix, the ``Content-Type`` served, or its bytes.
        """
        if output is not None and output not in _SUFFIXES:
            raise ValueError(f"output must be one of {', '.join(_SUFFIXES)} or None, not {output!r}")
        folder = Path(dest)
        await anyio.to_thread.run_sync(lambda: folder.mkdir(parents=True, exist_ok=True))
        root = await anyio.to_thread.run_sync(folder.resolve)
        files = creation_files(task, cover=cover, watermarked=watermarked, output=output)
        for f in files:
            for name, _ in f.candidates():
                _inside(root, name)  # cannot fail with safe names; checked anyway
        paths: dict[int, Path] = {}
        current = task
        results: dict[int, BaseException] = {}

        async def one(i: int) -> None:
            nonlocal current
            try:
                current, paths[i] = await self._fetch(current, files[i], root)
            except (ViduError, OSError) as exc:
                results[i] = exc

        async with anyio.create_task_group() as tg:
            for i in range(len(files)):
                tg.start_soon(one, i)
        if results:
            first = results[min(results)]
            if isinstance(first, ViduError):
                raise first
            raise DownloadError(f"cannot write {files[min(results)].name}: {first}") from first
        return [paths[i] for i in range(len(files))]

    async def _fetch(self, task: Task, file: _File, root: Path) -> tuple[Task, Path]:
        """One file, resumed and refreshed as needed; returns the task as last read and the path."""
        kept = await anyio.to_thread.run_sync(_keep_existing, root, file)
        if kept is not None:
            return task, kept
        part = root / f"{file.name}{PART_SUFFIX}"
        async with self._slots:
            refreshed = False
            for attempt in range(1, self._attempts + 1):
                url = _url_of(task, file)
                if not url or (_expired(url, time.time()) and not refreshed):
                    task, refreshed = await self._refresh(task.id), True
                    continue
                try:
                    return task, await self._stream(url, part, root, file)
                except _StaleLink as stale:
                    if refreshed and attempt > 2:
                        raise DownloadError(
                            f"{file.name}: the link answers {stale.status} even fresh"
                        ) from None
                    logger.info(
                        "link for %s answered %d; reading the task for a fresh one", file.name, stale.status
                    )
                    task, refreshed = await self._refresh(task.id), True
                except _Refused as refused:
                    # Nothing of this answer can become a good file, and asking again gets the same.
                    await anyio.Path(part).unlink(missing_ok=True)
                    raise DownloadError(str(refused)) from None
                except (TransportError, DownloadError) as exc:
                    if attempt == self._attempts:
                        raise
                    logger.info("download of %s interrupted (%s); trying again", file.name, exc)
                    await anyio.sleep(min(2.0, 0.2 * 2**attempt))
        raise DownloadError(f"{file.name}: gave up after {self._attempts} attempts")

    async def _stream(self, url: str, part: Path, root: Path, file: _File) -> Path:
        """Fetch ``url`` into ``part`` (resuming it), check it, rename it to its name in ``root``
        (for a main file, settled by what was served); returns that path.

        Raises:
            _StaleLink: the link is refused; a fresh one may work.
            _Refused: the answer can never make a good file (over the size bound, encoded, or not
                the media the name says, though downloaded afresh).
            DownloadError: an interruption (short, stalled, an untrusted 206, a resumed ``.part``
                that turned out not to be this file's): the next attempt resumes or starts over.
            TransportError: the connection failed.
        """
        policy = self.policy
        name = file.name
        have = await _size_of(part)
        if have > policy.max_bytes:  # not the start of any file that could be accepted
            await anyio.Path(part).unlink()
            have = 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        resumed = False
        total: int | None = None
        served: str | None = None  # the Content-Type of the file (not of a 416's error body)
        # One deadline for the whole exchange, pushed back each time `stall_bytes` more arrive.
        watch = anyio.CancelScope(deadline=anyio.current_time() + policy.stall_timeout)
        with watch:
            async with self._transport.stream(url, headers=headers) as (status, response_headers, chunks):
                if status in _STALE_LINK:
                    raise _StaleLink(status)
                if status == 416 and have:
                    if _total_of(response_headers) != have:
                        await anyio.Path(part).unlink()  # the partial file is not a prefix of this file
                        raise DownloadError(f"{name}: the partial file did not match; starting again")
                    resumed, total = True, have  # the partial file is whole (a crash came before the rename)
                elif status not in (200, 206):
                    raise DownloadError(f"{name}: the download answered HTTP {status}")
                else:
                    resumed = status == 206
                    served = response_headers.get("content-type")
                    total = await self._announced(status, response_headers, have, part, name)
                    await self._receive(chunks, part, name, have if resumed else 0, total, watch)
        if watch.cancelled_caught:
            raise DownloadError(
                f"{name}: stalled (fewer than {policy.stall_bytes} bytes in "
                f"{policy.stall_timeout:g} s); will resume"
            )
        kind = file.kind
        if not file.fixed:
            head = await anyio.to_thread.run_sync(_head_of, part)
            info = sniff(head)
            kind, suffix = _settle(file.kind, url, served, info.mime if info is not None else None)
            name = f"{file.stem}{suffix}"
        path = _inside(root, name)
        verdict = await anyio.to_thread.run_sync(_inspect, part, kind)
        if verdict is None:
            await anyio.to_thread.run_sync(os.replace, part, path)
            return path
        if total is None and verdict.cut_short:
            # No length was announced, so a dropped connection looks like the end of the body.
            raise DownloadError(f"{name}: {verdict}; will resume")
        if resumed:  # the partial file may have been another file's: start over
            await anyio.Path(part).unlink(missing_ok=True)
            raise DownloadError(f"{name}: after resuming, {verdict}; starting again")
        raise _Refused(f"{name}: {verdict}; not saved")

    async def _announced(
        self, status: int, headers: Mapping[str, str], have: int, part: Path, name: str
    ) -> int | None:
        """The whole file's size as the headers of a 200 or 206 announce it (``None``: unknown),
        once the answer is found fit to write."""
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            raise _Refused(
                f"{name}: the server sent it {encoding}-encoded though identity was asked; not saved"
            )
        length = _number(headers.get("content-length"))
        total: int | None = length
        if status == 206:
            match = _CONTENT_RANGE.fullmatch(headers.get("content-range", "").strip())
            if not have or match is None or int(match["start"]) != have:
                await anyio.Path(part).unlink(missing_ok=True)
                asked = f"from byte {have}" if have else "without Range"
                got = (
                    f"Content-Range {headers['content-range']!r}"
                    if "content-range" in headers
                    else "no Content-Range"
                )
                raise DownloadError(f"{name}: a 206 answer to a request {asked} ({got}); starting again")
            total = int(match["total"]) if match["total"] != "*" else None
            if total is None and length is not None:
                total = have + length
        if total is not None and total > self.policy.max_bytes:
            raise _Refused(
                f"{name}: the server announces {total} bytes, over DownloadPolicy.max_bytes "
                f"({self.policy.max_bytes}); not saved"
            )
        return total

    async def _receive(
        self,
        chunks: AsyncIterator[bytes],
        part: Path,
        name: str,
        start: int,
        total: int | None,
        watch: anyio.CancelScope,
    ) -> None:
        """Write the body to ``part`` from byte ``start``, within the size bound, pushing back the
        stall deadline each time ``stall_bytes`` more have come."""
        policy = self.policy
        limit = policy.max_bytes if total is None else min(total, policy.max_bytes)
        written = start
        window = 0
        out = await anyio.open_file(part, "ab" if start else "wb")
        try:
            async for chunk in chunks:
                written += len(chunk)
                if written > limit:
                    raise _Refused(
                        f"{name}: the server sent more than the {total} bytes it announced; not saved"
                        if total is not None and total <= policy.max_bytes
                        else f"{name}: the body goes past DownloadPolicy.max_bytes "
                        f"({policy.max_bytes}); not saved"
                    )
                await out.write(chunk)
                window += len(chunk)
                if window >= policy.stall_bytes:
                    window = 0
                    watch.deadline = anyio.current_time() + policy.stall_timeout
        finally:
            with anyio.CancelScope(shield=True):  # closed even when the stall deadline cancels
                await out.aclose()
        if total is not None and written < total:
            raise DownloadError(f"{name}: got {written} bytes of {total}; will resume")


class _StaleLink(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Refused(Exception):
    """An answer that can never make a good file: its ``.part`` is removed and it is not retried."""


async def _size_of(path: Path) -> int:
    try:
        return (await anyio.Path(path).stat()).st_size
    except FileNotFoundError:
        return 0


def _number(text: str | None) -> int | None:
    return int(text) if text is not None and text.strip().isdigit() else None


def _total_of(headers: Mapping[str, str]) -> int | None:
    total = (headers.get("content-range") or "").rpartition("/")[2]
    return int(total) if total.isdigit() else None


@attrs.frozen
class _Verdict:
    """Why a file is not a whole file of its kind."""

    problem: str
    cut_short: bool  # the right kind, but not whole (rather than another kind altogether)

    def __str__(self) -> str:
        return self.problem


def _inside(root: Path, name: str) -> Path:
    path = root / name
    if root not in path.resolve().parents:  # cannot happen with safe names; checked anyway
        raise DownloadError(f"refusing to write outside {root}: {name}")
    return path


def _head_of(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(_HEAD)


def _inspect(path: Path, kind: str | None) -> _Verdict | None:
    """Why the file at ``path`` is not a whole file of ``kind`` (``"got an HTML page, not an MP4
    video"``, ``"not whole: ..."``), or ``None``; a ``kind`` of ``None`` (no media could be told)
    is never whole. Reads a few headers only; runs in a worker thread."""
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size

        def read_at(offset: int, length: int) -> bytes:
            file.seek(offset)
            return file.read(length)

        head = read_at(0, _HEAD)
        info = sniff(head)
        if kind is None or info is None or info.mime not in _ACCEPTED[kind]:
            return _Verdict(f"got {describe(head)}, not {_WANTED[kind]}", cut_short=False)
        problem = why_incomplete(read_at, size)
        return None if problem is None else _Verdict(f"not whole: {problem}", cut_short=True)


def _keep_existing(root: Path, file: _File) -> Path | None:
    """A whole copy of ``file`` already in ``root`` (for a main file, under any of its media's
    suffixes, checked as the media its suffix says), or ``None``. A copy that is not whole is
    deleted, to be downloaded again. Runs in a worker thread."""
    for name, kind in file.candidates():
        path = root / name
        try:
            verdict = _inspect(path, kind)
        except FileNotFoundError:
            continue
        if verdict is None:
            return path
        logger.warning("%s: the file already there is not kept (%s); downloading it again", name, verdict)
        path.unlink(missing_ok=True)
    return None
