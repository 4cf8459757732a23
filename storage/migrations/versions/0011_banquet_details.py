"""banquets: the date, time, place, host, event and scale read from a banquet-flagged message

Revision ID: 0011
Revises: 0008 (to be renumbered after 0009/0010 are merged)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "banquets",
        sa.Column("message_id", sa.Integer(), sa.ForeignKey("messages.id"), primary_key=True),
        sa.Column("date", sa.Date(), nullable=True),
        sa.Column("calendar", sa.String(), nullable=True),
        sa.Column("date_text", sa.String(), nullable=True),
        sa.Column("approximate", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("lunar", sa.String(), nullable=True),
        sa.Column("time", sa.String(), nullable=True),
        sa.Column("period", sa.String(), nullable=True),
        sa.Column("place", sa.String(), nullable=True),
        sa.Column("host", sa.String(), nullable=True),
        sa.Column("relation", sa.String(), nullable=True),
        sa.Column("event", sa.String(), nullable=True),
        sa.Column("scale", sa.String(), nullable=True),
        sa.Column("tables", sa.Integer(), nullable=True),
        sa.Column("people", sa.Integer(), nullable=True),
    )
    op.create_index("ix_banquets_date", "banquets", ["date"])


def downgrade() -> None:
    op.drop_index("ix_banquets_date", table_name="banquets")
    op.drop_table("banquets")
