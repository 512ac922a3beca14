"""Security headers on every HTML page (the API document's Swagger UI under /docs, the admin pages, their error
pages and redirects), and nosniff on every response."""

from __future__ import annotations

import re
from typing import Any

from tests.api.test_admin_api import _booked
from tests.api.test_admin_pages import _sign_in

DOCS_PAGES = ("/docs", "/docs/", "/docs/swagger", "/docs/oauth2-redirect.html")


def assert_secured(response: Any) -> str:
    """The four headers of an HTML page; returns its Content-Security-Policy."""
    assert response.mimetype == "text/html", response.mimetype
    headers = response.headers
    assert headers.get("X-Frame-Options") == "DENY"
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("Referrer-Policy") in ("no-referrer", "same-origin")
    policy = str(headers.get("Content-Security-Policy", ""))
    assert "frame-ancestors 'none'" in policy, policy
    return policy


def test_the_api_documents_pages_carry_the_headers_and_load_only_what_the_policy_allows(client: Any) -> None:
    assert client.get("/docs").headers["Location"] == "/docs/swagger"
    for path in DOCS_PAGES:
        response = client.get(path)
        assert response.status_code in (200, 302), path
        policy = assert_secured(response)
        directives = dict(d.strip().partition(" ")[::2] for d in policy.split(";"))
        assert directives["default-src"] == "'self'" and directives["script-src"] == "'self' 'unsafe-inline'", path
        assert "*" not in policy and "http" not in policy, policy  # nothing from another origin
    # Swagger UI loads its scripts, styles and icon from this origin, which the policy allows.
    html = client.get("/docs/swagger").get_data(as_text=True)
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources
    for source in sources:
        assert "://" not in source and not source.startswith("//"), source
        asset = client.get(f"/docs/{source}")
        assert asset.status_code == 200 and asset.headers["X-Content-Type-Options"] == "nosniff", source


def test_every_admin_page_carries_the_headers_with_its_stricter_policy(
    app: Any, client: Any, auth: Any, token: Any
) -> None:
    _booked(app, client, auth)
    conversation = client.get("/v1/concierge", headers=auth("trav-1", "guest")).json["id"]
    signed_out = [client.get("/admin/login"), client.get("/admin/transcripts")]  # a page, a redirect to sign in
    assert signed_out[1].status_code == 303
    _sign_in(client, token("root", "admin"))
    pages = [*signed_out]
    for path in ("/admin/", "/admin/transcripts", f"/admin/transcripts/{conversation}", "/admin/events",
                 "/admin/transcripts/nope", "/admin/events?status=bogus"):
        pages.append(client.get(path))
    assert [p.status_code for p in pages[-4:]] == [200, 200, 404, 400]
    for page in pages:
        policy = assert_secured(page)
        assert "default-src 'none'" in policy and "script-src" not in policy, page.request.path
        assert page.headers["Cache-Control"] == "no-store"


def test_every_response_is_nosniff_and_json_gets_no_page_policy(client: Any, auth: Any) -> None:
    for response in (client.get("/healthz"), client.get("/openapi.json"), client.get("/v1/me", headers=auth("a")),
                     client.get("/v1/me"), client.get("/nowhere")):
        assert response.headers["X-Content-Type-Options"] == "nosniff", response.request.path
        assert "Content-Security-Policy" not in response.headers
