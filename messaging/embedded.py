"""The embedded default (`make run`): API, Celery worker and Celery beat in one process, on this machine.

:func:`main` runs the application an app factory builds, with the demo data a seeding function adds and the demo
users whose tokens it prints; the project's entry point (``run.py``, which may import the whole service) gives
them. With no ``DATABASE_URL`` it starts a private PostgreSQL (data in ``instance/postgres``), and with no
``REDIS_URL`` a private Redis (``instance/redis``), both from pip-installed packages
(:mod:`messaging.local_servers`); the service uses them as it uses production's servers. It migrates the
database, seeds the demo data set, then serves HTTP on HOST:PORT (threaded, so open live-update streams each hold
a thread, not the server) while a real Celery ``WorkController`` consumes from Redis in a background thread and
``celery.beat.Service`` ticks in another. SIGINT or SIGTERM stops the server, then beat, then the worker (warm:
running tasks finish), then the private servers. Production runs these as separate processes instead (README,
"Production").
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

import orjson
from celery import Celery, signals
from celery.beat import Service
from celery.worker import WorkController
from celery.worker import state as worker_state
from flask import Flask
from sqlalchemy.orm import Session
from werkzeug.serving import BaseWSGIServer, make_server

from messaging.api.auth import mint_token
from messaging.cli import upgrade_database
from messaging.config import INSTANCE_DIR
from messaging.local_servers import LocalPostgres, LocalRedis
from messaging.store.db import session_scope

log = logging.getLogger(__name__)

BEAT_SCHEDULE_FILE = INSTANCE_DIR / "celerybeat-schedule"
TOKEN_TTL = dt.timedelta(hours=24)
WORKER_READY_WAIT = 30.0  # seconds the banner waits for the worker
WORKER_CONCURRENCY = 4
SHUTDOWN_WAIT = 8.0  # seconds per component; the whole stop stays under ten

# The application factory; what seeds the demo data (in a session the runner commits), returning what it added;
# and the demo users, (label, user id, role), whose tokens the banner prints.
AppFactory = Callable[[], Flask]
Seed = Callable[[Session], list[str]]
DemoUsers = Sequence[tuple[str, str, str]]
# A platform event to try, as posted: what the printed curl line sends.
TryEvent = Callable[[], dict[str, Any]]

# Browser origins make run lets call the API (CORS_ORIGINS): any port on this machine.
DEVELOPMENT_ORIGINS = "http://localhost:*,http://127.0.0.1:*"
# The platform's own token, printed with the demo users' (label, subject, role).
PLATFORM_USER = ("platform", "platform", "service")
# Where `make web` serves examples/web (Makefile, WEB_PORT).
WEB_PORT = int(os.environ.get("WEB_PORT") or 8001)
_say_lock = threading.RLock()  # reentrant: the signal handler may print while the main thread is printing


def say(line: str) -> None:
    """Print one whole line: the worker thread announces itself while the main thread prints the banner."""
    with _say_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def start_private_servers() -> list[LocalPostgres | LocalRedis]:
    """Start a private PostgreSQL and Redis for the settings not given, and point the settings at them."""
    started: list[LocalPostgres | LocalRedis] = []
    if not os.environ.get("DATABASE_URL"):
        postgres = LocalPostgres(INSTANCE_DIR / "postgres")
        postgres.start()
        started.append(postgres)
        os.environ["DATABASE_URL"] = postgres.database_url("concierge")
        say(f"PostgreSQL: a private server, data in {INSTANCE_DIR / 'postgres'}")
    if not os.environ.get("REDIS_URL"):
        redis_server = LocalRedis(INSTANCE_DIR / "redis")
        os.environ["REDIS_URL"] = redis_server.start()
        started.append(redis_server)
        say(f"Redis: a private server on {os.environ['REDIS_URL']}, data in {INSTANCE_DIR / 'redis'}")
    return started


def main(create_app: AppFactory, seed: Seed, demo_users: DemoUsers, try_event: TryEvent) -> int:
    """Start the private servers the settings lack, then :func:`serve`; returns the exit code."""
    servers = start_private_servers()
    # The reference web client (`make web`) and other pages under development call the API from another port.
    os.environ.setdefault("CORS_ORIGINS", DEVELOPMENT_ORIGINS)
    try:
        return serve(create_app, seed, demo_users, try_event)
    finally:
        for server in reversed(servers):
            server.stop()


def serve(create_app: AppFactory, seed: Seed, demo_users: DemoUsers, try_event: TryEvent) -> int:
    """Build the app, migrate its database, seed it, then serve with a worker and beat until SIGINT or SIGTERM."""
    app = create_app()
    try:
        upgrade_database(app.config["DATABASE_URL"])
    except Exception:
        log.exception("could not migrate the database")
        return 1
    # Alembic's env.py applies alembic.ini's logging (root at WARNING); put the service's level back.
    logging.basicConfig(level=app.config.get("LOG_LEVEL") or os.environ.get("LOG_LEVEL", "INFO"), force=True)
    quiet_routine_logs()
    with app.app_context(), session_scope() as session:
        added = seed(session)
    say(f"demo data {'added: ' + ', '.join(added) if added else 'already present'}")

    host = os.environ.get("HOST") or "127.0.0.1"
    port = int(app.config["PORT"])
    server = make_server(host, port, app, threaded=True)  # binds now: a busy port fails before anything starts

    celery: Celery = app.extensions["celery"]

    stop = threading.Event()
    _install_signal_handlers(stop)
    worker_ready = threading.Event()
    _worker, worker_thread = start_worker(celery, worker_ready)
    beat, beat_thread = start_beat(celery)
    server_thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    server_thread.start()

    # The banner comes last, once the worker is up, so that nothing scrolls the tokens away.
    if not worker_ready.wait(WORKER_READY_WAIT):
        log.warning("the worker is not ready after %.0f s; events wait for it", WORKER_READY_WAIT)
    print_banner(app, host, port, demo_users, try_event())
    exit_code = 0
    while not stop.wait(1.0):
        if not server_thread.is_alive():
            log.error("the HTTP server stopped unexpectedly")
            exit_code = 1
            break

    say("shutting down")
    shutdown(server, server_thread, beat, beat_thread, worker_thread)
    say("stopped")
    return exit_code


def quiet_routine_logs() -> None:
    """Keep the printed URLs and tokens on screen: no line per request (``LOG_ACCESS=1`` asks for them) and no line
    per scheduled task sent (every few seconds) or task run; warnings and errors still show."""
    if os.environ.get("LOG_ACCESS") != "1":
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    for routine in ("celery.beat", "celery.app.trace", "celery.worker.strategy"):  # sent, received, succeeded
        logging.getLogger(routine).setLevel(logging.WARNING)


def start_worker(celery: Celery, ready: threading.Event) -> tuple[WorkController, threading.Thread]:
    """A real Celery worker (as `celery worker` runs, minus its process-level signal handling) in a thread.

    Mirrors ``celery.contrib.testing.worker``: the ``threads`` pool, no mingle, gossip or heartbeats (there is
    one worker), and a ready callback that announces the consumer is up.
    """
    celery.finalize()
    worker_state.should_stop = None
    worker_state.should_terminate = None

    def on_consumer_ready(consumer: Any) -> None:
        # `celery worker` sends this signal from its own subclass; send it here too for anything listening.
        signals.worker_ready.send(sender=consumer)
        say(f"worker ready: consuming {celery.conf.broker_url.split('://', 1)[0]}:// with {WORKER_CONCURRENCY} threads")
        ready.set()

    worker = WorkController(
        app=celery,
        hostname=f"embedded@{socket.gethostname()}",
        pool="threads",
        concurrency=WORKER_CONCURRENCY,
        loglevel=logging.getLogger().getEffectiveLevel(),
        ready_callback=on_consumer_ready,
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
    )
    thread = threading.Thread(target=worker.start, name="celery-worker", daemon=True)
    thread.start()
    return worker, thread


def start_beat(celery: Celery) -> tuple[Service, threading.Thread]:
    """Celery beat's scheduler service, ticking at least once a second so that it stops promptly."""
    BEAT_SCHEDULE_FILE.parent.mkdir(parents=True, exist_ok=True)
    beat = Service(celery, max_interval=1.0, schedule_filename=str(BEAT_SCHEDULE_FILE))
    thread = threading.Thread(target=beat.start, name="celery-beat", daemon=True)
    thread.start()
    return beat, thread


