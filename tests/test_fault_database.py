"""PostgreSQL restarted under load (issue: faults survived).

A private PostgreSQL server (its own data directory and port, so the shared one is never touched)
serves a real gunicorn API while clients keep posting messages. The server is stopped and started
again in the middle: requests during the outage get 503 problem details (never a 500 or a hang),
the API recovers by itself (no restart), and every message that was acknowledged (201) is in the
database afterwards, exactly once.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests

from messaging.auth import mint_token
from messaging.cli import upgrade_database
from tests.conftest import REQUIRE_SERVICES, TEST_JWT_SECRET

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        message = f"PostgreSQL server binaries ({name}) are not installed"
        if REQUIRE_SERVICES:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found[-1]


class PrivatePostgres:
    """A throwaway PostgreSQL cluster run as the postgres user (initdb refuses root)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pg-fault-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _as_postgres(self, *argv: str) -> None:
        command = list(argv) if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(_pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-w", "-l",
                          str(self.dir / "log"), "start")

    def stop(self) -> None:
        self._as_postgres(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def cleanup(self) -> None:
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
           "RATE_LIMITS_ENABLED": "0", "LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
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
