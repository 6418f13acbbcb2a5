"""the ticket intake in one statement: a stale-template check for the "received" SMS rendered
before the statement, and tickets listed newest first by creation time

The intake renders the SMS with the staff's template text cached per process (server.
notifications.service.TemplateOverrides); ``sms_template_unchanged`` in the statement raises
SQLSTATE CL001 when the stored text is no longer the one rendered with, so the whole statement
writes nothing and the server reloads the text and tries again. Ticket ids come in blocks per
process (server.tickets.ids), so lists order by created_at, id rather than by id alone.

Revision ID: 0202_intake_statement
Revises: 0701_live_outages
Create Date: 2026-11-27
"""
from alembic import op

revision = "0202_intake_statement"
down_revision = "0701_live_outages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION sms_template_unchanged(p_key text, p_language text, p_body text)
        RETURNS boolean LANGUAGE plpgsql STABLE AS $$
        BEGIN
          IF (SELECT body FROM sms_templates WHERE key = p_key AND language = p_language)
             IS DISTINCT FROM p_body THEN
            RAISE EXCEPTION 'sms template % (%) changed since it was cached', p_key, p_language
              USING ERRCODE = 'CL001';
          END IF;
          RETURN true;
        END $$""")
    op.create_index("ix_tickets_created", "tickets", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_tickets_created", table_name="tickets")
    op.execute("DROP FUNCTION sms_template_unchanged(text, text, text)")
