"""broadcasts: scheduled sending, audience, member count and cancellation; indexes of the township morning

Revision ID: 0016
Revises: 0011 (to be re-chained at merge)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.types import UTCDateTime

revision: str = "0016"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("broadcasts") as batch:
        batch.add_column(sa.Column("send_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("audience", sa.String(), nullable=False, server_default=""))
        batch.add_column(sa.Column("members", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("cancelled_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("cancelled_by", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("broadcasts") as batch:
        for name in ("cancelled_by", "cancelled_at", "members", "audience", "send_at"):
            batch.drop_column(name)
