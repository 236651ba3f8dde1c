"""TLS: ``https://`` and ``wss://`` on the node's one port, with certificates made by ``trustme``.

Real processes on loopback, as users run them: ``websocket start`` with ``REALTIME_TLS_CERT``/``_KEY``,
``serve --tls-cert --tls-key``, real clients (aiohttp, and the ``websockets`` library) that trust the
test CA. A file that cannot be used is one ``error:`` line before anything listens. ``setup-cluster
--tls-cert --tls-key`` writes an nginx configuration that terminates TLS in front of the nodes.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import trustme
from websockets.asyncio.client import connect as websockets_connect

import tests.cluster.test_nginx as nginx_tests
import tests.host.test_cli as cli_tests
from shopologic.server import ServeError, tls_context
from tests.conftest import CREDENTIALS, Client, engine_hook_module, free_port, positioned
from tests.host.test_cli import REDIS_URL, ServerFactory, assert_ok, assert_one_line_error
from websocket_realtime_engine import PLUGIN_NAME

start_server = cli_tests.start_server
cluster, cluster_env, nginx_binary = nginx_tests.cluster, nginx_tests.cluster_env, nginx_tests.nginx_binary

Cli = Callable[..., subprocess.CompletedProcess[str]]
HEADERS = {"Authorization": f"Bearer {CREDENTIALS['api_key']}"}
CREDENTIALS_ENV = {f"REALTIME_{name.upper()}": value for name, value in CREDENTIALS.items()}


@dataclass(frozen=True)
class TLSFiles:
    """A server certificate (chain) and key for 127.0.0.1, and the CA a client must trust for it."""

    certificate: Path
    key: Path
    ca: Path

    def client_context(self) -> ssl.SSLContext:
        """What a client verifies the server with: the test CA only."""
        return ssl.create_default_context(cafile=str(self.ca))

    @property
    def env(self) -> dict[str, str]:
        return {"REALTIME_TLS_CERT": str(self.certificate), "REALTIME_TLS_KEY": str(self.key)}

    @property
    def flags(self) -> list[str]:
        return ["--tls-cert", str(self.certificate), "--tls-key", str(self.key)]


def issue(folder: Path) -> TLSFiles:
    """A fresh CA and a certificate for ``127.0.0.1`` and ``localhost``, written as PEM files in ``folder``."""
    folder.mkdir(parents=True)
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    files = TLSFiles(folder / "cert.pem", folder / "key.pem", folder / "ca.pem")
    files.certificate.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(files.key))
    authority.cert_pem.write_to_path(str(files.ca))
    return files


@pytest.fixture
def tls(tmp_path: Path) -> TLSFiles:
    return issue(tmp_path / "tls")


@pytest.fixture
def other_tls(tmp_path: Path) -> TLSFiles:
    """A second certificate, from another CA: its key matches none of ``tls``."""
    return issue(tmp_path / "other-tls")


@pytest.fixture
async def session(tls: TLSFiles) -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp client that trusts the test CA."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls.client_context())) as client_session:
        yield client_session


def https(port: int, path: str) -> str:
    return f"https://127.0.0.1:{port}{path}"


async def connect_wss(session: aiohttp.ClientSession, url: str) -> Client:
    client = Client(await session.ws_connect(url))
    client.connection_id = (await client.expect("connected"))["data"]["connection_id"]
    return client


async def broadcast(session: aiohttp.ClientSession, url: str, data: object) -> None:
    body = {"channel": "orders", "event": "tick", "data": data}
    async with session.post(url + "/api/v1/broadcast", json=body, headers=HEADERS) as response:
        assert response.status == 200, await response.text()


# -- a node serving TLS itself ----------------------------------------------------------------------


async def test_websocket_start_serves_https_and_wss_on_one_port(
    start_server: ServerFactory,
    platform_env: dict[str, str],
    tls: TLSFiles,
    session: aiohttp.ClientSession,
    cli: Cli,
) -> None:
    platform_env.update({**tls.env, **CREDENTIALS_ENV})
    server = start_server("websocket", "start")
    base = https(server.port, "")
    async with session.get(base + "/healthz") as response:
        assert response.status == 200 and await response.json() == {"status": "ok"}
    client = await connect_wss(session, f"wss://127.0.0.1:{server.port}/socket")
    assert (await client.subscribe("orders"))["event"] == "subscribed"
    await broadcast(session, base, {"n": 1})  # over https
    assert positioned(await client.expect("tick")) == {"event": "tick", "channel": "orders", "data": {"n": 1}}

    async with websockets_connect(f"wss://127.0.0.1:{server.port}/socket", ssl=tls.client_context()) as other:
        assert json.loads(await other.recv())["event"] == "connected"
        await other.send(json.dumps({"event": "subscribe", "channel": "orders", "id": 1}))
        assert json.loads(await other.recv())["event"] == "subscribed"
        await broadcast(session, base, {"n": 2})
        assert positioned(json.loads(await asyncio.wait_for(other.recv(), 3)))["data"] == {"n": 2}
    assert positioned(await client.expect("tick"))["data"] == {"n": 2}
    await client.ws.close()

    # the CLI reaches the node over https too (REALTIME_ENGINE_URL unset: https://REALTIME_HOST:PORT)
    engine = {"REALTIME_PORT": str(server.port), "SSL_CERT_FILE": str(tls.ca)}
    status = assert_ok(await asyncio.to_thread(cli, "websocket", "status", env=engine))
    assert f" at https://127.0.0.1:{server.port}: " in status.splitlines()[0]

    assert await asyncio.to_thread(server.stop) == 0
    banner = server.stderr.splitlines()
    assert f"Shopologic Realtime listening on https://127.0.0.1:{server.port}" in banner
    assert f"  WebSocket  wss://127.0.0.1:{server.port}/socket" in banner


async def test_a_client_that_does_not_trust_the_certificate_is_refused(
    start_server: ServerFactory, platform_env: dict[str, str], tls: TLSFiles
) -> None:
    platform_env.update(tls.env)
    server = start_server("websocket", "start")
    async with aiohttp.ClientSession() as untrusting:  # the system's CAs only
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await untrusting.get(https(server.port, "/healthz"))
    assert await asyncio.to_thread(server.stop) == 0


@pytest.mark.parametrize("engine_active", [True, False], ids=["engine-active", "host-only"])
async def test_serve_with_tls_flags_serves_https(
    start_server: ServerFactory, cli: Cli, tls: TLSFiles, session: aiohttp.ClientSession, engine_active: bool
) -> None:
    """With the engine active it answers ``server_address`` (the flags win over its settings); without
    it the host's default answers, and ``serve`` takes the flags itself."""
    if engine_active:
        assert_ok(cli("plugin", "activate", PLUGIN_NAME))
    server = start_server("serve", *tls.flags)
    async with session.get(https(server.port, "/health")) as response:
        assert response.status == 200 and (await response.json())["status"] == "ok"
    if engine_active:
        client = await connect_wss(session, f"wss://127.0.0.1:{server.port}/socket")
        assert (await client.subscribe("orders"))["event"] == "subscribed"
        await client.ws.close()
    assert await asyncio.to_thread(server.stop) == 0
    banner = server.stderr.splitlines()
    assert f"Shopologic listening on https://127.0.0.1:{server.port}" in banner
    assert f"  health     https://127.0.0.1:{server.port}/health" in banner


