"""Event intake (SPEC §4 "Platform records and events"): validate, upsert the records, store the
event and its outbox entry in one transaction. Processing happens in a worker (concierge.processing).
"""

from __future__ import annotations

import hashlib
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any, Literal

import orjson
from psycopg.types.json import Jsonb
from pydantic import AfterValidator, Field, ValidationError, field_validator
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from concierge import records
from concierge.models import PlatformEvent
from concierge.notifications import EVENT_TYPES, subject_key
from messaging.chat.resources import message_json, select_messages
from messaging.errors import Conflict, NotFound, Unprocessable
from messaging.outbox import OutboxItem, dispatch_now, enqueue_after_commit
from messaging.schemas import ApiModel, documented
from messaging.store.db import driver_cursor, utcnow
from messaging.store.ids import new_id
from messaging.store.models import ConciergeMessageOrigin, Message, User
from messaging.store.upsert import insert_ignore, upsert

PROCESS_EVENT_TASK = "concierge.process_event"
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]


def _keep(value: Any) -> Any:
    return value


# Inside an event, a record whose dates are out of order is still accepted: the event is stored and
# ends as ``failed`` with a readable error (SPEC §5) rather than being refused at the door.
class EventOffer(records.OfferRecord):
    _dates_in_order = field_validator("check_out")(_keep)  # type: ignore[assignment]


class EventRequestToBook(records.RequestToBookRecord):
    _dates_in_order = field_validator("check_out")(_keep)  # type: ignore[assignment]


class EventTrip(records.TripRecord):
    _dates_in_order = field_validator("check_out")(_keep)  # type: ignore[assignment]


class EventData(ApiModel):
    property: records.PropertyRecord | None = None
    traveler: records.UserRecord | None = None
    host: records.UserRecord | None = None
    offer: EventOffer | None = None
    request_to_book: EventRequestToBook | None = None
    trip: EventTrip | None = None


# The keys of an event's ``data``: every record an event may carry.
DATA_KEYS = tuple(field.alias or name for name, field in EventData.model_fields.items())
# Carried by every event (SPEC §4): processing fails an event without its property; the traveler is who it is for.
EXPECTED_KEYS = ("property", "traveler")


@dataclass(frozen=True, slots=True)
class EventRecords:
    """The records an event of one type carries, by their key in ``data``."""

    required: str  # the record the event is about: the intake refuses the event without it (422)
    expected: tuple[str, ...]  # carried by every event: EXPECTED_KEYS
    optional: tuple[str, ...]  # any other record; like every record carried, upserted with the event


# Which records each event type carries: the table the intake checks an event against (prepare_intake) and the
# API document shows (POST /v1/events: event_records_markdown, and event_examples, one example per type).
# The record an event is about follows its type's prefix (concierge.notifications.subject_key), as processing
# reads it.
EVENT_RECORDS: dict[str, EventRecords] = {
    event_type: EventRecords(
        required=subject_key(event_type),
        expected=EXPECTED_KEYS,
        optional=tuple(k for k in DATA_KEYS if k != subject_key(event_type) and k not in EXPECTED_KEYS),
    )
    for event_type in EVENT_TYPES
}


def event_records_markdown() -> str:
    """:data:`EVENT_RECORDS` as a Markdown table, for the API document."""

    def keys(names: tuple[str, ...]) -> str:
        return ", ".join(f"`data.{name}`" for name in names)

    rows = ["| event type | must carry (422 without it) | should carry | may carry |", "|---|---|---|---|"]
    rows += [f"| `{event_type}` | `data.{carried.required}` | {keys(carried.expected)} | {keys(carried.optional)} |"
             for event_type, carried in EVENT_RECORDS.items()]
    return "\n".join(rows)


EXAMPLE_RECORDS: dict[str, dict[str, Any]] = {
    "property": records.EXAMPLE_PROPERTY,
    "traveler": records.EXAMPLE_TRAVELER,
    "host": records.EXAMPLE_HOST,  # carried so that the example needs no record posted before (the hostId)
    "offer": records.EXAMPLE_OFFER,
    "requestToBook": records.EXAMPLE_REQUEST_TO_BOOK,
    "trip": records.EXAMPLE_TRIP,
}
# How the record an example is about differs from records.EXAMPLE_* for its event type.
EXAMPLE_CHANGES: dict[str, dict[str, Any]] = {
    "offer.expired": {"status": "Expired"},
    "offer.withdrawn": {"status": "Withdrawn"},
    "offer.accepted": {"status": "Accepted"},
    "request_to_book.approved": {"status": "Accepted", "resolvedAt": "2027-03-01T15:00:00Z"},
    "request_to_book.denied": {"status": "Denied", "resolvedAt": "2027-03-01T15:00:00Z"},
    "request_to_book.withdrawn": {"status": "Withdrawn", "resolvedAt": "2027-03-01T15:00:00Z"},
    "request_to_book.expired": {"status": "Expired", "resolvedAt": "2027-03-02T09:00:00Z"},
    "trip.cancelled": {"status": "Cancelled"},
}


