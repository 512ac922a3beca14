"""The admin pages under ``/admin/`` (SPEC §7): server-rendered HTML over the same functions as the admin API.

- **Sign-in** by pasting an admin token. It is verified like any bearer token and kept in an HttpOnly,
  SameSite=Strict cookie scoped to ``/admin`` (``Secure`` when the request came over HTTPS, or always with
  ``ADMIN_COOKIE_SECURE=1``), expiring with the token. Every page verifies it again, so an expired or
  revoked token signs the admin out.
- **CSRF**: every form carries Flask-WTF's token (kept in the signed session cookie, also HttpOnly,
  SameSite=Strict, and ``Secure`` when the token cookie is);
  a POST without a valid one is refused with 400 and changes nothing.
- **Escaping**: Jinja's autoescaping renders everything users wrote as text, and the pages send a
  Content-Security-Policy without any script source, so markup that got through would still not run.
- No JavaScript: filters are GET forms, actions are POST forms answered with a redirect (303).
- **Abuse limits**: a reply spends the signed-in admin's ``messages`` budget, shared with the admin API
  (:mod:`messaging.api.limits`); once it is spent the reply is refused with the error page (429, ``Retry-After``)
  and nothing is written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
from typing import Any
from urllib.parse import urlencode

import jwt
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask.wrappers import Request
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from concierge import review as admin
from concierge.api.admin import export_body
from concierge.notifications import EVENT_TYPES
from messaging.api.auth import decode_token
from messaging.chat.pagination import decode_cursor
from messaging.chat.users import Principal, ensure_user
from messaging.errors import ProblemError
from messaging.store.db import get_session
from messaging.store.models import User

log = logging.getLogger(__name__)

bp = Blueprint("admin_pages", __name__, url_prefix="/admin", template_folder="templates", static_folder="static")
csrf = CSRFProtect()

TOKEN_COOKIE = "concierge_admin_token"
PAGE_SIZE = 25
MAX_TOKEN_LENGTH = 8192
EVENT_STATUSES = ("pending", "processing", "processed", "failed", "skipped")
# The pages' own headers, stricter than every HTML page's (messaging.api.http.HTML_SECURITY_HEADERS, which adds the
# rest): no script at all, and nothing kept in caches.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
}


class AdminOnlySessions(SecureCookieSessionInterface):
    """Flask's signed-cookie session, opened only under ``/admin``: the API never reads or signs one. Its
    cookie is ``Secure`` as the token cookie is (:func:`_secure_cookies`), decided per request, which the static
    ``SESSION_COOKIE_SECURE`` cannot do."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.path.startswith("/admin"):
            return self.make_null_session(app)
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        return super().get_cookie_secure(app) or _secure_cookies()


def _secure_cookies() -> bool:
    """Whether the cookies the pages set are ``Secure``: on an HTTPS request, and always with
    ``ADMIN_COOKIE_SECURE=1`` (TLS ending at a proxy that does not say so)."""
    return request.is_secure or bool(current_app.config.get("ADMIN_COOKIE_SECURE"))


def init_admin_pages(app: Flask) -> None:
    """Session/CSRF settings, then the blueprint. The session cookie only ever travels to ``/admin``."""
    app.session_interface = AdminOnlySessions()
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _default_secret_key(app.config)
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)  # the API uses tokens, not cookies: pages only
    app.config.update(
        SESSION_COOKIE_NAME="concierge_admin_session",
        SESSION_COOKIE_PATH="/admin",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
    )
    csrf.init_app(app)
    app.register_blueprint(bp)


def _default_secret_key(config: dict[str, Any]) -> str:
    """Without SECRET_KEY: derived from JWT_SECRET (stable across processes, never the secret itself);
    with only a public key there is nothing secret to derive from, so a random key is made, which
    holds for one process only."""
    if config.get("JWT_SECRET"):
        return hmac.new(config["JWT_SECRET"].encode(), b"concierge admin pages", hashlib.sha256).hexdigest()
    if config.get("APP_ENV") == "production":
        raise RuntimeError("SECRET_KEY must be set when APP_ENV=production and tokens are verified by a public key")
    log.warning("SECRET_KEY is not set: admin sessions hold for this process only")
    return secrets.token_hex(32)


# --- who is signed in -----------------------------------------------------------------------------------------


def _cookie_principal() -> Principal | None:
    token = request.cookies.get(TOKEN_COOKIE)
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        principal = decode_token(token, current_app.config)
    except ProblemError:
        return None
    return principal if principal.is_admin else None


