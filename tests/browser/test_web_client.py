"""The reference web client (examples/web) in headless Chromium against the service run the production way: gunicorn
with ``APP_ENV=production`` and ``CORS_ORIGINS`` naming the page's origin, a Celery worker, PostgreSQL and Redis. The
page is served by a static server on another port, so every call it makes is cross-origin (SPEC §6, messaging.api.cors).

Scenarios: a traveler and a host chat live in two browsers; the concierge answers a question; unread badges fall
when messages are seen; the web process restarts mid-conversation and the pages lose nothing and show nothing twice;
a page from an origin not allowed gets nothing; the layout fits 1280 and 390 px wide screens (screenshots in
``test-artifacts/web-client-1280.png`` and ``web-client-390.png``).

One server, worker and browser serve the whole module; the restart test restarts the server on its port and always
leaves it running. Playwright drives Debian's Chromium as in test_admin_browser.py.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from app import create_app
from tests import conftest
from tests.browser.test_admin_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, _unavailable
from tests.helpers_processes import Processes, WebServer, call, free_port, mint, private_pg_database, service_env

pytestmark = pytest.mark.slow

WEB_CLIENT = Path(__file__).resolve().parents[2] / "examples" / "web"
LIVE_MS = 10_000  # a message reaching the other browser
ANSWER_MS = 30_000  # the worker answering a concierge question
RESTART_MS = 45_000  # gunicorn back up and EventSource's own reconnection (it waits `retry: 3000` between tries)


# --- the service, the pages' static servers and the browser (one of each per module) -----------------------------


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def _static_site(directory: Path) -> Iterator[str]:
    """``directory`` served on a free loopback port of its own; yields the origin."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietFiles, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """The origin the client is served from, and the only one in CORS_ORIGINS."""
    with _static_site(WEB_CLIENT) as origin:
        yield origin


@pytest.fixture(scope="module")
def stranger_origin() -> Iterator[str]:
    """The same client from an origin that is not allowed."""
    with _static_site(WEB_CLIENT) as origin:
        yield origin


@dataclass
class Service:
    web: WebServer
    database_url: str
    processes: Processes

    @property
    def api(self) -> str:
        return self.web.base


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, page_origin: str) -> Iterator[Service]:
    """gunicorn (gunicorn.conf.py: the gevent worker) and a Celery worker, as production runs them."""
    processes = Processes(tmp_path_factory.mktemp("web-client-logs"))
    with private_pg_database("concierge_webclient") as database_url:
        env = service_env(database_url, conftest.redis_url(), APP_ENV="production", CORS_ORIGINS=page_origin,
                          WORKER_METRICS_PORT=str(free_port()))
        try:
            web = processes.web(env)
            processes.worker(env)
            yield Service(web, database_url, processes)
        finally:
            processes.stop_all()


@pytest.fixture(autouse=True)
def _no_errors_in_service_logs(service: Service) -> Iterator[None]:
    """What conftest's ERROR check is for this process, for gunicorn's and the worker's logs during each test."""
    seen = {process.log_path: len(process.log_text()) for process in service.processes.started}
    yield
    for process in service.processes.started:
        written = process.log_text()[seen.get(process.log_path, 0):]
        errors = [line for line in written.splitlines() if any(w in line for w in ("ERROR", "CRITICAL", "Traceback"))]
        assert errors == [], f"{process.name} logged errors ({process.log_path}):\n" + "\n".join(errors)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


# --- people and pages ----------------------------------------------------------------------------------------------


@dataclass
class Person:
    user_id: str
    token: str


@dataclass
class Pair:
    traveler: Person
    host: Person
    conversation_id: str


def _person(api: str, role: str) -> Person:
    user_id = f"{'traveler' if role == 'guest' else role}-{uuid.uuid4().hex[:8]}"
    person = Person(user_id, mint(user_id, role))
    assert call(api, "GET", "/v1/me", person.token)[0] == 200  # users are created on first use
    return person


def _pair(api: str) -> Pair:
    """A traveler and a host who share a conversation (the traveler started it)."""
    traveler, host = _person(api, "guest"), _person(api, "host")
    status, created = call(api, "POST", "/v1/conversations", traveler.token, {"participantIds": [host.user_id]})
    assert status == 201, created
    return Pair(traveler, host, created["id"])


def _post(api: str, person: Person, conversation_id: str, text: str) -> str:
    status, message = call(api, "POST", f"/v1/conversations/{conversation_id}/messages", person.token,
                           {"message": text})
    assert status == 201, message
    return str(message["id"])


def _api_message_ids(api: str, person: Person, conversation_id: str) -> list[str]:
    status, page = call(api, "GET", f"/v1/conversations/{conversation_id}/messages?limit=50", person.token)
    assert status == 200, page
    return [m["id"] for m in page["items"]]