def event_examples() -> dict[str, dict[str, Any]]:
    """POST /v1/events's named examples, one per event type of :data:`EVENT_RECORDS`, each carrying the records
    its type must and should carry, and the host: each is accepted on its own (202)."""
    examples: dict[str, dict[str, Any]] = {}
    for event_type, carried in EVENT_RECORDS.items():
        others = (*carried.expected, "host")
        data = {key: EXAMPLE_RECORDS[key] for key in others}
        data[carried.required] = {**EXAMPLE_RECORDS[carried.required], **EXAMPLE_CHANGES.get(event_type, {})}
        examples[event_type] = {
            "summary": f"{event_type}: data.{carried.required}, with data.{', data.'.join(others)}",
            "value": {"id": f"evt-{event_type}-1", "type": event_type, "occurredAt": "2027-03-01T09:30:00Z",
                      "data": data},
        }
    return examples


class EventIn(ApiModel):
    model_config = documented(examples=event_examples())

    id: Annotated[str, Field(min_length=1, max_length=255), AfterValidator(records._no_nul)]
    type: EventType = Field(description="One of the known event types (SPEC §5.1)")
    occurred_at: records.IsoDateTime
    data: EventData


def payload_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(slots=True)
class RecordsPlan:
    """What accepting an event writes besides the event: the people put back (no longer deleted), the record
    rows to upsert by id in dependency order, and the references the event does not carry (to look up)."""

    people: list[str] = field(default_factory=list)
    rows: dict[tuple[type[Any], Any], dict[str, Any]] = field(default_factory=dict)
    lookups: list[tuple[records.Check, str]] = field(default_factory=list)


def _plan_records(event: EventIn) -> RecordsPlan:
    """People and places first, so a reference to a record the event carries needs no lookup. A record that
    fails the strict checks (dates out of order) stays in the event, for its error, but is not mirrored."""
    data = event.data
    plan = RecordsPlan()
    carried: list[tuple[records.AnyRecord, str]] = [
        (user, f"data.{name}.") for name, user in (("host", data.host), ("traveler", data.traveler)) if user
    ]
    if data.property is not None:
        carried.append((data.property, "data.property."))
    strict = (
        (data.offer, records.OfferRecord, "data.offer."),
        (data.request_to_book, records.RequestToBookRecord, "data.requestToBook."),
        (data.trip, records.TripRecord, "data.trip."),
    )
    for record, model, prefix in strict:
        if record is not None:
            try:
                carried.append((model.model_validate(record.model_dump()), prefix))
            except ValidationError:
                break
    known: set[tuple[type[Any], Any]] = set()
    for row_record, prefix in carried:
        model, values, checks = records.row_of(row_record)
        plan.lookups += records.unresolved(checks, prefix, known)
        plan.rows[(model, row_record.id)] = values  # the same record twice (host = traveler): the last one stands
        known.add((model, row_record.id))
        if model is User:
            plan.people.append(str(row_record.id))
    return plan


@dataclass(slots=True)
class Intake:
    """An event ready to store: its row (with its digest, ``payload_hash``) and the records it writes."""

    values: dict[str, Any]
    plan: RecordsPlan


def prepare_intake(event: EventIn, body: dict[str, Any]) -> Intake:
    """What storing ``event`` (posted as ``body``) writes; 422 if it lacks the record its type is about.
    Touches no database."""
    key = EVENT_RECORDS[event.type].required
    if body.get("data", {}).get(key) is None:
        raise Unprocessable(
            f"A {event.type} event carries its {key} record in data.{key}.",
            errors=[{"field": f"data.{key}", "message": "required for this event type"}],
        )
    now = utcnow()
    values = {
        "id": event.id,
        "type": event.type,
        "occurred_at": event.occurred_at,
        "payload": body,
        "payload_hash": payload_hash(body),
        "source": "platform",
        "status": "pending",
        "attempts": 0,
        "received_at": now,
        "updated_at": now,
    }
    return Intake(values, _plan_records(event))


