"""Shared fixtures: the asyncio backend for anyio's pytest plugin, fixtures on disk, an emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def anyio_backend() -> str:
    """aiohttp is asyncio-only, so every async test runs on anyio's asyncio backend."""
    return "asyncio"


def load_fixture(name: str) -> Any:
    """A documented body from ``tests/fixtures`` (copied from the API research notes)."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))
