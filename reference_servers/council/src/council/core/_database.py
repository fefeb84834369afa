"""A database the server keeps shared state in: SQLite by default, PostgreSQL to share
it between replicas (the `postgres` extra, psycopg 3).

`open_database(url)` gives a `Database`; `await database.run(work)` runs
`work(connection)` in a worker thread on a connection of its own, in autocommit, so
blocking calls never hold up the event loop. SQL is written once with `?` for values
(`Database.sql` makes it `%s` for PostgreSQL). `exclusive(connection, key)` is a
transaction no other writer of `key` runs beside (SQLite: the file's write lock;
PostgreSQL: an advisory lock), for a check-then-write that must count right across
replicas. SQLite waits for a lock (WAL mode, a busy timeout) instead of failing with
"database is locked".

    database = open_database("sqlite:////tmp/example.db")
    await database.run(lambda db: db.execute("select 1").fetchone())
"""

from __future__ import annotations

import contextlib
import importlib
import sqlite3
import threading
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

import anyio.to_thread

T = TypeVar("T")


class Connection(Protocol):
    """What `run`'s work gets: a DB-API connection, SQLite's or psycopg's."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...


class Database(ABC):
    """One database at `url`; see the module's docstring."""

    dialect: Literal["sqlite", "postgresql"]
    location: str
    """Where it is, for a person (never a password)."""

    def sql(self, statement: str) -> str:
        """`statement` with `?` placeholders, in this database's style."""
        return statement if self.dialect == "sqlite" else statement.replace("?", "%s")

    async def run(self, work: Callable[[Connection], T]) -> T:
        def run() -> T:
            with closing(self._connect()) as connection:
                return work(connection)

        return await anyio.to_thread.run_sync(run)

    async def check(self) -> None:
        """Raise `OSError` when the database cannot be reached."""
        await self.run(lambda connection: connection.execute("select 1"))

    def create(self, connection: Connection, *statements: str) -> None:
        """Run `create table if not exists` statements, one replica at a time:
        PostgreSQL refuses the same table made twice at once ("duplicate key value
        violates unique constraint pg_type_typname_nsp_index")."""
        with self.exclusive(connection, "create tables"):
            for statement in statements:
                connection.execute(statement)

    @abstractmethod
    def exclusive(
        self, connection: Connection, key: str
    ) -> contextlib.AbstractContextManager[None]:
        """A transaction that no other `exclusive(..., key)` runs beside."""

    @abstractmethod
    def _connect(self) -> Any: ...


def open_database(url: str, setting: str) -> Database:
    """The database `url` names; raises `ValueError`, naming `setting`, when it cannot
    be one."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        path = url.removeprefix("sqlite://")
        if not path.startswith("/"):
            raise ValueError(f"{setting}: give an absolute path, sqlite:////abs/path")
        return SQLite(Path("/" + path.lstrip("/")))  # sqlite:////abs has four slashes
    if scheme in {"postgresql", "postgres"}:
        return PostgreSQL(url, setting)
    raise ValueError(
        f"{setting} must start with sqlite:/// or postgresql://; got {scheme!r}"
    )


class SQLite(Database):
    """A file, for one machine: WAL, so readers never wait for the writer."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = f"the SQLite file {path}"
        self._prepared = False
        self._preparing = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        with self._preparing:
            if not self._prepared:
                self._prepare()
                self._prepared = True
        # isolation_level=None: autocommit, as on PostgreSQL; `exclusive` begins.
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def _prepare(self) -> None:
        # WAL mode is kept in the file, so it is set once here, never per connection:
        # `pragma journal_mode` ignores the busy timeout and fails "database is
        # locked" while another connection checkpoints. The retry covers another
        # process preparing the same file at the same moment.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + 30
        with closing(sqlite3.connect(self.path, timeout=30)) as connection:
            while not _wal(connection):
                if time.monotonic() > deadline:
                    raise sqlite3.OperationalError(f"{self.path} stays locked")
                time.sleep(0.05)

    @contextmanager
    def exclusive(self, connection: Connection, key: str) -> Iterator[None]:
        connection.execute("begin immediate")  # the write lock, held to the end
        try:
            yield
        except BaseException:
            connection.execute("rollback")
            raise
        connection.execute("commit")


def _wal(connection: sqlite3.Connection) -> bool:
    """Put the file in WAL mode; False while another connection holds it locked."""
    try:
        connection.execute("pragma journal_mode=wal")
    except sqlite3.OperationalError:
        return False
    return True


class PostgreSQL(Database):
    """A server every replica shares."""

    dialect = "postgresql"

    def __init__(self, url: str, setting: str) -> None:
        self.url = url
        try:
            self._psycopg = importlib.import_module("psycopg")
        except ImportError:
            raise ValueError(
                f"{setting}=postgresql://... needs the `postgres` extra: install "
                "'council[postgres]' (in the project: "
                "`uv run --extra postgres council`)."
            ) from None
        parts = urlsplit(url)
        self.location = (
            f"PostgreSQL at {parts.hostname}:{parts.port or 5432}{parts.path}"
        )

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(self.url, connect_timeout=10, autocommit=True)
        except self._psycopg.OperationalError as error:
            raise OSError(f"PostgreSQL cannot be reached: {error}") from None

    @contextmanager
    def exclusive(self, connection: Any, key: str) -> Iterator[None]:
        with connection.transaction():
            lock = zlib.crc32(key.encode())  # an advisory lock is a number
            connection.execute("select pg_advisory_xact_lock(%s)", (lock,))
            yield
