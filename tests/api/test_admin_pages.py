"""The admin pages' security over HTTP (SPEC §7): sign-in by token into an HttpOnly SameSite=Strict cookie,
CSRF on every form, every page behind the sign-in, escaping of what users wrote, no open redirect.
The person's steps in a real browser are in test_admin_browser.py."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from concierge.admin import pages as admin_pages
from concierge.admin.pages import TOKEN_COOKIE
from messaging.store.db import get_session
from messaging.store.models import ConciergeThread
from tests.api.test_admin_api import FORMULA_AUTHOR, FORMULAS, _ask, _booked, assert_csv_neutralised, formula_transcript

XSS = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def _sign_in(client: Any, token: str, next_url: str = "/admin/transcripts") -> Any:
    client.delete_cookie(TOKEN_COOKIE, path="/admin")
    form = client.get("/admin/login").get_data(as_text=True)
    return client.post("/admin/login", data={"token": token, "csrf_token": _csrf(form), "next": next_url})


def _page_rules(app: Any) -> list[Any]:
    return sorted(
        (r for r in app.url_map.iter_rules() if r.endpoint.startswith("admin_pages.")
         and r.endpoint not in ("admin_pages.login", "admin_pages.static")),
        key=lambda r: r.rule,
    )


def test_every_page_needs_a_signed_in_admin(app: Any, client: Any, token: Any) -> None:
    rules = _page_rules(app)
    assert {r.endpoint for r in rules} >= {
        "admin_pages.index", "admin_pages.transcripts", "admin_pages.transcript", "admin_pages.export",
        "admin_pages.take_over", "admin_pages.hand_back", "admin_pages.reply", "admin_pages.events",
        "admin_pages.retry", "admin_pages.logout",
    }
    bearer = {"Authorization": f"Bearer {token('root', 'admin')}"}  # the pages do not take bearer tokens
    for rule in rules:
        path = re.sub(r"<[^>]+>", "x", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for headers in ({}, bearer):
                client.set_cookie(TOKEN_COOKIE, token("guest-1", "guest"), path="/admin")
                response = client.open(path, method=method, headers=headers)
                if method == "GET":
                    assert response.status_code == 303, (method, path)
                    assert response.headers["Location"].startswith("/admin/login"), (method, path)
                else:  # no CSRF token: refused before anything else
                    assert response.status_code == 400, (method, path)
                client.delete_cookie(TOKEN_COOKIE, path="/admin")


def test_sign_in_refuses_bad_tokens_and_sets_a_strict_httponly_cookie(app: Any, client: Any, token: Any) -> None:
    assert _sign_in(client, "not-a-jwt").status_code == 401
    assert _sign_in(client, token("root", "admin", ttl=-3600)).status_code == 401  # expired
    refused = _sign_in(client, token("g", "guest"))
    assert refused.status_code == 403 and "not an admin" in refused.get_data(as_text=True)
    assert _sign_in(client, "").status_code == 400
    assert _sign_in(client, "x" * 10_000).status_code == 400
    no_csrf = client.post("/admin/login", data={"token": token("root", "admin")})
    assert no_csrf.status_code == 400 and TOKEN_COOKIE not in no_csrf.headers.get("Set-Cookie", "")

    signed_in = _sign_in(client, "Bearer " + token("root", "admin"), next_url="/admin/events")
    assert signed_in.status_code == 303 and signed_in.headers["Location"] == "/admin/events"
    cookie = next(c for c in signed_in.headers.getlist("Set-Cookie") if c.startswith(TOKEN_COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie and "Expires=" in cookie
    page = client.get("/admin/transcripts")
    assert page.status_code == 200 and "Signed in as root" in page.get_data(as_text=True)
    for header in ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options"):
        assert header in page.headers
    assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'none': no script runs

    out = client.post("/admin/logout", data={"csrf_token": _csrf(page.get_data(as_text=True))})
    assert out.status_code == 303
    assert client.get("/admin/transcripts").status_code == 303


@pytest.mark.parametrize(("base_url", "setting", "secure"), [
    ("http://localhost", True, True),  # TLS ends at a proxy: ADMIN_COOKIE_SECURE=1
    ("https://localhost", False, True),
    ("http://localhost", False, False),
])
def test_every_cookie_the_pages_set_is_secure_over_https_or_when_set(
    app: Any, token: Any, monkeypatch: pytest.MonkeyPatch, base_url: str, setting: bool, secure: bool
) -> None:
    monkeypatch.setitem(app.config, "ADMIN_COOKIE_SECURE", setting)
    client = app.test_client()
    referer = {"Referer": f"{base_url}/admin/login"}  # Flask-WTF wants a same-origin Referer on an HTTPS form
    form = client.get("/admin/login", base_url=base_url)
    signed_in = client.post("/admin/login", base_url=base_url, headers=referer,
                            data={"token": token("root", "admin"), "csrf_token": _csrf(form.get_data(as_text=True))})
    assert signed_in.status_code == 303, signed_in.get_data(as_text=True)
    page = client.get("/admin/transcripts", base_url=base_url)
    assert page.status_code == 200
    out = client.post("/admin/logout", base_url=base_url, headers=referer,
                      data={"csrf_token": _csrf(page.get_data(as_text=True))})
    assert out.status_code == 303
    cookies = [c for r in (form, signed_in, page, out) for c in r.headers.getlist("Set-Cookie")]
    assert {c.partition("=")[0] for c in cookies} == {TOKEN_COOKIE, app.config["SESSION_COOKIE_NAME"]}
    for cookie in cookies:
        attributes = {a.strip().partition("=")[0].lower() for a in cookie.split(";")[1:]}
        assert ("secure" in attributes) is secure, cookie
        assert {"httponly", "samesite"} <= attributes and "SameSite=Strict" in cookie, cookie


def test_the_pages_csv_export_neutralises_formulas_and_json_keeps_the_text(
    app: Any, client: Any, auth: Any, token: Any
) -> None:
    conversation = formula_transcript(app, client, auth)
    _sign_in(client, token("root", "admin"))
    as_json = client.get(f"/admin/transcripts/{conversation}/export?format=json")
    exact = json.loads(as_json.data)["messages"]
    assert [m["message"] for m in exact if m["userId"] == FORMULA_AUTHOR] == FORMULAS
    as_csv = client.get(f"/admin/transcripts/{conversation}/export?format=csv")
    assert as_csv.status_code == 200 and as_csv.content_type.startswith("text/csv")
    assert_csv_neutralised(as_csv.data.decode(), exact)


def test_no_open_redirect_after_sign_in(client: Any, token: Any) -> None:
    for target in ("https://evil.example/", "//evil.example/admin/", "/v1/me", "/admin/\\evil"):
        response = _sign_in(client, token("root", "admin"), next_url=target)
        assert response.headers["Location"] == "/admin/transcripts", target


def test_forms_without_a_valid_csrf_token_change_nothing(app: Any, client: Any, auth: Any, token: Any) -> None:
    _booked(app, client, auth)
    conversation = client.get("/v1/concierge", headers=auth("trav-1", "guest")).json["id"]
    _sign_in(client, token("root", "admin"))
    for data in ({}, {"csrf_token": "forged"}):
        assert client.post(f"/admin/transcripts/{conversation}/takeover", data=data).status_code == 400
        reply = client.post(f"/admin/transcripts/{conversation}/reply", data={**data, "message": "hi"})
        assert reply.status_code == 400
    with app.app_context():
        assert get_session().get(ConciergeThread, conversation).needs_human is False
    messages = client.get(f"/v1/admin/transcripts/{conversation}", headers=auth("root", "admin")).json["messages"]
    assert [m["message"] for m in messages if m["senderType"] in ("user", "staff")] == []


def test_what_users_wrote_is_escaped_everywhere(app: Any, client: Any, auth: Any, token: Any) -> None:
    _booked(app, client, auth)
    question = _ask(app, client, auth("mal", "guest", name="Mal<b>ory</b>"), XSS)
    conversation = question["conversationId"]
    _sign_in(client, token("root", "admin"))
    html = client.get(f"/admin/transcripts/{conversation}").get_data(as_text=True)
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in html and "Mal&lt;b&gt;ory&lt;/b&gt;" in html
    # A reply with markup is stored as written and shown as text, here and as the list's last message.
    sent = client.post(f"/admin/transcripts/{conversation}/reply", data={"csrf_token": _csrf(html), "message": XSS})
    assert sent.status_code == 303
    html = client.get(f"/admin/transcripts/{conversation}").get_data(as_text=True)
    assert html.count("&lt;script&gt;window.pwned = 1&lt;/script&gt;") == 2 and "Reply sent." in html
    for page in (f"/admin/transcripts/{conversation}", "/admin/transcripts", "/admin/transcripts?q=%3Cscript"):
        html = client.get(page).get_data(as_text=True)
        assert "<script>" not in html and "<img src=x" not in html and "<b>ory" not in html, page
        assert "&lt;script&gt;" in html and "Mal&lt;b&gt;ory&lt;/b&gt;" in html, page


def test_page_actions_and_their_refusals(app: Any, client: Any, auth: Any, token: Any) -> None:
    _booked(app, client, auth)
    conversation = client.get("/v1/concierge", headers=auth("trav-1", "guest")).json["id"]
    _sign_in(client, token("root", "admin"))
    page = client.get(f"/admin/transcripts/{conversation}").get_data(as_text=True)
    csrf = _csrf(page)
    assert client.post(f"/admin/transcripts/{conversation}/takeover", data={"csrf_token": csrf}).status_code == 303
    html = client.get(f"/admin/transcripts/{conversation}").get_data(as_text=True)
    assert "A human has this conversation" in html and "Hand back to the concierge" in html
    empty = client.post(f"/admin/transcripts/{conversation}/reply", data={"csrf_token": csrf, "message": "   "})
    assert empty.status_code == 303
    assert "flash error" in client.get(f"/admin/transcripts/{conversation}").get_data(as_text=True)
    missing = client.get("/admin/transcripts/nope")
    assert missing.status_code == 404 and "text/html" in missing.content_type
    assert client.post("/admin/events/nope/retry", data={"csrf_token": csrf}).status_code == 404
    bad_filters = client.get("/admin/transcripts?from=yesterday&before=%25%25")
    assert bad_filters.status_code == 400 and "not a date" in bad_filters.get_data(as_text=True)
    assert client.get("/admin/events?status=bogus").status_code == 400
    export = client.get(f"/admin/transcripts/{conversation}/export?format=csv")
    assert export.status_code == 200 and export.content_type.startswith("text/csv")


@pytest.mark.parametrize("path", ["/admin/transcripts", "/admin/events"])
def test_pages_follow_the_keyset_pagination(app: Any, client: Any, auth: Any, token: Any, path: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin_pages, "PAGE_SIZE", 1)
    _booked(app, client, auth)  # two transcripts (traveler, host) and, with the next, two events
    _booked(app, client, auth, "ev-booked-again", trip_id=73)  # another booking: the same one is told once
    _sign_in(client, token("root", "admin"))
    first = client.get(path).get_data(as_text=True)
    older = re.search(r'rel="next" href="([^"]+)"', first)
    assert older, first
    second = client.get(path + older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "Newest" in second and 'rel="next"' not in second
