"""Summarizer: documents of any length, summarised map-reduce style by the LLM.

A document that fits in one chunk takes one request. A longer one is split on paragraph
boundaries; the chunks are summarised concurrently (as many at once as the gateway
allows), the partial summaries are joined and, while they still exceed one chunk,
summarised again; a last request writes the summary in the asked-for style. Each round
must at least halve the text, so the rounds are bounded by the document's length and
a model that ignores length limits is stopped early. The document always travels
fenced.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator
from typing import Annotated, Literal

from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..core import LLM, GatewaySettings, Prompt

Style = Literal["paragraph", "bullets"]

SYSTEM = (
    "You summarise documents faithfully: keep names, numbers, decisions and "
    "conclusions; add nothing that is not in the document. Reply with the summary only."
)
STYLE_INSTRUCTIONS = {
    "paragraph": "as one paragraph",
    "bullets": 'as a bulleted list, one "- " line per point',
}


class Settings(BaseSettings):
    """Summarizer pattern."""

    model_config = SettingsConfigDict(env_prefix="SUMMARIZER_")

    max_chars: int = Field(
        2_000_000, ge=1, description="Longest document accepted, in characters."
    )
    chunk_chars: int = Field(
        12_000,
        ge=1_000,
        description="Longest piece of text sent to the LLM in one request.",
    )


def register(mcp: FastMCP, gateway: GatewaySettings, settings: Settings) -> None:
    @mcp.tool(annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    async def summarize(
        text: Annotated[str, Field(description="The document to summarise.")],
        ctx: Context,
        max_words: Annotated[
            int, Field(ge=1, le=1000, description="Longest summary, in words.")
        ] = 150,
        style: Annotated[
            Style, Field(description="One paragraph, or a bulleted list.")
        ] = "paragraph",
    ) -> str:
        """Summarise a document of any length with your LLM."""
        summarizer = Summarizer(LLM(ctx, gateway), settings)
        return await summarizer.summarize(text, max_words=max_words, style=style)


class Summarizer:
    """One summary: the map-reduce rounds and their progress reports."""

    def __init__(self, llm: LLM, settings: Settings) -> None:
        self._llm = llm
        self._settings = settings
        self._requests_done = 0

    async def summarize(self, text: str, *, max_words: int, style: Style) -> str:
        if not text.strip():
            raise ToolError("text is empty: pass the document to summarise.")
        if len(text) > self._settings.max_chars:
            raise ToolError(
                f"text has {len(text):,} characters; this server accepts at most "
                f"{self._settings.max_chars:,} (SUMMARIZER_MAX_CHARS). Split the "
                "document, or raise the limit."
            )
        pieces = split_into_chunks(text, self._settings.chunk_chars)
        max_rounds = reduce_rounds(len(text), self._settings.chunk_chars)
        is_partial_summaries = False
        round_number = 0
        while len(pieces) > 1:
            round_number += 1
            if round_number > max_rounds:
                raise ToolError(
                    f"The summary did not converge within {max_rounds} rounds, the "
                    f"most a {len(text):,}-character document needs; try again."
                )
            partials = await self._summarise_round(pieces, round_number)
            joined = "\n\n".join(partials)
            ratio = len(joined) / sum(len(piece) for piece in pieces)
            if ratio > MAX_ROUND_RATIO:
                raise ToolError(
                    f"In round {round_number} the LLM's partial summaries were "
                    f"{ratio:.0%} as long as the text they summarise; each round must "
                    f"at most halve it, or the summary cannot converge. Try again, or "
                    "use a model that follows length limits."
                )
            pieces = split_into_chunks(joined, self._settings.chunk_chars)
            is_partial_summaries = True
        instruction = (
            "The document consists of summaries of consecutive parts of a longer "
            "document. Combine them into one summary"
            if is_partial_summaries
            else "Summarise the document"
        )
        summary = await self._ask(
            f"{instruction} {STYLE_INSTRUCTIONS[style]}, in at most {max_words} words.",
            pieces[0],
            max_words,
        )
        await self._progress("wrote the summary")
        return summary.strip()

    async def _summarise_round(self, chunks: list[str], round_number: int) -> list[str]:
        """Summarise every chunk at once; the gateway bounds how many are in flight."""
        # Partial summaries must be much shorter than a chunk, or rounds never end.
        words = max(50, self._settings.chunk_chars // 40)

        async def summarise_chunk(index: int) -> str:
            partial = await self._ask(
                f"This is part {index + 1} of {len(chunks)} of a longer document. "
                f"Summarise this part in at most {words} words.",
                chunks[index],
                words,
            )
            await self._progress(
                f"round {round_number}: summarised part {index + 1} of {len(chunks)}"
            )
            return partial

        return await self._llm.map(summarise_chunk, range(len(chunks)))

    async def _ask(self, instruction: str, document: str, words: int) -> str:
        return await self._llm.complete(
            Prompt(instruction, document=document),
            system=SYSTEM,
            temperature=0.3,
            # About two tokens a word, plus room for list markers.
            max_tokens=2 * words + 64,
        )

    async def _progress(self, message: str) -> None:
        self._requests_done += 1
        await self._llm.report_progress(self._requests_done, message=message)


MAX_ROUND_RATIO = 0.5
"""Each map round must at least halve the text, so rounds are bounded by its length."""


def reduce_rounds(length: int, chunk_chars: int) -> int:
    """The most map rounds a document of `length` characters may take.

    Halving each round, ceil(log2(length / chunk)) rounds bring it within one chunk; one
    more allows for how the partial summaries pack into chunks.

    >>> reduce_rounds(1_000_000, 12_000)
    8
    """
    return max(1, math.ceil(math.log2(max(length, 1) / chunk_chars))) + 1


def split_into_chunks(text: str, limit: int) -> list[str]:
    """Pack paragraphs into chunks of at most `limit` characters, in order.

    >>> split_into_chunks("one\\n\\ntwo\\n\\nthree", limit=10)
    ['one\\n\\ntwo', 'three']
    """
    return list(_chunks(text, limit))


# Every round of a modern call splits the document again (see core/_replay.py): the
# last few splits are kept.
@functools.lru_cache(maxsize=4)
def _chunks(text: str, limit: int) -> tuple[str, ...]:
    chunks: list[str] = []
    current = ""
    for piece in _pieces(text, limit):
        if current and len(current) + 2 + len(piece) > limit:
            chunks.append(current)
            current = piece
        else:
            current = f"{current}\n\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return tuple(chunks)


def _pieces(text: str, limit: int) -> Iterator[str]:
    """Paragraphs, with any longer than `limit` cut, at a space where there is one."""
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = paragraph.strip()
        while len(paragraph) > limit:
            cut = paragraph.rfind(" ", 0, limit + 1)
            if cut <= 0:
                cut = limit
            yield paragraph[:cut].rstrip()
            paragraph = paragraph[cut:].lstrip()
        if paragraph:
            yield paragraph
