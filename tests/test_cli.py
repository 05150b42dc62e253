"""The ``vidu-async`` command: ``cli.main`` in process (against ``--emulator`` or a running ``Emulator``),
and one real run in a subprocess."""

from __future__ import annotations

import codecs
import functools
import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import attrs
import pytest
from conftest import one_error_line
from conftest import small_request as request

import vidu_async as vidu
from vidu_async import cli
from vidu_async.cli import main
from vidu_async.emulator import Emulator, EmulatorConfig, FaultConfig

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "request.json"
KEY = "vda_cli_secret_51d3c0de"
FAST: dict[str, Any] = {"api_key": KEY, "created_time": 0.01, "processing_time": 0.05}
TASK_LINE = re.compile(r"^(\d{18,19})  (\w+)(  err_code=\w+)?(  credits=\d+)?$")
#: Commands every build has; `wait` and `submit --wait` may come and go, so they are not relied on.
COMMANDS = ("submit", "status", "cancel", "tasks", "credits", "emulator")


def run(*argv: str) -> tuple[int, str, str]:
    """Run the command in this process; the exit status, standard output and standard error."""
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


async def run_in_thread(*argv: str) -> tuple[int, str, str]:
    """Run the command in a worker thread (it runs its own event loop) while this loop serves an emulator."""
    return await anyio.to_thread.run_sync(functools.partial(run, *argv))


def against(emu: Emulator, *extra: str) -> tuple[str, ...]:
    """The connection options for ``emu``."""
    return ("--base-url", emu.base_url, "--api-key", emu.api_key, *extra)


@asynccontextmanager
async def connected(**config: Any) -> AsyncIterator[tuple[Emulator, vidu.ViduClient]]:
    """A running emulator and an SDK client on it, to set the scene for the command."""
    async with (
        Emulator(EmulatorConfig(**{**FAST, **config})) as emu,
        vidu.ViduClient(emu.api_key, base_url=emu.base_url) as client,
    ):
        yield emu, client


async def until(condition: Any, within: float = 5.0) -> None:
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - polling live state under a deadline is the intent
            await anyio.sleep(0.005)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def undocumented_options(help_text: str) -> list[str]:
    """Option lines of an argparse help text that carry no description."""
    lines = help_text.splitlines()
    missing = []
    for i, line in enumerate(lines):
        if not line.startswith("  -"):
            continue
        if re.search(r"\S\s{2,}\S", line.strip()):
            continue  # the description follows on the same line
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if following.startswith(" " * 8) and not following.lstrip().startswith("-"):
            continue  # the description is on the next line
        missing.append(line.strip())
    return missing


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key or base URL from the environment."""
    monkeypatch.delenv("VIDU_API_KEY", raising=False)
    monkeypatch.delenv("VIDU_BASE_URL", raising=False)


@pytest.fixture
def root_logging() -> Iterator[None]:
    """``--debug`` configures the root logger; put it back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


class TestWarnings:
    """The SDK's warnings reach the user as `warning: ...` lines, beside the command's own output."""

    async def test_throttled(self) -> None:
        """A 429 lowers the request rate, and the command says so in one warning line."""
        faults = FaultConfig(throttle=0.5, retry_after=0.01, endpoints=("create",), seed=0)
        async with connected(faults=faults) as (emu, _):
            status, out, err = await run_in_thread("submit", str(EXAMPLE), *against(emu))
        assert emu.stats.faults["throttle"] >= 1
        assert status == 0, err
        assert TASK_LINE.match(out.strip()), out
        lines = err.splitlines()
        assert lines
        assert all(
            line.startswith("warning: throttled by the service: request rate lowered to ") for line in lines
        )


