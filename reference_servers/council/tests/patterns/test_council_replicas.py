"""Many clients at once on a deployment: one replica on SQLite (by default), or three
replicas sharing PostgreSQL behind HAProxy (`nox -s scale`, which sets
COUNCIL_TEST_DEPLOYMENT=replicas).

Every client's LLM signs its answers: a debate holding another client's signature, or
a request about another client's topic, is a leak.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator

import anyio
import httpx
import pytest
from conftest import ERAS, PROFILES
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from mcp.shared.exceptions import MCPError
from mcp.types import InputRequiredResult
from provider_standin import ProviderStandIn
from replicas import Deployment, deployment

from council.core.testing import (
    ScriptedLLM,
    answer,
    as_reply,
    final_answer,
    prompt_text,
)

DEPLOYMENT = os.environ.get("COUNCIL_TEST_DEPLOYMENT", "single")
CLIENTS = 20
USAGE = {"input_tokens": 900, "output_tokens": 100}
"""What the stand-in provider reports for each reply, in the budget test."""
BUDGET = 40_000
"""Tokens a day: two debates' worth (19 replies of 1,000 tokens each), and a bit."""

pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployment(DEPLOYMENT, tmp_path_factory.mktemp("deployment")) as running:
        yield running


class SignedLLM:
    """A client's LLM: every answer signed with the client's name; it remembers
    whether it was ever asked about another client's topic."""

    def __init__(self, name: str, delay: float = 0.0) -> None:
        self.name = name
        self.delay = delay
        self.requests = 0
        self.foreign = 0

    async def __call__(self, messages, request, context):
        self.requests += 1
        prompt = prompt_text(request)
        if f"topic of {self.name}." not in prompt and "Synthesise" not in prompt:
            self.foreign += 1
        await anyio.sleep(self.delay)
        if "Synthesise" in prompt:
            return f"synthesis by {self.name}"
        if "Vote for" in prompt:
            label = re.findall(r"^Option ([A-Z]):$", prompt, re.MULTILINE)[0]
            return final_answer(request, {"option": label, "reasoning": self.name})
        member = re.match(r"You are the (.+?)\.", request.system_prompt)[1]
        return f"{member}'s view, signed {self.name}"


def budget_council(request) -> object:
    """The server-side LLM's answers to a debate's requests."""
    prompt = prompt_text(request)
    if "Vote for" in prompt:
        label = re.findall(r"^Option ([A-Z]):$", prompt, re.MULTILINE)[0]
        return final_answer(request, {"option": label, "reasoning": "Convincing."})
    return "A view." if "Synthesise" not in prompt else "A synthesis."


def client(url: str, llm: SignedLLM, era: str) -> Client:
    transport = StreamableHttpTransport(url, headers={"X-Client-Name": llm.name})
    return Client(
        transport,
        mode=ERAS[era],
        sampling_handler=llm,
        sampling_capabilities=PROFILES["tools"],
    )


async def debate(url: str, llm: SignedLLM, era: str) -> dict:
    async with client(url, llm, era) as session:
        result = await session.call_tool(
            "council_debate", {"topic": f"The topic of {llm.name}."}
        )
    return result.structured_content


def leaks(llm: SignedLLM, result: dict) -> list[str]:
    """Everything in a client's debate that is not its own."""
    texts = [o["text"] for o in result["opinions"]] + [result["synthesis"]]
    foreign = [text for text in texts if not text.endswith(llm.name)]
    return foreign + ["asked about another topic"] * llm.foreign


async def run_at_once(url: str, era: str, names: list[str], delay: float = 0.0):
    llms = [SignedLLM(name, delay) for name in names]
    results: dict[str, dict] = {}

    async def one(llm: SignedLLM) -> None:
        results[llm.name] = await debate(url, llm, era)

    with anyio.fail_after(120):
        async with anyio.create_task_group() as group:
            for llm in llms:
                group.start_soon(one, llm)
    return llms, results


