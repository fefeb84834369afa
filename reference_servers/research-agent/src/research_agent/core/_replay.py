"""The modern era (MCP 2026-07-28): sampling by MRTR, through deterministic replay.

A modern client cannot be sent requests while a tool call is open. Instead the tool
call returns an `InputRequiredResult` with the sampling requests it needs; the client
answers them and calls the tool again with the answers and the `requestState` it was
given. The tool's code stays as it is written for the legacy era: `ReplayMiddleware`
re-runs it from the top on every round, and the gateway makes each run the same run.

- Every sampling request has a key made from its content (and how many identical
  requests came before it). Answered keys come back at once from the journal, which
  travels in `requestState` (sealed by the SDK: `MCP_REQUEST_STATE_KEY`).
- Answers reach the gateway as the client sent them (`RawAnswers` takes them off the
  request before the SDK reads it) and are read by `check_reply`, like a pushed answer:
  a malformed one is the same clear `LLMError` on both eras. The journal keeps what the
  check made of an answer, and of a refused one only the refusal.
- An unanswered request parks its task. When every task of the tool waits — parked,
  or past the `MCP_SAMPLING_MAX_CONCURRENCY` requests one round may carry — the round
  ends, and one `InputRequiredResult` carries every parked request.
- What would differ between runs comes from the round: nonces, a seeded `random`, a
  frozen clock and ids come from a seed kept in the state; side effects run once, in
  `step`, and their results travel in the state too. Progress already reported is
  not reported again, and a round's progress goes out with its answer: nothing of
  a round's response leaves before the round is over, so a proxy may retry a round
  whose replica died before answering (`deploy/haproxy.cfg`).
- A round may arrive twice, or twice at once (a client or a proxy that lost the
  reply): it is the same run again, so it asks for the same requests and, in the
  last round, returns the same result. Effects after the last answer (a record
  stored) run again too: they must be idempotent, keyed by `llm.new_id()`.
- A run that asks for something the journal cannot explain — a request instead of
  one answered before — ends the tool call at once with an error naming the request:
  the tool is not deterministic. Never a misapplied answer, never a spin to the cap.
"""

from __future__ import annotations

import base64
import contextvars
import hashlib
import hmac
import json
import random
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

import anyio
from fastmcp.exceptions import ToolError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools.base import ToolResult
from mcp.server.context import CallNext as ServerCallNext
from mcp.server.context import HandlerResult, ServerRequestContext
from mcp.types import (
    CallToolRequestParams,
    CreateMessageRequest,
    CreateMessageRequestParams,
    InputRequest,
    InputRequiredResult,
)
from mcp.types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import TypeAdapter

from ._errors import SamplingFailedError
from ._identity import current_principal
from ._messages import Reply, quoted
from ._settings import GatewaySettings

T = TypeVar("T")
STATE_VERSION = 3

_current: contextvars.ContextVar[Round | None] = contextvars.ContextVar(
    "replay_round", default=None
)
_raw_answers: contextvars.ContextVar[dict[str, object] | None] = contextvars.ContextVar(
    "raw_answers", default=None
)


def current_round() -> Round | None:
    """The round of the modern tool call running here, or None (legacy era)."""
    return _current.get()


def is_modern(protocol_version: str | None) -> bool:
    return protocol_version in MODERN_PROTOCOL_VERSIONS


class _Divergence(Exception):
    """The run asked for something its journal cannot explain."""


