"""The scripts in ``examples/`` run against the emulator and type-check.

Each example picks the real service when ``VIDU_API_KEY`` is set and ``--emulator`` is not given,
else an in-process emulator configured by its module's ``EMULATOR``; the tests clear the key and
swap ``EMULATOR`` for a faster one, then call the example's ``main`` with arguments, as its
command line would. ``examples/fastapi_callbacks.py`` is exercised in ``tests/test_callbacks.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import attrs
import pytest

from vidu_async._kinds import kind_named
from vidu_async.emulator import EmulatorConfig

ROOT: Final = Path(__file__).resolve().parent.parent
EXAMPLES: Final = ROOT / "examples"
FTYP: Final = b"ftyp"


def load(name: str) -> ModuleType:
    """``examples/<name>.py`` as a module (the examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key in the environment: the examples must pick the emulator by themselves."""
    monkeypatch.delenv("VIDU_API_KEY", raising=False)
    monkeypatch.delenv("VIDU_BASE_URL", raising=False)


def fast(module: ModuleType, monkeypatch: pytest.MonkeyPatch, **changes: Any) -> ModuleType:
    """The example with its emulator sped up (same concurrency unless changed)."""
    config: EmulatorConfig = module.EMULATOR
    monkeypatch.setattr(module, "EMULATOR", attrs.evolve(config, **{"processing_time": 0.05, **changes}))
    return module


def lines(path: Path) -> list[str]:
    """The non-blank lines of a text file."""
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def files(folder: Path, *suffixes: str) -> list[Path]:
    """The files in ``folder`` with one of ``suffixes`` (every file without any)."""
    return sorted(p for p in folder.iterdir() if not suffixes or p.suffix in suffixes)


def mp4s(folder: Path) -> list[Path]:
    """The ``.mp4`` files in ``folder`` (none when it does not exist)."""
    return sorted(folder.glob("*.mp4"))


def is_mp4(path: Path) -> bool:
    data = path.read_bytes()
    return len(data) > 8 and data[4:8] == FTYP


class TestGenerateOne:
    """examples/generate_one.py: one video, saved; an invalid request is not sent."""

    async def test_saves_the_video(
        self,
        tmp_path: Path,
        no_key: None,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Without a key it uses the emulator, exits 0 and saves one MP4 it names."""
        example = fast(load("generate_one"), monkeypatch)
        status = await example.main(["--out", str(tmp_path), "--timeout", "30"])
        printed = capsys.readouterr().out
        assert status == 0
        assert "using the local emulator" in printed
        (video,) = mp4s(tmp_path)
        assert is_mp4(video)
        assert f"saved {video} ({len(video.read_bytes())} bytes)" in printed

    async def test_invalid_prompt(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A prompt naming an unknown subject exits 2 with the problem, and nothing is saved."""
        example = fast(load("generate_one"), monkeypatch)
        status = await example.main(["--emulator", "--prompt", "@XiaoGang waves", "--out", str(tmp_path)])
        err = capsys.readouterr().err
        assert status == 2
        assert "not sent, the request is invalid" in err
        assert "XiaoGang" in err
        assert mp4s(tmp_path) == []

    def test_as_a_script(self, tmp_path: Path) -> None:
        """`python examples/generate_one.py --emulator` runs as a script and exits 0."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIDU_")}
        done = subprocess.run(
            [sys.executable, str(EXAMPLES / "generate_one.py"), "--emulator", "--out", str(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        (video,) = mp4s(tmp_path)
        assert is_mp4(video)


class TestBatchScript:
    """examples/batch_script.py: every job of examples/jobs.jsonl, journaled; bad lines skipped."""

    async def test_jobs_then_resume(
        self,
        tmp_path: Path,
        no_key: None,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Every job succeeds with its file (a video, an image or a sound by its kind); the same command
        again reports them from the journal."""
        example = fast(load("batch_script"), monkeypatch)
        jobs = EXAMPLES / "jobs.jsonl"
        count = sum(1 for line in jobs.read_text(encoding="utf-8").splitlines() if line.strip())
        out = tmp_path / "out"

        assert await example.main([str(jobs), "--out", str(out)]) == 0
        first = capsys.readouterr().out
        keys = {json.loads(line)["key"] for line in jobs.read_text(encoding="utf-8").splitlines()}
        ok = re.findall(r"^\[\s*\d+\] ok\s+(\S+)\s", first, re.MULTILINE)
        assert sorted(ok) == sorted(keys)
        assert f"{count} succeeded, 0 failed, 0 lines skipped (0 from an earlier run)" in first
        outputs = [
            kind_named(json.loads(line).get("endpoint", "reference2video")).output for line in lines(jobs)
        ]
        videos = mp4s(out / "videos")
        assert len(videos) == outputs.count("video")
        assert all(is_mp4(video) for video in videos)
        assert len(list((out / "videos").glob("*.png"))) == outputs.count("image") == 1
        sounds = [
            p for p in (out / "videos").iterdir() if p.suffix in (".mp3", ".wav", ".m4a", ".aac", ".ogg")
        ]
        assert len(sounds) == outputs.count("audio") == 2

        assert await example.main([str(jobs), "--out", str(out)]) == 0
        again = capsys.readouterr().out
        assert again.count("(from the journal)") == count
        assert f"({count} from an earlier run); 0 credits charged by this run's tasks" in again

    async def test_unfinished_start_again_on_the_emulator(
        self,
        tmp_path: Path,
        no_key: None,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Tasks left running when the script ended (and its emulator with it) are submitted again."""
        example = load("batch_script")
        good = {"model": "viduq2", "images": ["https://example.com/a.png"], "prompt": "A cat.", "duration": 4}
        jobs = tmp_path / "jobs.jsonl"
        jobs.write_text("\n".join(json.dumps({"key": f"job-{i}", **good}) for i in range(3)) + "\n")
        out = tmp_path / "out"
        fast(example, monkeypatch, processing_time=60.0)
        assert await example.main([str(jobs), "--out", str(out), "--timeout", "0.5"]) == 1
        assert "3 failed" in capsys.readouterr().out

        fast(example, monkeypatch)
        assert await example.main([str(jobs), "--out", str(out)]) == 0
        again = capsys.readouterr().out
        assert "(3 unfinished item(s) of an earlier run on the emulator start again)" in again
        assert "3 succeeded, 0 failed, 0 lines skipped (0 from an earlier run)" in again
        assert len(mp4s(out / "videos")) == 3

    async def test_bad_lines_skipped(
        self,
        tmp_path: Path,
        no_key: None,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Lines that are not JSON, not UTF-8, not an object or not a valid request are skipped by number; exit 1."""
        example = fast(load("batch_script"), monkeypatch)
        good = {"model": "viduq2", "images": ["https://example.com/a.png"], "prompt": "A cat.", "duration": 4}
        jobs = tmp_path / "jobs.jsonl"
        jobs.write_bytes(
            b"\n".join(
                [
                    json.dumps({"key": "first", **good}).encode(),
                    b"{not json",
                    b'{"prompt": "\xff"}',
                    b"[1, 2]",
                    json.dumps({**good, "colour": "red"}).encode(),
                    json.dumps({**good, "duration": 99}).encode(),
                    b"[" * 5000 + b"]" * 5000,
                    json.dumps({"key": "last", **good}).encode(),
                ]
            )
            + b"\n"
        )

        status = await example.main([str(jobs), "--out", str(tmp_path / "out"), "--emulator"])
        captured = capsys.readouterr()
        assert status == 1
        skipped = re.findall(r"^skipped  jobs\.jsonl:(\d+): ", captured.err, re.MULTILINE)
        assert skipped == ["2", "3", "4", "5", "6", "7"]
        assert sorted(re.findall(r"^\[\s*\d+\] ok\s+(\S+)\s", captured.out, re.MULTILINE)) == [
            "first",
            "last",
        ]
        assert "2 succeeded, 0 failed, 6 lines skipped" in captured.out


class TestEveryKind:
    """examples/every_kind.py: one request of each kind, and the synchronous endpoints."""

    async def test_every_kind(
        self,
        tmp_path: Path,
        no_key: None,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Every kind succeeds and saves its media; the sync endpoints answer."""
        example = fast(load("every_kind"), monkeypatch)
        assert await example.main(["--out", str(tmp_path)]) == 0
        printed = capsys.readouterr().out
        for name in example.KINDS:
            assert re.search(rf"^{re.escape(name)}: \d+ -> \S+", printed, re.MULTILINE), name
        assert "speech: http" in printed
        assert "voice example_voice_01: preview http" in printed
        assert "idea (img2video):" in printed
        assert len(mp4s(tmp_path)) == 10  # thirteen kinds: one makes an image, two make sounds
        assert len(files(tmp_path, ".png")) == 1

    async def test_one_kind(
        self,
        tmp_path: Path,
        no_key: None,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        example = fast(load("every_kind"), monkeypatch)
        assert await example.main(["text2audio", "--out", str(tmp_path)]) == 0
        (sound,) = files(tmp_path)
        assert sound.suffix in (".mp3", ".wav")

    async def test_unknown_kind(self, no_key: None, monkeypatch: pytest.MonkeyPatch) -> None:
        example = fast(load("every_kind"), monkeypatch)
        with pytest.raises(SystemExit):
            await example.main(["text2speech"])


class TestPipeline:
    """examples/pipeline.py: producer, batch and publisher end together, every request published once."""

    async def test_every_request_published(
        self, no_key: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Six requests through two slots: each sent and published once as a success; exit 0."""
        example = fast(load("pipeline"), monkeypatch)
        status = await example.main(["--count", "6", "--max-in-flight", "2"])
        printed = capsys.readouterr().out
        assert status == 0
        keys = [f"cat-{n:03}" for n in range(6)]
        assert re.findall(r"^sent\s+(cat-\d+)", printed, re.MULTILINE) == keys
        published = re.findall(r"^published\s+(cat-\d+): task \d+ success ", printed, re.MULTILINE)
        assert sorted(published) == keys
        assert "published 6 of 6 requests, 6 succeeded" in printed


class TestTyping:
    """The examples hold to mypy --strict, like the package."""

    def test_mypy_strict(self) -> None:
        """mypy --strict finds nothing in examples/*.py."""
        scripts = sorted(str(path.relative_to(ROOT)) for path in EXAMPLES.glob("*.py"))
        result = subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", *scripts],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