async def test_twenty_modern_clients_at_once_each_get_their_own_debate(
    served: Deployment,
) -> None:
    names = [f"modern-{n}" for n in range(CLIENTS)]
    llms, results = await run_at_once(served.url, "modern", names)
    assert sum(len(leaks(llm, results[llm.name])) for llm in llms) == 0
    assert all(result["calls_made"] == 19 for result in results.values())
    if served.haproxy_log is not None:
        rounds = served.served()
        # 4 tools/call each (besides listing tools), spread round robin: a debate's
        # rounds land on more than one replica (all five on one, by the turns of the
        # others' requests, has a chance of (1/3)^4 a debate).
        spread = [name for name in names if len(set(rounds[name])) > 1]
        assert len(spread) >= CLIENTS // 2, rounds
        assert {replica for name in names for replica in rounds[name]} == {
            "r1",
            "r2",
            "r3",
        }
    await assert_every_debate_is_readable(served, results.values())


async def test_legacy_clients_keep_to_the_replica_holding_their_session(
    served: Deployment,
) -> None:
    names = [f"legacy-{n}" for n in range(6)]
    llms, results = await run_at_once(served.url, "legacy", names)
    assert sum(len(leaks(llm, results[llm.name])) for llm in llms) == 0
    if served.haproxy_log is not None:
        rounds = served.served()
        assert all(len(set(rounds[name])) == 1 for name in names)


async def test_every_round_sent_to_two_replicas_at_once_is_one_debate(
    served: Deployment,
) -> None:
    """A proxy's retry while the first still runs: each round of one call sent to
    two replicas at once (to the only one twice, on one replica). Both answer alike,
    down to the last round, whose debate both store: it is stored once."""
    llm = SignedLLM("twice")
    arguments = {"topic": f"The topic of {llm.name}."}
    pair = [client(r.url, llm, "modern") for r in (served.live() * 2)[:2]]

    async def to_both(state: str, answers: dict) -> list:
        results: list = [None, None]

        async def send(index: int) -> None:
            results[index] = await pair[index].session.call_tool(
                "council_debate",
                arguments,
                request_state=state,
                input_responses=answers,
                allow_input_required=True,
            )

        async with anyio.create_task_group() as group:
            for index in (0, 1):
                group.start_soon(send, index)
        return results

    for each in pair:
        await each.__aenter__()
    try:
        first = await pair[0].session.call_tool(
            "council_debate", arguments, allow_input_required=True
        )  # a round without requestState starts a call: sent once
        results = [first]
        with anyio.fail_after(60):
            while isinstance(results[0], InputRequiredResult):
                answers = {
                    key: as_reply(await llm(None, request.params, None))
                    for key, request in results[0].input_requests.items()
                }
                results = await to_both(results[0].request_state, answers)
                if isinstance(results[0], InputRequiredResult):
                    assert results[0].input_requests == results[1].input_requests
    finally:
        for each in pair:
            await each.__aexit__(None, None, None)
    debate, again = (result.structured_content for result in results)
    assert not results[0].is_error, results[0].content
    assert again == debate
    assert not leaks(llm, debate)
    async with Client(served.live()[0].url, mode=ERAS["legacy"]) as reader:
        listing = json.loads((await reader.read_resource("council://debates"))[0].text)
    assert [entry["id"] for entry in listing].count(debate["id"]) == 1


async def assert_every_debate_is_readable(served: Deployment, debates) -> None:
    """From every live replica, straight to it: the debates are shared."""
    for replica in served.live():
        async with Client(replica.url, mode=ERAS["legacy"]) as reader:
            listing = json.loads(
                (await reader.read_resource("council://debates"))[0].text
            )
            stored = {entry["id"] for entry in listing}
            assert {debate["id"] for debate in debates} <= stored