class Round:
    """One `tools/call` of a modern tool call: the journal so far, and what parks."""

    def __init__(
        self, state: dict[str, Any], answers: dict[str, Any], settings: GatewaySettings
    ) -> None:
        self.principal: str = state["principal"]
        self.seed = base64.b64decode(state["seed"])
        self.clock: float = state["clock"]
        self.rounds: int = state["rounds"] + 1
        self.progress_sent: int = state["progress"]
        self.journal: dict[str, Any] = state["journal"]
        self.refused: dict[str, str] = state["refused"]
        """Each refused answer's refusal: every later run gets the same failure."""
        asked = set(state["asked"])
        self._arrived = {key for key in answers if key in asked}
        for key in self._arrived:  # only what the last round asked for, as it came
            self.journal[key] = answers[key]
        self.random = random.Random(self.seed)
        self._settings = settings
        self._used: set[str] = set()
        self._occurrences: Counter[str] = Counter()
        self._ids = 0
        self.progress = 0
        self.held_progress: list[tuple[float, float | None, str | None]] = []
        """Progress reported in this round, sent with its answer."""
        self.parked: dict[str, CreateMessageRequest] = {}
        self._runnable = 1  # the tool body itself
        self.all_waiting = anyio.Event()

    @classmethod
    def first(cls, settings: GatewaySettings, principal: str) -> Round:
        state = {
            "principal": principal,
            "seed": base64.b64encode(secrets.token_bytes(16)).decode(),
            "clock": time.time(),
            "rounds": 0,
            "progress": 0,
            "journal": {},
            "refused": {},
            "asked": [],
            "asked_at_ms": _now_ms(),
        }
        return cls(state, {}, settings)

    @classmethod
    def resumed(
        cls,
        sealed: str | None,
        answers: dict[str, object] | None,
        settings: GatewaySettings,
        principal: str,
    ) -> Round:
        """The round `sealed` (the state a client echoed) continues, with `answers`;
        the first round when there is none. A state is `principal`'s alone."""
        if not sealed:
            return cls.first(settings, principal)
        state = json.loads(sealed)
        if state.get("v") != STATE_VERSION:
            raise ToolError(
                "This tool call's requestState comes from another version of the "
                "server; call the tool again from the start."
            )
        if state["principal"] != principal:
            raise ToolError(
                "This tool call's requestState was issued to another user, so it "
                "cannot continue a call of yours: call the tool again from the start."
            )
        late = (_now_ms() - state["asked_at_ms"]) / 1000
        if late > settings.timeout:
            raise ToolError(
                f"The client's LLM did not answer within {settings.timeout:g} s "
                f"(MCP_SAMPLING_TIMEOUT): its answers came {late:.1f} s after the "
                "requests; call the tool again."
            )
        return cls(state, answers or {}, settings)

    # What would differ between runs, made the same.

    def key(self, kind: str, content: object) -> str:
        """The key of a request or a step: its content, and how many came before."""
        digest = _fingerprint(kind, content)
        self._occurrences[digest] += 1
        return f"{kind}-{digest}-{self._occurrences[digest]}"

    def nonce(self, key: str) -> str:
        """The request's nonce: unguessable without the seed, the same on every run."""
        return hmac.new(self.seed, key.encode(), hashlib.sha256).hexdigest()[:32]

    def new_id(self) -> str:
        self._ids += 1
        return hmac.new(self.seed, f"id-{self._ids}".encode(), "sha256").hexdigest()[
            :12
        ]

    # Requests and steps.

    def answered(self, key: str) -> bool:
        """Whether the answer to `key` came, in this round or an earlier one."""
        return key in self.journal or key in self.refused

    def reply(self, key: str, check: Callable[[object], Reply]) -> Reply:
        """The answer to `key`, as `check` (the gateway's `check_reply`) reads it.

        An answer is read in the round it arrives: the journal keeps what the check
        made of it, and a refused one only its refusal, so a hostile answer weighs
        nothing in the state and every later run fails the same way.
        """
        self._used.add(key)
        if key in self.refused:
            raise SamplingFailedError(self.refused[key])
        try:
            reply = check(self.journal[key])
        except SamplingFailedError as error:
            del self.journal[key]
            self.refused[key] = str(error)
            raise
        if key in self._arrived:
            self.journal[key] = reply.model_dump(
                mode="json", by_alias=True, exclude_none=True
            )
        return reply

    def arrived(self, key: str) -> bool:
        """Whether the answer to `key` came with this round."""
        return key in self._arrived

    async def park(self, key: str, params: CreateMessageRequestParams) -> Reply:
        """Wait for the answer, which only the next round brings: end this task."""
        if len(self.parked) < self._settings.max_concurrency:
            self.parked[key] = CreateMessageRequest(params=params)
        await self._wait()
        raise AssertionError("a parked request never resumes")  # pragma: no cover

    async def step(
        self,
        name: str,
        function: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kind: Any,
    ) -> T:
        key = self.key("step", [name, repr(args)])
        adapter: TypeAdapter[T] = TypeAdapter(kind)
        if key in self.journal:
            self._used.add(key)
            return adapter.validate_python(self.journal[key])
        value = await function(*args)
        self.journal[key] = adapter.dump_python(value, mode="json")
        self._used.add(key)
        return value

    # Which tasks still run: `LLM.map` lends its slot to its children.

    def spawn(self, children: int) -> None:
        self._runnable += children - 1

    def child_done(self, last: bool) -> None:
        if not last:  # the last child hands the slot back to the caller
            self._leave()

    async def _wait(self) -> None:
        self._leave()
        await anyio.sleep_forever()

    def _leave(self) -> None:
        self._runnable -= 1
        if self._runnable <= 0:
            self.all_waiting.set()

    # The end of the round.

    def check_replayed(self) -> None:
        """Raise `_Divergence` unless this run asked again for all it asked before."""
        forgotten = [
            key for key in [*self.journal, *self.refused] if key not in self._used
        ]
        if forgotten:
            raise _Divergence(forgotten)

    def state(self) -> str:
        state = json.dumps(
            {
                "v": STATE_VERSION,
                "principal": self.principal,
                "seed": base64.b64encode(self.seed).decode(),
                "clock": self.clock,
                "rounds": self.rounds,
                "progress": max(self.progress, self.progress_sent),
                "journal": self.journal,
                "refused": self.refused,
                "asked": list(self.parked),
                "asked_at_ms": _now_ms(),
            },
            separators=(",", ":"),
        )
        if len(state) > self._settings.max_state_bytes:
            raise ToolError(
                f"This tool call's state grew to {len(state):,} bytes, more than "
                f"{self._settings.max_state_bytes:,} (MCP_SAMPLING_MAX_STATE_BYTES)."
            )
        return state


