"""The package's public face: exports, version, typing marker, entry points."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

import vidu_async
from vidu_async import emulator, exceptions, journal


def _public_names(module: object) -> list[str]:
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith("vidu_async")
        and not isinstance(value, type(sys))
    )


class TestExports:
    """``__all__`` is sorted, complete and importable."""

    def test_all_is_sorted(self) -> None:
        """``__all__`` lists names in sorted order (constants first, as isort orders them)."""
        for module in (vidu_async, exceptions, emulator, journal):
            assert list(module.__all__) == sorted(module.__all__, key=lambda n: (not n.isupper(), n)), module

    def test_all_matches_public_names(self) -> None:
        """Every public class or function defined in the package is exported, and nothing else."""
        for module in (vidu_async, exceptions, emulator, journal):
            exported = set(module.__all__)
            for name in _public_names(module):
                assert name in exported, f"{module.__name__}.{name} is public but not in __all__"
            for name in exported:
                assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name}"

    def test_version_from_metadata(self) -> None:
        """``__version__`` is the installed distribution's version."""
        assert vidu_async.__version__ == importlib.metadata.version("vidu-async")

    def test_typed_marker_shipped(self) -> None:
        """The package carries ``py.typed`` so users' type checkers read its annotations."""
        assert (Path(vidu_async.__file__).parent / "py.typed").is_file()

    def test_runtime_dependencies(self) -> None:
        """The runtime depends on exactly aiohttp, attrs, cattrs and anyio."""
        requires = importlib.metadata.requires("vidu-async") or []
        runtime = sorted(
            r.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip().lower()
            for r in requires
            if "extra ==" not in r
        )
        assert runtime == ["aiohttp", "anyio", "attrs", "cattrs"]


class TestEntryPoints:
    """The console script and ``python -m`` both reach the CLI."""

    def test_python_dash_m(self) -> None:
        """``python -m vidu_async --version`` prints the version."""
        result = subprocess.run(
            [sys.executable, "-m", "vidu_async", "--version"], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        assert vidu_async.__version__ in result.stdout

    def test_console_script_declared(self) -> None:
        """The ``vidu-async`` console script points at the CLI's main."""
        scripts = importlib.metadata.entry_points(group="console_scripts")
        assert [e.value for e in scripts if e.name == "vidu-async"] == ["vidu_async.cli:main"]


class TestDesignNames:
    """The public names DESIGN.md fixes (other tools are written against them) exist."""

    KINDS = (
        "Reference2Video", "Subject", "Text2Video", "Img2Video", "StartEnd2Video", "MultiFrame", "KeyFrame",
        "Template", "TemplateStory", "Extend", "Upscale", "LipSync", "Image2Dance", "Reference2Image",
        "Text2Audio", "Timing2Audio", "request_from_json",
    )  # fmt: skip
    CORE = (
        "ViduClient", "Task", "TaskState", "Creation", "Credits", "Timeouts", "GLOBAL_BASE_URL", "CHINA_BASE_URL",
        "__version__", "BatchResult", "PollPolicy", "RetryPolicy", "Journal", "SQLiteJournal", "PostgresJournal",
    )  # fmt: skip
    METHODS = (
        "submit", "get_task", "cancel", "list_tasks", "get_credits", "aclose", "watch", "wait", "generate",
        "generate_many", "download", "serve_callbacks", "text_to_speech", "clone_voice", "recommend_prompts",
    )  # fmt: skip

    @pytest.mark.parametrize("name", KINDS + CORE)
    def test_exported(self, name: str) -> None:
        assert name in vidu_async.__all__
        assert getattr(vidu_async, name) is not None

    @pytest.mark.parametrize("name", METHODS)
    def test_client_method(self, name: str) -> None:
        assert callable(getattr(vidu_async.ViduClient, name))

    def test_every_kind_has_its_type_exported(self) -> None:
        from vidu_async._kinds import KINDS

        for kind in KINDS.values():
            assert getattr(vidu_async, kind.request_type.__name__) is kind.request_type
