"""broadcasts: scheduled sending, audience, member count and cancellation; indexes of the township morning

The patrol digest's "unreviewed only" view read every flag of a township's year from the table to keep the
few without a verdict (EXPLAIN ANALYZE at city scale: 714 heap blocks for 59 rows of one severity); partial
indexes over the unreviewed flags alone, one per scope level, give them straight away and stay small.

Revision ID: 0016
Revises: 0011 (to be re-chained at merge)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.types import UTCDateTime

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


UNREVIEWED = [
    ("ix_flags_unreviewed_sev_id", ["severity", "id"]),
    ("ix_flags_unreviewed_county_sev_id", ["county", "severity", "id"]),
    ("ix_flags_unreviewed_town_sev_id", ["county", "township", "severity", "id"]),
]


def upgrade() -> None:
    with op.batch_alter_table("broadcasts") as batch:
        batch.add_column(sa.Column("send_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("audience", sa.String(), nullable=False, server_default=""))
        batch.add_column(sa.Column("members", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("cancelled_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("cancelled_by", sa.String(), nullable=True))
    for name, columns in UNREVIEWED:
        op.create_index(
            name,
            "flags",
            columns,
            postgresql_where=sa.text("verdict IS NULL"),
            sqlite_where=sa.text("verdict IS NULL"),
        )


def downgrade() -> None:
    for name, _ in UNREVIEWED:
        op.drop_index(name, table_name="flags")
    with op.batch_alter_table("broadcasts") as batch:
        for name in ("cancelled_by", "cancelled_at", "members", "audience", "send_at"):
            batch.drop_column(name)
