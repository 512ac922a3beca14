"""Benchmark: N open SSE streams on one gunicorn + gevent web process, messages posted at a steady rate.

Starts its own web process against PostgreSQL and Redis (as production runs it), creates N recipients
each in a conversation with one poster, opens every recipient's ``GET /v1/stream``, then posts at
``--rate`` messages per second for ``--duration`` seconds, round-robin over the conversations. Reports
delivery latency (post request start → event read on the recipient's stream) and the web worker's
memory per open stream ((RSS with N streams − RSS idle) / N, from /proc/<pid>/status).

    .venv/bin/python bench/stream_bench.py                       # 1,000 streams, 20 msg/s for 30 s
    .venv/bin/python bench/stream_bench.py --streams 200 --duration 10

The client is plain asyncio sockets (HTTP/1.1 keep-alive for the posts, chunked SSE for the streams),
so it needs nothing beyond the standard library. Results: a Markdown table on stdout and JSON in
bench/results/stream.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import resource
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import redis
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from messaging.api.auth import mint_token  # noqa: E402
from messaging.cli import upgrade_database  # noqa: E402

JWT_SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
TARGET_P99_MS = 250.0
TARGET_KIB_PER_STREAM = 50.0


# --- helpers: processes, memory, percentiles -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_fd_limit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def recreate_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin_url.replace("postgresql://", "postgresql+psycopg://", 1)).set(database=name)
    return url.render_as_string(hide_password=False)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def worker_pid(master: int, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise RuntimeError("gunicorn started no worker")


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


# --- a minimal asyncio HTTP/1.1 client ------------------------------------------------------------------


class HttpPool:
    """Keep-alive connections for JSON requests (responses carry Content-Length)."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port = host, port
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = asyncio.Queue()
        for _ in range(size):
            self.idle.put_nowait(None)

    async def request(
        self, method: str, path: str, token: str, body: Any = None, started: list[float] | None = None
    ) -> tuple[int, Any]:
        conn = await self.idle.get()
        try:
            if conn is None:
                conn = await asyncio.open_connection(self.host, self.port)
            reader, writer = conn
            payload = json.dumps(body).encode() if body is not None else b""
            head = (
                f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Authorization: Bearer {token}\r\nContent-Length: {len(payload)}\r\n"
                + ("Content-Type: application/json\r\n" if body is not None else "")
                + "\r\n"
            ).encode()
            if started is not None:
                started.append(time.perf_counter())
            writer.write(head + payload)
            status_line = await reader.readuntil(b"\r\n")
            status = int(status_line.split()[1])
            length, close = 0, False
            while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                elif name.lower() == "connection" and value.strip().lower() == "close":
                    close = True
            raw = await reader.readexactly(length) if length else b""
            if close:
                writer.close()
                conn = None
            return status, (json.loads(raw) if raw else None)
        except BaseException:
            if conn is not None:
                conn[1].close()
            conn = None
            raise
        finally:
            self.idle.put_nowait(conn)


class SseStream:
    """One ``GET /v1/stream``: reads the chunked body and hands each event's data to ``on_event``."""

    def __init__(self, host: str, port: int, token: str, on_event: Any) -> None:
        self.host, self.port, self.token, self.on_event = host, port, token, on_event
        self.writer: asyncio.StreamWriter | None = None
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    async def open(self) -> None:
        reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(
            f"GET /v1/stream HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAccept: text/event-stream\r\n"
            f"Authorization: Bearer {self.token}\r\n\r\n".encode()
        )
        status_line = await reader.readuntil(b"\r\n")
        if int(status_line.split()[1]) != 200:
            raise RuntimeError(f"stream refused: {status_line!r}")
        while await reader.readuntil(b"\r\n") != b"\r\n":
            pass
        self.task = asyncio.create_task(self._read(reader))
        await self.ready.wait()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        buffer = b""
        try:
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                if size == 0:
                    return
                chunk = await reader.readexactly(size + 2)
                received = time.perf_counter()
                buffer += chunk[:-2]
                while b"\n\n" in buffer:
                    frame, buffer = buffer.split(b"\n\n", 1)
                    if frame.startswith(b"retry:") or frame.startswith(b":"):
                        self.ready.set()
                        continue
                    fields = dict(line.split(b": ", 1) for line in frame.split(b"\n") if b": " in line)
                    if fields.get(b"event") == b"message.created":
                        self.on_event(json.loads(fields[b"data"]), received)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        except BaseException as exc:  # noqa: BLE001 - reported in the results
            self.error = exc

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.writer is not None:
            self.writer.close()


