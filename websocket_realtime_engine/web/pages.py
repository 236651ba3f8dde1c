"""The engine's pages and their static files: plain HTML, CSS and JavaScript, no build step.

``/static/pages/`` holds the pages' own files and ``/static/vendor/`` the vendored libraries (uPlot,
with its licence). Every page is served with a Content-Security-Policy that allows scripts, styles
and connections to this origin only (no inline script), and is never framed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGES_DIR = STATIC_DIR / "pages"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


def page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A handler answering the page ``static/pages/<name>`` with the pages' headers."""
    path = PAGES_DIR / name

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path, headers={**PAGE_HEADERS, "Content-Type": "text/html; charset=utf-8"})

    return handler


def add_static_routes(app: web.Application) -> None:
    """``/static/pages/`` and ``/static/vendor/`` (no directory listings, no symlinks out)."""
    app.router.add_static("/static/pages/", PAGES_DIR, name="realtime-pages", append_version=False)
    app.router.add_static("/static/vendor/", STATIC_DIR / "vendor", name="realtime-vendor")
