"""The `crewline` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from server.core.cli import err, settings_or_exit

app = typer.Typer(help="Crewline: field service and dispatch for utilities.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True)
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
import_app = typer.Typer(help="Bulk imports.", no_args_is_help=True)
demo_app = typer.Typer(help="Demo data (Helsinki, © OpenStreetMap contributors, ODbL).",
                       no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks; each prints one JSON object.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(import_app, name="import")
app.add_typer(demo_app, name="demo")
app.add_typer(bench_app, name="bench")
app.add_typer(__import__("server.tags.cli", fromlist=["tags_app"]).tags_app, name="tags")
app.add_typer(__import__("server.dispatch.cli", fromlist=["dispatch_app"]).dispatch_app, name="dispatch")
app.add_typer(__import__("server.inspections.cli", fromlist=["inspections_app"]).inspections_app,
              name="inspections")
app.command("bridge")(__import__("server.devices.cli", fromlist=["bridge"]).bridge)
app.command("simulate")(__import__("server.devices.cli", fromlist=["simulate"]).simulate)
app.add_typer(__import__("server.devices.cli", fromlist=["devices_app"]).devices_app, name="devices")


def progress_bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=False)




@app.command()
def serve(host: str = "127.0.0.1", port: int = 8080, workers: int = 1,
          access_log: bool = typer.Option(True, help="log each request")) -> None:
    """Run the HTTP API."""
    import uvicorn

    settings_or_exit()  # refuse to start on a bad configuration (e.g. default secret in production)
    uvicorn.run("server.app:create_app", factory=True, host=host, port=port, workers=workers,
                access_log=access_log, log_level="info")


@app.command()
def worker(concurrency: int = 4) -> None:
    """Run background work: SLA sweeps, auto-assignment, the SMS outbox, inspection rounds and
    missed checkpoints, planned-outage notices and outage inference (server/jobs.py BLUEPRINTS)."""
    import asyncio

    from server.jobs import make_app

    settings = settings_or_exit()
    job_app = make_app(settings.libpq_url)

    async def _run() -> None:
        async with job_app.open_async():
            # finished periodic jobs would pile up (one every few seconds): keep only failures
            await job_app.run_worker_async(concurrency=concurrency, install_signal_handlers=True,
                                           delete_jobs="successful")

    asyncio.run(_run())


@db_app.command("upgrade")
def db_upgrade(revision: str = "heads") -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    from server.core import migrate

    settings = settings_or_exit()
    migrate.upgrade(settings.database_url, revision)
    err.print(f"database at revision {', '.join(sorted(migrate.current(settings.database_url)))}")


@db_app.command("current")
def db_current() -> None:
    from server.core import migrate

    typer.echo(", ".join(sorted(migrate.current(settings_or_exit().database_url))) or "(empty)")


@users_app.command("create")
def users_create(username: str, role: str = typer.Option(..., help="agent, dispatcher, "
                                                          "technician, manager or admin"),
                 full_name: str = "", language: str = "zh-CN",
                 password_stdin: bool = typer.Option(False, help="read the password from stdin")
                 ) -> None:
    """Create a user (the first admin, for example)."""
    from server.auth import service
    from server.core.db import make_engine, make_sessionmaker, transaction
    from server.core.errors import CrewlineError

    settings = settings_or_exit()
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    engine = make_engine(settings, pool_size=1)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            user = service.create_user(session, username=username, password=password, role=role,
                                       full_name=full_name, language=language)
            err.print(f"created user [bold]{user.username}[/bold] ({user.role}), id {user.id}")
    except CrewlineError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()


@import_app.command("customers")
def import_customers(path: Path = typer.Argument(..., exists=True, dir_okay=False),
                     skip_invalid: bool = typer.Option(
                         False, help="import the good rows and report the bad ones (default: "
                                     "import nothing if any row is bad)")) -> None:
    """Import customers from a CSV file (account_no,name,phones,language,sms_consent,address,lon,lat)."""
    from server.core.db import make_engine, make_sessionmaker
    from server.core.errors import CrewlineError
    from server.customers.importer import ImportMode
    from server.customers.importer import import_customers as run

    settings = settings_or_exit()
    mode = ImportMode.skip_invalid if skip_invalid else ImportMode.all_or_nothing
    engine = make_engine(settings, pool_size=1)
    data = path.read_bytes()
    total = max(data.count(b"\n") - 1, 1)
    try:
        with make_sessionmaker(engine)() as session, progress_bar() as bar:
            task = bar.add_task("importing customers", total=total)
            report = run(session, data, mode=mode, region=settings.default_region,
                         progress=lambda n: bar.update(task, completed=n))
            if report.committed:
                session.commit()
            else:
                session.rollback()
    except CrewlineError as exc:
        err.print(f"[red]{exc.field or 'file'}: {exc.message}[/red]")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    for e in report.errors[:200]:
        err.print(f"line {e.row}: {e.field or '-'}: {e.reason}")
    if len(report.errors) > 200:
        err.print(f"… and {len(report.errors) - 200} more")
    typer.echo(json.dumps({"mode": report.mode.value, "rows": report.rows,
                           "inserted": report.inserted, "updated": report.updated,
                           "skipped": report.skipped, "committed": report.committed,
                           "errors": len(report.errors)}))
    raise typer.Exit(0 if report.committed else 1)


@demo_app.command("load")
def demo_load(pbf: Path = typer.Option(Path("var/data/Helsinki.osm.pbf"), exists=True),
              limit: int = typer.Option(0, help="at most this many customers (0: all buildings)"),
              seed: int = 42) -> None:
    """Load the Helsinki demo: synthetic customers at real addressed buildings, demo users."""
    from server.demo.loader import load_demo

    load_demo(settings_or_exit(), pbf, limit=limit or None, seed=seed, progress=progress_bar)


@bench_app.command("lookup")
def bench_lookup(customers: int = 1_000_000, queries: int = 2000) -> None:
    """Caller-ID lookup latency with N customers (p50/p99 ms; floor: the raw SQL)."""
    from server.bench.lookup import run

    typer.echo(json.dumps(run(settings_or_exit(), customers=customers, queries=queries,
                              progress=progress_bar)))


@bench_app.command("intake")
def bench_intake(seconds: int = 20, clients: int = 32, workers: int = 2,
                 floor_tickets: int = 5000) -> None:
    """Tickets/s through the HTTP API with N clients; floor: raw INSERTs of the same rows."""
    from server.bench.intake import run

    typer.echo(json.dumps(run(settings_or_exit(), seconds=seconds, clients=clients, workers=workers,
                              floor_tickets=floor_tickets, progress=progress_bar)))


@bench_app.command("dispatch")
def bench_dispatch(crews: int = 10_000, tickets: int = 1000, sample: int = 100) -> None:
    """Suggest latency (top 5 by road ETA, p50/p99 ms) over N crews; floor: the raw KNN SQL."""
    from server.bench.dispatch import run

    typer.echo(json.dumps(run(settings_or_exit(), crews=crews, tickets=tickets, sample=sample,
                              progress=progress_bar)))


@bench_app.command("tags")
def bench_tags(verifications: int = 50_000, tags: int = 1000, scans: int = 3000) -> None:
    """SUN verifications/s in one process; scan ingest (verdict + store)/s; floor: raw INSERTs."""
    from server.bench.tags import run

    typer.echo(json.dumps(run(settings_or_exit(), verifications=verifications, tags=tags, scans=scans,
                              progress=progress_bar)))


@bench_app.command("inspections")
def bench_inspections(visits: int = 2000, sites: int = 50, threads: int = 4,
                      per_thread: int = 100) -> None:
    """Visits appended to the per-site hash chains/s (one site vs many in parallel), chain
    verification records/s; floor: raw INSERTs of the same records."""
    from server.bench.inspections import run

    typer.echo(json.dumps(run(settings_or_exit(), visits=visits, sites=sites, threads=threads,
                              per_thread=per_thread, progress=progress_bar)))


@bench_app.command("sms")
def bench_sms(notifications: int = 100_000, send: int = 1000, mps: float = 100.0) -> None:
    """SMS outbox: enqueue rate for N notifications; paced send loop vs MPS (no duplicates)."""
    from server.bench.sms import run

    typer.echo(json.dumps(run(settings_or_exit(), notifications=notifications, send=send, mps=mps,
                              progress=progress_bar)))


@bench_app.command("mqtt")
def bench_mqtt(handsets: int = 200, messages: int = 20_000, fixes: int = 5, window: int = 20,
               bridges: int = 2, procs: int = 2) -> None:
    """Handset uplink events persisted and acked end to end through N bridges (floor: raw
    Mosquitto publish -> subscribe of the same payloads)."""
    from server.bench.mqtt import run

    typer.echo(json.dumps(run(settings_or_exit(), handsets=handsets, messages=messages, fixes=fixes,
                              window=window, bridges=bridges, procs=procs)))


@bench_app.command("outage")
def bench_outage(points: int = 100_000, repeat: int = 3) -> None:
    """Declare an outage over N service points: select them and queue every SMS (floor: the raw
    spatial count)."""
    from server.bench.outage import run

    typer.echo(json.dumps(run(settings_or_exit(), points=points, repeat=repeat, progress=progress_bar)))


@bench_app.command("handset")
def bench_handset(starts: int = 5, jobs: int = 500, events: int = 5000) -> None:
    """Handset app: cold start to the job list, 500 jobs listed and scrolled, outbox flush of N
    events after reconnect (floor: raw paho publish of the same payloads)."""
    from server.bench.handset import run

    typer.echo(json.dumps(run(starts=starts, jobs=jobs, events=events)))


@bench_app.command("console")
def bench_console(crews: int = 5000, seconds: int = 30, warmup: int = 5) -> None:
    """Live map: N crews moving at 1 Hz; server-to-browser latency p50/p99 and long tasks per
    minute in Chromium (floor: the change feed alone, same poll interval)."""
    from server.bench.console import run

    typer.echo(json.dumps(run(settings_or_exit(), crews=crews, seconds=seconds, warmup=warmup)))


def _register_stack() -> None:
    try:
        from server.devstack.cli import stack_app
    except ImportError:  # pragma: no cover
        return
    app.add_typer(stack_app, name="stack")


_register_stack()

if __name__ == "__main__":
    app()
