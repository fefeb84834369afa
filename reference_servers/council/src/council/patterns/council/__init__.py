"""Council: a debate among personas, run entirely on the client's LLM.

One tool call runs a whole debate in three dependent rounds: every member's opinion
(concurrently), every member's vote (concurrently, structured), then one synthesis. A
voter sees only the *other* members' opinions, anonymised as option labels and shuffled
for each voter, so a self-vote is impossible by construction and position bias is
spread. A member whose opinion fails is absent; one whose vote fails abstains; the
debate fails only when fewer than a quorum gave opinions. Debates are kept in SQLite,
or in PostgreSQL to share them between replicas (`store.py`, `COUNCIL_DB_URL`).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import string
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from fastmcp import Context
from fastmcp.exceptions import ResourceError, ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field, ValidationError, create_model, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ...core import (
    LLM,
    GatewaySettings,
    LLMError,
    Prompt,
    SamplingServer,
    current_principal,
    open_database,
)
from .store import ConflictError, DebateStore

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

logger = logging.getLogger(__name__)
SHIPPED_PERSONAS = Path(__file__).parent / "personas.toml"


class Settings(BaseSettings):
    """Council pattern."""

    model_config = SettingsConfigDict(env_prefix="COUNCIL_")

    personas_file: Path | None = Field(
        None,
        description="TOML file of the council's members; by default the nine shipped "
        "with the server.",
    )
    db_url: str | None = Field(
        None,
        description="Where debates are kept: `sqlite:///PATH`, or `postgresql://...` "
        "to share them between replicas; by default an SQLite file in the user's data "
        "directory.",
    )
    db_path: Path | None = Field(
        None,
        description="The older form of `COUNCIL_DB_URL=sqlite:///PATH`, still honoured.",
    )
    quorum: int = Field(
        5, ge=2, description="Fewest opinions a debate needs to go ahead."
    )
    max_topic_chars: int = Field(
        4000, ge=1, description="Longest topic accepted, in characters."
    )

    @model_validator(mode="after")
    def _one_database(self) -> Settings:
        if self.db_url and self.db_path:
            raise PydanticCustomError(
                "configuration",
                "COUNCIL_DB_PATH is the older form of COUNCIL_DB_URL: set only "
                f"COUNCIL_DB_URL (sqlite:///{self.db_path.absolute()} for that file).",
            )
        return self

    def database(self, package: str) -> str:
        """The database URL: COUNCIL_DB_URL, COUNCIL_DB_PATH, or the default file."""
        if self.db_url:
            return self.db_url
        path = self.db_path or Path(platformdirs.user_data_dir(package)) / "council.db"
        return f"sqlite:///{path.absolute()}"


class Persona(BaseModel):
    """A council member: who it is, and the system prompt it speaks with."""

    name: str = Field(min_length=1, max_length=80)
    icon: str = Field(max_length=16)
    prompt: str = Field(min_length=1, max_length=4000)


class Opinion(BaseModel):
    """What one member said in the first round."""

    member: str
    text: str


class Ballot(BaseModel):
    """What a voter answers: the label of the option chosen, and why."""

    option: str = Field(description="Label you choose.")
    reasoning: str = Field(description="Why, in one or two sentences.")

    @classmethod
    def of(cls, labels: list[str]) -> type[Ballot]:
        """The ballot whose `option` is one of `labels` (an enum in its schema)."""
        choices: Any = Literal[tuple(labels)]
        return create_model(
            "Ballot",
            __base__=cls,
            option=(choices, Field(description="Label you choose.")),
        )


class Vote(BaseModel):
    """One member's vote for another member's opinion, and why."""

    voter: str
    chosen_member: str
    reasoning: str


class DebateResult(BaseModel):
    """A whole debate: opinions, votes, the tally and the chair's synthesis."""

    id: str
    topic: str
    opinions: list[Opinion]
    votes: list[Vote]
    tally: dict[str, int]
    winners: list[str] = Field(description="More than one when the vote is tied.")
    synthesis: str
    calls_made: int
    absentees: list[str] = Field(description="Members who gave no opinion.")
    abstentions: list[str] = Field(description="Members who gave no vote.")
    failures: dict[str, str] = Field(
        description="Why each absentee gave no opinion and each abstainer no vote."
    )
    created_at: str


MAX_PERSONAS_BYTES = 1_000_000
"""The largest personas file read: nine personas take a few kilobytes."""


def load_personas(path: Path) -> list[Persona]:
    """The members in `path`, validated; raises `ValueError` saying what is wrong.

    Only a regular file of at most `MAX_PERSONAS_BYTES` is read, checked on the file
    opened (a FIFO or a device never blocks the start-up).
    """
    try:
        data = tomllib.loads(_read_regular_file(path, MAX_PERSONAS_BYTES))
        members = [Persona.model_validate(m) for m in data.get("member", [])]
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"cannot read the personas in {path}: {error}") from None
    except RecursionError:
        raise ValueError(f"{path} nests too deeply to be a personas file") from None
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
            for e in error.errors(include_url=False)
        )
        raise ValueError(f"the personas in {path} are not valid: {problems}") from None
    names = [m.name for m in members]
    # Ballot options are labelled A to Z.
    if not 2 <= len(members) <= 26 or len(set(names)) != len(names):
        raise ValueError(
            f"{path} must define 2 to 26 [[member]] entries with unique names"
        )
    return members


