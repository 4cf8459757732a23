"""message_search: the search index of messages (FTS5 on SQLite, a tsvector with a GIN index on PostgreSQL),
filled for the messages already stored; an index of ticket_messages by message

Revision ID: 0014
Revises: 0011 (to be re-chained at merge)
"""

import sys
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.repos.search import index_rows

revision: str = "0014"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000
BACKFILL_AT_MOST = 500_000
"""A bigger database is not filled here (about 2,600 messages a second: a city's 10 M would hold every
process's start-up for an hour); ``villagewatch db reindex-search`` fills it while the service runs, and new
messages are indexed as they are stored either way."""


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    if dialect == "postgresql":
        op.execute(
            "CREATE TABLE message_search ("
            " message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,"
            " at TIMESTAMP WITHOUT TIME ZONE NOT NULL,"  # the message's (UTC), to sort hits inside this table
            " terms TSVECTOR NOT NULL)"
        )
        insert = sa.text(
            "INSERT INTO message_search (message_id, at, terms) VALUES (:id, :at, CAST(:terms AS tsvector))"
        )
    else:
        # Terms are separated by spaces; unicode61 keeps each term whole (Chinese characters are letters to it).
        op.execute("CREATE VIRTUAL TABLE message_search USING fts5(terms, tokenize = 'unicode61')")
        insert = sa.text("INSERT INTO message_search (rowid, terms) VALUES (:id, :terms)")
    # Backfill before the GIN index exists (one build instead of millions of index updates).
    stored = bind.execute(sa.text("SELECT count(*) FROM messages")).scalar_one()
    last = 0
    if stored > BACKFILL_AT_MOST:
        print(
            f"搜索索引:已有 {stored} 条消息,迁移不为旧消息建索引;请在服务运行时执行 villagewatch db reindex-search",
            file=sys.stderr,
        )
    while stored <= BACKFILL_AT_MOST:
        rows = bind.execute(
            sa.text(
                "SELECT id, text, county, township, village, at FROM messages WHERE id > :last ORDER BY id LIMIT :n"
            ),
            {"last": last, "n": BATCH},
        ).all()
        if not rows:
            break
        # the time only places a PostgreSQL row in its week (SQLite returns it as text; FTS5 has no week term)
        values = [(r[0], r[1] or "", r[2] or "", r[3] or "", r[4] or "", r[5]) for r in rows]
        bind.execute(insert, index_rows(dialect, values))
        last = rows[-1][0]
    if dialect == "postgresql":
        op.execute("CREATE INDEX ix_message_search_terms ON message_search USING gin (terms)")
    # which ticket a hit belongs to, and whether a cadre may see it, for each hit of a page
    op.create_index("ix_ticket_messages_message_id", "ticket_messages", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_ticket_messages_message_id", table_name="ticket_messages")
    op.execute("DROP TABLE IF EXISTS message_search")
