"""Fuzzing from the API document (schemathesis) against a running server on PostgreSQL and Redis.

Every operation of ``/openapi.json`` is called with generated input — valid and invalid — as each
kind of caller (guest, host, admin, service) and must never answer 5xx, nor anything the document
does not describe (status, content type, body schema). ``FUZZ_EXAMPLES`` sets how many examples per
operation and caller (CI: a few, seeded; ``make fuzz``: many).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from messaging.api.auth import mint_token
from messaging.cli import upgrade_database
from tests.conftest import REDIS_TEST_PREFIX, RUN_ID, TEST_JWT_SECRET, recreate_pg_database, redis_url

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
CALLERS = {"guest": ("fuzz-guest", "guest"), "host": ("fuzz-host", "host"), "admin": ("fuzz-admin", "admin"),
           "service": ("fuzz-platform", "service")}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# A live-update stream never ends by itself: it has its own tests.
EXCLUDED_PATHS = ("/v1/stream",)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    database_url = recreate_pg_database(f"concierge_fuzz_{RUN_ID}")
    upgrade_database(database_url)
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url(),
        "REDIS_KEY_PREFIX": REDIS_TEST_PREFIX,
        "JWT_SECRET": TEST_JWT_SECRET,
        "APP_ENV": "production",
        "RATE_LIMITS_ENABLED": "0",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
         "app:create_app()"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
        _seed(base)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _headers(role: str) -> dict[str, str]:
    sub, kind = CALLERS[role]
    config = {"JWT_SECRET": TEST_JWT_SECRET, "JWT_ISSUER": None, "JWT_AUDIENCE": None}
    return {"Authorization": f"Bearer {mint_token(config, sub=sub, role=kind)}"}


def _seed(base: str) -> None:
    """A few real records so that generated ids sometimes hit something."""
    guest, host, service = _headers("guest"), _headers("host"), _headers("service")
    for headers in (guest, host, _headers("admin")):
        requests.get(f"{base}/v1/me", headers=headers, timeout=5).raise_for_status()
    requests.put(
        f"{base}/v1/properties/1",
        json={"hostId": "fuzz-host", "name": "Casa", "city": "Lisbon", "timezone": "Europe/Lisbon"},
        headers=service,
        timeout=5,
    ).raise_for_status()
    conversation = requests.post(
        f"{base}/v1/conversations", json={"participantIds": ["fuzz-host"]}, headers=guest, timeout=5
    ).json()
    requests.post(
        f"{base}/v1/conversations/{conversation['id']}/messages", json={"message": "hello"}, headers=guest, timeout=5
    ).raise_for_status()
    requests.post(
        f"{base}/v1/properties/1/conversations", json={"message": "Is it quiet?"}, headers=guest, timeout=5
    ).raise_for_status()


@pytest.fixture(scope="module")
def api_schema(server: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{server}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema").exclude(path=list(EXCLUDED_PATHS))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same examples every run: a failure reproduces
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_its_document(case: schemathesis.Case, server: str) -> None:
    for role in sorted(CALLERS):  # each generated request, as every kind of caller
        case.call_and_validate(base_url=server, headers=_headers(role), checks=CHECKS, timeout=10)
