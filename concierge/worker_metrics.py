"""What a Celery worker exports to Prometheus, on ``WORKER_METRICS_HOST:WORKER_METRICS_PORT`` (port 0: nothing).

* ``celery_tasks_total{task, outcome}``: the tasks this worker process ran, by outcome: ``succeeded``, ``failed``
  (for good) or ``retried`` (a retry was scheduled), counted from Celery's task signals;
* the backlog, read from the database at each scrape (:class:`BacklogCollector`): ``outbox_pending`` and
  ``outbox_oldest_pending_age_seconds`` (outbox rows whose task has not reported done: sent and waiting, running,
  or waiting to retry), ``platform_events_unresolved{status}`` (pending, processing, failed) and
  ``platform_events_oldest_pending_age_seconds`` (since it was received); ages are 0 when there is none.

The exporter starts when the worker is ready (Celery's ``worker_ready``), in the worker's own process, so it
counts the tasks of the ``solo`` and ``threads`` pools (production runs ``solo``; with ``prefork`` the tasks run
in child processes and this one would count none). A port that cannot be bound (another worker on the host has
it) is logged as a warning and the worker runs on without an exporter: each worker on a host needs its own port.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any

from celery import signals
from flask import Flask
from prometheus_client import CollectorRegistry, Counter, ProcessCollector, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from concierge.models import PlatformEvent
from messaging.store.db import utcnow
from messaging.store.models import OutboxEntry

log = logging.getLogger(__name__)

# Registered only in each exporter's registry (start_exporter), never in prometheus_client's global one.
TASKS = Counter("celery_tasks_total", "Celery tasks run by this worker, by task name and outcome",
                ["task", "outcome"], registry=None)

# The statuses that still need work or an admin (failed events wait for a retry at /admin/).
UNRESOLVED_STATUSES = ("pending", "processing", "failed")
# Both read an index only, never the tables' history: the outbox's partial index of rows not done
# (ix_outbox_unfinished_created_at) and the events' (status, received_at) index over three statuses.
OUTBOX_BACKLOG = select(func.count(), func.min(OutboxEntry.created_at)).where(OutboxEntry.done_at.is_(None))
EVENT_BACKLOG = (
    select(PlatformEvent.status, func.count(), func.min(PlatformEvent.received_at))
    .where(PlatformEvent.status.in_(UNRESOLVED_STATUSES))
    .group_by(PlatformEvent.status)
)


def _task_name(task: Any) -> str:
    return str(getattr(task, "name", None) or "unknown")


@signals.task_success.connect
def _count_success(sender: Any = None, **_: Any) -> None:
    TASKS.labels(_task_name(sender), "succeeded").inc()


@signals.task_failure.connect
def _count_failure(sender: Any = None, **_: Any) -> None:
    TASKS.labels(_task_name(sender), "failed").inc()


@signals.task_retry.connect
def _count_retry(sender: Any = None, **_: Any) -> None:
    TASKS.labels(_task_name(sender), "retried").inc()


class BacklogCollector(Collector):
    """The outbox's and the platform events' backlog, read through ``engine`` (two statements on one connection)
    each time it is collected. When the database cannot be reached it logs a warning and yields nothing, so a
    scrape still gets the other metrics."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        try:
            with self.engine.connect() as conn:
                outbox_count, outbox_oldest = conn.execute(OUTBOX_BACKLOG).one()
                events = {status: (count, oldest) for status, count, oldest in conn.execute(EVENT_BACKLOG)}
        except SQLAlchemyError as exc:
            log.warning("worker metrics: the backlog is left out of this scrape, the database failed: %s", exc)
            return
        now = utcnow()
        yield GaugeMetricFamily("outbox_pending", "Outbox rows whose task has not reported done",
                                value=outbox_count)
        yield GaugeMetricFamily("outbox_oldest_pending_age_seconds",
                                "Age of the oldest outbox row whose task has not reported done (0: none)",
                                value=_age(now, outbox_oldest))
        unresolved = GaugeMetricFamily("platform_events_unresolved",
                                       "Platform events pending, processing or failed (awaiting an admin's retry)",
                                       labels=["status"])
        for status in UNRESOLVED_STATUSES:
            unresolved.add_metric([status], events.get(status, (0, None))[0])
        yield unresolved
        yield GaugeMetricFamily("platform_events_oldest_pending_age_seconds",
                                "Seconds since the oldest pending platform event was received (0: none)",
                                value=_age(now, events.get("pending", (0, None))[1]))


def _age(now: dt.datetime, then: dt.datetime | None) -> float:
    if then is None:
        return 0.0
    return max(0.0, (now - then).total_seconds())


def start_exporter(app: Flask) -> bool:
    """Serve this process's task counters, the backlog (through ``app``'s engine) and the process's own metrics
    (CPU, memory, start time) on ``WORKER_METRICS_HOST:WORKER_METRICS_PORT``, in a daemon thread. False when the
    port is 0 or cannot be bound (a warning)."""
    port, host = int(app.config["WORKER_METRICS_PORT"]), app.config["WORKER_METRICS_HOST"]
    if not port:
        return False
    registry = CollectorRegistry()
    registry.register(TASKS)
    registry.register(BacklogCollector(app.extensions["db"]["engine"]))
    ProcessCollector(registry=registry)
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.warning("worker metrics: cannot listen on %s:%s, this worker exports none: %s", host, port, exc)
        return False
    log.info("worker metrics on http://%s:%s/metrics", host, port)
    return True


def install(app: Flask) -> None:
    """Start the exporter when ``app``'s Celery worker is ready (``celery worker``, or the embedded runner's)."""
    celery = app.extensions["celery"]

    def on_worker_ready(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is celery:  # not another Celery app of this process
            start_exporter(app)

    # Connected weakly and held by the app: the receiver (and the app it holds) goes when the app goes.
    app.extensions["worker_metrics"] = on_worker_ready
    signals.worker_ready.connect(on_worker_ready)
