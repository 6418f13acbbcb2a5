"""What every command-line entry point shares: the error console and reading the settings."""

from __future__ import annotations

import typer
from rich.console import Console

from server.settings import Settings, get_settings

err = Console(stderr=True)


def settings_or_exit() -> Settings:
    """The settings, or exit 2 with the reason (a pydantic error, not a traceback)."""
    try:
        return get_settings()
    except Exception as exc:  # pydantic ValidationError
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