@bp.before_request
def _guard() -> BaseResponse | None:
    if request.method == "POST":
        csrf.protect()
    g.admin = _cookie_principal()
    if g.admin is not None:
        g.principal = g.admin  # the request's caller, as the API's is: the abuse limits key on it (user:<id>)
        db = get_session()
        ensure_user(db, g.admin)
        if db.new or db.dirty or db.in_transaction():
            db.commit()
    if request.endpoint in ("admin_pages.login", "admin_pages.static") or g.admin is not None:
        return None
    if request.method == "GET":
        return redirect(url_for("admin_pages.login", next=request.full_path.rstrip("?")), 303)
    return redirect(url_for("admin_pages.login"), 303)


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


@bp.errorhandler(CSRFError)
def _csrf_error(exc: CSRFError) -> tuple[str, int]:
    return render_template("admin/error.html", title="Form expired",
                           detail="The form was missing its security token or it had expired. Go back, reload "
                           "the page and try again.", status=400), 400


@bp.errorhandler(ProblemError)
def _problem(exc: ProblemError) -> tuple[str, int, dict[str, str]]:
    """The error's page, with its status and headers (a refused reply's 429 keeps its ``Retry-After``)."""
    page = render_template("admin/error.html", title=exc.title, detail=exc.detail, status=exc.status)
    return page, exc.status, exc.headers


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException) -> tuple[str, int]:
    status = exc.code or 500
    return render_template("admin/error.html", title=exc.name, detail=exc.description, status=status), status


def _safe_next(target: str | None, default: str = "admin_pages.transcripts") -> str:
    """Only a path under /admin/ is a place to go back to (no open redirect)."""
    if target and target.startswith("/admin/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for(default)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    next_url = _safe_next(request.values.get("next"))
    if request.method == "GET":
        if g.admin is not None:
            return redirect(next_url, 303)
        return render_template("admin/login.html", next=next_url, error=None)
    token = (request.form.get("token") or "").strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    error, status = None, 200
    principal: Principal | None = None
    if not token or len(token) > MAX_TOKEN_LENGTH:
        error, status = "Paste an admin token.", 400
    else:
        try:
            principal = decode_token(token, current_app.config)
        except ProblemError as exc:
            error, status = f"That token was refused: {exc.detail}", 401
        else:
            if not principal.is_admin:
                error, status = "That token is valid but not an admin's.", 403
    if error is not None or principal is None:
        return render_template("admin/login.html", next=next_url, error=error), status
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    response = redirect(next_url, 303)
    response.set_cookie(
        TOKEN_COOKIE, token, expires=int(expires), path="/admin", httponly=True, samesite="Strict",
        secure=_secure_cookies(),
    )
    session.clear()  # a fresh session (and CSRF token) for the signed-in admin
    return response


@bp.post("/logout")
def logout() -> BaseResponse:
    response = redirect(url_for("admin_pages.login"), 303)
    response.delete_cookie(TOKEN_COOKIE, path="/admin", httponly=True, samesite="Strict", secure=_secure_cookies())
    session.clear()
    return response


@bp.get("/")
def index() -> BaseResponse:
    return redirect(url_for("admin_pages.transcripts"), 303)


# --- transcripts ------------------------------------------------------------------------------------------------


def _day(value: str, field: str, errors: list[str], end: bool = False) -> dt.datetime | None:
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        errors.append(f"{field}: not a date (YYYY-MM-DD)")
        return None
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start + dt.timedelta(days=1) if end else start


def _text(name: str, max_length: int, errors: list[str]) -> str | None:
    value = request.args.get(name, "").strip()
    if len(value) > max_length:
        errors.append(f"{name}: at most {max_length} characters")
        return None
    return value or None


def _page_links(next_cursor: str | None, first_page: bool) -> dict[str, Any]:
    """Links to the newest page and the next older one, keeping the filters (admin/_pages.html)."""
    kept = {k: v for k, v in request.args.items() if k != "before" and v}
    older = f"?{urlencode({**kept, 'before': next_cursor})}" if next_cursor else None
    return {"older": older, "newest": f"?{urlencode(kept)}", "first_page": first_page}


def _cursor(errors: list[str]) -> Any:
    raw = request.args.get("before", "")
    if not raw:
        return None
    try:
        return decode_cursor(raw)
    except ProblemError:
        errors.append("before: not a page cursor")
        return None


@bp.get("/transcripts")
def transcripts() -> tuple[str, int]:
    errors: list[str] = []
    needs = request.args.get("needsHuman", "")
    filters = admin.TranscriptFilters(
        user_id=_text("userId", 255, errors),
        event_type=_text("eventType", 64, errors),
        since=_day(request.args.get("from", ""), "from", errors),
        until=_day(request.args.get("to", ""), "to", errors, end=True),
        needs_human={"yes": True, "no": False}.get(needs),
        q=_text("q", 200, errors),
    )
    before = _cursor(errors)
    items: list[dict[str, Any]] = []
    next_cursor = None
    if not errors:
        items, next_cursor = admin.list_transcripts(get_session(), filters, PAGE_SIZE, before)
    return render_template(
        "admin/transcripts.html", items=items, errors=errors, args=request.args, event_types=sorted(EVENT_TYPES),
        **_page_links(next_cursor, before is None),
    ), 400 if errors else 200


def _names(messages: list[dict[str, Any]], conversation: dict[str, Any]) -> dict[str, str]:
    names = {p["userId"]: p.get("name") or p["userId"] for p in conversation.get("participants", [])}
    missing = {m["userId"] for m in messages if m["userId"] and m["userId"] not in names}
    if missing:
        for user_id, name in get_session().execute(select(User.id, User.name).where(User.id.in_(missing))).all():
            names[user_id] = name or user_id
    return names


@bp.get("/transcripts/<conversation_id>")
def transcript(conversation_id: str) -> str:
    body = admin.transcript(get_session(), conversation_id[:64])
    for message in body["messages"]:
        origin = message.get("origin")
        if origin and origin.get("payload") is not None:
            origin["payloadText"] = json.dumps(origin["payload"], indent=2, ensure_ascii=False, sort_keys=True)
    return render_template(
        "admin/transcript.html", t=body, conversation_id=conversation_id,
        names=_names(body["messages"], body["conversation"]),
    )


@bp.get("/transcripts/<conversation_id>/export")
def export(conversation_id: str) -> Response:
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "csv"):
        fmt = "json"
    content_type, headers, body = export_body(get_session(), conversation_id[:64], fmt)
    return Response(stream_with_context(body), content_type=content_type, headers=headers)


