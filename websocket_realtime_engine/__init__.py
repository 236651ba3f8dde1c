"""Shopologic Realtime: the WebSocket realtime engine plugin.

Layers (each depends only on those below): ``hooks`` → ``web`` → engine (``node``, ``hub``,
``connection``) → backends (``broker``, ``presence``, ``db``); ``protocol`` is sans-I/O and used by
the web layer and the engine. See docs/architecture.md.
"""

PLUGIN_NAME = "websocket-realtime-engine"
__version__ = "0.1.0"
