"""flags: the tier of each red flag (确认 / 请核查) and the words that explain it; classifications: the
review-tier labels and the model that decided

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("flags") as batch:
        batch.add_column(sa.Column("tier", sa.String(), nullable=False, server_default="confirmed"))
        batch.add_column(sa.Column("reasons", sa.JSON(), nullable=False, server_default="{}"))
    with op.batch_alter_table("classifications") as batch:
        batch.add_column(sa.Column("review", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("model_version", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("classifications") as batch:
        batch.drop_column("model_version")
        batch.drop_column("review")
    with op.batch_alter_table("flags") as batch:
        batch.drop_column("reasons")
        batch.drop_column("tier")
