"""Local media at submit time: read files, check them, and encode them (and ``bytes``) as data URIs.

:func:`prepare` hands the resolved request to the caller's ``build`` (``_http.build_create``,
which encodes the body). Both run in a worker thread (``anyio.to_thread``) when there is anything
to read or encode, or a large body to build, so the event loop never waits on a disk, on base64 of
a 20 MB file or on its JSON; a small request of URLs is built on the loop. The caller's wait
for that thread is cancellable (Ctrl-C, a deadline): a cancelled submit returns at once and the
thread's result is dropped. Nothing in the thread can block for long either: only regular files
are read (a FIFO is opened without waiting for a writer, then refused; a device is refused
without being opened), a file's size is checked against the per-item limit before it is read,
and no read goes past one byte over that limit.
"""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

import anyio.to_thread

from . import _sniff, _validate
from ._models import Media, Request
from .exceptions import Problem, RequestValidationError

__all__ = ["media_to_data_uri", "prepare", "resolve_media"]

T = TypeVar("T")

#: Bodies estimated below this are built on the loop: a thread hop would cost more.
_INLINE_LIMIT: Final = 256 * 1024
#: How much of a file one read asks for.
_READ_CHUNK: Final = 1024 * 1024
#: Open for reading only, without waiting (a FIFO's open would wait for a writer), without the file
#: becoming the controlling terminal, in binary mode on Windows, and not inherited by child processes.
_OPEN_FLAGS: Final = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
#: What a file that is not a regular one is, by its type bits.
_FILE_KINDS: Final = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


async def prepare(request: Request, build: Callable[[Request], T]) -> T:
    """``build`` of ``request`` with its local media resolved (:func:`resolve_media`), off the
    event loop when there is a file to read, bytes to encode or a large body to build.

    Args:
        request: The request.
        build: Makes what is sent from a request whose media are all strings (URLs and data URIs),
            such as ``_http.build_create``; it runs in the worker thread too, so a large body is
            encoded there.

    Raises:
        RequestValidationError: a file cannot be read, is not a usable image or video, or is too
            large; or what ``build`` raises (a body over 20 MB). Nothing has been sent.
    """
    if not request.has_local_media and request._body_estimate < _INLINE_LIMIT:
        return build(request)
    # Cancelling the caller does not wait for the thread: its result is dropped. The thread itself
    # ends soon in any case (see the module docstring), so it never holds up the interpreter's exit.
    return await anyio.to_thread.run_sync(lambda: build(resolve_media(request)), abandon_on_cancel=True)


def media_to_data_uri(data: bytes, fallback_mime: str = "application/octet-stream") -> str:
    """Encode bytes as ``data:<sniffed type>;base64,...``."""
    info = _sniff.sniff(data[: 256 * 1024])
    mime = info.mime if info is not None else fallback_mime
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def resolve_media(request: Request) -> Request:
    """Blocking: ``request`` with every ``Path`` and ``bytes`` item replaced by a checked data URI
    (``request`` itself when it has none).

    Raises:
        RequestValidationError: every file that cannot be read, is not a usable image or video, or
            is too large, at once. (``bytes`` were checked when the request was constructed.)
    """
    if not request.has_local_media:
        return request
    local = request.local_media()
    problems: list[Problem] = []
    encoded: dict[str, str] = {}
    for where, item in local:
        uri = _encode_one(request, where, item, problems)
        if uri is not None:
            encoded[where] = uri
    if problems:
        raise RequestValidationError(problems, subject=_validate.request_label(request))
    resolved: Request = request.with_media(encoded)
    return resolved


def _encode_one(request: Request, where: str, item: Media, problems: list[Problem]) -> str | None:
    rule = request.media_rule(where)
    label = _label(request, where, item)
    if isinstance(item, Path):
        try:
            data = _read_file(item, rule.max_bytes)
        except _Unreadable as exc:
            problems.append(Problem(where, exc.message(label)))
            return None
        found = _validate.media_bytes_problems(data, rule.type, where, label, rule=rule)
        if found:
            problems.extend(found)
            return None
    elif isinstance(item, bytes):
        data = item  # checked when the request was constructed
    else:
        return None
    return media_to_data_uri(data)


def _label(request: Request, where: str, item: Media) -> str:
    label = _validate.where_label(request, where)
    if not isinstance(item, Path):
        return label
    file = f"file {str(item)!r}"
    return f"{label[:-1]}, {file})" if label else f" ({file})"


class _Unreadable(Exception):
    """A local file that is not read: ``problem`` says why, for the field's problem line."""

    def __init__(self, problem: str, *, detail: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.detail = detail

    def message(self, label: str) -> str:
        return f"{self.problem}{label}{self.detail}"


def _not_regular(mode: int) -> str | None:
    """Why a file of ``mode`` is not read, or ``None`` for a regular file."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "")
    return f"is not a regular file ({kind})" if kind else "is not a regular file"


def _read_file(path: Path, limit: int) -> bytes:
    """Blocking: the bytes of the regular file at ``path`` (links followed), at most ``limit`` of them.

    Checked before anything is read: a directory, FIFO, device or socket is refused, a device
    without even being opened, and a file whose size is over ``limit`` is refused from its size.
    The read stops one byte past ``limit``, so a file whose size is not known in advance (procfs)
    or that grows while it is read cannot make it run long or fill the memory.

    Raises:
        _Unreadable: the file cannot be opened or read, is not a regular file, or is over ``limit``.
    """
    try:
        # Before opening: opening a FIFO may wait for a writer, and opening a device can have effects.
        why = _not_regular(os.stat(path).st_mode)
        if why is not None:
            raise _Unreadable(why)
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise _Unreadable("cannot read the file", detail=f": {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)  # the file actually opened, which may have been swapped since the stat
        why = _not_regular(info.st_mode)
        if why is not None:
            raise _Unreadable(why)
        if info.st_size > limit:
            raise _Unreadable(
                f"is {_validate.megabytes(info.st_size)}", detail=f"; at most {_validate.megabytes(limit)}"
            )
        data = bytearray()
        while len(data) <= limit:
            chunk = os.read(fd, min(_READ_CHUNK, limit + 1 - len(data)))
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        raise _Unreadable("cannot read the file", detail=f": {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise _Unreadable(f"is larger than {_validate.megabytes(limit)}")
    return bytes(data)
