"""Brokers carry publications between nodes: ``memory`` (one process) and ``redis`` (a cluster)."""
