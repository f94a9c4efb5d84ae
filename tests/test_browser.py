"""Real-browser tests: Playwright for Python driving Debian's Chromium (/usr/bin/chromium,
installed by .ci/test; Playwright's own browser downloads are never used) against a real
server process.

(a) The docs: Swagger UI at /docs renders with nothing requested beyond the service itself,
    without a CSP violation, "Authorize" with a bearer token works and "Try it out" on
    GET /api/v1/achievements answers 200; ReDoc at /docs/redoc renders too.
(b) A small SPA (tests/spa/) served from a second origin that is listed in CORS_ORIGINS runs
    register → login → create → list → refresh (cookie) → logout with fetch(...,
    {credentials: "include"}); the same page on an origin that is not listed is refused by
    the browser (its fetch rejects).

Origins: the API is http://127.0.0.1:<port>, the listed SPA http://127.0.0.1:<another port>.
A site is scheme + registrable domain (for an IP address, the address), ports do not count:
the two are different origins (so CORS applies) but the same site, so the SameSite=Strict
refresh cookie (Path=/api/v1/auth) is stored and sent. localhost vs 127.0.0.1 would be
cross-site and the cookie would never flow. The cookie is not Secure here (COOKIE_SECURE=false)
because everything is plain http on loopback.

A failing test leaves a screenshot of its page in tests/.artifacts/.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.realserver import ARTIFACTS, HOST, RealServer, free_port, real_server_fixture

CHROMIUM = Path("/usr/bin/chromium")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (bash .ci/test installs it when run as root)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra: pip install -e '.[dev]'")

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SPA_DIR = Path(__file__).resolve().parent / "spa"
PASSWORD = "browser tests pass phrase"
TIMEOUT_MS = 15_000

LISTED_PORT = free_port()  # the SPA's origin, in CORS_ORIGINS
UNLISTED_PORT = free_port()  # the same page on an origin the API does not know
LISTED_ORIGIN = f"http://{HOST}:{LISTED_PORT}"
UNLISTED_ORIGIN = f"http://{HOST}:{UNLISTED_PORT}"

server = real_server_fixture(
    CORS_ORIGINS=LISTED_ORIGIN, COOKIE_SECURE="false",
    RATE_LIMIT_LOGIN_IP="0", RATE_LIMIT_LOGIN_ACCOUNT="0", RATE_LIMIT_REGISTER_IP="0", RATE_LIMIT_API_USER="0",
)


# --- the browser -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def playwright() -> Iterator:
    with sync_api.sync_playwright() as driver:
        yield driver


@pytest.fixture
def browser(playwright) -> Iterator:
    """Chromium with a fresh profile of its own, 15 s for every wait."""
    with tempfile.TemporaryDirectory(prefix="journal-chromium-") as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            service_workers="block", viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@contextlib.contextmanager
def screenshot_on_failure(page, name: str) -> Iterator[None]:
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):
            page.screenshot(path=str(ARTIFACTS / f"browser-{name}.png"), full_page=True)
        raise


class PageWatch:
    """Every request the page makes, every console error and every CSP violation it reports."""

    def __init__(self, context, page) -> None:
        self.requests: list[str] = []
        self.console: list[str] = []
        self.violations: list[dict] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}")
                if message.type in ("error", "warning") else None)
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))
        context.add_init_script(
            "window.__cspViolations = [];"
            "document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push("
            "{directive: e.violatedDirective, blocked: e.blockedURI, source: e.sourceFile}));")

    def csp_problems(self, page) -> list:
        reported = page.evaluate("window.__cspViolations")
        return reported + [line for line in self.console if "Content Security Policy" in line]


def offline(context, allowed_origin: str) -> list[str]:
    """Abort every request that does not go to ``allowed_origin``; return the list of those."""
    blocked: list[str] = []

    def route(route) -> None:
        url = route.request.url
        if url.startswith(allowed_origin + "/"):
            route.continue_()
        else:
            blocked.append(url)
            route.abort("internetdisconnected")

    context.route("**/*", route)
    return blocked


# --- users -----------------------------------------------------------------------------------------

def signed_in_student(server: RealServer) -> str:
    email = f"browser-{uuid.uuid4().hex[:10]}@example.org"
    with server.client() as client:
        assert client.post("/api/v1/auth/register",
                           json={"email": email, "password": PASSWORD, "full_name": "Browser Student"}
                           ).status_code == 201
        response = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]


# --- (a) the docs ----------------------------------------------------------------------------------

def test_swagger_ui_renders_offline_authorizes_and_tries_it_out(server, browser):
    token = signed_in_student(server)
    page = browser.new_page()
    watch = PageWatch(browser, page)
    blocked = offline(browser, server.base_url)
    with screenshot_on_failure(page, "docs-swagger"):
        page.goto(server.url("/docs"))
        page.locator(".swagger-ui .info .title").filter(has_text="Achievement Journal API").wait_for()
        operation = page.locator(".opblock-get").filter(
            has=page.locator('.opblock-summary-path[data-path="/api/v1/achievements"]'))
        operation.wait_for()

        # Authorize: the bearer scheme's dialog takes the access token.
        page.locator(".auth-wrapper .authorize").click()
        dialog = page.locator(".dialog-ux .modal-ux")
        # The bearer form (the refresh cookie has a form of its own, filled by the browser).
        bearer = dialog.locator("form").filter(has_text="bearer (http, Bearer)")
        bearer.locator("input").first.fill(token)
        bearer.locator(".auth-btn-wrapper .authorize").click()
        dialog.locator(".auth-btn-wrapper .btn-done").first.click()
        assert page.locator(".auth-wrapper .authorize.locked").count() == 1

        # Try it out: GET /api/v1/achievements with the token.
        operation.locator(".opblock-summary").first.click()
        operation.locator(".try-out__btn").click()
        with page.expect_response(lambda r: urlsplit(r.url).path == "/api/v1/achievements") as answer:
            operation.locator(".execute").click()
        response = answer.value
        assert response.status == 200
        assert response.request.headers.get("authorization") == f"Bearer {token}"
        status = operation.locator(".live-responses-table .response .response-col_status").first
        assert status.inner_text().strip().startswith("200")

        assert not blocked, f"the docs asked for something beyond the service: {blocked}"
        foreign = [url for url in watch.requests if not url.startswith((server.base_url + "/", "data:", "blob:"))]
        assert not foreign, foreign
        assert not watch.csp_problems(page), watch.csp_problems(page)
        assert not [line for line in watch.console if line.startswith("pageerror")], watch.console


def test_redoc_renders_offline(server, browser):
    page = browser.new_page()
    watch = PageWatch(browser, page)
    blocked = offline(browser, server.base_url)
    with screenshot_on_failure(page, "docs-redoc"):
        page.goto(server.url("/docs/redoc"))
        page.locator("#redoc h1").filter(has_text="Achievement Journal API").wait_for()
        page.locator("#redoc h2").filter(has_text="List achievements (the caller's own").first.wait_for()
        page.locator("#redoc h2").filter(has_text="Sign in: access token in the body").first.wait_for()
        assert not blocked, f"ReDoc asked for something beyond the service: {blocked}"
        foreign = [url for url in watch.requests if not url.startswith((server.base_url + "/", "data:", "blob:"))]
        assert not foreign, foreign
        assert not watch.csp_problems(page), watch.csp_problems(page)
        assert not [line for line in watch.console if line.startswith("pageerror")], watch.console


# --- (b) an SPA on another origin ------------------------------------------------------------------

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def static_site(port: int) -> Iterator[str]:
    """tests/spa/ served on 127.0.0.1:port by a thread of this process."""
    handler = functools.partial(_Quiet, directory=str(SPA_DIR))
    site = http.server.ThreadingHTTPServer((HOST, port), handler)
    thread = threading.Thread(target=site.serve_forever, name=f"spa-{port}", daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{port}"
    finally:
        site.shutdown()
        site.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def spa_origins() -> Iterator[tuple[str, str]]:
    with static_site(LISTED_PORT) as listed, static_site(UNLISTED_PORT) as unlisted:
        yield listed, unlisted


def refresh_cookie(context) -> dict | None:
    return next((c for c in context.cookies() if c["name"] == "refresh_token"), None)


def test_spa_on_a_listed_origin_runs_the_whole_session_with_the_cookie(server, browser, spa_origins):
    listed, _ = spa_origins
    assert listed == LISTED_ORIGIN
    page = browser.new_page()
    email = f"spa-{uuid.uuid4().hex[:10]}@example.org"
    with screenshot_on_failure(page, "spa-listed"):
        page.goto(f"{listed}/index.html?api={server.base_url}")
        page.wait_for_function("window.journal !== undefined")
        run = page.evaluate

        registered = run("([e, p]) => journal.register(e, p, 'Spa Student')", [email, PASSWORD])
        assert registered["status"] == 201, registered

        login = run("([e, p]) => journal.login(e, p)", [email, PASSWORD])
        assert login["status"] == 200, login
        assert login["body"]["user"]["email"] == email and "refresh_token" not in str(login["body"])
        cookie = refresh_cookie(browser)
        assert cookie is not None, "the browser did not keep the refresh cookie"
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/api/v1/auth"
        assert cookie["domain"] == HOST
        assert "refresh_token" not in run("document.cookie")  # HttpOnly: invisible to the page

        created = run("item => journal.create(item)",
                      {"title": "Regional olympiad in mathematics", "type": "olympiad", "date": "2025-03-14"})
        assert created["status"] == 201, created
        assert created["location"] == f"/api/v1/achievements/{created['body']['id']}"  # an exposed header
        assert created["etag"]

        listing = run("() => journal.list()")
        assert listing["status"] == 200
        assert [item["id"] for item in listing["body"]["items"]] == [created["body"]["id"]]

        first_token = run("() => journal.token()")
        refreshed = run("() => journal.refresh()")
        assert refreshed["status"] == 200, refreshed  # only the cookie identified the session
        assert refreshed["body"]["access_token"] != first_token
        rotated = refresh_cookie(browser)
        assert rotated is not None and rotated["value"] != cookie["value"]

        second_token = run("() => journal.token()")
        logged_out = run("() => journal.logout()")
        assert logged_out["status"] == 204, logged_out
        assert refresh_cookie(browser) is None, "logout did not clear the cookie"
        assert run("t => journal.me(t)", second_token)["status"] == 401
        assert run("() => journal.refresh()")["status"] == 401


def test_same_spa_on_an_unlisted_origin_is_blocked_by_the_browser(server, browser, spa_origins):
    _, unlisted = spa_origins
    page = browser.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    email = f"spa-{uuid.uuid4().hex[:10]}@example.org"
    outcome = "promise => promise.then(r => 'resolved ' + r.status, e => e.name + ': ' + e.message)"
    with screenshot_on_failure(page, "spa-unlisted"):
        page.goto(f"{unlisted}/index.html?api={server.base_url}")
        page.wait_for_function("window.journal !== undefined")
        # A JSON POST needs a preflight, which gets no CORS headers: the POST is never sent.
        register = page.evaluate(f"([e, p]) => ({outcome})(journal.register(e, p, 'Blocked'))", [email, PASSWORD])
        assert register.startswith("TypeError"), register
        # A "simple" POST is sent; the API refuses the foreign Origin (403) and the browser hides the answer.
        refresh = page.evaluate(f"() => ({outcome})(journal.refresh())")
        assert refresh.startswith("TypeError"), refresh
        assert any("CORS policy" in line for line in console), console
    login = httpx.post(server.url("/api/v1/auth/login"), json={"email": email, "password": PASSWORD}, timeout=10)
    assert login.status_code == 401, "the blocked registration reached the API"
