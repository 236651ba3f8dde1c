"""Running the platform's aiohttp application until SIGINT or SIGTERM, then shutting down gracefully."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Iterable

from aiohttp import web

log = logging.getLogger("shopologic.server")


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """``--host``, ``--port`` and ``--node-id`` of ``serve`` (and of a plugin's own server command).

    They reach plugins as ``platform.overrides``; the plugin that owns the address answers the
    ``server_address`` hook with them (the realtime engine: they win over ``REALTIME_HOST``/``_PORT``).
    """
    parser.add_argument("--host", help="address to bind (default REALTIME_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default REALTIME_PORT, 8080)")
    parser.add_argument("--node-id", dest="node_id", help="this node's id in the cluster (default: host-pid-random)")


class ServeError(RuntimeError):
    """The server cannot listen where it was asked to (the port is taken, the address is not local)."""


async def run_app(
    app: web.Application, host: str, port: int, banner: Iterable[str] = (), access_log: bool = False
) -> None:
    """Serve ``app`` on ``host:port``; print ``banner`` lines once listening; stop on a signal."""
    runner = web.AppRunner(
        app,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        handle_signals=False,
        shutdown_timeout=5,
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:  # not a database problem: say which address
            raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        for line in banner:
            print(line, file=sys.stderr, flush=True)
        log.info("listening", extra={"host": host, "port": port})
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
