"""Pruning what the handset link stores: uplink messages, downlink messages and dead letters.

Run hourly by the worker (server/devices/tasks.py, ``CREWLINE_DEVICE_RETENTION_CRON``) or by hand
(``crewline devices retention``). Every table is walked in id order in chunks of
``CREWLINE_DEVICE_RETENTION_BATCH`` rows, each chunk in its own short transaction, so no run holds
locks for long or competes with the bridge for more than a chunk's rows. Running it twice, or on
two workers at once, is harmless: it only deletes rows the rules below allow.

The rules (docs/operations.md "Handset link: retention and dead letters"):

* **Uplink** (``device_messages``). The row is the exactly-once key: a redelivered msg_id finds it
  and is only acked again. A handset keeps an event in its outbox — and resends it on every
  (re)connection and every 30 s while connected — until the server's ack reaches it, however
  long that takes (a handset switched off for the holidays right after sending). So a row goes
  only when all of these hold:

  1. it is applied (``applied_at`` set: accepted or refused; positions still waiting for the
     applier are never touched);
  2. it was received more than N days ago (``CREWLINE_DEVICE_MESSAGE_RETENTION_DAYS``, 30);
  3. its device is revoked (anything it sends is dead-lettered, never applied), **or** the
     device has been heard from at least N days after the row: it then spent those days
     connected, resending anything unacked and getting the stored result back, so the event can
     no longer be in its outbox. A device that went quiet keeps all its rows until it is back
     and has talked for N more days.

  "Heard from" is ``device_uplink_seen``: the newest message per device, kept up to date by
  this task itself (it reads only the rows added since its last run), so the bridge pays
  nothing for it. The residual risk — a handset that never receives acks at all keeps
  resending old events for ever — shows as a growing outbox and a stream of duplicates, and is
  a broken link to repair, not something retention can make safe.

* **Downlink** (``device_downlink``). A resync (uplink ``ack`` with ``resync``) republishes every
  row after the seq the handset reports, and the handset must see seqs without holes. Its seq
  never goes below ``devices.acked_seq``, so rows with ``seq <= acked_seq`` (handled and
  acknowledged) and older than ``CREWLINE_DEVICE_DOWNLINK_RETENTION_DAYS`` (30) go, and every
  row of a revoked device older than that. A row superseded by a newer work order for the same
  ticket but not yet acknowledged stays: deleting it would leave a hole the handset would ask
  for again and again.

* **Dead letters** (``device_dead_letters``): older than
  ``CREWLINE_DEVICE_DEAD_LETTER_RETENTION_DAYS`` (90). Nothing depends on them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from server.settings import Settings

log = structlog.get_logger()

# how long a freshly stored message may still be inside an uncommitted bridge transaction with a
# lower id than committed ones; the "seen" scan stops before rows younger than this
SETTLE = timedelta(minutes=5)


@dataclass(frozen=True)
class RetentionConfig:
    message_days: int = 30
    downlink_days: int = 30
    dead_letter_days: int = 90
    batch: int = 5000

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionConfig:
        return cls(settings.device_message_retention_days,
                   settings.device_downlink_retention_days,
                   settings.device_dead_letter_retention_days, settings.device_retention_batch)


@dataclass
class RetentionStats:
    seen_scanned: int = 0  # uplink rows read to update device_uplink_seen
    uplink_deleted: int = 0
    downlink_deleted: int = 0
    dead_letters_deleted: int = 0
    complete: bool = True  # False: the time budget ran out, the next run continues

    def as_dict(self) -> dict[str, int | bool]:
        return asdict(self)


_SEEN = text("""
WITH c AS (
    SELECT id, device_id, received_at FROM device_messages
    WHERE id > (SELECT coalesce(max(last_message_id), 0) FROM device_uplink_seen)
    ORDER BY id LIMIT :n
), settled AS (
    SELECT * FROM c WHERE id < (SELECT coalesce(min(id), 9223372036854775807) FROM c
                                WHERE received_at >= :settled)
), up AS (
    INSERT INTO device_uplink_seen AS s (device_id, last_message_id, last_received_at)
    SELECT device_id, max(id), max(received_at) FROM settled GROUP BY device_id
    ON CONFLICT (device_id) DO UPDATE SET
        last_message_id = GREATEST(s.last_message_id, excluded.last_message_id),
        last_received_at = GREATEST(s.last_received_at, excluded.last_received_at)
)
SELECT (SELECT count(*) FROM settled) AS scanned, (SELECT count(*) FROM c) AS read
""")

_UPLINK = text("""
WITH c AS (
    SELECT id, device_id, received_at, applied_at FROM device_messages
    WHERE id > :after ORDER BY id LIMIT :n
), gone AS (
    DELETE FROM device_messages m
    USING c JOIN devices d ON d.id = c.device_id
            LEFT JOIN device_uplink_seen s ON s.device_id = c.device_id
    WHERE m.id = c.id AND c.applied_at IS NOT NULL AND c.received_at < :cutoff
      AND (d.revoked_at IS NOT NULL OR c.received_at < s.last_received_at - :keep)
    RETURNING m.id
)
SELECT (SELECT max(id) FROM c) AS last_id, (SELECT count(*) FROM gone) AS deleted,
       (SELECT coalesce(bool_or(received_at < :cutoff), false) FROM c) AS any_old
