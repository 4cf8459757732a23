"""voice_notes (a voice message's playable audio and transcript) and message_cards (link and file cards)

Revision ID: 0013
Revises: 0011 (to be re-chained at merge)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0013"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "voice_notes",
        sa.Column("message_id", sa.Integer(), sa.ForeignKey("messages.id"), primary_key=True),
        sa.Column("status", sa.String(), nullable=False, server_default="ok"),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("audio_path", sa.String(), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("transcript", sa.Text(), nullable=True),
        sa.Column("transcript_source", sa.String(), nullable=True),
        sa.Column("transcript_by", sa.String(), nullable=True),
        sa.Column("transcript_at", storage.types.UTCDateTime(), nullable=True),
    )
    op.create_table(
        "message_cards",
        sa.Column("message_id", sa.Integer(), sa.ForeignKey("messages.id"), primary_key=True),
        sa.Column("kind", sa.String(), nullable=False, server_default="link"),
        sa.Column("title", sa.String(), nullable=False, server_default=""),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("host", sa.String(), nullable=False, server_default=""),
        sa.Column("file_name", sa.String(), nullable=False, server_default=""),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("message_cards")
    op.drop_table("voice_notes")
