"""The concierge's own tables."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from messaging.db import Base


class ConciergeThread(Base):
    """Which conversation is a user's concierge chat, and whether a human has taken it over."""

    __tablename__ = "concierge_threads"
    __table_args__ = (
        # The admins' "needs a human" list: only taken-over threads are in it.
        Index("ix_concierge_threads_needs_human", "conversation_id",
              postgresql_where=text("needs_human")),
    )

    conversation_id: Mapped[str] = mapped_column(
        String(21), ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        Text, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    needs_human: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false(), default=False)
    misunderstandings: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0", default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(nullable=False, server_default=func.now())


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


EVENT_STATUSES = ("pending", "processing", "processed", "failed", "skipped")


class PlatformEvent(Base):
    """A platform event as received (SPEC §4), with its processing state."""

    __tablename__ = "platform_events"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'processing', 'processed', 'failed', 'skipped')", name="status"),
        Index("ix_platform_events_status_received_at", "status", "received_at"),
        Index("ix_platform_events_type_received_at", "type", "received_at"),
        Index("ix_platform_events_received_at", "received_at"),
        Index(
            "ix_platform_events_unfinished_updated_at",
            "updated_at",
            postgresql_where=text("status IN ('pending', 'processing')"),
        ),
    )

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    occurred_at: Mapped[dt.datetime] = mapped_column(nullable=False)
    payload: Mapped[dict] = mapped_column(JSONB, nullable=False)  # type: ignore[type-arg]
    payload_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False, server_default="platform")
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(nullable=False, server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(nullable=False, server_default=func.now())
    processed_at: Mapped[dt.datetime | None] = mapped_column()


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


class OfferThread(Base):
    """The conversation the concierge writes offer events into (``conversations.offer_id`` holds
    the same link, as the seed wants); the primary key keeps it one per offer."""

    __tablename__ = "offer_threads"

    offer_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    conversation_id: Mapped[str] = mapped_column(
        String(21), ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    traveler_id: Mapped[str] = mapped_column(Text, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)


class WebhookDelivery(Base):
    """One "you have unread messages" call to the platform (SPEC §5.4): at most one per user per hour,
    which the unique (user_id, hour) enforces when two schedulers run at once."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("user_id", "hour", name="uq_webhook_deliveries_user_id_hour"),
        Index("ix_webhook_deliveries_user_id_created_at", "user_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(21), primary_key=True)
    user_id: Mapped[str] = mapped_column(Text, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    hour: Mapped[int] = mapped_column(Integer, nullable=False)  # hours since the epoch, when created
    unread_count: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(nullable=False, server_default=func.now())
    delivered_at: Mapped[dt.datetime | None] = mapped_column()