# --- the run ------------------------------------------------------------------------------------------------


async def gather_limited(coros: list[Any], limit: int) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def run(coro: Any) -> Any:
        async with semaphore:
            return await coro

    return await asyncio.gather(*(run(c) for c in coros))


async def run_bench(args: argparse.Namespace, port: int, worker: int) -> dict[str, Any]:
    host = "127.0.0.1"
    config = {"JWT_SECRET": JWT_SECRET, "JWT_ISSUER": None, "JWT_AUDIENCE": None}
    ttl = dt.timedelta(hours=2)
    poster = "bench-poster"
    poster_token = mint_token(config, sub=poster, role="host", ttl=ttl)
    recipients = [f"bench-user-{i:05d}" for i in range(args.streams)]
    tokens = {user: mint_token(config, sub=user, role="guest", ttl=ttl) for user in recipients}
    api = HttpPool(host, port, args.connections)

    began = time.monotonic()
    for status, _ in await gather_limited(
        [api.request("GET", "/v1/me", token) for token in [poster_token, *tokens.values()]], args.connections
    ):
        assert status == 200, status
    created = await gather_limited(
        [api.request("POST", "/v1/conversations", poster_token, {"participantIds": [user]}) for user in recipients],
        args.connections,
    )
    conversations = {}
    for user, (status, body) in zip(recipients, created, strict=True):
        assert status in (200, 201), (status, body)
        conversations[user] = body["id"]
    setup_seconds = time.monotonic() - began
    # Warm the posting path once, then let the process settle before the idle reading.
    await api.request("POST", f"/v1/conversations/{conversations[recipients[0]]}/messages", poster_token,
                      {"message": "warm-up"})
    await asyncio.sleep(2)
    rss_idle = rss_kib(worker)

    sent_at: dict[int, float] = {}
    latencies: dict[int, float] = {}

    def on_event(data: dict[str, Any], received: float) -> None:
        text = data.get("message", "")
        if text.startswith("bench "):
            seq = int(text.split()[1])
            if seq in sent_at and seq not in latencies:
                latencies[seq] = received - sent_at[seq]

    streams = [SseStream(host, port, tokens[user], on_event) for user in recipients]
    began = time.monotonic()
    await gather_limited([s.open() for s in streams], 200)
    open_seconds = time.monotonic() - began
    await asyncio.sleep(3)
    rss_streams = rss_kib(worker)

    post_ms: list[float] = []
    failures = 0

    async def post(seq: int, conversation_id: str) -> None:
        nonlocal failures
        started: list[float] = []
        status, _ = await api.request(
            "POST", f"/v1/conversations/{conversation_id}/messages", poster_token, {"message": f"bench {seq}"},
            started=started,
        )
        post_ms.append((time.perf_counter() - started[0]) * 1000)
        if status != 201:
            failures += 1

    total = int(args.rate * args.duration)
    tasks = []
    start = time.perf_counter()
    for seq in range(total):
        target = start + seq / args.rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent_at[seq] = time.perf_counter()  # the request starts now (the pool rarely makes it wait)
        tasks.append(asyncio.create_task(post(seq, conversations[recipients[seq % len(recipients)]])))
    await asyncio.gather(*tasks)
    deadline = time.monotonic() + 5
    while len(latencies) < total and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    rss_after = rss_kib(worker)
    errors = [s.error for s in streams if s.error is not None]
    for stream in streams:
        stream.close()

    values = [v * 1000 for v in latencies.values()]
    per_stream = (rss_streams - rss_idle) / args.streams
    return {
        "streams": args.streams,
        "rate_per_second": args.rate,
        "duration_seconds": args.duration,
        "messages_posted": total,
        "post_failures": failures,
        "events_delivered": len(latencies),
        "events_missing": total - len(latencies),
        "stream_errors": [repr(e) for e in errors[:5]],
        "delivery_latency_ms": {
            "p50": round(percentile(values, 50), 2),
            "p90": round(percentile(values, 90), 2),
            "p99": round(percentile(values, 99), 2),
            "max": round(max(values), 2) if values else None,
        },
        "post_request_ms": {"p50": round(percentile(post_ms, 50), 2), "p99": round(percentile(post_ms, 99), 2)},
        "worker_rss_kib": {"idle": rss_idle, "with_streams": rss_streams, "after_posting": rss_after},
        "kib_per_stream": round(per_stream, 2),
        "setup_seconds": round(setup_seconds, 1),
        "open_streams_seconds": round(open_seconds, 2),
        "targets": {"p99_ms": TARGET_P99_MS, "kib_per_stream": TARGET_KIB_PER_STREAM},
        "passed": bool(values)
        and percentile(values, 99) <= TARGET_P99_MS
        and per_stream <= TARGET_KIB_PER_STREAM
        and len(latencies) == total,
    }


