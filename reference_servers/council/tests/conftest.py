"""Fixtures: clients of every sampling capability, answered by the scripted LLM.

The scripted LLM itself is `council.core.testing`. Client profiles, after what
real clients declare:

- `tools`: samples with tools (`sampling.tools`), like fast-agent;
- `text`: samples text only, like VS Code, goose and the MCP Inspector;
- `none`: does not sample, like Claude Desktop, Claude Code and Cursor.

The `client` fixture runs a test once per profile; `connect` builds one client (and its
server) for a test that needs particular settings or a server-side LLM: the scripted LLM
itself, or behind a stand-in OpenAI or Anthropic endpoint (`provider_standin.py`).
`llm_failure` runs a test once per way the LLM can fail a tool call. Tests that start
the server as a subprocess are marked `process`: `pytest -m "not process"` skips them.
"""

from __future__ import annotations

import atexit
import gc
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    asynccontextmanager,
    contextmanager,
)
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

import hypothesis
import pytest
from fastmcp import Client, FastMCP
from fastmcp.client.sampling import SamplingHandler
from fastmcp.exceptions import ToolError
from mcp import ClientSession, StdioServerParameters
from mcp.client.session import SamplingFnT
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError
from mcp.types import (
    CreateMessageRequestParams,
    SamplingCapability,
    SamplingToolsCapability,
)
from provider_standin import Dialect, ProviderStandIn

from council.core import GatewaySettings
from council.core.testing import (
    ReadableErrors,
    Respond,
    Retries,
    ScriptedLLM,
)
from council.patterns import discover
from council.server import create_server

# Properties are checked for what they hold, not for how fast: timing goals live in
# benchmarks, and a busy machine must not fail a property.
hypothesis.settings.register_profile("project", deadline=None)
hypothesis.settings.load_profile("project")

# At exit the interpreter sweeps its heap (FastMCP, pydantic, both provider SDKs) again
# and again as it tears the modules down: a second or more per process, and a run has
# three (xdist's controller and two workers). Everything is checked by then; frozen
# objects are left to the operating system.
atexit.register(gc.freeze)


def pytest_collection_finish(session: pytest.Session) -> None:
    """The collector, tuned to a suite that builds a server and a client per test.

    What is loaded by now (FastMCP, pydantic, both SDKs, the tests) lives to the end:
    frozen, no full collection walks it again. And the young generations are collected
    ten and two times less often: each test leaves cycles by the thousand, and a tenth
    of the suite's time went to collecting them.
    """
    gc.freeze()
    gc.set_threshold(7000, 20, 20)


PROFILES: dict[str, SamplingCapability | None] = {
    "tools": SamplingCapability(tools=SamplingToolsCapability()),
    "text": SamplingCapability(),
    "none": None,
}
SAMPLING_PROFILES = ["tools", "text"]
ERAS = {"legacy": "legacy", "modern": "2026-07-28"}
"""The protocol eras, as FastMCP's client is told to speak them: a 2025-11-25 session
(sampling pushed to the client) or 2026-07-28 requests (sampling by MRTR)."""

Connect = Callable[..., AbstractAsyncContextManager[Client]]


@pytest.fixture
def scripted_llm() -> Iterator[ScriptedLLM]:
    """The LLM of this test; fails the test if its script was not followed."""
    llm = ScriptedLLM()
    yield llm
    llm.assert_finished()


@pytest.fixture(params=list(ERAS))
def era(request: pytest.FixtureRequest) -> str:
    """Every test that connects runs on both eras, unless it passes `era=`."""
    return request.param


@pytest.fixture
def served_patterns(request: pytest.FixtureRequest) -> list[ModuleType]:
    """The patterns a test's server serves, as registering a pattern's tools is most
    of the time a server takes to build: `tests/patterns/test_NAME.py` serves pattern
    NAME alone, the machinery's tests (`tests/core`) none (their tools are their own,
    added with `setup`), any other test every pattern. A test module may override it.
    """
    every = discover()
    if request.path.parent.name == "core":
        return []
    if request.path.parent.name == "patterns":
        name = request.path.stem.removeprefix("test_")
        own = [pattern for pattern in every if pattern.__name__.endswith(f".{name}")]
        return own or every
    return every