class TestSubmitWithEmulator:
    """`submit FILE --emulator`: a whole run against an in-process emulator."""

    def test_example(self, no_env: None) -> None:
        """The shipped example is created: exit 0, the task id and `created` on one line."""
        status, out, err = run("submit", str(EXAMPLE), "--emulator", "--emulator-processing-time", "0.05")
        assert (status, err) == (0, "")
        match = TASK_LINE.match(out.strip())
        assert match, out
        assert match.group(2) == "created"
        assert match.group(4) == "  credits=25"

    def test_json(self, no_env: None) -> None:
        """`--json` prints one JSON object with the task's id, state, credits and fingerprint."""
        status, out, err = run("submit", str(EXAMPLE), "--emulator", "--json")
        assert (status, err) == (0, "")
        lines = out.splitlines()
        assert len(lines) == 1
        task = json.loads(lines[0])
        assert re.fullmatch(r"\d{18,19}", task["id"])
        assert task["state"] == "created"
        assert task["credits"] == 25
        assert task["payload"].startswith("vidu-async:")
        assert task["creations"] == []

    def test_stdin(self, no_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
        """`-` reads the request from standard input."""
        monkeypatch.setattr(sys, "stdin", io.StringIO(EXAMPLE.read_text(encoding="utf-8")))
        status, out, _ = run("submit", "-", "--emulator")
        assert status == 0
        assert TASK_LINE.match(out.strip())


class TestSubmitBadInput:
    """A request file that cannot be sent: exit 2, one clear error, no traceback, nothing sent."""

    def test_invalid_request(self, tmp_path: Path) -> None:
        """A request breaking a rule names the file and the field."""
        body = json.loads(EXAMPLE.read_text(encoding="utf-8"))
        body["duration"] = 99
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(body), encoding="utf-8")
        status, out, err = run("submit", str(path), "--emulator")
        assert status == 2
        assert out == ""
        assert "Traceback" not in err
        assert err.startswith("error: ")
        assert str(path) in err
        assert re.search(r"^\s*duration: .*99", err, re.MULTILINE), err

    def test_unknown_field(self, tmp_path: Path) -> None:
        """A field reference2video does not have is named."""
        body = {**json.loads(EXAMPLE.read_text(encoding="utf-8")), "colour": "red"}
        path = tmp_path / "extra.json"
        path.write_text(json.dumps(body), encoding="utf-8")
        status, _, err = run("submit", str(path), "--emulator")
        assert status == 2
        assert "Traceback" not in err
        assert "colour" in err

    def test_invalid_json(self, tmp_path: Path) -> None:
        """Broken JSON is reported with the file, line and column."""
        path = tmp_path / "broken.json"
        path.write_text('{\n  "model": "viduq3",\n  "prompt": oops\n}\n', encoding="utf-8")
        status, out, err = run("submit", str(path), "--emulator")
        assert status == 2
        assert out == ""
        line = one_error_line(err)
        assert f"{path}:3:13:" in line
        assert "JSON" in line

    def test_not_an_object(self, tmp_path: Path) -> None:
        """JSON that is not an object is refused clearly."""
        path = tmp_path / "list.json"
        path.write_text("[1, 2]", encoding="utf-8")
        status, _, err = run("submit", str(path), "--emulator")
        assert status == 2
        assert "JSON object" in one_error_line(err)

    def test_byte_order_mark(self, tmp_path: Path, no_env: None) -> None:
        """A request file saved with a UTF-8 byte order mark (as some Windows editors do) is read."""
        path = tmp_path / "bom.json"
        path.write_bytes(codecs.BOM_UTF8 + EXAMPLE.read_bytes())
        status, out, err = run("submit", str(path), "--emulator", "--emulator-processing-time", "0.05")
        assert (status, err) == (0, "")
        assert TASK_LINE.match(out.strip()), out

    def test_missing_file(self, tmp_path: Path) -> None:
        """A file that does not exist is named."""
        path = tmp_path / "nowhere.json"
        status, out, err = run("submit", str(path), "--emulator")
        assert status == 2
        assert out == ""
        line = one_error_line(err)
        assert str(path) in line
        assert "No such file" in line

    async def test_nothing_sent(self, tmp_path: Path) -> None:
        """An invalid request file never reaches the service."""
        path = tmp_path / "bad.json"
        path.write_text(json.dumps({"model": "viduq3", "prompt": "x" * 6000}), encoding="utf-8")
        async with connected() as (emu, _):
            status, _, err = await run_in_thread("submit", str(path), *against(emu))
            assert emu.stats.requests["create"] == 0
        assert status == 2
        assert "prompt" in err


