"""Shared fixtures: the app on SQLite and on PostgreSQL, clients, tokens and a clean database per test.

PostgreSQL and Redis tests skip with a reason when those servers are unreachable, unless
REQUIRE_SERVICES=1 (CI), where they fail instead.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app import create_app
from messaging.auth import mint_token
from messaging.cli import upgrade_database
from messaging.db import Base, get_engine

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_TEST_DB = os.environ.get("TEST_PG_DATABASE", "concierge_test")
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TEST_JWT_SECRET = "test-secret-0123456789abcdef0123456789abcdef"
# Unit tests must not enqueue by accident: this broker fails loudly when used.
FORGOT_CELERY = "you-forgot-to-mock-celery-in-your-tests://"


def service_unavailable(what: str, why: object) -> None:
    message = f"{what} is unreachable ({why}); start it or unset REQUIRE_SERVICES"
    if REQUIRE_SERVICES:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def pg_database_url(dbname: str) -> str:
    """Create ``dbname`` if missing and return its SQLAlchemy URL (psycopg 3 driver)."""
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{dbname}"')
    except psycopg.OperationalError as exc:
        service_unavailable("PostgreSQL", exc)
    url = make_url(PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1)).set(database=dbname)
    return url.render_as_string(hide_password=False)


def recreate_pg_database(dbname: str) -> str:
    url = pg_database_url(dbname)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
        conn.execute(f'CREATE DATABASE "{dbname}"')
    return url


def redis_url() -> str:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
    except Exception as exc:  # noqa: BLE001
        service_unavailable("Redis", exc)
    return REDIS_TEST_URL


def test_config(database_url: str, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "REDIS_URL": None,
        "JWT_SECRET": TEST_JWT_SECRET,
        "JWT_PUBLIC_KEY": None,
        "JWT_ISSUER": None,
        "JWT_AUDIENCE": None,
        "DB_POOL_SIZE": 5,
        "RATE_LIMITS_ENABLED": False,  # tests/test_rate_limits.py turns them on
        "CELERY": {"broker_url": FORGOT_CELERY, "task_ignore_result": True, "task_acks_late": True},
    }
    config.update(extra)
    return config


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = Path(tmp_path_factory.mktemp("sqlite")) / "test.db"
    url = f"sqlite:///{path}"
    upgrade_database(url)
    return url


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = recreate_pg_database(PG_TEST_DB)
    upgrade_database(url)
    return url


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Dialect-independent tests run once on each database."""
    return str(request.getfixturevalue(f"{'sqlite' if request.param == 'sqlite' else 'pg'}_url"))


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
    """The app on each database in turn (SQLite, then PostgreSQL), with an empty database."""
    yield _app_any
    _wipe(_app_any)


@pytest.fixture
def pg_app(_app_pg: Any) -> Iterator[Any]:
    """The app on PostgreSQL only, for behaviour that is PostgreSQL's (cascades, concurrency)."""
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