# -- a certificate or key that cannot be used: one line, nothing listens ----------------------------


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("websocket start", "missing certificate"),
        ("websocket start", "key of another certificate"),
        ("websocket start", "key alone"),
        ("serve", "missing key"),
        ("serve", "key of another certificate"),
        ("serve", "not PEM"),
    ],
)
def test_an_unusable_certificate_or_key_is_one_line(
    cli: Cli, tls: TLSFiles, other_tls: TLSFiles, tmp_path: Path, command: str, problem: str
) -> None:
    certificate, key = str(tls.certificate), str(tls.key)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    flags, fragment = {
        "missing certificate": (["--tls-cert", "/nonexistent/cert.pem", "--tls-key", key], "/nonexistent/cert.pem"),
        "missing key": (["--tls-cert", certificate, "--tls-key", "/nonexistent/key.pem"], "/nonexistent/key.pem"),
        "key of another certificate": (
            ["--tls-cert", certificate, "--tls-key", str(other_tls.key)],
            f"the TLS key {other_tls.key} does not match the certificate {certificate}",
        ),
        "not PEM": (["--tls-cert", str(junk), "--tls-key", key], f"the TLS certificate {junk} holds no PEM"),
        "key alone": (["--tls-key", key], "go together: give the certificate and its key, or neither"),
    }[problem]
    result = cli(*command.split(), "--port", str(free_port()), *flags)
    line = assert_one_line_error(result, fragment)  # one line: no "activating", no migration, no banner
    if problem.startswith("missing"):
        assert line.endswith(f"{fragment}: No such file or directory")


def test_a_missing_file_named_in_the_environment_is_one_line(cli: Cli, tls: TLSFiles) -> None:
    env = {"REALTIME_TLS_CERT": str(tls.certificate), "REALTIME_TLS_KEY": str(tls.key) + ".gone"}
    result = cli("websocket", "start", "--port", str(free_port()), env=env)
    assert_one_line_error(result, f"cannot read the TLS key {tls.key}.gone: No such file or directory")


