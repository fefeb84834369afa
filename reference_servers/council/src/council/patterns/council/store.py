"""Where debates are kept: an SQLite file by default, PostgreSQL to share them.

`COUNCIL_DB_URL` names the database: `sqlite:///PATH` (one process, or several on one
machine), or `postgresql://USER:PASSWORD@HOST/DB` (any number of replicas; needs the
`postgres` extra, psycopg 3). Records are the debates as JSON, written once each,
under the debate's id: concurrent debates never overwrite each other, and SQLite waits
for its lock (WAL mode, a busy timeout) instead of failing with "database is locked".

Saving is idempotent. A modern tool call's last round may be sent again — a client
or a proxy that lost the reply, or retried while the first still ran — and is then
the same run again, with the same debate under the same id (`llm.new_id()`): saving
the same record twice, or twice at once, stores it once. A different record under an
id already stored is a `ConflictError`.

    store = open_store("sqlite:////tmp/council.db")
    await store.save(result)
    await store.get(result.id)
"""

from __future__ import annotations

import importlib
import json
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import anyio.to_thread

SUMMARY_FIELDS = ("id", "topic", "winners", "created_at")
SAVE = (
    "insert into debates (id, created_at, record) values ({value}, {value}, {record}) "
    "on conflict (id) do nothing"
)
"""Both databases' statement: a second save of an id changes nothing."""


class ConflictError(Exception):
    """A different record is stored under the id being saved."""

    def __init__(self, record_id: str) -> None:
        super().__init__(
            f"A different debate is already stored under the id {record_id!r}; a "
            "round sent again must give the same debate (see `llm.new_id()`)."
        )


class DebateStore(Protocol):
    async def save(self, record_id: str, created_at: str, record: str) -> None: ...
    async def get(self, record_id: str) -> str | None: ...
    async def summaries(self) -> list[dict[str, Any]]: ...
    async def check(self) -> None:
        """Raise `OSError` when the database cannot be reached."""


def open_store(url: str) -> DebateStore:
    """The store `url` names; raises `ValueError` saying what is wrong with it."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        path = url.removeprefix("sqlite://")
        if not path.startswith("/"):
            raise ValueError(f"{url!r}: give an absolute path, sqlite:////abs/path")
        return SQLiteStore(Path(path))
    if scheme in {"postgresql", "postgres"}:
        return PostgresStore(url)
    raise ValueError(
        f"COUNCIL_DB_URL must start with sqlite:/// or postgresql://; got {scheme!r}"
    )


class SQLiteStore:
    """Debates in an SQLite file, written from a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._prepared = False
        self._preparing = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        with self._preparing:
            if not self._prepared:
                self._prepare()
                self._prepared = True
        return sqlite3.connect(self.path, timeout=30)  # waits for a writer's lock

    def _prepare(self) -> None:
        # WAL mode is kept in the file, so it is set once here, never per connection:
        # `pragma journal_mode` ignores the busy timeout and fails "database is
        # locked" while another connection checkpoints. The retry covers another
        # process preparing the same file at the same moment.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + 30
        with closing(sqlite3.connect(self.path, timeout=30)) as db:
            while True:
                try:
                    db.execute("pragma journal_mode=wal")
                    break
                except sqlite3.OperationalError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            db.execute(
                "create table if not exists debates "
                "(id text primary key, created_at text, record text)"
            )

    async def save(self, record_id: str, created_at: str, record: str) -> None:
        def save() -> str:
            with closing(self._connect()) as db, db:
                db.execute(
                    SAVE.format(value="?", record="?"), (record_id, created_at, record)
                )
                (stored,) = db.execute(
                    "select record from debates where id = ?", (record_id,)
                ).fetchone()
            return str(stored)

        if await anyio.to_thread.run_sync(save) != record:
            raise ConflictError(record_id)

    async def get(self, record_id: str) -> str | None:
        def get() -> str | None:
            with closing(self._connect()) as db:
                row = db.execute(
                    "select record from debates where id = ?", (record_id,)
                ).fetchone()
            return row[0] if row else None

        return await anyio.to_thread.run_sync(get)

    async def summaries(self) -> list[dict[str, Any]]:
        def summaries() -> list[str]:
            with closing(self._connect()) as db:
                rows = db.execute(
                    "select record from debates order by created_at desc, rowid desc"
                ).fetchall()
            return [row[0] for row in rows]

        return [
            _summary(record) for record in await anyio.to_thread.run_sync(summaries)
        ]

    async def check(self) -> None:
        await anyio.to_thread.run_sync(lambda: self._connect().close())


class PostgresStore:
    """Debates in PostgreSQL, shared by every replica (psycopg 3, async)."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self._psycopg = importlib.import_module("psycopg")
        except ImportError:
            raise ValueError(
                "COUNCIL_DB_URL=postgresql://... needs the `postgres` extra: install "
                "'council[postgres]' (in the project: "
                "`uv run --extra postgres council`)."
            ) from None
        self._created = False

    async def _connect(self) -> Any:
        try:
            connection = await self._psycopg.AsyncConnection.connect(
                self.url, connect_timeout=10, autocommit=True
            )
        except self._psycopg.OperationalError as error:
            raise OSError(f"PostgreSQL cannot be reached: {error}") from None
        if not self._created:
            await connection.execute(
                "create table if not exists debates (seq bigserial, id text primary "
                "key, created_at text not null, record jsonb not null)"
            )
            self._created = True
        return connection

    async def save(self, record_id: str, created_at: str, record: str) -> None:
        async with await self._connect() as db:
            await db.execute(
                SAVE.format(value="%s", record="%s::jsonb"),
                (record_id, created_at, record),
            )
            # jsonb keeps the record's meaning, not its text: compare it as jsonb.
            cursor = await db.execute(
                "select record = %s::jsonb from debates where id = %s",
                (record, record_id),
            )
            (same,) = await cursor.fetchone()
        if not same:
            raise ConflictError(record_id)

    async def get(self, record_id: str) -> str | None:
        async with await self._connect() as db:
            cursor = await db.execute(
                "select record::text from debates where id = %s", (record_id,)
            )
            row = await cursor.fetchone()
        return row[0] if row else None

    async def summaries(self) -> list[dict[str, Any]]:
        async with await self._connect() as db:
            cursor = await db.execute(
                "select record::text from debates order by created_at desc, seq desc"
            )
            rows = await cursor.fetchall()
        return [_summary(row[0]) for row in rows]

    async def check(self) -> None:
        async with await self._connect() as db:
            await db.execute("select 1")


def _summary(record: str) -> dict[str, Any]:
    fields = json.loads(record)
    return {key: fields[key] for key in SUMMARY_FIELDS}
