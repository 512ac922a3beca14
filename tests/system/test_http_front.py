"""The web tier as the production command runs it (``gunicorn`` with ``gunicorn.conf.py``: the worker class
``messaging.server.GeventWorker``), spoken to over raw sockets: every ambiguous or malformed request frame is one
400 and a closed connection, idle and slow connections are dropped, floods of idle sockets cannot starve a worker,
request heads are bounded, and bodies are whole or refused (413 / 400), never cut short."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import orjson
import pytest

from messaging.server import check_framing
from tests.conftest import redis_url
from tests.helpers_processes import (
    Processes,
    WebServer,
    mint,
    private_pg_database,
    processes,  # noqa: F401 - fixture
    service_env,
    wait_until,
)

pytestmark = pytest.mark.slow

KEEPALIVE = 5  # gunicorn.conf.py
SMUGGLED = b"GET /healthz?smuggled=1 HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """The README's production command (gunicorn reads gunicorn.conf.py), two workers."""
    registry = Processes(tmp_path_factory.mktemp("front"))
    with private_pg_database("concierge_front") as url:
        try:
            server = WebServer(service_env(url, redis_url()), registry.log_dir / "gunicorn.log", workers=2)
            registry.add(server)
            server.start()
            yield server
        finally:
            registry.stop_all()


def read_responses(sock: socket.socket, wait: float = 3.0) -> tuple[list[tuple[int, dict[bytes, bytes], bytes]], bool]:
    """Every response the server writes on ``sock`` (status, headers, body: framed by Content-Length or chunked)
    until it closes the connection or is silent for ``wait`` seconds; and whether it closed."""
    sock.settimeout(wait)
    buffer, closed = b"", False

    def more() -> bool:
        nonlocal buffer, closed
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return False
        except ConnectionResetError:  # closed with our bytes unread: the kernel resets
            chunk = b""
        if not chunk:
            closed = True
            return False
        buffer += chunk
        return True

    responses = []
    while True:
        while b"\r\n\r\n" not in buffer:
            if not more():
                assert not buffer.strip(), f"bytes that are no response: {buffer[:200]!r}"
                return responses, closed
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.split(b"\r\n")
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(b":") for line in lines)}
        status = int(status_line.split()[1])
        if headers.get(b"transfer-encoding") == b"chunked":
            body = b""
            while True:
                while b"\r\n" not in buffer:
                    if not more():
                        raise AssertionError(f"truncated chunked response after {body!r}")
                size_line, _, buffer = buffer.partition(b"\r\n")
                size = int(size_line, 16)
                while len(buffer) < size + 2:
                    if not more():
                        raise AssertionError("truncated chunk")
                body, buffer = body + buffer[:size], buffer[size + 2:]
                if size == 0:
                    break
        else:
            length = int(headers.get(b"content-length", b"0"))
            while len(buffer) < length:
                if not more():
                    raise AssertionError(f"truncated response body ({len(buffer)} of {length})")
            body, buffer = buffer[:length], buffer[length:]
        responses.append((status, headers, body))


def exchange(port: int, raw: bytes, wait: float = 3.0) -> tuple[list[tuple[int, dict[bytes, bytes], bytes]], bool]:
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(raw)
        return read_responses(sock, wait)


def _post(*header_lines: bytes, body: bytes = SMUGGLED) -> bytes:
    head = b"".join(line + b"\r\n" for line in header_lines)
    return b"POST /v1/events HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n" + body


N = str(len(SMUGGLED)).encode()
END = b"0\r\n\r\n" + SMUGGLED  # a chunked body's end, then the smuggled request

