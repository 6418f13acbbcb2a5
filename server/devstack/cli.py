"""``crewline stack``: the private services of the demo (PostgreSQL, Mosquitto) and, with
``up --app``, Crewline's server and worker in the background.

Everything lives under one directory (``./var`` by default): ``pg/`` and ``mqtt/`` for the
services, ``stack.env`` with the settings the other commands read, ``run/*.pid`` and ``log/*.log``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from server.devstack.base import (
    DevstackError,
    port_is_free,
    preferred_port,
    read_env_file,
    write_env_file,
)
from server.devstack.mosquitto import MosquittoBroker
from server.devstack.postgres import PostgresCluster
from server.devstack.processes import BackgroundProcess, wait_for_http

DEFAULT_PG_PORT = 55432
DEFAULT_MQTT_PORT = 51883
DEFAULT_HTTP_PORT = 8080
DATABASE = "crewline"

stack_app = typer.Typer(help="Private PostgreSQL and Mosquitto under ./var for the demo.",
                        no_args_is_help=True)
console = Console()

VarDir = typer.Option(Path("var"), "--var-dir", help="Where the stack keeps its state.")


def _short(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (shorter in tables)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
    return typer.Exit(1)


def _app_command(*args: str) -> list[str]:
    """The ``crewline`` of this interpreter's environment, so the venv is used without PATH."""
    script = shutil.which("crewline", path=str(Path(sys.executable).parent))
    if script:
        return [script, *args]
    return [sys.executable, "-m", "server.cli", *args]


def _stack_env(var_dir: Path, pg: PostgresCluster, broker: MosquittoBroker) -> dict[str, str]:
    """Write ``stack.env``; the secret key and any keys added by hand survive re-runs."""
    path = var_dir / "stack.env"
    values = read_env_file(path)
    values.update({
        "CREWLINE_ENV": values.get("CREWLINE_ENV", "development"),
        "CREWLINE_DATABASE_URL": pg.url(DATABASE),
        "CREWLINE_MQTT_URL": broker.url(),
        "CREWLINE_SECRET_KEY": values.get("CREWLINE_SECRET_KEY") or secrets.token_urlsafe(48),
        "CREWLINE_SMS_PROVIDER": values.get("CREWLINE_SMS_PROVIDER", "log"),
    })
    write_env_file(path, values, header=(
        "Crewline demo stack (crewline stack up). Secrets: keep private.\n"
        "Re-runs keep CREWLINE_SECRET_KEY and extra keys."))
    return values


def services_up(var_dir: Path, pg_port: int = DEFAULT_PG_PORT,
                mqtt_port: int = DEFAULT_MQTT_PORT) -> dict[str, str]:
    """Start (or keep running) PostgreSQL and Mosquitto; return the stack's settings."""
    var_dir = var_dir.resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    pg = PostgresCluster(var_dir / "pg", port=preferred_port(pg_port))
    pg.start()
    pg.create_database(DATABASE)
    broker = MosquittoBroker(var_dir / "mqtt", port=preferred_port(mqtt_port))
    broker.start()
    return _stack_env(var_dir, pg, broker)


def _server(var_dir: Path) -> BackgroundProcess:
    return BackgroundProcess("server", var_dir)


def _worker(var_dir: Path) -> BackgroundProcess:
    return BackgroundProcess("worker", var_dir)


def _bridge(var_dir: Path) -> BackgroundProcess:
    return BackgroundProcess("bridge", var_dir)


def _simulator(var_dir: Path) -> BackgroundProcess:
    return BackgroundProcess("simulator", var_dir)


def _apps(var_dir: Path) -> list[BackgroundProcess]:
    return [_server(var_dir), _worker(var_dir), _bridge(var_dir), _simulator(var_dir)]


def app_up(var_dir: Path, env: dict[str, str], host: str, port: int, workers: int,
           simulate: int = 0) -> str:
    """(Re)start server, worker and MQTT bridge in the background (and ``simulate`` simulated
    handsets); wait for /health; return the URL."""
    var_dir = var_dir.resolve()
    server, worker, bridge, simulator = _apps(var_dir)
    # A re-run restarts them, so `make demo` after a code change serves the new code.
    for proc in (simulator, bridge, server, worker):
        proc.stop()
    if not port_is_free(port):
        raise DevstackError(f"port {port} on {host} is taken by another program; "
                            f"choose another one (make demo PORT=...)")
    child_env = {**os.environ, **env}
    cwd = var_dir.parent
    server.start(_app_command("serve", "--host", host, "--port", str(port),
                              "--workers", str(workers)), child_env, cwd)
    worker.start(_app_command("worker"), child_env, cwd)
    bridge.start(_app_command("bridge"), child_env, cwd)
    started = [server, worker, bridge]
    if simulate > 0:
        simulator.start(_app_command("simulate", "--crews", str(simulate), "--var-dir",
                                     str(var_dir)), child_env, cwd)
        started.append(simulator)
    url = f"http://{host}:{port}"
    (var_dir / "run" / "server.url").write_text(url + "\n")
    try:
        wait_for_http(f"{url}/health", server)
        time.sleep(0.5)
        for proc in started[1:]:
            if not proc.is_running():
                raise DevstackError(f"the {proc.name} exited during start-up{proc.log_tail()}")
    except DevstackError:
        for proc in started:  # no half-started demo left behind
            proc.stop()
        raise
    return url


