"""Where debates are kept: an SQLite file by default, PostgreSQL to share them.

`COUNCIL_DB_URL` names the database: `sqlite:///PATH` (one process, or several on one
machine), or `postgresql://USER:PASSWORD@HOST/DB` (any number of replicas; needs the
`postgres` extra). Records are the debates as JSON, written once each, under the
debate's id and its owner: whoever ran it (see `core.current_principal`) sees it, and
nobody else.

Saving is idempotent. A modern tool call's last round may be sent again — a client
or a proxy that lost the reply, or retried while the first still ran — and is then
the same run again, with the same debate under the same id (`llm.new_id()`): saving
the same record twice, or twice at once, stores it once. A different record under an
id already stored is a `ConflictError`.

Debates stored before they had owners (a `debates` table without the column) are
moved aside to `debates_before_owners` on first use and copied in as the local
user's, the one user those servers knew; nothing is dropped.

    store = DebateStore(open_database("sqlite:////tmp/council.db", "COUNCIL_DB_URL"))
    await store.save(result.id, owner, result.created_at, record)
    await store.get(result.id, owner)
"""

from __future__ import annotations

import json
from typing import Any

from ...core import LOCAL_USER, Connection, Database

SUMMARY_FIELDS = ("id", "topic", "winners", "created_at")
TABLE = {
    # The insertion order breaks ties between debates of the same second.
    "sqlite": "create table if not exists debates (seq integer primary key "
    "autoincrement, id text unique not null, owner text, created_at text, record text)",
    "postgresql": "create table if not exists debates (seq bigserial primary key, "
    "id text unique not null, owner text, created_at text, record text)",
}
COLUMNS = {
    "sqlite": "select name from pragma_table_info('debates')",
    "postgresql": "select column_name from information_schema.columns "
    "where table_schema = current_schema() and table_name = 'debates'",
}
# `where true`: SQLite would read `on conflict` as a join's `on` without it.
COPY_BEFORE_OWNERS = (
    "insert into debates (id, owner, created_at, record) "
    "select id, ?, created_at, cast(record as text) from debates_before_owners "
    "where true order by created_at on conflict (id) do nothing"
)


class ConflictError(Exception):
    """A different record is stored under the id being saved."""

    def __init__(self, record_id: str) -> None:
        super().__init__(
            f"A different debate is already stored under the id {record_id!r}; a "
            "round sent again must give the same debate (see `llm.new_id()`)."
        )


class DebateStore:
    """The debates of one database, each visible to its owner only."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._created = False

    def _table(self, db: Connection) -> None:
        if self._created:
            return
        dialect = self.database.dialect
        with self.database.exclusive(db, "create tables"):
            columns = {row[0] for row in db.execute(COLUMNS[dialect]).fetchall()}
            before_owners = bool(columns) and "owner" not in columns
            if before_owners:
                db.execute("alter table debates rename to debates_before_owners")
            db.execute(TABLE[dialect])
            if before_owners:
                db.execute(self.database.sql(COPY_BEFORE_OWNERS), (LOCAL_USER.key,))
        self._created = True

    async def save(
        self, record_id: str, owner: str, created_at: str, record: str
    ) -> None:
        sql = self.database.sql

        def save(db: Connection) -> str:
            self._table(db)
            db.execute(
                sql(
                    "insert into debates (id, owner, created_at, record) "
                    "values (?, ?, ?, ?) on conflict (id) do nothing"
                ),
                (record_id, owner, created_at, record),
            )
            (stored,) = db.execute(
                sql("select record from debates where id = ?"), (record_id,)
            ).fetchone()
            return str(stored)

        if await self.database.run(save) != record:
            raise ConflictError(record_id)

    async def get(self, record_id: str, owner: str) -> str | None:
        sql = self.database.sql

        def get(db: Connection) -> str | None:
            self._table(db)
            row = db.execute(
                sql("select record from debates where id = ? and owner = ?"),
                (record_id, owner),
            ).fetchone()
            return str(row[0]) if row else None

        return await self.database.run(get)

    async def summaries(self, owner: str) -> list[dict[str, Any]]:
        sql = self.database.sql

        def summaries(db: Connection) -> list[str]:
            self._table(db)
            rows = db.execute(
                sql(
                    "select record from debates where owner = ? "
                    "order by created_at desc, seq desc"
                ),
                (owner,),
            ).fetchall()
            return [str(row[0]) for row in rows]

        return [_summary(record) for record in await self.database.run(summaries)]


def _summary(record: str) -> dict[str, Any]:
    fields = json.loads(record)
    return {key: fields[key] for key in SUMMARY_FIELDS}
