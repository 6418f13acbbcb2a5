"""`crewline bridge`: run the MQTT uplink bridge until SIGINT/SIGTERM; `crewline simulate`;
`crewline devices dead-letters` / `crewline devices retention` (link operations)."""

from __future__ import annotations

import json
import signal
import threading
from datetime import datetime

import typer
from rich.console import Console

from server.core.cli import err, settings_or_exit

devices_app = typer.Typer(help="Handset link operations: dead letters, retention.",
                          no_args_is_help=True)


def bridge() -> None:
    """Run the handset MQTT bridge (uplink → database → ack); run several for redundancy."""
    from server.core.clock import SystemClock
    from server.core.db import make_engine, make_sessionmaker
    from server.core.logging import configure_logging
    from server.devices.bridge import Bridge

    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_json)
    engine = make_engine(settings, pool_size=4)
    b = Bridge(settings, make_sessionmaker(engine), SystemClock())
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    b.start()
    print(f"bridge {b.client_id} subscribed to {b.subscription}", flush=True)
    try:
        stop.wait()
    finally:
        b.stop()
        engine.dispose()


def simulate(crews: int = 3, speed_kmh: float = 40.0, work_s: float = 30.0,
             fix_every_s: float = 2.0, batch_fixes: int = 5, minutes: float = 0.0,
             var_dir: str = "var") -> None:
    """Run N simulated handsets (one per crew) that take their jobs over MQTT, drive the road
    network, arrive, resolve, scan tags and report positions; until Ctrl-C (or --minutes)."""
    from pathlib import Path

    from server.core.clock import SystemClock
    from server.core.db import make_engine, make_sessionmaker
    from server.core.logging import configure_logging
    from server.devices.simulator import Simulator, provision

    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_json)
    engine = make_engine(settings, pool_size=4)
    make_session = make_sessionmaker(engine)
    sim_dir = Path(var_dir) / "simulator"
    devices = provision(settings, make_session, SystemClock(), crews, sim_dir)
    sim = Simulator(settings, make_session, SystemClock(), devices, sim_dir, speed_kmh=speed_kmh,
                    work_s=work_s, fix_every_s=fix_every_s, batch_fixes=batch_fixes)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sim.start()
    print(f"simulating {len(devices)} crews: " + ", ".join(
        f"{d.username}/{d.device_id}" for d in devices) + f" (credentials in {sim_dir})",
        flush=True)
    try:
        stop.wait(minutes * 60 if minutes > 0 else None)
    finally:
        sim.stop()
        engine.dispose()
        print(f"jobs completed: {len(sim.completed)}", flush=True)




def printable(s: str, width: int | None = None) -> str:
    """Terminal-safe: control characters (escape sequences in a hostile payload) shown as
    \\xNN / \\uNNNN, Rich markup escaped; cut to ``width`` characters with an ellipsis."""
    from rich.markup import escape

    shown = "".join(c if c.isprintable() else (f"\\x{ord(c):02x}" if ord(c) < 256
                                                else f"\\u{ord(c):04x}") for c in s)
    if width is not None and len(shown) > width:
        shown = shown[:width - 1] + "…"
    return escape(shown)


@devices_app.command("dead-letters")
def dead_letters_cmd(
        device: str | None = typer.Option(None, "--device", help="only this device id"),
        reason: str | None = typer.Option(None, help="only this reason, e.g. schema_invalid"),
        since: str | None = typer.Option(None, help="received at or after this time (ISO 8601; "
                                                    "without an offset: UTC)"),
        before_id: int | None = typer.Option(None, min=1, help="page: letters older than this id"),
        limit: int = typer.Option(20, min=1, max=200),
        letter_id: int | None = typer.Option(None, "--id", min=1,
                                             help="show one letter in full (base64 payload)"),
        as_json: bool = typer.Option(False, "--json", help="print JSON, one object per line")
) -> None:
    """Uplink payloads the bridge refused, newest first (same data as
    GET /api/v1/devices/dead-letters)."""
    from datetime import UTC

    from rich.table import Table

    from server.core.db import make_engine, make_sessionmaker
    from server.core.errors import CrewlineError
    from server.devices import dead_letters

    settings = settings_or_exit()
    since_at: datetime | None = None
    if since is not None:
        try:
            since_at = datetime.fromisoformat(since)
        except ValueError:
            err.print(f"[red]--since: {printable(since)!s} is not an ISO 8601 time[/red]")
            raise typer.Exit(2) from None
        if since_at.tzinfo is None:
            since_at = since_at.replace(tzinfo=UTC)
    engine = make_engine(settings, pool_size=1)
    try:
        with make_sessionmaker(engine)() as session:
            if letter_id is not None:
                try:
                    letters = [dead_letters.get_dead_letter(session, letter_id)]
                except CrewlineError as exc:
                    err.print(f"[red]{printable(exc.message)}[/red]")
                    raise typer.Exit(1) from None
            else:
                letters = dead_letters.list_dead_letters(
                    session, device_id=device, reason=reason, since=since_at,
                    before_id=before_id, limit=limit)
    finally:
        engine.dispose()
    out = Console(highlight=False)
    if as_json:
        for letter in letters:  # ASCII only: no C1 control or bidi character reaches the terminal
            typer.echo(json.dumps(letter.model_dump(mode="json"), ensure_ascii=True))
        return
    if letter_id is not None:
        d = letters[0]
        for key, value in (("id", d.id), ("received_at", d.received_at.isoformat()),
                           ("device", d.device_id or "—"), ("topic", d.topic),
                           ("reason", d.reason), ("detail", d.detail),
                           ("bytes", d.payload_bytes), ("valid UTF-8", d.valid_utf8),
                           ("preview", d.preview + (" …" if d.preview_truncated else "")),
                           ("base64", d.payload_base64)):
            out.print(f"[bold]{key}[/bold]: {printable(str(value))}")
        return
    table = Table(title=f"dead letters ({len(letters)}, newest first)")
    for col in ("id", "received (UTC)", "device", "reason", "detail", "bytes", "preview"):
        table.add_column(col, overflow="fold")
    for d in letters:
        table.add_row(str(d.id), d.received_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                      printable(d.device_id or "—"), printable(d.reason),
                      printable(d.detail, 60), str(d.payload_bytes), printable(d.preview, 60))
    out.print(table)
    if len(letters) == limit and letter_id is None:
        err.print(f"more: --before-id {letters[-1].id}")


@devices_app.command("retention")
def retention_cmd(max_seconds: float = typer.Option(600.0, min=1.0,
                                                    help="stop after this long (the next run "
                                                         "continues)")) -> None:
    """Run one retention pass now (the worker runs it hourly); prints one JSON object."""
    from server.core.clock import SystemClock
    from server.core.db import make_engine, make_sessionmaker
    from server.core.logging import configure_logging
    from server.devices import retention

    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_json)
    engine = make_engine(settings, pool_size=1)
    try:
        stats = retention.run(make_sessionmaker(engine), SystemClock().now(),
                              retention.RetentionConfig.from_settings(settings),
                              max_seconds=max_seconds)
    finally:
        engine.dispose()
    typer.echo(json.dumps(stats.as_dict()))