# Each hides SMUGGLED in what some parser reads as the body and another as the next request.
AMBIGUOUS = {
    "header line without a colon before the length": _post(b"Bogus", b"Content-Length: " + N),
    "space inside a header name": _post(b"Bad Name: y", b"Content-Length: " + N),
    "space before the colon": _post(b"Content-Length : " + N),
    "length then chunked": _post(b"Content-Length: " + N, b"Transfer-Encoding: chunked", body=END),
    "chunked then length": _post(b"Transfer-Encoding: chunked", b"Content-Length: 5", body=END),
    "two different lengths": _post(b"Content-Length: 0", b"Content-Length: " + N),
    "two equal lengths": _post(b"Content-Length: " + N, b"Content-Length: " + N),
    "a length list": _post(b"Content-Length: " + N + b", " + N),
    "identity, chunked with a length": _post(b"Transfer-Encoding: identity, chunked", b"Content-Length: 3", body=END),
    "identity, chunked": _post(b"Transfer-Encoding: identity, chunked", body=END),
    "two chunked headers with a length": _post(b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked",
                                               b"Content-Length: 3", body=END),
    "chunked, chunked": _post(b"Transfer-Encoding: chunked, chunked", body=END),
    "chunked then gzip": _post(b"Transfer-Encoding: chunked, gzip", body=END),
    "gzip then chunked": _post(b"Transfer-Encoding: gzip, chunked", body=END),
    "an unknown coding": _post(b"Transfer-Encoding: xchunked", body=END),
    "chunked and a tab, with a length": _post(b"Transfer-Encoding: chunked\t", b"Content-Length: " + N),
    "chunked and a space, with a length": _post(b"Transfer-Encoding: chunked ", b"Content-Length: " + N),
    "chunked and a vertical tab": _post(b"Transfer-Encoding: chunked\x0b", body=END),
    "chunked and a NEL": _post(b"Transfer-Encoding: chunked\x85", body=END),
    "chunked and a no-break space": _post(b"Transfer-Encoding: chunked\xa0", body=END),
    "chunked after a vertical tab": _post(b"Transfer-Encoding: \x0bchunked", body=END),
    "folded transfer coding": _post(b"Transfer-Encoding:", b" chunked", b"Content-Length: " + N, body=END),
    "folded line": _post(b"X-A: a", b"\tb", b"Content-Length: " + N),
    "bare CR hiding a length": _post(b"X-A: a\rContent-Length: " + N),
    "NUL in a value": _post(b"X-A: a\x00b", b"Content-Length: " + N),
    "plus sign": _post(b"Content-Length: +" + N),
    "underscore": _post(b"Content-Length: 1_0"),
    "leading zeros": _post(b"Content-Length: 0" + N),
    "hexadecimal": _post(b"Content-Length: 0x10"),
    "negative": _post(b"Content-Length: -1"),
    "vertical tab before the length": _post(b"Content-Length: \x0b" + N),
    "no-break space after the length": _post(b"Content-Length: " + N + b"\xa0"),
    "chunked HTTP/1.0": b"POST /v1/events HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + END,
    "tab in the request line": b"GET\t/healthz HTTP/1.1\r\nHost: x\r\n\r\n" + SMUGGLED,
    "two spaces in the request line": b"GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + SMUGGLED,
    "HTTP/0.9": b"GET /healthz\r\n\r\n" + SMUGGLED,
    "bare LF line ends": b"GET /healthz HTTP/1.1\nHost: x\n\n" + SMUGGLED,
    "an invalid version": b"GET /healthz HTTP/1.x\r\nHost: x\r\n\r\n" + SMUGGLED,
    "a name with a slash": _post(b"X/A: b", b"Content-Length: " + N),
}


@pytest.mark.parametrize("raw", AMBIGUOUS.values(), ids=AMBIGUOUS.keys())
def test_an_ambiguous_frame_is_one_400_and_the_connection_closes(web: WebServer, raw: bytes) -> None:
    """(A coding gunicorn does not know is 501, as RFC 9112 §6.1 has it.)"""
    responses, closed = exchange(web.port, raw)
    expected = 501 if raw == AMBIGUOUS["an unknown coding"] else 400
    assert [status for status, _, _ in responses] == [expected], responses
    assert closed


