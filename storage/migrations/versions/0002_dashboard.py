"""dashboard: server-side sessions and the indexes the digest, board and statistics pages need

Revision ID: 0002
Revises: 0001
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES: list[tuple[str, str, list[str]]] = [
    # patrol digest: newest first within one severity, per scope level
    ("ix_dash_flags_sev_id", "flags", ["severity", "id"]),
    ("ix_dash_flags_county_sev_id", "flags", ["county", "severity", "id"]),
    ("ix_dash_flags_town_sev_id", "flags", ["county", "township", "severity", "id"]),
    ("ix_dash_flags_village_sev_id", "flags", ["county", "township", "village", "severity", "id"]),
    # ticket board and statistics: newest first per scope level
    ("ix_dash_tickets_county_opened", "tickets", ["county", "opened_at"]),
    ("ix_dash_tickets_town_opened", "tickets", ["county", "township", "opened_at"]),
    ("ix_dash_tickets_village_opened", "tickets", ["county", "township", "village", "opened_at"]),
    # login throttling and the audit page
    ("ix_dash_audit_user_at", "audit_log", ["username", "at"]),
]


def upgrade() -> None:
    op.create_table('dashboard_sessions',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('username', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('csrf', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', storage.types.UTCDateTime(), nullable=False),
    sa.Column('expires_at', storage.types.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('dashboard_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dashboard_sessions_expires_at'), ['expires_at'], unique=False)
    for name, table, columns in _INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _columns in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
    with op.batch_alter_table('dashboard_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dashboard_sessions_expires_at'))
    op.drop_table('dashboard_sessions')
