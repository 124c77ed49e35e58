"""The example's Swagger UI in headless Chromium: the streams' event schemas are on the page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import ARTIFACTS, LiveServer, start_server

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture(scope="module")
def example() -> Iterator[LiveServer]:
    """examples/openapi_app.py under gunicorn's gthread worker."""
    server = start_server("gthread", "examples.openapi_app:app", ready_path="/openapi.json")
    yield server
    server.stop()


def test_swagger_ui_shows_the_event_schemas(browser: Any, example: LiveServer) -> None:
    """Swagger UI, served offline, shows each stream's events: names, data models, fields."""
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    page.set_default_timeout(20_000)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        page.goto(example.url + "/swagger")
        prices = page.locator(".opblock", has_text="/prices/{symbol}/stream")
        ok = prices.locator("tr.response[data-code='200']")
        ok.get_by_text("The last traded price").wait_for()
        for text in ("text/event-stream", "media type: application/json", '"price"', '"reset"'):
            assert ok.get_by_text(text).first.is_visible(), text
        assert ok.get_by_text("Sent when the client's Last-Event-ID").is_visible()
        items = page.locator(".opblock", has_text="/items/stream")
        assert items.get_by_text("What the item is called").is_visible()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "openapi-swagger-ui.png"), full_page=True)
    finally:
        page.close()
    assert (ARTIFACTS / "openapi-swagger-ui.png").stat().st_size > 10_000
    assert requested and all(url.startswith(example.url) for url in requested), requested
