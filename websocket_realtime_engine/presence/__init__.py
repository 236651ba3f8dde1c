"""Presence stores: who is on each presence channel (``memory`` for one node, ``redis`` for a cluster)."""
