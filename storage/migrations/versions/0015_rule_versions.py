"""rule_versions: every change of a rule file made from the dashboard, with who, when and why

Revision ID: 0015
Revises: 0011 (to be renumbered at merge)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.types import UTCDateTime

revision: str = "0015"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rule_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("username", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("rule_id", sa.String(), nullable=False, server_default=""),
        sa.Column("file", sa.String(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("previous", sa.Text(), nullable=False),
        sa.Column("ruleset_version", sa.String(), nullable=False, server_default=""),
    )
    op.create_index("ix_rule_versions_file", "rule_versions", ["file"])


def downgrade() -> None:
    op.drop_index("ix_rule_versions_file", table_name="rule_versions")
    op.drop_table("rule_versions")
