"""HTTP plumbing shared by the API blueprints: authenticated blueprints and fast JSON responses."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

import orjson
from flask import Flask, Request, Response, current_app, g, request
from flask_openapi3 import APIBlueprint, Tag
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, UnsupportedMediaType

from messaging.api.auth import authenticate, current_principal
from messaging.api.health import record_request
from messaging.chat.resources import JSON_OPTIONS
from messaging.chat.users import Principal, ensure_user
from messaging.errors import Forbidden, NotFound, Unprocessable
from messaging.store.db import get_session
from messaging.store.ids import new_id

F = TypeVar("F", bound=Callable[..., Any])

BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# The API blueprints whose routes need a bearer token: name → the roles allowed (None: any role).
AUTHENTICATED_BLUEPRINTS: dict[str, frozenset[str] | None] = {}


class ApiRequest(Request):
    """The application's request class (``request_class``, app.py): its JSON body, once :func:`parse_json_body`
    has parsed it, is what ``get_json`` returns — to flask-openapi3's body validation and to the views."""

    parsed_body: dict[str, Any] | None = None

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        if cache and self.parsed_body is not None:
            return self.parsed_body
        return super().get_json(force=force, silent=silent, cache=cache)


def parse_json_body() -> None:
    """Parse a JSON body once (orjson) and hand it to the validators (:class:`ApiRequest`): malformed → 400,
    not an object → 422, an empty body counts as ``{}`` so missing fields are named."""
    if request.method not in BODY_METHODS or request.routing_exception is not None:
        return
    buffer_chunked_body()
    raw = request.get_data(cache=True)
    if not raw.strip():
        obj: Any = {}
    else:
        if not request.is_json:
            raise UnsupportedMediaType("Send the body as application/json.")
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"The body is not valid JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise Unprocessable(
                "The body must be a JSON object.", errors=[{"field": "body", "message": "must be a JSON object"}]
            )
    cast(ApiRequest, request).parsed_body = obj


def buffer_chunked_body() -> None:
    """Read a chunked request body whole before anything else reads it: 413 when it is larger than
    ``MAX_CONTENT_LENGTH`` (Werkzeug's own limit would cut it there and go on), 400 when it is malformed or ends
    early. The request then reads it from memory. A body of declared length is Werkzeug's to check: 413 beyond
    the limit, 400 when the client sends less than it declared."""
    environ = request.environ
    if request.content_length is not None or not environ.get("wsgi.input_terminated"):
        return
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    try:
        raw = environ["wsgi.input"].read(limit + 1)
    except OSError as exc:  # the server's chunked reader: a bad chunk, or the client went away
        raise BadRequest("The chunked body is malformed or ended early.") from exc
    if len(raw) > limit:
        raise RequestEntityTooLarge()
    environ["wsgi.input"] = io.BytesIO(raw)


# Every HTML page's headers unless its blueprint set its own (the admin pages' stricter policy). The policy is
# as tight as the API document's Swagger UI (/docs) allows: its scripts and styles come from this origin and
# inline, its images also as data: URLs, and it fetches the document from this origin.
HTML_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    # Not no-referrer: Flask-WTF checks an HTTPS form's Referer against the host (WTF_CSRF_SSL_STRICT).
    "Referrer-Policy": "same-origin",
}


