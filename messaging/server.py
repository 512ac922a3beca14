"""The web tier's gunicorn worker class: ``gunicorn -k messaging.server.GeventWorker`` (the README's production
command). It is gunicorn's ``gevent_pywsgi`` worker (gevent's HTTP server, monkey-patching and greenlets, so each
process holds many open live-update streams) with three per-request costs taken out of its request handler.
Profiles under load (py-spy, ``bench/README.md``) put them at about a sixth of a history page's web-process CPU:

* **Header parsing.** gevent reads the header lines with ``http.client`` and then hands them to the ``email``
  package's feed parser, the bulk of that work (~11 % of a history page's samples). :func:`parse_headers` reads the
  same lines the same way (``http.client``'s own reader: the same line-length and header-count limits) and, when
  every line is a plain ``Name: value`` line, builds the same message with the same ``(name, value)`` pairs
  directly; any other line (a folded continuation, a line without a colon, a name with a space, a bare CR) sends
  the block to the ``email`` parser exactly as gevent does. ``tests/test_server.py`` checks the two agree on
  generated header blocks.
* **The access log.** gunicorn's handler builds the log record's response object and timings for every request
  before gunicorn's logger finds there is no access log to write (the default). :class:`Server` asks the same
  question once (:func:`access_log_on`: gunicorn's own condition; a worker's settings do not change while it
  lives), and :meth:`Handler.log_request` does that work only when the answer is yes.
* **The Date header.** gevent formats ``time.gmtime()`` for every response; :func:`http_date` formats it once a
  second.

And once the application is loaded, before the first request, the worker freezes the objects it holds then
(``gc.freeze()``): the loaded application is ~150 k objects the collector tracks, and a full collection under
load walked them all — one 96 ms pause of every request in the process (measured with ``gc.callbacks`` over a
minute of history, inbox and send load); with them frozen it was 5 ms.

With more than one worker, **a worker much busier than another leaves new connections to it.** Every worker
waits on the one listening socket and the kernel wakes them all; whichever runs first takes the connection, and on
a busy machine that is the worker already running. So a client that opens its keep-alive connections in a burst
(a connection pool, a proxy, a load generator) got nearly all of them on one worker — 15 of 16 in four bursts of
five, with two workers on this 2-CPU machine, one connection per wake-up or not — whose requests then queued
behind each other while the other worker idled. Now:

* each worker takes one connection per wake-up (gevent's server takes up to 100 that are waiting; gunicorn sets
  the same for its plain ``gevent`` worker, not for the ``gevent_pywsgi`` server this class builds on);
* the workers keep their open-connection counts in memory the gunicorn master maps before it forks them
  (:class:`Balance`; the master imports this module to load the worker class). A worker with more than twice the
  open connections of another live worker, plus two, leaves a waiting connection for up to 5 ms
  (:attr:`Server.defer_seconds`), then takes it itself if it is still waiting. A worker that is stuck or gone
  so costs a new connection at most those 5 ms; one that died without clearing its count is skipped (its
  process is gone).

Bursts of 16 from an asyncio client (8 bursts, idle and with requests running) split 5/11 to 8/8, where they had
split 1/15 or 16/0 in 6 of 16. History pages over such connections, four runs each: 3,470-3,777 a second against
3,117-3,527 (the lower two with all 16 on one worker; one run of the four after still ended 1/15). The margin is
what keeps the connection-per-request case whole: deferring whenever another worker had fewer open, history pages
over ``Connection: close`` fell from ~2,500 to ~1,000 a second (the "less busy" worker was as busy, and the
deferring one sat idle); with the margin, 1-6 % below no balancing in alternating runs (no deferral happened
there; the counting costs a few µs a connection, and the runs spread by about as much as they differ).

Everything else (request line, body, chunked input, keep-alive, ``Expect: 100-continue``, errors) is gevent's and
gunicorn's own.
"""

from __future__ import annotations

import email.parser
import gc
import mmap
import os
import re
import struct
import time
from http import client
from typing import Any

from gevent import pywsgi  # type: ignore[import-untyped]
from gunicorn.workers.ggevent import (  # type: ignore[import-untyped]
    GeventPyWSGIWorker,
    PyWSGIHandler,
    PyWSGIServer,
)

# One header line as the email parser reads it with no special case: a name of printable ASCII other than the
# colon (the parser's own header pattern), a colon, a value without CR or LF (a bare CR would start another line
# for it), and the line's end.
_PLAIN_LINE = re.compile(rb"([!-9;-~]+):([^\r\n]*)\r?\n\Z")
_END_OF_HEADERS = (b"\r\n", b"\n", b"")


def parse_headers(fp: Any, *_args: Any) -> Any:
    """gevent's ``headers_factory`` (``pywsgi.WSGIHandler.MessageClass``), giving the same message: an
    ``OldMessage`` whose ``_headers`` are the ``(name, value)`` pairs of ``email``'s compat32 policy (value without
    its leading blanks and line end), ``status`` ``''``, or ``'Line too long'`` with no headers."""
    try:
        lines = client._read_headers(fp)  # type: ignore[attr-defined]  # http.client.parse_headers' own reader
    except client.LineTooLong:
        message = pywsgi.OldMessage()
        message.status = "Line too long"
        return message
    pairs = []
    for line in lines:
        if line in _END_OF_HEADERS:
            break
        plain = _PLAIN_LINE.match(line)
        if plain is None:  # anything unusual: the email parser, as gevent does
            return email.parser.Parser(_class=pywsgi.OldMessage).parsestr(
                b"".join(lines).decode("iso-8859-1"))
        pairs.append((plain[1].decode("ascii"), plain[2].decode("iso-8859-1").lstrip(" \t")))
    message = pywsgi.OldMessage()
    message._headers = pairs
    return message


