"""One error shape (SPEC §2): problem details for every failure, the request id, and the
health, readiness and metrics endpoints."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Response, request
from pydantic import Field

from app import create_app
from messaging.api.http import ApiRequest, parse_json_body
from messaging.config import load_settings
from messaging.schemas import ApiModel
from messaging.store.db import get_engine
from tests.conftest import redis_url
from tests.conftest import test_config as app_config

UNREACHABLE_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/x"
UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/problem+json"
    body = response.get_json(force=True)
    for member in ("type", "title", "status", "detail"):
        assert member in body, f"problem without {member}: {body}"
    assert body["status"] == status
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body  # type: ignore[no-any-return]


@pytest.fixture
def make_app(app: Any, database_url: str) -> Iterator[Callable[..., Any]]:
    """Another app with some settings changed (``app`` wipes the shared database after the test)."""
    made: list[Any] = []

    def make(**settings: Any) -> Any:
        other = create_app(app_config(settings.pop("DATABASE_URL", database_url), **settings))
        made.append(other)
        return other

    yield make
    for other in made:
        with other.app_context():
            get_engine().dispose()


class EchoIn(ApiModel):
    message: str = Field(min_length=1, max_length=100)
    count: int = 1


class BoomError(RuntimeError):
    pass


@pytest.fixture
def echo_client(make_app: Callable[..., Any]) -> Any:
    """An app with throwaway routes: one validating a JSON body, one that fails."""
    app = make_app()

    @app.post("/echo")
    def echo(body: EchoIn) -> Response:
        return Response(body.model_dump_json(by_alias=True), content_type="application/json")

    @app.get("/boom")
    def boom() -> Response:
        raise BoomError("secret internals: password=hunter2")

    return app.test_client()


# --- health -------------------------------------------------------------------------------------


def test_healthz_is_ok(client: Any) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json == {"status": "ok"}


def test_readyz_is_ok_when_database_and_broker_answer(make_app: Callable[..., Any]) -> None:
    r = make_app(REDIS_URL=redis_url()).test_client().get("/readyz")
    assert r.status_code == 200, r.json
    assert r.json["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_names_the_database_when_it_is_unreachable(make_app: Callable[..., Any]) -> None:
    r = make_app(DATABASE_URL=UNREACHABLE_DATABASE, REDIS_URL=redis_url()).test_client().get("/readyz")
    body = assert_problem(r, 503)
    assert "database" in body["detail"] and "broker" not in body["detail"]
    assert body["checks"]["database"].startswith("failed")
    assert body["checks"]["broker"] == "ok"


def test_readyz_names_the_broker_when_it_is_unreachable(make_app: Callable[..., Any]) -> None:
    r = make_app(REDIS_URL=UNREACHABLE_BROKER).test_client().get("/readyz")
    body = assert_problem(r, 503)
    assert "broker" in body["detail"] and "database" not in body["detail"]
    assert body["checks"]["broker"].startswith("failed")
    assert body["checks"]["database"] == "ok"


METRICS_TOKEN = "scrape-token-0123456789"


def test_metrics_are_prometheus_text_counting_requests(
    app: Any, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "METRICS_TOKEN", METRICS_TOKEN)
    client.get("/healthz")
    r = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert r.status_code == 200
    assert r.mimetype == "text/plain"
    text = r.get_data(as_text=True)
    assert "# TYPE http_requests_total counter" in text
    assert 'http_requests_total{endpoint="/healthz",method="GET",status="200"}' in text
    assert "http_request_duration_seconds_bucket" in text


@pytest.mark.parametrize("app_env", ["development", "production"])
def test_metrics_with_a_token_set_need_that_bearer_token(
    app: Any, client: Any, monkeypatch: pytest.MonkeyPatch, app_env: str
) -> None:
    monkeypatch.setitem(app.config, "METRICS_TOKEN", METRICS_TOKEN)
    monkeypatch.setitem(app.config, "APP_ENV", app_env)
    assert client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {METRICS_TOKEN}x"},
                    {"Authorization": f"Basic {METRICS_TOKEN}"}, {"Authorization": "Bearer pär"}):
        r = client.get("/metrics", headers=headers)
        assert_problem(r, 401)
        assert r.headers["WWW-Authenticate"].startswith("Bearer"), headers
        assert "http_requests_total" not in r.get_data(as_text=True)


def test_metrics_without_a_token_set_are_open_only_outside_production(
    app: Any, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "METRICS_TOKEN", None)
    monkeypatch.setitem(app.config, "APP_ENV", "development")
    assert client.get("/metrics").status_code == 200
    monkeypatch.setitem(app.config, "APP_ENV", "production")
    for headers in ({}, {"Authorization": "Bearer anything"}):
        assert_problem(client.get("/metrics", headers=headers), 404)


def test_the_metrics_token_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METRICS_TOKEN", METRICS_TOKEN)
    assert load_settings()["METRICS_TOKEN"] == METRICS_TOKEN
    monkeypatch.setenv("METRICS_TOKEN", "")
    assert load_settings()["METRICS_TOKEN"] is None


# --- problem details ------------------------------------------------------------------------------


def test_an_unknown_route_is_a_404_problem(client: Any) -> None:
    assert_problem(client.get("/v1/no-such-thing"), 404)
    assert_problem(client.get("/nowhere"), 404)


def test_a_wrong_method_is_a_405_problem_with_allow(client: Any) -> None:
    r = client.delete("/healthz")
    assert_problem(r, 405)
    allowed = {m.strip() for m in r.headers["Allow"].split(",")}
    assert "GET" in allowed and "DELETE" not in allowed


def test_a_malformed_json_body_is_a_400_problem(echo_client: Any) -> None:
    r = echo_client.post("/echo", data='{"message": "hi",', content_type="application/json")
    assert_problem(r, 400)


def test_a_malformed_json_body_on_an_api_route_is_a_400_problem(client: Any, auth: Callable[..., Any]) -> None:
    r = client.post(
        "/v1/conversations", data="{participantIds: [}", content_type="application/json", headers=auth("u1")
    )
    assert_problem(r, 400)


def test_a_body_over_the_size_limit_is_a_413_problem(echo_client: Any) -> None:
    limit = echo_client.application.config["MAX_CONTENT_LENGTH"]
    body = '{"message": "' + "x" * limit + '"}'
    r = echo_client.post("/echo", data=body, content_type="application/json")
    problem = assert_problem(r, 413)
    assert str(limit) in problem["detail"]


def test_a_body_just_under_the_limit_reaches_validation(echo_client: Any) -> None:
    limit = echo_client.application.config["MAX_CONTENT_LENGTH"]
    body = '{"message": "' + "x" * (limit - 20) + '"}'
    assert len(body) <= limit
    # Too long for the model, but not for the transport: 422, not 413.
    assert_problem(echo_client.post("/echo", data=body, content_type="application/json"), 422)


@pytest.mark.parametrize("body", ["[]", '[{"message": "hi"}]', '"hi"', "42", "null"])
def test_a_json_body_that_is_not_an_object_is_a_422_problem(echo_client: Any, body: str) -> None:
    r = echo_client.post("/echo", data=body, content_type="application/json")
    problem = assert_problem(r, 422)
    assert problem["errors"] == [{"field": "body", "message": "must be a JSON object"}]


def test_an_unknown_json_field_is_a_422_problem_naming_it(echo_client: Any) -> None:
    r = echo_client.post("/echo", json={"message": "hi", "colour": "blue"})
    problem = assert_problem(r, 422)
    assert problem["errors"], problem
    assert all(set(e) == {"field", "message"} for e in problem["errors"])
    assert [e["field"] for e in problem["errors"]] == ["colour"]


def test_an_unknown_json_field_on_an_api_route_is_a_422_problem(client: Any, auth: Callable[..., Any]) -> None:
    r = client.post("/v1/conversations", json={"participantIds": ["u2"], "colour": "blue"}, headers=auth("u1"))
    problem = assert_problem(r, 422)
    assert [e["field"] for e in problem["errors"]] == ["colour"]


def test_invalid_fields_are_a_422_problem_naming_each(echo_client: Any) -> None:
    r = echo_client.post("/echo", json={"message": "", "count": "many"})
    problem = assert_problem(r, 422)
    assert sorted(e["field"] for e in problem["errors"]) == ["count", "message"]


def test_a_valid_body_passes(echo_client: Any) -> None:
    r = echo_client.post("/echo", json={"message": "hi"})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.json == {"message": "hi", "count": 1}


def test_an_empty_body_is_validated_as_an_empty_object(echo_client: Any) -> None:
    r = echo_client.post("/echo", data=b"", content_type="application/json")
    problem = assert_problem(r, 422)
    assert [e["field"] for e in problem["errors"]] == ["message"]


@pytest.mark.parametrize(("raw", "parsed"), [(b"", {}), (b'{"message": "hi"}', {"message": "hi"})])
def test_the_body_is_parsed_once_and_read_as_parsed(echo_client: Any, raw: bytes, parsed: dict[str, Any]) -> None:
    """What parse_json_body parsed is what get_json gives flask-openapi3's validators and the views (ApiRequest)."""
    app = echo_client.application
    with app.test_request_context("/echo", method="POST", data=raw, content_type="application/json"):
        assert isinstance(request, ApiRequest)  # the proxy answers for the application's request object
        parse_json_body()
        body = request.get_json()
        assert body == parsed and request.get_json(silent=True) is body and request.get_json(force=True) is body