if DEPLOYMENT == "replicas":  # killing the only replica would end every debate

    async def test_a_replica_killed_mid_run_leaves_nothing_hanging(
        served: Deployment,
    ) -> None:
        # Legacy sessions first, one on each replica, kept open across the kill.
        names = [f"held-{n}" for n in range(3)]
        held = [client(served.url, SignedLLM(name), "legacy") for name in names]
        for session in held:
            await session.__aenter__()
            await session.list_tools()
        placed = {name: served.served()[name][-1] for name in names}
        victim = "r2"
        assert victim in placed.values()

        modern = [SignedLLM(f"survivor-{n}", delay=0.2) for n in range(CLIENTS)]
        results: dict[str, dict] = {}

        async def one(llm: SignedLLM) -> None:
            try:
                results[llm.name] = await debate(served.url, llm, "modern")
            except MCPError as lost:
                # A round the victim had begun answering (its progress goes out just
                # before its result) cannot be retried by HAProxy: the client sees
                # the stream end, clearly, and calls again, as a client would.
                if "SSE stream ended without a response" not in str(lost):
                    raise
                results[llm.name] = await debate(served.url, llm, "modern")

        with anyio.fail_after(120):
            async with anyio.create_task_group() as group:
                for llm in modern:
                    group.start_soon(one, llm)
                await anyio.sleep(0.5)  # the first rounds are in flight
                served.kill(victim)

        assert len(results) == CLIENTS  # none failed
        assert sum(len(leaks(llm, results[llm.name])) for llm in modern) == 0

        for name, session in zip(names, held, strict=True):
            with anyio.fail_after(10):  # promptly, never a hang
                if placed[name] == victim:
                    with pytest.raises((MCPError, httpx.HTTPStatusError)) as lost:
                        await session.list_tools()
                    assert (
                        "404" in str(lost.value)
                        or "not found" in str(lost.value).lower()
                    )
                else:
                    assert await session.list_tools()
        for session in held:
            with anyio.move_on_after(5):
                await session.__aexit__(None, None, None)
        await assert_every_debate_is_readable(served, results.values())

    async def test_a_replica_killed_after_its_commit_before_its_reply_loses_nothing(
        served: Deployment,
    ) -> None:
        """r1 dies after storing a debate and before answering (see `CommitWatch`):
        HAProxy sends the lost round to another replica, which runs it again and
        answers with the same debate, stored once."""
        fired = served.kill_r1_after_its_next_commit()
        for n in range(2 * len(served.replicas)):  # round robin reaches r1
            llm = SignedLLM(f"committed-{n}")
            with anyio.fail_after(60):
                debate_ = await debate(served.url, llm, "modern")
            if fired.is_set():
                break
        assert fired.is_set(), "no debate's last round reached r1"
        assert not leaks(llm, debate_)
        # The debate's last round, the lost one: HAProxy retried it on another replica.
        replica, retries = served.last_request(llm.name)
        assert retries > 0
        assert replica != "r1"
        async with Client(served.live()[0].url, mode=ERAS["legacy"]) as reader:
            stored = json.loads(
                (await reader.read_resource(f"council://debates/{debate_['id']}"))[
                    0
                ].text
            )
            listing = json.loads(
                (await reader.read_resource("council://debates"))[0].text
            )
        assert stored == debate_
        assert [entry["id"] for entry in listing].count(debate_["id"]) == 1

    async def test_one_budget_holds_across_the_replicas(
        tmp_path_factory: pytest.TempPathFactory,
    ) -> None:
        """Clients that cannot sample, served by the server-side LLM, round robin: the
        replicas share one daily budget, so the debates it pays for are the same few
        whichever replicas serve them (three budgets would pay for every one)."""
        llm = ScriptedLLM(*[answer(budget_council)] * 200)
        async with ProviderStandIn.serving(llm, "openai", usage=USAGE) as stand_in:
            settings = stand_in.environment(MCP_SAMPLING_BUDGET_TOKENS=str(BUDGET))
            scratch = tmp_path_factory.mktemp("budget")
            with deployment("replicas", scratch, **settings) as budgeted:
                read = []
                for n in range(6):
                    transport = StreamableHttpTransport(
                        budgeted.url, headers={"X-Client-Name": f"budget-{n}"}
                    )
                    async with Client(transport, mode=ERAS["modern"]) as session:
                        result = await session.call_tool(
                            "council_debate",
                            {"topic": f"The topic of budget-{n}."},
                            raise_on_error=False,
                        )
                    read.append(result.content[0].text)
                replicas = {r for name, rs in budgeted.served().items() for r in rs}
        paid = [text for text in read if not text.startswith("Only ")]
        refused = [text for text in read if text.startswith("Only ")]
        assert replicas == {"r1", "r2", "r3"}
        assert 1 <= len(paid) <= BUDGET // (19 * sum(USAGE.values()))
        assert len(refused) >= 6 - len(paid)
        for text in refused:
            assert "Today's budget of the server's LLM is spent" in text
        assert len(llm.requests) * sum(USAGE.values()) <= BUDGET
