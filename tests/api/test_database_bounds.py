"""Bounded waits on the database: the bounds every connection carries, what a request meets when one ends its
statement, and the web tier's request deadline (its behaviour against a frozen server: test_fault_database.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import gevent  # type: ignore[import-untyped]
import orjson
import psycopg
import pytest

from messaging.api.deadline import RequestDeadline, install
from messaging.store.db import Timeouts, autocommit_cursor, driver_cursor, get_session
from tests.conftest import PG_TEST_DB, pg_database_url


def test_every_connection_carries_the_bounds(pg_app: Any) -> None:
    """Both pools (the sessions' and the one-statement hot paths'): the server's statement and lock timeouts and
    keepalives, set at connection start, and libpq's connect timeout and keepalives."""
    with pg_app.test_request_context():
        state = pg_app.extensions["db"]
        session = get_session()
        session.connection()  # a transaction open: driver_cursor runs on the session's connection
        for cursor_context in (autocommit_cursor(state), driver_cursor(session)):
            with cursor_context as cursor:
                shown = [cursor.execute(f"SHOW {name}").fetchone()[0] for name in (
                    "statement_timeout", "lock_timeout", "tcp_keepalives_idle", "tcp_keepalives_interval",
                    "tcp_keepalives_count", "TimeZone")]
                over_tcp = cursor.execute("SELECT inet_server_addr() IS NOT NULL").fetchone()[0]
                params = cursor.connection.info.get_parameters()
            # The server shows its keepalive settings on a TCP connection only (a Unix socket has none: 0).
            assert shown == ["5s", "2s", *(["30", "10", "3"] if over_tcp else ["0", "0", "0"]), "UTC"]
            assert {k: params.get(k) for k in ("connect_timeout", "keepalives", "keepalives_idle",
                                               "keepalives_interval", "keepalives_count")} == {
                "connect_timeout": "3", "keepalives": "1", "keepalives_idle": "30", "keepalives_interval": "10",
                "keepalives_count": "3"}
        session.rollback()


def test_the_bounds_come_from_the_settings_and_zero_turns_one_off() -> None:
    bounds = Timeouts.from_config({"DB_CONNECT_TIMEOUT": 0, "DB_STATEMENT_TIMEOUT": 0.5, "DB_LOCK_TIMEOUT": 0})
    assert "connect_timeout" not in bounds.connect_params()
    assert "-c statement_timeout=500 -c lock_timeout=0 " in bounds.server_options()
    assert Timeouts.from_config({"DB_CONNECT_TIMEOUT": 0.5}).connect_params()["connect_timeout"] == 2  # libpq's least


def test_a_statement_ended_by_the_lock_timeout_is_a_503_logged_as_a_warning(
    pg_app: Any, auth: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A send waits for the conversation's counters, locked by another transaction: PostgreSQL ends it after
    DB_LOCK_TIMEOUT, nothing is written, and the caller gets 503 problem details with Retry-After. The database's
    state, not a fault of the service: a warning."""
    client = pg_app.test_client()
    client.get("/v1/me", headers=auth("bob"))
    conversation = client.post("/v1/conversations", json={"participantIds": ["bob"]}, headers=auth("ana")).json["id"]
    send = f"/v1/conversations/{conversation}/messages"
    caplog.set_level(logging.WARNING)
    with psycopg.connect(pg_database_url(PG_TEST_DB).replace("+psycopg", "")) as locker:
        locker.execute("SELECT 1 FROM conversation_stats WHERE conversation_id = %s FOR UPDATE", (conversation,))
        for headers in (auth("ana"), {**auth("ana"), "Idempotency-Key": "k-locked"}):  # the lane's, the view's
            stuck = client.post(send, json={"message": "hi"}, headers=headers)
            assert stuck.status_code == 503 and stuck.headers["Retry-After"] == "1", stuck.json
            assert stuck.content_type == "application/problem+json"
        locker.rollback()
    assert client.get(send, headers=auth("bob")).json["items"] == []
    assert [r.levelname for r in caplog.records if "database unavailable" in r.getMessage()] == ["WARNING"] * 2
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    retried = client.post(send, json={"message": "hi"}, headers={**auth("ana"), "Idempotency-Key": "k-locked"})
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried.headers


def _slow_app(seconds: float, streamed: bool = False) -> Any:
    """A WSGI application that takes ``seconds`` to answer, or answers at once with a body streamed that slowly."""

    def body() -> Iterator[bytes]:
        gevent.sleep(seconds)
        yield b"done"

    def app(_environ: dict[str, Any], start_response: Any) -> Any:
        if not streamed:
            gevent.sleep(seconds)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body() if streamed else [b"done"]

    return app


class _Started:
    def __call__(self, status: str, headers: list[tuple[str, str]], _exc_info: Any = None) -> None:
        self.status, self.headers = status, dict(headers)


def test_the_deadline_answers_a_request_that_waits_too_long_with_503_problem_details() -> None:
    started = _Started()
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/v1/me", "HTTP_X_REQUEST_ID": "req-late"}
    body = b"".join(RequestDeadline(_slow_app(5), 0.05)(environ, started))
    assert started.status.startswith("503") and started.headers["Retry-After"] == "1"
    assert started.headers["Content-Type"] == "application/problem+json"
    problem = orjson.loads(body)
    assert problem["status"] == 503 and problem["requestId"] == "req-late"


def test_the_deadline_ends_with_the_response_and_never_cuts_a_streamed_body() -> None:
    started = _Started()
    answer = RequestDeadline(_slow_app(0.2, streamed=True), 0.05)({"REQUEST_METHOD": "GET"}, started)
    assert started.status == "200 OK" and b"".join(answer) == b"done"  # read well after the deadline


def test_the_deadline_is_installed_only_where_gevent_patched_the_process(pg_app: Any) -> None:
    """Elsewhere psycopg's waits are not greenlet switches that a gevent timer could interrupt."""
    before = pg_app.wsgi_app
    install(pg_app)  # this process is not monkey-patched
    assert pg_app.wsgi_app == before  # still the application itself (a bound method: equal, not identical)
