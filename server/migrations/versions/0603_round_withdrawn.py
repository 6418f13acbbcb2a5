"""inspections: a round made ahead of its window is withdrawn when its plan is deactivated

Revision ID: 0603_round_withdrawn
Revises: 0602_round_deliveries
Create Date: 2026-11-27
"""
from alembic import op

revision = '0603_round_withdrawn'
down_revision = '0602_round_deliveries'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint(op.f('ck_inspection_rounds_outcome'), 'inspection_rounds', type_='check')
    op.create_check_constraint(
        op.f('ck_inspection_rounds_outcome'), 'inspection_rounds',
        "outcome IS NULL OR outcome IN ('complete','incomplete','withdrawn')")


def downgrade() -> None:
    op.execute("UPDATE inspection_rounds SET outcome = 'incomplete' WHERE outcome = 'withdrawn'")
    op.drop_constraint(op.f('ck_inspection_rounds_outcome'), 'inspection_rounds', type_='check')
    op.create_check_constraint(
        op.f('ck_inspection_rounds_outcome'), 'inspection_rounds',
        "outcome IS NULL OR outcome IN ('complete','incomplete')")
