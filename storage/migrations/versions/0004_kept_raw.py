"""messages: mark the ones kept raw after the pipeline failed, so staff see them and can re-run them

Revision ID: 0004
Revises: 0003
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("kept_raw", sa.Boolean(), nullable=False, server_default=sa.false()))
    # Messages stored before this revision without a classification were kept raw by the same failure.
    op.execute(
        "UPDATE messages SET kept_raw = TRUE WHERE NOT EXISTS "
        "(SELECT 1 FROM classifications WHERE classifications.message_id = messages.id)"
    )
    # Few rows ever match: a partial index keeps the count on /health and the dashboard cheap.
    op.create_index(
        "ix_messages_kept_raw",
        "messages",
        ["id"],
        unique=False,
        sqlite_where=sa.text("kept_raw = 1"),
        postgresql_where=sa.text("kept_raw"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_kept_raw", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("kept_raw")
