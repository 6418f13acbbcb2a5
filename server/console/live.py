"""Live updates for the web console: one change poller per server process, fanned out to every
WebSocket of that process.

Triggers (migration 0700_live) append ``(kind, ids)`` rows to the unlogged table
``live_changes`` when tickets, SLA clocks, assignments, crews or outages change — whichever
replica made the change. Every process reads new rows every ``live_poll_interval_s`` (0.2 s) on
its own connection, collects the ids, reads the rows itself (one query per kind and flush) and
sends each socket the rows its role may see. Tickets and other kinds go out at once; crews at most
once per ``live_position_interval_s``, so a crew reporting at 10 Hz costs the browser one update
a second.

Why not LISTEN/NOTIFY: a notifying transaction holds a database-wide lock through its commit, so
NOTIFY triggers on the write paths serialise every ticket insert and position report (see the
migration). Reading the change table exactly once needs care, because ids (a sequence) are not
handed out in commit order: each row carries its transaction id, and each poll reads the rows of
the transactions that were still running at the previous poll's snapshot or started after it
(:class:`ChangeFeed`). Nothing committed is missed, nothing is read twice.

Protocol (JSON text frames):
  client → ``{"type": "auth", "token": "<JWT>"}`` first, within 10 s; afterwards ``{"type":
  "ping"}`` is answered with ``pong``.
  server → ``ready`` {role, topics, position_interval_s}; ``tickets`` {items}; ``crews`` {items};
  ``changed`` {kind, ids} for kinds the hub does not render (outages, …: the page refetches);
  ``resync`` when the poller reconnected (changes may have been missed: reload the lists).
  Close codes: 4401 not authenticated / token expired, 4403 role not allowed, 4408 no auth message,
  1013 the socket fell too far behind (the page reconnects and reloads).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg
import structlog
from fastapi import WebSocket

from server.console import service
from server.models import Role

APPLICATION_NAME = "crewline-live"  # the poller's connection, as pg_stat_activity shows it

# The changes committed between the previous snapshot and this statement's: rows of transactions
# that were running then (its xip list) or started since (xid >= its xmax). Both conditions use
# the xid index, so a long-open transaction elsewhere does not make the reads grow. Rows of
# transactions still running now are invisible and come with a later poll.
_POLL = """
SELECT pg_current_snapshot()::text AS snapshot, c.id, c.kind, c.ids
FROM (SELECT CAST(%(prev)s AS pg_snapshot) AS prev) p
LEFT JOIN live_changes c
  ON c.xid >= pg_snapshot_xmax(p.prev)
  OR c.xid = ANY (ARRAY(SELECT pg_snapshot_xip(p.prev)))
ORDER BY c.id
"""
_START = "SELECT pg_current_snapshot()::text"
# Only rows every snapshot sees (no running transaction older than them) and older than the
# retention: a change committed late by a long transaction is never pruned before it is read.
_PRUNE = """
DELETE FROM live_changes
WHERE at < clock_timestamp() - make_interval(secs => %s)
  AND xid < pg_snapshot_xmin(pg_current_snapshot())
