"""Running the platform's aiohttp application until SIGINT or SIGTERM, then shutting down gracefully.

Plain HTTP, or TLS (``https://`` and ``wss://`` on the same port) from a PEM certificate and key:
:func:`tls_context` checks them before anything listens and names the file that cannot be used.
A client that goes away in the middle of its request is :class:`ClientAborts`' business: counted
and logged at ``info``, not an ERROR traceback. While it serves the platform, a server holds a record
of itself in ``SHOPOLOGIC_VAR_DIR/run`` (:func:`running_record`), so that other commands can say
that it must be restarted (:func:`running_servers`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import math
import os
import re
import signal
import ssl
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler, Middleware

from shopologic.contracts import PLATFORM_KEY

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


# seconds between two log lines about clients that went away in the middle of their request
ABORT_LOG_INTERVAL = 10.0
# nginx's code for "client closed the request": only the access log sees it, the client is gone
CLIENT_CLOSED_REQUEST = 499


class OncePer:
    """A kind of event that is normal on the internet and nothing the server can act on: counted, and
    logged at ``info`` at most once per ``interval`` seconds with the count since the last line."""

    def __init__(
        self, message: str, interval: float = ABORT_LOG_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.message = message
        self.interval = interval
        self.clock = clock
        self.total = 0
        self._unlogged = 0
        self._logged_at = -math.inf

    def record(self, **extra: Any) -> None:
        """Count one; log it (with the others since the last line) when it is time."""
        self.total += 1
        self._unlogged += 1
        now = self.clock()
        if now - self._logged_at < self.interval:
            return
        counts = {"count": self._unlogged, "total": self.total}  # since the last line, since the start
        log.info("%s (logged at most once per %g s)", self.message, self.interval, extra={**counts, **extra})
        self._unlogged, self._logged_at = 0, now


class ClientAborts(OncePer):
    """Requests whose client went away before the answer (a closed tab, a lost network, a scanner):
    one info line per interval instead of aiohttp's ERROR traceback per request (100 aborted
    requests wrote 100 tracebacks)."""

    def __init__(self, interval: float = ABORT_LOG_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__("client went away before the answer", interval, clock)

    def middleware(self) -> Middleware:
        """The application middleware that recognises an aborted request (its own connection reset)."""

        @web.middleware
        async def client_aborts(request: web.Request, handler: Handler) -> web.StreamResponse:
            try:
                return await handler(request)
            except ConnectionResetError as exc:
                transport = request.transport
                if transport is not None and not transport.is_closing():
                    raise  # this client is still there: another connection (a database, Redis) was reset
                self.record(method=request.method, path=request.path, error=str(exc))
                return web.Response(status=CLIENT_CLOSED_REQUEST)  # for the access log; nobody reads it

        return client_aborts


class MalformedRequests(logging.Filter):
    """On ``aiohttp.server``: a request aiohttp could not parse (a header line past its limit, not
    HTTP at all) is answered 400 by aiohttp before any route runs, and logged by it at ERROR with a
    traceback, one per request. Those records become one info line per interval (:class:`OncePer`)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = OncePer("malformed HTTP requests refused with 400")

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        self.seen.record(error=str(error)[:200])
        return False


MALFORMED_REQUESTS = MalformedRequests()


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


# -- connections, before aiohttp sees them -----------------------------------------------------------

ProtocolFactory = Callable[[], asyncio.BaseProtocol]
ConnectionWrapper = Callable[[ProtocolFactory], ProtocolFactory]
CONNECTION_WRAPPERS = web.AppKey[list[ConnectionWrapper]]("shopologic.connection_wrappers")
# seconds a client has to complete its TLS handshake (asyncio's default: 60)
TLS_HANDSHAKE_TIMEOUT = 10.0


def wrap_connections(app: web.Application, wrapper: ConnectionWrapper) -> None:
    """Have every TCP connection :func:`run_app` accepts for ``app`` go through ``wrapper`` first.

    aiohttp has no hook at accept. A plugin that must see connections before any request (count
    them, refuse them, drop those that send nothing) calls this from its ``register_routes`` hook.
    ``wrapper`` receives the protocol factory (aiohttp's, or the previous wrapper's result) and
    returns a factory whose protocols pass each transport event on to a protocol of the factory it
    received, or close the transport instead. The first wrapper registered is nearest to aiohttp.
    With TLS, a wrapper sees a connection once its TLS handshake is done
    (:data:`TLS_HANDSHAKE_TIMEOUT`).
    """
    app[CONNECTION_WRAPPERS] = [*app.get(CONNECTION_WRAPPERS, []), wrapper]


