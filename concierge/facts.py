"""Facts the concierge tells (SPEC §5.1, "one message per fact, whoever reports it"): which fact an event reports,
and claiming it for its recipients in the transaction that writes their messages.

A fact is (kind, subject, version, recipient) — the event type, the offer, request or trip it is about, and what
makes it this fact of that record: the day reminded of (a check-in or check-out reminder), the deadline warned of
(an offer's expiry), nothing more (a request's expiry: it happens once), else a digest of the record itself (a
booking or cancellation posted again unchanged under a new event id is the same fact; a changed record is a new
one). The primary key of ``concierge_facts`` holds it, so two reports of one fact — platform events, scheduler
runs, in any order or at once — race on that key and only one writes a message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from sqlalchemy.orm import Session

from concierge.notifications import EventDataError, EventFacts
from messaging.store.db import driver_cursor, utcnow

# The facts whose version is the moment they are about: the scheduler finds these too (concierge.scheduling).
_DESCRIPTIONS = {
    "trip.check_in_reminder": "the check-in reminder of {subject} for {version}",
    "trip.check_out_reminder": "the check-out reminder of {subject} for {version}",
    "offer.expiring": "the expiry warning of {subject} (expiring {version})",
    "request_to_book.expired": "the expiry of {subject}",
    "trip.booked": "the booking confirmation of {subject}",
    "trip.cancelled": "the cancellation of {subject}",
}
_SUBJECTS = {"offer": "offer", "request_to_book": "request to book", "trip": "trip"}


@dataclass(frozen=True, slots=True)
class Fact:
    """What an event tells, whoever reports it: ``kind`` (the event type), the id of the offer, request to book or
    trip it is about, and the ``version`` that makes it this fact of that record."""

    kind: str
    subject_id: int
    version: str

    def describe(self) -> str:
        """For people: 'the check-in reminder of trip 7 for 2027-03-01'."""
        subject = f"{_SUBJECTS[self.kind.split('.', 1)[0]]} {self.subject_id}"
        template = _DESCRIPTIONS.get(self.kind, "the {kind} notice of {subject}")
        return template.format(kind=self.kind, subject=subject, version=self.version)


@dataclass(frozen=True, slots=True)
class Teller:
    """The report that told a recipient a fact first: its event, that event's ``source`` ('platform',
    'scheduler'; None if the event row is gone) and when."""

    recipient_id: str
    event_id: str | None
    source: str | None
    told_at: dt.datetime | None


def fact_of(facts: EventFacts) -> Fact:
    """The fact an event with these (validated) records reports; EventDataError if it carries no subject."""
    if facts.type == "trip.check_in_reminder" and facts.trip is not None:
        return Fact(facts.type, facts.trip.id, facts.trip.check_in.isoformat())
    if facts.type == "trip.check_out_reminder" and facts.trip is not None:
        return Fact(facts.type, facts.trip.id, facts.trip.check_out.isoformat())
    if facts.type == "offer.expiring" and facts.offer is not None:
        return Fact(facts.type, facts.offer.id, f"{facts.offer.expires_at.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}")
    if facts.type == "request_to_book.expired" and facts.request is not None:
        return Fact(facts.type, facts.request.id, "")
    record = facts.trip or facts.offer or facts.request
    if record is None:
        raise EventDataError(f"{facts.type} carries no record to tell about")
    dumped = orjson.dumps(record.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return Fact(facts.type, record.id, hashlib.sha256(dumped).hexdigest())


def claim_fact(session: Session, event_id: str, fact: Fact, recipient_ids: Iterable[str]) -> dict[str, Teller]:
    """Record, in ``session``'s open transaction, that ``event_id`` tells ``fact`` to each recipient; returns those
    another report told already (the caller writes no message to them), with who told them.

    One ``INSERT … ON CONFLICT DO NOTHING`` in recipient order: a report racing this one for the same fact waits
    on the key until this transaction ends, then finds it taken (or takes it, if this one rolled back). The
    recipients are users (the key's foreign key): the caller checks they exist first."""
    wanted = sorted(set(recipient_ids))
    if not wanted:
        return {}
    key = {"kind": fact.kind, "subject": fact.subject_id, "version": fact.version, "recipients": wanted}
    session.connection()  # in the session's transaction: the claim commits or rolls back with the messages
    with driver_cursor(session) as cursor:
        cursor.execute(_CLAIM_SQL, {**key, "event": event_id, "now": utcnow()})
        claimed = {row[0] for row in cursor.fetchall()}
        taken = [r for r in wanted if r not in claimed]
        if not taken:
            return {}
        # A statement of its own: it sees what the racing report committed while the claim waited.
        cursor.execute(_TELLERS_SQL, {**key, "recipients": taken})
        found = {row[0]: Teller(*row) for row in cursor.fetchall()}
    return {r: found.get(r, Teller(r, None, None, None)) for r in taken}


_CLAIM_SQL = """
INSERT INTO concierge_facts (kind, subject_id, version, recipient_id, event_id, told_at)
SELECT %(kind)s, %(subject)s, %(version)s, r.id, %(event)s, %(now)s
  FROM unnest(CAST(%(recipients)s AS text[])) WITH ORDINALITY AS r(id, n)
 ORDER BY r.n
    ON CONFLICT DO NOTHING
RETURNING recipient_id
"""

_TELLERS_SQL = """
SELECT f.recipient_id, f.event_id, e.source, f.told_at
  FROM concierge_facts f
  LEFT JOIN platform_events e ON e.id = f.event_id
 WHERE f.kind = %(kind)s AND f.subject_id = %(subject)s AND f.version = %(version)s
   AND f.recipient_id = ANY(%(recipients)s)
"""


def duplicate_reason(fact: Fact, tellers: Iterable[Teller]) -> str:
    """Why a report wrote nothing to these recipients, for ``lastError``: 'duplicate: platform event ev-1 already
    told trav-1 and host-1 the booking confirmation of trip 7 (2026-12-01 09:30 UTC)'."""
    by_report: dict[tuple[str | None, str | None, dt.datetime | None], list[str]] = {}
    for teller in tellers:
        by_report.setdefault((teller.event_id, teller.source, teller.told_at), []).append(teller.recipient_id)
    parts = []
    for (event_id, source, told_at), recipients in sorted(by_report.items(), key=lambda item: str(item[0])):
        if event_id is None:
            reporter = "an earlier report"
        elif source == "scheduler":
            reporter = f"the scheduler's run (event {event_id})"
        else:
            reporter = f"{source or 'an'} event {event_id}"
        when = f" ({told_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC)" if told_at is not None else ""
        parts.append(f"{reporter} already told {' and '.join(sorted(recipients))} {fact.describe()}{when}")
    return "duplicate: " + "; ".join(parts)
