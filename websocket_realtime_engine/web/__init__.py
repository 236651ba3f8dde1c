"""The aiohttp side: the WebSocket endpoint, the REST API and the engine's lifecycle in the app."""
