"""Research agent: the model searches and reads a local corpus, then reports.

The server holds the corpus, the tools and the loop; the model only decides what to
search, what to read and what the sources say. Every claim in the report cites sources,
and every cited source must be one the model read during this run: a report citing
anything else goes back for correction (bounded), and is never returned.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import anyio.to_thread
import platformdirs
from fastmcp import Context
from fastmcp.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ...core import LLM, Call, GatewaySettings, Prompt, SamplingServer
from .corpus import Corpus, SourceNotFoundError

logger = logging.getLogger(__name__)

SYSTEM = (
    "You are a careful researcher. Answer the question from the corpus only: search "
    "it, read the sources that look relevant, then give your report. Every finding "
    "must cite the ids of the sources you read that support it. If the corpus does "
    "not answer the question, say so in the summary and give no findings."
)
MAX_QUESTION_CHARS = 2_000
SHIPPED_CORPUS = Path(__file__).parent / "documents"


class Settings(BaseSettings):
    """Research pattern."""

    model_config = SettingsConfigDict(env_prefix="RESEARCH_")

    corpus_dir: Path | None = Field(
        None,
        description="Folder of Markdown, text and HTML documents to research; "
        "by default the sample corpus shipped with the server.",
    )
    cache_dir: Path | None = Field(
        None,
        description="Where the search index is kept; by default the user's cache "
        "directory.",
    )


class Finding(BaseModel):
    """A claim of the report, with the sources that support it."""

    claim: str = Field(description="One statement the sources support.")
    source_ids: list[str] = Field(
        min_length=1, description="Ids of the read sources that support the claim."
    )


class Report(BaseModel):
    """What the model writes."""

    summary: str = Field(description="The answer to the question, in a paragraph.")
    findings: list[Finding]


class SourceInfo(BaseModel):
    """A cited source: its id in the corpus, its title, and where it lies."""

    id: str
    title: str
    location: str


class ResearchReport(BaseModel):
    """What the tool returns: the report, with the cited sources described."""

    summary: str
    findings: list[Finding]
    sources: list[SourceInfo]
    iterations: int
    tool_calls: int


def register(mcp: SamplingServer, gateway: GatewaySettings, settings: Settings) -> None:
    corpus = Corpus(
        settings.corpus_dir or SHIPPED_CORPUS,
        cache_dir=settings.cache_dir
        or Path(platformdirs.user_cache_dir(__package__.split(".")[0])),
    )

    async def corpus_indexed() -> None:
        await anyio.to_thread.run_sync(corpus.refresh)

    logger.info(
        "research: the corpus is %s (RESEARCH_CORPUS_DIR); its search index is kept "
        "in %s (RESEARCH_CACHE_DIR)",
        corpus.root,
        corpus.index_path.parent,
    )
    mcp.add_readiness_check("research corpus", corpus_indexed)

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    async def research(
        question: Annotated[str, Field(description="What to find out.")],
        ctx: Context,
        max_iterations: Annotated[
            int, Field(ge=1, description="Most steps the agent may take.")
        ] = 6,
    ) -> ResearchReport:
        """Research a question in the local document corpus with your LLM."""
        if not question.strip():
            raise ToolError("question is empty: say what to find out.")
        if len(question) > MAX_QUESTION_CHARS:
            raise ToolError(
                f"question has {len(question):,} characters; ask in at most "
                f"{MAX_QUESTION_CHARS:,}."
            )
        await _refresh(corpus)
        tools = ResearchTools(corpus)
        done = await LLM(ctx, gateway).run_agent(
            Prompt("Research the question.", question=question),
            tools=[tools.search, tools.read],
            result_type=Report,
            max_iterations=max_iterations,
            check=check_citations,
            system=SYSTEM,
            temperature=0.2,
            max_tokens=2000,
        )
        cited = sorted({i for f in done.result.findings for i in f.source_ids})
        return ResearchReport(
            summary=done.result.summary,
            findings=done.result.findings,
            sources=[SourceInfo(**vars(corpus.read(i).source)) for i in cited],
            iterations=done.iterations,
            tool_calls=done.tool_calls,
        )

    @mcp.resource(
        "research://sources",
        name="sources",
        description="Every source in the research corpus: id, title, location.",
        mime_type="application/json",
    )
    async def sources() -> str:
        await _refresh(corpus)
        return json.dumps([vars(source) for source in corpus.sources()], indent=2)


async def _refresh(corpus: Corpus) -> None:
    try:
        await anyio.to_thread.run_sync(corpus.refresh)
    except OSError as error:
        raise ToolError(
            f"The research corpus cannot be indexed: {error}. Set RESEARCH_CORPUS_DIR "
            "to a readable folder and RESEARCH_CACHE_DIR to a writable one."
        ) from None


class ResearchTools:
    """The model's tools for a research run, over the corpus."""

    def __init__(self, corpus: Corpus) -> None:
        self._corpus = corpus

    def search(
        self,
        query: str,
        limit: Annotated[int, Field(ge=1, le=10)] = 5,
    ) -> list[dict[str, str]]:
        """Search the corpus; returns source ids, titles and matching snippets."""
        return [
            {"id": hit.source.id, "title": hit.source.title, "snippet": hit.snippet}
            for hit in self._corpus.search(query, limit)
        ]

    def read(self, source_id: str) -> str:
        """Read a whole source by its id (from search results)."""
        try:
            document = self._corpus.read(source_id)
        except SourceNotFoundError as error:
            raise ToolError(f"{error}; use an id from search results") from None
        return f"# {document.source.title}\n\n{document.text}"


def check_citations(report: Report, calls: list[Call]) -> str | None:
    """Every cited source must be one read (successfully) in this run."""
    read_ids = {
        call.arguments.get("source_id") for call in calls if call.name == "read"
    }
    cited = {i for finding in report.findings for i in finding.source_ids}
    unread = sorted(cited - read_ids)
    if not unread:
        return None
    read = ", ".join(sorted(str(i) for i in read_ids)) or "none yet"
    return (
        f"it cites sources you did not read in this run: {', '.join(unread)}. "
        f"Read them first, or cite only sources you read ({read})"
    )