"""


class ChangeFeed:
    """Exactly-once reading of ``live_changes`` between consecutive snapshots.

    Every change visible in snapshot k but not in snapshot k-1 belongs to a transaction that was
    running at k-1 or started after it, which is what ``_POLL`` selects; every one visible at
    k-1 was read then. So each committed change is read once, whatever the commit order."""

    def __init__(self, snapshot: str) -> None:
        self.snapshot = snapshot

    @property
    def params(self) -> dict[str, str]:
        return {"prev": self.snapshot}

    def take(self, rows) -> list[tuple[str, list[int]]]:
        """The changes in ``rows`` (the result of ``_POLL``); remembers its snapshot."""
        if not rows:
            return []
        self.snapshot = rows[0][0]
        return [(kind, list(ids)) for _, row_id, kind, ids in rows if row_id is not None]
log = structlog.get_logger()

# what each role hears; technicians use the handset link, not the console
TOPICS: dict[Role, frozenset[str]] = {
    Role.admin: frozenset({"tickets", "crews", "changed"}),
    Role.manager: frozenset({"tickets", "crews", "changed"}),
    Role.dispatcher: frozenset({"tickets", "crews", "changed"}),
    Role.agent: frozenset({"tickets", "changed"}),
}
QUEUE_LIMIT = 256  # messages waiting for one socket before it is dropped as too slow


@dataclass(eq=False)
class Client:
    ws: WebSocket
    role: Role
    topics: frozenset[str]
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    overflowed: bool = False

    def offer(self, message: str) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True  # the sender closes the socket at its next message


class Hub:
    """The process's listener and its sockets (created lazily on the first socket)."""

    def __init__(self, app) -> None:
        self.app = app
        self.loop = asyncio.get_running_loop()
        self.clients: set[Client] = set()
        self.tickets: set[int] = set()
        self.crews: set[int] = set()
        self.other: dict[str, set[int]] = {}
        self.wake = asyncio.Event()
        self.connected = asyncio.Event()
        self.interval = app.state.settings.live_position_interval_s
        self.last_crews = 0.0
        self.reconnects = 0
        self._tasks = [asyncio.create_task(self._listen(), name="live-listen"),
                       asyncio.create_task(self._flush(), name="live-flush")]

    # -- the change poller ----------------------------------------------------------------------
    async def _listen(self) -> None:
        delay = 0.5
        settings = self.app.state.settings
        url = settings.libpq_url
        feed: ChangeFeed | None = None
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        url, autocommit=True, application_name=APPLICATION_NAME) as conn:
                    if feed is None:  # changes from before this process started are not news
                        feed = ChangeFeed((await (await conn.execute(_START)).fetchone())[0])
                    elif self.reconnects:
                        # the snapshot survives a reconnect: nothing is missed unless the
                        # records were pruned meanwhile; the pages reload to be sure
                        self._broadcast("tickets", service.dumps({"type": "resync"}))
                    self.reconnects += 1
                    self.connected.set()
                    delay = 0.5
                    pruned = time.monotonic()
                    while True:
                        rows = await (await conn.execute(_POLL, feed.params)).fetchall()
                        for kind, ids in feed.take(rows):
                            self.changed(kind, ids)
                        if time.monotonic() - pruned > 60:
                            await conn.execute(_PRUNE, (settings.live_keep_minutes * 60,))
                            pruned = time.monotonic()
                        await asyncio.sleep(settings.live_poll_interval_s)
            except (psycopg.Error, OSError) as exc:
                log.warning("live poller lost its connection", error=str(exc))
            self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def note(self, payload: str) -> None:
        """A change as text, ``kind:id,id,…`` (the form tests and tools use)."""
        kind, _, raw = payload.partition(":")
        try:
            ids = {int(v) for v in raw.split(",") if v}
        except ValueError:
            return
        self.changed(kind, ids)

    def changed(self, kind: str, ids) -> None:
        ids = set(ids)
        if kind == "crew":
            if not self.crews:
                self.wake.set()  # the first dirty crew: flush now if the interval has passed
            self.crews |= ids
        else:
            (self.tickets if kind == "ticket" else self.other.setdefault(kind, set())).update(ids)
            self.wake.set()

    # -- flushing -------------------------------------------------------------------------------
    async def _flush(self) -> None:
        while True:
            timeout = self.interval
            if self.crews:
                timeout = max(0.0, self.last_crews + self.interval - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)
            self.wake.clear()
            await asyncio.sleep(0.005)  # let a burst of changes arrive together
            try:
                await self._flush_once()
            except Exception as exc:  # a database hiccup must not end live updates
                log.warning("live flush failed", error=str(exc))
                await asyncio.sleep(1.0)

    async def _flush_once(self) -> None:
        if self.tickets:
            ids, self.tickets = sorted(self.tickets), set()
            rows = await asyncio.to_thread(self._read, service.tickets_by_id, ids)
            self._broadcast("tickets", service.dumps(
                {"type": "tickets", "items": rows, "sent_at": time.time()}))
        if self.other:
            other, self.other = self.other, {}
            for kind, ids in other.items():
                self._broadcast("changed", service.dumps(
                    {"type": "changed", "kind": kind, "ids": sorted(ids)}))
        if self.crews and time.monotonic() >= self.last_crews + self.interval:
            ids, self.crews = sorted(self.crews), set()
            self.last_crews = time.monotonic()
            fresh = self.app.state.clock.now() - self._stale_after()
            rows = await asyncio.to_thread(self._read, service.crews_json, ids, fresh)
            self._broadcast("crews", f'{{"type":"crews","items":{rows},"sent_at":{time.time()}}}')

    def _stale_after(self) -> timedelta:
        return timedelta(minutes=self.app.state.settings.dispatch_stale_after_minutes)

    def _read(self, fn, *args):
        with self.app.state.sessionmaker() as session:
            return fn(session, *args)

    def _broadcast(self, topic: str, message: str) -> None:
        for client in list(self.clients):
            if topic in client.topics:
                client.offer(message)

    # -- sockets --------------------------------------------------------------------------------
    def add(self, client: Client) -> None:
        self.clients.add(client)

    def remove(self, client: Client) -> None:
        self.clients.discard(client)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def hub_of(app) -> Hub:
    """The hub of this app in the running event loop (one per server process)."""
    hub: Hub | None = getattr(app.state, "live_hub", None)
    if hub is None or hub.loop is not asyncio.get_running_loop():
        hub = Hub(app)
        app.state.live_hub = hub
    return hub
