"""The web tier's bound on one request: past ``REQUEST_TIMEOUT`` seconds it is answered 503, whatever it waits on.

The server's own bounds (``statement_timeout``, ``lock_timeout``: :class:`messaging.store.db.Timeouts`) end a slow
statement with an error, but not a wait on a server that stopped answering while its kernel still accepts
connections and acknowledges what is sent (the process stopped or frozen, a host paused): its timers do not run,
and TCP keepalives are answered. Only the client can bound that wait. Under gunicorn's gevent worker every wait of
the request — for a pooled connection, a new connection, a statement, a commit, Redis — is a greenlet switch
(psycopg's own cooperative wait under gevent: :mod:`messaging.green`), so a ``gevent.Timeout`` started around the
application interrupts it wherever it is. Then:

* the interrupted connection is discarded, never put back in the pool, whose state is unknown: SQLAlchemy
  invalidates a connection an exception that is not an ``Exception`` interrupts,
  :func:`messaging.store.db.driver_cursor` does the same, and the request's session is invalidated at teardown
  rather than rolled back (a ROLLBACK would wait, with no deadline left, on the same server);
* the client gets 503 problem details with ``Retry-After``, logged as a warning (the database's state, not a fault
  of the service);
* what the request wrote committed in full or not at all: a transaction is interrupted either before its COMMIT
  reached the server (the server rolls it back when it reads the closed connection) or after (it commits when
  the server resumes). Which one, the client cannot tell from a 503: a retry with the same ``Idempotency-Key``
  replays the first result if it committed and does the work once if it did not
  (:mod:`messaging.api.idempotency`: the claim and the response are stored in the view's own transaction).

The deadline covers the application call, which returns the response; a streamed body is iterated after it, so a
live-update stream (``GET /v1/stream``, open for hours) is never cut by it, only its opening is bounded. It is
installed only in a process gevent has patched: elsewhere (``make run``'s threaded server, the tests' client)
psycopg's waits are not greenlet switches, and a gevent timer could not interrupt them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from flask import Flask
from gevent import Timeout  # type: ignore[import-untyped]

from messaging.api.http import request_id
from messaging.errors import PROBLEM_CONTENT_TYPE, problem_document
from messaging.green import gevent_patched

log = logging.getLogger(__name__)

RETRY_AFTER = "1"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class RequestDeadline:
    """WSGI middleware: ``inner`` answers within ``seconds``, or the request is answered 503."""

    def __init__(self, inner: WsgiApp, seconds: float) -> None:
        self.inner = inner
        self.seconds = seconds

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        timer = Timeout(self.seconds)
        timer.start()
        try:
            return self.inner(environ, start_response)
        except Timeout as exc:
            if exc is not timer:  # someone else's timeout: not ours to answer
                raise
            return self._unavailable(environ, start_response)
        finally:
            timer.close()

    def _unavailable(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        rid = request_id(environ.get("HTTP_X_REQUEST_ID", ""))
        log.warning("request deadline: %s %s not answered within %g s, answered 503 request_id=%s",
                    environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), self.seconds, rid)
        body = orjson.dumps(problem_document(
            503, "Service unavailable", "The service did not answer in time; try again shortly.",
            slug="unavailable", request_id=rid,
        ))
        # With exc_info: the application may have started its response before the deadline (in its teardown).
        start_response("503 SERVICE UNAVAILABLE", [
            ("Content-Type", PROBLEM_CONTENT_TYPE), ("Content-Length", str(len(body))), ("Retry-After", RETRY_AFTER),
            ("X-Request-Id", rid), ("X-Content-Type-Options", "nosniff"),
        ], sys.exc_info())
        return [body]


def install(app: Flask) -> None:
    """Bound every request of ``app`` by ``REQUEST_TIMEOUT`` seconds (0: unbounded), in a gevent-patched process
    only; call last, so the bound covers whatever else wraps the application."""
    seconds = float(app.config.get("REQUEST_TIMEOUT") or 0)
    if seconds > 0 and gevent_patched():
        app.wsgi_app = RequestDeadline(app.wsgi_app, seconds)  # type: ignore[method-assign]
