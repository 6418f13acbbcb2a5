"""live: change records feeding the web console's WebSocket (ids + kind, never row data)

Statement-level triggers with transition tables append one row per statement to the UNLOGGED
table ``live_changes`` (kind, ids): one statement touching 5,000 crews is one row. Every server
process polls it a few times a second (server/console/live.py) and reads the rows itself.

Not NOTIFY: a transaction that has NOTIFYed takes a database-wide lock at commit and holds it
through the WAL flush, so every writer that notifies commits one at a time — measured here, the
ticket intake's raw-INSERT floor fell from ~1,200 to ~400 tickets/s with NOTIFY triggers on
``tickets`` (docs/benchmarks.md). An unlogged insert costs the writer almost nothing, and the
readers' consecutive snapshots (see live.py) still give every change to every replica exactly once.
Other domains attach the same function to their tables:
``EXECUTE FUNCTION crewline_live_notify('outage', 'id')``.

Revision ID: 0700_live
Revises: 0100_dispatch
Create Date: 2026-11-27
"""
from alembic import op

revision = '0700_live'
down_revision = '0100_dispatch'
branch_labels = ('live',)
depends_on = None

# (table, kind, id column, events): crews → crew ids; everything about a ticket → ticket ids.
# SLA clocks are inserted only with a ticket insert or update (creation, reopening, unassigning),
# which records the change already: their inserts need no record of their own.
SOURCES = [("tickets", "ticket", "id", ("INSERT", "UPDATE")),
           ("ticket_sla_clocks", "ticket", "ticket_id", ("UPDATE",)),
           ("dispatch_assignments", "ticket", "ticket_id", ("INSERT", "UPDATE")),
           ("crews", "crew", "id", ("INSERT", "UPDATE"))]

TABLE = """
CREATE UNLOGGED TABLE live_changes (
    id bigserial PRIMARY KEY,
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    kind text NOT NULL,
    ids bigint[] NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ix_live_changes_xid ON live_changes (xid);
CREATE INDEX ix_live_changes_at ON live_changes (at);
"""

# Static queries per id column (not EXECUTE format(...)): PL/pgSQL caches their plans, a
# dynamic statement is planned on every firing — a fifth of the raw intake rate.
FUNCTION = """
CREATE FUNCTION crewline_live_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
BEGIN
    IF TG_ARGV[1] = 'id' THEN
        SELECT array_agg(DISTINCT id) INTO ids FROM live_rows;
    ELSIF TG_ARGV[1] = 'ticket_id' THEN
        SELECT array_agg(DISTINCT ticket_id) INTO ids FROM live_rows WHERE ticket_id IS NOT NULL;
    ELSIF TG_ARGV[1] = 'outage_id' THEN
        SELECT array_agg(DISTINCT outage_id) INTO ids FROM live_rows WHERE outage_id IS NOT NULL;
    ELSE
        EXECUTE format('SELECT array_agg(DISTINCT %I) FROM live_rows WHERE %I IS NOT NULL',
                       TG_ARGV[1], TG_ARGV[1]) INTO ids;
    END IF;
    IF ids IS NOT NULL THEN
        INSERT INTO live_changes (kind, ids) VALUES (TG_ARGV[0], ids);
    END IF;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.execute(TABLE)
    op.execute(FUNCTION)
    for table, kind, column, events in SOURCES:
        for event in events:
            op.execute(f"CREATE TRIGGER live_{event.lower()} AFTER {event} ON {table} "
                       f"REFERENCING NEW TABLE AS live_rows FOR EACH STATEMENT "
                       f"EXECUTE FUNCTION crewline_live_notify('{kind}', '{column}')")


def downgrade() -> None:
    for table, _, _, events in SOURCES:
        for event in (e.lower() for e in events):
            op.execute(f"DROP TRIGGER IF EXISTS live_{event} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS crewline_live_notify()")
    op.execute("DROP TABLE IF EXISTS live_changes")
