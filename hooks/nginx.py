"""The nginx configuration ``websocket setup-cluster`` writes: one address in front of N nodes.

Pure: a :class:`ProxyPlan` in, the text of a file out; nothing is read or written here, so the
tests read the text. Two shapes of the same blocks:

- :func:`render_included`: ``map``, ``upstream`` and ``server`` for nginx's ``http`` context, to
  ``include`` from an ``nginx.conf`` (or drop into ``/etc/nginx/conf.d/``);
- :func:`render_standalone`: a whole ``nginx.conf`` (``events {}``, ``http { … }``) whose pid file,
  error log and temporary folders are in one folder of ours, for ``nginx -c FILE`` as any user.

TLS: with a certificate and key, nginx listens with ``ssl`` and serves ``https://`` and ``wss://``,
passing plain HTTP to the nodes on loopback (``X-Forwarded-Proto: https``); nodes that serve TLS
themselves are reached over ``https://``.

Health: nginx open source has no active health checks; it never requests ``/readyz`` (that is for
load balancers that probe: HAProxy, nginx Plus, cloud balancers, Kubernetes readiness probes). It
checks passively (``proxy_next_upstream``): a request that could not be sent to a node (refused,
connect timeout) goes to the next node, and so does a ``GET`` (the WebSocket upgrade is one) that
timed out or got 503; a ``POST`` (a broadcast) that reached a node is not sent again. After
``max_fails`` such failures within ``fail_timeout`` a node gets no requests for ``fail_timeout``. A
node that has lost Redis but still accepts WebSocket upgrades keeps getting clients from nginx.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

UPSTREAM = "shopologic_realtime"
# Not nginx's usual ``$connection_upgrade``: an nginx.conf that already maps that one would refuse
# a second map of the same variable, and the included file must not break it.
CONNECTION_VARIABLE = "$shopologic_realtime_connection"
SOCKET_PATH = "/socket"


class ListenError(ValueError):
    """``--listen`` is not ``HOST:PORT`` nor ``PORT``; the message says what is wrong."""


@dataclass(frozen=True)
class ProxyPlan:
    """What the configuration needs: where nginx listens, where the nodes are, how long sockets idle.

    ``heartbeat`` is ``REALTIME_HEARTBEAT``: a node pings each socket that often, so nginx's read
    and send timeouts must be longer, or nginx would close idle but healthy sockets.
    """

    listen: str  # an nginx ``listen`` address: "80", "127.0.0.1:8080", "[::1]:8080"
    node_ports: tuple[int, ...]
    heartbeat: float
    max_body_bytes: int  # REALTIME_REST_MAX_BODY_BYTES: nginx must not refuse what a node accepts
    node_host: str = "127.0.0.1"
    certificate: str = ""  # absolute paths of nginx's PEM certificate chain and key: listen with TLS
    key: str = ""
    node_tls: bool = False  # the nodes serve TLS themselves (REALTIME_TLS_CERT): proxy to https://
    max_fails: int = 2
    fail_timeout: int = 10  # seconds

    @property
    def proxy_timeout(self) -> int:
        """Seconds nginx lets a socket go without a read (or a write): two heartbeats and 10 s."""
        return math.ceil(2 * self.heartbeat) + 10


def parse_listen(text: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` → ``("127.0.0.1", 8080)``; ``"80"`` → ``("", 80)``; IPv6 in brackets."""
    host, colon, port = text.strip().rpartition(":")
    if colon and not host:
        raise ListenError(f"--listen {text!r}: the host before ':' is empty")
    if host.count(":") and not (host.startswith("[") and host.endswith("]")):
        raise ListenError(f"--listen {text!r}: write an IPv6 address in brackets, [::1]:8080")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ListenError(f"--listen {text!r}: expected HOST:PORT or PORT, with a port from 1 to 65535")
    return host, int(port)


def render_included(plan: ProxyPlan) -> str:
    """The ``map``, ``upstream`` and ``server`` blocks, for nginx's ``http`` context."""
    return "\n".join([*_header(plan), *_blocks(plan)]) + "\n"


