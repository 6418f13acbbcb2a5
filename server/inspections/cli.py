"""`crewline inspections …`: verify the tamper-evident visit records."""

from __future__ import annotations

import json

import typer

inspections_app = typer.Typer(help="Inspection rounds and visit records.", no_args_is_help=True)


@inspections_app.command("verify")
def verify(site: int | None = typer.Option(None, help="only this site's chain"),
           as_json: bool = typer.Option(False, "--json", help="print the result as JSON")) -> None:
    """Recompute every visit record's hash and link; exit 1 if any record was edited, deleted
    or reordered."""
    from server.core.cli import settings_or_exit
    from server.core.db import make_engine, make_sessionmaker
    from server.inspections.service import verify_chains

    engine = make_engine(settings_or_exit(), pool_size=1)
    try:
        with make_sessionmaker(engine)() as session:
            result = verify_chains(session, site)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(result.model_dump(mode="json")))
    else:
        typer.echo(f"{result.records} records in {result.sites} site chains: "
                   + ("intact" if result.ok else f"{len(result.problems)} problems"))
        for p in result.problems:
            typer.echo(f"  site {p.site_id} seq {p.site_seq} record {p.record_id}: "
                       f"{p.problem} — {p.detail}")
    raise typer.Exit(0 if result.ok else 1)
