"""The nginx configuration ``setup-cluster`` writes: the rendered text, and ``nginx -t`` on it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import engine_hook_module

nginx = engine_hook_module("hooks/nginx.py")


def plan(ports: tuple[int, ...] = (8081, 8082), listen: str = "80", heartbeat: float = 25.0) -> object:
    return nginx.ProxyPlan(listen=listen, node_ports=ports, heartbeat=heartbeat, max_body_bytes=1048576)


def directives(text: str) -> list[str]:
    """The configuration's directives and block openings, one per line, without comments or indentation."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def block(text: str, opening: str) -> list[str]:
    """The directives inside the block that starts with ``opening`` (blocks nested in it included)."""
    lines = directives(text)
    start = lines.index(opening + " {")
    depth, inside = 1, []
    for line in lines[start + 1 :]:
        depth += line.endswith("{") - (line == "}")
        if depth == 0:
            return inside
        inside.append(line)
    raise AssertionError(f"{opening} is not closed")


def test_the_upstream_lists_every_node_with_least_connections_and_passive_checks() -> None:
    text = nginx.render_included(plan(ports=(9001, 9002, 9003)))
    assert block(text, f"upstream {nginx.UPSTREAM}") == [
        "least_conn;",
        "server 127.0.0.1:9001 max_fails=2 fail_timeout=10s;",
        "server 127.0.0.1:9002 max_fails=2 fail_timeout=10s;",
        "server 127.0.0.1:9003 max_fails=2 fail_timeout=10s;",
    ]


def test_websocket_upgrades_pass_through_with_the_client_address() -> None:
    server = block(nginx.render_included(plan()), "server")
    variable = nginx.CONNECTION_VARIABLE
    for directive in (
        "listen 80;",
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        f"proxy_set_header Connection {variable};",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_next_upstream error timeout http_503;",
        "client_max_body_size 1048576;",
    ):
        assert directive in server, directive
    text = nginx.render_included(plan())
    assert block(text, f"map $http_upgrade {variable}") == ["default upgrade;", "''      close;"]


def test_the_socket_is_unbuffered_and_every_path_goes_to_the_nodes() -> None:
    text = nginx.render_included(plan())
    assert block(text, "location /socket") == [f"proxy_pass http://{nginx.UPSTREAM};", "proxy_buffering off;"]
    assert block(text, "location /") == [f"proxy_pass http://{nginx.UPSTREAM};"]


@pytest.mark.parametrize(("heartbeat", "seconds"), [(25.0, 60), (0.5, 11), (100.0, 210)])
def test_idle_timeouts_are_longer_than_the_heartbeat(heartbeat: float, seconds: int) -> None:
    server = block(nginx.render_included(plan(heartbeat=heartbeat)), "server")
    assert f"proxy_read_timeout {seconds}s;" in server and f"proxy_send_timeout {seconds}s;" in server
    assert seconds > heartbeat


def test_the_included_form_has_no_main_context_directives() -> None:
    text = nginx.render_included(plan())
    assert not {"events {", "http {"} & set(directives(text))
    assert not any(line.startswith(("pid ", "worker_processes", "error_log")) for line in directives(text))


def test_the_standalone_form_keeps_its_files_in_one_folder(tmp_path: Path) -> None:
    runtime = tmp_path / "run dir"  # a space: paths are quoted
    text = nginx.render_standalone(plan(listen="127.0.0.1:8090"), runtime)
    lines = directives(text)
    assert f'pid "{runtime}/nginx.pid";' in lines
    assert f'error_log "{runtime}/error.log" warn;' in lines
    assert "events {" in lines
    http = block(text, "http")
    assert f'proxy_temp_path "{runtime}/proxy";' in http and f'access_log "{runtime}/access.log";' in http
    assert "listen 127.0.0.1:8090;" in http
    upstream = f"upstream {nginx.UPSTREAM}"
    assert block(text, upstream) == block(nginx.render_included(plan()), upstream)


def test_the_comments_do_not_claim_nginx_probes_readyz() -> None:
    text = nginx.render_included(plan())
    assert "never requests" in text and "/readyz" in text
    assert not re.search(r"^\s*health_check", text, re.MULTILINE), "nginx Plus only"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("80", ("", 80)), ("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:8080", ("[::1]", 8080))],
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert nginx.parse_listen(text) == expected


@pytest.mark.parametrize("text", ["", ":80", "host:", "host:0", "host:65536", "::1:80", "eighty"])
def test_bad_listen_addresses_say_what_is_wrong(text: str) -> None:
    with pytest.raises(nginx.ListenError, match="--listen"):
        nginx.parse_listen(text)


# -- nginx itself accepts both forms ---------------------------------------------------------------


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).is_file()), None)
    assert found, "nginx is not installed: `make services` installs it (scripts/ensure-services.sh)"
    return found


def nginx_test(config: Path, error_log: Path) -> subprocess.CompletedProcess[str]:
    command = [nginx_binary(), "-t", "-q", "-e", str(error_log), "-c", str(config)]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def test_nginx_accepts_the_standalone_form(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    config = tmp_path / "nginx.conf"
    config.write_text(nginx.render_standalone(plan(listen="127.0.0.1:8090"), runtime))
    result = nginx_test(config, runtime / "startup.log")
    assert result.returncode == 0, result.stderr


def test_nginx_accepts_the_included_form_in_an_http_block(tmp_path: Path) -> None:
    included = tmp_path / "realtime.conf"
    included.write_text(nginx.render_included(plan(listen="127.0.0.1:8090")))
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    main = nginx.render_standalone(plan(), runtime)  # its main context, with the blocks swapped for the include
    head = main[: main.index("http {")]
    config = tmp_path / "nginx.conf"
    config.write_text(f'{head}http {{\n    proxy_temp_path "{runtime}/proxy";\n    include "{included}";\n}}\n')
    result = nginx_test(config, runtime / "startup.log")
    assert result.returncode == 0, result.stderr
