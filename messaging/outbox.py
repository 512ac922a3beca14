"""Enqueue after commit, through an outbox row written in the same transaction (SPEC §5.5).

``enqueue_after_commit(session, "concierge.process_event", event_id)`` adds an outbox row to the
caller's transaction. When that transaction commits, the task is sent to the broker with the row's id
in its headers (:data:`OUTBOX_HEADER`) and the row marked dispatched, on a connection of its own (the
committed session can run nothing more). The row stays unfinished until the task reports it over
(:func:`mark_done`, called by the worker's task class, messaging.queue). ``sweep_outbox`` sends what
was never sent (broker down, process killed) and, again, what was sent but not done within
``OUTBOX_REDISPATCH_SECONDS`` (the broker lost it: Redis emptied, a worker killed). Tasks are
idempotent, so a second send is harmless.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from celery import current_app as current_celery
from flask import current_app
from sqlalchemy import case, event, literal, or_, select, update
from sqlalchemy.orm import Session

from messaging.store.db import autocommit_cursor, utcnow
from messaging.store.ids import new_id
from messaging.store.models import OutboxEntry

log = logging.getLogger(__name__)

PENDING_KEY = "outbox_pending"
# The message header that carries the outbox row's id to the task (read as ``task.request.outbox_id``).
OUTBOX_HEADER = "outbox_id"
SWEEP_GRACE = dt.timedelta(seconds=10)
SWEEP_BATCH = 500
REDISPATCH_AFTER = dt.timedelta(seconds=15)  # the default of OUTBOX_REDISPATCH_SECONDS
# Each time the sweeper tries a row its wait doubles, up to 2**3 times REDISPATCH_AFTER: a queue longer than the
# wait (a burst the workers are still working through) is not sent again and again, while a row the broker lost
# after its first send is sent again REDISPATCH_AFTER later.
REDISPATCH_DOUBLINGS = 3


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
    made a backend object in every new greenlet of the web process. The entry's id goes in the headers
    (:data:`OUTBOX_HEADER`), where the task finds it to report the entry done; Celery keeps it across retries."""
    sent = []
    for entry_id, task_name, args in entries:
        try:
            current_celery.send_task(
                task_name, args=args, declare=[], argsrepr=repr(args), kwargsrepr="{}", ignore_result=True,
                headers={OUTBOX_HEADER: entry_id},
            )
        except Exception as exc:  # noqa: BLE001 - any broker failure leaves the entry for the sweeper
            log.warning("could not enqueue %s (outbox %s), the sweeper will: %s", task_name, entry_id, exc)
            break  # the broker is down: don't wait on it once per entry
        sent.append(entry_id)
    return sent


def _update_alone(sql: str, params: tuple[Any, ...]) -> None:
    """Run one UPDATE of outbox rows, ``sql`` with ``params``, by itself on the autocommit pool (no BEGIN and COMMIT
    round trips) — never on a session's connection: after its commit a session can run nothing more, and a
    task's may have failed. Needs an application context."""
    with autocommit_cursor(current_app.extensions["db"]) as cursor:
        cursor.execute(sql, params)


# A row sent for the first time; a row a task marked due to retry, or the sweeper sent again, keeps its time.
MARK_DISPATCHED_SQL = "UPDATE outbox SET dispatched_at = %s WHERE id = ANY(%s) AND dispatched_at IS NULL"


def _mark_dispatched(entry_ids: list[str]) -> None:
    _update_alone(MARK_DISPATCHED_SQL, (utcnow(), entry_ids))


def mark_done(entry_id: str) -> None:
    """The task of entry ``entry_id`` is over (succeeded, or failed for good): the sweeper leaves it be. Best
    effort: if the database cannot be reached the entry is sent again later, which the idempotent task shrugs
    off. Needs an application context."""
    now = utcnow()
    try:
        _update_alone("UPDATE outbox SET done_at = %s WHERE id = %s AND done_at IS NULL", (now, entry_id))
    except Exception as exc:  # noqa: BLE001 - the task's work stands; the sweeper sends it again
        log.warning("could not mark outbox %s done, it will be sent again: %s", entry_id, exc)


def mark_retrying(entry_id: str, delay: float) -> None:
    """The task of entry ``entry_id`` will retry in ``delay`` seconds: the sweeper leaves it to that retry, and
    sends it again only if the retry is not done within ``OUTBOX_REDISPATCH_SECONDS`` of being due (else every
    backoff longer than that would start a second chain of retries). Best effort, as :func:`mark_done`."""
    due = utcnow() + dt.timedelta(seconds=delay)
    try:
        _update_alone("UPDATE outbox SET dispatched_at = %s WHERE id = %s AND done_at IS NULL", (due, entry_id))
    except Exception as exc:  # noqa: BLE001 - at worst the sweeper sends it again before the retry runs
        log.warning("could not note the retry of outbox %s: %s", entry_id, exc)


def _dispatch(entries: list[OutboxItem], mark: Callable[[list[str]], None]) -> None:
    """Send committed entries, then ``mark`` the ones sent; a failure leaves them to the sweeper. An entry sent
    but not marked (the database went away meanwhile) is sent again only if its task is not done by then."""
    try:
        sent = send(entries)
        if sent:
            mark(sent)
    except Exception as exc:  # noqa: BLE001 - the commit stands; the sweeper catches up
        log.warning("outbox: could not mark %d sent entries, the sweeper may send them again: %s", len(entries), exc)


def dispatch_now(entries: list[OutboxItem]) -> None:
    """Send entries whose rows are committed already and mark them, on a connection of their own (in an
    application context); a failure leaves them to the sweeper."""
    _dispatch(entries, _mark_dispatched)


@event.listens_for(Session, "after_commit")
def _dispatch_after_commit(session: Session) -> None:
    pending = session.info.pop(PENDING_KEY, None)
    if pending:
        dispatch_now(pending)


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session: Session, _previous: Any) -> None:
    session.info.pop(PENDING_KEY, None)


def sweep_outbox(
    session: Session, now: dt.datetime | None = None, redispatch_after: dt.timedelta = REDISPATCH_AFTER
) -> int:
    """Send the outbox entries whose task is not done, in ``session``'s transaction (the caller commits); returns
    how many were sent. An entry never sent is sent once older than SWEEP_GRACE (until then it is the after-commit
    send's); an entry sent but not done is sent again ``redispatch_after`` after it was sent (or its retry was
    due), twice as long after each time the sweeper tried it (REDISPATCH_DOUBLINGS): the broker lost it. On
    PostgreSQL the entries are locked, and those a concurrent sweep holds are skipped."""
    now = now or utcnow()
    dispatched_before = case(
        *((OutboxEntry.attempts == n, literal(now - redispatch_after * 2**n, OutboxEntry.dispatched_at.type))
          for n in range(REDISPATCH_DOUBLINGS)),
        else_=literal(now - redispatch_after * 2**REDISPATCH_DOUBLINGS, OutboxEntry.dispatched_at.type),
    )
    query = (
        select(OutboxEntry.id, OutboxEntry.task_name, OutboxEntry.args)
        .where(
            OutboxEntry.done_at.is_(None),
            OutboxEntry.created_at < now - SWEEP_GRACE,
            or_(OutboxEntry.dispatched_at.is_(None), OutboxEntry.dispatched_at < dispatched_before),
        )
        .order_by(OutboxEntry.created_at)
        .limit(SWEEP_BATCH)
    )
    rows = session.execute(query.with_for_update(skip_locked=True)).all()
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
