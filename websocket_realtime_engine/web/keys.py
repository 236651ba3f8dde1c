"""The engine's typed application keys, in a module of their own so every web module can import
them without importing each other."""

from __future__ import annotations

from aiohttp import web

from websocket_realtime_engine.node import Node

NODE_KEY = web.AppKey("realtime.node", Node)
