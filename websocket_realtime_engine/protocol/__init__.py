"""Sans-I/O protocol: text in, requests out; replies and publications to bytes.

Imports neither asyncio nor aiohttp, and its tests need no server.
"""
