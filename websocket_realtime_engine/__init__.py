"""Shopologic Realtime: the WebSocket realtime engine, usable on its own.

It imports no pluggy and no host module: the plugin's hooks (the top-level ``hooks/`` folder) adapt
it to the Shopologic host. Layers (each depends only on those below): ``web`` → engine (``node``,
``hub``, ``connection``) → backends (``broker``, ``presence``, ``db``); ``protocol`` is sans-I/O and
used by the web layer and the engine. See docs/architecture.md.
"""

PLUGIN_NAME = "websocket-realtime-engine"
__version__ = "0.1.0"
