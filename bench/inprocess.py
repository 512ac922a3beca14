"""CPU per request or per event inside one process, without a server: the application called as WSGI (history,
inbox, send) or the concierge's event processing, on a scratch database it creates and drops.

    .venv/bin/python bench/inprocess.py hist|inbox|send|events [--count N] [--profile]

Prints CPU µs per request (process time, so waits on PostgreSQL are left out) and wall µs; with ``--profile``, the
top of a cProfile by cumulative time. PostgreSQL on ``BENCH_PG_ADMIN_URL`` (default the local server as
``postgres``), Redis on ``BENCH_REDIS_URL``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from werkzeug.test import EnvironBuilder

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app  # noqa: E402 - the project root first
from concierge import processing  # noqa: E402
from messaging.api.auth import mint_token  # noqa: E402
from messaging.cli import upgrade_database  # noqa: E402
from messaging.store.db import session_scope  # noqa: E402

ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
DATABASE = "concierge_bench_inprocess"
PROPERTY = {"id": 7, "hostId": "host-1", "name": "Casa Azul", "city": "Lisbon", "address": "Rua 1",
            "timezone": "Europe/Lisbon", "checkInTime": "16:00", "checkOutTime": "11:00"}


def _app() -> Any:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    app = create_app({
        "DATABASE_URL": "postgresql+psycopg://" + ADMIN_URL.split("://", 1)[1].rsplit("/", 1)[0] + f"/{DATABASE}",
        "REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": f"inprocess-{uuid.uuid4().hex[:6]}:", "JWT_SECRET": "x" * 40,
        "RATE_LIMITS_ENABLED": False, "CELERY": {"broker_url": "memory://"},
    })
    upgrade_database(app.config["DATABASE_URL"])
    return app


def _requests(app: Any, which: str) -> Any:
    """A function that makes one request of kind ``which`` (its data made first)."""
    guest = mint_token(app.config, sub="u-a", role="guest", name="A")
    mint_token(app.config, sub="u-b", role="host", name="B")
    client = app.test_client()
    headers = {"Authorization": f"Bearer {guest}"}
    client.get("/v1/me", headers={"Authorization": f"Bearer {mint_token(app.config, sub='u-b', role='host')}"})
    cid = client.post("/v1/conversations", json={"participantIds": ["u-b"]}, headers=headers).json["id"]
    for n in range(60):
        client.post(f"/v1/conversations/{cid}/messages", json={"message": f"hello {n}"}, headers=headers)
    path, method, body = {
        "hist": (f"/v1/conversations/{cid}/messages?limit=50", "GET", None),
        "inbox": ("/v1/conversations?limit=50", "GET", None),
        "send": (f"/v1/conversations/{cid}/messages", "POST", {"message": "hi there"}),
    }[which]
    environ = EnvironBuilder(path=path, method=method, headers=headers, json=body).get_environ()
    raw = environ["wsgi.input"].read()

    def start_response(status: str, _headers: Any, _exc: Any = None) -> None:
        assert status.startswith("2"), status

    def one() -> None:
        answer = app({**environ, "wsgi.input": io.BytesIO(raw)}, start_response)
        b"".join(answer)
        getattr(answer, "close", lambda: None)()

    return one


def _events(app: Any, count: int) -> Any:
    """A function that processes the next of ``count`` stored trip.booked events."""
    client = app.test_client()
    service = {"Authorization": f"Bearer {mint_token(app.config, sub='platform', role='service')}"}
    for n in range(count):
        trip = {"id": 1000 + n, "propertyId": 7, "travelerId": "trav-1", "checkIn": "2027-03-12",
                "checkOut": "2027-03-15", "numGuests": 2, "status": "Booked"}
        body = {"id": f"ev-{n}", "type": "trip.booked", "occurredAt": "2027-03-01T09:00:00Z",
                "data": {"trip": trip, "property": PROPERTY, "host": {"id": "host-1", "role": "host"},
                         "traveler": {"id": "trav-1", "name": "T", "role": "guest"}}}
        assert client.post("/v1/events", json=body, headers=service).status_code == 202
    numbers = iter(range(count))

    def one() -> None:
        event_id = f"ev-{next(numbers)}"
        with app.app_context():
            with session_scope() as session:
                started = processing.begin_processing(session, event_id)
            with session_scope() as session:
                assert processing.process_event(session, event_id, started) == "processed"

    return one


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=["hist", "inbox", "send", "events"])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    app = _app()
    warm = 20 if args.which == "events" else 200
    one = _events(app, args.count + warm) if args.which == "events" else _requests(app, args.which)
    try:
        for _ in range(warm):
            one()
        profile = cProfile.Profile() if args.profile else None
        cpu, wall = time.process_time(), time.perf_counter()
        if profile:
            profile.enable()
        for _ in range(args.count):
            one()
        if profile:
            profile.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(f"{args.which}: {cpu / args.count * 1e6:,.0f} µs CPU, {wall / args.count * 1e6:,.0f} µs wall each "
              f"({args.count}{' , profiled' if profile else ''})")
        if profile:
            pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
    finally:
        app.extensions["db"]["engine"].dispose()
        app.extensions["db"]["autocommit_engine"].dispose()
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
