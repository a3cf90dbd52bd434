"""A real homeserver process for the live tests.

``homeserver`` (session-scoped) migrates a fresh database and starts
``manage.py runhomeserver`` (Daphne and a Celery worker) on a free port, exactly as an
operator would, and stops it at the end of the session. Live tests talk to it over
HTTP with a real client; they never touch pytest-django's test database.

The server runs with production settings: ``config.settings`` only switches to test
mode when pytest is imported, which it is not in the child. On the embedded default
it gets a fresh TRELLIS_DATA_DIR (SQLite, filesystem broker). When DATABASE_URL is set
(CI's PostgreSQL + Redis pass), it gets a fresh PostgreSQL database on the same server,
dropped afterwards, and a Redis database other than the tests' one, flushed before and
after.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    from tests.live.federation_peers import Network

PROJECT_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60
MIGRATE_TIMEOUT_S = 300
# runhomeserver gives its children 20 s to stop; leave it room to do so.
STOP_TIMEOUT_S = 40
# Redis databases 9..15 are the live servers'; the tests' own database is skipped.
LIVE_REDIS_DBS = range(9, 16)


@dataclass
class LiveServer:
    url: str
    server_name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    # The settings it runs with, for a worker of its own (start_worker).
    environ: dict[str, str] = field(default_factory=dict)

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _child_environ(overrides: dict[str, str]) -> dict[str, str]:
    """The parent's environment without anything that would steer the server."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TRELLIS_", "PYTEST_", "DJANGO_"))
        and key not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PYTHONUNBUFFERED": "1",
            "TRELLIS_RATELIMIT": "off",
            "TRELLIS_REGISTRATION": "open",
        }
    )
    env.update(overrides)
    return env


@contextmanager
def _fresh_postgres_database(database_url: str) -> Iterator[str]:
    """Create an empty database on DATABASE_URL's server; yield its URL; drop it."""
    import psycopg

    name = f"trellis_live_{secrets.token_hex(6)}"
    with psycopg.connect(database_url, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlsplit(database_url)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(database_url, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _live_redis_db(redis_url: str, slot: int) -> int:
    """A Redis database number for live server ``slot``, never the tests' own."""
    tests_db = urlsplit(redis_url).path.strip("/") or "0"
    free = [n for n in LIVE_REDIS_DBS if str(n) != tests_db]
    # Each xdist worker starts its own servers; give each its own databases.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker or 0) * 2 + slot
    if index >= len(free):
        pytest.fail(f"no free Redis database for live server {index}; use fewer xdist workers")
    return free[index]


@contextmanager
def _flushed_redis(redis_url: str, slot: int) -> Iterator[str]:
    import redis

    url = urlsplit(redis_url)._replace(path=f"/{_live_redis_db(redis_url, slot)}").geturl()
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
        yield url
        client.flushdb()
    finally:
        client.close()


@contextmanager
def backend_environ(data_dir: Path, slot: int) -> Iterator[dict[str, str]]:
    """Settings for one live server: its data dir and, on CI's second pass, PG + Redis."""
    env = {"TRELLIS_DATA_DIR": str(data_dir)}
    with ExitStack() as stack:
        if os.environ.get("DATABASE_URL"):
            env["DATABASE_URL"] = stack.enter_context(
                _fresh_postgres_database(os.environ["DATABASE_URL"])
            )
        if os.environ.get("REDIS_URL"):
            env["REDIS_URL"] = stack.enter_context(_flushed_redis(os.environ["REDIS_URL"], slot))
        yield env


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_matrix/client/versions", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_homeserver(
    data_dir: Path,
    backend: dict[str, str],
    *,
    web_only_for: LiveServer | None = None,
    server_name: str | None = None,
    environ: dict[str, str] | None = None,
    worker: bool = True,
) -> LiveServer:
    """Migrate, then start runhomeserver in its own process group; return once it answers.

    ``web_only_for``: start a second web process (``--no-worker``) of that server
    instead, on its database and Redis, under its server name, without migrating.
    ``server_name`` (default ``localhost:<port>``) and ``environ`` (more settings) are for
    servers that others reach some other way than at their port, e.g. through TLS.
    ``worker=False``: no worker thread; start_worker runs the worker as a process of its
    own, which a test may kill on its own.
    """
    port = free_port()
    if web_only_for:
        server_name = web_only_for.server_name
    server_name = server_name or f"localhost:{port}"
    env = _child_environ(
        {
            **backend,
            **(environ or {}),
            "TRELLIS_SERVER_NAME": server_name,
            "TRELLIS_BIND": f"127.0.0.1:{port}",
        }
    )
    log_path = data_dir / f"homeserver-{port}.log"
    manage = [sys.executable, str(PROJECT_ROOT / "manage.py")]
    if web_only_for is None:
        migrate = subprocess.run(
            [*manage, "migrate", "--noinput"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=MIGRATE_TIMEOUT_S,
            check=False,
        )
        if migrate.returncode != 0:
            pytest.fail(f"migrate failed:\n{migrate.stdout}\n{migrate.stderr}")
    extra = ["--no-worker", "--bind", f"127.0.0.1:{port}"] if web_only_for else []
    if not worker and not web_only_for:
        extra.append("--no-worker")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*manage, "runhomeserver", *extra],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LiveServer(f"http://127.0.0.1:{port}", server_name, process, log_path, env)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers(server.url):
        if process.poll() is not None or time.monotonic() > deadline:
            state = (
                f"exited with status {process.returncode}"
                if process.poll() is not None
                else f"did not answer within {START_TIMEOUT_S} s"
            )
            stop_homeserver(server)
            pytest.fail(f"the homeserver {state}; its log:\n{server.log()}")
        time.sleep(0.25)
    return server


def start_worker(server: LiveServer, log_path: Path) -> subprocess.Popen[bytes]:
    """A Celery worker process for ``server`` (started with ``worker=False``), sending the
    periodic tasks itself as the embedded worker does, in its own process group."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [
                str(Path(sys.executable).parent / "celery"),
                "-A",
                "config.celery",
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                "4",
            ],
            cwd=PROJECT_ROOT,
            env={**server.environ, "TRELLIS_EMBEDDED_SCHEDULER": "1"},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_homeserver(server: LiveServer, signum: int = signal.SIGTERM) -> int:
    """Signal the server's process group and wait for it; SIGKILL it if it hangs."""
    process = server.process
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
    try:
        status = process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        status = None
    # Whatever the parent did, leave no child behind.
    killed = _kill_group(process)
    return killed if status is None else status


def _kill_group(process: subprocess.Popen[bytes]) -> int:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    return process.wait(timeout=STOP_TIMEOUT_S)


@contextmanager
def running_homeserver(data_dir: Path, slot: int) -> Iterator[LiveServer]:
    with backend_environ(data_dir, slot) as backend:
        server = start_homeserver(data_dir, backend)
        try:
            yield server
        finally:
            stop_homeserver(server)


@pytest.fixture(scope="session")
def homeserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A running Trellis (web server and worker) shared by the live tests of a session."""
    with running_homeserver(tmp_path_factory.mktemp("homeserver"), slot=0) as server:
        yield server


@pytest.fixture(scope="session")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """Trellis, Synapse and a second Trellis federating over TLS (federation_peers), started
    once for every interop test module (each uses users and rooms of its own)."""
    from tests.live.federation_peers import federation_network

    with federation_network(tmp_path_factory.mktemp("federation")) as started:
        yield started
