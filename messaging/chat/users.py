"""Users as the chat knows them (SPEC §3): who is calling, and just-in-time users — created from a token's claims
the first time they call, refused once the platform deleted them."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import cast

from flask import current_app
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from messaging.errors import Unauthorized
from messaging.store.models import DeletedUser, User
from messaging.store.upsert import insert_ignore

USER_ROLES = frozenset({"guest", "host", "admin"})


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
