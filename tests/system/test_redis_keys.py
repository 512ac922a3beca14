"""One key space per deployment (REDIS_KEY_PREFIX): every key the service writes to Redis — live streams, abuse-limit
counters, Celery's queues and bookkeeping, a worker's included — starts with the prefix. Against a private
redis-server, so that every key in it is the service's."""

from __future__ import annotations

from typing import Any

import redis
from celery.contrib.testing.worker import start_worker

from app import create_app
from messaging.api.limits import LIMITER
from tests import conftest
from tests.helpers_processes import (
    Processes,
    processes,  # noqa: F401 - fixture
    wait_until,
)

PREFIX = "deployment-a:"


def every_key(port: int) -> list[str]:
    """Every key of every database of the server on ``port``."""
    keys = []
    for db in redis.Redis(port=port).info("keyspace"):  # "db0", "db3", …
        in_db = redis.Redis(port=port, db=int(db[2:]))
        keys += [key.decode() for key in in_db.scan_iter(count=1000)]
        in_db.close()
    return sorted(keys)


def test_every_key_the_service_writes_starts_with_its_prefix(
    processes: Processes, database_url: str  # noqa: F811 - fixture
) -> None:
    server = processes.redis()
    url = server.url(3)
    config = conftest.test_config(database_url, REDIS_URL=url, REDIS_KEY_PREFIX=PREFIX, RATE_LIMITS_ENABLED=True)
    del config["CELERY"]  # the broker as production configures it: REDIS_URL, REDIS_KEY_PREFIX
    app = create_app(config)
    client = redis.Redis.from_url(url)
    try:
        app.extensions["live"].publish(["u1"], "message.created", {"id": "m1"})
        app.extensions[LIMITER].count("messages", "user:u1")
        celery: Any = app.extensions["celery"]
        celery.send_task("concierge.process_event", args=["no-such-event"])
        written = every_key(server.port)
        assert f"{PREFIX}live:user:u1" in written
        assert any(key.startswith(f"{PREFIX}concierge-limits:") for key in written), written
        assert f"{PREFIX}celery" in written  # the default queue, holding the task
        assert all(key.startswith(PREFIX) for key in written), written

        # A worker consumes it: the keys it writes (acknowledgement bookkeeping, bindings) carry the prefix too.
        with start_worker(celery, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            wait_until(lambda: not client.llen(f"{PREFIX}celery") and not client.hlen(f"{PREFIX}unacked"), 20,
                       what="the worker to take and acknowledge the task")
        written = every_key(server.port)
        assert written and all(key.startswith(PREFIX) for key in written), written
    finally:
        client.close()
        app.extensions["live"].close()
        conftest._wipe(app)
