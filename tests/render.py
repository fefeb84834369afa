"""Render the template with copier, exactly one way, for tests and nox sessions alike."""

from __future__ import annotations

import contextlib
import itertools
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from unittest import mock

import copier
import yaml
from copier import _main as copier_internals

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
    with _file_mode_read_once(destination):
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


@contextlib.contextmanager
def _file_mode_read_once(destination: Path) -> Iterator[None]:
    """copier (since copier-org/copier#2605) runs `git config core.fileMode` in the
    destination after each file it renders: where git keeps file modes in the index
    only (`false`), it mends the executable bit there. The setting cannot change
    during a render, and the processes are a fifth of a render's time: it is read once
    here, and copier's per-file step is left out where it would do nothing."""
    step = "_sync_git_index_executable_bit"
    destination = Path(destination).absolute()
    existing = next(p for p in [destination, *destination.parents] if p.is_dir())
    file_mode = subprocess.run(
        ["git", "config", "--type=bool", "--get", "core.fileMode"],
        cwd=existing,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if file_mode == "false" or not hasattr(copier_internals.Worker, step):
        yield
        return
    with mock.patch.object(copier_internals.Worker, step, return_value=None):
        yield


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
