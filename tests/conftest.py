"""Shared fixtures: the asyncio backend for anyio's pytest plugin, fixtures on disk, a small request,
and the check of a refused command's one error line."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

# The PostgreSQL fixtures: a throwaway server per session, a fresh database per test.
from pg_cluster import postgres_cluster, postgres_dsn  # noqa: F401

import vidu_async as vidu

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def anyio_backend() -> str:
    """aiohttp is asyncio-only, so every async test runs on anyio's asyncio backend."""
    return "asyncio"


def load_fixture(name: str) -> Any:
    """A documented body from ``tests/fixtures`` (copied from the API research notes)."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def small_request(**changes: Any) -> vidu.Reference2Video:
    """A small valid subject call (viduq3, 5 s at 720p: 25 credits on the emulator), with ``changes``."""
    fields: dict[str, Any] = {
        "model": "viduq3",
        "subjects": [vidu.Subject(name="Ming", images=["https://example.com/ming.png"])],
        "prompt": "@Ming cooks hot pot.",
        "duration": 5,
    }
    fields.update(changes)
    return vidu.Reference2Video(**fields)


def png(width: int = 128, height: int = 128, *, padding: int = 0) -> bytes:
    """A whole black PNG of the given size (``padding`` bytes of a text chunk make it larger)."""
    raw = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    head = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    extra = chunk(b"tEXt", b"c\x00" + b"x" * padding) if padding else b""
    return b"\x89PNG\r\n\x1a\n" + head + extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def one_error_line(err: str) -> str:
    """The single ``error: ...`` line a refused command prints (and no traceback)."""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]
