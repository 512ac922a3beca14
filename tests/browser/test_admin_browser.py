"""The admin pages driven in headless Chromium the way a person uses them (SPEC §7): sign in, filter, open a
transcript, read an event's origin, take over, reply, hand back, retry a failed event — and a message
carrying a script shows as text and does not run. A screenshot of the transcript page is saved to
``test-artifacts/admin-transcript.png``.

Playwright drives Debian's Chromium (``/usr/bin/chromium``); no browser is downloaded. Without one the test
skips with the reason, and fails in CI (CI set).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright
from werkzeug.serving import make_server

from tasks.concierge_tasks import process_event
from tests.api.test_admin_api import _ask, _booked
from tests.api.test_event_notifications import TRIP, event

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SCRIPT_MESSAGE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
# As root in a container Chromium needs --no-sandbox; the rest keep it off the network (loopback only).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.slow


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run: {why}", pytrace=False)
    pytest.skip(f"browser tests cannot run: {why}")


@pytest.fixture
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def served(pg_app: Any) -> Iterator[str]:
    """The app on PostgreSQL behind a real HTTP server on loopback."""
    server = make_server("127.0.0.1", 0, pg_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


def _story(app: Any, client: Any, auth: Any) -> None:
    """A booking told by the concierge, a traveler writing markup, a deleted agent's reply, a failed event."""
    _booked(app, client, auth)
    tomas = auth("trav-1", "guest")
    _ask(app, client, tomas, "when is check in?")
    _ask(app, client, tomas, SCRIPT_MESSAGE)
    conversation = client.get("/v1/concierge", headers=tomas).json["id"]
    client.post(f"/v1/admin/transcripts/{conversation}/messages", json={"message": "Agent 7 here, happy to help."},
                headers=auth("agent-7", "admin"))
    # The reply took the conversation over; the agent hands it back before leaving.
    assert client.post(f"/v1/admin/transcripts/{conversation}/handback",
                       headers=auth("agent-7", "admin")).status_code == 200
    assert client.delete("/v1/users/agent-7", headers=auth("platform", "service")).status_code == 204
    backwards = event("trip.booked", "trip", {**TRIP, "id": 99, "checkIn": "2026-12-23", "checkOut": "2026-12-20"},
                      "ev-backwards")
    assert client.post("/v1/events", json=backwards, headers=auth("platform", "service")).status_code == 202
    with app.app_context():
        assert process_event.run("ev-backwards") == "failed"


def test_an_admin_reviews_and_acts_in_the_browser(
    pg_app: Any, pg_client: Any, auth: Any, token: Any, served: str, browser: Any
) -> None:
    _story(pg_app, pg_client, auth)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    # Sign in by pasting a token.
    page.goto(f"{served}/admin/")
    expect(page).to_have_url(f"{served}/admin/login?next=/admin/")
    page.fill("#token", token("root", "admin", name="Rita Root"))
    page.click("button:has-text('Sign in')")
    expect(page.locator(".who")).to_have_text("Signed in as Rita Root")
    cookie = next(c for c in context.cookies() if c["name"] == "concierge_admin_token")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/admin"
    assert page.evaluate("document.cookie") == ""  # neither cookie is readable by scripts

    # Filter the list down to the traveler's thread and open it.
    expect(page.locator("table.transcripts tbody tr")).to_have_count(2)  # the traveler's and the host's
    page.fill("input[name=userId]", "trav-1")
    page.click("button:has-text('Filter')")
    rows = page.locator("table.transcripts tbody tr")
    expect(rows).to_have_count(1)
    rows.first.locator("a").click()
    expect(page.locator("h1")).to_contain_text("Concierge")

    # The booking message is marked with its event; its payload opens on a click.
    booked = page.locator("li.message.concierge").first
    expect(booked.locator(".origin")).to_contain_text("trip.booked")
    expect(booked.locator(".origin")).to_contain_text("ev-booked")
    booked.locator("summary:has-text('Event payload')").click()
    expect(booked.locator(".origin pre")).to_contain_text('"Casa Azul"')
    answer = page.locator("li.message.concierge .origin:has-text('intent')").first
    expect(answer).to_contain_text("check_in")

    # The markup the traveler sent is shown as text and never ran; the deleted agent is shown as such.
    expect(page.get_by_text(SCRIPT_MESSAGE, exact=True)).to_be_visible()
    assert page.evaluate("typeof window.pwned") == "undefined" and dialogs == []
    expect(page.locator("li.message.deleted .author")).to_have_text("Deleted user")

    # Take over, reply as a person, hand back.
    page.click("button:has-text('Take over')")
    expect(page.locator(".transcript-head.needs-human")).to_contain_text("A human has this conversation")
    page.fill("#message", "Hi Tomás, Rita from the team here.")
    page.click("button:has-text('Send reply')")
    expect(page.locator(".flash")).to_have_text("Reply sent.")
    mine = page.locator("li.message.staff").last
    expect(mine.locator(".text")).to_have_text("Hi Tomás, Rita from the team here.")
    expect(mine.locator(".author")).to_have_text("Rita Root")
    expect(mine.locator(".badge.staff")).to_have_text("staff")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-transcript.png"), full_page=True)
    page.click("button:has-text('Hand back to the concierge')")
    expect(page.locator(".status")).to_have_text("The concierge answers here.")

    # The needs-human list is empty again; the failed event is retried from the events page.
    page.click("nav >> text=Failed events")
    failed = page.locator("tr[data-event='ev-backwards']")
    expect(failed).to_contain_text("checkOut")
    failed.locator("button:has-text('Retry')").click()
    expect(page.locator(".flash")).to_contain_text("ev-backwards goes back to the worker")
    expect(page.locator("tr[data-event='ev-backwards']")).to_have_count(0)  # no longer failed
    page.click("nav >> text=Events")
    expect(page.locator("tr[data-event='ev-backwards'] .badge")).to_have_text("pending")

    # What the browser did is what the API reports.
    admin = auth("root", "admin")
    conversation = pg_client.get("/v1/concierge", headers=auth("trav-1", "guest")).json["id"]
    transcript = pg_client.get(f"/v1/admin/transcripts/{conversation}", headers=admin).json
    assert transcript["needsHuman"] is False
    assert [m["message"] for m in transcript["messages"]].count("Hi Tomás, Rita from the team here.") == 1
    assert pg_client.get("/v1/admin/events?status=pending", headers=admin).json["items"][0]["id"] == "ev-backwards"

    # On a phone: nothing runs off the side, Sign out is on screen, and the reply box is in view at the top of a
    # transcript, however long it is (it stays at the bottom of the window).
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/admin/transcripts", "/admin/events", f"/admin/transcripts/{conversation}"):
        page.goto(f"{served}{path}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        box = page.locator("button:has-text('Sign out')").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (path, box)
    reply = page.locator(".reply-box").bounding_box()
    assert reply is not None and reply["y"] + reply["height"] <= 844, reply
    page.screenshot(path=str(ARTIFACTS / "admin-transcript-390.png"))

    page.click("button:has-text('Sign out')")
    expect(page).to_have_url(f"{served}/admin/login")
    page.goto(f"{served}/admin/transcripts")
    expect(page).to_have_url(f"{served}/admin/login?next=/admin/transcripts")
    context.close()