OpenClient = Callable[..., Any]


@pytest.fixture
def open_client(browser: Any, service: Service, page_origin: str) -> Iterator[OpenClient]:
    """``open_client(person)`` → a page of the client in a fresh browser context, signed in and live. The pages'
    uncaught script errors fail the test; the contexts are closed after it."""
    contexts: list[Any] = []
    script_errors: list[str] = []

    def open_page(person: Person, *, origin: str = page_origin, width: int = 1280, height: int = 800,
                  connected: bool = True) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: script_errors.append(str(error)))
        page.goto(f"{origin}/index.html?api={service.api}#token={person.token}")
        if connected:
            expect(page.get_by_test_id("me")).to_contain_text(person.user_id)
            expect(page.get_by_test_id("live-status")).to_have_text("live")
            page.evaluate("window.sameDocument = true")  # gone if the page ever reloads
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert script_errors == [], script_errors


def _item(page: Any, conversation_id: str) -> Any:
    return page.locator(f'[data-testid="conversation-item"][data-conversation-id="{conversation_id}"]')


def _open_conversation(page: Any, conversation_id: str) -> None:
    _item(page, conversation_id).click()
    expect(_item(page, conversation_id)).to_have_attribute("aria-current", "true")
    expect(page.get_by_test_id("composer")).to_be_enabled()


def _shown(page: Any, text: str) -> Any:
    """The message with exactly this text, once the server has it (it has an id)."""
    return page.locator('[data-testid="message"][data-message-id]').filter(
        has=page.get_by_test_id("message-text").get_by_text(text, exact=True))


def _send(page: Any, text: str, *, enter: bool = False) -> str:
    """Types ``text`` and sends it (Send button, or Enter); returns the message's id once the server confirmed it."""
    page.get_by_test_id("composer").fill(text)
    if enter:
        page.get_by_test_id("composer").press("Enter")
    else:
        page.get_by_test_id("send").click()
    expect(_shown(page, text)).to_have_count(1, timeout=LIVE_MS)
    return str(_shown(page, text).get_attribute("data-message-id"))


def _page_message_ids(page: Any) -> list[str]:
    """Every message element of the open conversation, in order ("pending" for one not confirmed yet)."""
    return list(page.eval_on_selector_all(
        '[data-testid="message"]', "nodes => nodes.map((n) => n.dataset.messageId || 'pending')"))


def _same_document(page: Any) -> bool:
    return bool(page.evaluate("window.sameDocument === true"))


# --- scenarios -----------------------------------------------------------------------------------------------------


def test_a_traveler_and_a_host_chat_live_in_two_browsers(service: Service, open_client: OpenClient) -> None:
    pair = _pair(service.api)
    traveler, host = open_client(pair.traveler), open_client(pair.host)
    _open_conversation(traveler, pair.conversation_id)
    _open_conversation(host, pair.conversation_id)

    question = "Hi! We land at 9pm — is a late check-in OK?"
    asked = _send(traveler, question)
    expect(_shown(host, question)).to_have_count(1, timeout=LIVE_MS)
    assert host.locator(f'[data-message-id="{asked}"]').get_attribute("data-sender-type") == "user"

    answer = "Sure, the lockbox code comes the day before."
    answered = _send(host, answer, enter=True)
    expect(_shown(traveler, answer)).to_have_count(1, timeout=LIVE_MS)
    expect(traveler.locator(f'[data-message-id="{answered}"] .author')).to_have_text(pair.host.user_id)
    expect(traveler.locator(f'[data-message-id="{asked}"] .author')).to_have_text("You")

    # Neither page reloaded, and each shows exactly what the server holds, once.
    assert _same_document(traveler) and _same_document(host)
    for page in (traveler, host):
        assert _page_message_ids(page) == [asked, answered]
    assert _api_message_ids(service.api, pair.traveler, pair.conversation_id) == [asked, answered]


def test_the_concierge_answers_a_question_in_the_browser(service: Service, open_client: OpenClient) -> None:
    traveler = _person(service.api, "guest")
    status, concierge = call(service.api, "GET", "/v1/concierge", traveler.token)
    assert status == 200, concierge
    page = open_client(traveler)
    expect(_item(page, concierge["id"])).to_have_class("pinned")  # the concierge is pinned first
    _open_conversation(page, concierge["id"])

    _send(page, "what can you help with?")
    answer = page.locator('[data-testid="message"][data-sender-type="concierge"]')
    expect(answer).to_have_count(1, timeout=ANSWER_MS)  # answered by the Celery worker, pushed live
    expect(answer.get_by_test_id("message-text")).to_contain_text("I can tell you about your trips")
    expect(answer.locator(".author")).to_have_text("Concierge")
    assert _same_document(page)


