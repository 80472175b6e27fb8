"""A real web client in a real browser: Converse.js in Debian's Chromium (driven through
chromedriver by Selenium) logs in to Tercet over WebSocket (RFC 7395) and over BOSH
(XEP-0206), sends a message that a slixmpp client on TCP receives, and shows the reply.

Needs Debian's ``chromium`` and ``chromium-driver`` and Converse.js unpacked under
``tests/browser/converse/`` (``.ci/run`` installs all three). Without them the tests are
skipped with the reason, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import ServerHarness
from helpers import run
from xmpp import available, login, logout

HERE = Path(__file__).resolve().parent
DIST = HERE / "converse" / "package" / "dist"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PASSWORD = "browser pass"
TIMEOUT = 40  # seconds for the page to log in or to show a message

pytestmark = pytest.mark.browser

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Tercet browser test</title>
<link rel="stylesheet" href="/dist/converse.min.css"></head>
<body><script type="module">
import converse from "/dist/converse.min.js";
converse.plugins.add("tercet-test", {{
  initialize() {{ window.tercetTest = this._converse; }}
}});
converse.initialize({{
  {transport},
  assets_path: "/dist/",
  jid: "romeo@localhost",
  password: "{password}",
  auto_login: true,
  discover_connection_methods: false,
  allow_non_roster_messaging: true,
  view_mode: "fullscreen",
  play_sounds: false,
  show_desktop_notifications: false,
  whitelisted_plugins: ["tercet-test"],
}});
</script></body></html>
"""


def unavailable() -> str | None:
    for path, what in ((CHROMIUM, "Debian's chromium"), (CHROMEDRIVER, "chromium-driver"),
                       (DIST / "converse.min.js", "Converse.js (npm pack converse.js)")):
        if not Path(path).exists():
            return f"{what} is not installed ({path})"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    return None


@pytest.fixture(scope="module", autouse=True)
def browser_available() -> None:
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests need: {reason}")
    pytest.skip(reason)


class PageServer:
    """Serves the test page and Converse.js's files on a loopback port the OS picks."""

    def __init__(self, page: str) -> None:
        from aiohttp import web
        self.loop = asyncio.new_event_loop()
        app = web.Application()

        async def index(_request: web.Request) -> web.Response:
            return web.Response(text=page, content_type="text/html")
        app.router.add_get("/", index)
        app.router.add_static("/dist/", DIST)
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = self.runner.addresses[0][1]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def chrome() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--no-first-run"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def tercet(make_server: Any) -> ServerHarness:
    modules = ["websocket"] + (["bosh"] if have_bosh() else [])
    server: ServerHarness = make_server(
        extra=("http_ports = [0]\nhttps_ports = []\nhttp_interfaces = [\"127.0.0.1\"]\n"
               # The page comes from another port: the WebSocket checks Origin.
               "cross_domain_websocket = true\n"
               # The page asks by address, 127.0.0.1, not by the host name.
               "http_default_host = \"localhost\"\n"
               # Plain ws:// and http:// on loopback; SCRAM still, never PLAIN.
               "c2s_require_encryption = false\n"),
        host_extra=f"modules_enabled = {modules!r}".replace("'", '"'))
    server.create_user("romeo", PASSWORD)
    server.create_user("juliet", PASSWORD)
    return server


def have_bosh() -> bool:
    from importlib.util import find_spec
    return find_spec("tercet.modules.bosh") is not None


def http_port(server: ServerHarness) -> int:
    assert server.server is not None
    return int(server.server.net.bound()["http"][0][1])


WAIT_CONNECTED = """
const done = arguments[arguments.length - 1];
const deadline = Date.now() + (arguments[0] - 5) * 1000;
(function poll() {
  const c = window.tercetTest;
  if (c && c.api.connection.connected() && c.session && c.session.get("jid")) {
    return done(c.session.get("jid"));
  }
  if (Date.now() > deadline) { return done(null); }
  setTimeout(poll, 200);
})();
"""

SEND = """
const [to, body, done] = arguments;
window.tercetTest.api.chats.open(to).then(chat => chat.sendMessage({body})).then(
  () => done("sent"), err => done("error: " + err));
"""

WAIT_MESSAGE = """
const [from, body, seconds, done] = arguments;
const deadline = Date.now() + (seconds - 5) * 1000;
async function poll() {
  const chat = await window.tercetTest.api.chats.get(from);
  const models = chat && chat.messages ? chat.messages.models : [];
  const inModel = models.some(m => m.get("body") === body);
  const onScreen = document.body.innerText.includes(body);
  if (inModel && onScreen) { return done(true); }
  if (Date.now() > deadline) { return done(false); }
  setTimeout(poll, 200);
}
poll();
"""


def converse_round_trip(driver: Any, server: ServerHarness, transport: str) -> None:
    """The page logs in as romeo over ``transport``; juliet (slixmpp over TCP+TLS) gets
    romeo's message and answers; the answer is in Converse's chat and on the page."""
    pages = PageServer(PAGE.format(transport=transport, password=PASSWORD))
    try:
        async def juliet_side() -> None:
            juliet = await login("juliet@localhost/slixmpp", PASSWORD, server.port())
            await available(juliet)  # a message to her bare JID reaches available resources
            try:
                driver.get(f"http://127.0.0.1:{pages.port}/")
                bound = await asyncio.to_thread(driver.execute_async_script,
                                                WAIT_CONNECTED, TIMEOUT)
                assert bound and str(bound).startswith("romeo@localhost/"), (
                    "the page did not log in", driver.get_log("browser"))
                sent = await asyncio.to_thread(driver.execute_async_script, SEND,
                                               "juliet@localhost", "hello from the browser")
                assert sent == "sent", sent
                msg = await asyncio.wait_for(juliet.messages.get(), TIMEOUT)
                assert msg["body"] == "hello from the browser"
                assert str(msg["from"]).startswith("romeo@localhost/")
                juliet.send_message(mto=msg["from"], mbody="hello from slixmpp",
                                    mtype="chat")
                shown = await asyncio.to_thread(driver.execute_async_script, WAIT_MESSAGE,
                                                "juliet@localhost", "hello from slixmpp",
                                                TIMEOUT)
                assert shown, "the reply did not appear in the page"
            finally:
                await logout(juliet)
        run(juliet_side())
    finally:
        pages.close()


def test_converse_over_websocket(chrome: Any, tercet: ServerHarness) -> None:
    url = f"ws://127.0.0.1:{http_port(tercet)}/xmpp-websocket"
    converse_round_trip(chrome, tercet, f'websocket_url: "{url}"')


def test_converse_over_bosh(chrome: Any, tercet: ServerHarness) -> None:
    if not have_bosh():
        pytest.skip("the bosh module is not in this tree yet")
    url = f"http://127.0.0.1:{http_port(tercet)}/http-bind"
    converse_round_trip(chrome, tercet, f'bosh_service_url: "{url}"')
