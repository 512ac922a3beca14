"""Who may do what (SPEC §3): every /v1 route × every kind of caller, generated from the URL map.

A route added without an entry in MATRIX fails ``test_every_route_has_an_entry``; an entry for a
route that no longer exists fails too. Each case runs against a fresh world on both databases.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from concierge.models import PlatformEvent
from messaging.store.db import session_scope
from messaging.store.models import (
    ConciergeThread,
    Conversation,
    ConversationParticipant,
    ConversationStats,
    Message,
    Offer,
    Property,
    PropertyConversation,
    PropertyMessage,
    ReadCursor,
    RequestToBook,
    Trip,
    User,
)

ROLES = ("participant", "outsider", "host", "other_host", "admin", "service", "anonymous", "expired")
# The token subject and role each kind of caller uses.
CALLERS = {
    "participant": ("p1", "guest"),
    "outsider": ("o1", "guest"),
    "host": ("h1", "host"),
    "other_host": ("h2", "host"),
    "admin": ("a1", "admin"),
    "service": ("platform", "service"),
    "expired": ("p1", "guest"),
}

NOW = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
EVENT_BODY = {
    "id": "ev-matrix-2",
    "type": "trip.cancelled",
    "occurredAt": "2026-11-01T12:00:00Z",
    "data": {
        "property": {"id": 1, "hostId": "h1", "name": "Casa", "timezone": "Europe/Lisbon"},
        "traveler": {"id": "p1", "name": "Pat", "role": "guest"},
        "trip": {
            "id": 30,
            "propertyId": 1,
            "travelerId": "p1",
            "checkIn": "2026-12-01",
            "checkOut": "2026-12-04",
            "numGuests": 2,
            "status": "Cancelled",
        },
    },
}


def _u(participant: int, outsider: int, host: int, other_host: int, admin: int, service: int) -> dict[str, int]:
    return {
        "participant": participant,
        "outsider": outsider,
        "host": host,
        "other_host": other_host,
        "admin": admin,
        "service": service,
        "anonymous": 401,
        "expired": 401,
    }


SERVICE_ONLY_CREATE = _u(403, 403, 403, 403, 403, 201)
SERVICE_ONLY_OK = _u(403, 403, 403, 403, 403, 200)
SERVICE_ONLY_DELETE = _u(403, 403, 403, 403, 403, 204)
USERS_OK = _u(200, 200, 200, 200, 200, 403)
CONVERSATION_MEMBER = _u(200, 404, 404, 404, 404, 403)
THREAD_READ = _u(200, 404, 200, 404, 200, 403)
ADMIN_ONLY = _u(403, 403, 403, 403, 200, 403)
RECORD_READ = _u(403, 403, 403, 403, 200, 200)  # the platform and admins read records; the platform writes

# (method, rule) → (path values, JSON body or None, expected status by caller)
MATRIX: dict[tuple[str, str], tuple[dict[str, str], Any, dict[str, int]]] = {
    ("GET", "/v1/me"): ({}, None, _u(200, 200, 200, 200, 200, 200)),
    ("GET", "/v1/me/unread"): ({}, None, USERS_OK),
    ("GET", "/v1/concierge"): ({}, None, USERS_OK),
    ("GET", "/v1/stream"): ({}, None, USERS_OK),
    ("POST", "/v1/conversations"): ({}, {"participantIds": ["p2"]}, _u(201, 201, 201, 201, 201, 403)),
    ("GET", "/v1/conversations"): ({}, None, USERS_OK),
    ("GET", "/v1/conversations/<id>"): ({"id": "C"}, None, CONVERSATION_MEMBER),
    ("GET", "/v1/conversations/<id>/messages"): ({"id": "C"}, None, CONVERSATION_MEMBER),
    ("POST", "/v1/conversations/<id>/messages"): ({"id": "C"}, {"message": "hi"}, _u(201, 404, 404, 404, 404, 403)),
    ("POST", "/v1/conversations/<id>/participants"): (
        {"id": "C"},
        {"userId": "h2"},
        _u(201, 404, 404, 404, 404, 403),
    ),
    ("DELETE", "/v1/conversations/<id>/participants/<userId>"): (
        {"id": "C", "userId": "p1"},
        None,
        # Everyone but the participant is not in the conversation, so for them it does not exist.
        _u(204, 404, 404, 404, 404, 403),
    ),
    ("POST", "/v1/conversations/<id>/read"): ({"id": "C"}, {}, CONVERSATION_MEMBER),
    ("PATCH", "/v1/messages/<id>"): ({"id": "M"}, {"message": "edited"}, CONVERSATION_MEMBER),
    ("POST", "/v1/properties/<propertyId>/conversations"): (
        {"propertyId": "1"},
        {"message": "Is it quiet?"},
        # the traveler reuses their thread (200); the property's own host may not inquire (403)
        _u(200, 201, 403, 201, 403, 403),
    ),
    ("GET", "/v1/property-conversations"): ({}, None, USERS_OK),
    ("GET", "/v1/property-conversations/<id>"): ({"id": "T"}, None, THREAD_READ),
    ("GET", "/v1/property-conversations/<id>/messages"): ({"id": "T"}, None, THREAD_READ),
    ("POST", "/v1/property-conversations/<id>/messages"): (
        {"id": "T"},
        {"message": "Yes"},
        _u(201, 404, 201, 404, 403, 403),
    ),
    ("POST", "/v1/property-conversations/<id>/read"): ({"id": "T"}, {}, _u(200, 404, 200, 404, 403, 403)),
    ("PATCH", "/v1/property-messages/<id>"): (
        {"id": "PM"},
        {"message": "edited"},
        # the host is a party to the thread but not the author
        _u(200, 404, 403, 404, 403, 403),
    ),
    ("POST", "/v1/events"): ({}, EVENT_BODY, _u(403, 403, 403, 403, 403, 202)),
    ("GET", "/v1/events/<id>"): ({"id": "ev-matrix"}, None, SERVICE_ONLY_OK),
    ("PUT", "/v1/users/<id>"): ({"id": "new-user"}, {"name": "New", "role": "guest"}, SERVICE_ONLY_CREATE),
    ("DELETE", "/v1/users/<id>"): ({"id": "p2"}, None, SERVICE_ONLY_DELETE),
    ("GET", "/v1/users/<id>"): ({"id": "p2"}, None, RECORD_READ),
    ("GET", "/v1/properties/<id>"): ({"id": "2"}, None, RECORD_READ),
    ("GET", "/v1/offers/<id>"): ({"id": "10"}, None, RECORD_READ),
    ("GET", "/v1/requests-to-book/<id>"): ({"id": "20"}, None, RECORD_READ),
    ("GET", "/v1/trips/<id>"): ({"id": "30"}, None, RECORD_READ),
    ("PUT", "/v1/properties/<id>"): (
        {"id": "9"},
        {"hostId": "h2", "name": "Loft", "timezone": "Europe/Paris"},
        SERVICE_ONLY_CREATE,
    ),
    ("DELETE", "/v1/properties/<id>"): ({"id": "2"}, None, SERVICE_ONLY_DELETE),
    ("PUT", "/v1/offers/<id>"): (
        {"id": "11"},
        {
            "propertyId": 1,
            "travelerId": "p1",
            "checkIn": "2026-12-01",
            "checkOut": "2026-12-04",
            "totalPriceCents": 50000,
            "currency": "EUR",
            "status": "Pending",
            "expiresAt": "2026-11-20T12:00:00Z",
        },
        SERVICE_ONLY_CREATE,
    ),
    ("DELETE", "/v1/offers/<id>"): ({"id": "10"}, None, SERVICE_ONLY_DELETE),
    ("PUT", "/v1/requests-to-book/<id>"): (
        {"id": "21"},
        {
            "propertyId": 1,
            "travelerId": "p1",
            "checkIn": "2026-12-01",
            "checkOut": "2026-12-04",
            "numGuests": 2,
            "totalPriceCents": 50000,
            "currency": "EUR",
            "status": "Pending",
            "createdAt": "2026-11-01T12:00:00Z",
        },
        SERVICE_ONLY_CREATE,
    ),
    ("DELETE", "/v1/requests-to-book/<id>"): ({"id": "20"}, None, SERVICE_ONLY_DELETE),
    ("PUT", "/v1/trips/<id>"): (
        {"id": "31"},
        {
            "propertyId": 1,
            "travelerId": "p1",
            "checkIn": "2026-12-01",
            "checkOut": "2026-12-04",
            "numGuests": 2,
            "status": "Booked",
        },
        SERVICE_ONLY_CREATE,
    ),
    ("DELETE", "/v1/trips/<id>"): ({"id": "30"}, None, SERVICE_ONLY_DELETE),
    ("GET", "/v1/admin/transcripts"): ({}, None, ADMIN_ONLY),
    ("GET", "/v1/admin/transcripts/<conversationId>"): ({"conversationId": "K"}, None, ADMIN_ONLY),
    ("GET", "/v1/admin/transcripts/<conversationId>/export"): ({"conversationId": "K"}, None, ADMIN_ONLY),
    ("POST", "/v1/admin/transcripts/<conversationId>/takeover"): ({"conversationId": "K"}, {}, ADMIN_ONLY),
    ("POST", "/v1/admin/transcripts/<conversationId>/handback"): ({"conversationId": "K"}, {}, ADMIN_ONLY),
    ("POST", "/v1/admin/transcripts/<conversationId>/messages"): (
        {"conversationId": "K"},
        {"message": "A person here"},
        _u(403, 403, 403, 403, 201, 403),
    ),
    ("GET", "/v1/admin/events"): ({}, None, ADMIN_ONLY),
    # the seeded event is pending, not failed: an admin may ask, and is told it cannot be retried
    ("POST", "/v1/admin/events/<id>/retry"): ({"id": "ev-matrix"}, {}, _u(403, 403, 403, 403, 409, 403)),
}


def _v1_routes(app: Any) -> set[tuple[str, str]]:
    return {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/v1/")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def test_every_route_has_an_entry(app: Any) -> None:
    routes = _v1_routes(app)
    missing = sorted(routes - MATRIX.keys())
    stale = sorted(MATRIX.keys() - routes)
    assert not missing, f"routes without an authorization entry: {missing}"
    assert not stale, f"entries for routes that do not exist: {stale}"


def _seed(app: Any) -> dict[str, str]:
    """A small world: p1 and p2 talk in C; p1 asks h1 about property 1 in thread T."""
    with app.app_context(), session_scope() as s:
        for uid, role in (("p1", "guest"), ("p2", "guest"), ("o1", "guest"), ("h1", "host"), ("h2", "host"),
                          ("a1", "admin")):
            s.add(User(id=uid, name=uid.upper(), role=role))
        s.flush()
        s.add_all([
            Property(id=1, host_id="h1", name="Casa", timezone="Europe/Lisbon"),
            Property(id=2, host_id="h2", name="Loft", timezone="Europe/Paris"),
        ])
        s.flush()
        s.add(Offer(id=10, property_id=1, traveler_id="p1", check_in=dt.date(2026, 12, 1),
                    check_out=dt.date(2026, 12, 4), total_price_cents=1000, currency="EUR", status="Pending",
                    expires_at=NOW + dt.timedelta(days=3)))
        s.add(RequestToBook(id=20, property_id=1, traveler_id="p1", check_in=dt.date(2026, 12, 1),
                            check_out=dt.date(2026, 12, 4), num_guests=2, total_price_cents=1000, currency="EUR",
                            status="Pending", created_at=NOW))
        s.add(Trip(id=30, property_id=1, traveler_id="p1", check_in=dt.date(2026, 12, 1),
                   check_out=dt.date(2026, 12, 4), num_guests=2, status="Booked"))
        s.add(Conversation(id="C" * 21, created_at=NOW))
        s.flush()
        s.add(ConversationStats(conversation_id="C" * 21, message_count=1, last_message_id="M" * 21,
                                last_activity_at=NOW))
        for uid in ("p1", "p2"):
            s.add(ConversationParticipant(conversation_id="C" * 21, user_id=uid))
        s.flush()
        for uid in ("p1", "p2"):
            s.add(ReadCursor(conversation_id="C" * 21, user_id=uid, read_count=0))
        s.add(Message(id="M" * 21, conversation_id="C" * 21, user_id="p1", message="hello", read=False,
                      is_edit=False, created_at=NOW))
        s.add(PropertyConversation(id="T" * 21, traveler_id="p1", property_id=1, created_at=NOW))
        s.flush()
        s.add(PropertyMessage(id="P" * 21, conversation_id="T" * 21, author_id="p1", message="Quiet?",
                              created_at=NOW))
        s.add(PlatformEvent(id="ev-matrix", type="trip.booked", occurred_at=NOW, payload={"data": {}},
                            payload_hash="0" * 64, status="pending", attempts=0, received_at=NOW, updated_at=NOW))
        s.add(Conversation(id="K" * 21, name="Concierge", created_at=NOW))
        s.flush()
        s.add(ConversationStats(conversation_id="K" * 21, message_count=0, last_activity_at=NOW))
        s.add(ConversationParticipant(conversation_id="K" * 21, user_id="p1"))
        s.add(ConciergeThread(conversation_id="K" * 21, user_id="p1", needs_human=False, misunderstandings=0))
        s.flush()
        s.add(ReadCursor(conversation_id="K" * 21, user_id="p1", read_count=0))
    return {"C": "C" * 21, "M": "M" * 21, "T": "T" * 21, "PM": "P" * 21, "K": "K" * 21}


def _url(rule: str, values: dict[str, str], ids: dict[str, str]) -> str:
    url = rule
    for name, value in values.items():
        url = url.replace(f"<{name}>", ids.get(value, value))
    return url


CASES = [(method, rule, role) for (method, rule) in sorted(MATRIX) for role in ROLES]


@pytest.mark.parametrize(("method", "rule", "role"), CASES, ids=[f"{m} {r} {who}" for m, r, who in CASES])
def test_who_may_do_what(app: Any, client: Any, token: Any, method: str, rule: str, role: str) -> None:
    ids = _seed(app)
    values, body, expected = MATRIX[(method, rule)]
    headers = {}
    if role in CALLERS:
        sub, kind = CALLERS[role]
        headers["Authorization"] = f"Bearer {token(sub, kind, ttl=-120 if role == 'expired' else 3600)}"
    response = client.open(
        _url(rule, values, ids), method=method, json=body, headers=headers, buffered=False
    )
    try:
        assert response.status_code == expected[role], (
            f"{method} {rule} as {role}: {response.status_code} {response.get_data(as_text=True)[:300]}"
        )
        if response.status_code >= 400:
            assert response.content_type == "application/problem+json"
        if response.status_code == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    finally:
        response.close()
