"""Screenshots of the engine's pages for the docs: ``make screenshots`` writes docs/screenshots/*.png.

Runs ``serve --demo`` on a fresh SQLite platform in a temporary folder (the pretend shop stepping
every half second), signs in to the admin pages with a token of its own, lets the pages fill for a
few seconds, and photographs each page in Debian's Chromium (Playwright, never a downloaded browser):
the dashboard, the debug console after it subscribed and published, and the storefront at 1280 px
and on a phone-sized screen.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.async_api import Page, async_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
TOKEN = secrets.token_urlsafe(24)
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        sys.exit("error: Debian's chromium is needed: `make services` installs it")
    return path


def start(folder: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("REALTIME_", "SHOPOLOGIC_"))},
        "SHOPOLOGIC_VAR_DIR": str(folder),
        "SHOPOLOGIC_DATABASE_URL": f"sqlite:///{folder / 'platform.db'}",
        "REALTIME_CONFIG_FILE": str(folder / "realtime.toml"),
        "REALTIME_LOG_LEVEL": "warning",
        "REALTIME_DEMO_INTERVAL": "0.5",
        "REALTIME_ADMIN_TOKEN": TOKEN,
    }
    command = [sys.executable, str(ROOT / "bootstrap_plugins.py")]
    activate = [*command, "plugin", "activate", "websocket-realtime-engine"]
    subprocess.run(activate, env=env, check=True, capture_output=True)
    server = subprocess.Popen([*command, "serve", "--demo", "--port", str(port)], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    sys.exit("error: serve --demo did not start")


async def sign_in(page: Page, base: str, path: str) -> None:
    await page.goto(f"{base}{path}")
    await page.fill("#token", TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}{path}")


async def shoot(base: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        context = await browser.new_context(viewport=DESKTOP)
        dashboard = await context.new_page()
        await sign_in(dashboard, base, "/admin")
        console = await context.new_page()
        await console.goto(f"{base}/debug")
        await console.fill("#subscribe-channel", "private-debug")
        await console.click("#subscribe-button")
        await console.wait_for_selector('#channels [data-channel="private-debug"]:text("subscribed")')
        await console.fill("#publish-channel", "private-debug")
        await console.click("#publish-button")
        storefront_context = await browser.new_context(viewport=DESKTOP)
        storefront = await storefront_context.new_page()
        await storefront.goto(f"{base}/demo/storefront")
        await asyncio.sleep(12)  # the charts gain points, orders move along
        await dashboard.screenshot(path=OUT / "dashboard.png", full_page=True)
        await console.screenshot(path=OUT / "debug-console.png", full_page=False)
        await storefront.screenshot(path=OUT / "storefront.png", full_page=True)
        await storefront.set_viewport_size(PHONE)
        await asyncio.sleep(0.5)
        await storefront.screenshot(path=OUT / "storefront-phone.png", full_page=False)
        await browser.close()


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="screenshots-"))
    port = free_port()
    server = start(folder, port)
    try:
        asyncio.run(shoot(f"http://127.0.0.1:{port}"))
    finally:
        server.terminate()
        server.wait(15)
        shutil.rmtree(folder, ignore_errors=True)
    for path in sorted(OUT.glob("*.png")):
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