def test_unread_badges_fall_when_the_messages_are_seen(service: Service, open_client: OpenClient) -> None:
    pair = _pair(service.api)
    traveler, host = open_client(pair.traveler), open_client(pair.host)
    _open_conversation(traveler, pair.conversation_id)
    badge = _item(host, pair.conversation_id).get_by_test_id("unread-badge")
    expect(_item(host, pair.conversation_id)).to_be_visible()
    expect(badge).to_have_count(0)

    # The host's list counts what arrives while the conversation is not open.
    sent = [_send(traveler, "Is there parking?"), _send(traveler, "And a cot for the baby?")]
    expect(badge).to_have_text("2", timeout=LIVE_MS)
    expect(_item(host, pair.conversation_id).locator(".preview")).to_have_text("And a cot for the baby?")

    # Opening it brings both into view: they are marked read, the badge goes, the traveler sees them read.
    _open_conversation(host, pair.conversation_id)
    expect(badge).to_have_count(0, timeout=LIVE_MS)
    status, conversation = call(service.api, "GET", f"/v1/conversations/{pair.conversation_id}", pair.host.token)
    assert status == 200 and conversation["unreadCount"] == 0, conversation
    for message_id in sent:
        expect(traveler.locator(f'[data-message-id="{message_id}"]')).to_contain_text("✓ read", timeout=LIVE_MS)

    host.reload()  # the server remembers
    expect(host.get_by_test_id("live-status")).to_have_text("live")
    expect(_item(host, pair.conversation_id)).to_be_visible()
    expect(badge).to_have_count(0)


def test_a_web_restart_mid_conversation_loses_nothing_and_shows_nothing_twice(
    service: Service, open_client: OpenClient
) -> None:
    """gunicorn stops while both pages are open. Meanwhile another web process (here the app in this process, on the
    same PostgreSQL and Redis) takes the host's message, and the traveler types one that the page keeps retrying.
    gunicorn comes back on its port; each browser's EventSource reconnects by itself, sending Last-Event-ID, and is
    replayed what it missed (or told to reset, and the page reloads its data: either way nothing is lost)."""
    pair = _pair(service.api)
    traveler, host = open_client(pair.traveler), open_client(pair.host)
    _open_conversation(traveler, pair.conversation_id)
    _open_conversation(host, pair.conversation_id)
    before = _send(traveler, "We'll arrive around six.")
    expect(_shown(host, "We'll arrive around six.")).to_have_count(1, timeout=LIVE_MS)

    other_process = create_app(conftest.test_config(service.database_url))
    try:
        service.web.stop()
        for page in (traveler, host):
            expect(page.get_by_test_id("live-status")).to_have_text("reconnecting", timeout=LIVE_MS)

        during = other_process.test_client().post(
            f"/v1/conversations/{pair.conversation_id}/messages", json={"message": "Great, see you then!"},
            headers={"Authorization": f"Bearer {pair.host.token}"})
        assert during.status_code == 201, during.json
        traveler.get_by_test_id("composer").fill("Is early luggage drop-off possible?")
        traveler.get_by_test_id("send").click()
        expect(traveler.get_by_test_id("send-status")).to_have_text("sending…")  # retrying, not failed
    finally:
        if not service.web.running:
            service.web.start()  # same port: the next tests use it too
        other_process.extensions["live"].close()

    for page in (traveler, host):
        expect(page.get_by_test_id("live-status")).to_have_text("live", timeout=RESTART_MS)
        expect(_shown(page, "Great, see you then!")).to_have_count(1, timeout=RESTART_MS)
        expect(_shown(page, "Is early luggage drop-off possible?")).to_have_count(1, timeout=RESTART_MS)
    after = _send(host, "Yes, any time after ten.")
    expect(_shown(traveler, "Yes, any time after ten.")).to_have_count(1, timeout=LIVE_MS)

    held = _api_message_ids(service.api, pair.traveler, pair.conversation_id)
    assert len(held) == 4 and held[0] == before and held[-1] == after
    assert held[1] == (during.json or {}).get("id")
    for page in (traveler, host):
        # Each message once, in the server's order (the host's, replayed on reconnecting, above the traveler's
        # retried one, which the server took later), none left pending.
        assert _page_message_ids(page) == held
        assert _same_document(page)


