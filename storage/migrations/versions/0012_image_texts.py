"""image_texts: the text read from image messages (OCR), and flags marked as raised by it

Revision ID: 0012
Revises: 0011 (to be renumbered when merged)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.types import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "image_texts",
        sa.Column("message_id", sa.Integer(), sa.ForeignKey("messages.id"), primary_key=True),
        sa.Column("account", sa.String(), nullable=False, server_default=""),
        sa.Column("status", sa.String(), nullable=False, server_default="pending"),
        sa.Column("text", sa.Text(), nullable=False, server_default=""),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False, server_default="[]"),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("read_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_image_texts_pending", "image_texts", ["status", "account"])
    with op.batch_alter_table("flags") as batch:
        batch.add_column(sa.Column("from_image", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("flags") as batch:
        batch.drop_column("from_image")
    op.drop_index("ix_image_texts_pending", table_name="image_texts")
    op.drop_table("image_texts")
