"""Operations metrics: /metrics summed over gunicorn's workers, the Celery worker's exporter (task outcomes, the outbox
and event backlog), and the hourly purge of expired Idempotency-Key claims. The process tests run a real gunicorn
with two workers and a real Celery worker on PostgreSQL and Redis."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, text

from app import create_app
from concierge import worker_metrics
from concierge.models import PlatformEvent
from concierge.worker_metrics import EVENT_BACKLOG, OUTBOX_BACKLOG, TASKS, BacklogCollector
from messaging.api.health import REGISTRY
from messaging.api.stream import StreamingUsers
from messaging.chat.users import KnownUsers
from messaging.config import BEAT_SCHEDULE, load_settings
from messaging.store.db import get_engine, make_engine, session_scope, utcnow
from messaging.store.models import IdempotencyKey, OutboxEntry
from tasks import scheduled_tasks
from tests.conftest import REDIS_TEST_PREFIX, redis_url
from tests.conftest import test_config as app_config
from tests.helpers_processes import (
    Processes,
    WebServer,
    call,
    free_port,
    mint,
    private_pg_database,
    processes,  # noqa: F401 - fixture
    service_env,
    wait_until,
)
from tests.system.test_stream import SseClient
from tests.system.test_stream_faults import _worker_pids
from tests.system.test_worker_delivery import execute, query

METRICS_TOKEN = "scrape-token-for-the-metrics-tests"


def samples(exposition: str, name: str, **labels: str) -> list[float]:
    """The values of the samples named ``name`` whose labels include ``labels``, from Prometheus text."""
    return [sample.value for family in text_string_to_metric_families(exposition) for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())]


# --- the purge of expired Idempotency-Key claims ---------------------------------------------------------------


def test_the_beat_schedule_purges_idempotency_keys_hourly() -> None:
    [entry] = [entry for entry in BEAT_SCHEDULE.values() if entry["task"] == "idempotency.purge"]
    assert entry["schedule"] == 3600.0
    celery = load_settings()["CELERY"]
    assert celery["beat_schedule"] is BEAT_SCHEDULE
    assert "tasks.scheduled_tasks" in celery["imports"]  # where the worker finds the task
    assert scheduled_tasks.purge_idempotency_keys.name == "idempotency.purge"


def test_the_purge_task_deletes_only_expired_keys_in_batches(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduled_tasks, "PURGE_BATCH", 2)  # 5 expired: three transactions
    now = utcnow()
    ages = {"fresh": dt.timedelta(hours=1), "almost": dt.timedelta(hours=23, minutes=59),
            **{f"old-{n}": dt.timedelta(hours=24, minutes=n + 1) for n in range(4)}, "older": dt.timedelta(days=3)}
    with app.app_context():
        with session_scope() as session:
            for key, age in ages.items():
                session.add(IdempotencyKey(owner_id="u1", key=key, request_fingerprint="f" * 64,
                                           response_status=201, response_body="{}", created_at=now - age))
        assert scheduled_tasks.purge_idempotency_keys() == 5
        with session_scope() as session:
            assert sorted(session.scalars(select(IdempotencyKey.key))) == ["almost", "fresh"]


# --- the live-stream gauge and the worker's exporter, in this process --------------------------------------------


def test_an_open_stream_counts_in_the_live_stream_gauge(app: Any) -> None:
    users = StreamingUsers(KnownUsers(), app.extensions["db"]["sessionmaker"])
    before = REGISTRY.get_sample_value("live_stream_connections")
    assert before is not None
    with users.opened("u1"), users.opened("u1"):
        assert REGISTRY.get_sample_value("live_stream_connections") == before + 2
    assert REGISTRY.get_sample_value("live_stream_connections") == before


def _seed_backlog(now: dt.datetime) -> None:
    """Events in every status (two pending, the oldest 120 s old) and outbox rows (two not done, 90 s and 5 s)."""
    statuses = {"pending": [120, 10], "processing": [30], "failed": [600, 60, 6], "processed": [900, 5],
                "skipped": [700]}
    with session_scope() as session:
        for status, ages in statuses.items():
            for age in ages:
                at = now - dt.timedelta(seconds=age)
                session.add(PlatformEvent(
                    id=f"metrics-{uuid.uuid4().hex}", type="trip.created", occurred_at=at, payload={},
                    payload_hash="0" * 64, status=status, received_at=at, updated_at=at))
        for age, done in ((90, False), (5, False), (300, True)):
            at = now - dt.timedelta(seconds=age)
            session.add(OutboxEntry(id=uuid.uuid4().hex[:21], task_name="concierge.process_event", args=["x"],
                                    created_at=at, dispatched_at=at, done_at=at if done else None))


def test_the_backlog_collector_reads_the_outbox_and_the_events(app: Any) -> None:
    with app.app_context():
        _seed_backlog(utcnow())
    registry = CollectorRegistry()
    registry.register(BacklogCollector(app.extensions["db"]["engine"]))
    value = registry.get_sample_value
    assert value("outbox_pending") == 2
    assert 90 <= value("outbox_oldest_pending_age_seconds") < 100  # type: ignore[operator]
    assert {status: value("platform_events_unresolved", {"status": status})
            for status in ("pending", "processing", "failed")} == {"pending": 2, "processing": 1, "failed": 3}
    assert 120 <= value("platform_events_oldest_pending_age_seconds") < 130  # type: ignore[operator]


def test_an_empty_backlog_has_no_age(app: Any) -> None:
    registry = CollectorRegistry()
    registry.register(BacklogCollector(app.extensions["db"]["engine"]))
    assert registry.get_sample_value("outbox_pending") == 0
    assert registry.get_sample_value("outbox_oldest_pending_age_seconds") == 0
    assert registry.get_sample_value("platform_events_oldest_pending_age_seconds") == 0


def test_the_backlog_statements_are_answered_from_indexes(pg_app: Any) -> None:
    """With sequential scans priced out, a statement that has no usable index still shows one in its plan."""
    with pg_app.app_context(), get_engine().connect() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        for statement in (OUTBOX_BACKLOG, EVENT_BACKLOG):
            sql = statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            plan = "\n".join(row[0] for row in conn.execute(text(f"EXPLAIN {sql}")))
            assert "Seq Scan" not in plan, plan


def test_a_scrape_without_the_database_leaves_the_backlog_out(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:  # a port nothing listens on: the connection is refused at once
        sock.bind(("127.0.0.1", 0))
        url = f"postgresql+psycopg://postgres@127.0.0.1:{sock.getsockname()[1]}/nowhere"
    registry = CollectorRegistry()
    registry.register(TASKS)
    registry.register(BacklogCollector(make_engine(url, pool_size=1)))
    with caplog.at_level("WARNING", logger=worker_metrics.log.name):
        exposition = generate_latest(registry).decode()
    assert "# TYPE celery_tasks_total counter" in exposition
    assert "outbox_pending" not in exposition and "platform_events" not in exposition
    assert [r.levelname for r in caplog.records if r.name == worker_metrics.log.name] == ["WARNING"]


def test_an_exporter_port_taken_is_a_warning_not_a_crash(app: Any, caplog: pytest.LogCaptureFixture,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setitem(app.config, "WORKER_METRICS_PORT", taken.getsockname()[1])
        with caplog.at_level("WARNING", logger=worker_metrics.log.name):
            assert worker_metrics.start_exporter(app) is False
    assert "cannot listen" in caplog.text
    monkeypatch.setitem(app.config, "WORKER_METRICS_PORT", 0)
    assert worker_metrics.start_exporter(app) is False  # off


def test_the_worker_exporter_is_off_by_default_outside_production(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORKER_METRICS_PORT", "WORKER_METRICS_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("APP_ENV", "development")
    assert load_settings()["WORKER_METRICS_PORT"] == 0
    monkeypatch.setenv("APP_ENV", "production")
    assert (load_settings()["WORKER_METRICS_PORT"], load_settings()["WORKER_METRICS_HOST"]) == (9808, "127.0.0.1")
    monkeypatch.setenv("WORKER_METRICS_PORT", "0")
    assert load_settings()["WORKER_METRICS_PORT"] == 0


# --- real processes ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def private_database() -> Iterator[str]:
    with private_pg_database("concierge_metrics") as url:
        yield url


def _scrape(web: WebServer) -> str:
    status, body = call(web.base, "GET", "/metrics", METRICS_TOKEN)
    assert status == 200, body
    return str(body)


def _readyz_total(exposition: str) -> float:
    return sum(samples(exposition, "http_requests_total", endpoint="/readyz"))


def _live_streams(exposition: str) -> list[float]:
    return samples(exposition, "live_stream_connections")


@pytest.mark.slow
def test_gunicorn_metrics_are_summed_over_its_workers(
    processes: Processes, private_database: str, streams: list[SseClient]  # noqa: F811 - fixture
) -> None:
    env = service_env(private_database, redis_url(), METRICS_TOKEN=METRICS_TOKEN, LIVE_HEARTBEAT_SECONDS="1")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # gunicorn.conf.py makes its own
    web = processes.web(env, workers=2)
    requests = 10
    for _ in range(requests):
        assert call(web.base, "GET", "/readyz")[0] == 200
    for _ in range(3):  # whichever worker answers
        assert _readyz_total(_scrape(web)) == requests

    for n in range(3):
        stream = SseClient(web.base, mint(f"metrics-{n}-{uuid.uuid4().hex[:8]}"))
        streams.append(stream)
        assert stream.status == 200 and stream.opened.wait(5)
    for _ in range(3):
        assert _live_streams(_scrape(web)) == [3]
    streams[0].close()  # the server notices at its next keepalive
    wait_until(lambda: _live_streams(_scrape(web)) == [2], 15, what="the closed stream to stop counting")

    # Killed workers: what they counted stays in the sum, the streams they held no longer count.
    killed = _worker_pids(web)
    assert len(killed) == 2
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: len(pids := _worker_pids(web)) == 2 and not set(pids) & set(killed), 30,
               what="gunicorn to start two new workers")
    web.wait_ready()
    for _ in range(requests):
        assert call(web.base, "GET", "/readyz")[0] == 200
    for _ in range(3):
        exposition = _scrape(web)
        assert _readyz_total(exposition) == 2 * requests
        assert _live_streams(exposition) == [0]


def _send(broker: str, queue: str, name: str, *args: Any) -> None:
    sender = Celery("metrics-test-sender", broker=broker, set_as_current=False)
    sender.conf.broker_transport_options = {"global_keyprefix": REDIS_TEST_PREFIX}  # the worker's (service_env)
    try:
        sender.send_task(name, args=list(args), queue=queue)
    finally:
        sender.close()


def _exporter_text(port: int) -> str | None:
    try:
        status, body = call(f"http://127.0.0.1:{port}", "GET", "/metrics", timeout=5)
    except OSError:
        return None
    return str(body) if status == 200 else None


@pytest.mark.slow
def test_the_celery_worker_exports_task_outcomes_and_the_backlog(
    processes: Processes, private_database: str  # noqa: F811 - fixture
) -> None:
    port, queue, refused = free_port(), f"metrics-{uuid.uuid4().hex[:8]}", free_port()
    env = service_env(private_database, redis_url(), WORKER_METRICS_PORT=str(port),
                      PLATFORM_WEBHOOK_URL=f"http://127.0.0.1:{refused}/hook", PLATFORM_WEBHOOK_SECRET="s")
    # A webhook whose endpoint refuses the connection: its task retries.
    user, delivery = f"metrics-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:21]
    execute(private_database, "INSERT INTO users (id) VALUES (%s)", user)
    execute(private_database, "INSERT INTO webhook_deliveries (id, user_id, hour, unread_count) VALUES (%s, %s, 1, 1)",
            delivery, user)
    seeding = create_app(app_config(private_database))
    with seeding.app_context():
        _seed_backlog(utcnow())
    seeding.extensions["db"]["engine"].dispose()

    processes.worker(env, pool="solo", queues=queue)
    wait_until(lambda: _exporter_text(port), 15, what="the worker's exporter")
    broker = env["REDIS_URL"]
    _send(broker, queue, "concierge.process_event", "metrics-no-such-event")  # nothing to do: succeeds
    _send(broker, queue, "outbox.sweep", "an argument it does not take")  # TypeError: fails
    _send(broker, queue, "concierge.deliver_webhook", delivery)  # connection refused: retries

    def outcomes() -> dict[str, float] | None:
        exposition = _exporter_text(port) or ""
        found = {
            "succeeded": sum(samples(exposition, "celery_tasks_total", task="concierge.process_event",
                                     outcome="succeeded")),
            "failed": sum(samples(exposition, "celery_tasks_total", task="outbox.sweep", outcome="failed")),
            "retried": sum(samples(exposition, "celery_tasks_total", task="concierge.deliver_webhook",
                                   outcome="retried")),
        }
        return found if all(found.values()) else None

    found = wait_until(outcomes, 20, what="the three outcomes")
    assert found["succeeded"] == 1 and found["failed"] == 1 and found["retried"] >= 1

    exposition = _exporter_text(port)
    assert exposition is not None
    [(pending, oldest_outbox)] = query(private_database, "SELECT count(*), extract(epoch FROM now() - min(created_at)) "
                                                         "FROM outbox WHERE done_at IS NULL")
    assert samples(exposition, "outbox_pending") == [pending] and pending >= 2
    assert abs(samples(exposition, "outbox_oldest_pending_age_seconds")[0] - float(oldest_outbox)) < 5
    by_status = dict(query(private_database, "SELECT status, count(*) FROM platform_events GROUP BY status"))
    for status in ("pending", "processing", "failed"):
        assert samples(exposition, "platform_events_unresolved", status=status) == [by_status[status]], status
    [(oldest_event,)] = query(private_database, "SELECT extract(epoch FROM now() - min(received_at)) "
                                            "FROM platform_events WHERE status = 'pending'")
    assert abs(samples(exposition, "platform_events_oldest_pending_age_seconds")[0] - float(oldest_event)) < 5
