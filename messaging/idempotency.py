"""`Idempotency-Key` on creating POSTs (SPEC §2): the first response is replayed, nothing is created twice.

Put ``@idempotent`` under the route decorator (``@bp.post(...)`` then ``@idempotent``). Without the
header the view runs as usual. With it, the (caller, key) pair is claimed in ``idempotency_keys``
before the view runs:

* a completed claim with the same request (method, path and raw body) → its status and body are
  replayed with ``Idempotent-Replayed: true``, and the view does not run;
* the same key with a different request → 422;
* a claim still in progress (a concurrent duplicate, or a request being served right now) → 409.

The claim is inserted and committed in its own short transaction, on a session of its own, so a
concurrent duplicate sees it at once; of two concurrent inserts exactly one wins (``ON CONFLICT DO
NOTHING`` on the primary key) and the other answers 409. After the view returns a status below 500,
that status and body are stored on the claim. When the view raises or answers 5xx nothing was created
(the view commits last), so the claim is deleted and a retry with the same key runs the view again.

Claims live 24 hours: an older one is treated as absent and overwritten, and
``purge_expired_idempotency_keys`` (for a periodic task) deletes them using the ``created_at`` index.

Residual window, accepted: if the process dies between the view's commit and storing its response,
the claim stays "in progress" — retries with that key get 409 until it expires, 24 hours later — but
nothing is ever created twice. Closing it would need the response stored in the view's own transaction.

Replays carry the stored status and body only (``application/json``, or ``application/problem+json``
for 4xx); other headers of the first response are not kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Response, current_app, request
from pydantic import ConfigDict, Field
from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from messaging.auth import current_principal
from messaging.db import get_session, utcnow
from messaging.errors import Conflict, Unprocessable
from messaging.models import IdempotencyKey
from messaging.schemas import CachedSchemaModel

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_TTL = dt.timedelta(hours=24)
MAX_KEY_LENGTH = 255
_CLAIM_ATTEMPTS = 3
RETRY_SOON = {"Retry-After": "1"}

F = TypeVar("F", bound=Callable[..., Any])


class IdempotencyHeader(CachedSchemaModel):
    """Documents the header in the OpenAPI document (and validates it) for views that declare no header model."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    idempotency_key: str | None = Field(
        None,
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        pattern=r"^[\x20-\x7e]+$",
        description="Retrying with the same key within 24 h replays the first response and creates nothing new.",
    )


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        # Length-prefixed so that no two different requests hash the same parts.
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def purge_expired_idempotency_keys(session: Session, now: dt.datetime) -> int:
    """Delete claims older than 24 h; returns how many. The caller commits."""
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < now - KEY_TTL))
    return int(result.rowcount)  # type: ignore[attr-defined]


