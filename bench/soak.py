"""Soak: mixed traffic for a long while against the production setup, then an accounting.

Runs gunicorn (gevent) and a Celery worker on PostgreSQL and Redis, and drives them for ``--minutes``
(default 10) with reads, sends, edits, read receipts, platform events and open live-update streams.
Passes when there was no 5xx, the web and worker processes' memory at the end is within 10 % of its
size after warm-up, and every message acknowledged (201) is in the database exactly once.

    .venv/bin/python bench/soak.py --minutes 10        # writes bench/results/soak.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from messaging.api.auth import mint_token  # noqa: E402
from messaging.cli import upgrade_database  # noqa: E402

SECRET = "soak-secret-0123456789abcdef0123456789abcdef"
PG_ADMIN = os.environ.get("SOAK_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASE = "concierge_soak"
REDIS_URL = os.environ.get("SOAK_REDIS_URL", "redis://127.0.0.1:6379/10")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    """Resident memory of a process and its children (gunicorn and Celery fork workers)."""
    total = 0
    pids = [pid]
    try:
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def token(sub: str, role: str) -> dict[str, str]:
    config = {"JWT_SECRET": SECRET, "JWT_ISSUER": None, "JWT_AUDIENCE": None}
    signed = mint_token(config, sub=sub, role=role, ttl=dt.timedelta(hours=3))
    return {"Authorization": f"Bearer {signed}"}


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stop = threading.Event()
        self.statuses: Counter[int] = Counter()
        self.errors: list[str] = []
        self.acknowledged: list[str] = []
        self.events_sent: list[str] = []
        self.lock = threading.Lock()
        self.processes: list[subprocess.Popen[bytes]] = []

    # --- setup ---------------------------------------------------------------------------------------

    def start(self) -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        server = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        self.database_url = f"{server}/{DATABASE}"
        upgrade_database(self.database_url)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DATABASE_URL": self.database_url, "REDIS_URL": REDIS_URL, "JWT_SECRET": SECRET,
               "APP_ENV": "production", "RATE_LIMITS_ENABLED": "0", "LOG_LEVEL": "WARNING"}
        bin_dir = Path(sys.executable).parent
        self.web = subprocess.Popen(
            [str(bin_dir / "gunicorn"), "-k", "messaging.server.GeventWorker", "--worker-connections", "2000",
             "-w", "2", "-b", f"127.0.0.1:{self.port}", "app:create_app()"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self.worker = subprocess.Popen(
            [str(bin_dir / "celery"), "-A", "app.celery_app", "worker", "--pool", "solo",  # the README's worker
             "-l", "warning"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self.processes = [self.web, self.worker]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.users = [f"soak-u{i}" for i in range(40)]
        self.headers = {u: token(u, "guest") for u in self.users}
        self.service = token("soak-platform", "service")
        self.conversations: list[tuple[str, list[str]]] = []
        for u in self.users:
            requests.get(f"{self.base}/v1/me", headers=self.headers[u], timeout=5).raise_for_status()
        for i in range(0, len(self.users), 2):
            a, b = self.users[i], self.users[i + 1]
            c = requests.post(f"{self.base}/v1/conversations", json={"participantIds": [b]},
                              headers=self.headers[a], timeout=5).json()
            self.conversations.append((c["id"], [a, b]))
        requests.put(f"{self.base}/v1/users/soak-host", json={"name": "Host", "role": "host"},
                     headers=self.service, timeout=5).raise_for_status()
        requests.put(f"{self.base}/v1/properties/1", json={"hostId": "soak-host", "name": "Casa",
                     "city": "Lisbon", "address": "Rua 1", "timezone": "Europe/Lisbon"},
                     headers=self.service, timeout=5).raise_for_status()

    def shutdown(self) -> None:
        for process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    # --- traffic -------------------------------------------------------------------------------------

    def record(self, response: requests.Response) -> None:
        with self.lock:
            self.statuses[response.status_code] += 1
            if response.status_code >= 500:
                self.errors.append(
                    f"{response.status_code} {response.request.method} {response.url}: {response.text[:200]}"
                )

    def client(self, seed: int) -> None:
        rng = random.Random(seed)
        http = requests.Session()
        n = 0
        while not self.stop.is_set():
            n += 1
            conversation, members = rng.choice(self.conversations)
            user = rng.choice(members)
            h = self.headers[user]
            roll = rng.random()
            try:
                if roll < 0.35:
                    r = http.post(f"{self.base}/v1/conversations/{conversation}/messages",
                                  json={"message": f"soak {seed}-{n}"}, headers=h, timeout=10)
                    self.record(r)
                    if r.status_code == 201:
                        with self.lock:
                            self.acknowledged.append(r.json()["id"])
                        if rng.random() < 0.1:
                            self.record(http.patch(f"{self.base}/v1/messages/{r.json()['id']}",
                                                   json={"message": f"edited {seed}-{n}"}, headers=h, timeout=10))
                elif roll < 0.65:
                    self.record(http.get(f"{self.base}/v1/conversations/{conversation}/messages?limit=50",
                                         headers=h, timeout=10))
                elif roll < 0.8:
                    self.record(http.get(f"{self.base}/v1/conversations?limit=20", headers=h, timeout=10))
                elif roll < 0.92:
                    self.record(http.post(f"{self.base}/v1/conversations/{conversation}/read", json={},
                                          headers=h, timeout=10))
                else:
                    self.post_event(http, rng, seed, n)
            except requests.RequestException as exc:
                with self.lock:
                    self.errors.append(f"no answer: {exc}")

    def post_event(self, http: requests.Session, rng: random.Random, seed: int, n: int) -> None:
        traveler = rng.choice(self.users)
        event_id = f"soak-{seed}-{n}"
        trip_id = rng.randint(1, 10_000_000)
        body = {"id": event_id, "type": "trip.booked", "occurredAt": "2026-11-01T12:00:00Z", "data": {
            "traveler": {"id": traveler, "name": traveler, "role": "guest"},
            "property": {"id": 1, "hostId": "soak-host", "name": "Casa", "city": "Lisbon", "address": "Rua 1",
                         "timezone": "Europe/Lisbon"},
            "trip": {"id": trip_id, "propertyId": 1, "travelerId": traveler, "checkIn": "2026-12-01",
                     "checkOut": "2026-12-04", "numGuests": 2, "status": "Booked"}}}
        r = http.post(f"{self.base}/v1/events", json=body, headers=self.service, timeout=10)
        self.record(r)
        if r.status_code in (200, 202):
            with self.lock:
                self.events_sent.append(event_id)

    def streams(self, count: int) -> list[socket.socket]:
        """Open live-update streams and keep them open (reading nothing is fine: the kernel buffers)."""
        sockets = []
        for i in range(count):
            user = self.users[i % len(self.users)]
            sock = socket.create_connection(("127.0.0.1", self.port))
            auth = self.headers[user]["Authorization"]
            sock.sendall(f"GET /v1/stream HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n".encode())
            sockets.append(sock)
        return sockets

    # --- run -----------------------------------------------------------------------------------------

    def run(self) -> dict[str, object]:
        streams = self.streams(self.args.streams)
        threads = [threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(self.args.clients)]
        for t in threads:
            t.start()
        total = self.args.minutes * 60
        warmup = min(60.0, total / 5)
        time.sleep(warmup)
        after_warmup = {"web": rss_kib(self.web.pid), "worker": rss_kib(self.worker.pid)}
        samples = []
        started = time.monotonic()
        while time.monotonic() - started < total - warmup:
            time.sleep(min(30.0, total - warmup))
            samples.append({"t": round(time.monotonic() - started + warmup), "web": rss_kib(self.web.pid),
                            "worker": rss_kib(self.worker.pid), "requests": sum(self.statuses.values())})
            print(f"\r{samples[-1]}", end="", file=sys.stderr, flush=True)
        self.stop.set()
        for t in threads:
            t.join(timeout=20)
        at_end = {"web": rss_kib(self.web.pid), "worker": rss_kib(self.worker.pid)}
        for sock in streams:
            sock.close()
        # Let the worker finish the events it has.
        deadline = time.monotonic() + 60
        with psycopg.connect(self.database_url.replace("+psycopg", ""), autocommit=True) as conn:
            while time.monotonic() < deadline:
                pending = conn.execute(
                    "SELECT count(*) FROM platform_events WHERE status IN ('pending', 'processing')"
                ).fetchone()[0]
                if not pending:
                    break
                time.sleep(1)
            stored = Counter(row[0] for row in conn.execute(
                "SELECT id FROM messages WHERE id = ANY(%s)", (self.acknowledged,)))
            event_status = dict(conn.execute(
                "SELECT status, count(*) FROM platform_events GROUP BY status").fetchall())
            duplicates = conn.execute(
                "SELECT count(*) FROM (SELECT event_id, recipient_id FROM concierge_message_origins "
                "WHERE event_id IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1) d").fetchone()[0]
        missing = [m for m in self.acknowledged if stored[m] == 0]
        growth = {k: round(at_end[k] / after_warmup[k], 3) for k in at_end}
        result = {
            "minutes": self.args.minutes,
            "clients": self.args.clients,
            "streams": self.args.streams,
            "requests": sum(self.statuses.values()),
            "statuses": dict(sorted(self.statuses.items())),
            "server_errors": sum(v for k, v in self.statuses.items() if k >= 500),
            "errors": self.errors[:20],
            "messages_acknowledged": len(self.acknowledged),
            "messages_missing": len(missing),
            "messages_duplicated": sum(1 for v in stored.values() if v > 1),
            "events_sent": len(self.events_sent),
            "events_by_status": event_status,
            "duplicate_notifications": duplicates,
            "rss_kib_after_warmup": after_warmup,
            "rss_kib_at_end": at_end,
            "rss_growth": growth,
            "samples": samples,
        }
        result["passed"] = (
            result["server_errors"] == 0
            and not self.errors
            and not missing
            and result["messages_duplicated"] == 0
            and duplicates == 0
            and all(g <= 1.10 for g in growth.values())
        )
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--streams", type=int, default=200)
    args = parser.parse_args()
    soak = Soak(args)
    try:
        soak.start()
        result = soak.run()
    finally:
        soak.shutdown()
    out = ROOT / "bench" / "results" / "soak.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    summary = {k: v for k, v in result.items() if k != "samples"}
    print("\n" + json.dumps(summary, indent=2))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
