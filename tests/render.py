"""Render the template with copier, exactly one way, for tests and nox sessions alike."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path

import copier
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent

# Valid answers for every question; tests override single keys.
SAMPLE_ANSWERS: dict[str, object] = {
    "project_name": "acme-notes",
    "description": "Answers questions about notes with the client's LLM.",
    "author_name": "Ada Lovelace",
    "author_email": "ada@example.com",
    "github_owner": "acme",
    "python_min": "3.10",
    "license": "MIT",
    "examples": [],
}


def render(
    destination: Path,
    data: Mapping[str, object],
    template: Path = REPO_ROOT,
    vcs_ref: str = "HEAD",
) -> None:
    """Render ``template`` into ``destination`` non-interactively.

    ``vcs_ref="HEAD"`` because copier otherwise renders the latest *tag*, even from
    a local clone (and HEAD includes uncommitted edits). ``unsafe=False``: the
    template must never need ``--trust``, so a task or extension sneaking into
    copier.yml fails every test.
    """
    copier.run_copy(
        str(template),
        str(destination),
        data=dict(data),
        vcs_ref=vcs_ref,
        defaults=True,
        overwrite=True,
        quiet=True,
        unsafe=False,
    )


def question_choices(question: str, template: Path = REPO_ROOT) -> list[str]:
    """The values a question offers, in copier.yml order."""
    questions = yaml.safe_load((template / "copier.yml").read_text(encoding="utf-8"))
    choices = questions[question]["choices"]
    return list(choices.values() if isinstance(choices, dict) else choices)


def example_choices(template: Path = REPO_ROOT) -> list[str]:
    return question_choices("examples", template)


def minimum_python(template: Path = REPO_ROOT) -> str:
    """The lowest `python_min` the template offers."""
    return min(
        question_choices("python_min", template),
        key=lambda version: tuple(map(int, version.split("."))),
    )


def every_pattern_answers() -> dict[str, object]:
    """The project the whole suite and the pages run in: every pattern, the minimum
    Python, and a long name, so that no generated line may outgrow the formatter's
    limit."""
    return {
        **SAMPLE_ANSWERS,
        "project_name": "acme-research-notes-for-the-whole-team",
        "python_min": minimum_python(),
        "examples": example_choices(),
    }


def every_selection(template: Path = REPO_ROOT) -> list[tuple[str, ...]]:
    """Every subset of the ``examples`` choices; grows when copier.yml gains one."""
    choices = example_choices(template)
    subsets = (itertools.combinations(choices, n) for n in range(len(choices) + 1))
    return list(itertools.chain.from_iterable(subsets))


def selection_id(selection: tuple[str, ...]) -> str:
    return "+".join(selection) or "no-examples"
