"""The operator's model, bounded per user: tokens a day, and tool calls at once.

When the server-side LLM answers, the operator pays. `MCP_SAMPLING_BUDGET_TOKENS`
gives each user (principal, see `_identity.py`) that many tokens a day (UTC), as the
provider reports them; `MCP_MAX_CONCURRENT_CALLS` bounds the tool calls one user has
running on it at once. The counts live in `MCP_DB_URL`, the database replicas share,
so three replicas enforce one budget. A client's own LLM is never counted: the client
pays for it.

A request is admitted only if it cannot go past the budget: its worst case — a token
for every byte it sends, plus its `maxTokens` (`worst_case`) — is reserved first,
atomically, and the tokens the provider reports replace the reservation when the
reply comes (the worst case again when it reports none).
"""

from __future__ import annotations

import datetime
import math
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastmcp.exceptions import ToolError
from mcp.types import CreateMessageRequestParams

from ._database import Connection, Database
from ._errors import LLMError
from ._identity import Principal
from ._messages import Reply
from ._tracing import USAGE_KEY

TABLES = (
    (
        "create table if not exists budget_tokens (principal text not null, day text "
        "not null, used bigint not null, reserved bigint not null, "
        "primary key (principal, day))"
    ),
    (
        "create table if not exists calls_running (call text primary key, principal "
        "text not null, until double precision not null)"
    ),
)


class BudgetExceededError(LLMError):
    """The user's budget of the server-side LLM cannot pay for the request."""


class TooManyCallsError(ToolError):
    """The user has as many tool calls running on the server-side LLM as allowed."""


@dataclass(frozen=True)
class Reservation:
    principal: str
    day: str
    tokens: int


class Usage:
    """The per-user limits of one server, kept in `database`."""

    def __init__(
        self,
        database: Database,
        *,
        budget_tokens: int | None,
        max_calls: int | None,
        call_deadline: float,
    ) -> None:
        self.database = database
        self.budget_tokens = budget_tokens
        self.max_calls = max_calls
        self.call_deadline = call_deadline
        self._created = False

    def _tables(self, db: Connection) -> None:
        if not self._created:
            self.database.create(db, *TABLES)
            self._created = True

    async def reserve(
        self, principal: Principal, request: CreateMessageRequestParams
    ) -> Reservation | None:
        """Reserve the request's worst case, or raise `BudgetExceededError` saying
        why and when the budget resets; None when there is no budget."""
        if self.budget_tokens is None:
            return None
        budget, sql = self.budget_tokens, self.database.sql
        reservation = Reservation(principal.key, _today(), worst_case(request))

        def reserve(db: Connection) -> int | None:
            self._tables(db)
            with self.database.exclusive(db, principal.key):
                db.execute(
                    sql(
                        "insert into budget_tokens values (?, ?, 0, 0) "
                        "on conflict (principal, day) do nothing"
                    ),
                    (reservation.principal, reservation.day),
                )
                (used, reserved) = db.execute(
                    sql(
                        "select used, reserved from budget_tokens "
                        "where principal = ? and day = ?"
                    ),
                    (reservation.principal, reservation.day),
                ).fetchone()
                if used + reserved + reservation.tokens > budget:
                    return int(used + reserved)
                db.execute(
                    sql(
                        "update budget_tokens set reserved = reserved + ? "
                        "where principal = ? and day = ?"
                    ),
                    (reservation.tokens, reservation.principal, reservation.day),
                )
                return None

        spent = await self.database.run(reserve)
        if spent is not None:
            raise BudgetExceededError(
                f"Today's budget of the server's LLM is spent: {spent:,} of "
                f"{budget:,} tokens (MCP_SAMPLING_BUDGET_TOKENS) are used or held, and "
                f"this request could take {reservation.tokens:,} more. It resets at "
                f"00:00 UTC, in {_until_midnight()}."
            )
        return reservation

    async def settle(
        self, reservation: Reservation | None, reply: Reply | None
    ) -> None:
        """Count what the reply used instead of its reservation (nothing if it
        failed)."""
        if reservation is None:
            return
        used = 0 if reply is None else reported_tokens(reply, reservation.tokens)
        await self.database.run(
            lambda db: db.execute(
                self.database.sql(
                    "update budget_tokens set reserved = reserved - ?, used = used + ? "
                    "where principal = ? and day = ?"
                ),
                (reservation.tokens, used, reservation.principal, reservation.day),
            )
        )

    async def used_today(self, principal: Principal) -> int:
        """Tokens `principal` has used today (reservations not included)."""

        def used(db: Connection) -> int:
            self._tables(db)
            row = db.execute(
                self.database.sql(
                    "select used from budget_tokens where principal = ? and day = ?"
                ),
                (principal.key, _today()),
            ).fetchone()
            return int(row[0]) if row else 0

        return await self.database.run(used)

    @asynccontextmanager
    async def running(self, principal: Principal) -> AsyncIterator[None]:
        """One tool call of `principal`'s, counted while it runs; raises
        `TooManyCallsError` when they already have `max_calls` running."""
        if self.max_calls is None:
            yield
            return
        call, sql = secrets.token_hex(8), self.database.sql
        limit = self.max_calls

        def start(db: Connection) -> bool:
            self._tables(db)
            with self.database.exclusive(db, principal.key):
                # A call whose replica died is forgotten after the longest a call
                # may take (MCP_TOOL_DEADLINE).
                db.execute(
                    sql("delete from calls_running where until < ?"), (time.time(),)
                )
                (running,) = db.execute(
                    sql("select count(*) from calls_running where principal = ?"),
                    (principal.key,),
                ).fetchone()
                if running >= limit:
                    return False
                db.execute(
                    sql("insert into calls_running values (?, ?, ?)"),
                    (call, principal.key, time.time() + self.call_deadline),
                )
                return True

        if not await self.database.run(start):
            raise TooManyCallsError(
                f"You already have {limit} tool call(s) running on the server's LLM, "
                f"as many as one user may (MCP_MAX_CONCURRENT_CALLS={limit}); try "
                "again when one has finished."
            )
        try:
            yield
        finally:
            await self.database.run(
                lambda db: db.execute(
                    sql("delete from calls_running where call = ?"), (call,)
                )
            )


def worst_case(request: CreateMessageRequestParams) -> int:
    """The most tokens a request may use: what it sends (messages, system prompt,
    tools), at one token a byte of its JSON — a token covers at least a byte with
    byte-level tokenizers, so no provider counts more — and its `maxTokens`.

    >>> from mcp.types import SamplingMessage, TextContent
    >>> hello = SamplingMessage(role="user", content=TextContent(type="text", text="Hi"))
    >>> worst_case(CreateMessageRequestParams(messages=[hello], max_tokens=100))
    168
    """
    sent = request.model_dump_json(
        include={"messages", "system_prompt", "tools"}, exclude_none=True
    )
    return len(sent.encode()) + request.max_tokens


def reported_tokens(reply: Reply, worst: int) -> int:
    """The tokens the provider reported for `reply`, else `worst`."""
    usage = (reply.meta or {}).get(USAGE_KEY) or {}
    counts = [usage.get(name) for name in ("input_tokens", "output_tokens")]
    if all(isinstance(count, int) for count in counts):
        return sum(count for count in counts if isinstance(count, int))
    return worst


def _today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


def _until_midnight() -> str:
    """How long until the next 00:00 UTC, in hours and minutes."""
    now = datetime.datetime.now(datetime.timezone.utc)
    midnight = (now + datetime.timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    minutes = math.ceil((midnight - now).total_seconds() / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"
