"""`Idempotency-Key` on creating POSTs (SPEC §2): the first response is replayed, nothing is created twice.

Put ``@idempotent`` under the route decorator (``@bp.post(...)`` then ``@idempotent``). The decorator commits
the view's transaction, so the view leaves it open (it does not call ``session.commit()``). Without the header
the view runs as usual and its transaction is committed when it returns. With it, the (caller, key) pair is
claimed in ``idempotency_keys`` in the request's own transaction, before the view runs:

* a completed claim with the same request (method, path and raw body) → its status and body are
  replayed with ``Idempotent-Replayed: true``, and the view does not run;
* the same key with a different request → 422;
* a claim of a request being served right now → the duplicate waits for that request's outcome (PostgreSQL
  holds the key of an uncommitted insert) and then finds its claim, or claims the key itself if it rolled back;
  after the lock timeout (``DB_LOCK_TIMEOUT``) it answers 409 with ``Retry-After``.

The view then runs in that transaction, and its response, if below 500, is stored on the claim in that
transaction too, before the decorator commits. **The claim, the view's work and the stored response commit
together or not at all**, so a request interrupted anywhere — an exception, a lost connection, the web tier's
request deadline (:mod:`messaging.api.deadline`), a killed process — leaves a retry with the same key one of two
states, never half of one:

* nothing committed: there is no claim, and the retry runs the view: the work is done once;
* all of it committed: the retry replays the stored response: the work was done once, and the client gets the
  first result.

(Its COMMIT sent to a server that has not answered: the server decides when it resumes, and until then the claim is
a request in progress to a retry, which waits for it as above.) A view that raises or answers 5xx is rolled back
with its claim, so a retry runs it again.

Claims live 24 hours: an older one is treated as absent and overwritten, and
``purge_expired_idempotency_keys`` deletes them using the ``created_at`` index (hourly, the beat task
``idempotency.purge``).

Replays carry the stored status and body only (``application/json``, or ``application/problem+json``
for 4xx); other headers of the first response are not kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Response, current_app, request
from pydantic import ConfigDict, Field
from sqlalchemy import Row, delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from messaging.api.auth import current_principal
from messaging.errors import Conflict, Unprocessable
from messaging.schemas import CachedSchemaModel
from messaging.store.db import get_session, utcnow
from messaging.store.models import IdempotencyKey

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


def purge_expired_idempotency_keys(session: Session, now: dt.datetime, limit: int | None = None) -> int:
    """Delete claims older than 24 h, or only the ``limit`` oldest of them; returns how many. The caller commits."""
    expired = IdempotencyKey.created_at < now - KEY_TTL
    statement = delete(IdempotencyKey).execution_options(synchronize_session=False)
    if limit is None:
        statement = statement.where(expired)
    else:
        oldest = (select(IdempotencyKey.owner_id, IdempotencyKey.key).where(expired)
                  .order_by(IdempotencyKey.created_at).limit(limit))
        statement = statement.where(tuple_(IdempotencyKey.owner_id, IdempotencyKey.key).in_(oldest))
    result = session.execute(statement)
    return int(result.rowcount)  # type: ignore[attr-defined]


def idempotent(view: F) -> F:
    """Make a creating POST view honour ``Idempotency-Key``, and commit its transaction (see the module
    docstring). A view that raises is left to the request's teardown, which rolls its transaction back."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if documents_header:
            kwargs.pop("header", None)
        session = get_session()
        key = request.headers.get(HEADER)
        if key is None:
            return _commit(session, current_app.make_response(view(*args, **kwargs)))
        _check_key(key)
        owner = current_principal().user_id
        fingerprint = request_fingerprint(request.method, request.path, request.get_data(cache=True))

        stored = _claim(session, owner, key, fingerprint)
        if stored is not None:
            session.rollback()  # the claim's statements wrote nothing: end the transaction they began
            return _answer_from(stored, fingerprint)
        response = current_app.make_response(view(*args, **kwargs))
        if response.status_code < 500:
            _store(session, owner, key, fingerprint, response)
        return _commit(session, response)

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


def _commit(session: Session, response: Response) -> Response:
    """Commit the view's transaction, or roll it back if the view answered 5xx (nothing it wrote stands)."""
    if response.status_code >= 500:
        session.rollback()
    else:
        session.commit()
    return response


# PostgreSQL's lock_not_available: the lock timeout ended a wait for another transaction's claim.
LOCK_NOT_AVAILABLE = "55P03"


def _claim(session: Session, owner: str, key: str, fingerprint: str) -> Row[Any] | None:
    """Claim (owner, key) in the request's transaction: None when claimed, else the claim committed in its place
    (its fingerprint, response status and body). Waiting for a claim another request holds uncommitted ends, at
    the lock timeout, in 409."""
    try:
        for _ in range(_CLAIM_ATTEMPTS):
            now = utcnow()
            fresh = {"request_fingerprint": fingerprint, "response_status": None, "response_body": None,
                     "created_at": now}
            # RETURNING tells whether it inserted: SQLAlchemy 2 reports an INSERT's rowcount on PostgreSQL only
            # when asked (``preserve_rowcount``), else -1.
            inserted = session.execute(
                insert(IdempotencyKey)
                .values(owner_id=owner, key=key, **fresh)
                .on_conflict_do_nothing()
                .returning(IdempotencyKey.key)
            ).first()
            if inserted is not None:
                return None
            existing = session.execute(
                select(IdempotencyKey.request_fingerprint, IdempotencyKey.response_status,
                       IdempotencyKey.response_body, IdempotencyKey.created_at)
                .where(IdempotencyKey.owner_id == owner, IdempotencyKey.key == key)
            ).first()
            if existing is None:
                continue  # purged in between: try inserting again
            if existing.created_at >= now - KEY_TTL:
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
            if taken.rowcount:  # type: ignore[attr-defined]
                return None
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        session.rollback()
        raise Conflict(f"A request with this {HEADER} is being processed; retry later.", headers=RETRY_SOON) from exc
    raise Conflict(f"A request with this {HEADER} is being processed; retry later.", headers=RETRY_SOON)


def _answer_from(stored: Row[Any], fingerprint: str) -> Response:
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


def _store(session: Session, owner: str, key: str, fingerprint: str, response: Response) -> None:
    """Put the response on the claim, in the view's transaction: it commits with what the view wrote."""
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
