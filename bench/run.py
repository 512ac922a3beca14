"""`make bench`: the service against the raw database doing the same work, in one run, on PostgreSQL and Redis.

1. Recreates two databases, migrates them and loads the data set into each: ``concierge_bench_stage`` at the first
   stage's size (``--stage-messages``, default 100 k messages) and ``concierge_bench`` at full size
   (``--messages``, default 1 M across 20 k conversations and 10 k users); 50 messages per conversation, one user
   in 500 conversations.
2. Starts the service the production way (the README's command) on each: gunicorn with ``--web-workers``
   processes of the worker class ``messaging.server.GeventWorker`` and Celery workers, on PostgreSQL and Redis (a
   Redis database each), with the abuse limits on (set high, so they are counted but never refuse).
3. Measures history and inbox at both sizes with wrk (16 connections, warm-up then a measured window) in
   interleaved windows (stage, full, full, stage), each followed by pgbench's "50 newest" SELECT on that database,
   so a drift of the machine's speed weighs on both sizes alike. Then stops the first stage's service.
4. At full size: send and a one-row INSERT straight to PostgreSQL with pgbench (16 clients, same window),
   interleaved (send, insert, insert, send); mark read and property-thread reply through the API; and platform
   event → concierge message committed at a steady rate through the real worker.
5. Writes ``bench/results/latest.json`` and ``latest.md`` and prints the table.

    make bench                                   # full size
    .venv/bin/python bench/run.py --quick        # 25 k → 100 k messages, short windows (a smoke run)

Needs ``wrk`` and ``pgbench`` (Debian: ``apt-get install wrk postgresql-contrib``) on PATH or in PostgreSQL's
bin directory. ``--profile`` also records the web workers with py-spy during the first full-size window of each
measure (send, history, inbox, mark read, property-thread reply).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import redis
import requests
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from messaging.api.auth import mint_token  # noqa: E402
from messaging.cli import upgrade_database  # noqa: E402

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
PG_ADMIN = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
# The first stage's service has a queue of its own: its workers must never take the full-size service's tasks.
STAGE_REDIS_URL = os.environ.get("BENCH_STAGE_REDIS_URL", "redis://127.0.0.1:6379/13")
DATABASE = "concierge_bench"
STAGE_DATABASE = "concierge_bench_stage"  # the first stage's size, side by side with the full one
RESULTS = ROOT / "bench" / "results"
WRK_SCRIPT = ROOT / "bench" / "wrk" / "common.lua"
PER_CONVERSATION = 50
HEAVY = "bench-heavy"
HEAVY_CONVERSATIONS = 500
CONNECTIONS = 16


# Travelers who ask the concierge in the questions phase (each has a trip from the events phase).
QUESTION_TRAVELERS = 100

def conversation_id(n: int) -> str:
    return "c" + str(n).zfill(20)


def user_id(n: int) -> str:
    return f"u{n}"


def bearer(sub: str, role: str = "guest") -> str:
    config = {"JWT_SECRET": SECRET, "JWT_ISSUER": None, "JWT_AUDIENCE": None}
    return mint_token(config, sub=sub, role=role, ttl=dt.timedelta(hours=6))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU the processes ``pids`` have used so far (a process that has ended counts nothing)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    package = "wrk" if name == "wrk" else "postgresql-contrib"
    raise SystemExit(f"make bench needs `{name}` (Debian: apt-get install {package})")


# --- the data set -------------------------------------------------------------------------------------------------


class DataSet:
    """Conversations of two users each (users 2k and 2k+1 of the stage), 50 messages each, all read; the heavy
    user is a third participant in the first 500. Loaded with server-side INSERT … SELECT in chunks.

    Two costs of a bulk load are taken out of the messages' inserts, as ``pg_restore`` does, and nothing else:
    the messages' GIN indexes (the admin search's trigram index: half the load's time, row by row) are dropped
    first and built again at the end from their own definitions (``pg_indexes``), and the foreign-key checks of
    the messages' rows are skipped (``session_replication_role = replica`` for that statement alone: every
    conversation and user it names was inserted before it; ``messages`` has no insert trigger of its own; only a
    superuser may, so as another role the checks run). The other tables' inserts run their triggers (inbox
    entries, cursors' names) and checks as always."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conversations = 0
        self.users = 0

    def load(self, conversations: int, users: int) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            if self.users == 0:  # every user from the start: a stage differs only in conversations and messages
                conn.execute("INSERT INTO users (id, name, role) VALUES (%s, 'Heavy user', 'guest')", (HEAVY,))
                conn.execute("INSERT INTO users (id, name, role) SELECT 'u' || n, 'User ' || n, 'guest' "
                             "FROM generate_series(0, %s::int - 1) n", (users,))
            chunk = 1000
            total = (conversations - self.conversations) * PER_CONVERSATION
            gin = conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                               "AND tablename = 'messages' AND indexdef LIKE '% USING gin %'").fetchall()
            for name, _ in gin:
                conn.execute(f'DROP INDEX "{name}"')
            unchecked = conn.execute("SELECT current_setting('is_superuser') = 'on'").fetchone()[0]
            with tqdm(total=total, unit="msg", unit_scale=True, desc=f"loading to {conversations * PER_CONVERSATION:,}",
                      leave=False) as bar:
                for start in range(self.conversations, conversations, chunk):
                    end = min(conversations, start + chunk)
                    self._chunk(conn, start, end, users, unchecked)
                    bar.update((end - start) * PER_CONVERSATION)
            conn.execute("SET maintenance_work_mem = '256MB'")
            for _, definition in tqdm(gin, unit="index", desc="building the messages' GIN indexes", leave=False):
                conn.execute(definition)
            conn.execute("ANALYZE")
        self.conversations, self.users = conversations, users

    @staticmethod
    def _chunk(conn: psycopg.Connection[Any], start: int, end: int, users: int, unchecked: bool) -> None:
        cid = "'c' || lpad(n::text, 20, '0')"
        a, b = f"'u' || ((n * 2) %% {users})", f"'u' || ((n * 2 + 1) %% {users})"
        mid = "'m' || lpad((n * 50 + k)::text, 20, '0')"
        at = "timestamptz '2026-01-01' + make_interval(secs => n * 60 + k)"
        params = {"s": start, "e": end}
        with conn.transaction():
            conn.execute(f"INSERT INTO conversations (id, name, created_at) SELECT {cid}, 'Group ' || n, "
                         f"timestamptz '2026-01-01' + make_interval(secs => n * 60) "
                         f"FROM generate_series(%(s)s::int, %(e)s::int - 1) n", params)
            conn.execute(f"INSERT INTO conversation_participants (conversation_id, user_id) "
                         f"SELECT {cid}, {a} FROM generate_series(%(s)s::int, %(e)s::int - 1) n UNION ALL "
                         f"SELECT {cid}, {b} FROM generate_series(%(s)s::int, %(e)s::int - 1) n UNION ALL "
                         f"SELECT {cid}, '{HEAVY}' FROM generate_series(%(s)s::int, least(%(e)s::int, "
                         f"{HEAVY_CONVERSATIONS}) - 1) n", params)
            if unchecked:  # this statement's foreign-key checks: see DataSet
                conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute(f"INSERT INTO messages (id, conversation_id, user_id, message, read, is_edit, created_at) "
                         f"SELECT {mid}, {cid}, CASE WHEN k %% 2 = 0 THEN {a} ELSE {b} END, "
                         f"'Message ' || k || ' of conversation ' || n || ': see you at the apartment at noon', "
                         f"true, false, {at} "
                         f"FROM generate_series(%(s)s::int, %(e)s::int - 1) n, generate_series(0, 49) k", params)
            if unchecked:
                conn.execute("SET LOCAL session_replication_role = origin")
            conn.execute(f"INSERT INTO conversation_stats (conversation_id, message_count, last_message_id, "
                         f"last_activity_at) SELECT {cid}, 50, 'm' || lpad((n * 50 + 49)::text, 20, '0'), "
                         f"timestamptz '2026-01-01' + make_interval(secs => n * 60 + 49) "
                         f"FROM generate_series(%(s)s::int, %(e)s::int - 1) n", params)
            conn.execute("INSERT INTO read_cursors (conversation_id, user_id, read_count, last_read_message_id, "
                         "last_read_message_created_at, last_read_at) "
                         "SELECT p.conversation_id, p.user_id, s.message_count, s.last_message_id, "
                         "s.last_activity_at, s.last_activity_at FROM conversation_participants p "
                         "JOIN conversation_stats s USING (conversation_id) "
                         "WHERE p.conversation_id >= %s AND p.conversation_id < %s",
                         (conversation_id(start), conversation_id(end)))


