"""``docs/plugins.md``'s walkthrough, run as a reader runs it: its files written, its commands run.

The page's fenced code blocks are read by their info string (the page's last section says the same):

- ```` ```python title="shop-orders/orders.py" ````: a file, written as it is to that path under a
  temporary plugins folder that ``SHOPOLOGIC_PLUGIN_PATH`` names; the text before the block must
  name the path as well, for readers of a renderer that hides titles;
- ```` ```console title="run" ````: commands, run in order from the project folder with the
  platform's environment: each ``$ python bootstrap_plugins.py …`` line runs (``python`` is this
  interpreter), and the lines under it must each be a line of its output (stdout and stderr); a
  command that shows an ``error:`` line must fail, the others succeed;
- any other block is an illustration, not run.

Then the tests check what the page says happens: the order's row and its ``order.created`` outbox row
are in the platform database after the commit, and neither exists after the rollback (on SQLite and
on PostgreSQL); ``identify_user`` and ``authorize_channel`` of the second plugin decide
``POST /api/v1/authenticate`` on a node ``serve`` runs. The page must also name every hookspec.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_URL, ROOT, Client, free_port
from tests.host.test_cli import ServerProcess, assert_one_line_error

DOC = ROOT / "docs" / "plugins.md"
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,})(?P<info>[^`]*)$")
TITLE = re.compile(r'\btitle="(?P<title>[^"]+)"')
HOOKSPEC_FILES = (ROOT / "shopologic" / "hookspecs.py", ROOT / "hooks" / "hookspecs.py")
SUPPORT_TOKEN = "support-token-of-the-tests-7d1f"
STAFF_TOKENS = {SUPPORT_TOKEN: {"id": "s-1", "role": "support", "info": {"name": "Sam"}}}


@dataclass(frozen=True)
class Block:
    """A fenced code block of the page: its info string, its text and the text before it."""

    info: str
    text: str
    preceding: str

    @property
    def title(self) -> str | None:
        found = TITLE.search(self.info)
        return found["title"] if found else None


def blocks(markdown: str) -> list[Block]:
    """Every fenced block, indented ones (in list items) included, dedented."""
    found: list[Block] = []
    prose: list[str] = []
    opened: tuple[str, str, str] | None = None  # (indent, fence, info)
    body: list[str] = []
    for line in markdown.splitlines():
        if opened is None:
            match = FENCE.match(line)
            if match:
                opened, body = (match["indent"], match["fence"], match["info"].strip()), []
            else:
                prose.append(line)
        elif line.strip() == opened[1]:
            indent = opened[0]
            text = "".join(f"{part.removeprefix(indent)}\n" for part in body)
            found.append(Block(opened[2], text, "\n".join(prose)))
            opened, prose = None, []
        else:
            body.append(line)
    assert opened is None, f"a code block of {DOC} is not closed"
    return found


def doc_blocks() -> list[Block]:
    return blocks(DOC.read_text(encoding="utf-8"))


def commands(block: Block) -> list[tuple[str, list[str]]]:
    """A ``run`` block's ``$ `` commands, each with the output lines shown under it."""
    runs: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            runs.append((line[2:], []))
        elif line.strip():
            assert runs, f"output before any command in a run block: {line!r}"
            runs[-1][1].append(line)
    return runs


def run_command(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    program, script, *args = shlex.split(command)
    assert (program, script) == ("python", "bootstrap_plugins.py"), f"a run block may only run the CLI: {command}"
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def write_files(folder: Path) -> list[Path]:
    """Write the page's file blocks under ``folder``; the paths written."""
    written = []
    for block in doc_blocks():
        if block.title is None or block.title == "run":
            continue
        assert f"`{block.title}`" in block.preceding, f"the text before the block of {block.title} does not name it"
        path = folder / block.title
        assert path.resolve().is_relative_to(folder.resolve()), block.title
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.text, encoding="utf-8")
        written.append(path)
    return written


