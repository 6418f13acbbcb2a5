"""live: outages and their linked calls are change records for the web console too (kind ``outage``)

A merge of the live and outages branches (a merge, not depends_on: the version table would drop
0500_outages while the script directory still called it a head).

Revision ID: 0701_live_outages
Revises: 0700_live, 0500_outages
Create Date: 2026-11-27
"""
from alembic import op

revision = '0701_live_outages'
down_revision = ('0700_live', '0500_outages')
branch_labels = None
depends_on = None

SOURCES = [("outages", "outage", "id"), ("outage_tickets", "outage", "outage_id")]


def upgrade() -> None:
    for table, kind, column in SOURCES:
        for event in ("INSERT", "UPDATE"):
            op.execute(f"CREATE TRIGGER live_{event.lower()} AFTER {event} ON {table} "
                       f"REFERENCING NEW TABLE AS live_rows FOR EACH STATEMENT "
                       f"EXECUTE FUNCTION crewline_live_notify('{kind}', '{column}')")


def downgrade() -> None:
    for table, _, _ in SOURCES:
        for event in ("insert", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS live_{event} ON {table}")