def shutdown(
    server: BaseWSGIServer,
    server_thread: threading.Thread,
    beat: Service,
    beat_thread: threading.Thread,
    worker_thread: threading.Thread,
) -> None:
    server.shutdown()  # stops accepting; open streams are daemon threads and end with the process
    server.server_close()
    server_thread.join(SHUTDOWN_WAIT)
    beat.stop()
    beat_thread.join(SHUTDOWN_WAIT)
    # What `celery worker` does on SIGTERM: the consumer loop sees the flag and the worker shuts down warm.
    worker_state.should_stop = 0
    worker_thread.join(SHUTDOWN_WAIT)
    for thread in (server_thread, beat_thread, worker_thread):
        if thread.is_alive():
            log.warning("%s did not stop within %.0f s; leaving it behind", thread.name, SHUTDOWN_WAIT)


def print_banner(app: Flask, host: str, port: int, demo_users: DemoUsers, event: dict[str, Any]) -> None:
    """The last lines ``make run`` prints, together: where everything is, a token per demo user and one for the
    platform (role ``service``, which posts records and events), each valid 24 h, and a curl line to try."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    base = f"http://{f'[{shown}]' if ':' in shown else shown}:{port}"
    lines = [
        "",
        f"API:         {base}/v1        (home page: {base}/)",
        f"Docs:        {base}/docs",
        f"Admin pages: {base}/admin/    (sign in with the admin token)",
        f"Web client:  http://127.0.0.1:{WEB_PORT}/?api={base}    (run `make web` in another terminal)",
    ]
    if not app.config.get("JWT_SECRET"):
        lines.append("No demo tokens: JWT_PUBLIC_KEY is set, so tokens come from the platform's private key.")
    else:
        tokens = {sub: mint_token(app.config, sub=sub, role=role, ttl=TOKEN_TTL)
                  for _label, sub, role in (*demo_users, PLATFORM_USER)}
        lines.append("Tokens (valid 24 h):")
        for label, sub, role in (*demo_users, PLATFORM_USER):
            lines.append(f"  {label:<9} {sub} ({role}): {tokens[sub]}")
        if app.config.get("JWT_SECRET_IS_DEFAULT"):
            lines.append("  signed with the built-in development secret; set JWT_SECRET to use your own")
        lines += [
            "Try (the platform posts an event; the demo traveler's concierge chat tells them):",
            f"  curl -X POST {base}/v1/events -H 'Authorization: Bearer {tokens[PLATFORM_USER[1]]}' \\",
            f"       -H 'Content-Type: application/json' -d '{orjson.dumps(event).decode()}'",
        ]
    lines.append("Ctrl-C stops.")
    say("\n".join(lines))


def _install_signal_handlers(stop: threading.Event) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            say("stopping now")
            os._exit(128 + signum)  # a second signal: don't wait for the threads
        stop.set()

    handler: Callable[[int, FrameType | None], None] = handle
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":
    sys.exit("messaging.embedded runs the application it is given: `make run` (python -m run) gives it this service's")