def render_standalone(plan: ProxyPlan, runtime_dir: Path) -> str:
    """A complete ``nginx.conf``: its pid file, logs and temporary files in ``runtime_dir``."""
    temp_paths = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    lines = [
        *_header(plan),
        "# Standalone: run it with `nginx -c THIS_FILE` (add -g 'daemon off;' to stay in the foreground).",
        "",
        "worker_processes auto;",
        f"pid {_quoted(runtime_dir / 'nginx.pid')};",
        f"error_log {_quoted(runtime_dir / 'error.log')} warn;",
        "",
        "events {",
        "    worker_connections 4096;  # each client takes two: its own and the one to its node",
        "}",
        "",
        "http {",
        f"    access_log {_quoted(runtime_dir / 'access.log')};",
        *(f"    {name}_temp_path {_quoted(runtime_dir / name)};" for name in temp_paths),
        "",
        *(f"    {line}" if line else "" for line in _blocks(plan)),
        "}",
    ]
    return "\n".join(lines) + "\n"


def _header(plan: ProxyPlan) -> list[str]:
    count = len(plan.node_ports)
    return [
        f"# Shopologic Realtime: {count} node{'s' if count != 1 else ''} behind one address, least connections.",
        "# Written by `python bootstrap_plugins.py websocket setup-cluster`; run it again rather than edit.",
        "# Health: nginx open source checks nodes passively. A request that could not reach a node",
        "# goes to the next one, and so does a GET (a WebSocket upgrade too) that timed out or got 503;",
        "# after max_fails such failures within fail_timeout, the node gets nothing for fail_timeout.",
        "# nginx never requests /readyz: point a load balancer that has active health checks at it.",
        "",
    ]


def _blocks(plan: ProxyPlan) -> list[str]:
    return [*_upgrade_map(), "", *_upstream(plan), "", *_server(plan)]


def _upgrade_map() -> list[str]:
    # a WebSocket upgrade passes Connection: upgrade on; any other request closes its node connection
    return [
        f"map $http_upgrade {CONNECTION_VARIABLE} {{",
        "    default upgrade;",
        "    ''      close;",
        "}",
    ]


def _upstream(plan: ProxyPlan) -> list[str]:
    health = f"max_fails={plan.max_fails} fail_timeout={plan.fail_timeout}s"
    return [
        f"upstream {UPSTREAM} {{",
        "    least_conn;",
        *(f"    server {plan.node_host}:{port} {health};" for port in plan.node_ports),
        "}",
    ]


def _server(plan: ProxyPlan) -> list[str]:
    timeout = plan.proxy_timeout
    upstream = f"{'https' if plan.node_tls else 'http'}://{UPSTREAM}"
    return [
        "server {",
        *_listen(plan),
        f"    client_max_body_size {plan.max_body_bytes};",
        "",
        "    proxy_http_version 1.1;",
        "    proxy_set_header Host $host;",
        "    proxy_set_header Upgrade $http_upgrade;",
        f"    proxy_set_header Connection {CONNECTION_VARIABLE};",
        "    # the node reads the client's address from the last hop (REALTIME_TRUSTED_PROXIES)",
        "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "    proxy_set_header X-Forwarded-Proto $scheme;",
        "    proxy_connect_timeout 3s;",
        f"    proxy_read_timeout {timeout}s;  # longer than REALTIME_HEARTBEAT: idle sockets stay open",
        f"    proxy_send_timeout {timeout}s;",
        "    # to the next node: what could not reach one; a GET that timed out or got 503 (not a POST)",
        "    proxy_next_upstream error timeout http_503;",
        "",
        f"    location {SOCKET_PATH} {{",
        f"        proxy_pass {upstream};",
        "        proxy_buffering off;",
        "    }",
        "",
        "    location / {",
        f"        proxy_pass {upstream};",
        "    }",
        "}",
    ]


def _listen(plan: ProxyPlan) -> list[str]:
    if not plan.certificate:
        return [f"    listen {plan.listen};"]
    return [
        f"    listen {plan.listen} ssl;",
        f"    ssl_certificate {_quoted(Path(plan.certificate))};",
        f"    ssl_certificate_key {_quoted(Path(plan.key))};",
        "    ssl_protocols TLSv1.2 TLSv1.3;",
        "    # clients reconnecting after a node is lost resume their TLS session: no full handshake each",
        "    ssl_session_cache shared:shopologic_realtime_tls:10m;",
        "    ssl_session_timeout 1h;",
        "",
    ]


def _quoted(path: Path) -> str:
    """A path as an nginx string: quoted, so a space or a ``;`` in it stays part of it."""
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'
