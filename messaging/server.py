"""The web tier's gunicorn worker class, ``messaging.server.GeventWorker`` (named by ``gunicorn.conf.py``).

It is gunicorn's own ``gevent`` worker — gunicorn's HTTP parser, gevent greenlets so a process holds many open
live-update streams — with two additions made through the worker class's public methods:

* **Strict framing.** gunicorn's parser refuses the ambiguous requests RFC 9112 names (two lengths, a length with
  ``Transfer-Encoding``, obsolete folding, bare CR, NUL, …). :func:`check_framing` refuses what it lets through
  that another parser could frame differently: a transfer coding other than exactly ``chunked`` (gunicorn strips
  Unicode whitespace such as ``\\x0b``, ``\\x85`` and ``\\xa0`` around codings) and a ``Content-Length`` with
  leading zeros. Every refusal is gunicorn's one 400 response, and the connection is closed: nothing after it is
  read as a request.
* **Idle connections give way.** A connection waiting for its next request (idle keep-alive, or a request line
  and headers still arriving) is closed after ``keepalive`` seconds, as in gunicorn's worker. When all
  ``worker_connections`` of a worker are open, a new connection closes the one that has waited longest for a
  request, so a flood of idle sockets cannot keep the worker from answering others. Connections with a request in
  progress (an open live-update stream among them) are never closed for this.

The overridden methods (``handle``, ``timeout_ctx``, ``handle_request``) are public methods of gunicorn's async
workers, not a documented interface: checked against gunicorn 23.0.0, the version requirements.txt pins.
``tests/unit/test_gunicorn_worker.py`` fails on any other version until they are checked again.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gevent  # type: ignore[import-untyped]
from gunicorn.http.errors import InvalidHeader  # type: ignore[import-untyped]
from gunicorn.workers import ggevent  # type: ignore[import-untyped]

_CONTENT_LENGTH = re.compile(r"0|[1-9][0-9]*")


def check_framing(headers: list[tuple[str, str]]) -> None:
    """Raise gunicorn's :class:`InvalidHeader` (a 400 that closes the connection) unless the request's
    ``Transfer-Encoding`` headers, if any, each say exactly ``chunked`` (blanks and tabs around it allowed, any
    case) and its ``Content-Length``, if any, is digits without a leading zero. ``headers`` are gunicorn's
    parsed ``(NAME, value)`` pairs; the other rules (one length, never both, no folding) are gunicorn's own."""
    for name, value in headers:
        if name == "TRANSFER-ENCODING":
            if any(coding.strip(" \t").lower() != "chunked" for coding in value.split(",")):
                raise InvalidHeader(name)
        elif name == "CONTENT-LENGTH" and not _CONTENT_LENGTH.fullmatch(value):
            raise InvalidHeader(name)


class GeventWorker(ggevent.GeventWorker):  # type: ignore[misc]
    """gunicorn's ``gevent`` worker with :func:`check_framing` before every request and idle connections that
    give way to new ones when the worker's connections are all open."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections: dict[Any, socket.socket] = {}  # greenlet → its client socket, for every open connection
        self.waiting: dict[Any, socket.socket] = {}  # those waiting for a request, longest-waiting first

    def handle(self, listener: Any, client: socket.socket, addr: Any) -> None:
        me = gevent.getcurrent()
        self.connections[me] = client
        try:
            if len(self.connections) >= self.worker_connections:
                self.close_longest_waiting()
            super().handle(listener, client, addr)
        finally:
            del self.connections[me]
            self.waiting.pop(me, None)

    @contextmanager
    def timeout_ctx(self) -> Iterator[None]:
        """Around reading one request's line and headers: at most ``keepalive`` seconds, and meanwhile this
        connection may be closed for a newcomer."""
        me = gevent.getcurrent()
        self.waiting[me] = self.connections[me]
        try:
            with gevent.Timeout(self.cfg.keepalive, False):
                yield
        finally:
            self.waiting.pop(me, None)

    def close_longest_waiting(self) -> None:
        """Shut the socket of the connection that has waited longest for a request: its reader sees the end of
        the stream and its greenlet ends, freeing the slot."""
        if not self.waiting:
            return
        greenlet = next(iter(self.waiting))
        client = self.waiting.pop(greenlet)
        try:
            client.shutdown(socket.SHUT_RDWR)
        except OSError:  # the peer went first
            pass

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> None:
        check_framing(req.headers)
        super().handle_request(listener_name, req, sock, addr)