def test_a_pipelined_request_after_a_well_framed_body_is_answered(web: WebServer) -> None:
    """The control: with an unambiguous body, the same bytes are two requests (the reader counts responses)."""
    responses, closed = exchange(web.port, _post(b"Content-Length: 2", body=b"{}" + SMUGGLED))
    assert [status for status, _, _ in responses] == [401, 200]
    assert not closed
    responses, _ = exchange(web.port, _post(b"Transfer-Encoding: chunked", body=b"2\r\n{}\r\n" + END))
    assert [status for status, _, _ in responses] == [401, 200]


@pytest.mark.parametrize(("headers", "refused"), [
    ([("TRANSFER-ENCODING", "chunked")], False),
    ([("TRANSFER-ENCODING", "Chunked ")], False),
    ([("CONTENT-LENGTH", "0")], False),
    ([("CONTENT-LENGTH", "1500")], False),
    ([("TRANSFER-ENCODING", "chunked\x0b")], True),
    ([("TRANSFER-ENCODING", "gzip, chunked")], True),
    ([("CONTENT-LENGTH", "007")], True),
    ([("CONTENT-LENGTH", "١")], True),
])
def test_check_framing(headers: list[tuple[str, str]], refused: bool) -> None:
    if refused:
        with pytest.raises(Exception, match="Invalid HTTP Header"):
            check_framing(headers)
    else:
        check_framing(headers)


# --- connections --------------------------------------------------------------------------------------------------


