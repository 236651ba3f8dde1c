"""What the test plugin has been told, for the tests to read (its hook modules share it)."""

from __future__ import annotations

import threading
from typing import Any

received: list[tuple[str, dict[str, Any]]] = []
lock = threading.Lock()


def record(name: str, **payload: Any) -> None:
    """Keep one call: the hook's short name and its arguments."""
    with lock:
        received.append((name, payload))