""")

_DOWNLINK = text("""
WITH c AS (
    SELECT id, device_id, seq, created_at FROM device_downlink
    WHERE id > :after ORDER BY id LIMIT :n
), gone AS (
    DELETE FROM device_downlink dl
    USING c JOIN devices d ON d.id = c.device_id
    WHERE dl.id = c.id AND c.created_at < :cutoff
      AND (d.revoked_at IS NOT NULL OR c.seq <= d.acked_seq)
    RETURNING dl.id
)
SELECT (SELECT max(id) FROM c) AS last_id, (SELECT count(*) FROM gone) AS deleted,
       (SELECT coalesce(bool_or(created_at < :cutoff), false) FROM c) AS any_old
""")

_DEAD_LETTERS = text("""
DELETE FROM device_dead_letters WHERE id IN (
    SELECT id FROM device_dead_letters WHERE received_at < :cutoff
    ORDER BY received_at, id LIMIT :n)
""")


class _OutOfTime(Exception):
    pass


def run(make_session: sessionmaker, now: datetime, cfg: RetentionConfig, *,
        max_seconds: float = 600.0,
        monotonic: Callable[[], float] = time.monotonic) -> RetentionStats:
    """One retention pass; returns what it did. Stops between chunks once ``max_seconds`` are
    used up (``complete`` False); the next run carries on where the rules still apply."""
    stats = RetentionStats()
    deadline = monotonic() + max_seconds

    def check_time() -> None:
        if monotonic() > deadline:
            raise _OutOfTime

    try:
        _track_seen(make_session, now, cfg, stats, check_time)
        _dead_letters(make_session, now, cfg, stats, check_time)
        _walk(make_session, _DOWNLINK, {"cutoff": now - timedelta(days=cfg.downlink_days)},
              cfg, check_time, lambda n: _add(stats, "downlink_deleted", n))
        _walk(make_session, _UPLINK, {"cutoff": now - timedelta(days=cfg.message_days),
                                      "keep": timedelta(days=cfg.message_days)},
              cfg, check_time, lambda n: _add(stats, "uplink_deleted", n))
    except _OutOfTime:
        stats.complete = False
    log.info("device retention", **stats.as_dict())
    return stats


def _add(stats: RetentionStats, name: str, n: int) -> None:
    setattr(stats, name, getattr(stats, name) + n)


def _track_seen(make_session: sessionmaker, now: datetime, cfg: RetentionConfig,
                stats: RetentionStats, check_time: Callable[[], None]) -> None:
    while True:
        check_time()
        with make_session() as session:
            scanned, _ = session.execute(_SEEN, {"n": cfg.batch,
                                                    "settled": now - SETTLE}).one()
            session.commit()
        stats.seen_scanned += scanned
        if scanned < cfg.batch:  # caught up (or reached rows too fresh to trust yet)
            return


def _dead_letters(make_session: sessionmaker, now: datetime, cfg: RetentionConfig,
                  stats: RetentionStats, check_time: Callable[[], None]) -> None:
    cutoff = now - timedelta(days=cfg.dead_letter_days)
    while True:
        check_time()
        with make_session() as session:
            n = session.execute(_DEAD_LETTERS, {"cutoff": cutoff, "n": cfg.batch}).rowcount
            session.commit()
        stats.dead_letters_deleted += n
        if n < cfg.batch:
            return


def _walk(make_session: sessionmaker, statement, params: dict, cfg: RetentionConfig,
          check_time: Callable[[], None], count: Callable[[int], None]) -> None:
    """Chunks of ``cfg.batch`` rows in id order, each deleting what the rules allow, until a
    chunk holds no row older than the cutoff (ids grow with time: the rest is newer)."""
    after = 0
    while True:
        check_time()
        with make_session() as session:
            last_id, deleted, any_old = session.execute(
                statement, {**params, "after": after, "n": cfg.batch}).one()
            session.commit()
        count(deleted)
        if last_id is None or not any_old:
            return
        after = last_id

