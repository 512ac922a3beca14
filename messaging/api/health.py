"""Liveness, readiness and Prometheus metrics (SPEC §2)."""

from __future__ import annotations

import hmac
import os
import time
from typing import Any

import redis
from flask import Blueprint, Response, current_app, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import text

from messaging.api.auth import bearer_token
from messaging.errors import NotFound, Unauthorized, problem_response
from messaging.store.db import get_engine

bp = Blueprint("health", __name__)

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "http_requests_total", "HTTP requests handled", ["method", "endpoint", "status"], registry=REGISTRY
)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time spent handling HTTP requests",
    ["method", "endpoint"],
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


def check_database() -> str | None:
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        return f"{type(exc).__name__}"


def check_broker() -> str | None:
    try:
        client = redis.Redis.from_url(current_app.config["REDIS_URL"], socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        client.close()
        return None
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}"


@bp.get("/readyz")
def readyz() -> Response:
    checks = {"database": check_database(), "broker": check_broker()}
    failed = sorted(name for name, err in checks.items() if err)
    report = {name: ("ok" if not err else f"failed: {err}") for name, err in checks.items()}
    if failed:
        # A failure, so the one error shape (RFC 9457), with the checks as an extension member.
        return problem_response(
            503, "Service unavailable", "Not ready: " + ", ".join(failed) + " unreachable.",
            slug="unavailable", headers={"Retry-After": "5"}, extensions={"checks": report},
        )
    return jsonify(status="ok", checks=report)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text for a scraper sending ``Authorization: Bearer <METRICS_TOKEN>`` (401 otherwise). With no
    ``METRICS_TOKEN`` set it is open outside production (development, tests) and 404 in production."""
    expected = current_app.config.get("METRICS_TOKEN")
    if not expected:
        if current_app.config.get("APP_ENV") == "production":
            raise NotFound("No such resource.")
    elif not hmac.compare_digest((bearer_token() or "").encode(), expected.encode()):
        raise Unauthorized("A valid metrics bearer token is required.")
    return Response(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)


def metrics_registry() -> CollectorRegistry:
    """What ``/metrics`` reports. With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn.conf.py sets it for the web
    tier), the metrics every process of the server wrote there: counters and histograms summed over the live and
    the exited ones, ``livesum`` gauges over the live ones. Otherwise this process's own (:data:`REGISTRY`)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry


def record_request(status: int) -> None:
    """Count the current request and observe its latency (from ``g.request_started``), by method and route."""
    started = g.get("request_started")
    if started is None:
        return
    rule = request.url_rule.rule if request.url_rule else "unmatched"
    method = request.method
    latency = _LATENCY_OF.get((method, rule))
    if latency is None:
        latency = _LATENCY_OF[(method, rule)] = LATENCY.labels(method, rule)
    latency.observe(time.perf_counter() - started)
    counter = _REQUESTS_OF.get((method, rule, status))
    if counter is None:
        counter = _REQUESTS_OF[(method, rule, status)] = REQUESTS.labels(method, rule, str(status))
    counter.inc()


# Each label set's child, looked up once (prometheus_client's labels() takes a lock on every call).
_LATENCY_OF: dict[tuple[str, str], Any] = {}
_REQUESTS_OF: dict[tuple[str, str, int], Any] = {}