@stack_app.command()
def up(
    var_dir: Path = VarDir,
    pg_port: int = typer.Option(DEFAULT_PG_PORT, help="Port of the private PostgreSQL "
                                "(another free one when taken; fixed once created)."),
    mqtt_port: int = typer.Option(DEFAULT_MQTT_PORT, help="Port of the private Mosquitto "
                                  "(another free one when taken; fixed once created)."),
    app: bool = typer.Option(False, "--app", help="Also (re)start `crewline serve` and "
                             "`crewline worker` in the background and wait for /health."),
    host: str = typer.Option("127.0.0.1", help="With --app: the server's address."),
    port: int = typer.Option(DEFAULT_HTTP_PORT, help="With --app: the server's port."),
    workers: int = typer.Option(1, help="With --app: uvicorn worker processes."),
    simulate: int = typer.Option(0, help="With --app: also run this many simulated handsets "
                                 "(`crewline simulate`) that take and work their crews' jobs."),
) -> None:
    """Start the private PostgreSQL (database 'crewline', PostGIS, pgRouting) and Mosquitto,
    and write VAR_DIR/stack.env. Idempotent."""
    try:
        env = services_up(var_dir, pg_port, mqtt_port)
        console.print(f"stack up; settings in {var_dir / 'stack.env'}", highlight=False)
        if app:
            url = app_up(var_dir, env, host, port, workers, simulate)
            console.print(f"server, worker and MQTT bridge running"
                          f"{f', {simulate} simulated handsets' if simulate else ''}; "
                          f"logs in {var_dir / 'log'}", highlight=False)
            console.print(f"Crewline is up at [bold]{url}[/bold]")
    except DevstackError as exc:
        raise _fail(exc) from exc


@stack_app.command()
def down(var_dir: Path = VarDir) -> None:
    """Stop simulator, bridge, server, worker, Mosquitto and PostgreSQL (their data is kept)."""
    var_dir = var_dir.resolve()
    try:
        for proc in reversed(_apps(var_dir)):
            if proc.stop():
                console.print(f"stopped {proc.name}")
        if (var_dir / "mqtt" / "broker.env").exists():
            broker = MosquittoBroker(var_dir / "mqtt")
            if broker.is_running():
                broker.stop()
                console.print("stopped mosquitto")
        if (var_dir / "pg" / "data").exists():
            pg = PostgresCluster(var_dir / "pg")
            if pg.is_running():
                pg.stop()
                console.print("stopped postgresql")
    except DevstackError as exc:
        raise _fail(exc) from exc
    console.print("stack down")


@stack_app.command()
def status(var_dir: Path = VarDir) -> None:
    """Show what runs, where it listens and where it logs."""
    var_dir = var_dir.resolve()
    table = Table(title=f"Crewline stack in {_short(var_dir)}")
    for col in ("component", "state", "address", "log"):
        table.add_column(col, no_wrap=col in ("component", "state"), overflow="fold")

    def state(running: bool, pid: int | None = None) -> str:
        if running:
            return "[green]running[/green]" + (f" (pid {pid})" if pid else "")
        return "[dim]stopped[/dim]"

    pg_state = read_env_file(var_dir / "pg" / "cluster.env")
    if pg_state:
        pg = PostgresCluster(var_dir / "pg")
        table.add_row("postgresql", state(pg.is_running()),
                      f"127.0.0.1:{pg_state['PORT']} db {DATABASE}",
                      _short(var_dir / "pg" / "postgres.log"))
    else:
        table.add_row("postgresql", "[dim]not created[/dim]", "", "")
    mq_state = read_env_file(var_dir / "mqtt" / "broker.env")
    if mq_state:
        broker = MosquittoBroker(var_dir / "mqtt")
        table.add_row("mosquitto", state(broker.is_running(), broker.pid()),
                      f"127.0.0.1:{mq_state['PORT']} user {mq_state['SERVER_USER']}",
                      _short(broker.log_file))
    else:
        table.add_row("mosquitto", "[dim]not created[/dim]", "", "")
    url_file = var_dir / "run" / "server.url"
    for proc in _apps(var_dir):
        address = ""
        if proc.name == "server" and proc.is_running() and url_file.exists():
            address = url_file.read_text().strip()
        table.add_row(proc.name, state(proc.is_running(), proc.pid()), address,
                      _short(proc.log_file))
    console.print(table)


if __name__ == "__main__":
    stack_app()
