"""Test helpers shared across test packages (local stand-ins for outside services)."""

import os


def cli_env(**overrides: str) -> dict[str, str]:
    """The environment for a `crewline` subprocess: this one without any CREWLINE_ setting (so a
    developer's demo stack cannot leak in), plus ``overrides`` (full variable names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREWLINE_")}
    env.update(overrides)
    return env
