"""label_feedback: staff corrections of labels and category, and messages marked as missed (training examples)

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "label_feedback",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("message_id", sa.Integer(), sa.ForeignKey("messages.id"), nullable=False),
        sa.Column("at", storage.types.UTCDateTime(), nullable=False),
        sa.Column("username", sa.String(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("category", sa.String(), nullable=True),
        sa.Column("source", sa.String(), nullable=False, server_default="correction"),
        sa.Column("note", sa.String(), nullable=False, server_default=""),
    )
    op.create_index("ix_label_feedback_message_id", "label_feedback", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_label_feedback_message_id", table_name="label_feedback")
    op.drop_table("label_feedback")
