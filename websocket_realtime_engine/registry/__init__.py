"""Node registry: which nodes are alive, with their load (``memory`` for one node, ``redis`` for a cluster)."""