class TestAgainstARunningEmulator:
    """status, cancel, tasks and credits against an emulator via --base-url/--api-key."""

    async def test_submit(self) -> None:
        """`submit` creates the task on the service it is pointed at."""
        async with connected() as (emu, _):
            status, out, _ = await run_in_thread("submit", str(EXAMPLE), *against(emu))
            match = TASK_LINE.match(out.strip())
            assert status == 0
            assert match, out
            assert match.group(1) in emu.tasks

    async def test_status(self) -> None:
        """`status` prints the state; a finished task lists its video and cover links."""
        async with connected() as (emu, client):
            task = await client.submit(request())
            with anyio.fail_after(5):
                await emu.wait_idle()
            status, out, err = await run_in_thread("status", task.id, *against(emu))
            json_status, json_out, _ = await run_in_thread("status", task.id, "--json", *against(emu))
        assert (status, err) == (0, "")
        lines = out.splitlines()
        assert lines[0] == f"{task.id}  success  credits=25"
        assert lines[1].startswith("  video ")
        assert f"{emu.base_url}/files/{task.id}/" in lines[1]
        assert lines[2].startswith("  cover ")
        assert json_status == 0
        data = json.loads(json_out)
        assert (data["id"], data["state"], data["payload"]) == (task.id, "success", task.payload)
        assert len(data["creations"]) == 1

    async def test_cancel(self) -> None:
        """`cancel` cancels a task still created; its status then shows UserCancelled with exit 1."""
        async with connected(created_time=30.0) as (emu, client):
            task = await client.submit(request())
            status, out, err = await run_in_thread("cancel", task.id, *against(emu))
            assert emu.tasks[task.id].err_code == "UserCancelled"
            shown = await run_in_thread("status", task.id, *against(emu))
            other = await client.submit(request())
            as_json = await run_in_thread("cancel", other.id, "--json", *against(emu))
        assert (status, out.strip(), err) == (0, f"cancelled {task.id}", "")
        assert shown[0] == 1
        assert shown[1].strip() == f"{task.id}  failed  err_code=UserCancelled  credits=0"
        assert as_json[0] == 0
        assert json.loads(as_json[1]) == {"cancelled": other.id}

    async def test_cancel_refused(self) -> None:
        """A processing task cannot be cancelled: exit 1 and Vidu's reason on one line."""
        async with connected(processing_time=30.0) as (emu, client):
            task = await client.submit(request())
            await until(lambda: emu.tasks[task.id].state is vidu.TaskState.PROCESSING)
            status, out, err = await run_in_thread("cancel", task.id, *against(emu))
        assert status == 1
        assert out == ""
        line = one_error_line(err)
        assert "BadRequest" in line
        assert "trace_id=" in line

    async def test_tasks(self) -> None:
        """`tasks` lists newest first, honours --limit, --state and --task-id, and prints JSON lines."""
        async with connected(created_time=30.0) as (emu, client):
            ids = [(await client.submit(request())).id for _ in range(4)]
            await client.cancel(ids[1])
            all_status, all_out, _ = await run_in_thread("tasks", *against(emu))
            limited = await run_in_thread("tasks", "--limit", "2", "--json", *against(emu))
            failed = await run_in_thread("tasks", "--state", "failed", "--json", *against(emu))
            chosen = await run_in_thread(
                "tasks", "--task-id", ids[0], "--task-id", ids[3], "--json", *against(emu)
            )
        assert all_status == 0
        listed = [TASK_LINE.match(line) for line in all_out.splitlines()]
        assert all(listed), all_out
        assert [m.group(1) for m in listed if m] == ids[::-1]
        assert [json.loads(line)["id"] for line in limited[1].splitlines()] == ids[::-1][:2]
        rows = [json.loads(line) for line in failed[1].splitlines()]
        assert [(r["id"], r["state"], r["err_code"]) for r in rows] == [(ids[1], "failed", "UserCancelled")]
        assert [json.loads(line)["id"] for line in chosen[1].splitlines()] == [ids[3], ids[0]]

    async def test_credits(self) -> None:
        """`credits` shows the balance and concurrency, as text or JSON."""
        async with connected(credits=1000, concurrency=3, created_time=30.0) as (emu, client):
            await client.submit(request())
            status, out, err = await run_in_thread("credits", *against(emu))
            json_status, json_out, _ = await run_in_thread("credits", "--json", *against(emu))
        assert (status, err) == (0, "")
        assert out.strip() == "metered: 975 credits, concurrency 0/3, 1 queued"
        assert json_status == 0
        assert json.loads(json_out) == {
            "remains": [
                {
                    "type": "metered",
                    "credit_remain": 975,
                    "concurrency_limit": 3,
                    "current_concurrency": 0,
                    "queue_count": 1,
                }
            ]
        }

    async def test_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without options the key and base URL come from VIDU_API_KEY and VIDU_BASE_URL."""
        async with connected() as (emu, _):
            monkeypatch.setenv("VIDU_API_KEY", emu.api_key)
            monkeypatch.setenv("VIDU_BASE_URL", emu.base_url)
            status, out, _ = await run_in_thread("credits")
        assert status == 0
        assert "concurrency 0/5" in out

    async def test_bearer_gateway(self) -> None:
        """`--auth-scheme Bearer` with a prefixed base URL reaches a reseller-style gateway."""
        async with connected(path_prefix="/vidu", auth_schemes=("Bearer",)) as (emu, _):
            status, out, _ = await run_in_thread("credits", "--auth-scheme", "Bearer", *against(emu))
            refused, _, err = await run_in_thread("credits", *against(emu))
        assert status == 0
        assert "credits" in out
        assert refused == 1
        assert "Unauthorized" in one_error_line(err)


class TestErrors:
    """Failures print one `error:` line and set the documented exit status."""

    async def test_unknown_task(self) -> None:
        """An unknown task: exit 1, one line starting `error:` with Vidu's reason and trace id, no key."""
        async with connected() as (emu, _):
            status, out, err = await run_in_thread("status", "123456789012345678", *against(emu))
        assert status == 1
        assert out == ""
        line = one_error_line(err)
        assert "TaskNotFound" in line
        assert re.search(r"trace_id=[0-9a-f]{32}", line)
        assert KEY not in err

    async def test_wrong_key(self) -> None:
        """A wrong key: exit 1, Unauthorized, and the key is not echoed."""
        async with connected() as (emu, _):
            status, _, err = await run_in_thread(
                "credits", "--base-url", emu.base_url, "--api-key", "vda_wrong_" + KEY
            )
        assert status == 1
        line = one_error_line(err)
        assert "Unauthorized" in line
        assert KEY not in line

    def test_no_key(self, no_env: None) -> None:
        """No key at all: exit 2, one line saying how to give one."""
        status, out, err = run("credits", "--base-url", "http://127.0.0.1:9")
        assert status == 2
        assert out == ""
        line = one_error_line(err)
        assert "VIDU_API_KEY" in line

    @pytest.mark.parametrize("task_id", ["", " "])
    def test_blank_task_id(self, task_id: str) -> None:
        """A blank task id is bad input: exit 2 and one plain line (no Python exception name)."""
        status, _, err = run("status", task_id, "--emulator")
        assert status == 2
        line = one_error_line(err)
        assert "ValueError" not in line
        assert "task id" in line

    def test_bad_base_url(self, no_env: None) -> None:
        """A base URL that is not http(s): exit 2."""
        status, _, err = run("credits", "--base-url", "ftp://example.com", "--api-key", KEY)
        assert status == 2
        assert "base_url" in one_error_line(err)

    def test_no_answer(self, no_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
        """Nobody listening: exit 3, one line."""
        # The command has no retry option; quick retries keep the test fast without changing the outcome.
        quick = attrs.evolve(vidu.DEFAULT_RETRY, initial=0.01, maximum=0.02)
        monkeypatch.setattr(cli, "ViduClient", functools.partial(vidu.ViduClient, retry=quick))
        status, _, err = run("credits", "--base-url", f"http://127.0.0.1:{free_port()}", "--api-key", KEY)
        assert status == 3
        assert "connect" in one_error_line(err)

    def test_run_with_no_answer(self, no_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """``run`` against a port nobody listens on exits 3 as the other commands do, with one
        error line and no results file (it tried every item and exited 1 before)."""
        quick = attrs.evolve(vidu.DEFAULT_RETRY, initial=0.01, maximum=0.02)
        monkeypatch.setattr(cli, "ViduClient", functools.partial(vidu.ViduClient, retry=quick))
        jobs = tmp_path / "jobs.jsonl"
        jobs.write_text(json.dumps(json.loads(EXAMPLE.read_text(encoding="utf-8"))) + "\n", encoding="utf-8")
        url = f"http://127.0.0.1:{free_port()}"
        out = tmp_path / "out"
        status, _, err = run("run", str(jobs), "--out", str(out), "--base-url", url, "--api-key", KEY)
        assert status == 3
        assert "connect" in one_error_line(err)
        assert not (out / "results.jsonl").exists()

    def test_run_with_no_answer_and_a_fixed_flight(
        self, no_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """With --max-in-flight (no credits call first) every item fails for want of an answer:
        exit 3 as well, each item's line saying so."""
        quick = attrs.evolve(vidu.DEFAULT_RETRY, initial=0.01, maximum=0.02)
        monkeypatch.setattr(cli, "ViduClient", functools.partial(vidu.ViduClient, retry=quick))
        jobs = tmp_path / "jobs.jsonl"
        jobs.write_text(
            (json.dumps(json.loads(EXAMPLE.read_text(encoding="utf-8"))) + "\n") * 2 + "{bad\n",
            encoding="utf-8",
        )
        url = f"http://127.0.0.1:{free_port()}"
        argv = ["run", str(jobs), "--out", str(tmp_path / "out"), "--base-url", url, "--api-key", KEY]
        status, printed, _ = run(*argv, "--max-in-flight", "2", "--plain")
        assert status == 3
        assert printed.count("FAIL") == 3

    async def test_debug_shows_traceback(self, root_logging: None) -> None:
        """`--debug` adds the traceback (and still ends with the error line), without the key."""
        async with connected() as (emu, _):
            status, _, err = await run_in_thread("status", "123456789012345678", "--debug", *against(emu))
        assert status == 1
        assert "Traceback (most recent call last)" in err
        assert "NotFoundError" in err
        assert err.rstrip().splitlines()[-1].startswith("error: ")
        assert KEY not in err


class TestEmulatorFaults:
    """``vidu-async emulator --fault NAME=VALUE`` injects faults into the served emulator."""

    def test_values_read_as_their_fields(self) -> None:
        """Rates, seconds, none, flags and endpoint lists become FaultConfig's values."""
        args = cli.build_parser().parse_args(
            ["emulator", "--fault", "rate_limit=0.08", "--fault", "retry_after=none", "--fault",
             "endpoints=create,get", "--fault", "seed=3", "--fault", "list_disabled=true"]
        )  # fmt: skip
        faults = cli._emulator_config(args).faults
        assert (
            faults.rate_limit,
            faults.retry_after,
            faults.endpoints,
            faults.seed,
            faults.list_disabled,
        ) == (
            0.08,
            None,
            frozenset({"create", "get"}),
            3,
            True,
        )

    def test_bad_faults(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown name is a usage error listing the names; a rate over 1 one error line."""
        with pytest.raises(SystemExit) as exited:
            cli.build_parser().parse_args(["emulator", "--fault", "bogus=1"])
        assert exited.value.code == 2
        assert "NAME one of seed, endpoints, rate_limit" in capsys.readouterr().err
        status, _, err = run("emulator", "--port", "0", "--fault", "rate_limit=2")
        assert status == 2
        assert one_error_line(err) == "error: --fault: rate_limit must be a fraction between 0 and 1, got 2.0"


class TestUsage:
    """Help, version and argument errors."""

    @pytest.mark.parametrize("command", COMMANDS)
    def test_help(self, command: str, capsys: pytest.CaptureFixture[str]) -> None:
        """`COMMAND --help` exits 0 with a usage line, a description and documented options."""
        with pytest.raises(SystemExit) as caught:
            main([command, "--help"])
        assert caught.value.code == 0
        text = capsys.readouterr().out
        assert text.startswith(f"usage: vidu-async {command}")
        paragraphs = text.split("\n\n")
        assert len(paragraphs) >= 3, text  # usage, description, options
        assert paragraphs[1].strip()[0].isupper()
        assert "%(" not in text
        assert "None" not in text
        if command != "emulator":
            for option in ("--api-key", "--base-url", "--json", "--debug", "--emulator"):
                assert option in text
            assert "$VIDU_API_KEY" in text

    @pytest.mark.parametrize("command", COMMANDS)
    def test_help_documents_every_option(self, command: str, capsys: pytest.CaptureFixture[str]) -> None:
        """Every option in `COMMAND --help` says what it does."""
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert undocumented_options(capsys.readouterr().out) == []

    @pytest.mark.parametrize("command", ["status 123", "tasks", "credits", f"submit {EXAMPLE}"])
    def test_no_key(self, command: str, no_env: None) -> None:
        """Without a key the command says how to give one, in the command line's own terms."""
        status, out, err = run(*command.split())
        assert (status, out) == (2, "")
        assert one_error_line(err) == (
            "error: no API key: set VIDU_API_KEY or pass --api-key (or add --emulator to try a local emulator)"
        )

    def test_emulator_options(self) -> None:
        """`emulator`'s options reach its config; `--extra-model` repeats."""
        argv = "emulator --key k --concurrency 3 --prefix vidu --extra-model a --extra-model b"
        args = cli.build_parser().parse_args(argv.split())
        config = cli._emulator_config(args)
        assert (config.api_key, config.concurrency, config.path_prefix) == ("k", 3, "/vidu")
        assert config.extra_models == ("a", "b")
        assert cli._emulator_config(cli.build_parser().parse_args(["emulator"])).extra_models == ()

    def test_top_level_help(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`--help` lists every command with a summary and explains the exit statuses."""
        with pytest.raises(SystemExit) as caught:
            main(["--help"])
        assert caught.value.code == 0
        text = capsys.readouterr().out
        assert text.startswith("usage: vidu-async")
        for command in COMMANDS:
            assert re.search(rf"^\s+{command}\s+\S", text, re.MULTILINE), command
        assert "Exit status" in text

    def test_version(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`--version` prints the package version."""
        with pytest.raises(SystemExit) as caught:
            main(["--version"])
        assert caught.value.code == 0
        assert capsys.readouterr().out.strip() == f"vidu-async {vidu.__version__}"

    @pytest.mark.parametrize(
        "argv", [[], ["frobnicate"], ["status"], ["tasks", "--limit", "0"], ["tasks", "--state", "paused"]]
    )
    def test_usage_errors(self, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        """Missing or bad arguments exit 2 with argparse's usage message."""
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2
        assert "usage: vidu-async" in capsys.readouterr().err


class TestSubprocess:
    """The real command in its own process."""

    def test_submit_example_with_emulator(self) -> None:
        """`python -m vidu_async submit examples/request.json --emulator` exits 0 and prints the task."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIDU_")}
        done = subprocess.run(
            [sys.executable, "-m", "vidu_async", "submit", "examples/request.json", "--emulator"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        match = TASK_LINE.match(done.stdout.strip())
        assert match, done.stdout
        assert match.group(2) == "created"
