"""The handset side of the link: durable outbox, acks, reconnects, downlink sequence checks.

No Kivy and no server imports: the Kivy app and a simulator can both use :class:`HandsetLink`.

* Every uplink event is first written to a SQLite outbox (one row per msg_id), then published with
  QoS 1. A row is deleted only when the server's application ack for its msg_id arrives on
  ``down/ack`` — whether the server accepted or rejected it (a rejection is final and is handed to
  ``on_rejected``). Unacked rows are published again on every (re)connect and, while connected,
  every ``resend_after`` seconds; the server's (device_id, msg_id) key makes that harmless.
* The MQTT session is persistent (fixed client id = device id, clean start off, a session expiry),
  so QoS 1 downlink published while the handset was away is delivered when it returns.
* Downlink ``work_order``/``cancel`` carry a per-device sequence number. The last one handled is
  stored in SQLite; a repeat (seq <= last) is dropped; the next one (last + 1) is handed to
  ``on_downlink`` and acknowledged to the server with an uplink ``ack`` (coalesced: one ack per
  ``ack_delay`` seconds carrying the highest seq); a jump (seq > last + 1) is reported through
  ``on_gap(expected, got)``, NOT delivered, and answered with a resync request (``ack`` with
  ``resync: true`` and the last seq handled), upon which the server publishes everything after it
  again, in order. A resync is also requested on every connection where the broker did not keep
  the session (first connection, expired or lost session): what was queued there is gone. The
  same request is not repeated within ``resync_after`` seconds.
* Clock skew: every application ack carries the server's clock (``server_time``); the link keeps
  the median offset (server − handset) of the last acks, stored in SQLite so it survives a
  restart offline, and :meth:`server_now` is the handset clock corrected by it. ``sent_at`` is
  stamped with it; an app stamps fixes and status times with ``link.server_now()`` so that a
  handset whose clock is minutes off does not report fixes "from the future" (refused by the
  position service beyond 2 minutes).
* Presence: a retained ``online`` on connect, the retained ``offline`` last will, and an explicit
  retained ``offline`` on a clean :meth:`stop` (a clean disconnect suppresses the will).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mobile_app.link import protocol

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    msg_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL,
    last_sent_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS link_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Outbox:
    """A durable FIFO of uplink messages, keyed by msg_id; safe across threads and restarts."""

    def __init__(self, path: str | Path) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # an event survives a power cut
            self._db.executescript(_SCHEMA)

    def add(self, msg_id: str, kind: str, payload: bytes) -> None:
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO outbox (msg_id, kind, payload, created_at) "
                             "VALUES (?, ?, ?, ?)", (msg_id, kind, payload, time.time()))

    def pending(self, older_than: float | None = None) -> list[tuple[str, str, bytes]]:
        """Unacked messages, oldest first (optionally only those last sent before a time)."""
        q = "SELECT msg_id, kind, payload FROM outbox"
        args: tuple = ()
        if older_than is not None:
            q += " WHERE last_sent_at IS NULL OR last_sent_at < ?"
            args = (older_than,)
        with self._lock:
            return list(self._db.execute(q + " ORDER BY rowid", args))

    def mark_sent(self, msg_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE outbox SET last_sent_at = ?, attempts = attempts + 1 "
                             "WHERE msg_id = ?", (time.time(), msg_id))

    def remove(self, msg_id: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM outbox WHERE msg_id = ?", (msg_id,)).rowcount > 0

    def contains(self, msg_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM outbox WHERE msg_id = ?", (msg_id,)
                                    ).fetchone() is not None

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM outbox").fetchone()[0]

    def get_state(self, key: str, default: str | None = None) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM link_state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_state(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO link_state (key, value) VALUES (?, ?) ON CONFLICT (key) "
                             "DO UPDATE SET value = excluded.value", (key, value))

    def close(self) -> None:
        with self._lock:
            self._db.close()


class HandsetLink:
    def __init__(self, host: str, port: int, device_id: str, password: str, db_path: str | Path,
                 *, on_downlink: Callable[[str, dict[str, Any]], None] | None = None,
                 on_gap: Callable[[int, int], None] | None = None,
                 on_rejected: Callable[[str, dict[str, Any]], None] | None = None,
                 session_expiry: int = 7 * 24 * 3600, resend_after: float = 30.0,
                 ack_delay: float = 0.5, resync_after: float = 10.0,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.host, self.port, self.device_id = host, port, device_id
        self.outbox_path = Path(db_path)
        self.outbox = Outbox(db_path)
        self.on_downlink, self.on_gap, self.on_rejected = on_downlink, on_gap, on_rejected
        self.resend_after = resend_after
        self.ack_delay, self.resync_after = ack_delay, resync_after
        self.now = now
        self._ack_timer: threading.Timer | None = None
        self._offsets: list[float] = []
        stored = self.outbox.get_state("clock_offset")
        self.clock_offset: float | None = float(stored) if stored is not None else None
        self._resync_asked: tuple[int, float] | None = None  # (last seq, monotonic time)
        self.connected = threading.Event()
        self._stopping = threading.Event()
        self._seq_lock = threading.Lock()
        self._presence_topic = protocol.up_topic(device_id, "presence")
        self._connect_props = Properties(PacketTypes.CONNECT)
        self._connect_props.SessionExpiryInterval = session_expiry
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv5)
        c.username_pw_set(device_id, password)
        c.will_set(self._presence_topic, self._presence("offline"), qos=1, retain=True)
        c.reconnect_delay_set(min_delay=1, max_delay=60)  # paho backs off exponentially
        c.on_connect, c.on_disconnect, c.on_message = (self._on_connect, self._on_disconnect,
                                                       self._on_message)
        self._client = c
        self._resender: threading.Thread | None = None

    # -- public API ------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; returns at once (works offline: events queue durably)."""
        self._client.connect_async(self.host, self.port, clean_start=False,
                                   properties=self._connect_props)
        self._client.loop_start()
        self._resender = threading.Thread(target=self._resend_loop, daemon=True)
        self._resender.start()

    def stop(self) -> None:
        """Go offline on purpose: publish the retained offline state, then disconnect."""
        self._stopping.set()
        with self._seq_lock:
            if self._ack_timer is not None:
                self._ack_timer.cancel()
                self._ack_timer = None
        if self.connected.is_set():
            info = self._client.publish(self._presence_topic, self._presence("offline"), qos=1,
                                        retain=True)
            info.wait_for_publish(timeout=5)
        self._client.disconnect()
        self._client.loop_stop()
        if self._resender is not None:
            self._resender.join(timeout=5)
        self.outbox.close()

    def send(self, kind: str, /, **fields: Any) -> str:
        """Queue an uplink event durably, publish it if connected; returns its msg_id."""
        if kind not in protocol.ACKED_UP_KINDS:
            raise ValueError(f"{kind!r} is not an acknowledged uplink kind")
        message = protocol.uplink(kind, self.server_now(), **fields)
        payload = protocol.encode("up", kind, message)  # invalid input fails here, at the source
        self.outbox.add(message["msg_id"], kind, payload)
        if self.connected.is_set():
            self._publish(message["msg_id"], kind, payload)
        return message["msg_id"]

    def server_now(self) -> datetime:
        """The handset's clock corrected by the offset learnt from the server's acks."""
        now = self.now()
        return now + timedelta(seconds=self.clock_offset) if self.clock_offset else now

    def _learn_offset(self, server_time: str) -> None:
        try:
            server = datetime.fromisoformat(server_time.replace("z", "Z"))
        except ValueError:
            return
        self._offsets = [*self._offsets[-8:], (server - self.now()).total_seconds()]
        ordered = sorted(self._offsets)
        self.clock_offset = ordered[len(ordered) // 2]
        self.outbox.set_state("clock_offset", repr(self.clock_offset))

    def is_pending(self, msg_id: str) -> bool:
        """Still waiting for the server's application ack."""
        return self.outbox.contains(msg_id)

    @property
    def last_seq(self) -> int:
        return int(self.outbox.get_state("last_seq", "0") or 0)

    # -- internals -------------------------------------------------------------------------------
    def _presence(self, state: str) -> bytes:
        return protocol.encode("up", "presence", {"v": protocol.VERSION, "state": state,
                                                  "at": protocol.timestamp(self.now())})

    def _publish(self, msg_id: str, kind: str, payload: bytes) -> None:
        self.outbox.mark_sent(msg_id)
        self._client.publish(protocol.up_topic(self.device_id, kind), payload, qos=1)

    def _flush(self, older_than: float | None = None) -> None:
        for msg_id, kind, payload in self.outbox.pending(older_than):
            if not self.connected.is_set():
                return
            self._publish(msg_id, kind, payload)

    def _resend_loop(self) -> None:
        while not self._stopping.wait(min(self.resend_after, 5.0)):
            if self.connected.is_set():
                self._flush(older_than=time.time() - self.resend_after)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            return
        client.subscribe(protocol.down_filter(self.device_id), qos=1)
        client.publish(self._presence_topic, self._presence("online"), qos=1, retain=True)
        self.connected.set()
        if not flags.session_present:  # anything the broker had queued for us is gone
            with self._seq_lock:
                self._request_resync(force=True)
        self._flush()

    def _request_resync(self, *, force: bool = False) -> None:
        """Ask for everything after the last handled seq (caller holds _seq_lock)."""
        last = self.last_seq
        asked = self._resync_asked
        if not force and asked is not None and asked[0] == last \
                and time.monotonic() - asked[1] < self.resync_after:
            return
        self._resync_asked = (last, time.monotonic())
        self.send("ack", seq=last, resync=True)

    def _schedule_ack(self) -> None:
        """Acknowledge handled downlink soon, once for a burst (caller holds _seq_lock)."""
        if self._ack_timer is None and not self._stopping.is_set():
            self._ack_timer = threading.Timer(self.ack_delay, self._send_ack)
            self._ack_timer.daemon = True
            self._ack_timer.start()

    def _send_ack(self) -> None:
        with self._seq_lock:
            self._ack_timer = None
            if not self._stopping.is_set():
                self.send("ack", seq=self.last_seq)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()

    def _on_message(self, client, userdata, msg) -> None:
        try:
            t, body = protocol.decode(msg.topic, bytes(msg.payload))
        except protocol.ProtocolError:
            return  # not for us or malformed: nothing a handset can do about it
        if t.kind == "ack":
            if "server_time" in body:
                self._learn_offset(body["server_time"])
            if self.outbox.remove(body["msg_id"]) and body["result"] == "rejected" \
                    and self.on_rejected is not None:
                self.on_rejected(body["msg_id"], body.get("error") or {})
            return
        with self._seq_lock:
            last = self.last_seq
            seq = body["seq"]
            if seq <= last:
                return  # a redelivery of something already handled
            if seq > last + 1:  # something was lost: ask again from last + 1, keep order
                if self.on_gap is not None:
                    self.on_gap(last + 1, seq)
                self._request_resync()
                return
            if self.on_downlink is not None:
                try:
                    self.on_downlink(t.kind, body)
                except Exception:  # the app failed to take it: not handled, a resync repeats it
                    logging.getLogger(__name__).exception("downlink handler failed (seq %s)", seq)
                    return
            self.outbox.set_state("last_seq", str(seq))
            self._resync_asked = None
            self._schedule_ack()
