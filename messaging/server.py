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

With more than one worker, each accepts **one connection per wake-up** (gevent's server takes up to 100 that are
waiting): gunicorn sets the same for its plain ``gevent`` worker but not for the ``gevent_pywsgi`` server this
class builds on. A burst of new connections (a client pool opening, a load balancer reconnecting) is then spread
over the workers instead of landing on whichever woke first: with 100, 15 of ``wrk``'s 16 keep-alive connections
once went to one of two workers, and that worker's requests waited behind each other while the other idled.

Everything else (request line, body, chunked input, keep-alive, ``Expect: 100-continue``, errors) is gevent's and
gunicorn's own.
"""

from __future__ import annotations

import email.parser
import gc
import re
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


class Server(PyWSGIServer):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_log_on = access_log_on(self.log.cfg)
        if self.log.cfg.workers > 1:  # as gunicorn's own gevent worker: share a burst of connections out
            self.max_accept = 1


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
        super().run()