def test_an_encrypted_key_is_refused_without_a_prompt(tls: TLSFiles, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(tls.key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted-key.pem"
    encryption = serialization.BestAvailableEncryption(b"passphrase")
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    with pytest.raises(ServeError, match=f"^the TLS key {encrypted} is encrypted: give it without a passphrase$"):
        tls_context(str(tls.certificate), str(encrypted))  # no prompt on the terminal: it would hang a service


def test_a_folder_is_not_a_certificate(tls: TLSFiles, tmp_path: Path) -> None:
    with pytest.raises(ServeError, match=f"^cannot read the TLS certificate {tmp_path}: Is a directory$"):
        tls_context(str(tmp_path), str(tls.key))


# -- nginx terminating TLS in front of the nodes ----------------------------------------------------


def test_the_nginx_configuration_listens_with_ssl_and_the_given_files() -> None:
    nginx = engine_hook_module("hooks/nginx.py")
    plan = nginx.ProxyPlan(
        listen="443", node_ports=(8081, 8082), heartbeat=25, max_body_bytes=1024, certificate="/a b/c.pem", key="/k.pem"
    )
    text = nginx.render_included(plan)
    for line in ("listen 443 ssl;", 'ssl_certificate "/a b/c.pem";', 'ssl_certificate_key "/k.pem";'):
        assert f"    {line}\n" in text
    assert "proxy_pass http://shopologic_realtime;" in text, "plain HTTP to the nodes on loopback"
    plain = nginx.render_included(nginx.ProxyPlan(listen="80", node_ports=(8081,), heartbeat=25, max_body_bytes=1))
    assert "ssl" not in plain and "    listen 80;\n" in plain
    to_tls_nodes = nginx.render_included(nginx.ProxyPlan("80", (8081,), 25, 1, node_tls=True))
    assert "proxy_pass https://shopologic_realtime;" in to_tls_nodes


def test_setup_cluster_with_tls_writes_a_configuration_nginx_accepts(
    cli: Cli, tls: TLSFiles, tmp_path: Path, nginx_binary: str
) -> None:
    config = tmp_path / "nginx" / "realtime.conf"
    flags = ["--nodes", "2", "--allow-sqlite", "--standalone", "--nginx-config", str(config), *tls.flags]
    output = assert_ok(cli("websocket", "setup-cluster", "--redis-url", REDIS_URL, *flags))
    assert "(least connections, on 443, TLS)" in output, "443 by default with TLS"
    text = config.read_text()
    assert "    listen 443 ssl;\n" in text
    assert f'    ssl_certificate "{tls.certificate}";\n' in text and f'    ssl_certificate_key "{tls.key}";\n' in text
    checked = subprocess.run([nginx_binary, "-t", "-c", str(config)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("problem", ["key of another certificate", "without --nodes"])
def test_setup_cluster_refuses_unusable_tls_flags_before_asking_redis(
    cli: Cli, tls: TLSFiles, other_tls: TLSFiles, platform_env: dict[str, str], problem: str
) -> None:
    if problem == "without --nodes":
        flags, fragment = tls.flags, "--tls-cert and --tls-key are for the nginx configuration: give --nodes N too"
    else:
        flags = ["--nodes", "2", "--allow-sqlite", "--tls-cert", str(tls.certificate), "--tls-key", str(other_tls.key)]
        fragment = f"the TLS key {other_tls.key} does not match the certificate {tls.certificate}"
    result = cli("websocket", "setup-cluster", "--redis-url", "redis://127.0.0.1:1/0", *flags)  # no Redis there
    assert_one_line_error(result, fragment)
    assert not Path(platform_env["SHOPOLOGIC_VAR_DIR"], "nginx-realtime.conf").exists()


@pytest.fixture
def proxied_tls(
    cluster: nginx_tests.two_nodes.Cluster,
    cluster_env: dict[str, str],
    nginx_binary: str,
    tmp_path: Path,
    tls: TLSFiles,
) -> Iterator[nginx_tests.Proxied]:
    """Two nodes behind nginx, which ``setup-cluster --tls-cert --tls-key`` configured to terminate TLS."""
    with nginx_tests.proxied_cluster(cluster, cluster_env, nginx_binary, tmp_path, *tls.flags) as proxied:
        yield proxied


async def test_wss_through_nginx_to_the_nodes(proxied_tls: nginx_tests.Proxied, session: aiohttp.ClientSession) -> None:
    assert "proxy_pass http://shopologic_realtime;" in proxied_tls.config.read_text(), "plain HTTP to the nodes"
    port = proxied_tls.proxy.port
    through = await connect_wss(session, f"wss://127.0.0.1:{port}/socket")
    assert (await through.subscribe("orders"))["event"] == "subscribed"
    await broadcast(session, https(port, ""), {"n": 1})  # through nginx, to either node
    await broadcast(session, proxied_tls.node_b.url(""), {"n": 2})  # to node B directly, plain HTTP on loopback
    assert [positioned(await through.expect("tick"))["data"] for _ in range(2)] == [{"n": 1}, {"n": 2}]
    await through.ws.close()
