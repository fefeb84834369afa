"""Council: three concurrent rounds, anonymous shuffled ballots, contained failures."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
from pathlib import Path

import anyio
import httpx
import pytest
from conftest import (
    CLIENT_SIDE_FAILURES,
    ERAS,
    PROFILES,
    Connect,
    LLMFailure,
    free_port,
    serving_http,
    stdio_session,
)
from fastmcp import Client
from fastmcp.exceptions import ToolError
from mcp.types import CreateMessageRequestParams
from provider_standin import ProviderStandIn
from raw_client import raw_client

from council.cli import main
from council.core import (
    LOCAL_USER,
    GatewaySettings,
    open_database,
)
from council.core.testing import (
    Retries,
    Rounds,
    ScriptedLLM,
    answer,
    as_reply,
    final_answer,
    prompt_text,
    sampling_callback,
    signed_in,
)
from council.patterns.council import (
    SHIPPED_PERSONAS,
    load_personas,
)
from council.patterns.council import (
    Settings as CouncilSettings,
)
from council.patterns.council.store import (
    ConflictError,
    DebateStore,
)
from council.server import create_server

MEMBERS = [p.name for p in load_personas(SHIPPED_PERSONAS)]
TOPIC = "Should the office move to a four-day week?"


def member_of(request) -> str:
    return re.match(r"You are the (.+?)\.", request.system_prompt)[1]


def view_of(member: str) -> str:
    """An opinion that does not name its author, so ballots can be checked."""
    return f"view number {MEMBERS.index(member)}"


def options_of(request) -> dict[str, str]:
    return dict(
        re.findall(r"^Option ([A-Z]):\n(.+)$", prompt_text(request), re.MULTILINE)
    )


def round_of(request) -> str:
    prompt = prompt_text(request)
    if "Synthesise" in prompt:
        return "synthesis"
    return "vote" if "Vote for" in prompt else "opinion"


class Council:
    """Answers for every council request: opinions, votes (for `favourite`, or the
    next best), synthesis; `failing` members' requests fail."""

    def __init__(
        self, favourite: str = "Analyst", failing: tuple[str, ...] = (), votes=None
    ):
        self.favourite = favourite
        self.failing = failing
        self.votes = votes or {}
        self.ballots: dict[str, list[str]] = {}

    def __call__(self, request):
        if round_of(request) == "synthesis":
            return "The council recommends a trial."
        member = member_of(request)
        if member in self.failing:
            raise RuntimeError(f"{member} is unwell")
        if round_of(request) == "opinion":
            return view_of(member)
        options = options_of(request)
        self.ballots[member] = list(options.values())
        wanted = self.votes.get(member, self.favourite)
        if wanted == member:
            wanted = "Pragmatist"
        label = next(k for k, v in options.items() if v == view_of(wanted))
        return final_answer(
            request, {"option": label, "reasoning": f"{wanted} is right."}
        )


@pytest.fixture(autouse=True)
def council_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "council.db"
    monkeypatch.setenv("COUNCIL_DB_URL", f"sqlite:///{path}")
    return path


async def test_a_full_debate_is_19_calls_in_three_concurrent_rounds(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    council = Council()
    scripted_llm.expect(*[answer(council, delay=0.05)] * 19)
    progress = []

    async def record(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total))

    async with connect("none", server_llm=True, progress_handler=record) as client:
        result = await client.call_tool("council_debate", {"topic": TOPIC})
    debate = result.structured_content
    assert debate["calls_made"] == 19
    assert scripted_llm.max_in_flight == 9
    rounds = [round_of(r) for r in scripted_llm.requests]
    assert rounds == ["opinion"] * 9 + ["vote"] * 9 + ["synthesis"]
    assert debate["tally"]["Analyst"] == 8
    assert debate["tally"]["Pragmatist"] == 1
    assert debate["winners"] == ["Analyst"]
    assert debate["absentees"] == []
    assert debate["synthesis"] == "The council recommends a trial."
    assert progress[-1] == (19, 19)
    assert len(progress) == 19


