"""The web tier's worker class (messaging/server.py): its header parser gives what gevent's gives, on generated
header blocks, and a real ``gunicorn -k messaging.server.GeventWorker`` serves with the headers read both ways,
a current ``Date`` and, when asked for, its access log; with several workers a burst of new connections is shared
between them, and a stuck worker does not hold new connections up; its process freezes what was loaded before it
serves."""

from __future__ import annotations

import datetime as dt
import email.utils
import io
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from gevent import pywsgi
from gunicorn.config import Config
from gunicorn.glogging import Logger
from hypothesis import given, settings
from hypothesis import strategies as st

from messaging.server import _PLAIN_LINE, Balance, Server, http_date, parse_headers
from tests.helpers_processes import (
    Processes,
    mint,
    private_pg_database,
    processes,  # noqa: F401 - fixture
    service_env,
    wait_until,
)

# --- the parser against gevent's ----------------------------------------------------------------------------------

# A header name of the email parser's characters: printable ASCII but the colon.
NAME = st.lists(st.sampled_from([c for c in range(0x21, 0x7F) if c != 0x3A]), min_size=1, max_size=12).map(bytes)
VALUE = st.binary(max_size=24).filter(lambda b: b"\r" not in b and b"\n" not in b)
END = st.sampled_from([b"\r\n", b"\n"])
PLAIN = st.builds(lambda n, v, lead, e: n + b":" + lead + v + e, NAME, VALUE, st.sampled_from([b"", b" ", b"\t "]), END)
# Lines the email parser treats specially, or that are not headers at all.
ODD = st.sampled_from([
    b" folded continuation\r\n", b"\tfolded\r\n", b"no colon here\r\n", b"Spaced Name: x\r\n", b":empty name\r\n",
    b"From someone\r\n", b"A: bare\rCR: inside\r\n", b"Under_score: y\r\n", b"Trailing: blanks  \t\r\n",
    b"Latin: caf\xe9\r\n", b"Content-Length: 5\r\n", b"content-length: 7\r\n", b"Colon:: twice\r\n",
])


def _parse(factory: Any, raw: bytes) -> tuple[Any, ...]:
    fp = io.BytesIO(raw)
    try:
        message = factory(fp, 0)
    except Exception as exc:  # noqa: BLE001 - the same failure is what is compared
        return ("raised", type(exc), str(exc))
    return message._headers, message.status, message.get("content-length"), message.typeheader, fp.read()


@settings(max_examples=400, deadline=None)
@given(lines=st.lists(st.one_of(PLAIN, PLAIN, ODD), max_size=12),
       end=st.sampled_from([b"\r\n", b"\n", b""]), body=st.sampled_from([b"", b"BODY", b"X: not a header\r\n"]))
def test_headers_parse_as_gevents_own_parser_parses_them(lines: list[bytes], end: bytes, body: bytes) -> None:
    raw = b"".join(lines) + end + (body if end else b"")
    assert _parse(parse_headers, raw) == _parse(pywsgi.headers_factory, raw)


def test_the_fast_path_takes_plain_lines_and_only_them() -> None:
    """So the agreement above covers both paths: plain lines are the fast path's, odd ones the email parser's."""
    assert _PLAIN_LINE.match(b"Authorization: Bearer x\r\n") and _PLAIN_LINE.match(b"Host:127.0.0.1\n")
    for odd in (b" folded\r\n", b"no colon\r\n", b"Spaced Name: x\r\n", b":empty\r\n", b"A: b\rC: d\r\n",
                b"Unterminated: x"):
        assert _PLAIN_LINE.match(odd) is None, odd


@pytest.mark.parametrize("raw", [
    b"Long: " + b"x" * 70_000 + b"\r\n\r\n",  # one line past http.client's limit: 'Line too long'
    b"".join(b"H%d: v\r\n" % n for n in range(101)) + b"\r\n",  # more headers than http.client allows
])
def test_limits_are_http_clients_as_with_gevent(raw: bytes) -> None:
    ours, gevents = _parse(parse_headers, raw), _parse(pywsgi.headers_factory, raw)
    assert ours == gevents
    assert ours[0] == "raised" or ours[1] == "Line too long"


