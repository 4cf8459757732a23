"""tickets: an explicit stage (sub-state of the status); every reporter's own rating

Revision ID: 0007
Revises: 0006
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stage', sa.String(), nullable=False, server_default='new'))
    with op.batch_alter_table('ticket_reporters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rating', sa.String(), nullable=True))
        batch_op.add_column(sa.Column('rated_at', storage.types.UTCDateTime(), nullable=True))
    # the stage of existing tickets, from the status and the timestamps that used to stand for it
    op.execute(
        "UPDATE tickets SET stage = CASE"
        " WHEN status = 'accepted' THEN 'in_progress'"
        " WHEN status = 'resolved' AND rating_requested_at IS NULL THEN 'awaiting_photo'"
        " WHEN status = 'resolved' THEN 'awaiting_rating'"
        " WHEN status = 'closed' AND rating IS NOT NULL THEN 'rated'"
        " WHEN status = 'closed' THEN 'no_answer'"
        " ELSE 'new' END"
    )
    op.create_index('ix_tickets_stage', 'tickets', ['stage'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tickets_stage', table_name='tickets')
    with op.batch_alter_table('ticket_reporters', schema=None) as batch_op:
        batch_op.drop_column('rated_at')
        batch_op.drop_column('rating')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('stage')
