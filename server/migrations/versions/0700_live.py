"""live: NOTIFY triggers feeding the web console's WebSocket (ids + kind, never row data)

Statement-level triggers with transition tables: one statement touching 5,000 crews sends
ceil(5000 / 300) notifications on channel ``crewline_live``, each ``kind:id,id,…`` (300 ids of at
most 20 digits stay under NOTIFY's 8,000-byte limit). PostgreSQL delivers them at commit and
folds identical payloads of one transaction. Every server process LISTENs once and reads the rows
itself (server/console/live.py). Other domains attach the same function to their tables:
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

# (table, kind, id column): crews → crew ids; everything about a ticket → ticket ids
SOURCES = [("tickets", "ticket", "id"), ("ticket_sla_clocks", "ticket", "ticket_id"),
           ("dispatch_assignments", "ticket", "ticket_id"), ("crews", "crew", "id")]

FUNCTION = """
CREATE FUNCTION crewline_live_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
    n int;
BEGIN
    EXECUTE format('SELECT array_agg(DISTINCT %I) FROM live_rows WHERE %I IS NOT NULL',
                   TG_ARGV[1], TG_ARGV[1]) INTO ids;
    n := coalesce(array_length(ids, 1), 0);
    FOR i IN 0 .. (n - 1) / 300 LOOP
        EXIT WHEN n = 0;
        PERFORM pg_notify('crewline_live',
                          TG_ARGV[0] || ':' || array_to_string(ids[i * 300 + 1 : i * 300 + 300], ','));
    END LOOP;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.execute(FUNCTION)
    for table, kind, column in SOURCES:
        for event in ("INSERT", "UPDATE"):
            op.execute(f"CREATE TRIGGER live_{event.lower()} AFTER {event} ON {table} "
                       f"REFERENCING NEW TABLE AS live_rows FOR EACH STATEMENT "
                       f"EXECUTE FUNCTION crewline_live_notify('{kind}', '{column}')")


def downgrade() -> None:
    for table, _, _ in SOURCES:
        for event in ("insert", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS live_{event} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS crewline_live_notify()")
