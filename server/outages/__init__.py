"""Outages: declare, tell everyone affected, absorb the calls (docs/outages.md)."""