def _read_regular_file(path: Path, limit: int) -> str:
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path} is not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{path} has {info.st_size:,} bytes; at most {limit:,}")
        return file.read(limit + 1)[:limit].decode("utf-8")


def register(mcp: SamplingServer, gateway: GatewaySettings, settings: Settings) -> None:
    personas = load_personas(settings.personas_file or SHIPPED_PERSONAS)
    database = open_database(
        settings.database(__package__.split(".")[0]), "COUNCIL_DB_URL"
    )
    store = DebateStore(database)
    logger.info("council: debates are kept in %s (COUNCIL_DB_URL)", database.location)
    mcp.add_readiness_check("council database", database.check)

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=False, open_world_hint=False))
    async def council_debate(
        topic: Annotated[str, Field(description="The question to debate.")],
        ctx: Context,
        members: Annotated[
            list[str] | None,
            Field(description="Names of the members to seat; all by default."),
        ] = None,
    ) -> DebateResult:
        """Debate a topic among the council's personas, vote, and synthesise."""
        seated = _seat(personas, members, settings, topic)
        debate = Debate(LLM(ctx, gateway), seated, settings.quorum)
        result = await debate.run(topic)
        # The same round sent again gives the same debate: saved once (see store.py).
        owner = current_principal().key
        try:
            await store.save(
                result.id, owner, result.created_at, result.model_dump_json()
            )
        except ConflictError as error:
            raise ToolError(str(error)) from None
        return result

    @mcp.resource("council://members", mime_type="application/json")
    def council_members() -> str:
        """The council's members: name, icon and the prompt behind each."""
        return json.dumps([p.model_dump() for p in personas], indent=2)

    @mcp.resource("council://debates", mime_type="application/json")
    async def council_debates() -> str:
        """Your stored debates, newest first: id, topic, winners, time."""
        return json.dumps(await store.summaries(current_principal().key), indent=2)

    @mcp.resource("council://debates/{debate_id}", mime_type="application/json")
    async def council_debate_record(debate_id: str) -> str:
        """One of your stored debates in full."""
        record = await store.get(debate_id, current_principal().key)
        if record is None:
            raise ResourceError(f"there is no debate {debate_id!r}")
        return DebateResult.model_validate_json(record).model_dump_json(indent=2)

    @mcp.prompt
    def decide(question: str, options: str) -> str:
        """Ask the council to choose between options."""
        return (
            f"Use council_debate with the topic: Which should we choose: {options}? "
            f"Context: {question}. Then report the winner and the synthesis."
        )

    @mcp.prompt
    def poll(question: str) -> str:
        """Ask the council for a range of views on a question."""
        return (
            f"Use council_debate with the topic: {question}. Then list each member's "
            "view in one line, and say which view won the vote."
        )

    @mcp.prompt
    def critique(proposal: str) -> str:
        """Ask the council to find the weaknesses of a proposal."""
        return (
            f"Use council_debate with the topic: What are the weaknesses of this "
            f"proposal, and how could it be improved? Proposal: {proposal}"
        )


def _seat(
    personas: list[Persona], names: list[str] | None, settings: Settings, topic: str
) -> list[Persona]:
    """The members for this debate; bad input fails here, before any sampling."""
    if not topic.strip():
        raise ToolError("topic is empty: say what the council should debate.")
    if len(topic) > settings.max_topic_chars:
        raise ToolError(
            f"topic has {len(topic):,} characters; at most {settings.max_topic_chars:,} "
            "(COUNCIL_MAX_TOPIC_CHARS)."
        )
    by_name = {p.name.casefold(): p for p in personas}
    if names is None:
        return personas
    unknown = [n for n in names if n.casefold() not in by_name]
    if unknown:
        known = ", ".join(p.name for p in personas)
        raise ToolError(f"unknown members: {', '.join(unknown)}. The council: {known}.")
    seated = [by_name[key] for key in dict.fromkeys(n.casefold() for n in names)]
    if len(seated) < settings.quorum:
        raise ToolError(
            f"{len(seated)} members cannot reach the quorum of {settings.quorum} "
            "(COUNCIL_QUORUM); seat more members."
        )
    return seated


