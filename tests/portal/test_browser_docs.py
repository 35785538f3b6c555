"""/docs in real Chromium with every host but the broker unreachable: Swagger UI renders the
operations from the broker's own assets, and its Content-Security-Policy refuses nothing it needs."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.sts]


def test_docs_render_offline_from_the_brokers_own_assets(browser: Any, live: Any) -> None:
    server = live()
    own = urlsplit(server.url).netloc
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    elsewhere: list[str] = []

    def only_the_broker(route: Any) -> None:
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_broker)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text))
    page.on("pageerror", lambda exc: console.append(str(exc)))
    page.goto(server.url + "/docs")
    page.locator(".opblock-summary-path", has_text="/api/v1/credentials").first.wait_for()
    assert page.locator(".opblock").count() > 20  # the operations list
    page.locator(".opblock-summary-path", has_text="/api/v1/credentials").first.click()
    page.get_by_role("button", name="Try it out").first.wait_for()
    assert elsewhere == []
    refused = [line for line in console if "Content Security Policy" in line or "Refused to" in line]
    assert refused == [], refused
    context.close()
