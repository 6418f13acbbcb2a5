"""The handset's own durable state (SQLite, beside the link's outbox): pairing, preferences, the
jobs the server sent, what the technician did, scans and checklists.

The link's outbox (mobile_app/link/client.py) is the truth about what still has to be sent; this
store is the truth about what the screens show, so the app opens offline exactly as it was left.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# the technician's part of the ticket lifecycle, in order
FLOW = ("assigned", "accepted", "en_route", "on_site", "resolved")
ENDED = ("resolved", "cancelled", "closed")  # cancel reasons that are the ticket's own end

_SCHEMA = """
CREATE TABLE IF NOT EXISTS prefs (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    ticket_id INTEGER PRIMARY KEY,
    revision INTEGER NOT NULL,
    body TEXT NOT NULL,               -- the work order as received (JSON)
    local_status TEXT,                -- what the technician did last, maybe not acknowledged yet
    local_revision INTEGER,           -- the job revision the local status was set against
    cancelled_reason TEXT,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS actions (
    msg_id TEXT PRIMARY KEY,
    ticket_id INTEGER,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,             -- JSON: status, resolution code, uid…
    created_at TEXT NOT NULL,
    result TEXT,                      -- NULL (sent or queued) | rejected
    error TEXT
);
CREATE TABLE IF NOT EXISTS scans (
    msg_id TEXT PRIMARY KEY,
    ticket_id INTEGER,
    uid TEXT NOT NULL,
    sun_url TEXT,
    local_verdict TEXT NOT NULL,
    server_verdict TEXT,
    scanned_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checklists (
    ticket_id INTEGER PRIMARY KEY,
    template TEXT NOT NULL,
    answers TEXT NOT NULL,
    saved_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rounds (id TEXT PRIMARY KEY, body TEXT NOT NULL, received_at TEXT NOT NULL);
-- rounds the server withdrew (round_cancel): kept apart from rounds, so that a handset upgraded
-- with an older database needs no ALTER, and a round sent again later stays withdrawn
CREATE TABLE IF NOT EXISTS round_cancels (
    id TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    cancelled_at TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Pairing:
    server_url: str
    device_id: str
    password: str
    broker_host: str
    broker_port: int
    broker_tls: bool
    user_id: int
    username: str
    full_name: str = ""


@dataclass
class Job:
    ticket_id: int
    revision: int
    body: dict[str, Any]
    local_status: str | None = None
    local_revision: int | None = None
    cancelled_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """What the screens show: the further along of the server's status and the technician's
        own last step (which may still wait in the outbox, or be on its way while the server
        reports the step before it)."""
        if self.cancelled_reason is not None:  # the server's cancel: the ticket ended or left us
            return self.cancelled_reason if self.cancelled_reason in ENDED else "withdrawn"
        server = self.body.get("status") or "assigned"
        if self.local_status in FLOW and server in FLOW:
            return max(server, self.local_status, key=FLOW.index)
        return server

    def get(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default)


class HandsetStore:
    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _q(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return list(self._db.execute(sql, args))

    # -- prefs and pairing ---------------------------------------------------------------------
    def get_pref(self, key: str, default: str | None = None) -> str | None:
        rows = self._q("SELECT value FROM prefs WHERE key = ?", (key,))
        return rows[0][0] if rows else default

    def set_pref(self, key: str, value: str) -> None:
        self._q("INSERT INTO prefs (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                "value = excluded.value", (key, value))

    def pairing(self) -> Pairing | None:
        raw = self.get_pref("pairing")
        return Pairing(**json.loads(raw)) if raw else None

    def set_pairing(self, pairing: Pairing | None) -> None:
        if pairing is None:
            self._q("DELETE FROM prefs WHERE key = 'pairing'")
        else:
            self.set_pref("pairing", json.dumps(pairing.__dict__))

    def clear_work(self) -> None:
        """Forget jobs, actions, scans, checklists and rounds (a different technician paired)."""
        for table in ("jobs", "actions", "scans", "checklists", "rounds", "round_cancels"):
            self._q(f"DELETE FROM {table}")

    # -- jobs ----------------------------------------------------------------------------------
    def upsert_job(self, body: dict[str, Any], now: datetime) -> bool:
        """Store a work order unless an equal or newer revision is already here."""
        clean = {k: v for k, v in body.items() if k not in ("v", "seq")}
        with self._lock:
            row = self._db.execute("SELECT revision FROM jobs WHERE ticket_id = ?",
                                   (body["ticket_id"],)).fetchone()
            if row is not None and row[0] >= body["revision"]:
                return False
            self._db.execute(
                "INSERT INTO jobs (ticket_id, revision, body, received_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (ticket_id) DO UPDATE SET revision = excluded.revision, "
                "body = excluded.body, received_at = excluded.received_at, cancelled_reason = NULL, "
                # a job that comes back after a withdrawal starts over
                "local_status = CASE WHEN jobs.cancelled_reason IS NULL THEN jobs.local_status END",
                (body["ticket_id"], body["revision"], json.dumps(clean), now.isoformat()))
        return True

    def cancel_job(self, ticket_id: int, reason: str) -> None:
        self._q("UPDATE jobs SET cancelled_reason = ? WHERE ticket_id = ?", (reason, ticket_id))

    def set_local_status(self, ticket_id: int, status: str | None) -> None:
        self._q("UPDATE jobs SET local_status = ?, local_revision = revision WHERE ticket_id = ?",
                (status, ticket_id))

    def jobs(self) -> list[Job]:
        return [Job(t, r, json.loads(b), ls, lr, cr) for t, r, b, ls, lr, cr in self._q(
            "SELECT ticket_id, revision, body, local_status, local_revision, cancelled_reason "
            "FROM jobs ORDER BY ticket_id")]

    def job(self, ticket_id: int) -> Job | None:
        rows = self._q("SELECT ticket_id, revision, body, local_status, local_revision, "
                       "cancelled_reason FROM jobs WHERE ticket_id = ?", (ticket_id,))
        if not rows:
            return None
        t, r, b, ls, lr, cr = rows[0]
        return Job(t, r, json.loads(b), ls, lr, cr)

    # -- actions, scans, checklists ------------------------------------------------------------
    def add_action(self, msg_id: str, ticket_id: int | None, kind: str, detail: dict[str, Any],
                   now: datetime) -> None:
        self._q("INSERT INTO actions (msg_id, ticket_id, kind, detail, created_at) "
                "VALUES (?, ?, ?, ?, ?)", (msg_id, ticket_id, kind, json.dumps(detail),
                                           now.isoformat()))

    def reject_action(self, msg_id: str, error: dict[str, Any]) -> tuple[int | None, str] | None:
        rows = self._q("SELECT ticket_id, kind FROM actions WHERE msg_id = ?", (msg_id,))
        self._q("UPDATE actions SET result = 'rejected', error = ? WHERE msg_id = ?",
                (json.dumps(error), msg_id))
        return rows[0] if rows else None

    def actions(self, ticket_id: int | None = None) -> list[dict[str, Any]]:
        q = "SELECT msg_id, ticket_id, kind, detail, created_at, result, error FROM actions"
        args: tuple = ()
        if ticket_id is not None:
            q, args = q + " WHERE ticket_id = ?", (ticket_id,)
        return [{"msg_id": m, "ticket_id": t, "kind": k, "detail": json.loads(d), "created_at": c,
                 "result": r, "error": json.loads(e) if e else None}
                for m, t, k, d, c, r, e in self._q(q + " ORDER BY rowid", args)]

    def prune(self, before: datetime) -> int:
        """Forget actions and scans older than ``before`` (the outbox keeps anything unsent)."""
        n = 0
        for table, column in (("actions", "created_at"), ("scans", "scanned_at")):
            with self._lock:
                n += self._db.execute(f"DELETE FROM {table} WHERE {column} < ?",
                                      (before.isoformat(),)).rowcount
        return n

    def add_scan(self, msg_id: str, ticket_id: int | None, uid: str, sun_url: str | None,
                 local_verdict: str, now: datetime) -> None:
        self._q("INSERT INTO scans (msg_id, ticket_id, uid, sun_url, local_verdict, scanned_at) "
                "VALUES (?, ?, ?, ?, ?, ?)", (msg_id, ticket_id, uid, sun_url, local_verdict,
                                              now.isoformat()))

    def seen_sun_url(self, sun_url: str) -> bool:
        return bool(self._q("SELECT 1 FROM scans WHERE sun_url = ?", (sun_url,)))

    def set_server_verdict(self, msg_id: str, verdict: str) -> None:
        self._q("UPDATE scans SET server_verdict = ? WHERE msg_id = ?", (verdict, msg_id))

    def scans(self, ticket_id: int | None = None) -> list[dict[str, Any]]:
        q = "SELECT msg_id, ticket_id, uid, sun_url, local_verdict, server_verdict, scanned_at FROM scans"
        args: tuple = ()
        if ticket_id is not None:
            q, args = q + " WHERE ticket_id = ?", (ticket_id,)
        keys = ("msg_id", "ticket_id", "uid", "sun_url", "local_verdict", "server_verdict",
                "scanned_at")
        return [dict(zip(keys, row, strict=True)) for row in self._q(q + " ORDER BY rowid", args)]

    def save_checklist(self, ticket_id: int, template: str, answers: dict[str, Any],
                       now: datetime) -> None:
        self._q("INSERT INTO checklists (ticket_id, template, answers, saved_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (ticket_id) DO UPDATE SET template = excluded.template, "
                "answers = excluded.answers, saved_at = excluded.saved_at",
                (ticket_id, template, json.dumps(answers, ensure_ascii=False), now.isoformat()))

    def checklist(self, ticket_id: int) -> tuple[str, dict[str, Any]] | None:
        rows = self._q("SELECT template, answers FROM checklists WHERE ticket_id = ?", (ticket_id,))
        return (rows[0][0], json.loads(rows[0][1])) if rows else None

    # -- rounds --------------------------------------------------------------------------------
    def upsert_round(self, round_id: str, body: dict[str, Any], now: datetime) -> None:
        self._q("INSERT INTO rounds (id, body, received_at) VALUES (?, ?, ?) ON CONFLICT (id) DO "
                "UPDATE SET body = excluded.body, received_at = excluded.received_at",
                (round_id, json.dumps(body, ensure_ascii=False), now.isoformat()))

    def rounds(self) -> list[dict[str, Any]]:
        """The rounds on the handset, withdrawn ones left out."""
        return [json.loads(b) for (b,) in self._q(
            "SELECT body FROM rounds WHERE id NOT IN (SELECT id FROM round_cancels) "
            "ORDER BY received_at")]

    def round(self, round_id: str) -> dict[str, Any] | None:
        """One stored round, withdrawn or not."""
        rows = self._q("SELECT body FROM rounds WHERE id = ?", (round_id,))
        return json.loads(rows[0][0]) if rows else None

    def cancel_round(self, round_id: str, reason: str, now: datetime) -> bool:
        """Mark a round withdrawn (also one not received, should its round message come later);
        False when it already was."""
        with self._lock:
            return self._db.execute(
                "INSERT INTO round_cancels (id, reason, cancelled_at) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO NOTHING", (round_id, reason, now.isoformat())).rowcount == 1

    def withdrawn_rounds(self) -> dict[str, str]:
        """round id → reason of every withdrawn round."""
        return dict(self._q("SELECT id, reason FROM round_cancels"))
