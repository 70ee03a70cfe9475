"""The app loads with nothing from outside this machine: every request stays on localhost.

Streamlit draws ``:material/...:`` icons from a font it serves itself, but fetches a Material
page icon (the favicon) from fonts.gstatic.com; the app must not use one.
"""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.slow

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _is_local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("data", "blob", "about") or parsed.hostname in LOCAL_HOSTS


@pytest.mark.parametrize("path", ["", "circuits"])
def test_the_app_requests_nothing_from_outside(browser, app_url, path):
    requested: list[str] = []
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:

        def record(route):
            requested.append(route.request.url)
            if _is_local(route.request.url):
                route.continue_()
            else:
                route.abort()

        context.route("**/*", record)
        page = context.new_page()
        page.on("request", lambda r: requested.append(r.url))
        page.goto(f"{app_url}/{path}")
        page.wait_for_function(
            """() => {
                const app = document.querySelector('[data-testid="stApp"]');
                return app && app.dataset.testScriptState === 'notRunning'
                    && document.querySelector('[data-testid="stSidebarNav"]');
            }""",
            timeout=90_000,
        )
        page.wait_for_timeout(1500)  # icons and the favicon are set after the first run
        # what the page points at, fetched or not (headless Chromium may skip the favicon)
        linked = page.evaluate(
            """() => [...document.querySelectorAll('link[href], script[src], img[src]')]
                .map(e => e.href || e.src)
                .concat(performance.getEntriesByType('resource').map(e => e.name))"""
        )
    finally:
        context.close()
    assert any(url.startswith(app_url) for url in requested), requested
    outside = sorted({u for u in [*requested, *linked] if not _is_local(u)})
    assert not outside, f"the app reached outside localhost: {outside}"
