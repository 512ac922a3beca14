"""Bearer-token authentication (SPEC §3): verifying platform-signed JWTs, roles, just-in-time users."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast

import jwt
from flask import current_app, g, request
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from messaging.errors import Forbidden, Unauthorized
from messaging.models import DeletedUser, User
from messaging.upsert import insert_ignore

ROLES = frozenset({"guest", "host", "admin", "service"})
USER_ROLES = frozenset({"guest", "host", "admin"})
ASYMMETRIC_ALGORITHMS = ["RS256", "ES256"]
SYMMETRIC_ALGORITHMS = ["HS256"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's subject and role."""

    user_id: str
    role: str
    name: str | None = None
    email: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_service(self) -> bool:
        return self.role == "service"


def _verification_key(config: dict[str, Any]) -> tuple[Any, list[str]]:
    # A configured public key allows only asymmetric algorithms, so a token "signed" with
    # HS256 using the public key as the secret (algorithm confusion) cannot verify.
    if config.get("JWT_PUBLIC_KEY"):
        return config["JWT_PUBLIC_KEY"], ASYMMETRIC_ALGORITHMS
    return config["JWT_SECRET"], SYMMETRIC_ALGORITHMS


LEEWAY_SECONDS = 30


def decode_token(token: str, config: dict[str, Any]) -> Principal:
    """Verify a token and return its principal; any defect raises :class:`Unauthorized`."""
    return _decode(token, config)[0]


def _decode(token: str, config: dict[str, Any]) -> tuple[Principal, float]:
    """The token's principal and its expiry (seconds since the epoch)."""
    key, algorithms = _verification_key(config)
    options: dict[str, Any] = {"require": ["sub", "exp", "role"]}
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            issuer=config.get("JWT_ISSUER"),
            audience=config.get("JWT_AUDIENCE"),
            options=options | {"verify_aud": bool(config.get("JWT_AUDIENCE"))},
            leeway=dt.timedelta(seconds=LEEWAY_SECONDS),
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The token has expired.") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(f"The token lacks the required claim '{exc.claim}'.") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("The token is invalid.") from exc
    sub, role = claims.get("sub"), claims.get("role")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise Unauthorized("The token's 'sub' must be a non-empty string.")
    if role not in ROLES:
        raise Unauthorized("The token's role is not one of guest, host, admin, service.")
    name, email = claims.get("name"), claims.get("email")
    principal = Principal(
        user_id=sub,
        role=role,
        name=name if isinstance(name, str) else None,
        email=email if isinstance(email, str) else None,
    )
    return principal, float(claims["exp"])


class VerifiedTokens:
    """Tokens this process has verified, with their principal and expiry, so a request bearing one of them
    again skips the signature check and claim parsing (the token is the key, byte for byte: any other
    token is verified in full). Only the expiry can change a verified token's answer, and it is checked
    on every use, with the same leeway. Bounded: the oldest entry goes when the cache is full."""

    def __init__(self, max_size: int = 10_000) -> None:
        self.max_size = max_size
        self._entries: dict[str, tuple[Principal, float]] = {}

    def principal(self, token: str, config: dict[str, Any]) -> Principal:
        entry = self._entries.get(token)
        if entry is None:
            entry = _decode(token, config)
            if len(self._entries) >= self.max_size:
                self._entries.pop(next(iter(self._entries)), None)
            self._entries[token] = entry
        principal, expires = entry
        if time.time() > expires + LEEWAY_SECONDS:
            self._entries.pop(token, None)
            raise Unauthorized("The token has expired.")
        return principal


def mint_token(
    config: dict[str, Any],
    *,
    sub: str,
    role: str,
    ttl: dt.timedelta = dt.timedelta(hours=1),
    name: str | None = None,
    email: str | None = None,
    private_key: str | None = None,
    algorithm: str = "HS256",
) -> str:
    """Sign a token the way the platform does (for development, tests and `flask token`)."""
    now = dt.datetime.now(dt.UTC)
    claims: dict[str, Any] = {"sub": sub, "role": role, "iat": now, "exp": now + ttl}
    if name:
        claims["name"] = name
    if email:
        claims["email"] = email
    if config.get("JWT_ISSUER"):
        claims["iss"] = config["JWT_ISSUER"]
    if config.get("JWT_AUDIENCE"):
        claims["aud"] = config["JWT_AUDIENCE"]
    key = private_key if private_key is not None else config["JWT_SECRET"]
    return jwt.encode(claims, key, algorithm=algorithm)


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