def accept_event(session: Session, event: EventIn, body: dict[str, Any]) -> tuple[PlatformEvent, bool]:
    """Store a new event (True) or return the stored one for a repeated delivery (False).

    The same id with a different body is a 409. The outbox entry commits with the event: outside a transaction
    all of it is one statement in autocommit (:func:`insert_in_one_statement`), sent at once; inside one (an
    ``Idempotency-Key`` claim) it is written in the caller's transaction and sent after its commit."""
    intake = prepare_intake(event, body)
    if not session.in_transaction():
        entry = outbox_entry(event.id)
        inserted = insert_in_one_statement(driver_cursor(session), intake, entry)
        if inserted:
            dispatch_now([entry])
    else:
        inserted = _accept_in_transaction(session, intake.plan, intake.values)
    if not inserted:  # stored before, or by a concurrent delivery of the same id
        stored = session.get(PlatformEvent, event.id, populate_existing=True)
        assert stored is not None
        return _same_or_conflict(stored, intake.values["payload_hash"]), False
    # What was just inserted, as the resource shows it (not attached to the session: nothing to read back).
    return accepted_event(intake), True


def accepted_event(intake: Intake) -> PlatformEvent:
    """The event as :func:`insert_in_one_statement` stored it (a detached object: nothing to read back)."""
    return PlatformEvent(**intake.values, last_error=None, processed_at=None)


def outbox_entry(event_id: str) -> OutboxItem:
    """The outbox entry that sends a new event to the worker."""
    return (new_id(), PROCESS_EVENT_TASK, [event_id])


def _accept_in_transaction(session: Session, plan: RecordsPlan, values: dict[str, Any]) -> bool:
    """The intake in the caller's transaction; False when the event was already stored."""
    if session.get(PlatformEvent, values["id"]) is not None:
        return False
    records.require(session, plan.lookups)
    if plan.people:
        records.forget_deletions(session, plan.people)
    for (model, _id), row in plan.rows.items():
        upsert(session, model, row, ["id"])
    if not insert_ignore(session, PlatformEvent, values):  # a concurrent delivery of the same id got there first
        return False
    enqueue_after_commit(session, PROCESS_EVENT_TASK, values["id"])
    return True


def insert_in_one_statement(cursor_cm: AbstractContextManager[Any], intake: Intake, entry: OutboxItem) -> bool:
    """The event, its outbox entry ``entry``, the people put back and every record upserted in one
    statement on ``cursor_cm`` (a cursor in autocommit) — atomic by itself, one round trip. The event is
    inserted only if every looked-up reference exists and its id is new, and everything else only if the event
    was; the same statement reports the stored event's hash and which references were missing, so nothing is
    written for a repeat, a conflict or a 422. True if the event was stored now; False if it was stored before
    (a repeat or a conflict); 422 naming the missing references otherwise. The caller sends ``entry`` after."""
    plan, values = intake.plan, intake.values
    shape = (tuple((model, tuple(row)) for (model, _id), row in plan.rows.items()),
             tuple(check[0] for check, _f in plan.lookups), bool(plan.people))
    params: dict[str, Any] = {f"e_{k}": v for k, v in values.items()}
    params["e_payload"] = Jsonb(values["payload"])
    params.update(o_id=entry[0], o_task=entry[1], o_args=Jsonb(entry[2]), o_now=values["received_at"],
                  people=plan.people)
    for n, ((_model, _id), row) in enumerate(plan.rows.items()):
        params.update({f"r{n}_{column}": value for column, value in row.items()})
    for n, (check, _field) in enumerate(plan.lookups):
        params[f"c{n}"] = check[1]
    with cursor_cm as cursor:
        cursor.execute(_intake_sql(*shape), params)
        inserted, stored_hash, *found = cursor.fetchone()
    if inserted:
        return True
    missing = [lookup for lookup, ok in zip(plan.lookups, found, strict=True) if not ok]
    if missing and stored_hash is None:  # a repeat or a conflict is answered as such, even with references gone
        raise records.missing_references(missing)
    return False


