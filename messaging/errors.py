"""One error shape: every failure leaves the service as RFC 9457 problem details."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from flask import Flask, Response, g, request
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout  # no connection free in the pool in time
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "https://concierge.invalid/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"


class ProblemError(Exception):
    """A domain error with an HTTP status; raised by services, rendered by the one handler below."""

    status = 400
    title = "Bad request"
    slug = "bad-request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Iterable[Mapping[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        status: int | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = list(errors) if errors else None
        self.headers = dict(headers or {})
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title


class Unauthorized(ProblemError):
    status, title, slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str = "A valid bearer token is required.") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="concierge"'})


class Forbidden(ProblemError):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(ProblemError):
    status, title, slug = 404, "Not found", "not-found"


class Conflict(ProblemError):
    status, title, slug = 409, "Conflict", "conflict"


class Unprocessable(ProblemError):
    status, title, slug = 422, "Validation failed", "validation"


class ServiceUnavailable(ProblemError):
    status, title, slug = 503, "Service unavailable", "unavailable"


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str | None = None,
    errors: Sequence[Mapping[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> Response:
    body = problem_document(status, title, detail, slug=slug, request_id=g.get("request_id"))
    if errors:
        body["errors"] = list(errors)
    if extensions:
        body.update({k: v for k, v in extensions.items() if k not in body})
    response = Response(orjson.dumps(body), status=status, content_type=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def problem_document(
    status: int, title: str, detail: str, *, slug: str | None = None, request_id: str | None = None
) -> dict[str, Any]:
    """The problem details object (RFC 9457) itself, for a response made outside a request context too."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + (slug or str(status)),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if request_id:
        body["requestId"] = request_id
    return body


def validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        field = ".".join(str(p) for p in err["loc"]) or "body"
        out.append({"field": field, "message": err["msg"]})
    return out


def validation_problem(exc: ValidationError) -> Response:
    """flask-openapi3's validation callback: request models failing → 422 problem details."""
    errors = validation_errors(exc)
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return problem_response(422, "Validation failed", detail, slug="validation", errors=errors)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ProblemError)
    def _problem(exc: ProblemError) -> Response:
        return problem_response(
            exc.status, exc.title, exc.detail, slug=exc.slug, errors=exc.errors, headers=exc.headers
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        # flask-openapi3 aborts with a finished response (our validation_problem): pass it on.
        if exc.response is not None:
            return exc.response  # type: ignore[return-value]
        status = exc.code or 500
        headers: dict[str, str] = {}
        if status == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
            headers["Allow"] = ", ".join(exc.valid_methods)
        detail = exc.description or exc.name
        if status == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            detail = f"The request body is larger than the limit of {limit} bytes."
        return problem_response(status, exc.name, str(detail), headers=headers)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError) -> Response:
        return validation_problem(exc)

    @app.errorhandler(IntegrityError)
    def _integrity(exc: IntegrityError) -> Response:
        log.warning("integrity error request_id=%s: %s", g.get("request_id"), exc.orig)
        return problem_response(409, "Conflict", "The request conflicts with the current state.", slug="conflict")

    # A database that is down, slow or stuck is an operational condition the 503 tells the client about, not a
    # fault in the service: a warning, not an error.
    @app.errorhandler(OperationalError)
    def _db_down(exc: DBAPIError) -> Response:
        log.warning("database unavailable request_id=%s: %s", g.get("request_id"), exc.orig)
        return problem_response(
            503, "Service unavailable", "The database is unavailable; try again shortly.",
            slug="unavailable", headers={"Retry-After": "1"},
        )

    @app.errorhandler(PoolTimeout)
    def _pool_exhausted(exc: PoolTimeout) -> Response:
        log.warning("no database connection free request_id=%s: %s", g.get("request_id"), exc)
        return problem_response(
            503, "Service unavailable", "The service is busy; try again shortly.",
            slug="unavailable", headers={"Retry-After": "1"},
        )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error request_id=%s %s %s", g.get("request_id"), request.method, request.path)
        return problem_response(
            500, "Internal server error", "Something went wrong on our side; it has been logged.", slug="internal"
        )
