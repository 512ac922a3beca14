"""Real processes for fault tests: a private redis-server, gunicorn, a Celery worker and beat, and HTTP calls.

Every process starts in its own session (process group), writes its output to a log file, and is stopped with
SIGTERM then SIGKILL to the whole group, so a failing test leaves nothing running. Use the ``processes``
fixture to have everything a test started stopped at its end::

    from tests.helpers_processes import processes, private_pg_database  # noqa: F401 (fixtures)

    def test_something(processes, tmp_path):
        redis = processes.redis()                      # a redis-server of your own, on a free port
        env = service_env(database_url, redis.url)
        web = processes.web(env)                       # gunicorn serving app:create_app()
        worker = processes.worker(env, pool="threads") # celery -A app.celery_app worker
        ...
        redis.stop(); redis.start()                    # same port: clients reconnect
        worker.kill()                                  # SIGKILL to the worker's whole process group

Never point these at the shared Redis on 6379 with intent to stop or flush it; ``RedisServer`` is yours alone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from celery import Celery

from messaging.api.auth import mint_token
from messaging.cli import upgrade_database
from messaging.local_servers import redis_server_binary
from tests.conftest import PG_ADMIN_URL, REDIS_TEST_PREFIX, TEST_JWT_SECRET, drop_database, recreate_pg_database

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STOP_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_until(predicate: Any, timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


class ManagedProcess:
    """A subprocess in its own process group, its output in ``log_path``; ``stop()`` is safe to call twice."""

    name = "process"

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path = ROOT) -> None:
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def start(self) -> ManagedProcess:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._log.write(f"\n=== start {' '.join(self.argv)} at {time.strftime('%X')}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: prefork children and gunicorn workers die with it
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def _signal_group(self, signum: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)

    def kill(self) -> None:
        """SIGKILL the whole process group at once (a crash: nothing gets to clean up)."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGKILL)
        self.proc.wait(STOP_TIMEOUT)
        self._close_log()

    def stop(self, timeout: float = STOP_TIMEOUT, signum: int = signal.SIGTERM) -> int | None:
        """Ask the group to stop (``signum``), then SIGKILL what is left after ``timeout``; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._signal_group(signum)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait(STOP_TIMEOUT)
        # Children that outlived the leader (prefork pool, gunicorn workers) are in the same group.
        self._signal_group(signal.SIGKILL)
        self._close_log()
        return self.proc.returncode

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.proc.returncode}; log {self.log_path}:\n{self.log_tail()}"
            )


class RedisServer(ManagedProcess):
    """``redis-server`` on a port of its own, no persistence: stop and start it freely (same port)."""

    name = "redis-server"

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        binary = redis_server_binary()
        self.port = port or free_port()
        argv = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--dir", str(log_path.parent), "--protected-mode", "no",
        ]
        super().__init__(argv, dict(os.environ), log_path)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 10.0) -> RedisServer:
        super().start()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
                client.ping()
                client.close()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not answer PING; log:\n{self.log_tail()}")

    def stop(self, timeout: float = STOP_TIMEOUT, signum: int = signal.SIGTERM) -> int | None:
        code = super().stop(timeout, signum)
        wait_until(lambda: not port_open(self.port), 5, what=f"port {self.port} to close")
        return code


class WebServer(ManagedProcess):
    """``gunicorn 'app:create_app()'`` on a free port, with the production settings of ``gunicorn.conf.py``
    (gunicorn reads it from the project root, its working directory); ``worker_class`` overrides the worker
    class; ``options`` are more gunicorn options; ``app`` is the WSGI application to serve (the service's by
    default)."""

    name = "gunicorn"

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        workers: int = 1,
        threads: int = 1,
        worker_class: str | None = None,
        port: int | None = None,
        options: Sequence[str] = (),
        app: str = "app:create_app()",
    ) -> None:
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        argv = [
            str(BIN / "gunicorn"), "-w", str(workers), "--threads", str(threads),
            "--graceful-timeout", "3", "-b", f"127.0.0.1:{self.port}",
        ]
        if worker_class:
            argv += ["-k", worker_class]
        argv += [*options, app]
        super().__init__(argv, env, log_path)

    def start(self, timeout: float = 30.0) -> WebServer:
        super().start()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        # /healthz, not /readyz: a test may start the web server while its Redis is down.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if call(self.base, "GET", "/healthz", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer /healthz; log {self.log_path}:\n{self.log_tail()}")


class CeleryWorker(ManagedProcess):
    """``celery -A app.celery_app worker`` (threads, prefork or solo pool) with a unique node name.

    ``kill()`` SIGKILLs the whole group, prefork children included, as a crashed host would.
    ``stop()`` is a warm shutdown (SIGTERM: running tasks finish), then SIGKILL after the timeout.
    """

    name = "celery worker"

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        pool: str = "threads",
        concurrency: int | None = None,
        queues: str | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.node = f"w{uuid.uuid4().hex[:8]}@%h"
        argv = [
            str(BIN / "celery"), "-A", "app.celery_app", "worker", "--pool", pool,
            "-c", str(concurrency or {"threads": 4, "solo": 1}.get(pool, 2)), "-l", "info", "-n", self.node,
            "--without-mingle", "--without-gossip",
        ]
        if queues:
            argv += ["-Q", queues]
        argv += extra_args or []
        super().__init__(argv, env, log_path)
        self._ready_marks = 0

    def start(self, timeout: float = 30.0) -> CeleryWorker:
        self._ready_marks = self.log_text().count(" ready.")
        super().start()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if self.log_text().count(" ready.") > self._ready_marks:
                return
            time.sleep(0.1)
        raise RuntimeError(f"celery worker never became ready; log {self.log_path}:\n{self.log_tail()}")


class CeleryBeat(ManagedProcess):
    """``celery -A app.celery_app beat`` with its schedule file next to its log (never the shared instance/)."""

    name = "celery beat"

    def __init__(self, env: dict[str, str], log_path: Path, max_interval: int = 1) -> None:
        schedule = log_path.with_suffix(".schedule")
        argv = [
            str(BIN / "celery"), "-A", "app.celery_app", "beat", "-l", "info", "-s", str(schedule),
            "--max-interval", str(max_interval),
        ]
        super().__init__(argv, env, log_path)


# Where kombu keeps the default queue of a service started with service_env (under its REDIS_KEY_PREFIX), and the
# messages a worker took but has not acknowledged.
QUEUE_KEY = REDIS_TEST_PREFIX + "celery"
UNACKED_KEY = REDIS_TEST_PREFIX + "unacked"


def service_env(database_url: str, redis_url: str | None, **extra: str) -> dict[str, str]:
    """The environment of a web server or worker: this test's database and Redis, the test JWT secret, and the run's
    Redis key prefix (``REDIS_KEY_PREFIX``, unless ``extra`` gives one: the run deletes its keys at the end).

    Variables that would change the service's behaviour under test (APP_ENV, JWT_PUBLIC_KEY, …) are dropped.
    """
    drop = {"REDIS_URL", "REDIS_KEY_PREFIX", "DATABASE_URL", "JWT_SECRET", "JWT_PUBLIC_KEY", "JWT_ISSUER",
            "JWT_AUDIENCE", "APP_ENV", "PORT", "HOST", "PLATFORM_WEBHOOK_URL", "PLATFORM_WEBHOOK_SECRET",
            "CELERY_VISIBILITY_TIMEOUT", "METRICS_TOKEN"}
    env = {name: value for name, value in os.environ.items() if name not in drop}
    # The abuse limits have their own tests (test_rate_limits.py); here they would only cut load tests short.
    env.update(DATABASE_URL=database_url, JWT_SECRET=TEST_JWT_SECRET, PYTHONUNBUFFERED="1", DB_POOL_SIZE="5",
               RATE_LIMITS_ENABLED="0", REDIS_KEY_PREFIX=REDIS_TEST_PREFIX)
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    return env


class Processes:
    """What one test started, stopped in reverse order at its end (see the ``processes`` fixture)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[ManagedProcess] = []
        self._counts: dict[str, int] = {}

    def _log(self, stem: str) -> Path:
        self._counts[stem] = self._counts.get(stem, 0) + 1
        return self.log_dir / f"{stem}-{self._counts[stem]}.log"

    def add(self, process: ManagedProcess) -> ManagedProcess:
        self.started.append(process)
        return process

    def redis(self, port: int | None = None) -> RedisServer:
        server = RedisServer(self._log("redis"), port=port)
        self.started.append(server)
        return server.start()

    def web(self, env: dict[str, str], **kwargs: Any) -> WebServer:
        server = WebServer(env, self._log("gunicorn"), **kwargs)
        self.started.append(server)
        return server.start()

    def worker(self, env: dict[str, str], **kwargs: Any) -> CeleryWorker:
        worker = CeleryWorker(env, self._log("worker"), **kwargs)
        self.started.append(worker)
        return worker.start()

    def beat(self, env: dict[str, str], **kwargs: Any) -> CeleryBeat:
        beat = CeleryBeat(env, self._log("beat"), **kwargs)
        self.started.append(beat)
        beat.start()
        return beat

    def stop_all(self) -> None:
        for process in reversed(self.started):
            try:
                process.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others whatever happens
                print(f"could not stop {process.name}: {exc}", file=sys.stderr)  # noqa: T201

    def logs(self) -> str:
        """Every log's tail, for an assertion message."""
        return "\n".join(f"--- {p.name} ({p.log_path.name})\n{p.log_tail(40)}" for p in self.started)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """Start processes through this; all of them are stopped (SIGTERM, then SIGKILL) when the test ends."""
    registry = Processes(tmp_path / "logs")
    try:
        yield registry
    finally:
        registry.stop_all()


