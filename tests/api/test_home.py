"""GET /: a small page for a browser and the same links as JSON for anything else (a first visit finds /docs)."""

from __future__ import annotations

from typing import Any

from tests.api.test_security_headers import assert_secured


def test_a_browser_gets_a_page_linking_the_docs_the_admin_pages_and_health(client: Any) -> None:
    page = client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 200
    assert_secured(page)
    html = page.get_data(as_text=True)
    for link in ('href="/docs"', 'href="/admin/"', 'href="/healthz"', 'href="/openapi.json"'):
        assert link in html
    for target in ("/docs", "/admin/", "/healthz", "/openapi.json"):  # each link leads somewhere
        assert client.get(target).status_code in (200, 302, 303), target


def test_anything_else_gets_the_links_as_json(client: Any) -> None:
    for accept in (None, "application/json", "*/*"):
        answer = client.get("/", headers={"Accept": accept} if accept else {})
        assert answer.status_code == 200 and answer.content_type == "application/json", accept
        assert answer.json["links"] == {"api": "/v1", "docs": "/docs", "openapi": "/openapi.json",
                                        "admin": "/admin/", "health": "/healthz"}
