from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

# Commits made by the tests themselves: fixed identity, and no user or system git
# config (signing, hooks, templates) leaking in.
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Template Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "Template Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


# The files that check whole generated projects, longest first: a minute or more each.
LONGEST_FIRST = ["test_generation.py", "test_docs_commands.py"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # First, one on each worker under xdist (`nox -s tests`: a test file per worker at
    # a time, in this order: `--no-loadscope-reorder`), so that the other files fill
    # the workers meanwhile instead of leaving one idle at the end.
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_configure(config: pytest.Config) -> None:
    # Rendering from a work tree with uncommitted template edits is the normal case
    # while developing; copier warns about it on every render.
    config.addinivalue_line("filterwarnings", "ignore::copier.errors.DirtyLocalWarning")


@pytest.fixture
def git() -> Callable[..., str]:
    """Run git in a directory and return its output; fail the test on error."""

    def run(cwd: Path, *args: str) -> str:
        completed = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=GIT_ENV,
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            pytest.fail(f"git {' '.join(args)} failed in {cwd}:\n{completed.stderr}")
        return completed.stdout

    return run