# How long a process trusts having found a user in the database. A user the platform deletes (through any process)
# is refused by every process at most this long after the deletion commits: nothing has to reach the other
# processes, so nothing can be lost on the way (KnownUsers).
USER_RECHECK_SECONDS = 0.5


class KnownUsers:
    """Users this process has recently found in the database, so a request does not look again.

    Bounded and short-lived: an entry lasts ``ttl`` seconds from the start of the lookup that found the user, so a
    lookup that began before a deletion committed is trusted until at most ``ttl`` after it. This is how the other
    processes learn of a deletion (the deleting one forgets the user at once): no signal between processes, at
    the cost of one primary-key lookup per active user per ``ttl`` per process.
    """

    def __init__(self, ttl: float = USER_RECHECK_SECONDS, max_size: int = 100_000) -> None:
        self.ttl, self.max_size = ttl, max_size
        self._seen: dict[str, float] = {}

    def __contains__(self, user_id: str) -> bool:
        expiry = self._seen.get(user_id)
        return expiry is not None and expiry > time.monotonic()

    def add(self, user_id: str, looked_up_at: float | None = None) -> None:
        """Remember ``user_id`` as found by a lookup that started at ``looked_up_at`` (``time.monotonic()``; now
        when None)."""
        if len(self._seen) >= self.max_size:
            self._seen.clear()
        self._seen[user_id] = (time.monotonic() if looked_up_at is None else looked_up_at) + self.ttl

    def discard(self, user_id: str) -> None:
        self._seen.pop(user_id, None)


def known_users() -> KnownUsers:
    return current_app.extensions.setdefault("known_users", KnownUsers())  # type: ignore[no-any-return]


def ensure_user(session: Session, principal: Principal, *, recheck: bool = False) -> None:
    """Just-in-time user creation: a user seen for the first time is created from the token — unless the
    platform deleted that user, whose tokens are then refused (401) until the platform puts them back.

    Each process remembers existing users for :data:`USER_RECHECK_SECONDS` (:class:`KnownUsers`); deleting a user
    forgets them in the deleting process at once, and in the others within that time. ``recheck`` looks in the
    database whatever this process remembers (for a call that may replay what was sent before: the stream)."""
    if principal.role not in USER_ROLES or (not recheck and principal.user_id in known_users()):
        return
    looked_up_at = time.monotonic()
    if not _user_exists(session, principal.user_id):
        if session.get(DeletedUser, principal.user_id) is not None:
            known_users().discard(principal.user_id)  # a recheck found what the cache did not know yet
            raise Unauthorized("This user has been deleted.")

        insert_ignore(
            session,
            User,
            {"id": principal.user_id, "name": principal.name, "email": principal.email, "role": principal.role},
        )
    known_users().add(principal.user_id, looked_up_at)


def _user_exists(session: Session, user_id: str) -> bool:
    """Outside a transaction the lookup runs in autocommit on its own pooled connection: one round trip, and the
    request's session starts no transaction for a user who exists (BEGIN and COMMIT would be two more)."""
    if not _autocommit_lookups(session):
        return session.get(User, user_id) is not None
    with cast(Engine, session.get_bind()).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return conn.execute(select(User.id).where(User.id == user_id)).first() is not None


def existing_users(session: Session, user_ids: Collection[str]) -> set[str]:
    """Which of ``user_ids`` have a user row, in one statement (in autocommit outside a transaction, as
    :func:`_user_exists`)."""
    statement = select(User.id).where(User.id.in_(list(user_ids)))
    if not _autocommit_lookups(session):
        return set(session.scalars(statement))
    with cast(Engine, session.get_bind()).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return set(conn.scalars(statement))


def _autocommit_lookups(session: Session) -> bool:
    bind = session.get_bind()
    return isinstance(bind, Engine) and not session.in_transaction()


def authenticate(token: str | None = None) -> Principal:
    """Authenticate the current request (header, or the given token) and remember the principal."""
    token = token or bearer_token()
    if not token:
        raise Unauthorized()
    tokens: VerifiedTokens = current_app.extensions.setdefault("verified_tokens", VerifiedTokens())
    principal = tokens.principal(token, current_app.config)
    g.principal = principal
    return principal


def current_principal() -> Principal:
    principal = g.get("principal")
    if principal is None:
        raise Unauthorized()
    return cast(Principal, principal)


def require_roles(*roles: str) -> Callable[[F], F]:
    """Refuse (403) an authenticated caller whose role is not one of ``roles``."""
    allowed = frozenset(roles)

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            if principal.role not in allowed:
                raise Forbidden(f"This call needs one of the roles: {', '.join(sorted(allowed))}.")
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorator
