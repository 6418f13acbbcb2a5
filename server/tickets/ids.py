"""Ticket ids, taken from the tickets' sequence in blocks per process.

The intake writes a ticket, its events, clocks, "received" SMS and outage link in one statement
(server.tickets.service.create_plan). The SMS text holds the ticket's number, so the number must
be known before that statement: each process takes ``block`` ids from the sequence in one round
trip when it has none left, and hands them out one by one. Consequences (docs/architecture.md, Data):
numbers are unique, but not in creation order across worker processes (each works through its
own block), and the ids a process held but did not use when it stopped are never used (gaps).
``block=1`` caches nothing: one ``nextval`` per ticket, in order.
"""

from __future__ import annotations

import threading
from collections import deque

from sqlalchemy import text

from server.core.sqlplan import Plan, Step

# nextval is not undone by a rollback: a read as far as a plan in autocommit is concerned
_BLOCK = text("""
SELECT array_agg(id ORDER BY id) AS ids
FROM (SELECT nextval('tickets_id_seq') AS id FROM generate_series(1, CAST(:n AS int))) s
""")


class TicketIds:
    """Free ticket ids of this process (the HTTP intake's, one per app). Safe for coroutines
    (nothing is held across a step) and for threads: two takers that find it empty both fetch a
    block, and the ids of both are used. Other writers (``tickets.service.create``) take
    ``TicketIds(1)``: one ``nextval`` per ticket."""

    def __init__(self, block: int = 32) -> None:
        if block < 1:
            raise ValueError("a ticket id block holds at least 1 id")
        self.block = block
        self._free: deque[int] = deque()
        self._lock = threading.Lock()

    def take(self) -> Plan[int]:
        """A sub-plan (``ticket_id = yield from ids.take()``): a free id, with a step only when
        the block is used up."""
        with self._lock:
            if self._free:
                return self._free.popleft()
        row = yield Step(_BLOCK, {"n": self.block}, writes=False)
        ids = list(row.ids)
        with self._lock:
            self._free.extend(ids[1:])
        return ids[0]
