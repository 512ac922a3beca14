"""Cross-origin calls (messaging.api.cors): preflights and responses for /v1 from the configured origins only,
nothing for any other origin or path, and nothing at all when no origin is configured."""

from __future__ import annotations

from typing import Any

import pytest

from app import create_app
from messaging.api.cors import origin_patterns
from tests import conftest

ALLOWED = "http://app.example:8899"
STRANGER = "http://evil.example:8899"


@pytest.fixture(scope="module")
def cors_app(pg_url: str) -> Any:
    return create_app(conftest.test_config(pg_url, CORS_ORIGINS=[ALLOWED, "http://localhost:*"]))


@pytest.fixture
def cors_client(cors_app: Any) -> Any:
    yield cors_app.test_client()
    conftest._wipe(cors_app)


def _preflight(client: Any, path: str, origin: str, method: str = "POST",
               headers: str = "authorization, content-type, idempotency-key") -> Any:
    return client.options(path, headers={
        "Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers,
    })


def test_a_preflight_from_an_allowed_origin_names_what_the_client_may_send(cors_client: Any) -> None:
    answer = _preflight(cors_client, "/v1/conversations/c1/messages", ALLOWED)
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == ALLOWED
    methods = {m.strip() for m in answer.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "PATCH", "DELETE", "PUT"} <= methods
    allowed = {h.strip().lower() for h in answer.headers["Access-Control-Allow-Headers"].split(",")}
    assert allowed == {"authorization", "content-type", "idempotency-key"}
    assert answer.headers["Access-Control-Max-Age"] == "7200"
    assert "Access-Control-Allow-Credentials" not in answer.headers  # bearer tokens, never cookies
    assert "Origin" in answer.headers.get("Vary", "")
    # EventSource's reconnection sends Last-Event-ID, which needs a preflight of the stream.
    stream = _preflight(cors_client, "/v1/stream", ALLOWED, method="GET", headers="last-event-id")
    assert stream.status_code == 200 and stream.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert stream.headers["Access-Control-Allow-Headers"].lower() == "last-event-id"


def test_answers_to_an_allowed_origin_expose_the_headers_clients_read(cors_client: Any, auth: Any) -> None:
    me = cors_client.get("/v1/me", headers={**auth("ana"), "Origin": ALLOWED})
    assert me.status_code == 200 and me.headers["Access-Control-Allow-Origin"] == ALLOWED
    exposed = {h.strip() for h in me.headers["Access-Control-Expose-Headers"].split(",")}
    assert exposed == {"X-Request-Id", "Retry-After", "Idempotent-Replayed", "Location"}
    # Problem details too, so that the page can show why a call failed.
    refused = cors_client.get("/v1/me", headers={"Origin": ALLOWED})
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == ALLOWED
    missing = cors_client.get("/v1/conversations/nope/messages", headers={**auth("ana"), "Origin": ALLOWED})
    assert missing.status_code == 404 and missing.headers["Access-Control-Allow-Origin"] == ALLOWED


def test_a_port_wildcard_allows_any_port_of_that_scheme_and_host_only(cors_client: Any, auth: Any) -> None:
    for origin in ("http://localhost:3000", "http://localhost:8001"):
        answer = cors_client.get("/v1/me", headers={**auth("ana"), "Origin": origin})
        assert answer.headers["Access-Control-Allow-Origin"] == origin
    for origin in ("https://localhost:3000", "http://localhost.evil.example:80", "http://localhost:80/x",
                   "http://localhost", "http://app.example:8898", "http://app.example:88990"):
        answer = cors_client.get("/v1/me", headers={**auth("ana"), "Origin": origin})
        assert answer.status_code == 200
        assert "Access-Control-Allow-Origin" not in answer.headers, origin


def test_other_origins_get_no_cors_headers(cors_client: Any, auth: Any) -> None:
    preflight = _preflight(cors_client, "/v1/me", STRANGER, method="GET", headers="authorization")
    assert not [h for h in preflight.headers.keys() if h.startswith("Access-Control-")]
    answer = cors_client.get("/v1/me", headers={**auth("ana"), "Origin": STRANGER})
    assert answer.status_code == 200
    assert not [h for h in answer.headers.keys() if h.startswith("Access-Control-")]


@pytest.mark.parametrize("path", ["/admin/login", "/admin/transcripts", "/metrics", "/healthz", "/readyz",
                                  "/openapi.json", "/docs/swagger"])
def test_admin_pages_metrics_and_health_never_answer_cross_origin(cors_client: Any, path: str) -> None:
    for answer in (cors_client.get(path, headers={"Origin": ALLOWED}),
                   _preflight(cors_client, path, ALLOWED, method="GET", headers="authorization")):
        assert not [h for h in answer.headers.keys() if h.startswith("Access-Control-")], (path, answer.status_code)


def test_without_configured_origins_no_origin_is_allowed(client: Any, auth: Any) -> None:
    preflight = _preflight(client, "/v1/me", ALLOWED, method="GET", headers="authorization")
    answer = client.get("/v1/me", headers={**auth("ana"), "Origin": ALLOWED})
    for response in (preflight, answer):
        assert not [h for h in response.headers.keys() if h.startswith("Access-Control-")]


def test_origin_patterns_read_only_a_port_wildcard() -> None:
    exact, wildcard = origin_patterns(["https://app.example/", "http://127.0.0.1:*"])
    assert exact == "https://app.example"
    assert not isinstance(wildcard, str)
    assert wildcard.match("http://127.0.0.1:5055") and not wildcard.match("http://127.0.0.1:5055.evil")
    assert not wildcard.match("http://127.0.0.10:80")
