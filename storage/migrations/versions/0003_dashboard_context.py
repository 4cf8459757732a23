"""dashboard: look up a message's tickets (hiding confidential context from cadres)

Revision ID: 0003
Revises: 0002
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_dash_ticket_messages_message", "ticket_messages", ["message_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_dash_ticket_messages_message", table_name="ticket_messages")
