"""The Shopologic host platform: plugin manifests, hookspecs, activation state, CLI.

The host knows pluggy and its manifest schema; it knows nothing of any plugin's internals.
"""

__version__ = "0.1.0"
