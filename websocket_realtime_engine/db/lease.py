"""Leases: a job that one node of a cluster does at a time (draining the outbox, pruning old rows).

A lease is one ``realtime_leases`` row: its holder and when it expires. Taking or renewing it is one
conditional ``UPDATE`` (the row is free, expired, or already this holder's), or the ``INSERT`` of a
missing row, so of two nodes asking at once exactly one gets it; a holder that stops renewing (killed,
its event loop stuck) loses it ``ttl`` seconds after its last renewal and another node takes over.

Times are the nodes' own clocks (seconds since the epoch): the nodes of a cluster must agree on the
time to well within ``ttl`` (NTP does, by orders of magnitude).
"""

from __future__ import annotations

import time

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from websocket_realtime_engine.db.models import Lease


class DatabaseLease:
    """One named lease in the platform database, asked for by one holder (a node's run).

    :param engine: the platform database.
    :param name: the job (``outbox``, ``retention``).
    :param holder: who asks: unique per node run, so a restarted node does not inherit its old lease.
    :param ttl: seconds the lease lasts after each :meth:`acquire`.
    """

    def __init__(self, engine: AsyncEngine, name: str, holder: str, ttl: float) -> None:
        self.engine = engine
        self.name = name
        self.holder = holder
        self.ttl = ttl
        self.held_until = 0.0

    @property
    def held(self) -> bool:
        """Whether this holder's lease has not expired yet (by its own last renewal)."""
        return time.time() < self.held_until

    async def acquire(self) -> bool:
        """Take the lease, or renew it when this holder has it; ``True`` when this holder has it now."""
        now = time.time()
        until = now + self.ttl
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(Lease)
                .where(Lease.name == self.name, or_(Lease.holder == self.holder, Lease.expires_at < now))
                .values(holder=self.holder, expires_at=until)
            )
            taken = result.rowcount == 1
            missing = not taken and await conn.scalar(select(Lease.name).where(Lease.name == self.name)) is None
        if missing:  # the first time ever: the row is made by whoever inserts it first
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(insert(Lease).values(name=self.name, holder=self.holder, expires_at=until))
                taken = True
            except IntegrityError:
                taken = False
        self.held_until = until if taken else 0.0
        return taken

    async def release(self) -> None:
        """Give the lease up (a node stopping), so another node takes over at once."""
        self.held_until = 0.0
        async with self.engine.begin() as conn:
            await conn.execute(delete(Lease).where(Lease.name == self.name, Lease.holder == self.holder))