# --- a PostgreSQL database per test module, dropped afterwards ------------------------------------------------


def drop_stale_pg_databases(prefix: str) -> None:
    """Databases ``<prefix>_<pid>`` left by runs that were killed before their teardown."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        like = prefix.replace("_", "\\_") + "\\_%"
        names = [row[0] for row in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (like,))]
    for name in names:
        pid = name.rsplit("_", 1)[1]
        if re.fullmatch(r"\d+", pid) and not Path(f"/proc/{pid}").exists():
            drop_database(name)


@contextlib.contextmanager
def private_pg_database(prefix: str) -> Iterator[str]:
    """A migrated database ``<prefix>_<pid>`` (two runs at once don't collide), dropped on exit."""
    name = f"{prefix}_{os.getpid()}"
    url = recreate_pg_database(name)
    try:
        drop_stale_pg_databases(prefix)
        upgrade_database(url)
        yield url
    finally:
        drop_database(name)


# --- HTTP ---------------------------------------------------------------------------------------------------


def call(
    base: str, method: str, path: str, token: str | None = None, body: Any = None, timeout: float = 10
) -> tuple[int, Any]:
    """One request on a fresh connection; (status, parsed JSON body or None)."""
    host, port = base.split("://", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        try:
            return response.status, (json.loads(raw) if raw else None)
        except ValueError:
            return response.status, raw.decode(errors="replace")
    finally:
        conn.close()


def send_task(broker_url: str, name: str, *args: Any, key_prefix: str = REDIS_TEST_PREFIX) -> None:
    """Send a task by name through ``broker_url``, as celery beat would (e.g. ``outbox.sweep``), to the queue of a
    service whose REDIS_KEY_PREFIX is ``key_prefix`` (service_env's)."""
    sender = Celery("test-sender", broker=broker_url, set_as_current=False)
    sender.conf.broker_transport_options = {"global_keyprefix": key_prefix}
    try:
        sender.send_task(name, args=list(args))
    finally:
        sender.close()


def mint(sub: str, role: str = "guest", ttl: int = 3600, secret: str = TEST_JWT_SECRET) -> str:
    config = {"JWT_SECRET": secret, "JWT_ISSUER": None, "JWT_AUDIENCE": None}
    return mint_token(config, sub=sub, role=role, ttl=dt.timedelta(seconds=ttl))
