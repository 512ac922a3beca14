"""The concierge's own tables."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from messaging.store.db import Base

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


class OfferThread(Base):
    """The conversation the concierge writes offer events into (``conversations.offer_id`` holds
    the same link, as the seed wants); the primary key keeps it one per offer."""

    __tablename__ = "offer_threads"

    offer_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    conversation_id: Mapped[str] = mapped_column(
        String(21), ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    # Null once the platform deleted the traveler: the transcript stays for the admins (migration 0013).
    traveler_id: Mapped[str | None] = mapped_column(Text, ForeignKey("users.id", ondelete="SET NULL"))


class ConciergeFact(Base):
    """One fact the concierge told one person (SPEC §5.1, "one message per fact, whoever reports it"), written in
    the transaction of the message that tells it. The primary key (kind, subject_id, version, recipient_id) is the
    fact — "the check-in reminder of trip 7 for 2027-03-01, to trav-1" — so that of two reports of it (platform
    events, scheduler runs, in any order or at once) only one can write its message; ``event_id`` is the report
    that did."""

    __tablename__ = "concierge_facts"

    kind: Mapped[str] = mapped_column(String(64), primary_key=True)  # the event type
    subject_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # offer, request, trip
    # What makes it this fact of the subject: the date or deadline reminded of, else a digest of the record.
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    recipient_id: Mapped[str] = mapped_column(
        Text, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    event_id: Mapped[str] = mapped_column(String(255), nullable=False)
    told_at: Mapped[dt.datetime] = mapped_column(nullable=False, server_default=func.now())


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
