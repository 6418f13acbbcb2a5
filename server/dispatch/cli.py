"""`crewline dispatch …`: the road graph."""

from __future__ import annotations

import json
from pathlib import Path

import typer

dispatch_app = typer.Typer(help="Dispatch: road network for routing (© OpenStreetMap "
                                "contributors, ODbL).", no_args_is_help=True)


@dispatch_app.command("import-roads")
def import_roads(pbf: Path = typer.Option(Path("var/data/Helsinki.osm.pbf"), exists=True,
                                          dir_okay=False, help="OpenStreetMap .pbf or .osm")
                 ) -> None:
    """Replace the pgRouting road graph with the drivable ways of PBF (one transaction)."""
    from server.cli import progress_bar
    from server.core.cli import settings_or_exit
    from server.dispatch.demo import import_roads as run

    report = run(settings_or_exit(), pbf, progress=progress_bar)
    typer.echo(json.dumps(report.__dict__))