@cache
def _intake_sql(
    rows: tuple[tuple[Any, tuple[str, ...]], ...], lookups: tuple[Any, ...], people: bool
) -> str:
    def typed(param: str, column: Any) -> str:
        return f"CAST(%({param})s AS {column.type.compile(dialect=postgresql.dialect())})"

    events = PlatformEvent.__table__
    columns = [c for c in events.columns if c.name in EVENT_COLUMNS]
    exists = [f"EXISTS (SELECT 1 FROM {model.__tablename__} WHERE id = %(c{n})s)" for n, model in enumerate(lookups)]
    parts = [
        f"ev AS (INSERT INTO platform_events ({', '.join(c.name for c in columns)}) "
        f"SELECT {', '.join(typed('e_' + c.name, c) for c in columns)} "
        f"WHERE {' AND '.join(exists) or 'true'} ON CONFLICT (id) DO NOTHING RETURNING id)",
        "queued AS (INSERT INTO outbox (id, task_name, args, created_at) "
        "SELECT %(o_id)s, %(o_task)s, %(o_args)s, %(o_now)s FROM ev)",
    ]
    if people:
        parts.append("back AS (DELETE FROM deleted_users WHERE user_id = ANY(%(people)s) "
                     "AND EXISTS (SELECT 1 FROM ev))")
    for n, (model, names) in enumerate(rows):
        table = model.__table__
        changing = [c for c in names if c != "id"]
        # A record the platform sends again unchanged (the usual case: the same traveler, host and property in
        # every event about them) is left as it is: no new row version, index entries or WAL for it.
        conflict = (
            f"UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in changing)} "
            f"WHERE ({', '.join(f't.{c}' for c in changing)}) "
            f"IS DISTINCT FROM ({', '.join(f'excluded.{c}' for c in changing)})"
            if changing else "NOTHING"
        )
        parts.append(
            f"r{n} AS (INSERT INTO {table.name} AS t ({', '.join(names)}) "
            f"SELECT {', '.join(typed(f'r{n}_{c}', table.c[c]) for c in names)} FROM ev "
            f"ON CONFLICT (id) DO {conflict})"
        )
    found = "".join(f", {e}" for e in exists)
    return (f"WITH {', '.join(parts)} "
            f"SELECT (SELECT count(*) FROM ev), (SELECT payload_hash FROM platform_events WHERE id = %(e_id)s){found}")


EVENT_COLUMNS = frozenset({"id", "type", "occurred_at", "payload", "payload_hash", "source", "status", "attempts",
                           "received_at", "updated_at"})


def record_internal_event(
    session: Session, event_id: str, event_type: str, occurred_at: Any, data: dict[str, Any], source: str
) -> bool:
    """Store an event the service found itself (the scheduler); once per id, however often it runs."""
    body = {"id": event_id, "type": event_type, "occurredAt": occurred_at.isoformat(), "data": data}
    now = utcnow()
    inserted = insert_ignore(
        session,
        PlatformEvent,
        {
            "id": event_id,
            "type": event_type,
            "occurred_at": occurred_at,
            "payload": body,
            "payload_hash": payload_hash(body),
            "source": source,
            "status": "pending",
            "attempts": 0,
            "received_at": now,
            "updated_at": now,
        },
    )
    if inserted:
        enqueue_after_commit(session, PROCESS_EVENT_TASK, event_id)
    return inserted


def _same_or_conflict(stored: PlatformEvent, digest: str) -> PlatformEvent:
    if stored.payload_hash != digest:
        raise Conflict(f"Event {stored.id} was already received with a different body.")
    return stored


def event_json(session: Session, event: PlatformEvent, *, just_accepted: bool = False) -> dict[str, Any]:
    """The Event resource; ``just_accepted``: accepted in this transaction, so no message can exist yet (the
    worker writes them after it commits) and none are looked for."""
    rows = [] if just_accepted else session.execute(
        select_messages()
        .where(ConciergeMessageOrigin.event_id == event.id)
        .order_by(Message.created_at, Message.id)
    ).all()
    return event_resource(event, [message_json(r) for r in rows])


def event_resource(event: PlatformEvent, messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "status": event.status,
        "attempts": event.attempts,
        "lastError": event.last_error,
        "occurredAt": event.occurred_at,
        "receivedAt": event.received_at,
        "processedAt": event.processed_at,
        "messages": messages,
    }


def get_event(session: Session, event_id: str) -> PlatformEvent:
    event = session.get(PlatformEvent, event_id) if len(event_id) <= 255 else None
    if event is None:
        raise NotFound("No such event.")
    return event