def _now_ms() -> int:
    """The time in whole milliseconds: a state's size must not depend on how many
    digits a float needs."""
    return int(time.time() * 1000)


class RawAnswers:
    """Takes a modern tool call's `inputResponses` off the request before the SDK
    reads it, so that they reach the gateway as the client sent them.

    The SDK would refuse the whole round for one malformed answer (-32602 "Invalid
    request parameters"), or read a tool call sent to a request without tools into a
    shape the gateway could only fail on with pydantic's dump; the gateway reads
    every answer itself (`check_reply`), as it reads a pushed one. An SDK middleware:
    it runs before the request's parameters are validated, where FastMCP's cannot.
    """

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: ServerCallNext
    ) -> HandlerResult:
        params = ctx.params
        answers = (
            params.get("inputResponses")
            if ctx.method == "tools/call" and isinstance(params, Mapping)
            else None
        )
        if not isinstance(answers, Mapping):
            return await call_next(ctx)
        assert params is not None
        token = _raw_answers.set(dict(answers))
        try:
            unread = {k: v for k, v in params.items() if k != "inputResponses"}
            return await call_next(replace(ctx, params=unread))
        finally:
            _raw_answers.reset(token)


def _fingerprint(kind: str, content: object) -> str:
    """A hash of `content` (JSON values), the same for equal values whatever their
    keys' order. Strings go into the hash as they are, with their length: every round
    keys the requests of all rounds before it again, and escaping their documents for
    JSON first would cost five times the hashing.

    >>> _fingerprint("sample", {"a": ["x", 1]}) == _fingerprint("sample", {"a": ["x", 1]})
    True
    >>> _fingerprint("sample", {"a": "xy"}) == _fingerprint("sample", {"a": ["x", "y"]})
    False
    """
    hashed = hashlib.sha256(kind.encode())

    def feed(value: object) -> None:
        if isinstance(value, str):
            data = value.encode("utf-8", "surrogatepass")
            hashed.update(b"s%d:" % len(data))
            hashed.update(data)
        elif isinstance(value, dict):
            hashed.update(b"d%d:" % len(value))
            for name in sorted(value):
                feed(str(name))
                feed(value[name])
        elif isinstance(value, (list, tuple)):
            hashed.update(b"l%d:" % len(value))
            for item in value:
                feed(item)
        else:  # a number, a boolean or null
            hashed.update(b"v" + json.dumps(value).encode() + b";")

    feed(content)
    return hashed.hexdigest()[:24]


