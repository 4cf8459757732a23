"""job_runs: a claim is a lease (owner, lease_until) until the run is done (done_at)

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job_runs") as batch:
        batch.add_column(sa.Column("owner", sa.String(), nullable=True))
        batch.add_column(sa.Column("lease_until", storage.types.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("done_at", storage.types.UTCDateTime(), nullable=True))
    # Runs claimed before leases existed are taken as done: that is what they were taken for then.
    op.execute("UPDATE job_runs SET done_at = at")


def downgrade() -> None:
    with op.batch_alter_table("job_runs") as batch:
        batch.drop_column("done_at")
        batch.drop_column("lease_until")
        batch.drop_column("owner")
