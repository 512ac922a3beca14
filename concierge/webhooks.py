"""Telling the platform (SPEC §5.4): a signed webhook when someone has unread messages.

Every 30 s the scheduler looks for people with messages they have not read for ``GRACE`` (so
someone reading right now is not texted), at most one delivery per person per hour — a unique
(user, hour) row stops a second one even when two schedulers run at once. Each delivery is sent by a
task that retries with backoff under the same delivery id, so the receiver can de-duplicate.

Request: ``POST PLATFORM_WEBHOOK_URL`` with ``{"id", "type": "user.unread_messages", "userId",
"unreadCount", "createdAt"}`` and headers ``X-Concierge-Delivery`` (the id), ``X-Concierge-Timestamp``
(Unix seconds) and ``X-Concierge-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>``.
Off when ``PLATFORM_WEBHOOK_URL`` is unset.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time
import urllib.error
import urllib.request

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from concierge.models import WebhookDelivery
from messaging.outbox import enqueue_after_commit
from messaging.store.db import utcnow
from messaging.store.ids import new_id
from messaging.store.models import (
    ConversationStats,
    Property,
    PropertyConversation,
    PropertyMessage,
    ReadCursor,
)
from messaging.store.upsert import insert_ignore

GRACE = dt.timedelta(seconds=60)
WINDOW = dt.timedelta(hours=1)
DELIVER_TASK = "concierge.deliver_webhook"
EVENT_TYPE = "user.unread_messages"


class DeliveryFailed(Exception):
    """The receiver did not answer 2xx (or could not be reached): worth retrying."""


def _hour(moment: dt.datetime) -> int:
    return int(moment.timestamp() // 3600)


def unread_candidates(session: Session, now: dt.datetime, grace: dt.timedelta = GRACE) -> dict[str, int]:
    """People with messages unread for at least ``grace`` that arrived within the last hour."""
    since, until = now - WINDOW, now - grace
    counts: dict[str, int] = {}
    # Conversations with recent activity (index on last_activity_at), then their cursors by key.
    rows = session.execute(
        select(ReadCursor.user_id, ConversationStats.message_count - ReadCursor.read_count)
        .join(ConversationStats, ConversationStats.conversation_id == ReadCursor.conversation_id)
        .where(
            ConversationStats.last_activity_at > since,
            ConversationStats.last_activity_at <= until,
            ConversationStats.message_count > ReadCursor.read_count,
        )
    ).all()
    for user_id, unread in rows:
        counts[user_id] = counts.get(user_id, 0) + int(unread)
    # Property messages to the other party, unread (index on created_at).
    other = func.coalesce(
        func.nullif(PropertyConversation.traveler_id, PropertyMessage.author_id), Property.host_id
    )
    rows = session.execute(
        select(other.label("user_id"), func.count())
        .select_from(PropertyMessage)
        .join(PropertyConversation, PropertyConversation.id == PropertyMessage.conversation_id)
        .join(Property, Property.id == PropertyConversation.property_id)
        .where(PropertyMessage.created_at > since, PropertyMessage.created_at <= until,
               PropertyMessage.read_at.is_(None))
        .group_by(other)
    ).all()
    for user_id, unread in rows:
        counts[user_id] = counts.get(user_id, 0) + int(unread)
    return counts


def schedule_unread_webhooks(session: Session, now: dt.datetime, url: str | None) -> int:
    """Create (and enqueue) one delivery per person with unread messages, at most one an hour."""
    if not url:
        return 0
    created = 0
    for user_id, unread in sorted(unread_candidates(session, now).items()):
        recent = session.execute(
            select(WebhookDelivery.id).where(
                WebhookDelivery.user_id == user_id, WebhookDelivery.created_at > now - WINDOW
            )
        ).first()
        if recent is not None:
            continue
        delivery_id = new_id()
        if insert_ignore(
            session,
            WebhookDelivery,
            {"id": delivery_id, "user_id": user_id, "hour": _hour(now), "unread_count": unread,
             "status": "pending", "attempts": 0, "created_at": now},
        ):
            enqueue_after_commit(session, DELIVER_TASK, delivery_id)
            created += 1
    return created


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def deliver(session: Session, delivery_id: str, url: str, secret: str, timeout: float = 5.0) -> str:
    """POST one delivery: "delivered", or "retry" with the error noted on the row (the caller commits
    the attempt, then retries). Already delivered: no call. The row stays locked until the caller commits, so a
    second copy of the task (redelivered, or sent again by the outbox sweeper) waits, then finds it delivered."""
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.status != "pending":
        return delivery.status if delivery else "missing"
    delivery.attempts += 1
    body = orjson.dumps({"id": delivery.id, "type": EVENT_TYPE, "userId": delivery.user_id,
                         "unreadCount": delivery.unread_count, "createdAt": delivery.created_at.isoformat()})
    timestamp = int(time.time())
    request = urllib.request.Request(  # noqa: S310 - the URL is the operator's configuration
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Concierge-Delivery": delivery.id,
            "X-Concierge-Timestamp": str(timestamp),
            "X-Concierge-Signature": sign(secret, timestamp, body),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        delivery.last_error = f"unreachable: {exc}"[:500]
        return "retry"
    if 200 <= status < 300:
        delivery.status = "delivered"
        delivery.delivered_at = utcnow()
        delivery.last_error = None
        return "delivered"
    delivery.last_error = f"HTTP {status}"
    return "retry"


def give_up(session: Session, delivery_id: str, error: str) -> None:
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is not None and delivery.status == "pending":
        delivery.status = "failed"
        delivery.last_error = error[:500]

