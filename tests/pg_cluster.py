"""A throwaway PostgreSQL server for the tests: the one named by ``VIDU_TEST_POSTGRES_DSN``, or a
socket-only cluster started in a temporary directory with ``initdb`` and ``pg_ctl``.

The cluster trades durability for speed (``fsync``, ``synchronous_commit`` and
``full_page_writes`` off): it lives for one test session and is stopped with ``-m immediate``.
It listens on no TCP port, only on a Unix socket in its own directory, so parallel sessions
never collide. As root (initdb refuses to run as root) it runs as the ``postgres`` user through
``runuser``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Final

import pytest

#: A DSN of a server to use instead of starting one (its user must be allowed to CREATE DATABASE).
ENV_DSN: Final = "VIDU_TEST_POSTGRES_DSN"

_SERVER_USER: Final = "postgres"


def find_bin(name: str) -> str | None:
    """``name`` (``initdb``, ``pg_ctl``) on PATH or in Debian's ``/usr/lib/postgresql/*/bin``."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version_key, reverse=True)
    return candidates[0] if candidates else None


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def unavailable_reason() -> str | None:
    """Why no PostgreSQL can be had for the tests, or ``None`` when one can."""
    if os.environ.get(ENV_DSN):
        return None
    if find_bin("initdb") is None or find_bin("pg_ctl") is None:
        return (
            f"no PostgreSQL for the tests: set {ENV_DSN} to a server's DSN, or install PostgreSQL"
            " (initdb and pg_ctl on PATH or in /usr/lib/postgresql/*/bin)"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(_SERVER_USER)
        except KeyError:
            return "running as root and there is no 'postgres' user to run initdb as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing"
    return None


def with_database(dsn: str, database: str) -> str:
    """``dsn`` (a URL) pointing at ``database`` instead."""
    parts = urllib.parse.urlsplit(dsn)
    return urllib.parse.urlunsplit(parts._replace(path="/" + database))


class Cluster:
    """A running server: its DSN (to the maintenance database) and how to stop it."""

    def __init__(self, dsn: str, *, stop: contextlib.ExitStack | None = None) -> None:
        self.dsn = dsn
        self._stop = stop
        self._databases = 0

    def next_database_name(self) -> str:
        self._databases += 1
        return f"vidu_test_{os.getpid()}_{self._databases}"

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.close()


def _run_as_server(command: list[str], *, root: bool) -> subprocess.CompletedProcess[str]:
    if root:
        command = ["runuser", "-u", _SERVER_USER, "--", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@contextlib.contextmanager
def _throwaway() -> Iterator[Cluster]:
    initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
    assert initdb is not None
    assert pg_ctl is not None
    root = os.geteuid() == 0
    # Not pytest's tmp_path: its base is private to the user running the tests, and the server may
    # run as another user. Short, too: a Unix socket path must fit in about 100 bytes.
    base = Path(tempfile.mkdtemp(prefix="vidu-pg-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, base, True)
        if root:
            server = pwd.getpwnam(_SERVER_USER)
            os.chown(base, server.pw_uid, server.pw_gid)
        data = base / "data"
        result = _run_as_server(
            [initdb, "-D", str(data), "-A", "trust", "-U", _SERVER_USER, "-E", "UTF8", "--no-sync"], root=root
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {result.stdout}{result.stderr}")
        options = (
            f"-c listen_addresses='' -c unix_socket_directories={base} -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        result = _run_as_server(
            [pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "server.log"), "-w", "start"], root=root
        )
        if result.returncode != 0:
            log = (base / "server.log").read_text(errors="replace") if (base / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {result.stdout}{result.stderr}{log}")
        stack.callback(_run_as_server, [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"], root=root)
        dsn = f"postgresql://{_SERVER_USER}@/postgres?host={urllib.parse.quote(str(base))}"
        yield Cluster(dsn, stop=stack.pop_all())


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    """The server for a test session (the caller checked :func:`unavailable_reason` first)."""
    dsn = os.environ.get(ENV_DSN)
    if dsn:
        yield Cluster(dsn)
        return
    with _throwaway() as started:
        try:
            yield started
        finally:
            started.stop()


# -- the fixtures (registered in conftest.py) --------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """The session's PostgreSQL server; the test is skipped, saying why, when none can be had."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with cluster() as running:
        yield running


@pytest.fixture
async def postgres_dsn(postgres_cluster: Cluster) -> AsyncIterator[str]:
    """The DSN of a fresh, empty database on the session's server, dropped after the test."""
    import asyncpg

    name = postgres_cluster.next_database_name()
    admin = await asyncpg.connect(postgres_cluster.dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield with_database(postgres_cluster.dsn, name)
    admin = await asyncpg.connect(postgres_cluster.dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
