"""Running the platform's aiohttp application until SIGINT or SIGTERM, then shutting down gracefully.

Plain HTTP, or TLS (``https://`` and ``wss://`` on the same port) from a PEM certificate and key:
:func:`tls_context` checks them before anything listens and names the file that cannot be used.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

log = logging.getLogger("shopologic.server")

# the flags of add_server_options, as they reach plugins in ``platform.overrides``
SERVER_OPTIONS = ("host", "port", "node_id", "tls_cert", "tls_key")


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """``--host``, ``--port``, ``--node-id``, ``--tls-cert`` and ``--tls-key`` of ``serve`` (and of a
    plugin's own server command).

    They reach plugins as ``platform.overrides``; the plugin that owns the address answers the
    ``server_address`` hook with them (the realtime engine: they win over ``REALTIME_HOST``,
    ``REALTIME_PORT``, ``REALTIME_TLS_CERT`` and ``REALTIME_TLS_KEY``).
    """
    parser.add_argument("--host", help="address to bind (default REALTIME_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default REALTIME_PORT, 8080)")
    parser.add_argument("--node-id", dest="node_id", help="this node's id in the cluster (default: host-pid-random)")
    parser.add_argument(
        "--tls-cert", dest="tls_cert", metavar="FILE", help="serve https:// and wss://: the certificate chain, PEM"
    )
    parser.add_argument("--tls-key", dest="tls_key", metavar="FILE", help="the certificate's key, PEM, unencrypted")


class ServeError(RuntimeError):
    """The server cannot listen where or how it was asked to (the port is taken, the address is not
    local, a TLS certificate or key cannot be used)."""


@dataclass(frozen=True)
class Listen:
    """Where the platform listens and, when it serves TLS, its certificate and key (PEM files)."""

    host: str
    port: int
    certificate: str = ""
    key: str = ""

    @classmethod
    def from_answer(cls, answer: Sequence[Any], flags: Mapping[str, Any]) -> Listen:
        """A ``server_address`` answer, ``(host, port)`` or ``(host, port, certificate, key)``; when it
        names no certificate, the ``--tls-cert``/``--tls-key`` flags (``flags``: ``platform.overrides``)."""
        host, port, *tls = answer
        certificate, key = tls or (flags.get("tls_cert"), flags.get("tls_key"))
        if bool(certificate) != bool(key):
            raise ServeError("--tls-cert and --tls-key go together: give the certificate and its key, or neither")
        return cls(str(host), int(port), str(certificate or ""), str(key or ""))

    @property
    def url(self) -> str:
        """``https://host:port`` when it serves TLS, else ``http://host:port``."""
        return f"{'https' if self.certificate else 'http'}://{self.host}:{self.port}"

    def site_options(self) -> dict[str, Any]:
        """:func:`run_app`'s keyword arguments: the TLS context (:func:`tls_context`), none for plain HTTP."""
        return {"ssl_context": tls_context(self.certificate, self.key)} if self.certificate else {}


class _EncryptedKeyError(Exception):
    """The key needs a passphrase: raised from OpenSSL's passphrase callback instead of a prompt."""


def _refuse_passphrase() -> bytes:
    raise _EncryptedKeyError  # a server started by a service manager has no one to type it


def tls_context(certificate: str, key: str) -> ssl.SSLContext:
    """A server TLS context from PEM files: the certificate (with its chain) and its unencrypted key.

    :raises ServeError: one line naming the file that is missing, unreadable, not PEM or encrypted,
        or saying that the key does not match the certificate.
    """
    pems = {"certificate": _read_pem("certificate", certificate), "key": _read_pem("key", key)}
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certificate, key, password=_refuse_passphrase)
    except _EncryptedKeyError:
        raise ServeError(f"the TLS key {key} is encrypted: give it without a passphrase") from None
    except ssl.SSLError as exc:
        raise ServeError(_tls_problem(certificate, key, pems, exc)) from None
    return context


def _read_pem(kind: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ServeError(f"cannot read the TLS {kind} {path}: {exc.strerror or exc}") from None


def _tls_problem(certificate: str, key: str, pems: Mapping[str, bytes], exc: ssl.SSLError) -> str:
    """What OpenSSL's error means for the user, naming the file concerned."""
    if exc.reason == "KEY_VALUES_MISMATCH":
        return f"the TLS key {key} does not match the certificate {certificate}"
    if b"-----BEGIN CERTIFICATE-----" not in pems["certificate"]:
        return f"the TLS certificate {certificate} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
    if b"PRIVATE KEY-----" not in pems["key"]:
        return f"the TLS key {key} holds no PEM private key (-----BEGIN PRIVATE KEY-----)"
    return f"cannot use the TLS certificate {certificate} with the key {key}: {exc.reason or exc}"


async def run_app(
    app: web.Application,
    host: str,
    port: int,
    banner: Iterable[str] = (),
    access_log: bool = False,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Serve ``app`` on ``host:port``, over TLS with ``ssl_context``; print ``banner`` lines once
    listening; stop on a signal."""
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
        site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as exc:  # not a database problem: say which address
            raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        for line in banner:
            print(line, file=sys.stderr, flush=True)
        log.info("listening", extra={"host": host, "port": port, "tls": ssl_context is not None})
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