@pytest.mark.parametrize("era", ["modern"])
async def test_a_debate_over_mrtr_is_four_tool_calls_sent_twice_and_stored_once(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    council = Council()
    scripted_llm.expect(*[answer(council)] * 19)
    rounds = Rounds()
    retries = Retries(every_round=True)

    def watch(server, _gateway) -> None:
        rounds.watch(server)

    async with connect("tools", setup=watch, retries=retries) as client:
        result = await client.call_tool("council_debate", {"topic": TOPIC})
        listing = json.loads((await client.read_resource("council://debates"))[0].text)
    assert rounds.asked == [9, 9, 1, 0]
    # Every round but the first sent twice at once: the debate stored once.
    assert retries.sent_again == 3
    assert [entry["id"] for entry in listing] == [result.structured_content["id"]]
    debate = result.structured_content
    assert debate["calls_made"] == 19
    # Each voter voted for the option holding its favourite's view; an answer applied
    # to another voter's request would name another option (or none).
    assert debate["tally"]["Analyst"] == 8
    assert debate["tally"]["Pragmatist"] == 1
    for vote in debate["votes"]:
        expected = "Pragmatist" if vote["voter"] == "Analyst" else "Analyst"
        assert vote["chosen_member"] == expected


@pytest.mark.parametrize("mode", ["fallback", "always"])
async def test_an_openai_compatible_endpoint_serves_a_client_that_cannot_sample(
    connect: Connect,
    scripted_llm: ScriptedLLM,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    monkeypatch.setenv("MCP_SAMPLING_MODE", mode)
    scripted_llm.expect(*[answer(Council())] * 19)
    async with connect("none", provider="openai") as client:
        result = await client.call_tool("council_debate", {"topic": TOPIC})
    debate = result.structured_content
    assert debate["calls_made"] == 19
    assert debate["winners"] == ["Analyst"]
    assert debate["synthesis"] == "The council recommends a trial."


async def test_ballots_are_anonymous_shuffled_and_never_hold_your_own_view(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    council = Council()
    scripted_llm.expect(*[answer(council)] * 19)
    async with connect("none", server_llm=True) as client:
        await client.call_tool("council_debate", {"topic": TOPIC})
    for voter, ballot in council.ballots.items():
        assert sorted(ballot) == sorted(view_of(m) for m in MEMBERS if m != voter)
    # Shuffled per voter: nine ballots of eight options all in one order would be a
    # one-in-40,320**8 chance.
    assert len({tuple(ballot) for ballot in council.ballots.values()}) > 1
    for request in scripted_llm.requests:
        if round_of(request) == "vote":
            assert not any(name in prompt_text(request) for name in MEMBERS)


async def test_a_failing_member_is_absent_and_the_debate_goes_on(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    council = Council(failing=("Devil's Advocate",))
    # Nine opinion requests (one fails), eight votes, one synthesis.
    scripted_llm.expect(*[answer(council)] * 18)
    async with connect("none", server_llm=True) as client:
        result = await client.call_tool("council_debate", {"topic": TOPIC})
    debate = result.structured_content
    assert debate["absentees"] == ["Devil's Advocate"]
    assert "Devil's Advocate" not in debate["tally"]
    assert len(debate["votes"]) == 8
    assert debate["calls_made"] == 18


async def test_a_failing_vote_is_an_abstention(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    council = Council()

    def vote_fails_for_the_mediator(request):
        if round_of(request) == "vote" and member_of(request) == "Mediator":
            raise RuntimeError("no opinion")
        return council(request)

    scripted_llm.expect(*[answer(vote_fails_for_the_mediator)] * 19)
    async with connect("none", server_llm=True) as client:
        result = await client.call_tool("council_debate", {"topic": TOPIC})
    debate = result.structured_content
    assert debate["abstentions"] == ["Mediator"]
    assert sum(debate["tally"].values()) == 8


async def test_below_quorum_the_debate_fails_clearly(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    council = Council(failing=tuple(MEMBERS[:5]))
    scripted_llm.expect(*[answer(council)] * 9)
    async with connect("none", server_llm=True) as client:
        with pytest.raises(ToolError) as error:
            await client.call_tool("council_debate", {"topic": TOPIC})
    assert re.search(r"Only 4 of 9 members .* quorum is 5", str(error.value))
    assert "The first failure: The server-side LLM failed: RuntimeError:" in str(
        error.value
    )


async def test_a_failing_llm_fails_the_first_round_with_its_own_message(
    llm_failure: LLMFailure,
) -> None:
    async with llm_failure.connect() as client:
        message = await llm_failure.call(client, "council_debate", {"topic": TOPIC})
    if llm_failure.reaches_the_server:
        assert "Only 0 of 9 members gave an opinion" in message
    llm_failure.assert_reported(message)


async def test_a_member_whose_reply_is_malformed_is_absent_not_fatal(era: str) -> None:
    council = Council()

    def answer(params: dict) -> dict:
        request = CreateMessageRequestParams.model_validate(params)
        if round_of(request) == "opinion" and member_of(request) == "Mediator":
            # A tool call, though no tools were offered.
            return {
                "role": "assistant",
                "model": "hostile",
                "content": [
                    {"type": "tool_use", "id": "x", "name": "vote", "input": {}}
                ],
            }
        reply = as_reply(council(request))
        return reply.model_dump(by_alias=True, exclude_none=True)

    async with raw_client(create_server(), answer, era=era) as call_tool:
        result = await call_tool("council_debate", {"topic": TOPIC})
    debate = result["result"]["structuredContent"]
    assert debate["absentees"] == ["Mediator"]
    assert debate["failures"]["Mediator"] == (
        "The LLM answered with a tool call (vote), but this request offered no tools."
    )
    assert len(debate["votes"]) == 8


# Legacy only: MRTR has no error for one request, so a modern client that cannot
# answer a vote ends the whole call itself (as the synthesis test shows).
@pytest.mark.parametrize("era", ["legacy"])
@pytest.mark.parametrize("kind", CLIENT_SIDE_FAILURES)
async def test_failing_votes_are_abstentions_that_say_why(
    connect: Connect, kind: str, era: str
) -> None:
    failure = LLMFailure(kind, connect, era)
    voting = failure.connect(answer=Council(), fails=lambda r: round_of(r) == "vote")
    async with voting as client:
        result = await client.call_tool("council_debate", {"topic": TOPIC})
    debate = result.structured_content
    assert debate["abstentions"] == MEMBERS
    assert debate["winners"] == []
    assert list(debate["failures"]) == MEMBERS
    for reason in debate["failures"].values():
        failure.assert_reported(reason)
    assert debate["synthesis"] == "The council recommends a trial."


@pytest.mark.parametrize("kind", CLIENT_SIDE_FAILURES)
async def test_a_failing_synthesis_fails_the_debate_with_its_own_message(
    connect: Connect, kind: str, era: str
) -> None:
    failure = LLMFailure(kind, connect, era)
    chairing = failure.connect(
        answer=Council(), fails=lambda r: round_of(r) == "synthesis"
    )
    async with chairing as client:
        message = await failure.call(client, "council_debate", {"topic": TOPIC})
    failure.assert_reported(message)


async def test_a_tie_is_reported_as_a_tie(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    seated = MEMBERS[:6]
    votes = {m: (seated[0] if i % 2 else seated[1]) for i, m in enumerate(seated)}
    votes[seated[0]], votes[seated[1]] = seated[1], seated[0]
    council = Council(votes=votes)
    scripted_llm.expect(*[answer(council)] * 13)
    async with connect("none", server_llm=True) as client:
        result = await client.call_tool(
            "council_debate", {"topic": TOPIC, "members": seated}
        )
    debate = result.structured_content
    assert sorted(debate["winners"]) == sorted(seated[:2])
    assert debate["tally"][seated[0]] == debate["tally"][seated[1]] == 3


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"topic": "  "}, "topic is empty"),
        ({"topic": "x" * 4001}, "at most 4,000"),
        (
            {"topic": TOPIC, "members": ["Pragmatist", "Jester"]},
            "unknown members: Jester",
        ),
        ({"topic": TOPIC, "members": MEMBERS[:4]}, "cannot reach the quorum of 5"),
    ],
)
async def test_bad_input_is_refused_before_any_sampling(
    connect: Connect, arguments: dict, message: str
) -> None:
    async with connect("tools") as client:
        with pytest.raises(ToolError, match=message):
            await client.call_tool("council_debate", arguments)


async def test_resources_list_members_and_stored_debates(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.expect(*[answer(Council())] * 19)
    async with connect("none", server_llm=True) as client:
        members = json.loads((await client.read_resource("council://members"))[0].text)
        result = await client.call_tool("council_debate", {"topic": TOPIC})
        listing = json.loads((await client.read_resource("council://debates"))[0].text)
        debate_id = result.structured_content["id"]
        record = json.loads(
            (await client.read_resource(f"council://debates/{debate_id}"))[0].text
        )
        with pytest.raises(Exception, match="there is no debate"):
            await client.read_resource("council://debates/nope")
    assert [m["name"] for m in members] == MEMBERS
    assert listing == [
        {
            "id": debate_id,
            "topic": TOPIC,
            "winners": ["Analyst"],
            "created_at": record["created_at"],
        }
    ]
    assert record == result.structured_content


async def test_a_users_debates_are_theirs_alone_to_list_and_read(
    scripted_llm: ScriptedLLM,
) -> None:
    scripted_llm.expect(*[answer(Council())] * 19)
    server = create_server(GatewaySettings(), sampling_handler=scripted_llm)
    with signed_in("https://id.example.com", "ada"):
        async with Client(server) as ada:
            debate_id = (
                await ada.call_tool("council_debate", {"topic": TOPIC})
            ).data.id
            mine = json.loads((await ada.read_resource("council://debates"))[0].text)
    with signed_in("https://id.example.com", "grace"):
        async with Client(server) as grace:
            theirs = json.loads(
                (await grace.read_resource("council://debates"))[0].text
            )
            with pytest.raises(Exception, match="there is no debate"):
                await grace.read_resource(f"council://debates/{debate_id}")
    assert [entry["id"] for entry in mine] == [debate_id]
    assert theirs == []


async def test_a_spent_budget_is_each_absent_members_reason(
    scripted_llm: ScriptedLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_DB_URL", f"sqlite:///{tmp_path / 'usage.db'}")
    async with ProviderStandIn.serving(scripted_llm, "openai") as stand_in:
        server = create_server(stand_in.settings(GatewaySettings(budget_tokens=10)))
        async with Client(server) as client:
            result = await client.call_tool(
                "council_debate", {"topic": TOPIC}, raise_on_error=False
            )
    (message,) = [block.text for block in result.content]
    assert message.startswith(f"Only 0 of {len(MEMBERS)} members gave an opinion")
    assert "The first failure: Today's budget of the server's LLM is spent" in message
    assert scripted_llm.requests == []


async def test_twenty_debates_at_once_are_all_kept(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.expect(*[answer(Council())] * 19 * 20)
    async with connect("none", server_llm=True) as client:
        results = await asyncio.gather(
            *[
                client.call_tool("council_debate", {"topic": f"{TOPIC} ({n})"})
                for n in range(20)
            ]
        )
        listing = json.loads((await client.read_resource("council://debates"))[0].text)
    assert sorted(d["id"] for d in listing) == sorted(
        r.structured_content["id"] for r in results
    )


def test_the_older_database_setting_still_works_but_not_beside_the_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COUNCIL_DB_URL")
    monkeypatch.setenv("COUNCIL_DB_PATH", str(tmp_path / "old.db"))
    assert CouncilSettings().database("x") == f"sqlite:///{tmp_path / 'old.db'}"
    monkeypatch.setenv("COUNCIL_DB_URL", "sqlite:////tmp/new.db")
    monkeypatch.setattr(os, "environ", os.environ.copy())
    assert main([]) == 2
    assert (
        "COUNCIL_DB_PATH is the older form of COUNCIL_DB_URL" in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://db/council", "must start with sqlite:/// or postgresql://"),
        ("sqlite://relative.db", "give an absolute path"),
    ],
)
def test_a_database_url_that_cannot_work_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    message: str,
) -> None:
    monkeypatch.setenv("COUNCIL_DB_URL", url)
    monkeypatch.setattr(os, "environ", os.environ.copy())
    assert main([]) == 2
    assert message in capsys.readouterr().err


def test_the_start_says_where_the_debates_are_kept(
    council_db: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    create_server()
    assert f"council: debates are kept in the SQLite file {council_db}" in caplog.text
    caplog.clear()
    monkeypatch.setenv("COUNCIL_DB_URL", "postgresql://ada:s3cret@db.example:6543/mcp")
    create_server()
    assert "debates are kept in PostgreSQL at db.example:6543/mcp" in caplog.text
    assert "s3cret" not in caplog.text


async def test_saving_the_same_debate_again_or_at_once_stores_it_once(
    council_db: Path,
) -> None:
    store = DebateStore(open_database(f"sqlite:///{council_db}", "COUNCIL_DB_URL"))
    record = json.dumps({"id": "d1", "topic": TOPIC, "winners": [], "created_at": "t"})
    async with anyio.create_task_group() as group:
        for _ in range(4):  # a round sent again while the first still runs
            group.start_soon(store.save, "d1", "ada", "t", record)
    await store.save("d1", "ada", "t", record)  # and once more, later
    assert [entry["id"] for entry in await store.summaries("ada")] == ["d1"]
    assert await store.get("d1", "ada") == record


async def test_a_different_debate_under_a_stored_id_is_refused(
    council_db: Path,
) -> None:
    store = DebateStore(open_database(f"sqlite:///{council_db}", "COUNCIL_DB_URL"))
    record = {"id": "d1", "topic": TOPIC, "winners": [], "created_at": "t"}
    await store.save("d1", "ada", "t", json.dumps(record))
    with pytest.raises(ConflictError, match="A different debate is already stored"):
        await store.save(
            "d1", "ada", "t", json.dumps({**record, "winners": ["Analyst"]})
        )
    assert json.loads(await store.get("d1", "ada")) == record


async def test_a_users_debates_are_theirs_alone(council_db: Path) -> None:
    store = DebateStore(open_database(f"sqlite:///{council_db}", "COUNCIL_DB_URL"))
    for owner in ("ada", "grace"):
        record = {"id": f"{owner}-1", "topic": TOPIC, "winners": [], "created_at": "t"}
        await store.save(f"{owner}-1", owner, "t", json.dumps(record))
    assert [entry["id"] for entry in await store.summaries("ada")] == ["ada-1"]
    assert await store.get("grace-1", "ada") is None
    assert await store.get("grace-1", "grace") is not None


async def test_debates_stored_before_owners_are_kept_as_the_local_users(
    council_db: Path,
) -> None:
    """A database of a server from before debates had owners: its table has no
    owner column. The debates become the local user's, and the old table stays."""
    record = {"id": "d0", "topic": TOPIC, "winners": [], "created_at": "t"}
    with sqlite3.connect(council_db) as db:
        db.execute("create table debates (id text, created_at text, record text)")
        db.execute("insert into debates values ('d0', 't', ?)", (json.dumps(record),))
    store = DebateStore(open_database(f"sqlite:///{council_db}", "COUNCIL_DB_URL"))

    assert await store.summaries(LOCAL_USER.key) == [record]
    assert await store.summaries("ada") == []
    await store.save("d1", "ada", "u", json.dumps({**record, "id": "d1"}))
    assert [entry["id"] for entry in await store.summaries("ada")] == ["d1"]
    with sqlite3.connect(council_db) as db:
        kept = db.execute("select id from debates_before_owners").fetchall()
    assert kept == [("d0",)]


@pytest.mark.process
def test_a_replica_whose_database_is_down_is_not_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COUNCIL_DB_URL", f"postgresql://x@127.0.0.1:{free_port()}/x")
    with serving_http() as url:
        ready = httpx.get(url.replace("/mcp", "/ready"))
        health = httpx.get(url.replace("/mcp", "/health"))
    assert health.status_code == 200
    assert ready.status_code == 503
    assert (
        "PostgreSQL cannot be reached" in ready.json()["problems"]["council database"]
    )


@pytest.mark.process
async def test_debates_survive_a_restart_of_the_server_process() -> None:
    callback = sampling_callback(Council())
    async with stdio_session(sampling_callback=callback) as session:
        result = await session.call_tool("council_debate", {"topic": TOPIC})
    assert not result.is_error, result.content
    debate_id = result.structured_content["id"]
    async with stdio_session() as session:
        stored = await session.read_resource(f"council://debates/{debate_id}")
    assert json.loads(stored.contents[0].text)["winners"] == ["Analyst"]


async def test_the_prompts_start_common_debates(connect: Connect) -> None:
    async with connect("none") as client:
        names = {prompt.name for prompt in await client.list_prompts()}
        decide = await client.get_prompt(
            "decide", {"question": "Our team of six", "options": "Rust or Go"}
        )
    assert {"decide", "poll", "critique"} <= names
    assert "council_debate" in decide.messages[0].content.text
    assert "Rust or Go" in decide.messages[0].content.text


@pytest.mark.parametrize(
    ("personas", "message"),
    [
        ("[[member]]\nname = 'Solo'\nicon = 'x'\nprompt = 'p'\n", "2 to 26"),
        ("[[member]]\nname = 'No prompt'\nicon = 'x'\n", "prompt"),
        ("this is not toml = = =", "cannot read the personas"),
    ],
)
def test_an_unusable_personas_file_stops_the_server_with_a_message(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    personas: str,
    message: str,
) -> None:
    path = tmp_path / "personas.toml"
    path.write_text(personas)
    monkeypatch.setattr(os, "environ", os.environ.copy())
    assert main(["--council-personas-file", str(path)]) == 2
    error = capsys.readouterr().err
    assert message in error
    assert "Traceback" not in error


def fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "fifo.toml")
    return tmp_path / "fifo.toml"


def huge(tmp_path: Path) -> Path:
    with (tmp_path / "huge.toml").open("wb") as file:
        file.truncate(100_000_000)  # sparse: 100 MB on paper
    return tmp_path / "huge.toml"


def nested(tmp_path: Path) -> Path:
    (tmp_path / "nested.toml").write_text("x = " + "[" * 100_000 + "]" * 100_000)
    return tmp_path / "nested.toml"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (fifo, "is not a regular file"),
        (lambda _tmp: Path("/dev/zero"), "is not a regular file"),
        (huge, "has 100,000,000 bytes; at most 1,000,000"),
        (nested, "nests too deeply"),
    ],
    ids=["fifo", "device", "100-MB", "nested-100k-deep"],
)
def test_a_personas_file_that_is_no_such_file_is_refused_in_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    make,
    message: str,
) -> None:
    monkeypatch.setattr(os, "environ", os.environ.copy())
    assert main(["--council-personas-file", str(make(tmp_path))]) == 2
    error = capsys.readouterr().err
    assert message in error
    assert "Traceback" not in error


@pytest.mark.process
async def test_a_client_leaving_mid_debate_leaves_the_server_healthy(
    http_server: str, scripted_llm: ScriptedLLM
) -> None:
    asked = anyio.Event()

    async def answer_never(messages, params, context):
        asked.set()
        await anyio.sleep_forever()

    async def debate_then_vanish() -> None:
        async with Client(
            http_server,
            mode=ERAS["legacy"],  # requests stay open only on a session
            sampling_handler=answer_never,
            sampling_capabilities=PROFILES["tools"],
        ) as client:
            await client.call_tool("council_debate", {"topic": TOPIC})

    async with anyio.create_task_group() as group:
        group.start_soon(debate_then_vanish)
        await asked.wait()
        group.cancel_scope.cancel()  # the client hangs up with nine requests open

    scripted_llm.expect(*[answer(Council())] * 19)
    async with Client(
        http_server,
        sampling_handler=scripted_llm,
        sampling_capabilities=PROFILES["tools"],
    ) as client:
        result = await client.call_tool("council_debate", {"topic": TOPIC})
    assert result.structured_content["calls_made"] == 19


@pytest.mark.process
async def test_a_client_whose_handler_fails_gets_a_clear_error_and_others_go_on(
    http_server: str, scripted_llm: ScriptedLLM
) -> None:
    async def broken(messages, params, context):
        raise RuntimeError("the client's model is down")

    async with Client(
        http_server,
        mode=ERAS["legacy"],
        sampling_handler=broken,
        sampling_capabilities=PROFILES["tools"],
    ) as client:
        with pytest.raises(ToolError) as error:
            await client.call_tool("council_debate", {"topic": TOPIC})
    assert "Only 0 of 9 members" in str(error.value)
    assert "The client's LLM did not answer" in str(error.value)

    scripted_llm.expect(*[answer(Council())] * 19)
    async with Client(
        http_server,
        mode=ERAS["modern"],  # the next client may speak either era
        sampling_handler=scripted_llm,
        sampling_capabilities=PROFILES["tools"],
    ) as client:
        result = await client.call_tool("council_debate", {"topic": TOPIC})
    assert result.structured_content["winners"] == ["Analyst"]