def test_an_idle_keep_alive_connection_is_closed(web: WebServer) -> None:
    with socket.create_connection(("127.0.0.1", web.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        responses, closed = read_responses(sock, wait=KEEPALIVE + 5)
        assert [status for status, _, _ in responses] == [200]
        assert closed
        assert time.monotonic() - started < KEEPALIVE + 3


def test_a_request_head_that_never_ends_is_dropped(web: WebServer) -> None:
    """A client that keeps sending header lines, one a second, is cut off after the keep-alive time."""
    with socket.create_connection(("127.0.0.1", web.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        sock.settimeout(1)
        closed = False
        for n in range(KEEPALIVE + 5):
            try:
                sock.sendall(b"X-Slow-%d: y\r\n" % n)
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
        assert closed
        assert time.monotonic() - started < KEEPALIVE + 3


def test_idle_sockets_beyond_worker_connections_do_not_stop_a_worker_answering(
    processes: Processes,  # noqa: F811 - fixture
) -> None:
    """One worker with 20 connections: 60 sockets that send nothing, then an ordinary request is answered within
    a second; the sockets that waited longest were closed for it."""
    web = processes.web({}, workers=1, options=["--worker-connections", "20"], app="tests.wsgi_probe:app")
    idle = [socket.create_connection(("127.0.0.1", web.port)) for _ in range(60)]
    try:
        started = time.monotonic()
        responses, _ = exchange(web.port, b"GET /probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", wait=1)
        assert [status for status, _, _ in responses] == [200]
        assert time.monotonic() - started < 1
        idle[0].settimeout(1)
        assert idle[0].recv(1) == b""  # the first idle socket was shut for a newcomer
    finally:
        for sock in idle:
            sock.close()


def test_an_open_stream_outlives_the_keep_alive_time(web: WebServer) -> None:
    token = mint("front-streamer")
    with socket.create_connection(("127.0.0.1", web.port), timeout=1) as sock:
        sock.sendall(b"GET /v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() + b"\r\n\r\n")
        received = b""
        started = time.monotonic()
        while time.monotonic() - started < KEEPALIVE + 2:
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            assert chunk, f"the stream closed after {time.monotonic() - started:.1f} s: {received[-300:]!r}"
            received += chunk
        assert received.startswith(b"HTTP/1.1 200")


def test_the_worker_freezes_what_was_loaded_before_serving(processes: Processes) -> None:  # noqa: F811 - fixture
    web = processes.web({}, app="tests.wsgi_probe:app")
    responses, _ = exchange(web.port, b"GET /probe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert orjson.loads(responses[0][2])["frozen"] > 10_000  # gunicorn, gevent and the application


# --- request heads ------------------------------------------------------------------------------------------------


def test_request_heads_are_bounded(web: WebServer) -> None:
    long_line = b"GET /healthz?" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    many = b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % n for n in range(60)) + b"\r\n"
    huge = b"GET /healthz HTTP/1.1\r\nX-Big: " + b"y" * 9000 + b"\r\n\r\n"
    for raw, status in ((long_line, 400), (many, 431), (huge, 431)):
        responses, closed = exchange(web.port, raw)
        assert [s for s, _, _ in responses] == [status]
        assert closed


def test_an_unterminated_header_block_is_refused_before_it_grows(web: WebServer) -> None:
    with socket.create_connection(("127.0.0.1", web.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        try:
            for n in range(100):
                sock.sendall(b"X-%d: " % n + b"y" * 8000 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        responses, closed = read_responses(sock)
        assert [s for s, _, _ in responses] in ([431], [])  # the answer may be lost to the reset
        assert closed


# --- bodies -------------------------------------------------------------------------------------------------------


def _chunked(body: bytes, size: int = 4096) -> bytes:
    return b"".join(b"%x\r\n" % len(body[i:i + size]) + body[i:i + size] + b"\r\n"
                    for i in range(0, len(body), size)) + b"0\r\n\r\n"


@pytest.mark.parametrize("framing", ["chunked", "length"])
def test_a_body_over_the_limit_is_413(web: WebServer, framing: str) -> None:
    token = mint("front-sender").encode()
    body = orjson.dumps({"participantIds": ["x"], "name": "n" * 70_000})
    framed = (b"Transfer-Encoding: chunked\r\n\r\n" + _chunked(body) if framing == "chunked"
              else b"Content-Length: %d\r\n\r\n" % len(body) + body)
    raw = (b"POST /v1/conversations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token
           + b"\r\nContent-Type: application/json\r\n" + framed)
    responses, _ = exchange(web.port, raw)
    assert responses[0][0] == 413
    assert responses[0][1][b"content-type"] == b"application/problem+json"


@pytest.mark.parametrize("framing", ["chunked", "length"])
@pytest.mark.parametrize(("token", "status"), [(True, 400), (False, 401)])
def test_a_body_that_ends_early_is_400_or_401_first(web: WebServer, framing: str, token: bool, status: int) -> None:
    auth = b"Authorization: Bearer " + mint("svc-front", "service").encode() + b"\r\n" if token else b""
    framed = (b"Transfer-Encoding: chunked\r\n\r\n40\r\n{\"id\":" if framing == "chunked"
              else b"Content-Length: 100\r\n\r\n{\"id\":")
    with socket.create_connection(("127.0.0.1", web.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + auth + framed)
        sock.shutdown(socket.SHUT_WR)
        responses, _ = read_responses(sock)
    assert [s for s, _, _ in responses] == [status]
    assert responses[0][1][b"content-type"] == b"application/problem+json"


def test_a_malformed_chunk_is_400(web: WebServer) -> None:
    auth = b"Authorization: Bearer " + mint("svc-front", "service").encode() + b"\r\n"
    responses, closed = exchange(web.port, b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                 + auth + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n" + SMUGGLED)
    assert [s for s, _, _ in responses] == [400]


def test_a_worker_stops_without_a_traceback(processes: Processes) -> None:  # noqa: F811 - fixture
    """Frozen objects (gc.freeze) finalised after gevent's hub at exit made logging's finalisers fail; the
    workers now thaw them first."""
    with private_pg_database("concierge_front_exit") as url:
        web = processes.web(service_env(url, redis_url()), workers=2)
        assert exchange(web.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0]
        assert web.stop() == 0
    assert "Worker exiting" in web.log_text()
    assert "Traceback" not in web.log_text()


def test_the_server_log_has_no_traceback(web: WebServer) -> None:
    """Run last in this module: nothing above made the service log an error."""
    wait_until(lambda: web.log_text(), 1, what="the log")
    assert "Traceback" not in web.log_text()
    assert "[ERROR]" not in web.log_text()

