"""The product in a minute: ``make demo`` (``python -m concierge.demo``) or ``flask demo``, against a running
service (``make run``'s by default).

As the platform, it posts one event of every type about the demo traveler and host (the demo data set:
:mod:`concierge.demo_data`), each with its own records dated from today, and waits for the worker to process
them; then the traveler and the host ask the concierge a few questions. It prints what the concierge wrote, and
the admin page where the transcripts can be read. It talks to the service over HTTP only, with tokens signed by
the service's own settings (``JWT_SECRET``: ``make run``'s built-in development secret unless set).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson

from concierge.demo_data import HOST_ID, PROPERTY_ID, TRAVELER_ID
from concierge.notifications import EVENT_TYPES
from messaging.api.auth import mint_token
from messaging.config import load_settings

DEFAULT_API = "http://127.0.0.1:8000"
FINAL = ("processed", "failed", "skipped")
WAIT_SECONDS = 30.0
TRAVELER_QUESTIONS = ("What is the address?", "What time is check-in?", "How much did I pay?",
                      "¿A qué hora es el check-in?")
HOST_QUESTIONS = ("When is my next guest arriving?",)

Say = Callable[[str], None]


class Api:
    """The service's HTTP API, as one caller."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base.rstrip("/"), token

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = orjson.dumps(body) if body is not None else None
        request = urllib.request.Request(f"{self.base}{path}", data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
        })
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - the operator's own URL
                raw = answer.read()
        except urllib.error.HTTPError as exc:
            problem = orjson.loads(exc.read() or b"{}")
            raise DemoError(f"{method} {path}: {exc.code} {problem.get('detail', '')}") from exc
        return orjson.loads(raw) if raw else None


class DemoError(Exception):
    pass


def demo_events(today: dt.date, run: int) -> list[dict[str, Any]]:
    """One event of every type about the demo traveler and host, each with records that make it apply today:
    offers and requests that can still expire, a trip checking in tomorrow, another checking out tomorrow.
    ``run`` (below 10,000,000) makes the event and record ids new, so that running the demo again tells its
    facts again rather than being skipped as repeats."""
    now = dt.datetime.combine(today, dt.time(12, 0), tzinfo=dt.UTC)
    stamp = now.isoformat().replace("+00:00", "Z")
    soon = today + dt.timedelta(days=21)
    people = {
        "traveler": {"id": TRAVELER_ID, "name": "Tomás Traveler", "role": "guest"},
        "host": {"id": HOST_ID, "name": "Helena Host", "role": "host"},
        "property": {"id": PROPERTY_ID, "hostId": HOST_ID, "name": "Alfama River View", "city": "Lisbon",
                     "address": "Rua dos Remédios 12, 1100-445 Lisboa", "timezone": "Europe/Lisbon",
                     "checkInTime": "15:00", "checkOutTime": "10:00"},
    }
    numbers = iter(range(1, 100))

    def record_id() -> int:
        return run * 100 + next(numbers)

    def offer(status: str, expires_in: dt.timedelta) -> dict[str, Any]:
        return {"id": record_id(), "propertyId": PROPERTY_ID, "travelerId": TRAVELER_ID,
                "checkIn": soon.isoformat(), "checkOut": (soon + dt.timedelta(days=4)).isoformat(),
                "totalPriceCents": 64_000, "currency": "EUR", "status": status,
                "expiresAt": (now + expires_in).isoformat().replace("+00:00", "Z")}

    def request(status: str) -> dict[str, Any]:
        resolved = None if status == "Pending" else stamp
        return {"id": record_id(), "propertyId": PROPERTY_ID, "travelerId": TRAVELER_ID,
                "checkIn": soon.isoformat(), "checkOut": (soon + dt.timedelta(days=3)).isoformat(), "numGuests": 2,
                "totalPriceCents": 48_000, "currency": "EUR", "status": status,
                "createdAt": (now - dt.timedelta(hours=2)).isoformat().replace("+00:00", "Z"),
                "resolvedAt": resolved}

    def trip(check_in: dt.date, nights: int, status: str = "Booked") -> dict[str, Any]:
        return {"id": record_id(), "propertyId": PROPERTY_ID, "travelerId": TRAVELER_ID,
                "checkIn": check_in.isoformat(), "checkOut": (check_in + dt.timedelta(days=nights)).isoformat(),
                "numGuests": 2, "status": status}

    subjects: dict[str, tuple[str, dict[str, Any]]] = {
        "offer.created": ("offer", offer("Pending", dt.timedelta(days=3))),
        "offer.expiring": ("offer", offer("Pending", dt.timedelta(hours=12))),
        "offer.expired": ("offer", offer("Expired", -dt.timedelta(hours=1))),
        "offer.withdrawn": ("offer", offer("Withdrawn", dt.timedelta(days=2))),
        "offer.accepted": ("offer", offer("Accepted", dt.timedelta(days=2))),
        "request_to_book.created": ("requestToBook", request("Pending")),
        "request_to_book.approved": ("requestToBook", request("Accepted")),
        "request_to_book.denied": ("requestToBook", request("Denied")),
        "request_to_book.withdrawn": ("requestToBook", request("Withdrawn")),
        "request_to_book.expired": ("requestToBook", request("Expired")),
        "trip.booked": ("trip", trip(soon, 4)),
        "trip.check_in_reminder": ("trip", trip(today + dt.timedelta(days=1), 3)),
        "trip.check_out_reminder": ("trip", trip(today - dt.timedelta(days=2), 3)),
        "trip.cancelled": ("trip", trip(soon + dt.timedelta(days=30), 2, "Cancelled")),
    }
    assert set(subjects) == set(EVENT_TYPES), "one of every event type"
    return [{"id": f"demo-{run}-{event_type}", "type": event_type, "occurredAt": stamp,
             "data": {**people, key: subject}} for event_type, (key, subject) in subjects.items()]


