"""Tickets: intake, lifecycle, audit trail, duplicates, SLA clocks, callbacks."""