class ReplayMiddleware(Middleware):
    """Runs a modern tool call round by round (see the module's docstring)."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._settings = settings

    async def on_call_tool(  # type: ignore[override]  # FastMCP's type predates MRTR
        self,
        context: MiddlewareContext[CallToolRequestParams],
        call_next: CallNext[CallToolRequestParams, ToolResult],
    ) -> ToolResult | InputRequiredResult:
        ctx = context.fastmcp_context
        request = ctx.request_context if ctx is not None else None
        if ctx is None or request is None or not is_modern(request.protocol_version):
            return await call_next(context)
        round_ = Round.resumed(
            ctx.request_state,
            _raw_answers.get(),
            self._settings,
            current_principal().key,
        )
        if round_.rounds > self._settings.max_rounds:
            raise ToolError(
                f"{context.message.name} did not finish within "
                f"{self._settings.max_rounds} rounds (MCP_SAMPLING_MAX_ROUNDS)."
            )
        outcome: list[ToolResult] = []
        failure: list[Exception] = []
        token = _current.set(round_)
        try:
            async with anyio.create_task_group() as group:

                async def run() -> None:
                    try:
                        outcome.append(await call_next(context))
                    except Exception as error:  # noqa: BLE001 - raised below, as itself
                        failure.append(error)
                    group.cancel_scope.cancel()

                async def end_when_all_wait() -> None:
                    await round_.all_waiting.wait()
                    group.cancel_scope.cancel()

                group.start_soon(run)
                group.start_soon(end_when_all_wait)
        finally:
            _current.reset(token)
        for progress in round_.held_progress:
            await ctx.report_progress(*progress)
        if failure:
            raise failure[0]
        try:
            round_.check_replayed()
        except _Divergence:
            raise ToolError(_not_deterministic(context.message.name, round_)) from None
        if outcome:
            return outcome[0]
        return InputRequiredResult(
            input_requests=dict[str, InputRequest](round_.parked),
            request_state=round_.state(),
        )


def _not_deterministic(tool: str, round_: Round) -> str:
    asked = next(iter(round_.parked.values()), None)
    what = _describe(asked.params) if asked else "nothing new"
    return (
        f"{tool} is not deterministic: on replay it asked for {what}, which no earlier "
        "round asked for, and did not ask again for what was answered. Draw "
        "randomness from llm.random, the time from llm.now(), ids from llm.new_id(), "
        "and read the outside world through llm.step(...)."
    )


def _describe(params: CreateMessageRequestParams) -> str:
    """A request, as a person finds it in their code: the words of its last message."""
    last = params.messages[-1].content_as_list if params.messages else []
    lines = "\n".join(getattr(block, "text", "") for block in last).splitlines()
    words = " ".join(line for line in lines if line and not line.startswith("<<<"))
    return f"a sampling request saying {quoted(words, 120)!r}"
