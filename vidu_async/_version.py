"""The installed version, read from the package metadata."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__: str = version("vidu-async")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
