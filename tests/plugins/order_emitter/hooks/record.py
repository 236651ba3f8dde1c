"""What the test plugin has been told, for the tests to read (its hook modules share it).

In a node started as its own process, a test reads it from the file named by
``ORDER_EMITTER_EVENTS_FILE`` (one JSON line per call, appended; several nodes may share it).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

EVENTS_FILE = "ORDER_EMITTER_EVENTS_FILE"

received: list[tuple[str, dict[str, Any]]] = []
lock = threading.Lock()


def record(name: str, **payload: Any) -> None:
    """Keep one call: the hook's short name and its arguments."""
    with lock:
        received.append((name, payload))
        path = os.environ.get(EVENTS_FILE)
        if path:
            with open(path, "a", encoding="utf-8") as events:
                events.write(json.dumps([name, payload]) + "\n")