def run_walkthrough(env: dict[str, str]) -> None:
    """Run every ``run`` block's commands, in order, checking each one's output and exit status."""
    ran = 0
    for block in doc_blocks():
        if block.title != "run":
            continue
        for command, shown in commands(block):
            result = run_command(command, env)
            output = (result.stdout + result.stderr).splitlines()
            context = f"$ {command}\nexit {result.returncode}\n{result.stdout}{result.stderr}"
            assert "Traceback" not in result.stderr, context
            for line in shown:
                assert line in output, f"{line!r} is not printed by:\n{context}"
            expect_failure = any(line.startswith("error:") for line in shown)
            assert (result.returncode != 0) is expect_failure, context
            ran += 1
    assert ran >= 5, "the walkthrough's run blocks are missing"


@dataclass(frozen=True)
class Walkthrough:
    """A platform the walkthrough was run on: its environment and database."""

    env: dict[str, str]
    database_url: str


def platform_environment(folder: Path, database_url: str) -> dict[str, str]:
    """conftest's ``platform_env`` for ``folder``, with the page's plugins folder and ``database_url``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("REALTIME_", "SHOPOLOGIC_"))}
    env.update(
        {
            "SHOPOLOGIC_VAR_DIR": str(folder / "var"),
            "SHOPOLOGIC_DATABASE_URL": database_url,
            "SHOPOLOGIC_PLUGIN_PATH": str(folder / "shop-plugins"),
            "REALTIME_CONFIG_FILE": str(folder / "var" / "realtime.toml"),
            "REALTIME_LOG_LEVEL": "warning",
            "REALTIME_ALLOW_SHORT_SECRETS": "true",
        }
    )
    return env


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database on the PostgreSQL server of POSTGRES_URL, dropped afterwards."""
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} does not answer ({exc}): start it (make services)", pytrace=False)
    name = f"shopologic_plugins_doc_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def walkthrough(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walkthrough]:
    """The page's plugins written to a folder of their own and its commands run, once per database
    (the tests that follow only read, or serve)."""
    folder = tmp_path_factory.mktemp(f"walkthrough-{request.param}")
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            database_url = f"sqlite:///{folder / 'var' / 'platform.db'}"
        else:
            database_url = stack.enter_context(postgres_database())
        env = platform_environment(folder, database_url)
        written = write_files(Path(env["SHOPOLOGIC_PLUGIN_PATH"]))
        assert {path.relative_to(env["SHOPOLOGIC_PLUGIN_PATH"]).parts[0] for path in written} == {
            "shop-orders",
            "staff-access",
        }
        run_walkthrough(env)
        yield Walkthrough(env, database_url)


