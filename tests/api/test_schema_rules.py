"""The seed schema's rules as PostgreSQL enforces them (SPEC §1): deletion cascades, the composite
primary key, the message length limit and the nanoid defaults."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg import errors as pg_errors
from sqlalchemy import Engine, delete, func, insert, select, text
from sqlalchemy.exc import DataError, IntegrityError

from messaging.store.db import get_engine
from messaging.store.ids import ID_SIZE, new_id
from messaging.store.models import (
    Conversation,
    ConversationParticipant,
    Message,
    Offer,
    Property,
    PropertyConversation,
    PropertyMessage,
    RequestToBook,
    Trip,
    User,
)

NANOID = re.compile(r"[A-Za-z0-9_-]{21}")


@pytest.fixture
def engine(pg_app: Any) -> Engine:
    with pg_app.app_context():
        return get_engine()


@pytest.fixture
def world(engine: Engine) -> Iterator[dict[str, Any]]:
    """Two users in a conversation, a property of a host with an offer, a request to book and a trip,
    and a property thread of the traveler linked to all three."""
    with engine.begin() as conn:
        conn.execute(
            insert(User),
            [
                {"id": "traveler", "name": "Tess", "role": "guest"},
                {"id": "other", "name": "Otto", "role": "guest"},
                {"id": "host", "name": "Hana", "role": "host"},
            ],
        )
        conn.execute(insert(Property).values(id=1, host_id="host", name="Casa Azul", city="Lisbon"))
        day = dt.date(2026, 12, 20)
        deal = {"property_id": 1, "traveler_id": "traveler", "check_in": day, "check_out": day + dt.timedelta(days=3),
                "total_price_cents": 123_400, "currency": "USD"}
        conn.execute(insert(Offer).values(id=10, status="Pending", **deal))
        conn.execute(insert(RequestToBook).values(id=20, num_guests=2, status="Accepted", **deal))
        conn.execute(
            insert(Trip).values(
                id=30, property_id=1, traveler_id="traveler", offer_id=10, request_to_book_id=20,
                check_in=day, check_out=day + dt.timedelta(days=3), num_guests=2, status="Booked",
            )
        )
        conversation_id = conn.execute(insert(Conversation).values(name="Trip").returning(Conversation.id)).scalar_one()
        conn.execute(
            insert(ConversationParticipant),
            [{"conversation_id": conversation_id, "user_id": u} for u in ("traveler", "other")],
        )
        message_ids = [
            conn.execute(
                insert(Message).values(conversation_id=conversation_id, user_id=u, message=f"hello from {u}")
                .returning(Message.id)
            ).scalar_one()
            for u in ("traveler", "other", None)
        ]
        thread_id = conn.execute(
            insert(PropertyConversation)
            .values(traveler_id="traveler", property_id=1, offer_id=10, request_to_book_id=20, trip_id=30)
            .returning(PropertyConversation.id)
        ).scalar_one()
        property_message_ids = [
            conn.execute(
                insert(PropertyMessage).values(conversation_id=thread_id, author_id=u, message="hi")
                .returning(PropertyMessage.id)
            ).scalar_one()
            for u in ("traveler", "host")
        ]
    yield {
        "conversation_id": conversation_id,
        "message_ids": message_ids,
        "thread_id": thread_id,
        "property_message_ids": property_message_ids,
    }


def _count(engine: Engine, model: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model).where(*where)).scalar_one())


# --- deletion rules -------------------------------------------------------------------------------


def test_deleting_a_conversation_deletes_its_messages_and_participants(engine: Engine, world: dict[str, Any]) -> None:
    conversation_id = world["conversation_id"]
    assert _count(engine, Message, Message.conversation_id == conversation_id) == 3
    with engine.begin() as conn:
        conn.execute(delete(Conversation).where(Conversation.id == conversation_id))
    assert _count(engine, Message, Message.conversation_id == conversation_id) == 0
    assert _count(engine, ConversationParticipant, ConversationParticipant.conversation_id == conversation_id) == 0
    assert _count(engine, User) == 3  # the people stay


def test_deleting_a_user_keeps_their_messages_without_author(engine: Engine, world: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(delete(User).where(User.id == "traveler"))
    with engine.connect() as conn:
        authors = dict(conn.execute(select(Message.id, Message.user_id)).all())
    traveler_message, other_message, concierge_message = world["message_ids"]
    assert authors == {traveler_message: None, other_message: "other", concierge_message: None}
    assert _count(engine, Conversation) == 1


def test_deleting_a_user_removes_their_participations(engine: Engine, world: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(delete(User).where(User.id == "traveler"))
    with engine.connect() as conn:
        remaining = conn.execute(select(ConversationParticipant.user_id)).scalars().all()
    assert remaining == ["other"]


def test_deleting_a_user_deletes_their_property_conversations_as_traveler(
    engine: Engine, world: dict[str, Any]
) -> None:
    with engine.begin() as conn:
        conn.execute(delete(User).where(User.id == "traveler"))
    assert _count(engine, PropertyConversation) == 0
    assert _count(engine, PropertyMessage) == 0  # the thread's messages went with it, the host's too
    assert _count(engine, Property) == 1


def test_deleting_a_user_deletes_their_property_messages_as_author(engine: Engine, world: dict[str, Any]) -> None:
    # The host is not the thread's traveler: the thread stays, only the host's messages go.
    # (Deleting the host cascades to their property and so to the thread; detach it first
    # so that the rule under test is the one on property_messages.author_id.)
    with engine.begin() as conn:
        conn.execute(insert(User).values(id="host2", role="host"))
        conn.execute(text("UPDATE properties SET host_id = 'host2' WHERE id = 1"))
        conn.execute(delete(User).where(User.id == "host"))
    traveler_message, host_message = world["property_message_ids"]
    with engine.connect() as conn:
        remaining = conn.execute(select(PropertyMessage.id)).scalars().all()
    assert remaining == [traveler_message]
    assert _count(engine, PropertyConversation) == 1


@pytest.mark.parametrize(
    ("model", "key", "column"),
    [
        (Offer, 10, "offer_id"),
        (RequestToBook, 20, "request_to_book_id"),
        (Trip, 30, "trip_id"),
    ],
    ids=["offer", "request_to_book", "trip"],
)
def test_deleting_a_deal_nulls_its_link_on_property_conversations(
    engine: Engine, world: dict[str, Any], model: Any, key: int, column: str
) -> None:
    with engine.begin() as conn:
        conn.execute(delete(model).where(model.id == key))
    with engine.connect() as conn:
        links = conn.execute(
            select(PropertyConversation.offer_id, PropertyConversation.request_to_book_id, PropertyConversation.trip_id)
        ).one()._asdict()
    expected = {"offer_id": 10, "request_to_book_id": 20, "trip_id": 30} | {column: None}
    if model is not Trip:
        # The trip links to the offer and the request too (set null), but stays.
        assert _count(engine, Trip) == 1
    assert links == expected
    assert _count(engine, PropertyMessage) == 2


# --- keys and limits ------------------------------------------------------------------------------


def test_a_duplicate_participant_is_rejected_by_the_primary_key(engine: Engine, world: dict[str, Any]) -> None:
    with pytest.raises(IntegrityError) as excinfo, engine.begin() as conn:
        conn.execute(insert(ConversationParticipant).values(conversation_id=world["conversation_id"], user_id="other"))
    assert isinstance(excinfo.value.orig, pg_errors.UniqueViolation)
    assert excinfo.value.orig.diag.constraint_name == "pk_conversation_participants"


def test_the_database_caps_a_message_at_1500_characters(engine: Engine, world: dict[str, Any]) -> None:
    conversation_id = world["conversation_id"]
    with engine.begin() as conn:
        # Characters, not bytes: 1500 four-byte characters fit.
        for body in ("x" * 1500, "🏖" * 1500):
            conn.execute(insert(Message).values(conversation_id=conversation_id, user_id="other", message=body))
    with pytest.raises(DataError) as excinfo, engine.begin() as conn:
        conn.execute(insert(Message).values(conversation_id=conversation_id, user_id="other", message="x" * 1501))
    assert isinstance(excinfo.value.orig, pg_errors.StringDataRightTruncation)
    assert _count(engine, Message, func.length(Message.message) == 1500) == 2


# --- ids ------------------------------------------------------------------------------------------


def test_rows_inserted_without_an_id_get_a_nanoid_from_the_database(engine: Engine, world: dict[str, Any]) -> None:
    # Plain SQL, so the ORM's Python-side default (new_id) cannot be what fills the id.
    statements = {
        "conversations": "INSERT INTO conversations (name) VALUES ('db default') RETURNING id",
        "messages": "INSERT INTO messages (conversation_id, message) VALUES (:conversation_id, 'x') RETURNING id",
        "property_conversations": (
            "INSERT INTO property_conversations (traveler_id, property_id) VALUES ('other', 1) RETURNING id"
        ),
        "property_messages": (
            "INSERT INTO property_messages (conversation_id, author_id, message) "
            "VALUES (:thread_id, 'host', 'x') RETURNING id"
        ),
    }
    params = {"conversation_id": world["conversation_id"], "thread_id": world["thread_id"]}
    ids = {}
    with engine.begin() as conn:
        for table, sql in statements.items():
            ids[table] = conn.execute(text(sql), params).scalar_one()
    for table, value in ids.items():
        assert NANOID.fullmatch(value), (table, value)
    assert len(set(ids.values())) == len(ids)


def test_new_id_has_the_shape_of_the_database_default() -> None:
    assert ID_SIZE == 21
    for _ in range(100):
        assert NANOID.fullmatch(new_id())


def test_a_thousand_new_ids_are_distinct() -> None:
    ids = [new_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
