"""Broadcasts' idempotency keys: a retry within the TTL is not published twice (``memory``: per node, ``redis``)."""