# --- the service --------------------------------------------------------------------------------------------------


class Service:
    def __init__(self, database_url: str, web_workers: int, pool_size: int, worker_pool: list[str],
                 worker_processes: int = 1, redis_url: str = REDIS_URL) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.plain_url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "JWT_SECRET": SECRET,
               "APP_ENV": "production", "LOG_LEVEL": "WARNING", "DB_POOL_SIZE": str(pool_size),
               "RATE_LIMITS_ENABLED": "1", "RATE_LIMIT_MESSAGES": "100000000/minute",
               "RATE_LIMIT_THREADS": "100000000/minute", "RATE_LIMIT_EVENTS": "100000000/minute"}
        bin_dir = Path(sys.executable).parent
        self.web = subprocess.Popen(
            [str(bin_dir / "gunicorn"), "-k", "messaging.server.GeventWorker", "--worker-connections", "2000",
             "-w", str(web_workers), "--backlog", "2048", "-b", f"127.0.0.1:{self.port}", "app:create_app()"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.workers = [subprocess.Popen(
            [str(bin_dir / "celery"), "-A", "app.celery_app", "worker", *worker_pool, "-n", f"bench{n}@%h",
             "-l", "warning", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            for n in range(worker_processes)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    self._wait_until_idle(deadline)
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise SystemExit("the service did not become ready within 60 s")

    def _wait_until_idle(self, deadline: float) -> None:
        """Until the web and worker processes (and their children) have finished starting: the Celery worker's
        pool processes import the application after the web answers, and that CPU must not fall into the first
        measured window. Idle = under 5 % of a CPU over half a second."""
        def all_pids() -> list[int]:
            roots = (self.web.pid, *(w.pid for w in self.workers))
            return [*roots, *(int(p) for root in roots
                              for p in Path(f"/proc/{root}/task/{root}/children").read_text().split())]

        while time.monotonic() < deadline:
            before = cpu_seconds(all_pids())
            time.sleep(0.5)
            if cpu_seconds(all_pids()) - before < 0.025:
                return

    def web_worker_pids(self) -> list[int]:
        return [int(p) for p in Path(f"/proc/{self.web.pid}/task/{self.web.pid}/children").read_text().split()]

    def cpu(self) -> tuple[float, float]:
        """CPU seconds used so far by the web workers and by the PostgreSQL backends serving this service's
        database (its processes' connections; a window's share is the difference of two readings)."""
        with psycopg.connect(self.plain_url, autocommit=True) as conn:
            backends = [pid for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")]
        return cpu_seconds(self.web_worker_pids()), cpu_seconds(backends)

    def stop(self) -> None:
        for process in (self.web, *self.workers):
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for process in (self.web, *self.workers):
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


# --- load generators ----------------------------------------------------------------------------------------------


def wrk(service: Service, lines: list[str], seconds: float, warmup: float, workdir: Path,
        name: str) -> dict[str, Any]:
    """A wrk window on ``service``: its figures, and the CPU per request (µs) of the service's web workers and
    PostgreSQL backends over the measured part (the load generator's and Redis's are not counted)."""
    base = service.base
    targets = workdir / f"{name}.tsv"
    targets.write_text("\n".join(lines) + "\n")
    command = [tool("wrk"), "-t", "2", "-c", str(CONNECTIONS), "--timeout", "10s", "-s", str(WRK_SCRIPT), base]
    if warmup:
        subprocess.run([*command[:1], "-d", f"{warmup:.0f}s", *command[1:], "--", str(targets)],
                       check=True, capture_output=True, text=True)
    web_before, db_before = service.cpu()
    out = subprocess.run([*command[:1], "-d", f"{seconds:.0f}s", *command[1:], "--", str(targets)],
                         check=True, capture_output=True, text=True).stdout
    web_after, db_after = service.cpu()
    figures = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    seconds_measured = figures["duration_us"] / 1e6
    requests_done = max(1, figures["requests"])
    return {
        "requests": figures["requests"],
        "per_second": round(figures["requests"] / seconds_measured, 1),
        "p50_ms": figures["p50_us"] / 1000, "p95_ms": figures["p95_us"] / 1000, "p99_ms": figures["p99_us"] / 1000,
        "errors": figures["non_2xx"] + figures["socket_errors"],
        "web_cpu_us": round(1e6 * (web_after - web_before) / requests_done),
        "db_cpu_us": round(1e6 * (db_after - db_before) / requests_done),
    }


def pgbench(url: str, script: str, seconds: float, workdir: Path, name: str) -> dict[str, Any]:
    path = workdir / f"{name}.sql"
    path.write_text(script)
    out = subprocess.run([tool("pgbench"), "-n", "-c", str(CONNECTIONS), "-j", "2", "-T", f"{seconds:.0f}",
                          "-f", str(path), url], check=True, capture_output=True, text=True).stdout
    tps = next(float(line.split("=")[1].split()[0]) for line in out.splitlines() if line.startswith("tps"))
    latency = next(float(line.split("=")[1].split()[0]) for line in out.splitlines()
                   if line.startswith("latency average"))
    return {"per_second": round(tps, 1), "mean_ms": latency}


# --- the run ------------------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        # The README's worker is ``celery -A app.celery_app worker --pool solo``, one process per CPU.
        self.worker_pool = ["--pool", args.worker_pool] + (
            ["-c", str(args.worker_concurrency)] if args.worker_concurrency else [])
        self.worker_processes = args.worker_processes or os.cpu_count() or 1
        self.workdir = Path(tempfile.mkdtemp(prefix="concierge-bench-"))
        server = PG_ADMIN.rsplit("/", 1)[0]
        self.plain_url = f"{server}/{DATABASE}"
        self.sa_url = self.plain_url.replace("postgresql://", "postgresql+psycopg://", 1)
        self.stage_url = f"{server}/{STAGE_DATABASE}"
        self.stage_sa_url = self.stage_url.replace("postgresql://", "postgresql+psycopg://", 1)
        self.result: dict[str, Any] = {"config": {}, "stages": {}, "api": {}, "raw": {}, "events": {},
                                        "questions": {}}
        self.tokens: dict[tuple[str, str], str] = {}

    def token(self, sub: str, role: str = "guest") -> str:
        if (sub, role) not in self.tokens:
            self.tokens[sub, role] = bearer(sub, role)
        return self.tokens[sub, role]

    def run(self) -> dict[str, Any]:
        a = self.args
        stage_conversations = a.stage_messages // PER_CONVERSATION
        full_conversations = a.messages // PER_CONVERSATION
        self.result["config"] = {
            "messages": a.messages, "conversations": full_conversations, "users": a.users,
            "stage_messages": a.stage_messages, "window_s": a.seconds, "warmup_s": a.warmup,
            "connections": CONNECTIONS, "web": f"gunicorn messaging.server.GeventWorker -w {a.web_workers}",
            "worker": " ".join(["celery worker", *self.worker_pool]) + f" × {self.worker_processes}",
            "event_rate": a.event_rate,
            "machine": f"{os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}",
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        print(f"databases {DATABASE} and {STAGE_DATABASE}: recreating and migrating; Redis {REDIS_URL} and "
              f"{STAGE_REDIS_URL}: emptying", flush=True)
        for url in (REDIS_URL, STAGE_REDIS_URL):  # the bench's own Redis databases: no queue or stream left over
            redis.Redis.from_url(url).flushdb()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            for name in (DATABASE, STAGE_DATABASE):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{name}"')
        for url in (self.stage_sa_url, self.sa_url):
            upgrade_database(url)
        for url, conversations in ((self.stage_url, stage_conversations), (self.plain_url, full_conversations)):
            started = time.monotonic()
            DataSet(url).load(conversations, a.users)
            print(f"loaded {conversations * PER_CONVERSATION:,} messages in {time.monotonic() - started:.1f} s",
                  flush=True)
            self._settle(url)
        stage_service = Service(self.stage_sa_url, a.web_workers, a.pool_size, self.worker_pool,
                                self.worker_processes, STAGE_REDIS_URL)
        service = stage_service  # until the full-size one has started
        try:
            service = Service(self.sa_url, a.web_workers, a.pool_size, self.worker_pool, self.worker_processes)
            self._setup_property_threads(service)
            self.result["stages"] = self._stages(stage_service, service, stage_conversations, full_conversations)
            stage_service.stop()
            self._api(service, full_conversations)
            self._settle()
            self._events(service)
            self._questions(service)
        finally:
            stage_service.stop()
            service.stop()
            shutil.rmtree(self.workdir, ignore_errors=True)
        self._summarise()
        return self.result

    # the conversation targets: random conversations, a participant of each
    def _conversation_targets(self, conversations: int, users: int, count: int,
                              seed: int) -> list[tuple[str, str, str]]:
        rng = random.Random(seed)
        out = []
        for _ in range(count):
            n = rng.randrange(conversations)
            out.append((conversation_id(n), user_id((n * 2) % users), user_id((n * 2 + 1) % users)))
        return out

    def _stages(self, stage_service: Service, service: Service, stage_conversations: int,
                full_conversations: int) -> dict[str, Any]:
        """History and inbox at both sizes, each on its own database and service, in interleaved windows: stage,
        full, full, stage. A drift of the machine's speed during the run (this VM's drifts by a fifth within the
        hour, and by as much within minutes) then weighs on both sizes alike, where measuring one size minutes
        after the other made the growth figure the machine's drift as much as the service's. Each size's figures
        are the means of its two windows' (its p95 the mean of two 15 s windows' p95)."""
        windows: dict[str, list[dict[str, Any]]] = {"stage": [], "full": []}
        for label in ("stage", "full", "full", "stage"):
            if label == "stage":
                windows[label].append(self._reads(stage_service, self.stage_url, stage_conversations, label))
            else:
                windows[label].append(self._reads(service, self.plain_url, full_conversations, label))
        out: dict[str, Any] = {}
        for label, runs in windows.items():
            out[label] = {"messages": runs[0]["messages"], "windows": runs}
            for measure in ("history", "inbox", "raw_select50"):
                out[label][measure] = _mean([run[measure] for run in runs])
        return out

    def _reads(self, service: Service, url: str, conversations: int, label: str) -> dict[str, Any]:
        a = self.args
        users = a.users
        history = [f"GET\t/v1/conversations/{c}/messages?limit=50\t{self.token(me)}\t"
                   for c, me, _ in self._conversation_targets(conversations, users, 2000, seed=1)]
        inbox = [f"GET\t/v1/conversations?limit=50\t{self.token(HEAVY)}\t"]
        print(f"[{label}] history and inbox", flush=True)
        return {
            "messages": conversations * PER_CONVERSATION,
            "history": self._wrk(service, history, f"history-{label}", "history" if label == "full" else None),
            "inbox": self._wrk(service, inbox, f"inbox-{label}", "inbox" if label == "full" else None),
            # Context for the growth figures, not a target: the raw "history page" at this size, right after.
            "raw_select50": self._raw_select(url, conversations, f"select-{label}"),
        }

    def _setup_property_threads(self, service: Service) -> None:
        service_token = {"Authorization": f"Bearer {self.token('bench-platform', 'service')}"}
        session = requests.Session()
        session.put(f"{service.base}/v1/users/bench-host", json={"name": "Host", "role": "host"},
                    headers=service_token, timeout=10).raise_for_status()
        for p in range(1, 21):
            session.put(f"{service.base}/v1/properties/{p}", json={
                "hostId": "bench-host", "name": f"Casa {p}", "city": "Lisbon", "address": f"Rua {p}",
                "timezone": "Europe/Lisbon"}, headers=service_token, timeout=10).raise_for_status()
        self.property_threads: list[tuple[str, str]] = []
        for t in range(200):
            traveler = user_id(t)
            response = session.post(f"{service.base}/v1/properties/{1 + t % 20}/conversations",
                                    json={"message": "Is the flat available in May?"},
                                    headers={"Authorization": f"Bearer {self.token(traveler)}"}, timeout=10)
            response.raise_for_status()
            self.property_threads.append((response.json()["id"], traveler))

    def _api(self, service: Service, conversations: int) -> None:
        a = self.args
        targets = self._conversation_targets(conversations, a.users, 2000, seed=2)
        body = json.dumps({"message": "Arriving around six, is that all right?"})
        sends = [f"POST\t/v1/conversations/{c}/messages\t{self.token(me)}\t{body}" for c, me, _ in targets]
        reads = [f"POST\t/v1/conversations/{c}/read\t{self.token(other)}\t{{}}" for c, _, other in targets]
        reply = json.dumps({"message": "Yes, the flat is free then."})
        replies = [f"POST\t/v1/property-conversations/{t}/messages\t{self.token(who, role)}\t{reply}"
                   for t, traveler in self.property_threads
                   for who, role in ((traveler, "guest"), ("bench-host", "host"))]
        # Send and the raw INSERT in interleaved windows (send, insert, insert, send), for the reason the reads'
        # sizes are (see _stages): their ratio is then not the machine's drift between two moments.
        windows: dict[str, list[dict[str, Any]]] = {"send": [], "insert": []}
        for n, measure in enumerate(("send", "insert", "insert", "send")):
            self._settle()
            if measure == "insert":
                print("[full] raw INSERT (pgbench)", flush=True)
                windows[measure].append(self._raw_insert(conversations, f"insert-{n}"))
                continue
            print("[full] send", flush=True)
            windows[measure].append(self._wrk(service, sends, f"send-{n}", "send"))
        self.result["api"]["send"] = _mean(windows["send"])
        self.result["raw"]["insert"] = _mean(windows["insert"])
        # The raw "50 newest" was measured right after each full-size history and inbox window.
        self.result["raw"]["select50"] = self.result["stages"]["full"]["raw_select50"]
        self._settle()
        print("[full] mark read", flush=True)
        self.result["api"]["mark_read"] = self._wrk(service, reads, "read", "mark_read")
        self._settle()
        print("[full] property-thread reply", flush=True)
        self.result["api"]["property_reply"] = self._wrk(service, replies, "property-reply", "property_reply")
        self.result["api"]["history"] = self.result["stages"]["full"]["history"]
        self.result["api"]["inbox"] = self.result["stages"]["full"]["inbox"]

    def _settle(self, url: str | None = None) -> None:
        """Before each measured phase: VACUUM (ANALYZE) what the last phase wrote and CHECKPOINT, so neither an
        autovacuum of a table just loaded nor a checkpoint of its dirty pages lands inside the next window (a
        15 s window's p99 is a few stalls). The raw pgbench phases get the same; pgbench itself vacuums before
        its own built-in runs for the same reason. ``url``: the database (by default the full-size one)."""
        with psycopg.connect(url or self.plain_url, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")
            conn.execute("CHECKPOINT")
            self._prewarm(conn)

    @staticmethod
    def _prewarm(conn: psycopg.Connection[Any]) -> None:
        """Read every table and index of the database into the operating system's page cache (``pg_prewarm`` in
        its ``read`` mode: not into PostgreSQL's shared buffers), as on a server that has been running. This VM's
        host takes page cache back even with memory free: the messages table's resident pages shrank from 151 to
        137 MB in three minutes with nothing touching it, and a quarter of an hour after a run, a 50-message
        history statement read 25 of its ~55 pages from disk (p50 5.8 ms instead of 0.3 ms). Without this, a
        full-size window could be timing disk reads that the first stage, whose data all fits in shared buffers,
        never makes. Skipped when the extension is missing."""
        if not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_prewarm'").fetchone():
            print("pg_prewarm is not available: measuring with whatever the page cache holds", flush=True)
            return
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        conn.execute("SELECT pg_prewarm(c.oid, 'read') FROM pg_class c "
                     "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'i', 't')")

    def _raw_insert(self, conversations: int, name: str) -> dict[str, Any]:
        """The raw "send": a one-row INSERT into messages per transaction, straight to PostgreSQL."""
        insert = (f"\\set n random(0, {conversations - 1})\n"
                  "INSERT INTO messages (id, conversation_id, user_id, message, read, is_edit, created_at) "
                  "VALUES (substr(md5(random()::text || clock_timestamp()::text), 1, 21), "
                  "'c' || lpad(:n::text, 20, '0'), 'u' || ((:n * 2) % " + str(self.args.users) + "), "
                  "'Arriving around six, is that all right?', false, false, now());\n")
        return pgbench(self.plain_url, insert, self.args.seconds, self.workdir, name)

    def _raw_select(self, url: str, conversations: int, name: str) -> dict[str, Any]:
        """The raw "history page": the 50 newest messages of a random conversation, straight to PostgreSQL."""
        select = (f"\\set n random(0, {conversations - 1})\n"
                  "SELECT id, conversation_id, user_id, message, read, is_edit, created_at FROM messages "
                  "WHERE conversation_id = 'c' || lpad(:n::text, 20, '0') "
                  "ORDER BY created_at DESC, id DESC LIMIT 50;\n")
        return pgbench(url, select, self.args.seconds, self.workdir, name)

    def _events(self, service: Service) -> None:
        """Events at a steady rate through the HTTP intake; latency = the moment the event was due to be sent (on
        the schedule, so a client or server falling behind counts against it) → the poller first sees it
        processed (its messages commit in the same transaction), polled every 5 ms. The client is asyncio over
        16 keep-alive connections with the requests built in advance, so it takes little of the CPU it measures.
        A warm-up of ``--warmup`` seconds at the same rate goes first and is left out of the figures."""
        a = self.args
        count = int(a.event_rate * a.event_seconds)
        print(f"[full] {count} events at {a.event_rate}/s", flush=True)
        authorization = f"Bearer {self.token('bench-platform', 'service')}"
        host = {"id": "bench-host", "name": "Host", "role": "host"}
        prop = {"id": 1, "hostId": "bench-host", "name": "Casa 1", "city": "Lisbon", "address": "Rua 1",
                "timezone": "Europe/Lisbon", "checkInTime": "16:00", "checkOutTime": "11:00"}
        run_id = f"{int(time.time())}"

        def prepared(name: str, n: int, traveler_n: int) -> tuple[str, bytes]:
            traveler = user_id(traveler_n)
            event_id = f"bench-{run_id}-{name}{n}"
            body = json.dumps({
                "id": event_id, "type": "trip.booked", "occurredAt": "2026-11-24T09:00:00Z",
                "data": {"host": host, "traveler": {"id": traveler, "name": f"User {traveler_n}", "role": "guest"},
                         "property": prop,
                         "trip": {"id": (100000 if name else 200000) + n, "propertyId": 1, "travelerId": traveler,
                                  "checkIn": "2026-12-20", "checkOut": "2026-12-23", "numGuests": 2,
                                  "status": "Booked"}}}).encode()
            head = (f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {authorization}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
            return event_id, head + body

        # Warm-up at the same rate (connections opened, statements prepared, worker processes running), on
        # travelers the measured events do not use, so those still start without a concierge conversation.
        warm = [prepared("warm-", n, 500 + n % 100) for n in range(int(a.event_rate * a.warmup))]
        asyncio.run(_post_on_schedule(service.port, warm, a.event_rate, {}))
        with psycopg.connect(self.plain_url, autocommit=True) as conn:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and conn.execute(
                    "SELECT count(*) FROM platform_events WHERE id LIKE %s AND status IN ('pending', 'processing')",
                    (f"bench-{run_id}-warm-%",)).fetchone()[0]:
                time.sleep(0.05)
            # The event tables started this phase empty, and the warm-up's first statements were planned (and
            # their plans kept) for empty tables: a sequential scan is the cheapest way to read nothing, and it
            # stays the plan while concierge_message_origins grows by two rows per event. On a running database
            # autovacuum analyzes a table within a minute of its first 50 new rows, which makes every server
            # process plan again; here that is done at once, so the window measures that steady state.
            conn.execute("ANALYZE")
        requests_out = [prepared("", n, n % 500) for n in range(count)]
        due: dict[str, float] = {}
        seen: dict[str, float] = {}
        stop = threading.Event()

        def poll() -> None:
            # Only the events sent and not yet seen, by primary key: the poller costs the database little.
            with psycopg.connect(self.plain_url, autocommit=True) as conn:
                while not stop.is_set():
                    waiting = [k for k in list(due) if k not in seen]
                    if waiting:
                        rows = conn.execute("SELECT id FROM platform_events WHERE id = ANY(%s) AND status IN "
                                            "('processed', 'failed', 'skipped')", (waiting,)).fetchall()
                        now = time.monotonic()
                        for (event_id,) in rows:
                            seen.setdefault(event_id, now)
                    if len(seen) >= count:
                        return
                    time.sleep(0.005)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        statuses, post_ms, sending_s = asyncio.run(_post_on_schedule(service.port, requests_out, a.event_rate, due))
        poller.join(timeout=60)
        stop.set()
        latencies = sorted((seen[k] - due[k]) * 1000 for k in due if k in seen)
        with psycopg.connect(self.plain_url) as conn:
            duplicates = conn.execute(
                "SELECT count(*) FROM (SELECT o.event_id, o.recipient_id FROM concierge_message_origins o "
                "WHERE o.event_id = ANY(%s) GROUP BY 1, 2 HAVING count(*) > 1) d", (list(due),)).fetchone()
            messages = conn.execute("SELECT count(*) FROM concierge_message_origins WHERE event_id = ANY(%s)",
                                    (list(due),)).fetchone()
            # The same interval measured by the database's clock: intake transaction → processing committed.
            server = sorted(row[0] for row in conn.execute(
                "SELECT extract(epoch FROM processed_at - received_at) * 1000 FROM platform_events "
                "WHERE id = ANY(%s) AND processed_at IS NOT NULL", (list(due),)).fetchall())
        self.result["events"] = {
            "sent": count, "rate_per_s": a.event_rate, "accepted": statuses.get(202, 0),
            "processed": len(latencies), "lost": count - len(latencies),
            "concierge_messages": messages[0] if messages else 0, "duplicates": duplicates[0] if duplicates else 0,
            "p50_ms": _pct(latencies, 50), "p99_ms": _pct(latencies, 99),
            "max_ms": round(latencies[-1], 2) if latencies else None,
            "server_p50_ms": _pct([float(v) for v in server], 50),
            "server_p99_ms": _pct([float(v) for v in server], 99),
            "intake_p50_ms": _pct(sorted(post_ms), 50), "intake_p99_ms": _pct(sorted(post_ms), 99),
            "sending_s": round(sending_s, 2),
        }

    def _questions(self, service: Service) -> None:
        """Travelers ask their concierge at a steady ``--question-rate`` for ``--event-seconds`` (after the events
        phase: they have a trip, so the question is answered); latency = the question's ``created_at`` → its
        answer's, both written in the transaction that commits them, read after the phase by the database's own
        clock. A warm-up of ``--warmup`` seconds goes first and is left out."""
        a = self.args
        count = int(a.question_rate * a.event_seconds)
        print(f"[full] {count} questions at {a.question_rate}/s", flush=True)
        travelers = [user_id(n) for n in range(QUESTION_TRAVELERS)]
        with psycopg.connect(self.plain_url, autocommit=True) as conn:
            chats = dict(conn.execute("SELECT user_id, conversation_id FROM concierge_threads WHERE user_id = ANY(%s)",
                                      (travelers,)).fetchall())
        askers = [t for t in travelers if t in chats]
        body = json.dumps({"message": "What time is check-in?"}).encode()

        def prepared(key: str, n: int) -> tuple[str, bytes]:
            traveler = askers[n % len(askers)]
            head = (f"POST /v1/conversations/{chats[traveler]}/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Authorization: Bearer {self.token(traveler)}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode()
            return key, head + body

        asyncio.run(_post_on_schedule(service.port, [prepared(f"warm{n}", n) for n in range(int(a.question_rate
                                                                                                  * a.warmup))],
                                      a.question_rate, {}))
        with psycopg.connect(self.plain_url, autocommit=True) as conn:
            started = conn.execute("SELECT clock_timestamp()").fetchone()[0]
        statuses, _post_ms, _sending = asyncio.run(_post_on_schedule(
            service.port, [prepared(f"q{n}", n) for n in range(count)], a.question_rate, {}))
        answered = """SELECT count(DISTINCT q.id), count(o.message_id) FROM messages q
                      LEFT JOIN concierge_message_origins o ON o.question_message_id = q.id
                      WHERE q.conversation_id = ANY(%s) AND q.user_id IS NOT NULL AND q.created_at >= %s"""
        conversations = [chats[t] for t in askers]
        with psycopg.connect(self.plain_url, autocommit=True) as conn:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                asked, answers = conn.execute(answered, (conversations, started)).fetchone()
                if answers >= asked:
                    break
                time.sleep(0.1)
            latencies = sorted(float(row[0]) for row in conn.execute(
                """SELECT extract(epoch FROM a.created_at - q.created_at) * 1000
                     FROM messages q JOIN concierge_message_origins o ON o.question_message_id = q.id
                     JOIN messages a ON a.id = o.message_id
                    WHERE q.conversation_id = ANY(%s) AND q.user_id IS NOT NULL AND q.created_at >= %s""",
                (conversations, started)).fetchall())
            duplicates = conn.execute(
                """SELECT count(*) FROM (SELECT o.question_message_id FROM concierge_message_origins o
                     JOIN messages q ON q.id = o.question_message_id
                    WHERE q.conversation_id = ANY(%s) AND q.created_at >= %s GROUP BY 1 HAVING count(*) > 1) d""",
                (conversations, started)).fetchone()[0]
            asked = conn.execute(answered, (conversations, started)).fetchone()[0]
        self.result["questions"] = {
            "sent": count, "rate_per_s": a.question_rate, "accepted": statuses.get(201, 0), "asked": asked,
            "answered": len(latencies), "lost": asked - len(latencies) + duplicates, "duplicates": duplicates,
            "p50_ms": _pct(latencies, 50), "p99_ms": _pct(latencies, 99),
            "max_ms": round(latencies[-1], 2) if latencies else None,
        }

    def _wrk(self, service: Service, lines: list[str], name: str, measure: str | None) -> dict[str, Any]:
        """:func:`wrk` on ``service``; with ``--profile``, the first window of each ``measure`` is also recorded
        by py-spy (both web workers, samples of the thread holding the GIL) into ``profile-<measure>-<n>.txt``."""
        a = self.args
        profiled = self.result.setdefault("profile_top", {})
        if not (a.profile and measure and measure not in profiled):
            return wrk(service, lines, a.seconds, a.warmup, self.workdir, name)
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        RESULTS.mkdir(exist_ok=True)
        pids = service.web_worker_pids()
        paths = [RESULTS / f"profile-{measure}-{i}.txt" for i in range(len(pids))]
        spies = [subprocess.Popen([spy, "record", "--gil", "--format", "raw", "--rate", "200", "--duration",
                                   str(int(a.seconds + a.warmup)), "--pid", str(pid), "--output", str(path),
                                   "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for pid, path in zip(pids, paths, strict=True)]
        figures = wrk(service, lines, a.seconds, a.warmup, self.workdir, name)
        for p in spies:
            p.wait(60)
        profiled[measure] = top_frames([path for path in paths if path.exists()])
        return figures

    def _summarise(self) -> None:
        r = self.result
        send, history, inbox = r["api"]["send"], r["api"]["history"], r["api"]["inbox"]
        stage, full = r["stages"]["stage"], r["stages"]["full"]
        e, q = r["events"], r["questions"]
        r["ratios"] = {
            "send_vs_raw_insert": round(send["per_second"] / r["raw"]["insert"]["per_second"], 3),
            "history_vs_raw_select": round(history["per_second"] / r["raw"]["select50"]["per_second"], 3),
            "inbox_p95_vs_history_p95": round(inbox["p95_ms"] / history["p95_ms"], 2),
            "history_p95_growth": round(full["history"]["p95_ms"] / stage["history"]["p95_ms"], 2),
            "inbox_p95_growth": round(full["inbox"]["p95_ms"] / stage["inbox"]["p95_ms"], 2),
        }
        ratios = r["ratios"]
        r["targets"] = {
            "send >= 0.15 x raw insert": ratios["send_vs_raw_insert"] >= 0.15,
            "history >= 0.15 x raw select": ratios["history_vs_raw_select"] >= 0.15,
            "inbox p95 <= 2 x history p95": ratios["inbox_p95_vs_history_p95"] <= 2,
            "history p95 growth <= 1.3": ratios["history_p95_growth"] <= 1.3,
            "inbox p95 growth <= 1.3": ratios["inbox_p95_growth"] <= 1.3,
            "event p99 <= 250 ms": e["p99_ms"] is not None and e["p99_ms"] <= 250 and e["lost"] == 0,
            "reply p99 <= 500 ms": (q["p99_ms"] is not None and q["p99_ms"] <= 500 and q["lost"] == 0
                                    and q["accepted"] == q["sent"]),
        }
        r["errors"] = sum(v.get("errors", 0) for v in r["api"].values()) + stage["history"]["errors"] + \
            stage["inbox"]["errors"]


async def _post_on_schedule(
    port: int, requests_out: list[tuple[str, bytes]], rate: float, due: dict[str, float]
) -> tuple[Counter[int], list[float], float]:
    """POST each prepared request at its time (start + n / rate) on one of 16 keep-alive connections; ``due``
    gets each event's scheduled time. Returns the status counts, each POST's duration and the sending time."""
    statuses: Counter[int] = Counter()
    post_ms: list[float] = []
    free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        free.put_nowait(None)  # opened on first use

    async def one(raw: bytes) -> None:
        conn = await free.get()
        began = time.monotonic()
        try:
            for attempt in (1, 2):  # a keep-alive connection the server closed meanwhile: open another, once
                if conn is None:
                    conn = await asyncio.open_connection("127.0.0.1", port)
                reader, writer = conn
                try:
                    writer.write(raw)
                    head = await reader.readuntil(b"\r\n\r\n")
                    break
                except (ConnectionError, asyncio.IncompleteReadError):
                    writer.close()
                    conn = None
                    if attempt == 2:
                        raise
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            length = next((int(h.split(":", 1)[1]) for h in lines if h.lower().startswith("content-length:")), 0)
            await reader.readexactly(length)
            if any(h.lower() == "connection: close" for h in lines):
                writer.close()
                conn = None
            statuses[status] += 1
            post_ms.append((time.monotonic() - began) * 1000)
        finally:
            free.put_nowait(conn)

    loop = asyncio.get_running_loop()
    start = time.monotonic()
    tasks = []
    for n, (event_id, raw) in enumerate(requests_out):
        at = start + n / rate
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        due[event_id] = at
        tasks.append(loop.create_task(one(raw)))
    await asyncio.gather(*tasks)
    return statuses, post_ms, time.monotonic() - start


def _mean(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of several windows of one measure: means, with requests and errors counted over all."""
    out: dict[str, Any] = {key: round(sum(w[key] for w in windows) / len(windows), 3)
                           for key in windows[0] if key not in ("requests", "errors")}
    for key in ("requests", "errors"):
        if key in windows[0]:
            out[key] = sum(w[key] for w in windows)
    out["windows"] = len(windows)
    return out


def _pct(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(round(pct / 100 * (len(values) - 1))))], 2)


# The frames every request passes through on its way in (gevent's server, Flask, the lane's dispatch): on nearly
# every sample, they say nothing about where a measure's time goes, so the Markdown leaves them out.
OUTER_FRAMES = frozenset({
    "_handle_and_close_when_done", "WSGIServer.handle", "WSGIHandler.handle", "WSGIHandler.handle_one_request",
    "WSGIHandler.handle_one_response", "WSGIHandler.run_application", "Flask.__call__", "FastLane.__call__",
})


def top_frames(paths: list[Path], count: int = 30) -> dict[str, list[dict[str, Any]]]:
    """The busiest functions in py-spy's raw (collapsed) stacks: by own time (the function itself running) and
    inclusive (anywhere on the stack, each function counted once per sample), as shares of all samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, samples = line.rpartition(" ")
            if not stack or not samples.isdigit():
                continue
            frames = [re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")]  # a function, not its lines
            own[frames[-1]] += int(samples)
            for frame in set(frames):
                inclusive[frame] += int(samples)
            total += int(samples)
    if not total:
        return {"own": [], "inclusive": []}
    return {kind: [{"frame": frame, "share": round(n / total, 3)} for frame, n in counts.most_common(count)]
            for kind, counts in (("own", own), ("inclusive", inclusive))}


def markdown(r: dict[str, Any]) -> str:
    c = r["config"]
    lines = [
        f"`make bench` — {c['messages']:,} messages in {c['conversations']:,} conversations, {c['users']:,} users; "
        f"{c['web']}, {c['worker']}; wrk and pgbench with {c['connections']} connections, "
        f"{c['warmup_s']:.0f} s warm-up, {c['window_s']:.0f} s measured; {c['machine']}; {c['started']}.",
        "",
        "| measure | per second | p50 ms | p95 ms | p99 ms | errors | CPU µs per request: web / database |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    names = {"send": "send (POST message)", "history": "history page (50)", "inbox": "inbox page (500-conv. user)",
             "mark_read": "mark read", "property_reply": "property-thread reply"}
    for key, label in names.items():
        m = r["api"][key]
        lines.append(f"| {label} | {m['per_second']:,.0f} | {m['p50_ms']:.1f} | {m['p95_ms']:.1f} | "
                     f"{m['p99_ms']:.1f} | {m['errors']} | {m['web_cpu_us']:,.0f} / {m['db_cpu_us']:,.0f} |")
    lines.append(f"| raw INSERT one row (pgbench) | {r['raw']['insert']['per_second']:,.0f} | | | "
                 f"mean {r['raw']['insert']['mean_ms']:.1f} | | |")
    lines.append(f"| raw SELECT 50 newest (pgbench) | {r['raw']['select50']['per_second']:,.0f} | | | "
                 f"mean {r['raw']['select50']['mean_ms']:.1f} | | |")
    s, f, e, ratios = r["stages"]["stage"], r["stages"]["full"], r["events"], r["ratios"]
    lines += [
        "",
        "| figure | value | target | met |",
        "|---|---:|---|---|",
        f"| send / raw insert | {ratios['send_vs_raw_insert']:.3f} | ≥ 0.15 | {_yes(r, 'send >= 0.15 x raw insert')} |",
        f"| history / raw select | {ratios['history_vs_raw_select']:.3f} | ≥ 0.15 | "
        f"{_yes(r, 'history >= 0.15 x raw select')} |",
        f"| inbox p95 / history p95 | {ratios['inbox_p95_vs_history_p95']:.2f} | ≤ 2 | "
        f"{_yes(r, 'inbox p95 <= 2 x history p95')} |",
        f"| history p95 at {s['messages']:,} → {f['messages']:,} ¹ | {s['history']['p95_ms']:.1f} → "
        f"{f['history']['p95_ms']:.1f} ms (× {ratios['history_p95_growth']:.2f}) | ≤ × 1.3 | "
        f"{_yes(r, 'history p95 growth <= 1.3')} |",
        f"| inbox p95 at {s['messages']:,} → {f['messages']:,} ¹ | {s['inbox']['p95_ms']:.1f} → "
        f"{f['inbox']['p95_ms']:.1f} ms (× {ratios['inbox_p95_growth']:.2f}) | ≤ × 1.3 | "
        f"{_yes(r, 'inbox p95 growth <= 1.3')} |",
        f"| (context) raw SELECT 50 newest, mean at {s['messages']:,} → {f['messages']:,} | "
        f"{s['raw_select50']['mean_ms']:.2f} → {f['raw_select50']['mean_ms']:.2f} ms "
        f"(× {f['raw_select50']['mean_ms'] / s['raw_select50']['mean_ms']:.2f}) | | |",
        f"| event → concierge message, {e['rate_per_s']}/s | p50 {e['p50_ms']} ms, p99 {e['p99_ms']} ms; "
        f"{e['processed']}/{e['sent']} processed, {e['duplicates']} duplicates | p99 ≤ 250 ms | "
        f"{_yes(r, 'event p99 <= 250 ms')} |",
        f"| question → concierge answer, {r['questions']['rate_per_s']}/s | p50 {r['questions']['p50_ms']} ms, "
        f"p99 {r['questions']['p99_ms']} ms; {r['questions']['answered']}/{r['questions']['sent']} answered, "
        f"{r['questions']['duplicates']} duplicates | p99 ≤ 500 ms | {_yes(r, 'reply p99 <= 500 ms')} |",
    ]
    lines += ["", "¹ Each size on its own database and service, measured in interleaved windows (stage, full, full, "
                  "stage); a size's p95 is the mean of its two windows' p95. The raw SELECT follows each full-size "
                  "window; send and the raw INSERT are interleaved the same way (send, insert, insert, send). "
                  "Figures of a measure with two windows are their means."]
    for measure, top in (r.get("profile_top") or {}).items():
        inner = [p for p in top["inclusive"] if p["frame"].split(" (")[0] not in OUTER_FRAMES][:12]
        lines += ["", f"Web workers during the first {measure} window (py-spy, share of samples): inclusive "
                  + ", ".join(f"{p['share']:.1%} `{p['frame']}`" for p in inner)
                  + "; own " + ", ".join(f"{p['share']:.1%} `{p['frame']}`" for p in top["own"][:8]) + "."]
    return "\n".join(lines) + "\n"


def _yes(r: dict[str, Any], key: str) -> str:
    return "yes" if r["targets"][key] else "**no**"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="25 k → 100 k messages, 5 s windows")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--stage-messages", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--event-rate", type=float, default=100)
    parser.add_argument("--event-seconds", type=float, default=20)
    parser.add_argument("--question-rate", type=float, default=20, help="concierge questions per second")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--pool-size", type=int, default=8, help="database connections per web process")
    parser.add_argument("--worker-pool", default="solo", help="each worker's --pool (the README runs solo)")
    parser.add_argument("--worker-concurrency", type=int, help="each worker's -c (default: Celery's for the pool)")
    parser.add_argument("--worker-processes", type=int, help="worker processes (default: one per CPU, as the README)")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the web workers during each measure's first full-size window")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.stage_messages, args.users = 100_000, 25_000, 1_000
        args.seconds, args.warmup, args.event_seconds = 5, 1, 5
    if args.stage_messages < HEAVY_CONVERSATIONS * PER_CONVERSATION:
        parser.error(f"--stage-messages must hold the heavy user's {HEAVY_CONVERSATIONS} conversations")
    tool("wrk"), tool("pgbench")
    result = Bench(args).run()
    RESULTS.mkdir(exist_ok=True)
    name = "quick" if args.quick else "latest"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    table = markdown(result)
    (RESULTS / f"{name}.md").write_text(table)
    print()
    print(table)
    if result["errors"]:
        print(f"INVALID: {result['errors']} requests failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