@pytest.mark.expect_errors(r"^unhandled error request_id=req-boom-1 GET /boom$")
def test_an_exception_in_a_view_is_a_generic_500_logged_with_the_request_id(
    echo_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    r = echo_client.get("/boom", headers={"X-Request-Id": "req-boom-1"})
    problem = assert_problem(r, 500)
    assert problem["requestId"] == "req-boom-1"
    assert r.headers["X-Request-Id"] == "req-boom-1"
    assert "hunter2" not in r.get_data(as_text=True) and "BoomError" not in r.get_data(as_text=True)
    logged = [rec for rec in caplog.records if rec.exc_info and rec.exc_info[0] is BoomError]
    assert len(logged) == 1
    assert "req-boom-1" in logged[0].getMessage()


def test_the_request_id_is_echoed(client: Any) -> None:
    r = client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert r.headers["X-Request-Id"] == "abc-123"


def test_a_request_id_is_made_when_none_or_an_unusable_one_is_sent(client: Any) -> None:
    first = client.get("/healthz").headers["X-Request-Id"]
    second = client.get("/healthz").headers["X-Request-Id"]
    assert len(first) == 21 and first != second
    too_long = client.get("/healthz", headers={"X-Request-Id": "x" * 65}).headers["X-Request-Id"]
    assert too_long != "x" * 65 and len(too_long) == 21


def test_problems_carry_the_request_id(client: Any) -> None:
    r = client.get("/v1/me", headers={"X-Request-Id": "req-401"})
    problem = assert_problem(r, 401)
    assert problem["requestId"] == "req-401"
    assert r.headers["X-Request-Id"] == "req-401"
