"""Research agent: the corpus index, path safety, and the search→read→report loop."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import CLIENT_SIDE_FAILURES, Connect, LLMFailure
from fastmcp.exceptions import ToolError

from research_agent.core.testing import (
    Retries,
    ScriptedLLM,
    call,
    final,
    prompt_text,
    tool_use,
)
from research_agent.patterns.research import SHIPPED_CORPUS
from research_agent.patterns.research.corpus import (
    MAX_DOCUMENT_BYTES,
    Corpus,
    SourceNotFoundError,
)
from research_agent.server import create_server

REPORT = {
    "summary": "Air-source heat pumps deliver about three units of heat per unit.",
    "findings": [
        {
            "claim": "A modern unit reaches a COP of about 3.",
            "source_ids": ["heat-pumps.md"],
        }
    ],
}


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every index in this module goes to a temporary cache, never the user's."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RESEARCH_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    (root / "notes").mkdir(parents=True)
    (root / "apples.md").write_text("# Apples\n\nApples grow on trees in orchards.\n")
    (root / "notes" / "pears.txt").write_text("Pears ripen after picking.\n")
    (root / "page.html").write_text(
        "<html><head><title>Plums</title><style>p {color: red}</style></head>"
        "<body><h1>Plums</h1><p>Plums are stone fruit.</p><script>x()</script></body>"
        "</html>"
    )
    (root / "image.png").write_bytes(b"\x89PNG not a document")
    return root


def test_search_finds_documents_of_every_kind(
    corpus_dir: Path, cache_dir: Path
) -> None:
    corpus = Corpus(corpus_dir, cache_dir=cache_dir)
    assert corpus.refresh() == 3
    assert [h.source.id for h in corpus.search("orchards")] == ["apples.md"]
    assert [h.source.id for h in corpus.search("ripen")] == ["notes/pears.txt"]
    (plums,) = corpus.search("stone fruit")
    assert plums.source.title == "Plums"
    assert corpus.read("page.html").text == "Plums\n\nPlums are stone fruit."


@pytest.mark.parametrize("query", ['"', "AND OR NOT", "apples*)(", "", "NEAR(a b)"])
def test_no_query_is_fts5_syntax(corpus_dir: Path, cache_dir: Path, query: str) -> None:
    corpus = Corpus(corpus_dir, cache_dir=cache_dir)
    corpus.refresh()
    corpus.search(query)  # must not raise


def test_the_index_follows_added_changed_and_removed_files(
    corpus_dir: Path, cache_dir: Path
) -> None:
    corpus = Corpus(corpus_dir, cache_dir=cache_dir)
    corpus.refresh()
    assert corpus.refresh() == 0
    (corpus_dir / "apples.md").write_text("# Apples\n\nApples make cider.\n")
    (corpus_dir / "notes" / "pears.txt").unlink()
    (corpus_dir / "cherries.md").write_text("# Cherries\n\nCherries are red.\n")
    assert corpus.refresh() == 3
    assert [h.source.id for h in corpus.search("cider")] == ["apples.md"]
    assert corpus.search("orchards") == []
    assert corpus.search("ripen") == []
    assert [h.source.id for h in corpus.search("cherries")] == ["cherries.md"]


def test_the_start_says_where_the_corpus_and_its_index_are(
    cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    create_server()
    assert (
        f"research: the corpus is {SHIPPED_CORPUS.resolve()} (RESEARCH_CORPUS_DIR); "
        f"its search index is kept in {cache_dir} (RESEARCH_CACHE_DIR)"
    ) in caplog.text


def test_the_index_lives_in_the_cache_not_the_corpus(
    corpus_dir: Path, cache_dir: Path
) -> None:
    before = sorted(corpus_dir.rglob("*"))
    corpus = Corpus(corpus_dir, cache_dir=cache_dir)
    corpus.refresh()
    assert sorted(corpus_dir.rglob("*")) == before
    assert corpus.index_path.parent == cache_dir


def test_read_never_leaves_the_corpus(
    corpus_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text("# Secret\n\nThe password is swordfish.\n")
    (corpus_dir / "leak.md").symlink_to(secret)
    (corpus_dir / "outside").symlink_to(tmp_path, target_is_directory=True)
    corpus = Corpus(corpus_dir, cache_dir=cache_dir)
    corpus.refresh()
    indexed = {source.id for source in corpus.sources()}
    assert indexed == {"apples.md", "notes/pears.txt", "page.html"}
    assert corpus.search("swordfish") == []
    for source_id in [
        "../secret.md",
        str(secret),
        "leak.md",
        "outside/secret.md",
        "notes/../../secret.md",
        "image.png",
    ]:
        with pytest.raises(SourceNotFoundError):
            corpus.read(source_id)


@pytest.mark.parametrize("swapped", ["apples.md", "notes"])
def test_a_symlink_swapped_in_after_the_listing_is_never_followed(
    corpus_dir: Path,
    cache_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    swapped: str,
) -> None:
    outside = tmp_path / "outside"
    (outside / "notes").mkdir(parents=True)
    for leak in [outside / "apples.md", outside / "notes" / "pears.txt"]:
        leak.write_text("# Leak\n\nThe password is swordfish.\n")
    corpus = Corpus(corpus_dir, cache_dir=cache_dir)
    listed = corpus._files

    def list_then_swap() -> list[Path]:
        files = listed()  # checked: real files in real folders
        target = corpus_dir / swapped
        if target.is_dir():
            for child in target.iterdir():
                child.unlink()
            target.rmdir()
        else:
            target.unlink()
        target.symlink_to(outside / swapped)  # then swapped for a link out
        return files

    monkeypatch.setattr(corpus, "_files", list_then_swap)
    corpus.refresh()
    assert corpus.search("swordfish") == []
    assert "swordfish" not in json_of_every_source(corpus)


def json_of_every_source(corpus: Corpus) -> str:
    return json.dumps([corpus.read(s.id).text for s in corpus.sources()])


def test_a_file_that_is_too_large_or_not_regular_is_left_out(
    corpus_dir: Path, cache_dir: Path
) -> None:
    with (corpus_dir / "huge.md").open("wb") as file:
        file.truncate(MAX_DOCUMENT_BYTES + 1)
    os.mkfifo(corpus_dir / "pipe.md")
    corpus = Corpus(corpus_dir, cache_dir=cache_dir)
    corpus.refresh()
    assert {s.id for s in corpus.sources()} == {
        "apples.md",
        "notes/pears.txt",
        "page.html",
    }


async def test_native_loop_searches_reads_and_reports_with_sources(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.expect(
        tool_use("search", {"query": "heat pump COP"}, call_id="s1"),
        tool_use("read", {"source_id": "heat-pumps.md"}, call_id="r1"),
        tool_use("final_response", REPORT, call_id="f1"),
    )
    async with connect("tools") as client:
        result = await client.call_tool("research", {"question": "How efficient?"})
    report = result.structured_content
    assert report["summary"] == REPORT["summary"]
    assert report["findings"] == REPORT["findings"]
    assert report["sources"] == [
        {
            "id": "heat-pumps.md",
            "title": "Heat pumps",
            "location": str(SHIPPED_CORPUS.resolve() / "heat-pumps.md"),
        }
    ]
    assert (report["iterations"], report["tool_calls"]) == (3, 2)
    search_result = scripted_llm.requests[1].messages[-1].content_as_list[0]
    hits = json.loads(search_result.content[0].text.splitlines()[1])
    assert hits[0]["id"] == "heat-pumps.md"
    read_result = scripted_llm.requests[2].messages[-1].content_as_list[0]
    assert "coefficient of performance" in read_result.content[0].text


@pytest.mark.parametrize("era", ["modern"])
async def test_every_round_sent_twice_at_once_gives_the_same_report(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.expect(
        tool_use("search", {"query": "heat pump COP"}, call_id="s1"),
        tool_use("read", {"source_id": "heat-pumps.md"}, call_id="r1"),
        tool_use("final_response", REPORT, call_id="f1"),
    )
    retries = Retries(every_round=True)
    async with connect("tools", retries=retries) as client:
        result = await client.call_tool("research", {"question": "How efficient?"})
    assert result.structured_content["summary"] == REPORT["summary"]
    assert retries.sent_again == 3


@pytest.mark.parametrize("mode", ["fallback", "always"])
async def test_an_openai_compatible_endpoint_serves_a_client_that_cannot_sample(
    connect: Connect,
    scripted_llm: ScriptedLLM,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    monkeypatch.setenv("MCP_SAMPLING_MODE", mode)
    scripted_llm.expect(
        tool_use("search", {"query": "heat pump COP"}, call_id="s1"),
        tool_use("read", {"source_id": "heat-pumps.md"}, call_id="r1"),
        tool_use("final_response", REPORT, call_id="f1"),
    )
    async with connect("none", provider="openai") as client:
        result = await client.call_tool("research", {"question": "How efficient?"})
    report = result.structured_content
    assert report["findings"] == REPORT["findings"]
    assert [source["id"] for source in report["sources"]] == ["heat-pumps.md"]
    assert (report["iterations"], report["tool_calls"]) == (3, 2)
    read_result = scripted_llm.requests[2].messages[-1].content_as_list[0]
    assert "coefficient of performance" in read_result.content[0].text


async def test_emulated_loop_searches_reads_and_reports(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.expect(
        call("search", {"query": "battery"}),
        call("read", {"source_id": "battery-storage.html"}),
        final(
            {
                "summary": "Home batteries hold 5 to 13.5 kWh.",
                "findings": [
                    {
                        "claim": "Round-trip efficiency is about 90 percent.",
                        "source_ids": ["battery-storage.html"],
                    }
                ],
            }
        ),
    )
    async with connect("text") as client:
        result = await client.call_tool("research", {"question": "Batteries?"})
    report = result.structured_content
    assert [s["title"] for s in report["sources"]] == ["Home battery storage"]
    assert "Round-trip efficiency" in prompt_text(scripted_llm.requests[2])


async def test_a_citation_of_an_unread_source_is_sent_back(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    overreaching = {
        "summary": "Heat pumps and solar panels.",
        "findings": [
            {"claim": "Panels face south.", "source_ids": ["solar-panels.md"]},
        ],
    }
    scripted_llm.expect(
        tool_use("read", {"source_id": "heat-pumps.md"}, call_id="r1"),
        tool_use("final_response", overreaching, call_id="f1"),
        tool_use("final_response", REPORT, call_id="f2"),
    )
    async with connect("tools") as client:
        result = await client.call_tool("research", {"question": "Heating?"})
    assert [s["id"] for s in result.structured_content["sources"]] == ["heat-pumps.md"]
    (rejection,) = scripted_llm.requests[2].messages[-1].content_as_list
    assert rejection.is_error
    assert "did not read in this run: solar-panels.md" in rejection.content[0].text


async def test_citing_unread_sources_forever_fails_and_returns_nothing(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.expect(*[tool_use("final_response", REPORT)] * 4)
    async with connect("tools") as client:
        with pytest.raises(ToolError, match="did not read in this run"):
            await client.call_tool("research", {"question": "Heating?"})


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            ("read", {"source_id": "../../pyproject.toml"}),
            "there is no source '../../pyproject.toml'",
        ),
        (("read", {"source_id": "nowhere.md"}), "there is no source 'nowhere.md'"),
        (("browse", {"url": "http://example.com"}), "There is no tool 'browse'"),
        (("search", {"query": "x", "limit": 99}), "less than or equal to 10"),
    ],
)
async def test_bad_tool_calls_are_error_results_and_the_loop_goes_on(
    connect: Connect, scripted_llm: ScriptedLLM, call: tuple, message: str
) -> None:
    name, arguments = call
    scripted_llm.expect(
        tool_use(name, arguments),
        tool_use("read", {"source_id": "heat-pumps.md"}, call_id="r1"),
        tool_use("final_response", REPORT, call_id="f1"),
    )
    async with connect("tools") as client:
        await client.call_tool("research", {"question": "Heating?"})
    (error,) = scripted_llm.requests[1].messages[-1].content_as_list
    assert error.is_error
    assert message in error.content[0].text


async def test_a_runaway_agent_stops_at_max_iterations(
    connect: Connect, scripted_llm: ScriptedLLM
) -> None:
    scripted_llm.expect(*[tool_use("search", {"query": "solar"})] * 2)
    async with connect("tools") as client:
        with pytest.raises(ToolError, match="did not finish within 2 iterations"):
            await client.call_tool(
                "research", {"question": "Solar?", "max_iterations": 2}
            )


@pytest.mark.parametrize(
    ("question", "message"),
    [("  ", "question is empty"), ("why? " * 500, "ask in at most 2,000")],
)
async def test_bad_questions_are_refused_before_sampling(
    connect: Connect, question: str, message: str
) -> None:
    async with connect("tools") as client:
        with pytest.raises(ToolError, match=message):
            await client.call_tool("research", {"question": question})


async def test_a_missing_corpus_folder_is_a_clear_error(
    connect: Connect, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RESEARCH_CORPUS_DIR", str(tmp_path / "nowhere"))
    async with connect("tools") as client:
        with pytest.raises(ToolError, match="RESEARCH_CORPUS_DIR"):
            await client.call_tool("research", {"question": "Anything?"})


async def test_the_sources_resource_lists_the_corpus(connect: Connect) -> None:
    async with connect("none") as client:
        (content,) = await client.read_resource("research://sources")
    sources = json.loads(content.text)
    assert {s["id"]: s["title"] for s in sources} == {
        "battery-storage.html": "Home battery storage",
        "guides/choosing-a-tariff.md": "Choosing an electricity tariff",
        "heat-pumps.md": "Heat pumps",
        "insulation.txt": "insulation",
        "solar-panels.md": "Rooftop solar panels",
    }
    assert all(os.path.isabs(s["location"]) for s in sources)


async def test_a_failing_llm_fails_the_research_with_its_own_message(
    llm_failure: LLMFailure,
) -> None:
    async with llm_failure.connect() as client:
        message = await llm_failure.call(client, "research", {"question": "Heating?"})
    llm_failure.assert_reported(message)


@pytest.mark.parametrize("kind", CLIENT_SIDE_FAILURES)
async def test_a_failure_mid_loop_fails_the_research_with_its_own_message(
    connect: Connect, kind: str, era: str
) -> None:
    failure = LLMFailure(kind, connect, era)

    search = call("search", {"query": "heat pump"})
    # The first request is answered with a search; the one after its result fails.
    searching = failure.connect(
        answer=search.respond, fails=lambda r: len(r.messages) > 1
    )
    async with searching as client:
        message = await failure.call(client, "research", {"question": "Heating?"})
    failure.assert_reported(message)