@pytest.fixture
def connect(
    scripted_llm: ScriptedLLM, era: str, served_patterns: list[ModuleType]
) -> Connect:
    """`async with connect(profile, ...) as client`: a server of `served_patterns` and
    a client of it, speaking the test's `era` (or the one given).

    `server_llm=True` installs the scripted LLM as the server-side LLM instead of the
    client's: the server then calls it directly and concurrently, so tests can watch
    requests in flight (FastMCP's client answers sampling one request at a time).
    `provider="openai"` or `"anthropic"` puts the scripted LLM behind a stand-in
    provider on loopback instead, configured through the `MCP_SAMPLING_*` settings,
    so requests and replies cross the provider's real SDK and wire format.
    `llm` answers instead of the scripted LLM. `setup` may add test-only tools to the
    server before the client connects.

    Every server is watched as a client sees it: on the modern era the last round of
    each tool call is sent twice, and the second answer must equal the first (see
    `Retries`; `retries=Retries(every_round=True)` sends every round twice at once);
    and no error a client reads may hold pydantic's dump (`ReadableErrors`).
    """

    @asynccontextmanager
    async def connect(
        profile: str,
        *,
        settings: GatewaySettings | None = None,
        server_llm: bool = False,
        provider: Dialect | None = None,
        llm: SamplingHandler = scripted_llm,
        setup: Callable[[FastMCP, GatewaySettings], None] | None = None,
        era: str = era,
        retries: Retries | None = None,
        **client_options: object,
    ) -> AsyncIterator[Client]:
        async with AsyncExitStack() as stack:
            gateway = settings or GatewaySettings()
            if provider is not None:
                stand_in = await stack.enter_async_context(
                    ProviderStandIn.serving(scripted_llm, provider)
                )
                gateway = stand_in.settings(gateway)
            server = create_server(
                gateway,
                sampling_handler=llm if server_llm else None,
                patterns=served_patterns,
            )
            errors = ReadableErrors.watching(server)
            if era == "modern":
                retries = (retries or Retries()).watch(server)
            if setup is not None:
                setup(server, gateway)
            capability = PROFILES[profile]
            if capability is not None:
                client_options |= {
                    "sampling_handler": llm,
                    "sampling_capabilities": capability,
                }
            client = await stack.enter_async_context(
                Client(server, mode=ERAS[era], **client_options)
            )
            yield client
        errors.assert_readable()
        if retries is not None:
            retries.assert_same()

    return connect


LLM_FAILURES = {
    "no-sampling": "does not support sampling",
    "model-error": "The client's LLM did not answer: the model is overloaded",
    "declined": "The client's LLM did not answer: User rejected sampling request",
    "provider-unreachable": "could not be reached",
}
"""Each way the LLM can fail a tool call, and what the client must then read."""
CLIENT_SIDE_FAILURES = ["model-error", "declined"]
"""The failures a sampling client can have at any request, not only the first."""


def fail_everything(_request: CreateMessageRequestParams) -> bool:
    return True


@dataclass
class LLMFailure:
    """A client, or a server-side LLM, that fails as `kind` says (see `LLM_FAILURES`).

    `model-error` and `declined` are the client's LLM (with sampling tools) failing the
    requests `fails` picks and answering the others with `answer`; `no-sampling` and
    `provider-unreachable` fail every request. On the modern era MRTR has no error
    for one request: a client that cannot answer ends the tool call itself, with its
    own message, and the server never hears of it (`reaches_the_server`).
    """

    kind: str
    _connect: Connect | None = None
    era: str = "legacy"

    @property
    def reaches_the_server(self) -> bool:
        return not (self.era == "modern" and self.kind in CLIENT_SIDE_FAILURES)

    def connect(
        self,
        answer: Respond | None = None,
        fails: Callable[[CreateMessageRequestParams], bool] = fail_everything,
    ) -> AbstractAsyncContextManager[Client]:
        assert self._connect is not None, "LLMFailure(kind, connect) to connect"
        if self.kind == "no-sampling":
            return self._connect("none", era=self.era)
        if self.kind == "provider-unreachable":
            nobody = f"http://127.0.0.1:{free_port()}/v1"
            # No retries: the failure is the same after the SDK's backoff, only later
            # (test_server_llm.py checks the retries themselves).
            settings = GatewaySettings(
                provider="openai",
                model="m",
                api_key="k",
                base_url=nobody,
                provider_retries=0,
            )
            return self._connect("none", settings=settings, era=self.era)
        problem = LLM_FAILURES[self.kind].removeprefix(
            "The client's LLM did not answer: "
        )

        async def failing_llm(
            messages: Any, params: CreateMessageRequestParams, _c: Any
        ):
            if fails(params) or answer is None:
                raise RuntimeError(problem)
            return answer(params)

        return self._connect("tools", llm=failing_llm, era=self.era)

    async def call(self, client: Client, tool: str, arguments: dict) -> str:
        """Call `tool`, which must fail; what the client reads."""
        with pytest.raises((ToolError, MCPError)) as error:
            await client.call_tool(tool, arguments)
        return str(error.value)

    def assert_reported(self, error: BaseException | str) -> None:
        """The client read the failure's own message, not a wrapper's."""
        message = str(error)
        expected = LLM_FAILURES[self.kind]
        if not self.reaches_the_server:
            expected = expected.removeprefix("The client's LLM did not answer: ")
        assert expected in message, message
        assert "TaskGroup" not in message, message
        assert "sub-exception" not in message, message