def add_security_headers(response: Response) -> Response:
    """The application's one after-request hook for security headers: ``nosniff`` on every response, and
    :data:`HTML_SECURITY_HEADERS` on every ``text/html`` one (pages, redirects, error pages), each kept when the
    response already has it."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.mimetype == "text/html":
        for name, value in HTML_SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
    return response


def request_id(incoming: str) -> str:
    """The caller's ``X-Request-Id`` when it is short and printable, else a new id."""
    return incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else new_id()


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialise with orjson (datetimes as UTC ``Z``); pydantic models are dumped by alias."""
    if hasattr(payload, "model_dump"):
        payload = payload.model_dump(mode="python", by_alias=True)
    response = Response(orjson.dumps(payload, option=JSON_OPTIONS), status=status, content_type="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def no_content() -> Response:
    return Response(status=204)


def api_blueprint(
    name: str, import_name: str, tag: str, description: str = "", roles: frozenset[str] | None = None
) -> APIBlueprint:
    """An APIBlueprint under /v1 whose every route needs a valid bearer token (401 otherwise)
    and, when ``roles`` is given, one of those roles (403 otherwise).

    A user seen for the first time is created from the token's claims before the view runs.
    """
    bp = APIBlueprint(
        name,
        import_name,
        url_prefix="/v1",
        abp_tags=[Tag(name=tag, description=description)],
        abp_security=BEARER,
    )

    AUTHENTICATED_BLUEPRINTS[name] = roles
    return bp


VIEW_ROLES = "roles_of_this_view"


def only_roles(*roles: str) -> Callable[[F], F]:
    """Narrow a view of an API blueprint to ``roles`` (403 for the blueprint's other roles), checked with the
    blueprint's, before the body is read. Put it right under the route decorator."""

    def mark(view: F) -> F:
        setattr(view, VIEW_ROLES, frozenset(roles))
        return view

    return mark


def install_request_hooks(app: Flask) -> None:
    """The application's one ``before_request`` and one ``after_request`` hook (the admin pages' blueprint adds
    its own sign-in check). Which views skip the just-in-time user lookup (:func:`user_implied`) is read once
    here, after the blueprints are registered."""
    implied = frozenset(name for name, view in app.view_functions.items() if getattr(view, USER_IMPLIED, False))
    view_roles = {name: getattr(view, VIEW_ROLES) for name, view in app.view_functions.items()
                  if hasattr(view, VIEW_ROLES)}

    @app.before_request
    def _before_request() -> None:
        """Time the request, name it (``X-Request-Id``), refuse NUL in the URL; on an API blueprint authenticate
        the caller (401), check the blueprint's roles (403), create a new user from the token's claims; parse a
        JSON body. Authenticated blueprints parse after checking the token, so that an anonymous caller learns
        nothing from the body's shape (401 comes before 400/422); the admin pages read forms."""
        g.request_started = time.perf_counter()
        g.request_id = request_id(request.headers.get("X-Request-Id", ""))
        if request.method == "OPTIONS":  # a browser's preflight (messaging.api.cors): no token, no body
            return
        refuse_nul()
        blueprint = request.blueprint
        if blueprint in AUTHENTICATED_BLUEPRINTS:
            principal = authenticate()
            roles = view_roles.get(request.endpoint or "", AUTHENTICATED_BLUEPRINTS[blueprint])
            if roles is not None and principal.role not in roles:
                raise Forbidden(f"This call needs one of the roles: {', '.join(sorted(roles))}.")
            if request.endpoint not in implied:
                _ensure_current_user(principal)
        if blueprint != "admin_pages":
            parse_json_body()

    @app.after_request
    def _after_request(response: Response) -> Response:
        """Echo the request id, add the security headers, record the request's metrics."""
        if "request_id" in g:
            response.headers["X-Request-Id"] = g.request_id
        add_security_headers(response)
        record_request(response.status_code)
        return response


def refuse_nul() -> None:
    """PostgreSQL text cannot hold NUL: no id can contain one (404), no query parameter may (422)."""
    if "\x00" in request.path:
        raise NotFound("No such resource.")
    raw = request.query_string
    if b"%00" not in raw and b"\x00" not in raw:
        return
    bad = sorted({name for name, value in request.args.items(multi=True) if "\x00" in name + value})
    if bad:
        raise Unprocessable(
            "Query parameters must not contain NUL characters.",
            errors=[{"field": name.replace("\x00", ""), "message": "must not contain NUL"} for name in bad],
        )


def _ensure_current_user(principal: Principal) -> None:
    session = get_session()
    ensure_user(session, principal)
    if session.new or session.dirty or session.in_transaction():
        session.commit()


USER_IMPLIED = "user_implied_by_membership"


def user_implied(view: F) -> F:
    """For a view that succeeds only for a participant of what it names: the participation proves the caller's
    user exists (it references the user row) and was not deleted (deleting a user removes them from
    everything), so the just-in-time user lookup is skipped before it runs. On its way to a 404 — the caller
    may be new, or deleted — the lookup runs as it would have: a new user is created, a deleted user's token
    is 401. Put it right under the route decorator."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except NotFound:
            get_session().rollback()
            _ensure_current_user(current_principal())
            raise

    setattr(wrapper, USER_IMPLIED, True)
    return cast(F, wrapper)