def query(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of the platform database, read through its synchronous driver."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql))]
    finally:
        engine.dispose()


def test_part_1_an_order_and_its_event_commit_together_or_not_at_all(walkthrough: Walkthrough) -> None:
    env, database_url = walkthrough.env, walkthrough.database_url
    orders = query(database_url, "SELECT id, status, total, currency, customer_id FROM shop_orders")
    assert orders == [("1001", "paid", "59.90", "EUR", "7")]
    outbox = query(database_url, "SELECT id, kind, body, customer_id, created_at FROM realtime_outbox")
    assert len(outbox) == 1, outbox
    row_id, kind, body, customer_id, created_at = outbox[0]
    assert (row_id, kind, customer_id) == (1, "broadcasts", "7") and created_at is not None
    broadcasts = json.loads(body)
    assert [(channels, event) for channels, event, _ in broadcasts] == [
        (["orders"], "order.created"),
        (["private-admin.orders"], "order.created"),
        (["private-customer.7"], "order.created"),
    ]
    assert all(data["order"]["id"] == "1001" for _, _, data in broadcasts)
    assert "customer_id" not in broadcasts[0][2]["order"]  # the public summary names nobody
    assert "1002" not in body

    # what the page says of a total the currency cannot hold: refused inside the block, nothing written
    refused = run_command("python bootstrap_plugins.py shop place-order 1003 59.905 --customer 7", env)
    assert_one_line_error(refused, "59.905 has more decimals than EUR allows")
    assert [row[0] for row in query(database_url, "SELECT id FROM shop_orders")] == ["1001"]
    assert [row[0] for row in query(database_url, "SELECT id FROM realtime_outbox")] == [1]


@pytest.mark.parametrize("walkthrough", ["sqlite"], indirect=True)
async def test_part_2_identify_user_and_authorize_channel_decide_authenticate(
    walkthrough: Walkthrough, tmp_path: Path
) -> None:
    env = walkthrough.env
    port = free_port()
    server_env = {**env, "STAFF_ACCESS_TOKENS": json.dumps(STAFF_TOKENS)}
    server = ServerProcess(["serve", "--port", str(port)], server_env, port, tmp_path)
    try:
        await asyncio.to_thread(server.wait_until_accepting)
        async with aiohttp.ClientSession() as session:
            client = Client(await session.ws_connect(server.url("/socket")))
            client.connection_id = (await client.expect("connected"))["data"]["connection_id"]

            async def authenticate(channel: str, token: str | None) -> tuple[int, Any]:
                headers = {"Authorization": f"Staff {token}"} if token else {}
                body = {"connection_id": client.connection_id, "channel": channel}
                async with session.post(server.url("/api/v1/authenticate"), json=body, headers=headers) as response:
                    return response.status, await response.json()

            status, answer = await authenticate("private-admin.orders", SUPPORT_TOKEN)
            assert status == 200 and set(answer) == {"auth"}, answer
            subscribed = await client.subscribe("private-admin.orders", auth=answer["auth"])
            assert subscribed["event"] == "subscribed", subscribed

            status, answer = await authenticate("private-customer.7", SUPPORT_TOKEN)
            assert (status, answer["error"]["code"]) == (403, "forbidden")
            for token in ("not-a-token-of-anyone", None):
                status, answer = await authenticate("private-admin.orders", token)
                assert (status, answer["error"]["code"]) == (401, "unauthorized")
            await client.ws.close()
    finally:
        await asyncio.to_thread(server.stop)
    assert "Traceback" not in server.stderr

    malformed = {**env, "STAFF_ACCESS_TOKENS": '["not", "an", "object"]'}
    line = assert_one_line_error(
        await asyncio.to_thread(run_command, "python bootstrap_plugins.py plugin list", malformed)
    )
    assert line == 'error: staff-access: STAFF_ACCESS_TOKENS must be a JSON object of token → {"id", "role", "info"}'
    assert line in DOC.read_text(encoding="utf-8")


def hookspec_names(path: Path) -> list[str]:
    """The functions of a hookspec module that are decorated as specs."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and any("hookspec" in ast.unparse(d) for d in node.decorator_list)
    ]


def test_the_page_names_every_hookspec() -> None:
    page = DOC.read_text(encoding="utf-8")
    names = [name for path in HOOKSPEC_FILES for name in hookspec_names(path)]
    assert len(names) > 20
    assert [name for name in names if f"`{name}(" not in page] == []


def test_the_block_reader_follows_the_convention() -> None:
    markdown = (
        "Intro, then `a/b.py`:\n\n"
        '```python title="a/b.py"\nx = 1\n```\n\n'
        "- a list item:\n\n"
        "  ```python\n  indented = True\n  ```\n\n"
        '```console title="run"\n'
        "$ python bootstrap_plugins.py plugin list\nline one\n$ python bootstrap_plugins.py\n```\n"
    )
    found = blocks(markdown)
    assert [(block.title, block.text) for block in found] == [
        ("a/b.py", "x = 1\n"),
        (None, "indented = True\n"),
        (
            "run",
            "$ python bootstrap_plugins.py plugin list\nline one\n$ python bootstrap_plugins.py\n",
        ),
    ]
    assert "`a/b.py`" in found[0].preceding
    assert commands(found[2]) == [
        ("python bootstrap_plugins.py plugin list", ["line one"]),
        ("python bootstrap_plugins.py", []),
    ]