def test_the_date_is_gevents_format_of_now() -> None:
    sent = email.utils.parsedate_to_datetime(http_date().decode())
    assert abs((sent - dt.datetime.now(dt.UTC)).total_seconds()) <= 2
    assert http_date() == pywsgi.format_date_time(sent.timestamp())


# --- a real server ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with private_pg_database("concierge_server") as url:
        yield url


def _exchange(port: int, raw: bytes) -> bytes:
    """One request written as given on a fresh connection (``Connection: close``), the whole answer back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.slow
def test_gunicorn_with_the_worker_class_serves_reads_headers_dates_and_logs_access(
    processes: Processes,  # noqa: F811 - fixture
    database_url: str,
    tmp_path: Path,
) -> None:
    access_log = tmp_path / "access.log"
    web = processes.web(service_env(database_url, None), worker_class="messaging.server.GeventWorker",
                        options=["--access-logfile", str(access_log)])
    token = mint("srv-alice")
    plain = (f"GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nX-Request-Id: plain-1\r\n"
             "Connection: close\r\n\r\n").encode()
    # The same token in a folded header line: the email parser's path (gevent joins and strips it).
    folded = (f"GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization:\r\n Bearer {token}\r\nX-Request-Id: folded-1\r\n"
              "Connection: close\r\n\r\n").encode()
    for raw, request_id in ((plain, b"plain-1"), (folded, b"folded-1")):
        answer = _exchange(web.port, raw)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), answer[:300]
        assert b'"srv-alice"' in body
        headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
        assert headers[b"X-Request-Id"] == request_id
        assert head.count(b"\r\nDate: ") == 1
        sent = email.utils.parsedate_to_datetime(headers[b"Date"].decode())
        assert abs((sent - dt.datetime.now(dt.UTC)).total_seconds()) <= 5
    # No token: the header block without Authorization is what the application saw.
    assert _exchange(web.port, b"GET /v1/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(
        b"HTTP/1.1 401")
    wait_until(lambda: access_log.exists() and access_log.read_text().count('"GET /v1/me HTTP/1.1"') == 3, 5,
               what="three access log lines")
    lines = [line for line in access_log.read_text().splitlines() if "/v1/me" in line]
    assert sum(' 200 ' in line for line in lines) == 2 and sum(' 401 ' in line for line in lines) == 1


@pytest.mark.parametrize(("workers", "max_accept"), [(1, pywsgi.WSGIServer.max_accept), (2, 1), (4, 1)])
def test_with_several_workers_each_accepts_one_connection_per_wake_up(workers: int, max_accept: int) -> None:
    cfg = Config()
    cfg.set("workers", workers)
    server = Server(("127.0.0.1", 0), application=lambda environ, start_response: [], log=Logger(cfg))
    assert server.max_accept == max_accept
    assert pywsgi.WSGIServer.max_accept > 1  # gevent's own: one worker takes every connection that is waiting


@pytest.mark.slow
@pytest.mark.parametrize(("worker_class", "frozen"), [("messaging.server.GeventWorker", True),
                                                      ("gevent_pywsgi", False)])
def test_the_worker_freezes_what_was_loaded_before_serving(
    processes: Processes,  # noqa: F811 - fixture
    worker_class: str,
    frozen: bool,
) -> None:
    """The worker's process reports a permanent generation (gc.freeze) when served by our worker class, and
    none with gunicorn's gevent_pywsgi, so the figure is the worker's doing."""
    web = processes.web({}, worker_class=worker_class, app="tests.wsgi_probe:app")
    answer = _exchange(web.port, b"GET /probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer[:300]
    count = orjson.loads(body)["frozen"]
    assert count > 10_000 if frozen else count == 0  # gunicorn, gevent and the application: tens of thousands


# --- connections shared between workers ---------------------------------------------------------------------------


def test_balance_reads_the_other_live_workers_counts() -> None:
    balance = Balance()
    balance.join(age=3)
    assert balance.least_elsewhere() is None  # alone
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:
        size = Balance.SLOT.size
        Balance.SLOT.pack_into(balance.memory, 5 * size, other.pid, 7)
        Balance.SLOT.pack_into(balance.memory, 9 * size, gone.pid, 0)  # killed before it could clear its slot
        balance.publish(1)
        assert balance.least_elsewhere() == 7  # not its own 1, not the dead worker's 0
        other.kill()
        other.wait()
        assert balance.least_elsewhere() is None
    finally:
        other.kill()
        other.wait()
    balance.leave()
    assert Balance.SLOT.unpack_from(balance.memory, 3 * size) == (0, 0)


def _ask(connection: socket.socket, path: str = "/") -> int:
    """One keep-alive request on ``connection``; the pid of the worker that answered."""
    connection.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    answer = b""
    while not answer.endswith(b"}"):
        chunk = connection.recv(4096)
        assert chunk, answer
        answer += chunk
    return int(orjson.loads(answer.partition(b"\r\n\r\n")[2])["pid"])


def _until_both_workers_answer(port: int) -> None:
    """gunicorn answers as soon as one worker is up; the tests below need both."""
    connections: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            connections.append(socket.create_connection(("127.0.0.1", port), timeout=10))
            if len({_ask(c) for c in connections}) == 2:
                return
            time.sleep(0.05)
        raise AssertionError("the second worker never answered")
    finally:
        for c in connections:
            c.close()
        time.sleep(0.3)  # the workers see them closed


@pytest.mark.slow
def test_a_burst_of_connections_is_shared_between_the_workers(
    processes: Processes,  # noqa: F811 - fixture
) -> None:
    """16 connections opened back to back, then one request on each: the workers that answer. Without the shared
    counts one worker took 14 or 15 of them in most bursts (and 8 in some); with them, the less busy worker gets
    5 to 8 unless a worker is starved of CPU for the whole deferral."""
    web = processes.web({}, workers=2, worker_class="messaging.server.GeventWorker", app="tests.wsgi_probe:app")
    _until_both_workers_answer(web.port)
    smaller = []
    for _ in range(5):
        connections = [socket.create_connection(("127.0.0.1", web.port), timeout=10) for _ in range(16)]
        try:
            pids = [_ask(c) for c in connections]
        finally:
            for c in connections:
                c.close()
        shares = sorted(pids.count(pid) for pid in set(pids))
        smaller.append(shares[0] if len(shares) == 2 else 0)
        time.sleep(0.3)  # the workers see the connections closed
    assert sorted(smaller)[2] >= 4, smaller  # the median burst


@pytest.mark.slow
def test_a_stuck_worker_does_not_hold_new_connections_up(
    processes: Processes,  # noqa: F811 - fixture
) -> None:
    """While one worker's event loop is held by a request, the other takes every new connection, however many it
    already has: each waits at most the deferral, not for the stuck worker."""
    web = processes.web({}, workers=2, worker_class="messaging.server.GeventWorker", app="tests.wsgi_probe:app")
    _until_both_workers_answer(web.port)
    stuck = socket.create_connection(("127.0.0.1", web.port), timeout=10)
    stuck.sendall(b"GET /spin?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)  # the spin has begun
    connections = []
    try:
        pids = []
        started = time.monotonic()
        for _ in range(12):
            connections.append(socket.create_connection(("127.0.0.1", web.port), timeout=1))
            pids.append(_ask(connections[-1]))
        elapsed = time.monotonic() - started
        assert len(set(pids)) == 1, pids  # the other worker, every time
        assert elapsed < 1.5, elapsed  # the spin holds its worker for 3 s
        stuck.settimeout(10)
        answer = b""
        while not answer.endswith(b"}"):
            answer += stuck.recv(4096)
        assert int(orjson.loads(answer.partition(b"\r\n\r\n")[2])["pid"]) not in pids
    finally:
        stuck.close()
        for c in connections:
            c.close()
