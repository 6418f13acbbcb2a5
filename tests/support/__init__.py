"""Test helpers shared across test packages (local stand-ins for outside services)."""