def markdown(result: dict[str, Any]) -> str:
    lat, rss = result["delivery_latency_ms"], result["worker_rss_kib"]
    rate = f"{result['rate_per_second']}/s for {result['duration_seconds']} s"
    rows = [
        ("open streams", f"{result['streams']:,}"),
        ("messages posted", f"{result['messages_posted']} ({rate})"),
        ("delivered / missing", f"{result['events_delivered']} / {result['events_missing']}"),
        ("delivery latency p50", f"{lat['p50']} ms"),
        ("delivery latency p90", f"{lat['p90']} ms"),
        ("delivery latency p99", f"{lat['p99']} ms (target ≤ {TARGET_P99_MS:.0f} ms)"),
        ("delivery latency max", f"{lat['max']} ms"),
        ("POST request p50 / p99", f"{result['post_request_ms']['p50']} / {result['post_request_ms']['p99']} ms"),
        ("worker RSS idle → with streams", f"{rss['idle'] / 1024:.1f} MiB → {rss['with_streams'] / 1024:.1f} MiB"),
        ("memory per open stream", f"{result['kib_per_stream']} KiB (target ≤ {TARGET_KIB_PER_STREAM:.0f} KiB)"),
        ("result", "PASS" if result["passed"] else "FAIL"),
    ]
    lines = ["| measure | value |", "|---|---|"] + [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of posting")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections for the API calls")
    parser.add_argument("--pg-admin-url", default=os.environ.get("BENCH_PG_ADMIN_URL",
                                                                 "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--database", default="concierge_bench_stream")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"))
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "stream.json")
    args = parser.parse_args()

    # Client sockets here, and in the web process (which inherits the limit) one socket per stream
    # plus one blocked Redis connection per stream.
    fd_limit = raise_fd_limit(3 * args.streams + 1024)

    redis.Redis.from_url(args.redis_url).flushdb()
    database_url = recreate_database(args.pg_admin_url, args.database)
    upgrade_database(database_url)

    port = free_port()
    command = [
        str(Path(sys.executable).parent / "gunicorn"), "-k", "messaging.server.GeventWorker", "-w", "1",
        "--worker-connections", str(max(2000, args.streams + 200)), "--keep-alive", "75",
        "--graceful-timeout", "2", "-b", f"127.0.0.1:{port}", "app:create_app()",
    ]
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": args.redis_url, "JWT_SECRET": JWT_SECRET,
           "LOG_LEVEL": "WARNING", "RATE_LIMITS_ENABLED": "0"}
    log_path = ROOT / "bench" / "results" / "stream_gunicorn.log.tmp"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"gunicorn did not start; see {log_path}") from None
                    time.sleep(0.1)
            worker = worker_pid(server.pid)
            result = asyncio.run(run_bench(args, port, worker))
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()

    result["server_command"] = "DATABASE_URL=… REDIS_URL=… " + shlex.join(["gunicorn", *command[1:]])
    result["bench_command"] = shlex.join([Path(sys.executable).name, *sys.argv])
    result["fd_limit"] = fd_limit
    result["cpus"] = os.cpu_count()
    result["measured_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(markdown(result))
    print(f"\nJSON: {args.output}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