@pytest.fixture(params=list(LLM_FAILURES))
def llm_failure(
    request: pytest.FixtureRequest, connect: Connect, era: str
) -> LLMFailure:
    return LLMFailure(request.param, connect, era)


@pytest.fixture(params=list(PROFILES))
def profile(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def client(connect: Connect, profile: str) -> AsyncIterator[Client]:
    async with connect(profile) as client:
        yield client


@pytest.fixture(scope="session", autouse=True)
def _no_certificates_to_load(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """No test speaks TLS, yet each provider client a server-side LLM opens would read
    the machine's CA bundle (`SSL_CERT_FILE`, or certifi's): 25 ms, hundreds of times
    a run. The SDKs' HTTP clients honour `SSL_CERT_DIR` too, and a directory of CAs is
    read lazily: an empty one costs nothing."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("SSL_CERT_FILE", raising=False)
        patch.setenv("SSL_CERT_DIR", str(tmp_path_factory.mktemp("no-certificates")))
        yield


_running: list[pytest.Item] = []


@pytest.fixture(autouse=True)
def _running_test(request: pytest.FixtureRequest) -> Iterator[None]:
    _running.append(request.node)
    yield
    _running.pop()


PROJECT = Path(__file__).parents[1]


def server_command(*args: str, runner: str = "script") -> StdioServerParameters:
    """The server as a subprocess: the installed `council` console script,
    or (`runner="fastmcp run"`) FastMCP's runner with the project's `fastmcp.json`.

    Only for tests marked `process`, so that `pytest -m "not process"` is fast.
    """
    if _running and _running[-1].get_closest_marker("process") is None:
        pytest.fail(
            f"{_running[-1].nodeid} starts the server as a process: mark it "
            "@pytest.mark.process, so that `pytest -m 'not process'` leaves it out."
        )
    scripts = Path(sys.executable).parent
    if runner == "fastmcp run":
        # --skip-env: this environment already has the project; no `uv run`.
        command = scripts / "fastmcp"
        args = ("run", str(PROJECT / "fastmcp.json"), "--skip-env", *args)
    else:
        command = scripts / "council"
    return StdioServerParameters(
        command=str(command), args=list(args), env=dict(os.environ)
    )


@asynccontextmanager
async def stdio_session(
    *args: str,
    sampling_callback: SamplingFnT | None = None,
    errlog: TextIO = sys.stderr,
) -> AsyncIterator[ClientSession]:
    """A real `mcp` ClientSession talking to the server over stdio."""
    async with (
        stdio_client(server_command(*args), errlog=errlog) as (read, write),
        ClientSession(read, write, sampling_callback=sampling_callback) as session,
    ):
        await session.initialize()
        yield session


def free_port() -> int:
    """A loopback port nothing listens on (until someone binds it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


RUNNERS = ["script", "fastmcp run"]
"""The ways to start the server: its console script, and `fastmcp run`."""


@contextmanager
def serving_http(
    *args: str, runner: str = "script", stderr: TextIO | None = None
) -> Iterator[str]:
    """The server serving streamable HTTP on a free loopback port; its URL.

    The server reads the environment as it is when the block starts; its log goes to
    `stderr` (the test's, by default).
    """
    port = free_port()
    command = server_command(
        "--transport", "http", "--port", str(port), *args, runner=runner
    )
    process = subprocess.Popen(
        [command.command, *command.args], env=command.env, stderr=stderr
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, "the HTTP server exited at start-up"
                assert time.monotonic() < deadline, "the HTTP server never listened"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def http_server() -> Iterator[str]:
    """The console script serving streamable HTTP with default settings; its URL."""
    with serving_http() as url:
        yield url
