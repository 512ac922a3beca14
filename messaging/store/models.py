"""Tables: the seed schema (SPEC §1), the platform's mirrored records, the chat's own bookkeeping, its record of
the concierge's conversations and messages, and the task outbox."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from messaging.store.db import Base
from messaging.store.ids import new_id

ROLES = ("guest", "host", "admin")
DEAL_STATUSES = ("Pending", "Accepted", "Withdrawn", "Denied", "Expired")
TRIP_STATUSES = ("Booked", "Needs attention", "Cancelled")
# Why the concierge handed a conversation to a person (SPEC §5.2; ``payment``: accepting or paying).
HANDOVER_REASONS = ("asked", "not_understood", "cancellation", "change", "refund", "urgent", "other")  # SPEC §5.2


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _id_column() -> Mapped[str]:
    return mapped_column(String(21), primary_key=True, default=new_id)


def _created_at() -> Mapped[dt.datetime]:
    return mapped_column(nullable=False, server_default=func.now())


# --- the platform's records, mirrored so the seed's foreign keys hold -----------------------------


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    phone_number: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16), nullable=False, server_default="guest")
    created_at: Mapped[dt.datetime] = _created_at()
    locale: Mapped[str | None] = mapped_column(String(35))  # BCP 47, e.g. "pt-PT"; null: not given


class DeletedUser(Base):
    """A user the platform deleted: a still-valid token of theirs is refused instead of creating them
    again just in time. Cleared when the platform puts the user back."""

    __tablename__ = "deleted_users"

    user_id: Mapped[str] = mapped_column(Text, primary_key=True)
    deleted_at: Mapped[dt.datetime] = _created_at()


class Property(Base):
    __tablename__ = "properties"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    host_id: Mapped[str] = mapped_column(Text, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    city: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, server_default="UTC")
    check_in_time: Mapped[dt.time] = mapped_column(Time, nullable=False, server_default=text("'15:00:00'"))
    check_out_time: Mapped[dt.time] = mapped_column(Time, nullable=False, server_default=text("'10:00:00'"))
    # The listing's optional facts (SPEC §4): null is unknown, never a default.
    max_guests: Mapped[int | None] = mapped_column(Integer)
    bedrooms: Mapped[int | None] = mapped_column(Integer)
    bathrooms: Mapped[float | None] = mapped_column(DOUBLE_PRECISION)
    amenities: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    pets_allowed: Mapped[bool | None] = mapped_column(Boolean)
    smoking_allowed: Mapped[bool | None] = mapped_column(Boolean)
    house_rules: Mapped[str | None] = mapped_column(Text)
    check_in_info: Mapped[str | None] = mapped_column(Text)  # private: the concierge's rules in SPEC §5.2
    cancellation_policy: Mapped[str | None] = mapped_column(Text)
    about: Mapped[str | None] = mapped_column(Text)


class Offer(Base):
    __tablename__ = "offers"
    __table_args__ = (
        CheckConstraint(_in("status", DEAL_STATUSES), name="status"),
        Index("ix_offers_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    property_id: Mapped[int] = mapped_column(ForeignKey("properties.id", ondelete="CASCADE"), index=True)
    traveler_id: Mapped[str] = mapped_column(Text, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    check_in: Mapped[dt.date] = mapped_column(Date, nullable=False)
    check_out: Mapped[dt.date] = mapped_column(Date, nullable=False)
    total_price_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    expires_at: Mapped[dt.datetime | None] = mapped_column()


class RequestToBook(Base):
    __tablename__ = "requests_to_book"
    __table_args__ = (
        CheckConstraint(_in("status", DEAL_STATUSES), name="status"),
        Index("ix_requests_to_book_status_created_at", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    property_id: Mapped[int] = mapped_column(ForeignKey("properties.id", ondelete="CASCADE"), index=True)
    traveler_id: Mapped[str] = mapped_column(Text, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    check_in: Mapped[dt.date] = mapped_column(Date, nullable=False)
    check_out: Mapped[dt.date] = mapped_column(Date, nullable=False)
    num_guests: Mapped[int] = mapped_column(Integer, nullable=False)
    total_price_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[dt.datetime] = _created_at()
    resolved_at: Mapped[dt.datetime | None] = mapped_column()


class Trip(Base):
    __tablename__ = "trips"
    __table_args__ = (CheckConstraint(_in("status", TRIP_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    property_id: Mapped[int] = mapped_column(ForeignKey("properties.id", ondelete="CASCADE"), index=True)
    traveler_id: Mapped[str] = mapped_column(Text, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    offer_id: Mapped[int | None] = mapped_column(ForeignKey("offers.id", ondelete="SET NULL"))
    request_to_book_id: Mapped[int | None] = mapped_column(ForeignKey("requests_to_book.id", ondelete="SET NULL"))
    check_in: Mapped[dt.date] = mapped_column(Date, nullable=False, index=True)
    check_out: Mapped[dt.date] = mapped_column(Date, nullable=False)
    num_guests: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    total_price_cents: Mapped[int | None] = mapped_column(BigInteger)  # what the traveler paid; null: unknown
    currency: Mapped[str | None] = mapped_column(String(3))


# --- the seed schema ------------------------------------------------------------------------------


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = _id_column()
    name: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = _created_at()
    offer_id: Mapped[str | None] = mapped_column(String)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conversation_id_created_at_id", "conversation_id", "created_at", "id"),
        # Serves the "read" flag update: only messages not yet read by everyone are visited.
        Index(
            "ix_messages_unread_conversation_id_created_at_id",
            "conversation_id",
            "created_at",
            "id",
            postgresql_where=text("NOT read"),
        ),
        # Serves the admins' text search (ILIKE '%…%').
        Index(
            "ix_messages_message_trgm",
            "message",
            postgresql_using="gin",
            postgresql_ops={"message": "gin_trgm_ops"},
        ),
    )

    id: Mapped[str] = _id_column()
    conversation_id: Mapped[str] = mapped_column(
        String(21), ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[str | None] = mapped_column(Text, ForeignKey("users.id", ondelete="SET NULL"), index=True)
    message: Mapped[str] = mapped_column(String(1500), nullable=False)
    read: Mapped[bool | None] = mapped_column(Boolean, server_default=false(), default=False)
    is_edit: Mapped[bool | None] = mapped_column(Boolean, server_default=false(), default=False)
    created_at: Mapped[dt.datetime] = _created_at()
    # Not the seed's: true only on an admin's reply as staff (SPEC §7), null on every other message (a nullable
    # column, added without rewriting the table: migration 0013, decision 0016).
    from_staff: Mapped[bool | None] = mapped_column(Boolean)


class ConversationParticipant(Base):
    __tablename__ = "conversation_participants"

    conversation_id: Mapped[str] = mapped_column(
        String(21), ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        Text, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class PropertyConversation(Base):
    __tablename__ = "property_conversations"
    __table_args__ = (
        Index("uq_property_conversations_traveler_id_property_id", "traveler_id", "property_id", unique=True),
    )

    id: Mapped[str] = _id_column()
    traveler_id: Mapped[str] = mapped_column(Text, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    property_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("properties.id", ondelete="CASCADE"), nullable=False, index=True
    )
    offer_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("offers.id", ondelete="SET NULL"))
    request_to_book_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("requests_to_book.id", ondelete="SET NULL")
    )
    trip_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("trips.id", ondelete="SET NULL"))
    planned_check_in: Mapped[dt.date | None] = mapped_column(Date)
    planned_check_out: Mapped[dt.date | None] = mapped_column(Date)
    planned_num_guests: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = _created_at()


class PropertyMessage(Base):
    __tablename__ = "property_messages"
    __table_args__ = (
        Index("ix_property_messages_conversation_id_created_at_id", "conversation_id", "created_at", "id"),
        Index("ix_property_messages_created_at", "created_at"),
    )

    id: Mapped[str] = _id_column()
    conversation_id: Mapped[str] = mapped_column(
        String(21), ForeignKey("property_conversations.id", ondelete="CASCADE"), nullable=False
    )
    author_id: Mapped[str] = mapped_column(
        Text, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    message: Mapped[str] = mapped_column(Text, nullable=False)
    read_at: Mapped[dt.datetime | None] = mapped_column()
    edited_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = _created_at()


# --- what the seed lacks: new tables, never repurposed seed columns ------------------------------


class ConversationStats(Base):
    """Per-conversation counters kept in the transaction that posts a message: the inbox sorts on
    ``last_activity_at`` and unread counts are ``message_count`` minus a cursor's ``read_count``."""

    __tablename__ = "conversation_stats"

    conversation_id: Mapped[str] = mapped_column(
        String(21), ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    message_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    last_message_id: Mapped[str | None] = mapped_column(String(21))
    last_activity_at: Mapped[dt.datetime] = mapped_column(nullable=False, server_default=func.now(), index=True)


class ReadCursor(Base):
    """How far one participant has read one conversation; it only moves forward."""

    __tablename__ = "read_cursors"
    __table_args__ = (
        ForeignKeyConstraint(
            ["conversation_id", "user_id"],
            ["conversation_participants.conversation_id", "conversation_participants.user_id"],
            ondelete="CASCADE",
            name="fk_read_cursors_participant",
        ),
    )

    conversation_id: Mapped[str] = mapped_column(String(21), primary_key=True)
    user_id: Mapped[str] = mapped_column(Text, primary_key=True)
    read_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    last_read_message_id: Mapped[str | None] = mapped_column(String(21))
    last_read_message_created_at: Mapped[dt.datetime | None] = mapped_column()
    last_read_at: Mapped[dt.datetime | None] = mapped_column()
    # The participant's name, so an inbox page lists its conversations' participants from their cursors without a
    # lookup in users per participant. Kept by database triggers (migration 0008): copied from users whenever a
    # cursor is made, whatever the insert says, and rewritten in all of a user's cursors when their name changes.
    user_name: Mapped[str | None] = mapped_column(Text)


class InboxEntry(Base):
    """The inbox's order: one row per participation with its conversation's ``last_activity_at``, kept by
    database triggers (migrations 0006, 0007 and 0009) — made when the participation is, updated whenever the
    conversation's activity in ``conversation_stats`` moves or its last message changes, deleted with the
    participation — so a page of anyone's inbox is a range of ``ix_inbox_entries_user_activity``, however many
    conversations they are in. A table of its own, locked only by those triggers and by its participation's
    deletion, and always last: every writer takes its read cursor, then message rows, then the conversation's
    counters, then entries (migration 0009), so keeping it cannot deadlock with readers moving their cursors."""

    __tablename__ = "inbox_entries"
    __table_args__ = (
        ForeignKeyConstraint(
            ["conversation_id", "user_id"],
            ["conversation_participants.conversation_id", "conversation_participants.user_id"],
            ondelete="CASCADE",
            name="fk_inbox_entries_participant",
        ),
        Index("ix_inbox_entries_user_activity", "user_id", "last_activity_at", "conversation_id"),
    )

    conversation_id: Mapped[str] = mapped_column(String(21), primary_key=True)
    user_id: Mapped[str] = mapped_column(Text, primary_key=True)
    last_activity_at: Mapped[dt.datetime] = mapped_column(nullable=False)
    # The rest of what an inbox page shows of the conversation besides its participants and last message
    # (migration 0007): its counters, kept by the same triggers as last_activity_at, and its name, offer and
    # creation time, copied when the entry is made (a conversation's never change).
    message_count: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    last_message_id: Mapped[str | None] = mapped_column(String(21))
    name: Mapped[str | None] = mapped_column(String(255))
    offer_id: Mapped[str | None] = mapped_column(String)
    conversation_created_at: Mapped[dt.datetime | None] = mapped_column()
    # Whether it is a concierge chat, and its last message's author, text, flags and time (migration 0009):
    # copied by triggers when the entry is made, when the counters move, when that message changes and when a
    # concierge thread is made or deleted, so a page reads neither ``messages`` nor ``concierge_threads``.
    is_concierge: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    last_message_user_id: Mapped[str | None] = mapped_column(Text)
    last_message_text: Mapped[str | None] = mapped_column(String(1500))
    last_message_read: Mapped[bool | None] = mapped_column(Boolean)
    last_message_is_edit: Mapped[bool | None] = mapped_column(Boolean)
    last_message_created_at: Mapped[dt.datetime | None] = mapped_column()
    # Whether that message is a staff reply (its ``from_staff``), copied by the same triggers (migration 0013).
    last_message_from_staff: Mapped[bool | None] = mapped_column(Boolean)


class DirectConversation(Base):
    """The one direct-message conversation of a pair of users (``user_low`` < ``user_high``):
    the primary key, not a lookup, keeps two concurrent creations from making two."""

    __tablename__ = "direct_conversations"

    user_low: Mapped[str] = mapped_column(Text, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    user_high: Mapped[str] = mapped_column(
        Text, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    conversation_id: Mapped[str] = mapped_column(
        String(21), ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False, unique=True
    )


class MessageEdit(Base):
    """The text a message had before each edit."""

    __tablename__ = "message_edits"

    id: Mapped[str] = _id_column()
    message_id: Mapped[str] = mapped_column(
        String(21), ForeignKey("messages.id", ondelete="CASCADE"), nullable=False, index=True
    )
    previous_message: Mapped[str] = mapped_column(String(1500), nullable=False)
    edited_at: Mapped[dt.datetime] = _created_at()


class PropertyMessageEdit(Base):
    """The text a property message had before each edit."""

    __tablename__ = "property_message_edits"

    id: Mapped[str] = _id_column()
    property_message_id: Mapped[str] = mapped_column(
        String(21), ForeignKey("property_messages.id", ondelete="CASCADE"), nullable=False, index=True
    )
    previous_message: Mapped[str] = mapped_column(Text, nullable=False)
    edited_at: Mapped[dt.datetime] = _created_at()


class IdempotencyKey(Base):
    """The first response to a creating POST, replayed for the same (caller, key) for 24 hours."""

    __tablename__ = "idempotency_keys"

    owner_id: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(nullable=False, server_default=func.now(), index=True)


# --- the concierge's conversations, as the chat sees them -----------------------------------------


class ConciergeThread(Base):
    """A user's concierge conversation: which conversation it is (the chat's ``isConcierge``, and nobody joins or
    leaves it), and whether a human has taken it over (then the bot no longer answers in it)."""

    __tablename__ = "concierge_threads"
    __table_args__ = (
        # The admins' "needs a human" list: only taken-over threads are in it.
        Index("ix_concierge_threads_needs_human", "conversation_id",
              postgresql_where=text("needs_human")),
        CheckConstraint(_in("handover_reason", HANDOVER_REASONS), name="handover_reason"),
        # The hand-overs still waiting for the one "the team has been alerted" message.
        Index("ix_concierge_threads_unalerted_handed_over_at", "handed_over_at",
              postgresql_where=text("needs_human AND team_alerted_at IS NULL")),
    )

    conversation_id: Mapped[str] = mapped_column(
        String(21), ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    # Null once the platform deleted the user: the thread, and so the transcript, stays for the admins (migration
    # 0013); only an explicit erasure removes it.
    user_id: Mapped[str | None] = mapped_column(
        Text, ForeignKey("users.id", ondelete="SET NULL"), unique=True
    )
    needs_human: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false(), default=False)
    misunderstandings: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0", default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(nullable=False, server_default=func.now())
    # Why the bot handed the conversation to a person (SPEC §5.2) and when; null when an admin took it or the bot
    # has it. ``team_alerted_at``: when the bot told the user, once per hand-over, that the team was alerted.
    handover_reason: Mapped[str | None] = mapped_column(String(32))
    handed_over_at: Mapped[dt.datetime | None] = mapped_column()
    team_alerted_at: Mapped[dt.datetime | None] = mapped_column()


class ConciergeMessageOrigin(Base):
    """Why the concierge wrote a message: the event (and recipient) or the question it answers.

    Every concierge message has one, which is also how a concierge message (``user_id`` null by
    design) is told apart from the message of a user who was later deleted. The unique
    (event_id, recipient_id) pair is what makes an event notify each recipient at most once.
    """

    __tablename__ = "concierge_message_origins"
    __table_args__ = (
        UniqueConstraint("event_id", "recipient_id", name="uq_concierge_message_origins_event_recipient"),
        # One answer per question, however often the answering task runs.
        UniqueConstraint("question_message_id", name="uq_concierge_message_origins_question_message_id"),
        Index("ix_concierge_message_origins_event_id", "event_id"),
    )

    message_id: Mapped[str] = mapped_column(
        String(21), ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # event | reply | system
    event_id: Mapped[str | None] = mapped_column(String(255))
    recipient_id: Mapped[str | None] = mapped_column(Text)
    question_message_id: Mapped[str | None] = mapped_column(String(21))
    intent: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(nullable=False, server_default=func.now())
    # For an answer: the records it was made from ({"trips": [7], "properties": [3]}) — a follow-up question
    # refers to them — and the language it was written in.
    records: Mapped[dict | None] = mapped_column(JSONB)  # type: ignore[type-arg]
    language: Mapped[str | None] = mapped_column(String(8))


# --- the task outbox ------------------------------------------------------------------------------


class OutboxEntry(Base):
    """A task to enqueue, written in the transaction whose commit it depends on (messaging.outbox).

    Sent right after commit with its id in the message's headers; done (``done_at``) once the task reports it
    over, succeeded or failed for good. The sweeper sends what was never sent (broker down, process killed) and,
    again, what was sent but not done in time (the broker lost it). ``dispatched_at`` is when it was last sent,
    or, while its task waits to retry, when that retry is due. Tasks are idempotent, so sending twice is harmless
    and sending never is impossible.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_unfinished_created_at",
            "created_at",
            postgresql_where=text("done_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(21), primary_key=True)
    task_name: Mapped[str] = mapped_column(String(128), nullable=False)
    args: Mapped[list] = mapped_column(JSONB, nullable=False)  # type: ignore[type-arg]
    created_at: Mapped[dt.datetime] = mapped_column(nullable=False, server_default=func.now())
    dispatched_at: Mapped[dt.datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    done_at: Mapped[dt.datetime | None] = mapped_column()
