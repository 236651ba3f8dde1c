"""Node registry: which nodes are alive, with their load; and the cluster state: every node's connections
and subscriptions (``memory`` for one node, ``redis`` for a cluster)."""
