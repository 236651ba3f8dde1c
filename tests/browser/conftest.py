"""Browser tests: Debian's headless Chromium driven by Playwright, against engines on loopback.

One browser per test module (launching one costs about a second), a fresh context, so fresh
cookies, per page. Chromium is Debian's package (``scripts/ensure-services.sh`` installs it), found
on the ``PATH`` or at ``/usr/bin/chromium`` and launched through its path with ``--no-sandbox``;
Playwright never downloads a browser. The tests and every fixture here run on the module's event
loop (``pytestmark = pytest.mark.asyncio(loop_scope="module")`` in each module), the browser's.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.conftest import Engine, make_settings, own_redis_prefix
from websocket_realtime_engine.config import Settings
from websocket_realtime_engine.web.app import create_app
from websocket_realtime_engine.web.authenticate import HostAccess

TEST_PAGE = Path(__file__).parent / "page.html"
TEST_PAGE_PATH = "/test/page.html"
DEBIAN_CHROMIUM = "/usr/bin/chromium"
PAGE_TIMEOUT_MS = 5000  # a locator or wait_for_function that takes longer fails the test


def chromium_executable() -> str:
    """Debian's chromium, or a clear failure: the browser tests never skip and never download one."""
    path = shutil.which("chromium") or (DEBIAN_CHROMIUM if os.access(DEBIAN_CHROMIUM, os.X_OK) else None)
    if path is None:
        pytest.fail(
            "the browser tests need Debian's chromium: `make services` installs it (apt-get install chromium)",
            pytrace=False,
        )
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for the module."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium_executable(), args=["--no-sandbox"])
        yield launched
        await launched.close()


PageFactory = Callable[[], Awaitable[Page]]


@pytest_asyncio.fixture(loop_scope="module")
async def new_page(browser: Browser) -> AsyncIterator[PageFactory]:
    """Open pages, each in a context of its own (its own cookies); an uncaught error in any of them
    fails the test. All closed at the end."""
    contexts: list[BrowserContext] = []
    page_errors: list[str] = []

    async def open_page() -> Page:
        context = await browser.new_context()
        contexts.append(context)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        page = await context.new_page()
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        return page

    yield open_page
    for context in contexts:
        await context.close()
    assert not page_errors, f"uncaught errors in the page: {page_errors}"


@pytest_asyncio.fixture(loop_scope="module")
async def page(new_page: PageFactory) -> Page:
    """A page of its own for the test."""
    return await new_page()


async def serve_test_page(request: web.Request) -> web.FileResponse:
    """The page the tests drive: it loads /realtime.js from the engine that serves it."""
    return web.FileResponse(TEST_PAGE, headers={"Content-Type": "text/html; charset=utf-8"})


class Engines:
    """Engines on loopback that serve the test page too, stopped and started again at will."""

    def __init__(self) -> None:
        self.running: list[Engine] = []

    async def start(self, settings: Settings | None = None, access: HostAccess | None = None, port: int = 0) -> Engine:
        """An engine on ``port`` (0: a free one), with ``/test/page.html``."""
        app = create_app(settings or make_settings(), access=access)
        app.router.add_get(TEST_PAGE_PATH, serve_test_page)
        server = TestServer(app, host="127.0.0.1", port=port)
        await server.start_server()
        engine = Engine(server, aiohttp.ClientSession())
        self.running.append(engine)
        return engine

    async def stop(self, engine: Engine) -> int:
        """Stop ``engine`` as a node stops (its clients are closed with 1012, "reconnect"); the port it
        served on, for a restart there."""
        port = engine.server.port
        assert port is not None
        self.running.remove(engine)
        await engine.session.close()
        await engine.server.close()
        return port

    async def stop_all(self) -> None:
        for engine in list(self.running):
            await self.stop(engine)


@pytest_asyncio.fixture(loop_scope="module")
async def engines() -> AsyncIterator[Engines]:
    """Start engines that serve the test page; all stopped at the end."""
    started = Engines()
    yield started
    await started.stop_all()


@pytest_asyncio.fixture(loop_scope="module")
async def redis_prefix() -> AsyncIterator[str]:
    """A Redis key prefix of this test's own, its keys deleted afterwards."""
    async with own_redis_prefix("browser") as prefix:
        yield prefix
