"""The realtime engine plugin's hooks: thin implementations, its own hookspecs, its CLI commands.

The host loads these files by the paths ``plugin.json`` names, as modules of its own namespace
(``shopologic_plugins.websocket_realtime_engine.hooks.<file>``), so they import each other
relatively. Each implementation translates one host call into one engine call; the engine
(:mod:`websocket_realtime_engine`) knows nothing of pluggy or the host.
"""
