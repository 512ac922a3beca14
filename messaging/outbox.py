"""Enqueue after commit, through an outbox row written in the same transaction (SPEC §5.5).

``enqueue_after_commit(session, "concierge.process_event", event_id)`` adds an outbox row to the
caller's transaction. When that transaction commits, the task is sent to the broker and the row
marked dispatched; if sending fails (broker down, process killed), the row stays pending and
``sweep_outbox`` sends it later. Tasks are idempotent, so a second send is harmless.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from celery import current_app as current_celery
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from concierge.models import OutboxEntry
from messaging.db import driver_cursor, is_postgresql, utcnow
from messaging.ids import new_id

log = logging.getLogger(__name__)

PENDING_KEY = "outbox_pending"
SWEEP_GRACE = dt.timedelta(seconds=10)
SWEEP_BATCH = 500


def enqueue_after_commit(session: Session, task_name: str, *args: Any) -> str:
    entry_id = new_id()
    session.add(OutboxEntry(id=entry_id, task_name=task_name, args=list(args), created_at=utcnow()))
    session.info.setdefault(PENDING_KEY, []).append((entry_id, task_name, list(args)))
    return entry_id


# An entry: (outbox id, task name, task arguments).
OutboxItem = tuple[str, str, list[Any]]


def send(entries: list[OutboxItem]) -> list[str]:
    """Send tasks to the broker; returns the ids of the entries that were sent.

    Each goes to the default queue through the anonymous exchange (Celery's route for it), which needs nothing
    declared: the worker declares its queue when it starts. Asking kombu to declare it anyway cost a copy of
    the queue and exchange objects per message. The arguments' text for the message headers (``argsrepr``) is
    given here, from plain ids, instead of Celery's general-purpose ``saferepr``. No task keeps a result
    (``task_ignore_result``), and saying so here spares the result backend's per-publish hook, for which Celery
    made a backend object in every new greenlet of the web process."""
    sent = []
    for entry_id, task_name, args in entries:
        try:
            current_celery.send_task(
                task_name, args=args, declare=[], argsrepr=repr(args), kwargsrepr="{}", ignore_result=True
            )
        except Exception as exc:  # noqa: BLE001 - any broker failure leaves the entry for the sweeper
            log.warning("could not enqueue %s (outbox %s), the sweeper will: %s", task_name, entry_id, exc)
            break  # the broker is down: don't wait on it once per entry
        sent.append(entry_id)
    return sent


def _mark_dispatched(session: Session, entry_ids: list[str]) -> None:
    if is_postgresql():  # one statement on the autocommit pool: no BEGIN and COMMIT round trips
        mark_dispatched_with(driver_cursor(session), entry_ids)
        return
    bind = session.get_bind()
    with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:  # type: ignore[union-attr]
        conn.execute(update(OutboxEntry).where(OutboxEntry.id.in_(entry_ids)).values(dispatched_at=utcnow()))


def mark_dispatched_with(cursor_cm: AbstractContextManager[Any], entry_ids: list[str]) -> None:
    """PostgreSQL: mark entries sent, on ``cursor_cm`` (a cursor in autocommit)."""
    with cursor_cm as cursor:
        cursor.execute("UPDATE outbox SET dispatched_at = %s WHERE id = ANY(%s)", (utcnow(), entry_ids))


def _dispatch(entries: list[OutboxItem], mark: Callable[[list[str]], None]) -> None:
    """Send committed entries, then ``mark`` the ones sent; a failure leaves them to the sweeper."""
    try:
        sent = send(entries)
        if sent:
            mark(sent)
    except Exception:  # noqa: BLE001 - the commit stands; the sweeper catches up
        log.exception("outbox dispatch failed after commit")


def dispatch_with(cursor_cm: AbstractContextManager[Any], entries: list[OutboxItem]) -> None:
    """:func:`dispatch_now` without a session or application context (for messaging.fast_lane): the entries
    sent are marked on ``cursor_cm``."""
    _dispatch(entries, lambda sent: mark_dispatched_with(cursor_cm, sent))


def dispatch_now(session: Session, entries: list[OutboxItem]) -> None:
    """Send entries whose rows are committed already (and mark them); a failure leaves them to the sweeper."""
    _dispatch(entries, lambda sent: _mark_dispatched(session, sent))


@event.listens_for(Session, "after_commit")
def _dispatch_after_commit(session: Session) -> None:
    pending = session.info.pop(PENDING_KEY, None)
    if pending:
        dispatch_now(session, pending)


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session: Session, _previous: Any) -> None:
    session.info.pop(PENDING_KEY, None)


def sweep_outbox(session: Session, now: dt.datetime | None = None) -> int:
    """Send outbox entries left pending for longer than the grace period; returns how many were sent."""
    cutoff = (now or utcnow()) - SWEEP_GRACE
    query = (
        select(OutboxEntry.id, OutboxEntry.task_name, OutboxEntry.args)
        .where(OutboxEntry.dispatched_at.is_(None), OutboxEntry.created_at < cutoff)
        .order_by(OutboxEntry.created_at)
        .limit(SWEEP_BATCH)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = session.execute(query).all()
    sent = send([(r.id, r.task_name, list(r.args)) for r in rows])
    if sent:
        session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id.in_(sent))
            .values(dispatched_at=utcnow(), attempts=OutboxEntry.attempts + 1)
        )
    failed = [r.id for r in rows if r.id not in set(sent)]
    if failed:
        session.execute(
            update(OutboxEntry).where(OutboxEntry.id.in_(failed)).values(attempts=OutboxEntry.attempts + 1)
        )
    return len(sent)