def idempotent(view: F) -> F:
    """Make a creating POST view honour ``Idempotency-Key`` (see the module docstring)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if documents_header:
            kwargs.pop("header", None)
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        _check_key(key)
        owner = current_principal().user_id
        fingerprint = request_fingerprint(request.method, request.path, request.get_data(cache=True))

        stored = _claim(owner, key, fingerprint)
        if stored is not None:
            return _answer_from(stored, fingerprint)

        try:
            response = current_app.make_response(view(*args, **kwargs))
        except BaseException:
            _abandon_view_transaction()
            _release(owner, key, fingerprint)
            raise
        if response.status_code >= 500:
            _abandon_view_transaction()
            _release(owner, key, fingerprint)
        else:
            _store(owner, key, fingerprint, response)
        return response

    # Add the header to the OpenAPI document unless the view declares its own header model.
    documents_header = "header" not in view.__annotations__
    if documents_header:
        wrapper.__annotations__ = {**view.__annotations__, "header": IdempotencyHeader}
    return cast(F, wrapper)


def _check_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all(" " <= ch <= "~" for ch in key):
        raise Unprocessable(
            f"The {HEADER} header must be 1–{MAX_KEY_LENGTH} printable ASCII characters.",
            errors=[{"field": HEADER, "message": f"must be 1–{MAX_KEY_LENGTH} printable ASCII characters"}],
        )


def _new_session() -> Session:
    # Not the request's session: the claim must be committed on its own, before the view runs.
    return cast(Session, current_app.extensions["db"]["sessionmaker"]())


def _dialect_insert(session: Session, model: Any) -> Any:
    """INSERT with ON CONFLICT for the session's database (PostgreSQL or the embedded SQLite).

    The claim uses RETURNING to learn whether it inserted: SQLAlchemy 2 does not report an
    INSERT's rowcount on PostgreSQL unless asked (``preserve_rowcount``), so it reads -1."""
    return (postgresql if session.get_bind().dialect.name == "postgresql" else sqlite).insert(model)


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite hands timestamps back without their zone; they are stored in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _claim(owner: str, key: str, fingerprint: str) -> IdempotencyKey | None:
    """Claim (owner, key) for this request: None when claimed, else the live claim found in its place."""
    session = _new_session()
    try:
        for _ in range(_CLAIM_ATTEMPTS):
            now = utcnow()
            fresh = {"request_fingerprint": fingerprint, "response_status": None, "response_body": None,
                     "created_at": now}
            inserted = session.execute(
                _dialect_insert(session, IdempotencyKey)
                .values(owner_id=owner, key=key, **fresh)
                .on_conflict_do_nothing()
                .returning(IdempotencyKey.key)
            ).first()
            session.commit()
            if inserted is not None:
                return None
            existing = session.execute(
                select(IdempotencyKey).where(IdempotencyKey.owner_id == owner, IdempotencyKey.key == key)
            ).scalar_one_or_none()
            session.commit()
            if existing is None:
                continue  # released in between: try inserting again
            if _aware(existing.created_at) >= now - KEY_TTL:
                return existing
            # Expired: take it over, unless someone else just did (then look again).
            taken = session.execute(
                update(IdempotencyKey)
                .where(
                    IdempotencyKey.owner_id == owner,
                    IdempotencyKey.key == key,
                    IdempotencyKey.created_at < now - KEY_TTL,
                )
                .values(**fresh)
                .execution_options(synchronize_session=False)
            )
            session.commit()
            if taken.rowcount:  # type: ignore[attr-defined]
                return None
        raise Conflict(f"A request with this {HEADER} is being processed; retry later.", headers=RETRY_SOON)
    finally:
        session.close()


def _answer_from(stored: IdempotencyKey, fingerprint: str) -> Response:
    if stored.request_fingerprint != fingerprint:
        raise Unprocessable(
            f"This {HEADER} was already used with a different request.",
            errors=[{"field": HEADER, "message": "already used with a different request"}],
        )
    if stored.response_status is None:
        raise Conflict(f"A request with this {HEADER} is still being processed; retry later.", headers=RETRY_SOON)
    status = stored.response_status
    body = stored.response_body or ""
    response = Response(body, status=status)
    if body:
        response.content_type = "application/problem+json" if status >= 400 else "application/json"
    response.headers[REPLAYED_HEADER] = "true"
    return response


def _store(owner: str, key: str, fingerprint: str, response: Response) -> None:
    session = _new_session()
    try:
        session.execute(
            update(IdempotencyKey)
            .where(
                IdempotencyKey.owner_id == owner,
                IdempotencyKey.key == key,
                IdempotencyKey.request_fingerprint == fingerprint,
            )
            .values(response_status=response.status_code, response_body=response.get_data(as_text=True))
            .execution_options(synchronize_session=False)
        )
        session.commit()
    except Exception:
        # What was created stays created and the caller gets its response; the claim stays in
        # progress (retries 409) until it expires — the window the module docstring describes.
        session.rollback()
        log.exception("could not store the response for %s %r of %r", HEADER, key, owner)
    finally:
        session.close()


def _abandon_view_transaction() -> None:
    # The failed view's uncommitted work is discarded at teardown anyway; doing it now drops its
    # locks, which would otherwise block the release below (SQLite locks the whole database).
    get_session().rollback()


def _release(owner: str, key: str, fingerprint: str) -> None:
    session = _new_session()
    try:
        session.execute(
            delete(IdempotencyKey)
            .where(
                IdempotencyKey.owner_id == owner,
                IdempotencyKey.key == key,
                IdempotencyKey.request_fingerprint == fingerprint,
                IdempotencyKey.response_status.is_(None),
            )
            .execution_options(synchronize_session=False)
        )
        session.commit()
    except Exception:
        session.rollback()
        log.exception("could not release %s %r of %r", HEADER, key, owner)
    finally:
        session.close()