def access_log_on(cfg: Any) -> bool:
    """Whether gunicorn writes access log lines: the condition its ``Logger.access`` checks before writing."""
    return bool(cfg.accesslog or cfg.logconfig or cfg.logconfig_dict or cfg.logconfig_json
                or (cfg.syslog and not cfg.disable_redirect_access_to_syslog))


_date: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """The current time as an HTTP ``Date`` value (gevent's format), formatted once per second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, pywsgi.format_date_time(now))
    return _date[1]


class Balance:
    """The open connections of each worker of one gunicorn master, in a shared anonymous mapping made when this
    module is imported: by the master, before it forks the workers, which then share it. A worker takes slot
    ``age % SLOTS`` (gunicorn numbers its workers as it forks them) and writes its pid and open-connection count
    there; it clears the slot when it stops. A process that imported this module itself, not through a master
    that forked it, has a mapping of its own: it sees no other worker and never defers."""

    SLOTS = 64
    SLOT = struct.Struct("qq")  # pid, open connections

    def __init__(self) -> None:
        self.memory = mmap.mmap(-1, self.SLOTS * self.SLOT.size)
        self.slot: int | None = None
        self.pid = 0

    def join(self, age: int) -> None:
        """This process is a worker from now on, in the slot of its ``age``."""
        self.slot, self.pid = age % self.SLOTS, os.getpid()
        self.publish(0)

    def leave(self) -> None:
        if self.slot is not None:
            self.SLOT.pack_into(self.memory, self.slot * self.SLOT.size, 0, 0)
            self.slot = None

    def publish(self, open_connections: int) -> None:
        if self.slot is not None:
            self.SLOT.pack_into(self.memory, self.slot * self.SLOT.size, self.pid, open_connections)

    def least_elsewhere(self) -> int | None:
        """The fewest open connections of another live worker; None when there is none."""
        least = None
        for slot, (pid, count) in enumerate(self.SLOT.iter_unpack(self.memory)):  # ~4 µs for the 64 slots
            if pid and slot != self.slot and (least is None or count < least) and _alive(pid):
                least = count
        return least


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:  # a worker killed before it could clear its slot
        return False
    except PermissionError:
        pass
    return True


BALANCE = Balance()


class Server(PyWSGIServer):  # type: ignore[misc]
    defer_seconds = 0.005

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_log_on = access_log_on(self.log.cfg)
        several = self.log.cfg.workers > 1
        if several:  # as gunicorn's own gevent worker: one connection per wake-up
            self.max_accept = 1
        self.balance = BALANCE if several and BALANCE.slot is not None else None
        self.open_connections = 0
        self._take_one = False  # after a deferral: take the next waiting connection, however busy this worker is
        self._resume: Any = None

    def do_read(self) -> Any:
        """Accept a waiting connection, unless another live worker has under half as many open (less two): then
        leave it to that worker for :attr:`defer_seconds`, and take it after that if it is still waiting."""
        if self.balance is not None and not self._take_one:
            least = self.balance.least_elsewhere()
            if least is not None and self.open_connections > 2 * least + 2:
                self.stop_accepting()
                if self._resume is None:  # (accepting can restart meanwhile: a full pool's slot freed)
                    self._resume = self.loop.timer(self.defer_seconds)
                    self._resume.start(self._accept_again)
                return None
        accepted = super().do_read()
        if accepted:
            self._take_one = False
            self.open_connections += 1
            if self.balance is not None:
                self.balance.publish(self.open_connections)
        return accepted

    def do_close(self, *args: Any) -> None:
        """A connection accepted by :meth:`do_read` is done (its handler returned, or it could not start)."""
        try:
            super().do_close(*args)
        finally:
            self.open_connections -= 1
            if self.balance is not None:
                self.balance.publish(self.open_connections)

    def _accept_again(self) -> None:
        timer, self._resume = self._resume, None
        timer.close()
        self._take_one = True
        if self.started:
            self.start_accepting()


class Handler(PyWSGIHandler):  # type: ignore[misc]
    MessageClass = staticmethod(parse_headers)
    provided_date: bytes | None  # gevent's: the Date the application gave, if any

    def log_request(self) -> None:
        if self.server.access_log_on:
            super().log_request()

    def finalize_headers(self) -> None:
        if self.provided_date is None:  # the application gave none
            self.provided_date = http_date()
            self.response_headers.append((b"Date", self.provided_date))
        super().finalize_headers()


class GeventWorker(GeventPyWSGIWorker):  # type: ignore[misc]
    """gunicorn's ``gevent_pywsgi`` worker with :class:`Server` and :class:`Handler`."""

    server_class = Server
    wsgi_handler = Handler

    def run(self) -> None:
        gc.freeze()  # what the loaded application made lives as long as the process: no collection walks it
        BALANCE.join(self.age)
        try:
            super().run()
        finally:
            BALANCE.leave()
