"""flags: partial indexes of the flags nobody judged yet (the digest's 未判 filter and its counts)

Without them a township's "未判" digest counts its unjudged flags by reading every flag of its scope (those
with a verdict are most of a year's flags); with them the count and the page read only unjudged flags, per
scope level as the digest's other indexes (0002).

Revision ID: 0017
Revises: 0013 (re-chained after main merged 0013; renumber if others land first)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNJUDGED = sa.text("verdict IS NULL")
_INDEXES: list[tuple[str, list[str]]] = [
    ("ix_flags_unjudged_sev_id", ["severity", "id"]),
    ("ix_flags_unjudged_county_sev_id", ["county", "severity", "id"]),
    ("ix_flags_unjudged_town_sev_id", ["county", "township", "severity", "id"]),
]


def upgrade() -> None:
    for name, columns in _INDEXES:
        op.create_index(name, "flags", columns, unique=False, sqlite_where=_UNJUDGED, postgresql_where=_UNJUDGED)


def downgrade() -> None:
    for name, _columns in reversed(_INDEXES):
        op.drop_index(name, table_name="flags")
