"""Channel history: a bounded stream per channel, for recovery (``memory`` for one node, ``redis`` for a cluster)."""