async def listen(
    runner: web.AppRunner, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> asyncio.Server:
    """Accept connections on ``host:port`` for ``runner``'s application (set up), through the
    application's connection wrappers (:func:`wrap_connections`), over TLS with ``ssl_context``.
    Close the server returned before cleaning the runner up.

    :raises OSError: the address cannot be listened on.
    """
    factory: Any = runner.server
    for wrapper in runner.app.get(CONNECTION_WRAPPERS, []):
        factory = wrapper(factory)
    tls: dict[str, Any] = {"ssl": ssl_context, "ssl_handshake_timeout": TLS_HANDSHAKE_TIMEOUT} if ssl_context else {}
    loop = asyncio.get_running_loop()
    return await loop.create_server(factory, host, port, backlog=1024, reuse_address=True, **tls)


def serves(app: web.Application, path: str) -> bool:
    """Whether ``app`` has a route for ``path`` (``/socket``), in itself or in a sub-application, or
    mounts a sub-application there (``/api/v1/``): what a banner line may name."""
    for resource in app.router.resources():
        info = resource.get_info()
        if "app" in info:  # a sub-application: its own resources carry the prefix already
            if path.rstrip("/") == str(info.get("prefix", "")).rstrip("/") or serves(info["app"], path):
                return True
        elif "pattern" in info:  # a route with {variables}
            if info["pattern"].fullmatch(path):
                return True
        elif "directory" in info:  # static files under a prefix
            if path.startswith(str(info["prefix"]).rstrip("/") + "/"):
                return True
        elif resource.canonical == path:
            return True
    return False


URL_IN_TEXT = re.compile(r"\b(?:https?|wss?)://[^\s()<>,;]+")


def unserved_urls(app: web.Application, url: str, line: str) -> list[str]:
    """The URLs in ``line`` that point at ``url`` (the address ``app`` listens on, ``http(s)://`` or
    its ``ws(s)://`` twin) with a path ``app`` does not serve (:func:`serves`); URLs elsewhere are
    not this server's to check."""
    bases = (url, "ws" + url.removeprefix("http"))
    unserved = []
    for found in URL_IN_TEXT.findall(line):
        base = next((base for base in bases if found == base or found.startswith(f"{base}/")), None)
        if base is not None and not serves(app, urlsplit(found).path or "/"):
            unserved.append(found)
    return unserved


# -- the record of a running server -----------------------------------------------------------------

RUN_FOLDER = "run"  # in SHOPOLOGIC_VAR_DIR


@dataclass(frozen=True)
class RunningServer:
    """A server process running now: its pid, its command (``serve``, ``websocket start``), its URL."""

    pid: int
    command: str
    url: str


@contextlib.contextmanager
def running_record(var_dir: Path, command: str, url: str) -> Iterator[None]:
    """Record in ``var_dir/run`` that this process serves ``url``, for as long as the block runs.

    The claim is the record's ``flock``, not the file: the kernel releases it when the process ends,
    so a server that crashed claims nothing, whatever file it left behind. The record is locked
    before it gets its name, so nobody reads an unlocked one that belongs to a live server.
    """
    folder = var_dir / RUN_FOLDER
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"server-{os.getpid()}.json"
    partial = folder / f".{path.name}.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps({"pid": os.getpid(), "command": command, "url": url}).encode())
        os.replace(partial, path)
        yield
    finally:
        path.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
        os.close(fd)


def running_servers(var_dir: Path) -> list[RunningServer]:
    """The servers whose record in ``var_dir/run`` their process still holds (:func:`running_record`);
    records nobody holds (left by a server that crashed) are removed."""
    servers = []
    for path in sorted((var_dir / RUN_FOLDER).glob("server-*.json")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:  # that server just stopped
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # held: that server runs
            servers.append(_read_record(path))
        else:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return servers


def _read_record(path: Path) -> RunningServer:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return RunningServer(int(record["pid"]), str(record["command"]), str(record["url"]))
    except (OSError, ValueError, KeyError, TypeError):  # held, yet unreadable: still a server that runs
        return RunningServer(int(path.stem.removeprefix("server-")), "a server", "")


def _command_name(argv: Sequence[str]) -> str:
    """The command this process runs, for its record: the words before the first option
    (``serve``, ``websocket start``)."""
    words = []
    for word in argv[1:]:
        if word.startswith("-"):
            break
        words.append(word)
    return " ".join(words) or "a server"


async def run_app(
    app: web.Application,
    host: str,
    port: int,
    banner: Iterable[str] = (),
    access_log: bool = False,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Serve ``app`` on ``host:port``, over TLS with ``ssl_context``, through its connection wrappers
    (:func:`wrap_connections`); print ``banner`` lines once listening, and hold the platform's record
    of this server (:func:`running_record`) while it serves; stop on a signal."""
    runner = web.AppRunner(
        app,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        handle_signals=False,
        shutdown_timeout=5,
    )
    server_log = logging.getLogger("aiohttp.server")
    if MALFORMED_REQUESTS not in server_log.filters:
        server_log.addFilter(MALFORMED_REQUESTS)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server: asyncio.Server | None = None
    try:
        try:
            server = await listen(runner, host, port, ssl_context)
        except OSError as exc:  # not a database problem: say which address
            raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        url = f"{'https' if ssl_context else 'http'}://{host}:{port}"
        with _record_of(app, url):
            for line in banner:
                print(line, file=sys.stderr, flush=True)
            log.info("listening", extra={"host": host, "port": port, "tls": ssl_context is not None})
            await stop.wait()
            log.info("shutting down")
    finally:
        if server is not None:
            server.close()  # no new connections; the runner's cleanup ends the open ones
        await runner.cleanup()


def _record_of(app: web.Application, url: str) -> contextlib.AbstractContextManager[None]:
    """The platform's server holds its record while it serves (:func:`running_record`); an
    application without the platform (a test's) records nothing."""
    platform = app.get(PLATFORM_KEY)
    if platform is None:
        return contextlib.nullcontext()
    return running_record(platform.settings.var_dir, _command_name(sys.argv), url)