def test_a_page_from_an_origin_not_allowed_gets_nothing(
    service: Service, open_client: OpenClient, page_origin: str, stranger_origin: str
) -> None:
    person = _person(service.api, "guest")
    stream_url = f"{service.api}/v1/stream?access_token={person.token}"

    # In the browser: the page cannot read the API, says so, and an EventSource never opens.
    page = open_client(person, origin=stranger_origin, connected=False)
    expect(page.get_by_test_id("error")).to_contain_text(f"Cannot reach the API at {service.api}")
    expect(page.get_by_test_id("me")).to_have_text("")
    expect(page.get_by_test_id("live-status")).to_have_text("closed")
    assert _event_source_outcome(page, stream_url) == "failed"
    # The same stream from the allowed origin opens: the refusal above is CORS, not the network.
    assert _event_source_outcome(open_client(person), stream_url) == "open"

    # Over HTTP: no Access-Control-Allow-Origin for the stranger, on calls, preflights and the stream.
    bearer = {"Authorization": f"Bearer {person.token}"}
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    for origin, expected in ((stranger_origin, None), (page_origin, page_origin)):
        me = requests.get(f"{service.api}/v1/me", headers={**bearer, "Origin": origin}, timeout=5)
        assert me.status_code == 200 and me.headers.get("Access-Control-Allow-Origin") == expected
        asked = requests.options(f"{service.api}/v1/conversations", headers={**preflight, "Origin": origin}, timeout=5)
        assert asked.headers.get("Access-Control-Allow-Origin") == expected
        with requests.get(stream_url, headers={"Origin": origin}, stream=True, timeout=5) as stream:
            assert stream.status_code == 200 and stream.headers.get("Access-Control-Allow-Origin") == expected
    health = requests.get(f"{service.api}/healthz", headers={"Origin": page_origin}, timeout=5)
    assert "Access-Control-Allow-Origin" not in health.headers  # only /v1 answers cross-origin


def _event_source_outcome(page: Any, url: str) -> str:
    """Opens an EventSource in the page: "open", or "failed" once the browser gave up on it (CLOSED)."""
    return str(page.evaluate(
        """(url) => new Promise((resolve) => {
             const source = new EventSource(url);
             const done = (outcome) => { source.close(); resolve(outcome); };
             source.onopen = () => done('open');
             source.onerror = () => { if (source.readyState === EventSource.CLOSED) done('failed'); };
             setTimeout(() => done('neither, after 10 s'), 10000);
           })""", url))


def test_the_layout_fits_wide_and_narrow_screens(service: Service, open_client: OpenClient) -> None:
    pair = _pair(service.api)
    _post(service.api, pair.traveler, pair.conversation_id, "Hello! We booked the flat for the first week of June.")
    _post(service.api, pair.host, pair.conversation_id,
          "Welcome! Directions: https://maps.example.com/directions/from-the-central-station-to-the-flat. "
          "The Wi-Fi password: 7F3KQ9XW2M8ZR4TB6YH1NC5VJ0LDPGAES7F3KQ9XW2M8ZR4TB6YH1NC5VJ0LDPGAES")
    _post(service.api, pair.traveler, pair.conversation_id, "Thanks!\nCan we bring a dog?")
    _post(service.api, pair.host, pair.conversation_id, "Of course — small dogs are welcome.")
    ARTIFACTS.mkdir(exist_ok=True)

    wide = open_client(pair.traveler, width=1280, height=800)
    _open_conversation(wide, pair.conversation_id)
    expect(wide.get_by_test_id("message")).to_have_count(4)
    expect(_item(wide, pair.conversation_id).get_by_test_id("unread-badge")).to_have_count(0)  # settled: all read
    assert _overflowing(wide) == []
    wide.screenshot(path=str(ARTIFACTS / "web-client-1280.png"))

    narrow = open_client(pair.traveler, width=390, height=844)
    expect(_item(narrow, pair.conversation_id)).to_be_visible()
    assert _overflowing(narrow) == []  # the list
    _open_conversation(narrow, pair.conversation_id)
    expect(narrow.get_by_test_id("inbox")).to_be_hidden()  # one column: the conversation replaces the list
    expect(narrow.get_by_test_id("message")).to_have_count(4)
    assert _overflowing(narrow) == []  # the conversation
    assert narrow.evaluate("document.documentElement.scrollWidth") <= 390
    send = narrow.get_by_test_id("send").bounding_box()
    assert send is not None and send["x"] + send["width"] <= 390 and send["y"] + send["height"] <= 844
    narrow.screenshot(path=str(ARTIFACTS / "web-client-390.png"))
    narrow.get_by_test_id("back").click()
    expect(_item(narrow, pair.conversation_id)).to_be_visible()


def _overflowing(page: Any) -> list[str]:
    """The page, and its own scrolling areas, that are wider than their box (they would scroll sideways)."""
    return list(page.evaluate(
        """() => [document.documentElement, ...document.querySelectorAll('#sidebar, #message-list, header')]
             .filter((node) => node.scrollWidth > node.clientWidth)
             .map((node) => `${node.id || node.tagName}: ${node.scrollWidth} > ${node.clientWidth}`)"""))