class Debate:
    """One debate: three rounds, with a progress report after every call."""

    def __init__(self, llm: LLM, members: list[Persona], quorum: int) -> None:
        self._llm = llm
        self._members = members
        self._quorum = quorum
        self._done = 0
        self._total = 2 * len(members) + 1
        self._failures: dict[str, str] = {}
        """Why each absent member is absent, and each abstaining one abstains."""

    async def run(self, topic: str) -> DebateResult:
        opinions = await self._opinions(topic)
        absentees = [m.name for m in self._members if m.name not in opinions]
        if len(opinions) < self._quorum:
            # Name a cause: with no LLM at all, every member fails the same way.
            first_failure = next(iter(self._failures_in_order().values()), "")
            raise ToolError(
                f"Only {len(opinions)} of {len(self._members)} members gave an "
                f"opinion; the quorum is {self._quorum} (COUNCIL_QUORUM). Absent: "
                f"{', '.join(absentees)}. The first failure: {first_failure}"
            )
        votes = await self._votes(topic, opinions)
        voters = {vote.voter for vote in votes}
        tally = dict.fromkeys(opinions, 0)
        for vote in votes:
            tally[vote.chosen_member] += 1
        top = max(tally.values())
        winners = [name for name, count in tally.items() if count == top and top > 0]
        synthesis = await self._synthesis(topic, opinions, tally, winners)
        return DebateResult(
            id=self._llm.new_id(),
            topic=topic,
            opinions=[Opinion(member=n, text=t) for n, t in opinions.items()],
            votes=votes,
            tally=tally,
            winners=winners,
            synthesis=synthesis,
            calls_made=self._llm.calls_made,
            absentees=absentees,
            abstentions=[n for n in opinions if n not in voters],
            failures=self._failures_in_order(),
            created_at=datetime.fromtimestamp(self._llm.now(), timezone.utc).isoformat(
                timespec="seconds"
            ),
        )

    def _failures_in_order(self) -> dict[str, str]:
        """The failures in the council's order, whatever order they came in."""
        return {
            m.name: self._failures[m.name]
            for m in self._members
            if m.name in self._failures
        }

    async def _opinions(self, topic: str) -> dict[str, str]:
        opinions: dict[str, str] = {}

        async def ask(member: Persona) -> None:
            try:
                opinions[member.name] = await self._llm.complete(
                    Prompt(
                        "Give your opinion on the topic in at most 150 words.",
                        topic=topic,
                    ),
                    system=member.prompt,
                    temperature=0.9,
                    max_tokens=400,
                )
            except LLMError as error:  # absent: no option, no vote
                self._failures[member.name] = str(error)
            await self._progress(f"{member.name} gave an opinion")

        await self._llm.map(ask, self._members)
        # Keep the council's order, whatever order the answers came in.
        return {m.name: opinions[m.name] for m in self._members if m.name in opinions}

    async def _votes(self, topic: str, opinions: dict[str, str]) -> list[Vote]:
        votes: dict[str, Vote] = {}
        # Each voter's ballot, shuffled here, in the council's order: the same draws
        # on every run of the call (see LLM.random).
        ballots = {
            voter.name: self._llm.random.sample(
                [name for name in opinions if name != voter.name], len(opinions) - 1
            )
            for voter in self._members
            if voter.name in opinions
        }

        async def ask(voter: Persona) -> None:
            labels = dict(
                zip(string.ascii_uppercase, ballots[voter.name], strict=False)
            )
            ballot = Ballot.of(list(labels))
            ballot_text = "\n\n".join(
                f"Option {label}:\n{opinions[name]}" for label, name in labels.items()
            )
            try:
                choice = await self._llm.structured(
                    Prompt(
                        "Other council members gave these opinions on the topic. "
                        "Vote for the one option you find most convincing.",
                        topic=topic,
                        options=ballot_text,
                    ),
                    result_type=ballot,
                    system=voter.prompt,
                    temperature=0.3,
                    max_tokens=300,
                )
                votes[voter.name] = Vote(
                    voter=voter.name,
                    chosen_member=labels[choice.option],
                    reasoning=choice.reasoning,
                )
            except LLMError as error:  # abstains
                self._failures[voter.name] = str(error)
            await self._progress(f"{voter.name} voted")

        await self._llm.map(ask, [m for m in self._members if m.name in opinions])
        return [votes[name] for name in opinions if name in votes]

    async def _synthesis(
        self,
        topic: str,
        opinions: dict[str, str],
        tally: dict[str, int],
        winners: list[str],
    ) -> str:
        outcome = (
            f"Tied between {', '.join(winners)}"
            if len(winners) > 1
            else f"Won by {winners[0]}"
            if winners
            else "No votes were cast"
        )
        debate = "\n\n".join(
            f"{name} ({tally[name]} votes):\n{text}" for name, text in opinions.items()
        )
        synthesis = await self._llm.complete(
            Prompt(
                f"Synthesise the council's debate on the topic into a recommendation "
                f"of at most 200 words. Vote outcome: {outcome}.",
                topic=topic,
                debate=debate,
            ),
            system="You chair a council. You weigh every opinion fairly.",
            temperature=0.4,
            max_tokens=600,
        )
        await self._progress("wrote the synthesis")
        return synthesis.strip()

    async def _progress(self, message: str) -> None:
        self._done += 1
        await self._llm.report_progress(self._done, self._total, message)
