"""Bearer-token authentication (SPEC §3): verifying platform-signed JWTs and roles; the caller of a request."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import jwt
from flask import current_app, g, request

from messaging.chat.users import Principal
from messaging.errors import Unauthorized

ROLES = frozenset({"guest", "host", "admin", "service"})
ASYMMETRIC_ALGORITHMS = ["RS256", "ES256"]
SYMMETRIC_ALGORITHMS = ["HS256"]

F = TypeVar("F", bound=Callable[..., Any])


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
