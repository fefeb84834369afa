"""Every command in both READMEs and the docs runs as written, or says why not.

The template's pages run in a copy of this checkout (its README generates projects
from `.`, and the published address becomes the copy's path); a generated project's
pages run inside the project with every pattern that test_generation.py checks, where
the paths its snippets hold are real. See docs_commands.py for how a block is marked
and run.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from docs_commands import (
    RUN_BY,
    Block,
    CommandFailed,
    blocks,
    doc_command,
    every_block,
    not_run,
    run_pages,
)
from render import REPO_ROOT, every_pattern_answers, render
from session_tools import find_python


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    answers = every_pattern_answers()
    project = tmp_path_factory.mktemp("docs") / str(answers["project_name"])
    render(project, answers)
    return project


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of this checkout, uncommitted changes included, in a scratch folder."""
    copy = tmp_path_factory.mktemp("template") / "copier-mcp-sampling"
    shutil.copytree(
        REPO_ROOT, copy, ignore=shutil.ignore_patterns(".nox", "site", "__pycache__")
    )
    return copy


def marks_are_kept(blocks: list[Block]) -> list[str]:
    """What is wrong with the blocks' marks: a `command:` without its test, or a
    `not run:` without a reason worth the name."""
    problems = []
    for block in blocks:
        if block.kind == "command":
            runner = RUN_BY.get(block.label)
            if runner is None:
                problems.append(f"{block}: no test runs `command: {block.label}`")
            elif f'"{block.label}"' not in (REPO_ROOT / runner).read_text():
                problems.append(f"{block}: {runner} does not run `{block.label}`")
        if block.kind == "not run" and len(block.label) < 30:
            problems.append(f"{block}: say why it is not run ({block.label!r})")
    return problems


@pytest.mark.parametrize("which", ["template", "generated project"])
def test_every_block_is_run_or_says_why_not(
    which: str, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = REPO_ROOT if which == "template" else project
    blocks = every_block(root)
    assert blocks, f"no commands in the {which}'s pages"
    assert marks_are_kept(blocks) == []
    with capsys.disabled():
        print(f"\nNot run in the {which}'s pages:", *not_run(root), sep="\n  ")


def test_the_mark_check_catches_a_missing_test_or_reason() -> None:
    """Control for the test above."""
    page = Path("README.md")
    unrun = Block(page, 3, "command", "no-such-command", "true\n")
    bare = Block(page, 9, "not run", "later", "uvx nox\n")
    assert marks_are_kept([unrun, bare]) == [
        "README.md:3: no test runs `command: no-such-command`",
        "README.md:9: say why it is not run ('later')",
    ]


def test_the_template_pages_run_as_written(checkout: Path) -> None:
    for line in run_pages(checkout, checkout, checkout=checkout):
        print(line)


def test_the_generated_pages_run_as_written(project: Path) -> None:
    """On the project's minimum Python: `uv` is told to pick it, as on a machine that
    has no other (the pages' first `uv run` makes the project's venv with it). The
    README's fast loop runs the in-process half of the project's suite."""
    python = find_python(str(every_pattern_answers()["python_min"]))
    try:
        ran = run_pages(project, project, env={"UV_PYTHON": python})
    except CommandFailed as error:
        pytest.fail(str(error), pytrace=False)
    print(*ran, sep="\n")
    assert any('pytest -m "not process"' in line for line in ran), ran


def test_the_next_steps_copier_prints_run_as_written(checkout: Path) -> None:
    """`copier copy` ends with three commands: the first runs here, the second is the
    fast loop of the project's README, which its pages' run runs (above),
    the third the Inspector command of its docs, which `nox -s inspector` runs."""
    made = subprocess.run(
        [
            "uvx", "--from", "copier>=9.19,<10", "copier", "copy", "--vcs-ref=HEAD",
            "--defaults", "--data", "project_name=next-steps",
            "--data", "github_owner=ada-lovelace", ".", "../next-steps",
        ],
        cwd=checkout, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    next_steps = made.stderr.split("is ready. Next:\n\n", 1)[1].split("\n\n", 1)[0]
    steps = [line.strip() for line in next_steps.splitlines()]
    assert len(steps) == 3, made.stderr
    change, test, inspect = steps
    project = checkout.parent / "next-steps"
    assert inspect == doc_command(project, "inspector").strip()
    readme = [block.code.strip() for block in blocks(project / "README.md")]
    assert test in readme
    ran = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", f"{change}\npwd"],
        cwd=checkout, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ran.stdout.strip() == str(project), ran.stderr