def _act(action: Any, done: str, back: str) -> BaseResponse:
    """Run an action and commit; a refusal the admin can fix (409, 422) comes back as a message on the page."""
    db = get_session()
    try:
        action(db)
        db.commit()
        flash(done)
    except ProblemError as exc:
        db.rollback()
        if exc.status not in (409, 422):
            raise
        flash(exc.detail or exc.title, "error")
    return redirect(back, 303)


def _transcript_url(conversation_id: str) -> str:
    return url_for("admin_pages.transcript", conversation_id=conversation_id)


@bp.post("/transcripts/<conversation_id>/takeover")
def take_over(conversation_id: str) -> BaseResponse:
    return _act(lambda db: admin.take_over(db, conversation_id[:64]),
                "You have taken this conversation over: the concierge stays quiet here until you hand it back.",
                _transcript_url(conversation_id))


@bp.post("/transcripts/<conversation_id>/handback")
def hand_back(conversation_id: str) -> BaseResponse:
    return _act(lambda db: admin.hand_back(db, conversation_id[:64]),
                "Handed back: the concierge answers here again.", _transcript_url(conversation_id))


@bp.post("/transcripts/<conversation_id>/reply")
def reply(conversation_id: str) -> BaseResponse:
    text = request.form.get("message", "")[:20_000]
    return _act(lambda db: admin.reply_as_human(db, conversation_id[:64], g.admin.user_id, text),
                "Reply sent.", _transcript_url(conversation_id))


# --- events -----------------------------------------------------------------------------------------------------


@bp.get("/events")
def events() -> tuple[str, int]:
    errors: list[str] = []
    status = request.args.get("status") or None
    if status is not None and status not in EVENT_STATUSES:
        errors.append(f"status: one of {', '.join(EVENT_STATUSES)}")
    event_type = _text("type", 64, errors)
    before = _cursor(errors)
    items: list[dict[str, Any]] = []
    next_cursor = None
    if not errors:
        items, next_cursor = admin.list_events(get_session(), status, event_type, PAGE_SIZE, before)
    return render_template(
        "admin/events.html", items=items, errors=errors, args=request.args, statuses=EVENT_STATUSES,
        event_types=sorted(EVENT_TYPES), **_page_links(next_cursor, before is None),
    ), 400 if errors else 200


@bp.post("/events/<event_id>/retry")
def retry(event_id: str) -> BaseResponse:
    return _act(lambda db: admin.retry_event(db, event_id[:255]), f"Event {event_id} goes back to the worker.",
                _safe_next(request.form.get("next"), "admin_pages.events"))
