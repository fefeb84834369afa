"""The machinery: the LLM gateway and what it stands on. Read it; write in `patterns/`.

All model traffic passes through `LLM` (`_gateway.py`). A pattern imports only what is
listed here:

    from ..core import LLM, GatewaySettings, LLMError, Prompt

    llm = LLM(ctx, gateway)                      # one per tool call
    text = await llm.complete(Prompt("Summarise the document.", document=doc))
    verdict = await llm.structured(prompt, result_type=Verdict)
    done = await llm.run_agent(task, tools=[search, read], result_type=Report)
    parts = await llm.map(summarise_chunk, chunks)   # concurrent model work

Untrusted text goes into a `Prompt` as a keyword argument, so it travels fenced. Every
failure to get model output is an `LLMError` whose message says what to do; let it
reach the client. What a pattern keeps for a user is keyed by `current_principal()`
(whoever the request acts for), in a database `open_database` opens (SQLite, or
PostgreSQL for replicas). `server.py` and `cli.py` use the rest: `ServerSettings`,
`load_settings` and `ConfigurationError`, `SamplingServer`, and the server-side LLM
(`server_llm`, `ServerLLM`). The modules starting with `_` are private;
`testing` is the mock-client kit for your tests.
"""

from ._agent import AgentResult, Call
from ._database import Connection, Database, open_database
from ._errors import (
    AgentLimitError,
    LLMError,
    SamplingFailedError,
    SamplingTimeoutError,
    SamplingUnavailableError,
    StructuredOutputError,
)
from ._gateway import LLM, Route
from ._identity import LOCAL_USER, Principal, PrincipalInLogs, current_principal
from ._prompting import Prompt
from ._server import SamplingServer
from ._server_llm import ServerLLM, server_llm
from ._settings import (
    ConfigurationError,
    GatewaySettings,
    LoadedSettings,
    ServerSettings,
    load_settings,
)
from ._tracing import configure_tracing
from ._usage import BudgetExceededError, TooManyCallsError

__all__ = [
    "LLM",
    "LOCAL_USER",
    "AgentLimitError",
    "AgentResult",
    "BudgetExceededError",
    "Call",
    "ConfigurationError",
    "Connection",
    "Database",
    "GatewaySettings",
    "LLMError",
    "LoadedSettings",
    "Principal",
    "PrincipalInLogs",
    "Prompt",
    "Route",
    "SamplingFailedError",
    "SamplingServer",
    "SamplingTimeoutError",
    "SamplingUnavailableError",
    "ServerLLM",
    "ServerSettings",
    "StructuredOutputError",
    "TooManyCallsError",
    "configure_tracing",
    "current_principal",
    "load_settings",
    "open_database",
    "server_llm",
]
