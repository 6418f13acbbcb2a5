"""Cross-cutting pieces of the server: errors, clock, database, logging."""