def run_demo(base: str, say: Say, config: dict[str, Any] | None = None, today: dt.date | None = None) -> int:
    """Post the events, ask the questions, print what the concierge wrote; 0 when every event was processed
    and every question answered, 1 otherwise."""
    settings = config or load_settings()
    if not settings.get("JWT_SECRET"):
        say("The demo signs its tokens with JWT_SECRET, which is not set (JWT_PUBLIC_KEY is).")
        return 1
    ttl = dt.timedelta(hours=1)

    def api(sub: str, role: str) -> Api:
        return Api(base, mint_token(settings, sub=sub, role=role, ttl=ttl))

    platform, traveler, host = api("platform", "service"), api(TRAVELER_ID, "guest"), api(HOST_ID, "host")
    admin_token = mint_token(settings, sub="demo-admin", role="admin", ttl=ttl)
    run = int(time.time() * 10) % 10_000_000
    ok = True
    try:
        say(f"The platform posts one event of every type ({len(EVENT_TYPES)}) about {TRAVELER_ID} and {HOST_ID}:")
        posted = [platform.call("POST", "/v1/events", event)["id"]
                  for event in demo_events(today or dt.date.today(), run)]
        for event_id in posted:
            event = _wait(partial(platform.call, "GET", f"/v1/events/{event_id}"), lambda e: e["status"] in FINAL)
            ok &= event is not None and event["status"] != "failed"
            if event is None:
                say(f"  {event_id}: not processed within {WAIT_SECONDS:.0f} s (is the worker running?)")
                continue
            reason = f" ({event['lastError']})" if event.get("lastError") else ""
            say(f"\n  {event['type']} → {event['status']}{reason}")
            for message in event["messages"]:
                say(f"    to {_recipient(message, traveler, host)}: {message['message']}")
        say("")
        for who, caller, questions in (("traveler", traveler, TRAVELER_QUESTIONS), ("host", host, HOST_QUESTIONS)):
            chat = caller.call("GET", "/v1/concierge")
            for question in questions:
                asked = caller.call("POST", f"/v1/conversations/{chat['id']}/messages", {"message": question})
                answer = _wait(partial(_answer, caller, chat["id"], asked), lambda _answer: True)
                ok &= answer is not None
                say(f"  {who}: {question}\n  concierge: {answer['message'] if answer else '(no answer yet)'}")
            if who == "traveler":
                say(f"\nRead the transcripts at {base.rstrip('/')}/admin/transcripts (sign in with this admin "
                    f"token, valid 1 h):\n  {admin_token}")
    except (DemoError, OSError) as exc:
        say(f"The demo stopped: {exc}")
        return 1
    return 0 if ok else 1


def _recipient(message: dict[str, Any], traveler: Api, host: Api) -> str:
    """Whose conversation the message is in: the traveler's (their concierge chat, or an offer's conversation)
    or the host's."""
    try:
        traveler.call("GET", f"/v1/conversations/{message['conversationId']}")
    except DemoError:
        return HOST_ID
    return TRAVELER_ID


def _answer(caller: Api, conversation_id: str, asked: dict[str, Any]) -> dict[str, Any] | None:
    """The concierge's first message after ``asked``, if it has written one."""
    page = caller.call("GET", f"/v1/conversations/{conversation_id}/messages?limit=10")
    later = [m for m in page["items"] if m["createdAt"] >= asked["createdAt"] and m["senderType"] == "concierge"
             and m["id"] != asked["id"]]
    return later[0] if later else None


def _wait(read: Callable[[], Any], done: Callable[[Any], bool]) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        value = read()
        if value is not None and done(value):
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", default=DEFAULT_API, help=f"the service's base URL (default {DEFAULT_API})")
    args = parser.parse_args(argv)
    return run_demo(args.api, print)


if __name__ == "__main__":
    sys.exit(main())
