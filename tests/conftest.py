"""Shared fixtures: the app on PostgreSQL, clients, tokens and a clean database per test.

The servers: ``TEST_DATABASE_URL`` (a PostgreSQL database whose role may create databases; CI passes the
machine's) and ``TEST_REDIS_URL``, or else a private PostgreSQL and Redis this run starts from pip-installed
packages (:mod:`messaging.local_servers`) and stops at its end. Nothing is skipped for want of a server. The run
creates its own uniquely named databases and drops them at its end; its Redis keys carry its own prefix.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app import create_app
from messaging.api.auth import mint_token
from messaging.cli import upgrade_database
from messaging.local_servers import LocalPostgres, LocalRedis
from messaging.store.db import Base, get_engine


def _servers() -> tuple[str, str]:
    """The PostgreSQL admin URL and the Redis URL this run uses, starting private servers for those not given."""
    database = os.environ.get("TEST_DATABASE_URL") or os.environ.get("TEST_PG_ADMIN_URL")
    redis_server = os.environ.get("TEST_REDIS_URL")
    if not database:
        postgres = LocalPostgres(Path(tempfile.mkdtemp(prefix="concierge-test-pg-")) / "data", temporary=True)
        database = postgres.start()
        atexit.register(postgres.stop)
    if not redis_server:
        redis_server = LocalRedis().start()
    return database.replace("postgresql+psycopg://", "postgresql://", 1), redis_server


PG_ADMIN_URL, REDIS_TEST_URL = _servers()
RUN_ID = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
PG_TEST_DB = os.environ.get("TEST_PG_DATABASE") or f"concierge_test_{RUN_ID}"
# Every Redis key a test app writes starts with this (REDIS_KEY_PREFIX): runs sharing a Redis never meet.
REDIS_TEST_PREFIX = f"test-{RUN_ID}:"
TEST_JWT_SECRET = "test-secret-0123456789abcdef0123456789abcdef"
# Unit tests must not enqueue by accident: this broker fails loudly when used.
FORGOT_CELERY = "you-forgot-to-mock-celery-in-your-tests://"
CREATED_DATABASES: set[str] = set()


def service_unavailable(what: str, why: object) -> None:
    pytest.fail(f"{what} is unreachable ({why})", pytrace=False)


def pg_database_url(dbname: str) -> str:
    """Create ``dbname`` if missing (it is dropped when the run ends) and return its SQLAlchemy URL (psycopg 3)."""
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{dbname}"')
                CREATED_DATABASES.add(dbname)
    except psycopg.OperationalError as exc:
        service_unavailable("PostgreSQL", exc)
    url = make_url(PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1)).set(database=dbname)
    return url.render_as_string(hide_password=False)


def drop_database(dbname: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    CREATED_DATABASES.discard(dbname)


def recreate_pg_database(dbname: str) -> str:
    """A new, empty ``dbname`` (dropped when the run ends): only ever one this run named itself."""
    pg_database_url(dbname)
    drop_database(dbname)
    return pg_database_url(dbname)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop the databases this run created, and delete its Redis keys."""
    for dbname in sorted(CREATED_DATABASES):
        try:
            drop_database(dbname)
        except psycopg.Error as exc:
            logging.getLogger(__name__).warning("could not drop %s: %s", dbname, exc)
    client = redis.Redis.from_url(REDIS_TEST_URL)
    keys = list(client.scan_iter(match=REDIS_TEST_PREFIX + "*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start:start + 1000])
    client.close()


def redis_url() -> str:
    """The run's Redis (its keys: :data:`REDIS_TEST_PREFIX`)."""
    return REDIS_TEST_URL


def test_config(database_url: str, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_TEST_URL,
        "REDIS_KEY_PREFIX": REDIS_TEST_PREFIX,
        "JWT_SECRET": TEST_JWT_SECRET,
        "JWT_PUBLIC_KEY": None,
        "JWT_ISSUER": None,
        "JWT_AUDIENCE": None,
        "DB_POOL_SIZE": 5,
        "RATE_LIMITS_ENABLED": False,  # tests/api/test_rate_limits.py turns them on
        "CELERY": {"broker_url": FORGOT_CELERY, "task_ignore_result": True, "task_acks_late": True},
    }
    config.update(extra)
    return config


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = recreate_pg_database(PG_TEST_DB)
    upgrade_database(url)
    return url


@pytest.fixture(scope="session")
def database_url(pg_url: str) -> str:
    return pg_url


def _wipe(app: Any) -> None:
    app.extensions.pop("known_users", None)
    with app.app_context():
        with get_engine().begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())


def _make_app(url: str) -> Any:
    return create_app(test_config(url))


@pytest.fixture(scope="session")
def _app_any(database_url: str) -> Any:
    return _make_app(database_url)


@pytest.fixture(scope="session")
def _app_pg(pg_url: str) -> Any:
    return _make_app(pg_url)


@pytest.fixture
def app(_app_any: Any) -> Iterator[Any]:
    """The app, with an empty database."""
    yield _app_any
    _wipe(_app_any)


@pytest.fixture
def pg_app(_app_pg: Any) -> Iterator[Any]:
    """The app (the same as ``app``; kept for the tests that name it)."""
    yield _app_pg
    _wipe(_app_pg)


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def pg_client(pg_app: Any) -> Any:
    return pg_app.test_client()


@pytest.fixture
def runner(app: Any) -> Any:
    return app.test_cli_runner()


TokenFactory = Callable[..., str]


@pytest.fixture
def token() -> TokenFactory:
    """``token("u1", "guest")`` → a signed bearer token for the test secret."""

    def make(sub: str, role: str = "guest", ttl: int = 3600, **claims: Any) -> str:
        config = {"JWT_SECRET": TEST_JWT_SECRET, "JWT_ISSUER": None, "JWT_AUDIENCE": None}
        return mint_token(config, sub=sub, role=role, ttl=dt.timedelta(seconds=ttl), **claims)

    return make


@pytest.fixture
def auth(token: TokenFactory) -> Callable[..., dict[str, str]]:
    """``auth("u1", "guest")`` → request headers carrying that user's bearer token."""

    def make(sub: str, role: str = "guest", **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(sub, role, **claims)}"}

    return make


# Where the service logs (Flask's app logger is "app"), and Celery's loggers for a task run inline (a task that
# raised, a task logger): an ERROR record on any of them fails the test unless the test expected it.
SERVICE_LOGGERS = ("app", "messaging", "concierge", "tasks", "celery.app.trace", "celery.task")


class _ErrorRecords(logging.Handler):
    """Keeps the ERROR (and worse) records that reach it."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def expected_errors() -> list[str]:
    """The ERROR records this test expects, as regular expressions searched for in each record's message: the
    test appends to the list (or is marked ``@pytest.mark.expect_errors(pattern, ...)``)."""
    return []


@pytest.fixture(autouse=True)
def _no_unexpected_errors(request: pytest.FixtureRequest, expected_errors: list[str]) -> Iterator[None]:
    """Fail the test if the service logged an ERROR it did not expect, from its setup to its teardown. Expected:
    records matching a pattern of ``expected_errors`` or of the ``expect_errors`` marker; the marker without
    patterns expects any."""
    handler = _ErrorRecords()
    loggers = [logging.getLogger(name) for name in SERVICE_LOGGERS]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    marker = request.node.get_closest_marker("expect_errors")
    if marker is not None and not marker.args:
        return
    patterns = [*(marker.args if marker is not None else ()), *expected_errors]
    unexpected = [record for record in handler.records
                  if not any(re.search(pattern, record.getMessage()) for pattern in patterns)]
    if unexpected:
        logged = "\n".join(f"  {r.name} {r.levelname}: {r.getMessage()}" for r in unexpected)
        pytest.fail(f"unexpected ERROR log records (expect them with expected_errors or "
                    f"@pytest.mark.expect_errors):\n{logged}", pytrace=False)


def sql_count(app: Any) -> Callable[[], Any]:
    """Count SQL statements executed by the app's engine while the returned context is open."""
    from contextlib import contextmanager

    from sqlalchemy import event

    @contextmanager
    def counting() -> Iterator[list[str]]:
        statements: list[str] = []

        def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            statements.append(statement)

        with app.app_context():
            engine = get_engine()
        event.listen(engine, "before_cursor_execute", before)
        try:
            yield statements
        finally:
            event.remove(engine, "before_cursor_execute", before)

    return counting


__all__ = ["text", "sql_count", "recreate_pg_database", "pg_database_url", "redis_url", "test_config"]
