"""Inspection rounds and the manager's trail (docs/inspections.md)."""
